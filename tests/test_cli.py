"""The ``lesde`` command line, driven as a user drives it: ``python -m lesde ...`` in a
subprocess, in a temporary folder.

- every subcommand has complete --help; info / validate / run (--set, --dry-run, --json)
- configuration errors exit 1 with one "lesde: error:" line and no traceback
- a numerical failure exits 2 and still saves the partial result
- run --out, then plot; a tiny sweep; the quick demo (its tables and figures)

The subprocesses import the same lesde as this test process (source tree or installed).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tomllib

import lesde
from lesde import _core

PKG_PARENT = str(Path(lesde.__file__).resolve().parents[1])
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
COMMANDS = ("demo", "run", "sweep", "plot", "bench", "resume", "validate", "info")
# Small and single-threaded: fast on a shared 2-core machine.
SMALL = ["--set", "n_per_class=30", "--set", "t_end=0.5", "--set", "threads=1"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PKG_PARENT, env.get("PYTHONPATH")]))
    env.pop("LESDE_DEBUG", None)
    return env


def lesde_cli(*args: str, cwd: Path, timeout: float = 120, pre: str | None = None):
    """Run ``python -m lesde ARGS`` (or, with ``pre``, that Python code first) in ``cwd``."""
    if pre is None:
        cmd = [sys.executable, "-m", "lesde", *args]
    else:
        code = f"{pre}\nimport sys\nfrom lesde.cli import main\nsys.exit(main(sys.argv[1:]))"
        cmd = [sys.executable, "-c", code, *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def assert_clean_error(proc, code: int = 1) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "lesde: error:" in proc.stderr, proc.stderr
    return proc.stderr


# ---------------------------------------------------------------------------- help, info
def test_help_lists_every_command_and_each_help_is_complete(tmp_path):
    top = lesde_cli("--help", cwd=tmp_path)
    assert top.returncode == 0
    for name in COMMANDS:
        assert name in top.stdout
    assert "Exit codes" in top.stdout
    for name in COMMANDS:
        proc = lesde_cli(name, "--help", cwd=tmp_path)
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stdout.startswith(f"usage: lesde {name}"), proc.stdout
    run_help = lesde_cli("run", "--help", cwd=tmp_path).stdout
    assert "(default: run.npz)" in run_help  # defaults are shown
    for field in ("n_classes", "label_noise", "record_samples"):  # every Config field listed
        assert field in run_help


def test_no_command_is_a_usage_error(tmp_path):
    proc = lesde_cli(cwd=tmp_path)
    assert_clean_error(proc)
    proc = lesde_cli("run", "--no-such-option", cwd=tmp_path)
    assert_clean_error(proc)


def test_info_json(tmp_path):
    proc = lesde_cli("info", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["version"] == lesde.__version__
    assert info["random_stream_version"] == lesde.build_info()["random_stream_version"]
    assert info["threads"] >= 1
    assert info["cuda_built"] is bool(lesde.build_info().get("cuda_built", False))
    assert info["cuda_emulator_built"] is bool(lesde.build_info().get("cuda_emulator", False))
    assert info["cuda_devices_visible"] == _core.cuda_device_count()
    if not info["cuda_built"]:
        assert info["cuda_devices_visible"] == 0 and info["cuda_device"] is None
    assert "openmp" in info["build_info"]
    human = lesde_cli("info", cwd=tmp_path)
    assert human.returncode == 0 and "random-stream version" in human.stdout


def _optional_requirements() -> set[str]:
    """Every package an extra of pyproject.toml names, but the test and dev tools."""
    with open(PYPROJECT, "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    names = set()
    for extra, requirements in extras.items():
        if extra in ("test", "dev"):
            continue
        for requirement in requirements:
            names.add(re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower())
    return names


@pytest.mark.skipif(not PYPROJECT.is_file(), reason="needs the source tree's pyproject.toml")
def test_info_reports_every_optional_package_and_the_cuda_devices(tmp_path):
    proc = lesde_cli("info", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    missing = _optional_requirements() - set(info["optional"])
    assert not missing, f"lesde info does not report these packages of the extras: {missing}"
    assert {"pyarrow", "jax", "torch"} <= set(info["optional"])
    for name, version in info["optional"].items():
        installed = importlib.util.find_spec(name) is not None or name == "mpich"
        if not installed:
            assert version is None, (name, version)
    human = lesde_cli("info", cwd=tmp_path).stdout
    for name in info["optional"]:
        assert re.search(rf"^  {name} ", human, re.M), f"{name} missing from:\n{human}"
    cuda = next(line for line in human.splitlines() if line.startswith("CUDA"))
    assert ("not built" in cuda) != info["cuda_built"], cuda
    if info["cuda_built"]:
        assert "device" in cuda, cuda  # says whether a device is visible
    assert ("emulator built" in cuda) == info["cuda_emulator_built"], cuda


def test_info_names_a_visible_gpu(monkeypatch, capsys):
    """The GPU branch of `lesde info`, here without a GPU: the core's answers are stubbed
    with those of a CUDA build that sees one device."""
    from lesde.cli import main

    built = {**_core.build_info(), "cuda_built": True}
    device = {"name": "NVIDIA H200", "compute_capability": "9.0", "total_memory": 141 * 2**30}
    monkeypatch.setattr(_core, "build_info", lambda: built)
    monkeypatch.setattr(_core, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(_core, "cuda_device_info", lambda: device, raising=False)  # CUDA only
    assert main(["info"]) == 0
    cuda = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("CUDA"))
    assert "built, 1 device(s) visible: NVIDIA H200 (sm 9.0, 141 GiB)" in cuda, cuda
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cuda_devices_visible"] == 1 and info["cuda_device"].startswith("NVIDIA H200")


@pytest.mark.parametrize("command", [["info"], ["info", "--json"], ["validate"], ["--help"]])
def test_output_into_a_closed_pipe_exits_0_quietly(tmp_path, command):
    """``lesde info | head -1``: the reader leaves early; lesde must not fail or complain."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before lesde writes a byte
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "lesde", *command],
            cwd=tmp_path,
            env=_env(),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stderr == "", proc.stderr


