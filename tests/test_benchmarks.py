"""Benchmarks: the hot paths under pytest-benchmark, and the benchmark suite ``lesde bench``.

The pytest-benchmark functions run once each in CI as smoke tests (``--benchmark-disable``
in pyproject); nothing here asserts a time. For numbers: ``pytest tests/test_benchmarks.py
--benchmark-enable``, or ``lesde bench --quick`` (about 2 minutes: never run here).

The suite (lesde.bench) is part of the installed package: ``lesde bench --smoke`` runs
from a copy of the package alone, every backend is checked against the float64 reference
before it is timed (a wrong one is reported, not timed), rows carry their speed-up over
the NumPy baseline of the same run, and missing PyTorch / JAX are reported unavailable.
Each baseline's agreement with the reference on every dtype and thread count is in
bench/test_baselines.py.
"""

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from processes import child_env

import lesde
import lesde.metrics
from lesde import _core
from lesde.sim.engine import allocate, engine_config


def _engine(cfg):
    """An initialised engine over freshly allocated arrays (what simulate does)."""
    cls = _core.Simulation64 if cfg.dtype == "float64" else _core.Simulation32
    sim = cls(engine_config(cfg), **allocate(cfg))
    sim.initialize()
    return sim


@pytest.mark.parametrize("signal", ["cross_entropy", "linear"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sde_step(benchmark, signal, dtype):
    cfg = lesde.Config(
        n_classes=10,
        n_per_class=2000,
        signal=signal,
        dtype=dtype,
        alpha=0.1,
        beta=0.05,
        steps=10**6,
        record_every=10**6,
    )
    sim = _engine(cfg)
    benchmark(lambda: sim.advance(sim.step + 1))
    assert sim.step >= 1


def test_sgd_steps_cost_is_independent_of_n(benchmark):
    cfg = lesde.Config(
        n_classes=10,
        n_per_class=100_000,
        process="sgd",
        batch_size=8,
        steps=10**7,
        record_every=10**7,
    )
    sim = _engine(cfg)
    benchmark(lambda: sim.advance(sim.step + 1000))
    assert sim.step >= 1000


def test_metrics_summary(benchmark):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 10))
    y = np.repeat(np.arange(10), 2000)
    out = benchmark(lambda: lesde.metrics.summary(X, y))
    assert np.isfinite(out["nc1"])


# ----------------------------------------------------------------------------- lesde bench
def _package_copy(folder: Path) -> Path:
    """A copy of the lesde package alone (what an installation holds) under ``folder``, with
    the libraries a repaired wheel keeps beside it (auditwheel's lesde.libs)."""
    source = Path(lesde.__file__).resolve().parent
    shutil.copytree(source, folder / "lesde", ignore=shutil.ignore_patterns("__pycache__"))
    if (source.parent / "lesde.libs").is_dir():
        shutil.copytree(source.parent / "lesde.libs", folder / "lesde.libs")
    return folder


def test_bench_smoke_runs_from_the_installed_package(tmp_path):
    """`lesde bench` failed after `pip install .` ("not part of this installation"): the
    suite lived in bench/ of the source tree. From a copy of the package, in a folder
    outside any checkout, --smoke must time every backend and write its JSON."""
    site = _package_copy(tmp_path / "site")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lesde", "bench", "--smoke", "--out", "bench.json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert seconds < 60, f"--smoke took {seconds:.0f} s"
    doc = json.loads((work / "bench.json").read_text())
    rows = {row["backend"]: row for row in doc["rows"]}
    assert set(rows) == {"lesde", "numpy", "numpy_mt", "torch", "jax"}, rows
    for name in ("torch", "jax"):
        installed = importlib.util.find_spec(name) is not None
        assert rows[name]["status"] == ("ok" if installed else "unavailable"), rows[name]
    for row in rows.values():
        if row["status"] != "ok":
            continue
        assert row["check_error"] < row["check_tolerance"], row  # verified, then timed
        assert row["seconds_per_step"] > 0 and math.isfinite(row["speedup_vs_numpy"]), row
    assert rows["numpy"]["speedup_vs_numpy"] == 1.0
    assert doc["bandwidth"]["results"]["1"]["copy_GBps"] > 0
    assert "x numpy" in proc.stdout and "lesde against the baselines" in proc.stdout
    assert "Simulation64" in rows["lesde"]["notes"], rows["lesde"]


