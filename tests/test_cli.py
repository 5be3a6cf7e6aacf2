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
from processes import child_env

import lesde
from lesde import _core

PKG_PARENT = str(Path(lesde.__file__).resolve().parents[1])
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
COMMANDS = ("demo", "run", "sweep", "plot", "bench", "resume", "validate", "info")
# Small and single-threaded: fast on a shared 2-core machine.
SMALL = ["--set", "n_per_class=30", "--set", "t_end=0.5", "--set", "threads=1"]


def _env() -> dict[str, str]:
    env = child_env()
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


# Options whose absence means "not done" (nothing is used in their place): no default to say.
OFF_UNLESS_GIVEN = {"--set", "--checkpoint", "--zarr", "--scheduler", "--cifar", "--out"}


def _every_parser():
    """(command, parser) for lesde, each subcommand at every depth, and the bench suite's."""
    import argparse

    from lesde.bench.cli import build_parser as bench_parser
    from lesde.cli import build_parser

    def walk(parser, name):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, subparser in action.choices.items():
                    yield from walk(subparser, f"{name} {sub}")

    yield from walk(build_parser(), "lesde")
    yield "lesde bench (the suite's options)", bench_parser()


def test_every_option_of_every_subcommand_says_its_default(tmp_path):
    """What an option is when it is not given shows in --help: "(default: X)" with the
    value for every option that has one (0 and 0.0 included), and words for the rest."""
    import argparse

    parsers = dict(_every_parser())
    assert {"lesde run", "lesde nn train", "lesde nn paper"} <= set(parsers), sorted(parsers)
    silent = []
    for name, parser in parsers.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            takes_value = action.option_strings and action.nargs != 0
            if not takes_value or action.required or action.help == argparse.SUPPRESS:
                continue
            if action.default is None and OFF_UNLESS_GIVEN & set(action.option_strings):
                continue
            text = " ".join(formatter._expand_help(action).split()) if action.help else ""
            shown = "default" in text
            if isinstance(action.default, (int, float, str)) and action.default is not False:
                shown = shown and str(action.default) in text
            if not shown:
                silent.append(f"{name} {action.option_strings[-1]}: {text!r}")
    assert not silent, "options whose --help hides the default:\n" + "\n".join(silent)
    train = lesde_cli("nn", "train", "--help", cwd=tmp_path).stdout
    for shown in ("(default: 0.0)", "(default: 0)", "(default: 10000)"):
        assert shown in " ".join(train.split()), f"{shown} missing from:\n{train}"


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
    from lesde.cli.info import OPTIONAL_PACKAGES

    modules = {dist: module for dist, module, _, _ in OPTIONAL_PACKAGES}
    for name, version in info["optional"].items():
        module = modules[name]  # None: a library without a Python module (mpich)
        if module is not None and importlib.util.find_spec(module) is None:
            assert version is None, (name, version)
    human = lesde_cli("info", cwd=tmp_path).stdout
    for name in info["optional"]:
        assert re.search(rf"^  {name} ", human, re.M), f"{name} missing from:\n{human}"
    cuda = next(line for line in human.splitlines() if line.startswith("CUDA"))
    assert ("not built" in cuda) != info["cuda_built"], cuda
    if info["cuda_built"]:
        assert "device" in cuda, cuda  # says whether a device is visible
    assert ("emulator built" in cuda) == info["cuda_emulator_built"], cuda


def _human_info(monkeypatch, capsys, build: dict) -> str:
    from lesde.cli import main

    monkeypatch.setattr(_core, "build_info", lambda: build)
    assert main(["info"]) == 0
    return capsys.readouterr().out