# ---------------------------------------------------------------------------- validate / --set
def test_validate_precedence_flag_over_file_over_default(tmp_path):
    (tmp_path / "cfg.toml").write_text('n_classes = 4\nalpha = 0.7\nsignal = "projected"\n')
    proc = lesde_cli("validate", "cfg.toml", "--set", "alpha=0.9", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)["config"]
    assert cfg["alpha"] == 0.9  # flag beats file
    assert cfg["signal"] == "projected" and cfg["n_classes"] == 4  # file beats default
    assert cfg["beta"] == 0.2 and cfg["class_sizes"] == [1000] * 4  # defaults resolved

    text = lesde_cli("validate", "cfg.toml", "--set", "alpha=0.9", cwd=tmp_path)
    assert text.returncode == 0
    resolved = tomllib.loads(text.stdout)  # the TOML output reads back as the same config
    assert lesde.Config.from_dict(resolved).to_dict(resolved=True) == cfg


def test_set_value_forms(tmp_path):
    proc = lesde_cli(
        "validate",
        "--json",
        "--set",
        "signal=linear",  # bare string
        "--set",
        'dtype="float32"',  # TOML string
        "--set",
        "class_sizes=[10,20,30]",  # list
        "--set",
        'alpha={kind="power_law",a0=1,tau=2,gamma=0.5}',  # schedule
        "--set",
        "alpha.tau=3",  # one field of a table
        "--set",
        "beta=0.25",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads(proc.stdout)["config"]
    assert cfg["signal"] == "linear" and cfg["dtype"] == "float32"
    assert cfg["class_sizes"] == [10, 20, 30]
    assert cfg["alpha"] == {"kind": "power_law", "a0": 1.0, "tau": 3.0, "gamma": 0.5}
    assert cfg["beta"] == 0.25


def test_run_dry_run_prints_plan_and_runs_nothing(tmp_path):
    proc = lesde_cli(
        "run", "--set", "t_end=2", "--set", "dt=0.1", "--dry-run", "--json", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["dry_run"] is True and plan["n_steps"] == 20 and plan["n_samples"] == 3000
    assert not (tmp_path / "run.npz").exists()
    human = lesde_cli("run", "--dry-run", cwd=tmp_path)
    assert human.returncode == 0 and "dry run" in human.stdout
    assert not (tmp_path / "run.npz").exists()


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "content, args, expected",
    [
        ("n_clases = 3\n", (), "did you mean 'n_classes'"),
        ('alpha = "big"\n', (), "alpha"),
        ("alpha = \n", (), "invalid TOML"),
        ("signal = linear\n", (), 'strings need quotes: signal = "linear"'),
        (None, (), "not found"),
        ("n_classes = 3\n[grid]\nalpha = [1.0]\n", (), "lesde sweep"),
        ("", ("--set", "sigma=-1"), "sigma must be >= 0"),
        ("", ("--set", "signal=linaer"), "did you mean 'linear'"),
        ("", ("--set", "nokey"), "key=value"),
    ],
    ids=[
        "unknown-key",
        "bad-value",
        "invalid-toml",
        "unquoted-string",
        "missing-file",
        "grid-in-run",
        "bad-set-value",
        "bad-set-choice",
        "bad-set-syntax",
    ],
)
def test_config_errors_exit_1_without_traceback(tmp_path, content, args, expected):
    if content is not None:
        (tmp_path / "cfg.toml").write_text(content)
    for command in ("run", "validate"):
        if command == "validate" and expected == "lesde sweep":
            continue  # validate accepts (and checks) a [grid] table
        proc = lesde_cli(command, "cfg.toml", *args, "--json", cwd=tmp_path)
        err = assert_clean_error(proc)
        assert expected in err, err
        assert proc.stdout == ""
    assert not (tmp_path / "run.npz").exists()


def test_a_bad_set_value_is_blamed_on_set_not_on_the_file(tmp_path):
    (tmp_path / "cfg.toml").write_text("n_classes = 3\nn_per_class = 10\n")
    err = assert_clean_error(
        lesde_cli("run", "cfg.toml", "--set", "record_samples=100", cwd=tmp_path)
    )
    assert "--set record_samples: record_samples" in err and "cfg.toml" not in err, err
    err = assert_clean_error(lesde_cli("validate", "--set", "alpah=1", cwd=tmp_path))
    assert "--set alpah: unknown config field 'alpah'; did you mean 'alpha'?" in err, err
    (tmp_path / "bad.toml").write_text("n_classes = 3\nsigma = -1.0\n")
    err = assert_clean_error(lesde_cli("run", "bad.toml", "--set", "alpha=2", cwd=tmp_path))
    assert "bad.toml: sigma" in err, err  # the file's own mistake is still the file's


def test_numerical_failure_exits_2_and_saves_partial_result(tmp_path):
    proc = lesde_cli(
        "run",
        "--set",
        "signal=linear",
        "--set",
        "alpha=50",
        "--set",
        "t_end=50",
        "--set",
        "n_per_class=20",
        "--set",
        "threads=1",
        "--quiet",
        "--out",
        "fail.npz",
        "--json",
        cwd=tmp_path,
    )
    err = assert_clean_error(proc, code=2)
    assert "non-finite" in err and "fail.npz" in err
    report = json.loads(proc.stdout)
    assert report["ok"] is False and report["status"] == ["nonfinite"]
    res = lesde.load(tmp_path / "fail.npz")
    assert list(res.status) == ["nonfinite"]
    assert 0 < res.steps_done < res.config.n_steps


def test_run_killed_then_resumed_equals_uninterrupted_run(tmp_path):
    """lesde run --checkpoint, SIGKILL mid-run, lesde resume: the same result file."""
    import signal
    import time

    sets = [
        "--set",
        "n_per_class=20000",
        "--set",
        "steps=1500",
        "--set",
        "record_every=50",
        "--set",
        "threads=1",
        "--set",
        "seed=4",
        "--quiet",
    ]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lesde",
            "run",
            *sets,
            "--checkpoint",
            "run.ckpt",
            "--checkpoint-every",
            "50",
            "--out",
            "killed.npz",
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "run.ckpt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    resumed = lesde_cli(
        "resume", "run.ckpt", "--out", "resumed.npz", "--quiet", cwd=tmp_path, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed run.ckpt from step" in resumed.stdout
    whole = lesde_cli("run", *sets, "--out", "whole.npz", cwd=tmp_path, timeout=300)
    assert whole.returncode == 0, whole.stderr
    a, b = lesde.load(tmp_path / "resumed.npz"), lesde.load(tmp_path / "whole.npz")
    np.testing.assert_array_equal(a.features, b.features)
    for name in b.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name], err_msg=name)


