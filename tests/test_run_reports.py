"""What `lesde run`, `resume` and `validate` say, and what they refuse before running.

- numbers are printed under the time of the record they come from: a failed replica is said
  to have failed at its time, an interrupted run says where it stopped, a resumed finished
  run says it ran 0 steps;
- a config path is always a path (``Config.from_toml(Path(...))``), and text read from a
  file's header is never taken for a path;
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

import lesde
from lesde import engine, storage
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


# ---------------------------------------------------------------- path or text
def test_a_path_is_always_a_file_and_a_str_follows_one_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="alpha=0.5"):
        lesde.Config.from_toml(Path("alpha=0.5"))  # read as the text "alpha=0.5" before
    Path("alpha=0.5").write_text("alpha = 3.0\n")
    assert lesde.Config.from_toml(Path("alpha=0.5")).alpha == 3.0
    assert lesde.Config.from_toml("alpha=0.5").alpha == 0.5  # a str with "=": text
    Path("runs").mkdir()
    Path("runs/a=b.toml").write_text("alpha = 2.0\n")
    assert lesde.Config.from_toml("runs/a=b.toml").alpha == 2.0  # ends in .toml: a file
    for missing in ("missing.toml", "my_config", Path("x")):
        with pytest.raises(FileNotFoundError, match=str(missing)):
            lesde.Config.from_toml(missing)
    os.mkfifo("fifo.toml")
    with pytest.raises(ValueError, match="FIFO"):  # refused without blocking
        lesde.Config.from_toml(Path("fifo.toml"))
    with pytest.raises(ValueError, match="invalid TOML"):
        lesde.Config.from_toml_text("runs/a=b.toml")  # text, whatever it looks like


def test_a_header_naming_a_file_is_not_read_as_that_file(tmp_path):
    """A result file whose header's config_toml was the name of another TOML file loaded
    with that file's config (here alpha = 7)."""
    res = lesde.simulate(n_classes=2, n_per_class=5, t_end=0.1, progress=False)
    path = tmp_path / "run.npz"
    res.save(path)
    other = tmp_path / "other.toml"
    other.write_text(res.config.replace(alpha=7.0).to_toml())
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files if name != "header"}
        header = json.loads(str(data["header"][()]))
    storage.write_npz(path, arrays, {**header, "config_toml": str(other)})
    with pytest.raises(ValueError, match="invalid result header"):
        lesde.load(path)
