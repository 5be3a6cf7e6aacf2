"""What `lesde run`, `resume` and `validate` say, and what they refuse before running.

- numbers are printed under the time of the record they come from: a failed replica is said
  to have failed at its time, an interrupted run says where it stopped, a resumed finished
  run says it ran 0 steps;
- a backend this build or machine cannot run is refused by every entry in one line;
- a config path is always a path (``Config.from_toml(Path(...))``), and text read from a
  file's header is never taken for a path;
- memory: the limits of ``ulimit -v`` and of cgroups count, and running out of memory while
  allocating a run is the documented refusal (exit 2), not a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from processes import child_env

import lesde
from lesde.cli import main
from lesde.cli.common import summary_tables
from lesde.io import storage
from lesde.sim import engine

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
    code, out, err = run_cli(
        capsys, "run", *TINY, "--set", "sigma=1e300", "--json", "--out", "huge_sigma.npz"
    )
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


# ---------------------------------------------------------------- backends
def _registry_without(monkeypatch, *names):
    """The core's backend registry as if this build had none of ``names`` (a release wheel
    has no emulator; this machine has no GPU)."""
    real = lesde._core.backends()
    gone = [
        {**b, "built": False, "available": False, "reason": f"(test) no {b['name']} here"}
        for b in real
        if b["name"] in names
    ]
    monkeypatch.setattr(
        lesde._core, "backends", lambda: [b for b in real if b["name"] not in names] + gone
    )


@pytest.fixture
def without_emulator(monkeypatch):
    """This build as if made without the CUDA emulator (and, like here, without CUDA)."""
    _registry_without(monkeypatch, "cuda", "cuda_emulator")


@pytest.mark.parametrize("backend", ["cuda", "cuda_emulator"])
def test_an_unavailable_backend_is_refused_by_every_entry(
    backend, without_emulator, tmp_path, capsys, monkeypatch
):
    """`lesde run --set backend=cuda` without a GPU printed a 25-line traceback, and
    `lesde validate` accepted the config."""
    monkeypatch.chdir(tmp_path)
    needles = (f"backend={backend!r} cannot run here", "available backends: cpu, auto")
    for command in ("run", "validate"):
        code, out, err = run_cli(capsys, command, *TINY, "--set", f"backend={backend}")
        assert code == 1 and not out, (command, out)
        assert_one_error_line(err, "--set backend", *needles)
    Path("grid.toml").write_text(f'n_classes = 2\n[grid]\nbackend = ["cpu", "{backend}"]\n')
    for command in ("validate", "sweep"):
        code, out, err = run_cli(capsys, command, "grid.toml")
        assert code == 1, (command, out)
        assert_one_error_line(err, "grid.toml", *needles)
    assert sorted(os.listdir()) == ["grid.toml"], "nothing was written"
    with pytest.raises(engine.BackendUnavailableError, match="available backends"):
        lesde.simulate(n_classes=2, backend=backend, checkpoint="x.ckpt", progress=False)
    assert not Path("x.ckpt").exists()
    with pytest.raises(ValueError, match="available backends"):
        lesde.sweep(lesde.Config(n_classes=2, backend=backend), {"alpha": [1.0]})


def test_resume_of_a_checkpoint_on_a_backend_not_here_is_refused(tmp_path, capsys, monkeypatch):
    """A checkpoint written where the backend runs, resumed where it does not."""
    monkeypatch.chdir(tmp_path)
    backends = engine.available_backends()
    if "cuda_emulator" not in backends:
        pytest.skip("this build has no CUDA emulator to write the checkpoint with")
    cfg = lesde.Config(n_classes=2, n_per_class=4, steps=4, backend="cuda_emulator")
    lesde.simulate(cfg, checkpoint="run.ckpt", checkpoint_meta={"out": "r.npz"}, progress=False)
    _registry_without(monkeypatch, "cuda_emulator")
    code, out, err = run_cli(capsys, "resume", "run.ckpt", "--force")
    assert code == 1, out
    assert_one_error_line(err, "backend='cuda_emulator' cannot run here", "available backends")


def test_available_backends_are_the_ones_that_run():
    for backend in engine.available_backends():
        engine.check_backend(backend)
        cfg = lesde.Config(n_classes=2, n_per_class=4, steps=1, backend=backend)
        assert lesde.simulate(cfg, progress=False).ok


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


# ---------------------------------------------------------------- memory
def fake_proc(root: Path, cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    """A procfs with meminfo, self/cgroup and self/mountinfo, and the cgroup files."""
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text("MemTotal: 64000000 kB\nMemAvailable: 32000000 kB\n")
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "self" / "mountinfo").write_text(mountinfo.format(root=root))
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return proc


GiB = 2**30


def test_cgroup_v2_limits_count_with_their_ancestors(tmp_path):
    proc = fake_proc(
        tmp_path,
        "0::/jobs/job1\n",
        "30 23 0:26 / {root}/cg rw - cgroup2 cgroup2 rw\n",
        {
            "cg/jobs/memory.max": f"{8 * GiB}\n",  # 8 GiB, 6 of them used
            "cg/jobs/memory.current": f"{6 * GiB}\n",
            "cg/jobs/job1/memory.max": "max\n",  # no limit of its own
            "cg/jobs/job1/memory.current": f"{GiB}\n",
            "cg/jobs/job1/memory.stat": "anon 1\ninactive_file 5\n",
        },
    )
    assert storage.available_memory(proc) == 2 * GiB  # the parent's, not MemAvailable
    (tmp_path / "cg/jobs/job1/memory.max").write_text(f"{GiB + GiB // 2}\n")
    assert storage.available_memory(proc) == GiB // 2 + 5  # its own; page cache is free
    assert set(storage.memory_limits(proc)) == {
        "MemAvailable",
        f"cgroup {tmp_path}/cg/jobs",
        f"cgroup {tmp_path}/cg/jobs/job1",
    }


def test_cgroup_v1_limit_and_a_namespaced_container(tmp_path):
    v1 = "4:memory:/docker/abc\n3:cpu:/docker/abc\n0::/\n"
    mount = "35 31 0:32 / {root}/memory rw - cgroup cgroup rw,memory\n"
    files = {
        "memory/docker/abc/memory.limit_in_bytes": f"{4 * GiB}\n",
        "memory/docker/abc/memory.usage_in_bytes": f"{3 * GiB}\n",
        "memory/docker/abc/memory.stat": f"cache 9\ntotal_inactive_file {GiB}\n",
        "memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1's "no limit"
        "memory/memory.usage_in_bytes": f"{50 * GiB}\n",
    }
    assert storage.available_memory(fake_proc(tmp_path / "a", v1, mount, files)) == 2 * GiB
    # In a container the mount shows the container's own cgroup at its root (a path of
    # the host in /proc/self/cgroup that is not under it): the mount point's files count.
    container = {
        "memory/memory.limit_in_bytes": f"{GiB}\n",
        "memory/memory.usage_in_bytes": f"{GiB // 4}\n",
    }
    proc = fake_proc(tmp_path / "b", v1, mount, container)
    assert storage.available_memory(proc) == 3 * GiB // 4
    # No cgroup limit anywhere, no procfs at all: what the machine says, then nothing.
    assert storage.available_memory(fake_proc(tmp_path / "c", v1, mount, {})) == 32000000 * 1024
    assert storage.available_memory(tmp_path / "nowhere") in (None, *_rlimits_only())


def _rlimits_only():
    limits = storage.memory_limits(Path("/nonexistent"))
    return [min(limits.values())] if limits else []


def test_a_memory_error_while_allocating_is_the_refusal(tmp_path, capsys, monkeypatch):
    """A MemoryError from NumPy (a limit the check could not see) was a traceback, exit 1."""
    monkeypatch.chdir(tmp_path)
    huge = lesde.Config(n_classes=2, n_per_class=10**9, replicas=10**5, steps=1)  # 3.6 PiB
    with pytest.raises(engine.InsufficientMemoryError, match="allocating its arrays"):
        engine.allocate(huge)
    monkeypatch.setattr(lesde.io.memory, "memory_limits", lambda proc="/proc": {})  # check passes
    sets = ["--set", "n_per_class=1000000000", "--set", "replicas=100000", "--set", "steps=1"]
    code, out, err = run_cli(capsys, "run", "--set", "n_classes=2", *sets, "--quiet")
    assert code == 2, out
    disk = "lesde: warning: --out run.npz: "  # the result would not fit on the disk either
    errors = "\n".join(line for line in err.splitlines() if not line.startswith(disk))
    assert_one_error_line(errors, "ran out of memory", "GiB")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ulimit -v and /proc")
def test_a_run_over_ulimit_v_is_refused_before_it_allocates(tmp_path):
    """Under `ulimit -v` the check read only MemAvailable: --dry-run said it fits and the
    run died with a NumPy MemoryError traceback (exit 1)."""
    env = child_env()
    env.pop("LESDE_DEBUG", None)
    probe = "import lesde.cli, lesde.sim.simulate; print(open('/proc/self/status').read())"
    status = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    size_kib = int(status.split("VmSize:")[1].split()[0])
    limit_kib = size_kib + 300_000  # ~300 MB to spare; the run needs 1.5 GiB
    run = "--set n_classes=10 --set n_per_class=2000000 --set dim=10 --set steps=1 --quiet"
    for extra in ("--dry-run", "--out big.npz"):
        proc = subprocess.run(
            ["bash", "-c", f'ulimit -v {limit_kib} && "$0" -m lesde run {run} {extra}',
             sys.executable],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 2, (extra, proc.returncode, proc.stderr[-2000:])
        line = proc.stderr.strip().splitlines()[-1]
        assert line.startswith("lesde: error: this run needs about 1.56 GiB"), proc.stderr
        assert "(left by ulimit -v)" in line and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "big.npz").exists()