def test_info_shows_every_fact_of_the_build(monkeypatch, capsys):
    """Every entry of the core's build_info() shows in `lesde info`: each value is replaced
    by a marker that must appear, and each yes/no entry, flipped, changes the output. So
    the SIMD dispatch (AVX2 kernels chosen at load time on a baseline-compiled module) is
    shown next to the compile flags, and an entry added to the C++ later is not hidden."""
    real = dict(_core.build_info())
    assert {"simd", "simd_dispatch", "eigen_version", "openmp_version"} <= set(real), real
    marked = {}
    for n, (key, value) in enumerate(real.items()):
        if isinstance(value, bool):
            marked[key] = value
        elif isinstance(value, int):
            marked[key] = 987650 + n
        elif isinstance(value, list):
            marked[key] = [f"mark-{key}-a", f"mark-{key}-b"]
        else:
            marked[key] = f"mark-{key}"
    marked["openmp"] = True  # the OpenMP details show when there is OpenMP
    out = _human_info(monkeypatch, capsys, marked)
    hidden = []
    for key, value in marked.items():
        if isinstance(value, bool):
            flipped = _human_info(monkeypatch, capsys, {**marked, key: not value})
            if flipped == out:
                hidden.append(f"{key} (True and False print the same)")
        else:
            for part in value if isinstance(value, list) else [value]:
                if str(part) not in out:
                    hidden.append(f"{key} ({part!r} not shown)")
    assert not hidden, f"lesde info hides these entries of build_info(): {hidden}\n{out}"
    simd = next(line for line in out.splitlines() if line.startswith("simd"))
    assert "mark-simd-a" in simd and "mark-simd_dispatch" in simd, simd
    here = next(
        line
        for line in _human_info(monkeypatch, capsys, real).splitlines()
        if line.startswith("simd")
    )
    for flag in real["simd"]:
        assert flag in here, here
    if real["simd_dispatch"] != "none":  # e.g. "compiled for sse2; ... runs the avx2 kernels"
        assert f"runs the {real['simd_dispatch']} kernels" in here, here


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
    headline = lesde.sim.result.HEADLINE_METRICS[signal]
    rows = [line.split()[0] for line in lines[top + 3 : top + 3 + len(headline)]]
    assert rows == list(headline) and rows[0] == first, proc.stdout
    assert reading in " ".join(proc.stdout.split()), proc.stdout
    if signal == "linear":  # alpha > beta: the classes separate; the table says so first
        values = lines[top + 3].split()
        assert values[0] == "separable_ncc" and float(values[1]) == 1.0, proc.stdout
    again = ("run", *(a for s in sets for a in ("--set", s)), "--json", "--force")
    report = lesde_cli(*again, cwd=tmp_path)  # --force: run.npz holds the first run
    summary = json.loads(report.stdout)["summary"]
    assert list(summary)[: len(headline)] == list(headline), summary


def test_run_then_plot(tmp_path):
    """Without --out, the figures go to ./lesde-plots, not into the current folder itself."""
    assert lesde_cli("run", *SMALL, "--out", "r.npz", "--quiet", cwd=tmp_path).returncode == 0
    proc = lesde_cli("plot", "r.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lesde-plots", "r.npz"]
    for name in ("r-metric_over_time.png", "r-class_means_3d.png"):  # p = 3: both figures
        png = tmp_path / "lesde-plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_no_command_writes_its_folder_of_outputs_into_the_current_folder_itself():
    """`lesde plot` wrote its figures into the current folder by default; every command
    whose --out is a folder now defaults to a folder of its own (docs/cli.md)."""
    import argparse

    from lesde.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    folders = {}
    for name, parser in commands.choices.items():
        for action in parser._actions:
            if action.dest == "out" and action.metavar == "DIR":
                folders[name] = action.default
    assert {"demo", "sweep", "plot"} <= set(folders), folders
    for name, default in folders.items():
        assert default and Path(default).name not in ("", ".", ".."), (name, default)
        assert Path(default).name.startswith("lesde-"), (name, default)


def test_plot_of_a_missing_or_foreign_file_is_a_clean_error(tmp_path):
    assert "not found" in assert_clean_error(lesde_cli("plot", "nope.npz", cwd=tmp_path))
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    assert_clean_error(lesde_cli("plot", "junk.npz", cwd=tmp_path))


def test_plot_replaces_only_its_own_figures(tmp_path, capsys):
    """`lesde plot r.npz --out DIR` replaced any file named like its figures. Now a figure
    replaces only a figure lesde drew (so plotting again works), never the user's picture,
    a link, or the input itself (a hard link to it); all figures are checked first."""
    lesde.simulate(n_classes=3, n_per_class=10, t_end=0.2, progress=False).save(tmp_path / "r.npz")
    figs = tmp_path / "figs"
    code, out, err = in_process(capsys, "plot", "r.npz", "--out", "figs", cwd=tmp_path)
    assert code == 0 and out.count("wrote") == 2, err
    code, out, err = in_process(capsys, "plot", "r.npz", "--out", "figs", cwd=tmp_path)
    assert code == 0 and out.count("wrote") == 2, err  # its own figures: replaced
    theirs = figs / "r-class_means_3d.png"
    theirs.unlink()
    theirs.write_bytes(b"\x89PNG\r\n\x1a\n a picture of the user's")
    mine = (figs / "r-metric_over_time.png").read_bytes()
    code, out, err = in_process(capsys, "plot", "r.npz", "--out", "figs", cwd=tmp_path)
    assert "r-class_means_3d.png' exists and is not a figure lesde drew" in assert_one_error_line(
        code, out, err
    )
    assert theirs.read_bytes().endswith(b"user's") and out == ""
    assert (figs / "r-metric_over_time.png").read_bytes() == mine, "checked before drawing"
    theirs.unlink()
    os.link(tmp_path / "r.npz", theirs)
    code, out, err = in_process(capsys, "plot", "r.npz", "--out", "figs", cwd=tmp_path)
    assert "an input of this command" in assert_one_error_line(code, out, err)
    assert lesde.load(tmp_path / "r.npz").config.n_per_class == 10


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