def test_resume_refuses_missing_or_damaged_checkpoints(tmp_path):
    err = assert_clean_error(lesde_cli("resume", "x.ckpt", cwd=tmp_path))
    assert "x.ckpt" in err
    (tmp_path / "bad.ckpt").write_bytes(b"PK\x03\x04 not really a zip")
    assert_clean_error(lesde_cli("resume", "bad.ckpt", cwd=tmp_path))


def test_bench_is_the_packaged_suite(tmp_path):
    """lesde bench runs lesde.bench (part of the package, not a source checkout's script)."""
    for args in (["bench", "--help"], ["bench", "--", "--help"]):
        proc = lesde_cli(*args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("usage: lesde bench") and "--smoke" in proc.stdout
    assert "--bogus" in assert_clean_error(lesde_cli("bench", "--bogus", cwd=tmp_path))


# ---------------------------------------------------------------------------- run, plot, sweep
def test_run_saves_result_and_json_summary_matches_file(tmp_path):
    proc = lesde_cli(
        "run",
        *SMALL,
        "--set",
        "replicas=2",
        "--set",
        "signal=linear",
        "--out",
        "out/r.npz",
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    res = lesde.load(tmp_path / "out" / "r.npz")
    assert report["ok"] is True and report["out"].endswith("r.npz")
    assert res.config.signal == "linear" and res.config.replicas == 2
    assert report["summary"]["loss"] == pytest.approx(res.summary()["loss"])
    human = lesde_cli("run", *SMALL, cwd=tmp_path)  # default output: run.npz in the cwd
    assert human.returncode == 0, human.stderr
    assert "ncc_accuracy" in human.stdout and "wrote run.npz" in human.stdout
    assert (tmp_path / "run.npz").exists()


@pytest.mark.parametrize(
    "signal, alpha, beta, first, reading",
    [
        ("linear", 2.0, 0.5, "separable_ncc", "separates the classes iff alpha > beta"),
        ("projected", 2.0, 0.5, "separable_ncc", "on both sides of alpha = beta"),
        ("cross_entropy", 0.5, 2.0, "loss", "pushes each class away from its label"),
    ],
)
def test_run_summary_leads_with_what_the_signal_drives(
    tmp_path, signal, alpha, beta, first, reading
):
    """README's first example (linear, alpha = 2 > beta = 0.5) printed loss 190.6 and accuracy
    0.33 on top, which reads as "does not learn": the summary must lead with separability
    for linear and projected runs, and with loss and accuracy for cross-entropy."""
    sets = [f"signal={signal}", f"alpha={alpha}", f"beta={beta}", "t_end=20", "n_per_class=200"]
    proc = lesde_cli("run", *(a for s in sets for a in ("--set", s)), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    top = lines.index(next(line for line in lines if line.startswith("what the")))
    headline = lesde.result.HEADLINE_METRICS[signal]
    rows = [line.split()[0] for line in lines[top + 3 : top + 3 + len(headline)]]
    assert rows == list(headline) and rows[0] == first, proc.stdout
    assert reading in " ".join(proc.stdout.split()), proc.stdout
    if signal == "linear":  # alpha > beta: the classes separate; the table says so first
        values = lines[top + 3].split()
        assert values[0] == "separable_ncc" and float(values[1]) == 1.0, proc.stdout
    report = lesde_cli("run", *(a for s in sets for a in ("--set", s)), "--json", cwd=tmp_path)
    summary = json.loads(report.stdout)["summary"]
    assert list(summary)[: len(headline)] == list(headline), summary


def test_run_then_plot(tmp_path):
    assert lesde_cli("run", *SMALL, "--out", "r.npz", "--quiet", cwd=tmp_path).returncode == 0
    proc = lesde_cli("plot", "r.npz", "--out", "figs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("r-metric_over_time.png", "r-class_means_3d.png"):  # p = 3: both figures
        png = tmp_path / "figs" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_plot_of_a_missing_or_foreign_file_is_a_clean_error(tmp_path):
    assert "not found" in assert_clean_error(lesde_cli("plot", "nope.npz", cwd=tmp_path))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    assert_clean_error(lesde_cli("plot", "junk.npz", cwd=tmp_path))


def test_sweep_tiny_grid(tmp_path):
    (tmp_path / "sweep.toml").write_text(
        'n_classes = 3\nn_per_class = 20\nsignal = "linear"\nt_end = 0.5\n'
        "record_every = 25\n\n[grid]\nalpha = [0.5, 2.0]\n"
        "beta = {start = 0.5, stop = 1.0, num = 2}\n"
    )
    proc = lesde_cli(
        "sweep",
        "sweep.toml",
        "--out",
        "sw",
        "--replicas",
        "2",
        "--workers",
        "1",
        "--quiet",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "separable_ncc_mean" in proc.stdout
    with open(tmp_path / "sw" / "table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2  # points x replicas
    assert {(float(r["alpha"]), float(r["beta"])) for r in rows} == {
        (0.5, 0.5),
        (0.5, 1.0),
        (2.0, 0.5),
        (2.0, 1.0),
    }
    assert all(r["status"] == "ok" for r in rows)
    with open(tmp_path / "sw" / "summary.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4
    if importlib.util.find_spec("pyarrow") is not None:
        assert (tmp_path / "sw" / "table.parquet").exists()

    (tmp_path / "nogrid.toml").write_text("n_classes = 3\n")
    assert "[grid]" in assert_clean_error(lesde_cli("sweep", "nogrid.toml", cwd=tmp_path))


# ---------------------------------------------------------------------------- demo
def test_demo_quick_shows_the_phase_transition_and_writes_figures(tmp_path):
    start = time.perf_counter()
    proc = lesde_cli("demo", "--quick", "--out", "d", "--json", "--quiet", cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 60, f"demo --quick took {elapsed:.1f} s"
    report = json.loads(proc.stdout)
    grid = report["phase_diagram"]
    above = [r["separable_ncc"] for r in grid if r["alpha"] > r["beta"]]
    on_or_below = [r["separable_ncc"] for r in grid if r["alpha"] <= r["beta"]]
    # Fixed seeds: the boundary is the diagonal (smeared by the finite horizon).
    assert min(on_or_below) == 0.0 and max(on_or_below) <= 0.1, grid
    assert sum(above) / len(above) >= 0.5, grid
    assert all(set(lesde.result.HEADLINE_METRICS["linear"]) <= set(r) for r in grid), grid
    ce_up, ce_down = report["cross_entropy"]
    assert ce_up["alpha"] > ce_up["beta"] and ce_up["loss"] < ce_up["loss_t0"]
    assert ce_down["alpha"] < ce_down["beta"] and ce_down["loss"] > ce_down["loss_t0"]
    # alpha < beta: away from the labels (accuracy 0), yet the clouds separate (model.md 3)
    assert ce_down["accuracy"] < 0.05 and ce_down["separable_ncc"] >= 0.5, ce_down
    assert list(ce_up)[-6:] == list(lesde.result.HEADLINE_METRICS["cross_entropy"]), ce_up
    # pandas and matplotlib are core dependencies: the table and both figures always come.
    assert {Path(f).name for f in report["figures"]} == {
        "phase_diagram.png",
        "metric_over_time.png",
    }
    for f in report["figures"]:
        assert (tmp_path / f).read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "d" / "phase_diagram.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 3 * 3 * 10  # points x replicas


def test_demo_with_a_broken_matplotlib_fails_at_once(tmp_path):
    """matplotlib is a core dependency, so the demo has no figure-less mode: a broken
    install is a clean error (exit 1, one line naming matplotlib) before any simulation."""
    proc = lesde_cli(
        "demo",
        "--quick",
        "--out",
        "d",
        cwd=tmp_path,
        pre="import sys; sys.modules['matplotlib'] = None  # import matplotlib now fails",
    )
    assert "matplotlib" in assert_clean_error(proc)
    assert proc.stdout == ""
    assert not (tmp_path / "d").exists(), "nothing is run or written"
