"""The ``lesde`` command line: demo, run, sweep, plot, validate, info, bench, resume.

Every subcommand is a small function ``cmd_<name>(args) -> int`` over the Python API; this
module only parses arguments, merges configuration sources and formats output.

Conventions (docs/cli.md):

- configuration precedence: ``--set key=value`` > the TOML file > the Config defaults;
  ``--set`` values are parsed as TOML values (``alpha=0.5``, ``class_sizes=[10,20]``,
  ``alpha={kind="power_law",a0=1,tau=2,gamma=0.5}``), falling back to a bare string
  (``signal=linear``); strings are never evaluated;
- ``--json`` prints one JSON document on stdout and nothing else there (NaN -> null);
- ``--quiet`` turns progress bars off;
- exit codes: 0 ok, 1 usage or configuration error (one line on stderr, no traceback),
  2 numerical failure (a replica became NaN/Inf; the partial result is still saved),
  130 interrupted (Ctrl-C; the partial result is saved).

Examples
--------
>>> main(["validate", "--set", "n_classes=2", "--set", "signal=linear", "--json"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["main", "build_parser", "parse_set", "load_config"]

PROG = "lesde"
EXIT_OK, EXIT_USAGE, EXIT_NUMERIC, EXIT_INTERRUPTED = 0, 1, 2, 130
PLOT_HINT = "pip install 'lesde[plot]'"
SWEEP_HINT = "pip install 'lesde[sweep]'"
DISTRIBUTED_HINT = "pip install 'lesde[distributed]'"
ZARR_HINT = "pip install 'lesde[zarr]'"


class UsageError(Exception):
    """A mistake in the command line or the input files: exit 1 with a one-line message."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit with 1 (2 is kept for numerical failures)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{PROG}: error: {message}\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults; wrap prose paragraphs, keep indented blocks (examples) as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False):  # "(default: None)" says nothing
            return action.help or ""
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for para in text.split("\n\n"):
            lines = para.splitlines()
            if any(line.startswith("  ") for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(
                    textwrap.fill(
                        " ".join(para.split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                    )
                )
        return "\n\n".join(paragraphs)


# ---------------------------------------------------------------------------- output helpers
def _plain(value: Any) -> Any:
    """JSON-friendly builtins; NaN and infinities become None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _print_json(data: Any) -> None:
    print(json.dumps(_plain(data), indent=2, allow_nan=False))


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain fixed-width table (first column left-aligned, the others right-aligned)."""
    cells = [list(header)] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    lines = []
    for i, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        parts = [c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in pairs]
        lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


class _Out:
    """Where human-readable lines go: stdout, or stderr when --json owns stdout."""

    def __init__(self, json_mode: bool = False):
        self.stream = sys.stderr if json_mode else sys.stdout

    def __call__(self, text: str = "") -> None:
        print(text, file=self.stream)


def _progress(args) -> bool | None:
    """--quiet: no bars; otherwise lesde's default (bars for slow runs), on terminals only."""
    if getattr(args, "quiet", False) or not sys.stderr.isatty():
        return False
    return None


# ---------------------------------------------------------------------------- configuration
def _parse_value(text: str) -> Any:
    """A --set value: a TOML value if it parses as one, else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_set(items: Sequence[str] | None) -> dict[str, Any]:
    """Turn ``["alpha=0.5", "alpha.tau=2"]`` into a (nested) dict of overrides.

    Examples
    --------
    >>> parse_set(["alpha=0.5", "signal=linear", "class_sizes=[10, 20]"])
    {'alpha': 0.5, 'signal': 'linear', 'class_sizes': [10, 20]}
    >>> parse_set(['beta={kind="exponential", a0=1, tau=2}', "beta.tau=3.0"])
    {'beta': {'kind': 'exponential', 'a0': 1, 'tau': 3.0}}
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {item!r}")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UsageError(f"--set {key}: {part!r} is not a table")
            node = child
        node[leaf] = _parse_value(text.strip())
    return out


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides win; a nested dict override is merged into a dict value (schedules)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"config file {str(p)!r} not found")
    if p.is_dir():
        raise UsageError(f"{str(p)!r} is a directory, not a TOML config file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{p}: invalid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {p}: {err}") from None


def load_config(
    path: str | os.PathLike | None, sets: Sequence[str] | None = None, allow_grid: bool = False
):
    """The Config from defaults < TOML file < ``--set`` overrides, and the ``[grid]`` table.

    Returns ``(config, grid)``; ``grid`` is None when the file has no ``[grid]`` table.
    """
    from .config import Config

    data = _read_toml(path) if path is not None else {}
    data = _merge(data, parse_set(sets))
    grid = data.pop("grid", None)
    if grid is not None and not allow_grid:
        raise UsageError(
            "this config has a [grid] table: run it with `lesde sweep`, or remove the table"
        )
    if grid is not None and not isinstance(grid, dict):
        raise UsageError("grid must be a table: [grid] with one line per swept field")
    where = f"{path}: " if path is not None else ""
    try:
        cfg = Config.from_dict(data)
    except (TypeError, ValueError) as err:
        raise UsageError(f"{where}{err}") from None
    return cfg, grid


# ---------------------------------------------------------------------------- plotting
def _matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _plot_module():
    """lesde.plot with a non-interactive backend (the CLI only writes files)."""
    import matplotlib

    matplotlib.use("Agg")
    from . import plot

    return plot


def _as_figure(obj):
    """plot functions may return a Figure or an Axes; return the Figure."""
    import matplotlib.figure

    if isinstance(obj, matplotlib.figure.Figure):
        return obj
    fig = getattr(obj, "figure", None) or getattr(obj, "get_figure", lambda: None)()
    if fig is None:
        raise TypeError(f"cannot find the figure of {type(obj).__name__}")
    return fig


def _save_figure(plot, obj, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig = _as_figure(obj)
    plot.save(fig, path)
    plt.close(fig)
    return str(path)


# ---------------------------------------------------------------------------- run / validate
def _summary_rows(result) -> list[list[Any]]:
    rows = []
    for name in result.metrics:
        v = result.final(name)
        finite = v[np.isfinite(v)]
        if finite.size:
            rows.append([name, finite.mean(), finite.std(), finite.min(), finite.max()])
        else:
            rows.append([name, math.nan, math.nan, math.nan, math.nan])
    return rows


def _result_report(result, out_path: str | None) -> dict[str, Any]:
    cfg = result.config
    return {
        "ok": result.ok,
        "out": out_path,
        "summary": result.summary(),
        "status": [str(s) for s in result.status],
        "steps_done": result.steps_done,
        "n_steps": cfg.n_steps,
        "interrupted": result.interrupted,
        "wall_seconds": result.meta.get("wall_seconds"),
        "config": cfg.to_dict(resolved=True),
    }


def _print_result(out: _Out, result) -> None:
    cfg = result.config
    R = len(result.status)
    out(
        f"final metrics at t = {result.times[-1] if result.times.size else 0:g} "
        f"over {R} replica(s) ({int(np.sum(result.status == 'ok'))} ok), "
        f"signal={cfg.signal}, K={cfg.n_classes}, N={cfg.n_samples}, p={cfg.p}"
    )
    out(_table(_summary_rows(result), ["metric", "mean", "std", "min", "max"]))
    wall = result.meta.get("wall_seconds")
    if wall is not None:
        out(f"{result.steps_done} steps in {wall:.2f} s")


def cmd_run(args) -> int:
    from .simulate import NonFiniteError, simulate

    out = _Out(args.json)
    cfg, _ = load_config(args.config, args.set)
    if args.dry_run:
        plan = {
            "dry_run": True,
            "config": cfg.to_dict(resolved=True),
            "n_samples": cfg.n_samples,
            "p": cfg.p,
            "n_steps": cfg.n_steps,
            "t_end": cfg.n_steps * cfg.dt,
            "n_records": len(cfg.record_steps),
            "state_bytes": cfg.state_bytes(),
            "out": str(args.out),
            "zarr": None if args.zarr is None else str(args.zarr),
        }
        if args.json:
            _print_json(plan)
        else:
            out(cfg.to_toml(resolved=True).rstrip())
            out(
                f"# dry run: N = {cfg.n_samples}, p = {cfg.p}, {cfg.n_steps} steps to "
                f"t = {cfg.n_steps * cfg.dt:g}, {len(cfg.record_steps)} records, about "
                f"{cfg.state_bytes() / 2**20:.1f} MiB of state; would write {args.out}"
            )
        return EXIT_OK

    try:
        result = simulate(
            cfg,
            progress=_progress(args),
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
            zarr_store=args.zarr,
        )
    except NonFiniteError as err:
        return _numeric_failure(args, err)
    code = _finish_run(out, args, result)
    if args.zarr is not None:
        out(f"wrote {args.zarr} (Zarr store; records also appended while running)")
    return code


def _numeric_failure(args, err) -> int:
    """Save the partial result of a NonFiniteError and report it (exit 2)."""
    result = err.result
    result.save(args.out)
    print(f"{PROG}: error: numerical failure: {err}", file=sys.stderr)
    print(f"{PROG}: the partial result was saved to {args.out}", file=sys.stderr)
    if args.json:
        _print_json({**_result_report(result, str(args.out)), "error": str(err)})
    return EXIT_NUMERIC


def _finish_run(out: _Out, args, result) -> int:
    """Save a finished (or interrupted) run and print its summary."""
    result.save(args.out)
    if args.json:
        _print_json(_result_report(result, str(args.out)))
    else:
        _print_result(out, result)
        out(f"wrote {args.out}")
    if result.interrupted:
        print(f"{PROG}: interrupted; the partial result was saved to {args.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_validate(args) -> int:
    cfg, grid = load_config(args.config, args.set, allow_grid=True)
    if grid is not None:
        from .sweep import expand_grid

        try:
            grid = expand_grid(grid)
        except (TypeError, ValueError) as err:
            raise UsageError(f"{args.config}: {err}") from None
    if args.json:
        _print_json({"config": cfg.to_dict(resolved=True), "grid": grid})
    else:
        text = cfg.to_toml(resolved=True)
        if grid is not None:
            from .config import _toml_value

            text += "\n[grid]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in grid.items())
        sys.stdout.write(text)
    return EXIT_OK


# ---------------------------------------------------------------------------- sweep
_SWEEP_SHOWN = (
    "separable_ncc",
    "separable_argmax",
    "loss",
    "accuracy",
    "clean_accuracy",
    "ncc_accuracy",
    "nc1",
)


def _compact_summary(summary, grid_keys) -> Any:
    cols = [*grid_keys, "replicas_ok"]
    cols += [f"{m}_mean" for m in _SWEEP_SHOWN if f"{m}_mean" in summary.columns]
    return summary[[c for c in cols if c in summary.columns]]


def _sweep_figures(res, outdir: Path) -> list[Path]:
    """phase_diagram.png / label_noise.png when the grid is exactly that (and matplotlib)."""
    keys = set(res.grid)
    if keys not in ({"alpha", "beta"}, {"label_noise"}) or not _matplotlib_available():
        return []
    if not (res.table["status"] == "ok").any():  # nothing to draw (every run failed)
        return []
    plot = _plot_module()
    if keys == {"label_noise"}:
        return [Path(_save_figure(plot, plot.label_noise(res), outdir / "label_noise.png"))]
    return [Path(_save_figure(plot, plot.phase_diagram(res), outdir / "phase_diagram.png"))]


def _dask_client(address: str):
    """A dask.distributed Client connected to the scheduler at ``address``."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError(f"--scheduler needs dask.distributed: {DISTRIBUTED_HINT}") from None
    try:
        # waits up to dask's distributed.comm.timeouts.connect (30 s unless configured)
        return Client(address)
    except (OSError, TimeoutError, ValueError) as err:
        raise UsageError(f"cannot connect to the Dask scheduler at {address}: {err}") from None


def cmd_sweep(args) -> int:
    from .sweep import sweep

    out = _Out(args.json)
    base, grid = load_config(args.config, args.set, allow_grid=True)
    if not grid:
        raise UsageError(
            f"{args.config}: a sweep needs a [grid] table of fields to vary, e.g. a line "
            "'[grid]' followed by 'alpha = [0.5, 1.0, 2.0]' (see lesde sweep --help)"
        )
    if args.scheduler is not None and args.workers is not None:
        raise UsageError(
            "--workers is for local sweeps; with --scheduler the cluster's workers run the "
            "points (set the threads of each run with --set threads=T)"
        )
    outdir = Path(args.out)
    client = _dask_client(args.scheduler) if args.scheduler is not None else None
    try:
        executor = client.get_executor() if client is not None else None
        res = sweep(
            base,
            grid,
            replicas=args.replicas,
            max_workers=args.workers,
            executor=executor,
            progress=_progress(args),
            out_dir=outdir,
        )
    except (TypeError, ValueError) as err:
        raise UsageError(f"{args.config}: {err}") from None
    finally:
        if client is not None:
            client.close()
    files = [outdir / "table.csv", outdir / "summary.csv"]  # written by sweep(out_dir=...)
    summary = res.summary()
    if importlib.util.find_spec("pyarrow") is not None:
        files.append(outdir / "table.parquet")
        res.to_parquet(files[-1])
    files += _sweep_figures(res, outdir)
    bad = res.table[res.table["status"] != "ok"]
    if args.json:
        _print_json(
            {
                "out": str(outdir),
                "files": [str(f) for f in files],
                "grid": res.grid,
                "rows": len(res.table),
                "failed_replicas": len(bad),
                "points_run": res.meta["points_run"],
                "points_reused": res.meta["points_reused"],
                "scheduler": args.scheduler,
                "wall_seconds": res.meta.get("wall_seconds"),
                "summary": json.loads(summary.reset_index().to_json(orient="records")),
            }
        )
    else:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", 30):
            out(
                _compact_summary(summary, list(res.grid)).to_string(
                    float_format=lambda v: f"{v:.4g}"
                )
            )
        reused = res.meta["points_reused"]
        if reused:
            out(
                f"resumed: {reused} point(s) read back from {outdir / 'points'}, "
                f"{res.meta['points_run']} run"
            )
        out(
            f"{len(res.table)} rows ({res.table['point'].nunique()} points) in "
            f"{res.meta.get('wall_seconds', math.nan):.1f} s; wrote "
            + ", ".join(str(f) for f in files)
        )
    if len(bad):
        print(
            f"{PROG}: warning: {len(bad)} replica(s) did not finish ok "
            f"({', '.join(sorted(set(bad['status'])))}); see the status and message "
            f"columns of {files[0]}",
            file=sys.stderr,
        )
        errors = bad[bad["status"] == "error"]
        if len(errors):  # e.g. a cluster whose scheduler or workers cannot import lesde
            first = str(errors["message"].iloc[0]).splitlines()[0][:300]
            print(
                f"{PROG}: first error (point {errors['point'].iloc[0]}): {first}", file=sys.stderr
            )
    return EXIT_OK


# ---------------------------------------------------------------------------- plot
def cmd_plot(args) -> int:
    from .result import load

    path = Path(args.result)
    if not path.exists():
        raise UsageError(f"result file {str(path)!r} not found")
    try:
        result = load(path)
    except (ValueError, KeyError, OSError) as err:
        raise UsageError(str(err)) from None
    if not _matplotlib_available():
        raise UsageError(f"plotting needs matplotlib: {PLOT_HINT}")
    plot = _plot_module()
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    written = [
        _save_figure(
            plot, plot.metric_over_time(result), outdir / f"{path.stem}-metric_over_time.png"
        )
    ]
    if result.config.p == 3:
        written.append(
            _save_figure(
                plot, plot.class_means_3d(result), outdir / f"{path.stem}-class_means_3d.png"
            )
        )
    for f in written:
        print(f"wrote {f}")
    return EXIT_OK


# ---------------------------------------------------------------------------- demo
def demo_setup(quick: bool) -> dict[str, Any]:
    """The demo's configurations: a linear-signal alpha x beta grid and two CE runs.

    The class means start on a simplex (``init_means = 3 (I - 11^T/K)``), so on the diagonal
    alpha = beta the contrasts stay put while the noise spreads the clouds: separability is
    lost; above it (alpha > beta) the contrasts grow like exp((alpha - beta) t / K) and the
    clouds become separable. At a finite horizon the boundary is smeared over
    alpha - beta of about 0.2 (t_end = 20).
    """
    from .config import Config

    K = 3
    means = 3.0 * (np.eye(K) - 1.0 / K)
    values = [0.4, 0.6, 0.8] if quick else [0.2, 0.4, 0.6, 0.8, 1.0]
    # Runs this small are fastest on one thread each; the sweep runs points in parallel.
    linear = Config(
        n_classes=K,
        n_per_class=50 if quick else 100,
        signal="linear",
        sigma=0.5,
        init_means=means,
        dt=0.05,
        t_end=20.0,
        record_every=40,
        seed=2021,
        threads=1,
    )
    ce = Config(
        n_classes=K,
        n_per_class=50 if quick else 100,
        signal="cross_entropy",
        sigma=0.2,
        dt=0.05,
        t_end=20.0,
        replicas=4 if quick else 10,
        seed=2021,
        threads=1,
    )
    return {
        "linear": linear,
        "alphas": values,
        "betas": values,
        "replicas": 10 if quick else 20,
        "cross_entropy": [ce.replace(alpha=4.0, beta=0.8), ce.replace(alpha=0.8, beta=4.0)],
    }


def _grid_without_pandas(base, alphas, betas, replicas) -> list[dict[str, Any]]:
    """The phase diagram by plain simulate calls, when pandas (hence a SweepResult) is absent.

    Point i gets the seed that lesde.sweep gives it, so the numbers are the sweep's.
    """
    from . import metrics
    from .simulate import simulate
    from .sweep import point_seed

    points = [(a, b) for a in alphas for b in betas]  # the sweep's order: beta varies fastest
    rows = []
    for index, (a, b) in enumerate(points):
        cfg = base.replace(alpha=a, beta=b, replicas=replicas, seed=point_seed(base.seed, index))
        res = simulate(cfg, progress=False, on_nonfinite="ignore")
        good = np.flatnonzero(res.status == "ok")
        sep = {
            method: [
                metrics.separable(
                    res.features[r], res.labels[r], method, n_classes=cfg.n_classes
                ).separable
                for r in good
            ]
            for method in ("ncc", "argmax")
        }
        mean = lambda v: float(np.nanmean(v)) if len(v) else math.nan  # noqa: E731
        rows.append(
            {
                "alpha": a,
                "beta": b,
                "replicas_ok": int(good.size),
                "separable_ncc": mean(np.array(sep["ncc"], dtype=float)),
                "separable_argmax": mean(np.array(sep["argmax"], dtype=float)),
                "loss": mean(res.final("loss")[good]),
                "ncc_accuracy": mean(res.final("ncc_accuracy")[good]),
            }
        )
    return rows


def _rows_from_sweep(res) -> list[dict[str, Any]]:
    s = res.summary()
    rows = []
    for _, r in s.iterrows():
        rows.append(
            {
                "alpha": float(r["alpha"]),
                "beta": float(r["beta"]),
                "replicas_ok": int(r["replicas_ok"]),
                "separable_ncc": float(r["separable_ncc_mean"]),
                "separable_argmax": float(r["separable_argmax_mean"]),
                "loss": float(r["loss_mean"]),
                "ncc_accuracy": float(r["ncc_accuracy_mean"]),
            }
        )
    return rows


def cmd_demo(args) -> int:
    from .simulate import simulate

    out = _Out(args.json)
    started = time.perf_counter()
    setup = demo_setup(args.quick)
    base, alphas, betas, R = setup["linear"], setup["alphas"], setup["betas"], setup["replicas"]
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    if not args.quiet:
        print(
            f"lesde demo: linear signal, K = {base.n_classes}, {len(alphas)} x {len(betas)} "
            f"alpha x beta grid, {R} replicas of N = {base.n_samples} samples each, "
            f"t_end = {base.n_steps * base.dt:g} ...",
            file=sys.stderr,
        )
    sweep_res = None
    if importlib.util.find_spec("pandas") is not None:
        from .sweep import phase_diagram

        sweep_res = phase_diagram(base, alphas, betas, replicas=R, progress=_progress(args))
        grid_rows = _rows_from_sweep(sweep_res)
        sweep_res.to_csv(outdir / "phase_diagram.csv")
    else:
        grid_rows = _grid_without_pandas(base, alphas, betas, R)
        notes.append(f"pandas is not installed: no phase_diagram.csv ({SWEEP_HINT})")

    ce_rows, ce_results = [], []
    for cfg in setup["cross_entropy"]:
        res = simulate(cfg, progress=_progress(args))
        ce_results.append(res)
        s = res.summary()
        ce_rows.append(
            {
                "alpha": float(cfg.alpha),
                "beta": float(cfg.beta),
                "t_end": s["t_end"],
                "loss": s["loss"],
                "accuracy": s["accuracy"],
                "ncc_accuracy": s["ncc_accuracy"],
                "nc1": s["nc1"],
                "etf_distance": s.get("etf_distance", math.nan),
                "loss_t0": float(np.nanmean(res.metrics["loss"][:, 0])),
            }
        )

    figures: list[str] = []
    if _matplotlib_available():
        plot = _plot_module()
        if sweep_res is not None:
            figures.append(
                _save_figure(
                    plot,
                    plot.phase_diagram(sweep_res, metric="separable_ncc"),
                    outdir / "phase_diagram.png",
                )
            )
        else:
            notes.append(f"the phase diagram figure needs pandas: {SWEEP_HINT}")
        runs = {
            f"alpha={r['alpha']:g}, beta={r['beta']:g}": res
            for r, res in zip(ce_rows, ce_results, strict=True)
        }
        figures.append(
            _save_figure(plot, plot.metric_over_time(runs), outdir / "metric_over_time.png")
        )
    else:
        notes.append(f"matplotlib is not installed: figures were skipped ({PLOT_HINT})")
    seconds = time.perf_counter() - started

    if args.json:
        _print_json(
            {
                "quick": args.quick,
                "out": str(outdir),
                "phase_diagram": grid_rows,
                "cross_entropy": ce_rows,
                "figures": figures,
                "notes": notes,
                "wall_seconds": seconds,
            }
        )
        return EXIT_OK
    out(
        "Phase transition, linear signal (docs/model.md, section 3): P(separable) over "
        "replicas at "
        f"t = {base.n_steps * base.dt:g}"
    )
    out(
        _table(
            [
                [
                    r["alpha"],
                    r["beta"],
                    r["alpha"] - r["beta"],
                    r["separable_ncc"],
                    r["separable_argmax"],
                    r["ncc_accuracy"],
                    r["loss"],
                    r["replicas_ok"],
                ]
                for r in grid_rows
            ],
            [
                "alpha",
                "beta",
                "alpha-beta",
                "P(sep NCC)",
                "P(argmax=y)",
                "NCC acc",
                "final loss",
                "ok",
            ],
        )
    )
    above = [r["separable_ncc"] for r in grid_rows if r["alpha"] > r["beta"]]
    on_below = [r["separable_ncc"] for r in grid_rows if r["alpha"] <= r["beta"]]
    out(
        f"mean P(separable by NCC): alpha > beta {np.nanmean(above):.2f}, "
        f"alpha <= beta {np.nanmean(on_below):.2f}"
    )
    out(
        "(P(argmax=y) and the loss read the linear model's features as logits; nothing in "
        "the linear signal drives them toward the labels, so only separability matters here.)"
    )
    out()
    out("Cross-entropy signal: the loss falls when alpha > beta and grows when alpha < beta")
    out(
        _table(
            [
                [
                    r["alpha"],
                    r["beta"],
                    r["t_end"],
                    r["loss_t0"],
                    r["loss"],
                    r["accuracy"],
                    r["ncc_accuracy"],
                    r["nc1"],
                    r["etf_distance"],
                ]
                for r in ce_rows
            ],
            ["alpha", "beta", "t", "loss(0)", "loss(t)", "accuracy", "NCC acc", "NC1", "ETF dist"],
        )
    )
    out()
    for f in figures:
        out(f"wrote {f}")
    for note in notes:
        out(f"note: {note}")
    out(f"done in {seconds:.1f} s")
    return EXIT_OK


# ---------------------------------------------------------------------------- info / bench / resume
def _info() -> dict[str, Any]:
    from . import __version__, build_info
    from .config import Config

    info = build_info()
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "threads": Config().effective_threads,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda_built": bool(info.get("cuda_built", False)),
        "cuda_device_visible": bool(info.get("cuda_device_visible", False)),
        "random_stream_version": info.get("random_stream_version"),
        "optional": {
            m: importlib.util.find_spec(m) is not None for m in ("matplotlib", "pandas", "pyarrow")
        },
        "build_info": info,
    }


def cmd_info(args) -> int:
    info = _info()
    if args.json:
        _print_json(info)
        return EXIT_OK
    b = info["build_info"]
    rows = [
        ["version", info["version"]],
        ["python / numpy", f"{info['python']} / {info['numpy']}"],
        [
            "compiler",
            f"{b.get('compiler', '?')} (C++ {b.get('cxx_standard', '?')}, "
            f"{b.get('build_type', '?')})",
        ],
        ["openmp", b.get("openmp")],
        ["simd", ", ".join(b.get("simd", [])) or "none"],
        ["threads (default)", info["threads"]],
        ["OMP_NUM_THREADS", info["omp_num_threads"] or "unset"],
        ["CUDA built", info["cuda_built"]],
        ["CUDA device visible", info["cuda_device_visible"]],
        ["random-stream version", info["random_stream_version"]],
        [
            "optional packages",
            ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["optional"].items()),
        ],
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    return EXIT_OK


def _source_bench_script() -> Path | None:
    script = Path(__file__).resolve().parents[2] / "bench" / "run_bench.py"
    return script if script.is_file() else None


def cmd_bench(args) -> int:
    forwarded = list(args.bench_args)
    if forwarded[:1] == ["--"]:
        forwarded = forwarded[1:]
    try:
        module = importlib.import_module("lesde.bench")
    except ModuleNotFoundError as err:
        if err.name not in ("lesde.bench",):
            raise
        module = None
    if module is not None and hasattr(module, "main"):
        return int(module.main(forwarded) or 0)
    script = _source_bench_script()
    if script is None:
        print(
            f"{PROG}: error: the benchmark suite is not part of this installation; run "
            "bench/run_bench.py from a source checkout of lesde",
            file=sys.stderr,
        )
        return EXIT_USAGE
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_parent, env.get("PYTHONPATH")]))
    return subprocess.call([sys.executable, str(script), *forwarded], env=env)


def cmd_resume(args) -> int:
    from .checkpoint import resume
    from .simulate import NonFiniteError

    out = _Out(args.json)
    if not Path(args.checkpoint).is_file():
        raise UsageError(f"no checkpoint file {args.checkpoint}")
    try:
        result = resume(
            args.checkpoint, progress=_progress(args), checkpoint_every=args.checkpoint_every
        )
    except NonFiniteError as err:
        return _numeric_failure(args, err)
    out(f"resumed {args.checkpoint} from step {result.meta.get('resumed_from_step')}")
    return _finish_run(out, args, result)


# ---------------------------------------------------------------------------- the parser
def _config_fields_epilog() -> str:
    from .config import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_N_PER_CLASS, DEFAULT_T_END, Config

    derived = {
        "n_per_class": f"{DEFAULT_N_PER_CLASS} (or class_sizes)",
        "class_sizes": "n_per_class for every class",
        "dim": "n_classes",
        "alpha": f"{DEFAULT_ALPHA}",
        "beta": f"{DEFAULT_BETA}",
        "impact": "alpha on the diagonal, beta off it",
        "init_means": "zeros",
        "head": "none: the features are the logits",
        "t_end": f"{DEFAULT_T_END} (or steps * dt)",
        "steps": "round(t_end / dt)",
        "noise_seed": "seed",
        "threads": "all cores available",
        "record_every": "n_steps // 100 (about 100 records)",
        "record_samples": "none",
    }
    lines = ["Config fields (set any with --set KEY=VALUE; docs/api.md explains them):"]
    for f in dataclasses.fields(Config):
        default = derived.get(f.name, repr(f.default))
        lines.append(f"  {f.name:<15} {default}")
    return "\n".join(lines)


SET_HELP = (
    "override a Config field, KEY=VALUE with VALUE a TOML value (alpha=0.5, "
    'signal=linear, class_sizes=[10,20], \'alpha={kind="power_law",a0=1,tau=2,'
    "gamma=0.5}', alpha.tau=3); repeatable; wins over the file"
)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog=PROG,
        formatter_class=_Formatter,
        description="Simulate locally elastic SDEs (Zhang, Wang & Su, NeurIPS 2021): the "
        "features of N training samples, coupled through a K x K impact matrix.",
        epilog="Exit codes: 0 ok, 1 usage or configuration error, 2 numerical failure "
        "(NaN/Inf; the partial result is still saved), 130 interrupted.\n\n"
        "Start with `lesde demo --quick`; `lesde COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name, func, help, description=None, epilog=None):
        p = sub.add_parser(
            name,
            help=help,
            description=description or help,
            epilog=epilog,
            formatter_class=_Formatter,
        )
        p.set_defaults(func=func)
        return p

    def add_checkpoint_options(p):
        p.add_argument(
            "--checkpoint",
            default=None,
            metavar="PATH",
            help="write checkpoints here at record steps (resume with `lesde resume`)",
        )
        p.add_argument(
            "--checkpoint-every",
            type=int,
            default=None,
            metavar="STEPS",
            help="steps between checkpoints (default: about every 60 s)",
        )

    def json_quiet(p, quiet=True):
        p.add_argument(
            "--json",
            action="store_true",
            help="print a machine-readable JSON summary on stdout (nothing else)",
        )
        if quiet:
            p.add_argument("--quiet", action="store_true", help="no progress output")

    p = add(
        "demo",
        cmd_demo,
        "reproduce the phase transition at alpha = beta in seconds",
        description="Run the built-in demo: a linear-signal alpha x beta grid around the "
        "diagonal (K = 3, class means started on a simplex) and two "
        "cross-entropy runs (alpha > beta and alpha < beta). Prints P(separable) "
        "and final losses; writes figures (with matplotlib) and a CSV table.",
        epilog="Example:\n  lesde demo --quick --out demo-out",
    )
    p.add_argument("--out", default="lesde-demo", metavar="DIR", help="folder for the figures")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a 3 x 3 grid with fewer samples and replicas (a few seconds)",
    )
    json_quiet(p)

    p = add(
        "run",
        cmd_run,
        "run one configuration and save the result (.npz)",
        description="Run one configuration (TOML file and/or --set overrides; precedence "
        "--set > file > defaults), print the final metrics averaged over "
        "replicas and save the result as .npz (read it with lesde.load).",
        epilog="Examples:\n  lesde run --set signal=linear --set alpha=2 --set beta=0.5\n"
        "  lesde run examples/configs/neural_collapse.toml --out nc.npz\n"
        '  lesde run cfg.toml --set \'alpha={kind="power_law",a0=1,tau=2,'
        "gamma=0.5}' --dry-run\n\n" + _config_fields_epilog(),
    )
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="TOML config file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--out", default="run.npz", metavar="PATH", help="where to save the result")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and print the resolved config and the run's size; run nothing",
    )
    add_checkpoint_options(p)
    p.add_argument(
        "--zarr",
        default=None,
        metavar="PATH",
        help="also append the records to a Zarr store (a folder) while the run goes; "
        f"read it with lesde.load_zarr, even after a crash (needs {ZARR_HINT})",
    )
    json_quiet(p)

    p = add(
        "sweep",
        cmd_sweep,
        "run a grid of configurations (table.csv, summary.csv)",
        description="Run the base config of CONFIG.toml at every point of its [grid] table "
        '(values: lists, or {start, stop, num[, scale="log"]} inline tables). '
        "Each point's result is saved as DIR/points/<config hash>.npz; running "
        "the same command again skips the points already there, so an "
        "interrupted sweep resumes. Writes table.csv (one row per point and "
        "replica; also table.parquet when pyarrow is installed) and summary.csv "
        "(statistics per point). With --scheduler the points run on a Dask "
        "cluster (docs/distributed.md); DIR must then be on a file system that "
        "the workers see too.",
        epilog='Example CONFIG.toml:\n  n_classes = 3\n  signal = "linear"\n'
        "  t_end = 20.0\n\n  [grid]\n  alpha = [0.2, 0.6, 1.0]\n"
        "  beta = {start = 0.2, stop = 1.0, num = 3}\n\n"
        "  lesde sweep examples/configs/phase_diagram.toml --out sweep-out\n"
        "  lesde sweep examples/configs/phase_diagram.toml --out /shared/sweep "
        "--scheduler tcp://head:8786",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="TOML file: base fields plus [grid]")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--out", default="lesde-sweep", metavar="DIR", help="output folder")
    p.add_argument(
        "--replicas",
        type=int,
        default=None,
        metavar="R",
        help="replicas per grid point (default: the config's replicas)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="W",
        help="concurrent runs (default: one per core; threads per run = cores // W)",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the points on the Dask cluster whose scheduler is at ADDRESS "
        "(e.g. tcp://head:8786); needs dask.distributed",
    )
    json_quiet(p)

    p = add(
        "plot",
        cmd_plot,
        "draw figures from a saved result (.npz)",
        description="Draw the metrics over time of a saved result, and the class means in "
        "3-D when p = 3. Needs matplotlib (pip install 'lesde[plot]').",
        epilog="Example:\n  lesde run --out run.npz && lesde plot run.npz --out figs",
    )
    p.add_argument("result", metavar="RESULT.npz", help="a file written by lesde run")
    p.add_argument("--out", default=".", metavar="DIR", help="folder for the PNG files")

    p = add(
        "bench",
        cmd_bench,
        "run the benchmark suite (source checkouts)",
        description="Forward the remaining arguments to the benchmark suite "
        "(bench/run_bench.py in a source checkout).",
        epilog="Examples:\n  lesde bench --quick --out bench.json\n"
        "  lesde bench -- --help      (the suite's own options)",
    )
    p.add_argument(
        "bench_args",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="arguments for the benchmark suite (see lesde bench --help there)",
    )

    p = add(
        "resume",
        cmd_resume,
        "continue a checkpointed run to its end",
        description="Continue a run written by `lesde run --checkpoint PATH` (or "
        "lesde.simulate(checkpoint=...)) that was stopped or killed. The result "
        "is bit-identical to an uninterrupted run; the checkpoint keeps being "
        "updated. A damaged or incompatible checkpoint is refused (exit 1).",
        epilog="Example:\n  lesde run cfg.toml --checkpoint run.ckpt --out run.npz\n"
        "  (killed)\n  lesde resume run.ckpt --out run.npz",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint file")
    p.add_argument("--out", default="run.npz", metavar="PATH", help="where to save the result")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="STEPS",
        help="steps between checkpoints (default: about every 60 s)",
    )
    json_quiet(p)

    p = add(
        "validate",
        cmd_validate,
        "check a config and print it fully resolved (TOML)",
        description="Validate CONFIG.toml (and --set overrides) and print the resolved "
        "config with every default filled in; a [grid] table is checked and "
        "printed expanded. Exit 0 when valid, 1 otherwise.",
        epilog="Example:\n  lesde validate examples/configs/phase_diagram.toml "
        "--set sigma=0.1\n\n" + _config_fields_epilog(),
    )
    p.add_argument("config", nargs="?", metavar="CONFIG.toml", help="TOML config file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    json_quiet(p, quiet=False)

    p = add(
        "info",
        cmd_info,
        "version, build flags, threads, CUDA, random-stream version",
        description="Print the version, how the compiled core was built, the default "
        "thread count, CUDA availability and the random-stream version.",
    )
    json_quiet(p, quiet=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``lesde`` and ``python -m lesde``; returns the exit status."""
    from .simulate import InsufficientMemoryError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv[:1] == ["bench"] and argv[1:2] not in (["-h"], ["--help"]):
        # Everything after "bench" belongs to the suite, options included (argparse's
        # REMAINDER would stop at an option such as --quick).
        args = argparse.Namespace(func=cmd_bench, bench_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        print(f"{PROG}: error: a command is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except (UsageError, InsufficientMemoryError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
    except (TypeError, ValueError) as err:
        # Validation errors not wrapped above (e.g. the engine's own checks). Show the
        # traceback only on request, so users see one line and developers can still debug.
        if os.environ.get("LESDE_DEBUG"):
            raise
        print(f"{PROG}: error: {err} (set LESDE_DEBUG=1 for the traceback)", file=sys.stderr)
    except ImportError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
    except (FileNotFoundError, PermissionError, IsADirectoryError) as err:
        print(f"{PROG}: error: {err.strerror}: {err.filename}", file=sys.stderr)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `lesde info | head -1`
        sys.stderr.close()
    return EXIT_USAGE