@pytest.mark.parametrize("signal", ["cross_entropy", "linear"])
def test_sweep_prints_and_draws_the_signals_headline(signal, tmp_path, monkeypatch, capsys):
    """`lesde sweep` printed and drew separable_ncc whatever the signal, so a cross-entropy
    alpha x beta sweep looked as if its transition were reversed. It now shows the metrics
    `lesde run` and `lesde demo` lead with (lesde.sim.result.HEADLINE_METRICS), in their order,
    and phase_diagram.png has one panel per headline metric."""
    from lesde import plot
    from lesde.cli import main

    drawn = []
    save = plot.save
    monkeypatch.setattr(
        plot,
        "save",
        lambda fig, path: drawn.append([a.get_label() for a in fig.axes]) or save(fig, path),
    )
    (tmp_path / "g.toml").write_text(
        f'n_classes = 3\nn_per_class = 15\nsignal = "{signal}"\nt_end = 0.5\n'
        "record_every = 25\nthreads = 1\n\n[grid]\nalpha = [0.5, 2.0]\nbeta = [0.5, 2.0]\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "g.toml", "--out", "sw", "--workers", "1", "--quiet"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    headline = list(lesde.sim.result.HEADLINE_METRICS[signal])
    assert header[3:] == [f"{m}_mean" for m in headline], header  # alpha beta replicas_ok
    assert [[label for label in labels if not label.startswith("<")] for labels in drawn] == [
        headline
    ]
    assert main(["sweep", "g.toml", "--out", "sw", "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["headline"] == headline


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
    assert all(set(lesde.sim.result.HEADLINE_METRICS["linear"]) <= set(r) for r in grid), grid
    ce_up, ce_down = report["cross_entropy"]
    assert ce_up["alpha"] > ce_up["beta"] and ce_up["loss"] < ce_up["loss_t0"]
    assert ce_down["alpha"] < ce_down["beta"] and ce_down["loss"] > ce_down["loss_t0"]
    # alpha < beta: away from the labels (accuracy 0), yet the clouds separate (model.md 3)
    assert ce_down["accuracy"] < 0.05 and ce_down["separable_ncc"] >= 0.5, ce_down
    assert list(ce_up)[-6:] == list(lesde.sim.result.HEADLINE_METRICS["cross_entropy"]), ce_up
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


# ---------------------------------------------------------------------------- Ctrl-C, resume
# Marks that the run loop has started (the first chunk is done), so that a test's Ctrl-C
# reaches the run, not the imports.
STARTED_HOOK = """
import pathlib
import lesde.sim.engine as engine
_update = engine.Progress.update
def _update_and_mark(self, step):
    pathlib.Path("started").touch()
    _update(self, step)
engine.Progress.update = _update_and_mark
"""
RESUMABLE = [
    "--set",
    "n_per_class=20000",
    "--set",
    "steps=600",
    "--set",
    "record_every=50",
    "--set",
    "threads=1",
    "--set",
    "seed=4",
    "--quiet",
]


def test_ctrl_c_leaves_a_checkpoint_and_resume_saves_where_the_run_would_have(tmp_path):
    """The reported session: Ctrl-C in the first minute left no checkpoint, `lesde resume`
    said "no checkpoint file", it would have written run.npz, and a raw RuntimeWarning
    line came first. Now: one line with the command, a checkpoint at the next record step,
    and resume writes the run's own --out, checkpointing as often as the run did."""
    import signal

    code = f"{STARTED_HOOK}\nimport sys\nfrom lesde.cli import main\nsys.exit(main(sys.argv[1:]))"
    args = ["run", *RESUMABLE, "--checkpoint", "run.ckpt", "--checkpoint-every", "500"]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args, "--out", "mine.npz"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "started").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert "Traceback" not in err and "RuntimeWarning" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("lesde: interrupted at step ") and "mine.npz" in line, err
    assert line.endswith("with: lesde resume run.ckpt"), line
    from lesde.sim.checkpoint import read_checkpoint

    saved = read_checkpoint(tmp_path / "run.ckpt")
    assert 0 < saved.step < 500, "the Ctrl-C checkpoint, not a scheduled one"
    assert f"continue from step {saved.step} " in line

    resumed = lesde_cli("resume", "run.ckpt", "--quiet", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert not (tmp_path / "run.npz").exists(), "resume must not fall back to run.npz"
    assert read_checkpoint(tmp_path / "run.ckpt").every == 500  # the run's own setting
    whole = lesde_cli("run", *RESUMABLE, "--out", "whole.npz", cwd=tmp_path, timeout=300)
    assert whole.returncode == 0, whole.stderr
    a, b = lesde.load(tmp_path / "mine.npz"), lesde.load(tmp_path / "whole.npz")
    assert not a.interrupted and a.features.tobytes() == b.features.tobytes()
    for name in b.metrics:
        assert a.metrics[name].tobytes() == b.metrics[name].tobytes(), name


def _interrupted(folder: Path, args, presses) -> tuple[int, str, float]:
    """Start `lesde ARGS` in ``folder``, press Ctrl-C (SIGINT) after each delay of
    ``presses`` (the first counted from the moment a run is stepping); the exit status,
    stderr and the seconds from the last press to the exit."""
    import signal

    code = f"{STARTED_HOOK}\nimport sys\nfrom lesde.cli import main\nsys.exit(main(sys.argv[1:]))"
    (folder / "started").unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=folder,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (folder / "started").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, f"lesde {args[0]} did not start its runs"
        time.sleep(0.01)
    for delay in presses:
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
    pressed = time.monotonic()
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, time.monotonic() - pressed


def _sweep_until_interrupted(folder: Path, presses, extra=()) -> tuple[int, str, float]:
    """`lesde sweep grid.toml --workers 2` in ``folder``, interrupted (:func:`_interrupted`)."""
    args = ["sweep", "grid.toml", "--out", "out", "--workers", "2", "--quiet", *extra]
    return _interrupted(folder, args, presses)


def _kept_points(folder: Path, line: str) -> int:
    """The points the last line of an interrupted sweep says are kept, checked on disk:
    as many result files, each of a finished run, and no temporary file left."""
    match = re.match(r"lesde: interrupted: (\d+) of 6 points are kept in out; ", line)
    assert match, line
    files = sorted((folder / "out" / "points").iterdir())
    assert all(f.suffix == ".npz" for f in files), files
    for f in files:
        assert not lesde.load(f).interrupted
    assert len(files) == int(match.group(1)), (files, line)
    return len(files)


def test_sweep_ctrl_c_once_or_twice_stops_cleanly_and_says_how_to_go_on(tmp_path):
    """Double Ctrl-C on `lesde sweep --workers 2` aborted (SIGABRT, "terminate called
    without an active exception") or printed threading tracebacks: the first Ctrl-C left
    the worker threads running, the interpreter's exit joined them, the second Ctrl-C broke
    that join and Python finalized with threads still inside the engine. And the message
    was only `lesde: interrupted`. Now the first Ctrl-C lets the running points finish
    (kept), the second stops them after their current chunk, the threads are always joined,
    exit 130, and the last line says how many points are kept and the command that goes on.
    """
    import random
    import shlex

    (tmp_path / "grid.toml").write_text(
        'n_classes = 3\nn_per_class = 20000\nsignal = "linear"\nsigma = 0.5\ndt = 0.05\n'
        "t_end = 200.0\nrecord_every = 40\nreplicas = 2\nseed = 1\n\n"
        "[grid]\nalpha = [0.2, 0.4, 0.6, 0.8, 1.0, 1.2]\n"
    )
    rng = random.Random(13)
    for _ in range(3):  # two presses at seeded moments; points of about 30 s each
        presses = (rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.6))
        code, err, seconds = _sweep_until_interrupted(tmp_path, presses)
        assert code == 130, (presses, code, err)
        for bad in ("Traceback", "terminate called", "Exception ignored"):
            assert bad not in err, (presses, err)
        assert seconds < 15, f"the second Ctrl-C took {seconds:.1f} s to stop the sweep"
        assert _kept_points(tmp_path, err.strip().splitlines()[-1]) == 0  # none could finish

    # One press: the points running finish and are kept; the command shown goes on.
    code, err, _ = _sweep_until_interrupted(tmp_path, (0.0,), ["--set", "t_end=6"])
    assert code == 130 and "Traceback" not in err, err
    assert "lesde: warning: Ctrl-C: no new point starts; waiting for the" in err, err
    line = err.strip().splitlines()[-1]
    kept = _kept_points(tmp_path, line)
    assert kept >= 1, line
    command = line.split("run the same command again: ")[1]
    assert command == "lesde sweep grid.toml --set t_end=6 --out out --workers 2", line
    again = lesde_cli(*shlex.split(command)[1:], "--json", cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["points_reused"] == kept and report["points_run"] == 6 - kept


def test_demo_ctrl_c_twice_exits_130_and_says_how_to_run_it_again(tmp_path):
    """The demo's sweep had the same double Ctrl-C abort; and Ctrl-C during its
    cross-entropy runs was swallowed by simulate, so the demo went on as if nothing
    happened. Now any Ctrl-C ends it with exit 130 and the command that runs it again."""
    for presses in ((0.0, 0.1), (0.4,)):
        args = ["demo", "--quick", "--quiet", "--out", "d"]
        code, err, _ = _interrupted(tmp_path, args, presses)
        assert code == 130 and "Traceback" not in err and "terminate" not in err, err
        assert err.strip().splitlines()[-1] == (
            "lesde: interrupted; the demo stopped before its end; run it again: "
            "lesde demo --quick --out d"
        ), err


def test_resume_replaces_only_its_own_result(tmp_path, capsys):
    """A result of another run at --out is replaced only with --force; a file lesde did not
    write never is (--force used to replace it too)."""
    ran = lesde_cli("run", *SMALL, "--checkpoint", "c.ckpt", "--out", "r.npz", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (tmp_path / "r.npz").write_bytes(b"someone else's file")
    for force in ([], ["--force"]):
        code, out, err = in_process(capsys, "resume", "c.ckpt", *force, cwd=tmp_path)
        assert "is not a file lesde wrote" in assert_one_error_line(code, out, err), force
        assert (tmp_path / "r.npz").read_bytes() == b"someone else's file"
    (tmp_path / "r.npz").unlink()
    lesde.simulate(n_per_class=10, t_end=0.1, progress=False).save(tmp_path / "r.npz")
    code, out, err = in_process(capsys, "resume", "c.ckpt", cwd=tmp_path)
    err = assert_one_error_line(code, out, err)
    assert "not a result of this run" in err and "--force" in err
    forced = lesde_cli("resume", "c.ckpt", "--force", "--quiet", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert lesde.load(tmp_path / "r.npz").config.n_per_class == 30
    again = lesde_cli("resume", "c.ckpt", "--quiet", cwd=tmp_path)  # its own result now
    assert again.returncode == 0, again.stderr

    lesde.simulate(n_per_class=10, t_end=0.1, checkpoint=tmp_path / "lib.ckpt", progress=False)
    err = assert_clean_error(lesde_cli("resume", "lib.ckpt", cwd=tmp_path))
    assert "give --out" in err
    given = lesde_cli("resume", "lib.ckpt", "--out", "lib.npz", "--quiet", cwd=tmp_path)
    assert given.returncode == 0 and (tmp_path / "lib.npz").exists(), given.stderr


# ---------------------------------------------------------------------------- sizes
def test_dry_run_counts_records_and_refuses_what_does_not_fit(tmp_path):
    """steps = 2^31 - 1 recorded every step took 53 s and 16 GiB before saying anything.
    Counting is arithmetic; the dry run prints the estimate and exits 2 (here under a 4 GiB
    address-space limit, which building the record grid would exceed)."""
    huge = ["--set", "steps=2147483647", "--set", "record_every=1", "--dry-run"]
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))"
    start = time.perf_counter()
    proc = lesde_cli("run", *huge, cwd=tmp_path, pre=limit, timeout=60)
    assert time.perf_counter() - start < 30
    err = assert_clean_error(proc, code=2)
    assert "2147483648 records, about 560.00 GiB of state and records" in proc.stdout
    assert "record less often (record_every)" in err
    plan = json.loads(lesde_cli("run", *huge, "--json", cwd=tmp_path, pre=limit).stdout)
    assert plan["n_records"] == 2**31 and plan["fits_in_memory"] is False
    fits = lesde_cli("run", "--dry-run", "--json", cwd=tmp_path)
    assert fits.returncode == 0 and json.loads(fits.stdout)["fits_in_memory"] is True
    # The same refusal without --dry-run, before anything is allocated: exit 2 as well.
    sets = ["--set", "n_per_class=600000000", "--set", "dim=100", "--set", "signal=linear"]
    big = lesde_cli("run", *sets, cwd=tmp_path)
    err = assert_clean_error(big, code=2)
    assert "GiB" in err and err.count("\n") == 1, err


def in_process(capsys, *args: str, cwd: Path):
    """``lesde ARGS`` in this process (for refusals, which need no run: no start-up cost);
    returns (exit code, stdout, stderr)."""
    from lesde.cli import main

    old = Path.cwd()
    os.chdir(cwd)
    try:
        code = main(list(args))
    finally:
        os.chdir(old)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(code, out, err, expected_code: int = 1) -> str:
    assert code == expected_code, (code, out, err)
    assert err.startswith("lesde: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    "grid, expected",
    [
        ("alpha = {start = 0, stop = 1, num = 1e8}", "num must be in [1, 100000]"),
        (
            "alpha = {start = 0, stop = 1, num = 1000}\nbeta = {start = 0, stop = 1, num = 1000}",
            "the grid has 1000000 points (1000 alpha x 1000 beta)",
        ),
    ],
    ids=["one-huge-axis", "huge-product"],
)
def test_huge_grids_are_counted_and_refused(tmp_path, capsys, grid, expected):
    """`lesde validate` of a grid with num = 1e8 did not return."""
    (tmp_path / "g.toml").write_text(f"n_classes = 3\n[grid]\n{grid}\n")
    for command in ("validate", "sweep"):
        start = time.perf_counter()
        err = assert_one_error_line(*in_process(capsys, command, "g.toml", cwd=tmp_path))
        assert expected in err and time.perf_counter() - start < 10, err
    assert not (tmp_path / "lesde-sweep").exists()


# ---------------------------------------------------------------------------- odd input
def test_a_set_value_with_a_line_break_is_refused(tmp_path):
    """'alpha=1\\nbeta=5' set alpha and silently dropped beta."""
    err = assert_clean_error(lesde_cli("validate", "--set", "alpha=1\nbeta=5", cwd=tmp_path))
    assert "--set alpha" in err and "line break" in err


def test_deeply_nested_input_is_a_one_line_error(tmp_path, capsys):
    """A RecursionError traceback came out instead of the documented one-line error."""
    as_arg = "alpha=" + "[" * 5000 + "]" * 5000  # the reproducer, as a user types it
    err = assert_clean_error(lesde_cli("validate", "--set", as_arg, cwd=tmp_path))
    assert "--set alpha: the value is nested too deeply" in err
    for depth in (5_000, 100_000):  # 100,000 exceeds what one command-line argument holds
        nested = "[" * depth + "]" * depth
        err = assert_one_error_line(
            *in_process(capsys, "validate", "--set", f"alpha={nested}", cwd=tmp_path)
        )
        assert "nested too deeply" in err
        (tmp_path / "deep.toml").write_text(f"alpha = {nested}\n")
        err = assert_one_error_line(*in_process(capsys, "validate", "deep.toml", cwd=tmp_path))
        assert "deep.toml: invalid TOML: values nested too deeply" in err
        header = '{"kind": "lesde-result", "format_version": 1, "meta": ' + nested + "}"
        with open(tmp_path / "deep.npz", "wb") as f:
            np.savez(f, header=np.array(header))
        assert_one_error_line(*in_process(capsys, "plot", "deep.npz", cwd=tmp_path))
        with open(tmp_path / "deep.ckpt", "wb") as f:
            np.savez(f, header=np.array(header.replace("lesde-result", "lesde-checkpoint")))
        resume = ("resume", "deep.ckpt", "--out", "x.npz")
        assert_one_error_line(*in_process(capsys, *resume, cwd=tmp_path))


# ---------------------------------------------------------------------------- outputs
def _not_a_regular_file(folder: Path, kind: str) -> Path:
    from filesystems import device_node

    folder.mkdir(exist_ok=True)
    target = folder / f"target-{kind}"
    if kind == "symlink":
        (folder / "real.npz").write_bytes(b"the real file")
        target.symlink_to(folder / "real.npz")
    elif kind == "device":
        target = device_node(folder)
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
    return target


def test_an_output_that_is_not_a_regular_file_is_refused_before_the_run(tmp_path, capsys):
    """--out /dev/null or a symlink used to be replaced by a regular file after the run."""
    link = _not_a_regular_file(tmp_path, "symlink")  # the reproducer, as a user runs it
    proc = lesde_cli("run", *SMALL, "--out", str(link), cwd=tmp_path)
    assert "is a symbolic link, not a regular file" in assert_clean_error(proc)
    assert proc.stdout == "" and link.is_symlink()
    for kind in ("symlink", "device", "fifo", "folder"):
        for option in ("--out", "--checkpoint", "--zarr"):
            target = _not_a_regular_file(tmp_path / option.strip("-"), kind)
            if option == "--zarr" and kind == "folder":
                continue  # a Zarr store is a folder
            before = os.lstat(target)
            code, out, err = in_process(capsys, "run", *SMALL, option, str(target), cwd=tmp_path)
            assert_one_error_line(code, out, err)
            assert f"{option} '{target}' is a" in err, err
            assert out == "", "nothing may run"
            after = os.lstat(target)
            assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino), (kind, option)
    code, out, err = in_process(
        capsys, "run", *SMALL, "--out", "same.npz", "--checkpoint", "same.npz", cwd=tmp_path
    )
    assert "the same file" in assert_one_error_line(code, out, err)


def test_run_replaces_only_its_own_kind_of_file_and_never_its_inputs(tmp_path, capsys):
    """`lesde run cfg.toml --out cfg.toml` exited 0 and cfg.toml was a zip; any file at
    --out or --checkpoint was replaced. Now: an input is never an output (whatever the
    spelling: relative, through a linked folder, a hard link), a file lesde did not write
    is never replaced (--force or not), another kind of lesde file neither, and lesde's
    own result or checkpoint only with --force, which the message names."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text("n_per_class = 30\nt_end = 0.5\nthreads = 1\n")
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "linked").symlink_to(tmp_path)
    os.link(cfg, tmp_path / "hard.npz")
    ckpt = tmp_path / "old.ckpt"
    lesde.simulate(n_per_class=5, t_end=0.1, checkpoint=ckpt, progress=False)
    kept = {p: p.read_bytes() for p in (cfg, tmp_path / "notes.txt", ckpt)}

    def refused(*args: str) -> str:
        code, out, err = in_process(capsys, "run", *args, cwd=tmp_path)
        assert out == "", "nothing may run"
        return assert_one_error_line(code, out, err)

    for out in ("cfg.toml", "./cfg.toml", "linked/cfg.toml", "hard.npz"):
        for force in ([], ["--force"]):
            assert "an input of this command" in refused("cfg.toml", "--out", out, *force), out
        err = refused("cfg.toml", "--checkpoint", out)
        assert "an input of this command" in err, out
    err = refused("cfg.toml", "--out", "r.npz", "--checkpoint", "linked/r.npz")
    assert "are the same file" in err
    for option in ("--out", "--checkpoint"):
        for force in ([], ["--force"]):
            err = refused("cfg.toml", option, "notes.txt", *force)
            assert f"{option} 'notes.txt' exists and is not a file lesde wrote" in err
    err = refused("cfg.toml", "--out", "old.ckpt", "--force")  # a checkpoint is no result
    assert "'old.ckpt' is a checkpoint" in err
    err = refused("cfg.toml", "--checkpoint", "old.ckpt")
    assert "holds a lesde checkpoint already (step 10)" in err
    assert "continue it with `lesde resume old.ckpt`, or give --force" in err
    os.link(ckpt, tmp_path / "hard.ckpt")
    for out in ("old.ckpt", "linked/old.ckpt", "hard.ckpt"):  # resume: its checkpoint is input
        code, stdout, err = in_process(capsys, "resume", "old.ckpt", "--out", out, cwd=tmp_path)
        assert "an input of this command" in assert_one_error_line(code, stdout, err), out
    assert {p: p.read_bytes() for p in kept} == kept, "a refused run changed a file"
    locks = {p.name for p in tmp_path.glob(".*.lock")}
    assert locks == set(), f"lock files were left: {locks}"

    # lesde's own files: replaced with --force (the checkpoint starts over)
    code, out, err = in_process(
        capsys, "run", "cfg.toml", "--out", "r.npz", "--quiet", cwd=tmp_path
    )
    assert code == 0, err
    err = refused("cfg.toml", "--out", "r.npz", "--set", "seed=3")
    assert "'r.npz' holds a lesde result file already; give --force to replace it" in err
    assert lesde.load(tmp_path / "r.npz").config.seed == 0
    args = ["cfg.toml", "--out", "r.npz", "--checkpoint", "old.ckpt", "--set", "seed=3"]
    code, out, err = in_process(capsys, "run", *args, "--force", "--quiet", cwd=tmp_path)
    assert code == 0, err
    assert lesde.load(tmp_path / "r.npz").config.seed == 3
    assert ck_config(ckpt).seed == 3


def ck_config(path: Path):
    from lesde.sim.checkpoint import read_checkpoint

    return read_checkpoint(path).config


# A `lesde run` that holds its outputs (their locks) and waits: the engine never returns.
HOLDING_RUN = """
import sys, time
import lesde
def _wait(*args, **kwargs):
    print("held", flush=True)
    time.sleep(600)
sys.modules["lesde.sim.simulate"].run_engine = _wait
"""


def test_one_writer_per_checkpoint_store_and_out_and_the_lock_dies_with_it(tmp_path, capsys):
    """Two `lesde run` with one --checkpoint ran side by side, and the survivor's
    checkpoints replaced the other's. Now the second stops at once in one line naming the
    first (pid), for --checkpoint, --zarr and --out, from the command line and the library
    (simulate, resume); when the first is killed (SIGKILL) the lock goes with it."""
    import signal

    from lesde.io.storage import InUseError

    zarr = importlib.util.find_spec("zarr") is not None
    lesde.simulate(n_per_class=5, t_end=0.1, checkpoint=tmp_path / "c.ckpt", progress=False)
    outputs = ["--out", "r.npz", "--checkpoint", "c.ckpt", "--force"]
    outputs += ["--zarr", "z.zarr"] if zarr else []
    code = f"{HOLDING_RUN}\nfrom lesde.cli import main\nsys.exit(main(sys.argv[1:]))"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, "run", *SMALL, *outputs],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        others = {"--out": "o.npz", "--checkpoint": "o.ckpt", "--zarr": "o.zarr"}
        for option, mine in (("--checkpoint", "c.ckpt"), ("--zarr", "z.zarr"), ("--out", "r.npz")):
            if option == "--zarr" and not zarr:
                continue
            args = {**others, option: mine}
            argv = ["run", *SMALL, "--force"] + [a for kv in args.items() for a in kv]
            code_, out, err = in_process(capsys, *argv, cwd=tmp_path)
            err = assert_one_error_line(code_, out, err)
            assert f"'{mine}' is in use by another lesde run (pid {holder.pid} on" in err, err
        code_, out, err = in_process(capsys, "resume", "c.ckpt", "--out", "o.npz", cwd=tmp_path)
        assert f"pid {holder.pid}" in assert_one_error_line(code_, out, err)
        with pytest.raises(InUseError, match=f"checkpoint .*c.ckpt' is in use .*pid {holder.pid}"):
            lesde.resume(tmp_path / "c.ckpt", progress=False)
        with pytest.raises(InUseError, match=f"pid {holder.pid}"):
            lesde.simulate(
                n_per_class=5,
                t_end=0.1,
                checkpoint=tmp_path / "c.ckpt",
                overwrite=True,
                progress=False,
            )
        if zarr:
            with pytest.raises(InUseError, match=f"Zarr store .*z.zarr' is in use .*{holder.pid}"):
                lesde.simulate(
                    n_per_class=5,
                    t_end=0.1,
                    zarr_store=tmp_path / "z.zarr",
                    overwrite=True,
                    progress=False,
                )
    finally:
        holder.kill()
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    code_, out, err = in_process(capsys, "run", *SMALL, *outputs, "--quiet", cwd=tmp_path)
    assert code_ == 0, err
    assert lesde.resume(tmp_path / "c.ckpt", progress=False).ok


def test_an_unwritable_output_is_refused_before_the_run(tmp_path, capsys):
    """A read-only --out was found only after the whole run."""
    from filesystems import read_only_folder

    with read_only_folder(tmp_path) as folder:
        for args in (
            ("run", *SMALL, "--out", str(folder / "old.npz")),
            ("run", *SMALL, "--out", "r.npz", "--checkpoint", str(folder / "run.ckpt")),
            ("run", *SMALL, "--out", str(folder / "new" / "r.npz")),
        ):
            code, out, err = in_process(capsys, *args, cwd=tmp_path)
            assert "cannot be written" in assert_one_error_line(code, out, err), args
            assert out == "", "nothing may run"
        (tmp_path / "g.toml").write_text("n_per_class = 5\nt_end = 0.1\n[grid]\nalpha = [1.0]\n")
        sweep = ("sweep", "g.toml", "--out", str(folder / "sweep"))
        assert_one_error_line(*in_process(capsys, *sweep, cwd=tmp_path))
        assert (folder / "old.npz").read_bytes() == b"an older result"


# Makes every write of a result fail as on a full disk, inside numpy's writer (where the
# chained tracebacks came from); checkpoints are written as usual.
RESULT_DISK_FULL = """
import errno
import lesde.io.storage as storage
_write_npz = storage.write_npz
def _full_for_results(path, arrays, header):
    if header.get("kind") == "lesde-result":
        import numpy
        _savez = numpy.savez
        def savez(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")
        numpy.savez = savez
        try:
            return _write_npz(path, arrays, header)
        finally:
            numpy.savez = _savez
    return _write_npz(path, arrays, header)
storage.write_npz = _full_for_results
"""


def test_a_full_disk_at_the_end_is_one_line_and_keeps_everything(tmp_path):
    """Three chained tracebacks and no `lesde: error:` line. Now one line that says what
    was kept; the file already at --out is unchanged, and the checkpoint (which holds the
    finished run) saves the result elsewhere without running again."""
    _previous_result(tmp_path / "r.npz")
    before = (tmp_path / "r.npz").read_bytes()
    args = ["run", *SMALL, "--out", "r.npz", "--checkpoint", "run.ckpt", "--force"]
    proc = lesde_cli(*args, cwd=tmp_path, pre=RESULT_DISK_FULL)
    err = assert_clean_error(proc)
    assert err.count("\n") == 1, err
    assert "cannot write r.npz: No space left on device; no file was replaced" in err
    assert "holds the finished run: `lesde resume run.ckpt --out OTHER.npz` saves it" in err
    assert (tmp_path / "r.npz").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"
    saved = lesde_cli("resume", "run.ckpt", "--out", "other.npz", "--quiet", cwd=tmp_path)
    assert saved.returncode == 0 and lesde.load(tmp_path / "other.npz").ok, saved.stderr


def test_a_really_full_disk_is_one_line(tmp_path):
    """The same on a real 64 KiB file system (where this test may mount one)."""
    from filesystems import full_folder

    with full_folder(tmp_path) as folder:
        _previous_result(folder / "r.npz")
        before = (folder / "r.npz").read_bytes()
        args = ["run", *SMALL, "--set", "n_per_class=3000", "--out", str(folder / "r.npz")]
        proc = lesde_cli(*args, "--force", cwd=tmp_path)
        err = assert_clean_error(proc)
        assert "lesde: warning: --out" in err and "free on its file system" in err  # at once
        assert "No space left on device; no file was replaced" in err
        assert (folder / "r.npz").read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["r.npz"]


def _previous_result(path: Path) -> None:
    """A small result of an earlier run at ``path`` (what `--force` may replace)."""
    lesde.simulate(n_classes=2, n_per_class=2, steps=2, record_every=1, progress=False).save(path)


# ---------------------------------------------------------------------------- one sweep writer
HOLD_LOCK = """
import sys, time
from lesde.sweep import sweep_lock
with sweep_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_sweep_of_the_same_folder_is_refused_until_the_first_is_gone(tmp_path):
    """Two sweeps on one --out deleted each other's temporary files and overwrote each
    other's table.csv. The second now stops at once, naming the folder and the pid that
    holds it; the lock goes with its holder, even one killed with SIGKILL."""
    (tmp_path / "g.toml").write_text(
        "n_per_class = 10\nt_end = 0.1\nthreads = 1\n[grid]\nalpha = [1.0, 2.0]\n"
    )
    (tmp_path / "sw").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, "sw"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        err = assert_clean_error(lesde_cli("sweep", "g.toml", "--out", "sw", cwd=tmp_path))
        assert "'sw' is in use by another lesde sweep" in err and f"pid {holder.pid}" in err
        assert not (tmp_path / "sw" / "table.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    proc = lesde_cli("sweep", "g.toml", "--out", "sw", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "sw" / "table.csv", newline="") as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["ok", "ok"]