def test_missing_torch_and_jax_are_reported_unavailable(monkeypatch):
    from lesde.bench import baselines, harness

    real_find_spec = importlib.util.find_spec

    def without_torch_and_jax(name, *args):
        return None if name in ("torch", "jax") else real_find_spec(name, *args)

    monkeypatch.setattr(baselines.importlib.util, "find_spec", without_torch_and_jax)
    rows = harness.run_baselines(
        [(500, 3, 3)],
        backends=("numpy", "torch", "jax"),
        dtypes=("float64",),
        n_steps=1,
        repeats=1,
        subprocess_isolation=False,
    )
    assert [r["status"] for r in rows] == ["ok", "unavailable", "unavailable"], rows
    for row in rows[1:]:
        assert "is not installed (pip install 'lesde[bench]')" in row["notes"], row
        assert math.isnan(row["speedup_vs_numpy"])


def test_a_backend_that_computes_something_else_is_reported_not_timed(monkeypatch, capsys):
    from lesde.bench import baselines, cli

    def transposed_impact(self):  # the classic mistake: E[k', k] instead of E[k, k']
        self.E = self.E.T.copy()
        correct_step(self)
        self.E = self.E.T.copy()

    correct_step = baselines.NumpyStepper.step
    monkeypatch.setattr(baselines.NumpyStepper, "step", transposed_impact)
    code = cli.main(["--smoke", "--backends", "numpy", "lesde", "--no-bandwidth"])
    out, err = capsys.readouterr()
    assert code == 1, out
    assert "numpy float64 thr=1: wrong: differs from the float64 reference" in err, err
    assert "speed-up vs numpy" not in out  # no wrong numbers to compare lesde with


def _run_bench_script(name, *args):
    """A bench/ script run as a user would, at a size that takes seconds."""
    script = Path(__file__).resolve().parent.parent / "bench" / name
    done = subprocess.run(
        [sys.executable, str(script), *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"bench/{name} failed:\n{done.stderr[-2000:]}"
    return done.stdout


def test_noise_bench_runs_and_reports_every_noise(tmp_path):
    out = _run_bench_script(
        "noise_bench.py",
        "--N",
        "2e4",
        "--repeats",
        "1",
        "--steps",
        "1",
        "--out",
        str(tmp_path / "noise.json"),
    )
    rows = json.loads((tmp_path / "noise.json").read_text())["rows"]
    assert {(r["signal"], r["noise"]) for r in rows} == {
        (s, n) for s in ("cross_entropy", "linear") for n in ("gaussian", "two_point", "sigma0")
    }
    assert all(r["ms"] > 0 and r["x_numpy"] > 0 for r in rows), out


def test_weak_order_study_runs(tmp_path):
    out = _run_bench_script(
        "weak_order.py",
        "--samples",
        "3000",
        "--dts",
        "0.25",
        "0.125",
        "--reference-dt",
        "0.0625",
        "--out",
        str(tmp_path / "weak.json"),
    )
    assert out.count("slope") == 6, out


def test_compare_builds_runs_a_build_against_itself():
    from pathlib import Path

    import lesde

    parent = str(Path(lesde.__file__).resolve().parent.parent)
    out = _run_bench_script(
        "compare_builds.py", parent, parent, "--rounds", "1", "--cases", "small"
    )
    assert "ratio of medians" in out, out


def test_run_bench_from_a_checkout_without_a_built_core_uses_the_installed_package(tmp_path):
    """Found by CI on a fresh clone: the checkout's python/lesde has the stub _core.pyi but no
    extension, and bench/run_bench.py took the stub for a built core, put the source tree
    first on sys.path and failed to import lesde."""
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "bench").mkdir()
    shutil.copy(root / "bench" / "run_bench.py", tmp_path / "bench" / "run_bench.py")
    source = tmp_path / "python" / "lesde"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("raise ImportError('the unbuilt checkout was imported')\n")
    (source / "_core.pyi").write_text("")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(lesde.__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, str(tmp_path / "bench" / "run_bench.py"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, f"run_bench.py --help failed:\n{done.stderr[-2000:]}"
    assert "usage" in done.stdout.lower()


def test_records_overhead_record_step_runs():
    out = _run_bench_script(
        "records_overhead.py",
        "--record-step",
        "--steps",
        "2",
        "--n-per-class",
        "200",
        "--threads",
        "1",
    )
    assert "record step" in out and "ratio" in out, out
