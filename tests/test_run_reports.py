"""What `lesde run`, `resume` and `validate` say, and what they refuse before running.

- numbers are printed under the time of the record they come from: a failed replica is said
  to have failed at its time, an interrupted run says where it stopped, a resumed finished
  run says it ran 0 steps;
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

import lesde
from lesde import engine
from lesde.cli import main
from lesde.cli.common import summary_tables

TINY = ["--set", "n_classes=2", "--set", "n_per_class=10", "--set", "t_end=0.2"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lesde: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- numbers under their time
def test_a_run_whose_record_overflows_is_reported_as_failed(tmp_path, capsys, monkeypatch):
    """It used to exit 0 and print the last finite record's numbers under t = t_end."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "run", *TINY, "--set", "init_scale=1e200")
    assert code == 2, (out, err)
    assert "final metrics" not in out, out
    assert "numerical failure" in err and "replica 0 at step 0 (t = 0): its record" in err, err
    assert lesde.load("run.npz").status.tolist() == ["nonfinite"]
    code, out, err = run_cli(capsys, "run", *TINY, "--set", "sigma=1e300", "--json")
    report = json.loads(out)
    assert code == 2 and report["failed"] == [{"replica": 0, "step": 1, "t": 0.01}], report


def test_the_table_holds_the_last_record_of_the_ok_replicas_only():
    """A metric that is NaN at the last record, and a failed replica, used to show the
    last finite value of an earlier record under the final time's label."""
    res = lesde.simulate(n_classes=2, n_per_class=10, t_end=0.2, replicas=2, progress=False)
    metrics = {name: values.copy() for name, values in res.metrics.items()}
    metrics["nc1"][0, -1] = np.nan  # NaN at t_end, finite before
    status = np.array(["ok", "nonfinite"])  # replica 1: its numbers are from its failure
    res = dataclasses.replace(res, metrics=metrics, status=status, fail_step=np.array([-1, 10]))
    assert np.isnan(res.at_last_record("nc1")).all()
    assert res.at_last_record("loss")[0] == res.metrics["loss"][0, -1]
    assert np.isnan(res.at_last_record("loss")[1])
    assert res.summary()["loss"] == res.metrics["loss"][0, -1]
    assert np.isnan(res.summary()["nc1"])
    row = next(line for line in summary_tables(res).splitlines() if line.startswith("nc1 "))
    assert row.split()[1:] == ["nan"] * 4, row
    assert res.failures() == [(1, 10, 0.1)]


def test_an_interrupted_run_says_where_it_stopped(tmp_path, capsys, monkeypatch):
    """The header said "final metrics at t = ..." for a run stopped by Ctrl-C."""
    monkeypatch.chdir(tmp_path)
    original = engine.Progress.update

    def ctrl_c_at_step_7(self, step):
        original(self, step)
        if step >= 7:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine.Progress, "update", ctrl_c_at_step_7)
    args = ["--set", "n_classes=2", "--set", "n_per_class=10", "--set", "steps=40"]
    code, out, err = run_cli(capsys, "run", *args, "--set", "record_every=5")
    assert code == 130, (out, err)
    first = out.splitlines()[0]
    assert "final metrics" not in out, out
    res = lesde.load("run.npz")
    steps, t_record = res.steps_done, res.times[-1]
    assert steps >= 7 and res.interrupted
    assert first.startswith(f"interrupted at t = {steps * 0.01:g} (step {steps} of 40); "), first
    assert f"metrics of its last record, t = {t_record:g}," in first, first


def test_resume_of_a_finished_checkpoint_ran_no_step(tmp_path, capsys, monkeypatch):
    """It said "resumed ... from step 20" and "20 steps in ... s"."""
    monkeypatch.chdir(tmp_path)
    code, _, _ = run_cli(capsys, "run", *TINY, "--checkpoint", "run.ckpt")
    assert code == 0
    code, out, err = run_cli(capsys, "resume", "run.ckpt", "--out", "again.npz")
    assert code == 0, err
    assert out.splitlines()[0] == (
        "run.ckpt holds a finished run (step 20 of 20): ran 0 steps, saving its result"
    )
    assert "0 steps run now (from step 20 to 20); 20 steps in" in out, out
    code, out, err = run_cli(capsys, "resume", "run.ckpt", "--out", "again.npz", "--json")
    assert json.loads(out)["steps_run"] == 0
