"""``lesde sweep`` (a grid of configurations) and ``lesde demo`` (the phase transition).

Both run through :func:`lesde.sweep.sweep`, so the demo's phase diagram is the library's.

Examples
--------
>>> from lesde.cli import build_parser
>>> build_parser().parse_args(["demo", "--quick"]).out
'lesde-demo'
"""

from __future__ import annotations

import json
import math
import shlex
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import (
    DISTRIBUTED_HINT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PROG,
    SIGNAL_READING,
    Out,
    UsageError,
    add_command,
    add_output_options,
    add_set_option,
    plot_module,
    print_json,
    progress_flag,
    save_figure,
    table,
)
from .config import load_config
from .outputs import check_output_folder

__all__ = [
    "add_demo",
    "add_sweep",
    "cmd_demo",
    "cmd_sweep",
    "demo_setup",
    "resume_command",
    "shown_metrics",
]


def shown_metrics(res) -> list[str]:
    """The metrics whose means ``lesde sweep`` prints (summary.csv has them all): the
    sweep's headline (its signal's, as ``lesde run`` and ``lesde demo`` show them), and the
    clean accuracy when labels are corrupted (then accuracy is measured on wrong labels).

    >>> import pandas as pd
    >>> from lesde import Config
    >>> from lesde.sweep.result import SweepResult
    >>> table = pd.DataFrame({"point": [0], "status": ["ok"], "loss": [0.1], "accuracy": [1.0],
    ...                       "clean_accuracy": [1.0], "separable_ncc": [1.0]})
    >>> shown_metrics(SweepResult(table, Config(n_classes=2), {"label_noise": [0.2]}))
    ['loss', 'accuracy', 'separable_ncc', 'clean_accuracy']
    >>> shown_metrics(SweepResult(table, Config(n_classes=2, signal="linear"), {"alpha": [1]}))
    ['separable_ncc']
    """
    names = list(res.headline)
    noisy = list(res.grid.get("label_noise", [])) + [getattr(res.base, "label_noise", 0.0)]
    if any(float(v) > 0 for v in noisy) and "clean_accuracy" in res.table.columns:
        names.append("clean_accuracy")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------- sweep
def add_sweep(commands) -> None:
    """Register ``lesde sweep`` on the subcommands ``commands``.

    >>> from lesde.cli import build_parser
    >>> args = build_parser().parse_args(["sweep", "grid.toml", "--workers", "2"])
    >>> args.func is cmd_sweep, args.config, args.workers, args.out
    (True, 'grid.toml', 2, 'lesde-sweep')
    """
    p = add_command(
        commands,
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
    add_set_option(p)
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
    add_output_options(p)


def cmd_sweep(args) -> int:
    """Run the ``[grid]`` of a config file; write the tables (and figures) to ``--out``.

    >>> from lesde.cli import main
    >>> main(["sweep", "no-such.toml"])  # the message goes to stderr
    1
    """
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
    from ..sweep import expand_grid, sweep_lock

    try:
        expand_grid(grid)  # before anything is created
    except (TypeError, ValueError) as err:
        raise UsageError(f"{args.config}: {err}") from None
    outdir = check_output_folder(args.out, "--out")
    outdir.mkdir(parents=True, exist_ok=True)
    res = None
    with sweep_lock(outdir):  # one writer, also of the Parquet table and the figures
        try:
            res = _run_sweep(args, base, grid, outdir)
            files = _sweep_files(res, outdir)
        except KeyboardInterrupt as err:
            _ignore_further_interrupts()
            print(_interrupted_line(args, err, outdir, res), file=sys.stderr)
            return EXIT_INTERRUPTED
    if args.json:
        _print_sweep_json(args, res, outdir, files)
    else:
        _print_sweep(Out(), res, outdir, files)
    _warn_failed_replicas(res, files[0])
    return EXIT_OK


def _ignore_further_interrupts() -> None:
    """After Ctrl-C stopped the sweep (its threads are joined): the command only reports and
    exits now, so a further Ctrl-C is ignored. Left to Python, one during the interpreter's
    exit would print a traceback, or kill the process by SIGINT instead of exit 130."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread (main() called from a thread): nothing to do
        pass


def resume_command(args) -> str:
    """The ``lesde sweep`` command line that goes on with the sweep of ``args``: the same
    config, ``--set`` values, replicas, folder and workers (or scheduler).

    >>> from lesde.cli import build_parser
    >>> args = build_parser().parse_args(
    ...     ["sweep", "my grid.toml", "--set", "sigma=0.5", "--workers", "2", "--quiet"])
    >>> resume_command(args)
    "lesde sweep 'my grid.toml' --set sigma=0.5 --out lesde-sweep --workers 2"
    """
    words = [PROG, "sweep", str(args.config)]
    for item in args.set or ():
        words += ["--set", item]
    words += ["--out", str(args.out)]
    for option, value in (
        ("--replicas", args.replicas),
        ("--workers", args.workers),
        ("--scheduler", args.scheduler),
    ):
        if value is not None:
            words += [option, str(value)]
    return shlex.join(words)


def _interrupted_line(args, err: KeyboardInterrupt, outdir: Path, res) -> str:
    """What Ctrl-C left: how many points are kept in ``outdir``, and the command that goes
    on (it runs only the points not kept)."""
    from ..sweep import SweepInterrupted

    again = f"run the same command again: {resume_command(args)}"
    if res is not None:  # every point had finished; the tables or figures were being written
        total = res.table["point"].nunique()
        return (
            f"{PROG}: interrupted: all {total} points are kept in {outdir}; to write the "
            f"tables and figures without running any, {again}"
        )
    if isinstance(err, SweepInterrupted):
        kept, total = err.points_kept, err.points_total
        return (
            f"{PROG}: interrupted: {kept} of {total} points are kept in {outdir}; to run the "
            f"other {total - kept}, {again}"
        )
    return f"{PROG}: interrupted; the points finished are kept in {outdir}; to go on, {again}"


def _run_sweep(args, base, grid, outdir: Path):
    """lesde.sweep.sweep on local threads, or on the Dask cluster of ``--scheduler``."""
    from ..sweep import sweep

    client = _dask_client(args.scheduler) if args.scheduler is not None else None
    try:
        executor = client.get_executor() if client is not None else None
        return sweep(
            base,
            grid,
            replicas=args.replicas,
            max_workers=args.workers,
            executor=executor,
            progress=progress_flag(args),
            out_dir=outdir,
        )
    except (TypeError, ValueError) as err:
        raise UsageError(f"{args.config}: {err}") from None
    finally:
        if client is not None:
            client.close()


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


def _sweep_files(res, outdir: Path) -> list[Path]:
    """The files of the sweep: the tables sweep() wrote, Parquet and the figure added here."""
    import importlib.util

    files = [outdir / "table.csv", outdir / "summary.csv"]
    if importlib.util.find_spec("pyarrow") is not None:
        files.append(outdir / "table.parquet")
        res.to_parquet(files[-1])
    return files + _sweep_figures(res, outdir)


def _sweep_figures(res, outdir: Path) -> list[Path]:
    """phase_diagram.png (a panel per headline metric of the sweep's signal) or
    label_noise.png, when the grid is exactly alpha x beta or label_noise."""
    keys = set(res.grid)
    if keys not in ({"alpha", "beta"}, {"label_noise"}):
        return []
    if not (res.table["status"] == "ok").any():  # nothing to draw (every run failed)
        return []
    plot = plot_module()
    if keys == {"label_noise"}:
        return [Path(save_figure(plot, plot.label_noise(res), outdir / "label_noise.png"))]
    return [Path(save_figure(plot, plot.phase_diagrams(res), outdir / "phase_diagram.png"))]


def _print_sweep_json(args, res, outdir: Path, files: list[Path]) -> None:
    bad = res.table[res.table["status"] != "ok"]
    print_json(
        {
            "out": str(outdir),
            "files": [str(f) for f in files],
            "grid": res.grid,
            "headline": list(res.headline),
            "rows": len(res.table),
            "failed_replicas": len(bad),
            "points_run": res.meta["points_run"],
            "points_reused": res.meta["points_reused"],
            "scheduler": args.scheduler,
            "wall_seconds": res.meta.get("wall_seconds"),
            "summary": json.loads(res.summary().reset_index().to_json(orient="records")),
        }
    )


def _print_sweep(out: Out, res, outdir: Path, files: list[Path]) -> None:
    import pandas as pd

    summary = res.summary()
    cols = [*res.grid, "replicas_ok"]
    cols += [f"{m}_mean" for m in shown_metrics(res) if f"{m}_mean" in summary.columns]
    compact = summary[[c for c in cols if c in summary.columns]]
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        out(compact.to_string(float_format=lambda v: f"{v:.4g}"))
    reused = res.meta["points_reused"]
    if reused:
        out(
            f"resumed: {reused} point(s) read back from {outdir / 'points'}, "
            f"{res.meta['points_run']} run"
        )
    out(
        f"{len(res.table)} rows ({res.table['point'].nunique()} points) in "
        f"{res.meta.get('wall_seconds', math.nan):.1f} s; wrote " + ", ".join(str(f) for f in files)
    )


def _warn_failed_replicas(res, table_file: Path) -> None:
    """On stderr: how many replicas did not finish ok, and the first error's message."""
    bad = res.table[res.table["status"] != "ok"]
    if not len(bad):
        return
    print(
        f"{PROG}: warning: {len(bad)} replica(s) did not finish ok "
        f"({', '.join(sorted(set(bad['status'])))}); see the status and message "
        f"columns of {table_file}",
        file=sys.stderr,
    )
    errors = bad[bad["status"] == "error"]
    if len(errors):  # e.g. a cluster whose scheduler or workers cannot import lesde
        first = str(errors["message"].iloc[0]).splitlines()[0][:300]
        print(f"{PROG}: first error (point {errors['point'].iloc[0]}): {first}", file=sys.stderr)


# ---------------------------------------------------------------------------- demo
def add_demo(commands) -> None:
    """Register ``lesde demo`` on the subcommands ``commands``.

    >>> from lesde.cli import build_parser
    >>> args = build_parser().parse_args(["demo", "--quick", "--out", "d"])
    >>> args.func is cmd_demo, args.quick, args.out
    (True, True, 'd')
    """
    p = add_command(
        commands,
        "demo",
        cmd_demo,
        "reproduce the phase transition at alpha = beta in seconds",
        description="Run the built-in demo: a linear-signal alpha x beta grid around the "
        "diagonal (K = 3, class means started on a simplex) and two "
        "cross-entropy runs (alpha > beta and alpha < beta). Prints P(separable) "
        "for the grid and the loss and accuracy of the cross-entropy runs; writes two "
        "figures and a CSV table.",
        epilog="Example:\n  lesde demo --quick --out demo-out",
    )
    p.add_argument("--out", default="lesde-demo", metavar="DIR", help="folder for the figures")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a 3 x 3 grid with fewer samples and replicas (a few seconds)",
    )
    add_output_options(p)


def demo_setup(quick: bool) -> dict[str, Any]:
    """The demo's configurations: a linear-signal alpha x beta grid and two CE runs.

    The class means start on a simplex (``init_means = 3 (I - 11^T/K)``), so on the diagonal
    alpha = beta the contrasts stay put while the noise spreads the clouds: separability is
    lost; above it (alpha > beta) the contrasts grow like exp((alpha - beta) t / K) and the
    clouds become separable. At a finite horizon the boundary is smeared over
    alpha - beta of about 0.2 (t_end = 20).

    Examples
    --------
    >>> setup = demo_setup(quick=True)
    >>> setup["alphas"], setup["replicas"], setup["linear"].signal
    ([0.4, 0.6, 0.8], 10, 'linear')
    """
    from ..sim.config import Config

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


def cmd_demo(args) -> int:
    """Run the demo: the phase diagram, two cross-entropy runs, their tables and figures.

    Ctrl-C stops it (exit 130) with the command that runs it again.

    >>> import tempfile
    >>> from lesde.cli import main
    >>> main(["demo", "--quick", "--quiet", "--out", tempfile.mkdtemp()])  # doctest: +SKIP
    0
    """
    plot = plot_module()  # before any work: figures are part of the demo's output
    try:
        return _run_demo(args, plot)
    except KeyboardInterrupt:
        _ignore_further_interrupts()
        again = shlex.join([PROG, "demo", *(["--quick"] if args.quick else []), "--out", args.out])
        print(
            f"{PROG}: interrupted; the demo stopped before its end; run it again: {again}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _run_demo(args, plot) -> int:
    from ..sim.simulate import simulate
    from ..sweep import phase_diagram

    out = Out(args.json)
    started = time.perf_counter()
    setup = demo_setup(args.quick)
    base, alphas, betas, R = setup["linear"], setup["alphas"], setup["betas"], setup["replicas"]
    outdir = Path(args.out)
    outdir.mkdir(parents=True, exist_ok=True)
    if not args.quiet:
        print(
            f"lesde demo: linear signal, K = {base.n_classes}, {len(alphas)} x {len(betas)} "
            f"alpha x beta grid, {R} replicas of N = {base.n_samples} samples each, "
            f"t_end = {base.n_steps * base.dt:g} ...",
            file=sys.stderr,
        )
    sweep_res = phase_diagram(base, alphas, betas, replicas=R, progress=progress_flag(args))
    ce_results = []
    for cfg in setup["cross_entropy"]:
        ce_results.append(simulate(cfg, progress=progress_flag(args)))
        if ce_results[-1].interrupted:  # simulate stops at Ctrl-C and returns what it has
            raise KeyboardInterrupt
    sweep_res.to_csv(outdir / "phase_diagram.csv")
    grid_rows = _phase_rows(sweep_res)
    ce_rows = [_cross_entropy_row(res) for res in ce_results]
    runs = {
        f"alpha={r['alpha']:g}, beta={r['beta']:g}": res
        for r, res in zip(ce_rows, ce_results, strict=True)
    }
    figures = [
        save_figure(
            plot,
            plot.phase_diagram(sweep_res, metric="separable_ncc"),
            outdir / "phase_diagram.png",
        ),
        save_figure(plot, plot.metric_over_time(runs), outdir / "metric_over_time.png"),
    ]
    seconds = time.perf_counter() - started
    if args.json:
        print_json(
            {
                "quick": args.quick,
                "out": str(outdir),
                "phase_diagram": grid_rows,
                "cross_entropy": ce_rows,
                "figures": figures,
                "wall_seconds": seconds,
            }
        )
    else:
        _print_demo(out, base, grid_rows, ce_rows, figures, seconds)
    return EXIT_OK


# Column titles of the demo's tables for the metrics they show.
DEMO_TITLES = {
    "separable_ncc": "P(sep NCC)",
    "ncc_accuracy": "NCC acc",
    "nc1": "NC1",
    "loss": "loss(t)",
    "accuracy": "accuracy",
    "etf_distance": "ETF dist",
}


def _phase_rows(res) -> list[dict[str, Any]]:
    """One plain dict per grid point of the phase-diagram sweep: the linear signal's
    headline metrics (means over replicas; lesde.sim.result.HEADLINE_METRICS)."""
    from ..sim.result import HEADLINE_METRICS

    rows = []
    for _, r in res.summary().iterrows():
        row = {"alpha": float(r["alpha"]), "beta": float(r["beta"])}
        row["replicas_ok"] = int(r["replicas_ok"])
        row.update({m: float(r[f"{m}_mean"]) for m in HEADLINE_METRICS["linear"]})
        rows.append(row)
    return rows


def _cross_entropy_row(res) -> dict[str, Any]:
    """The loss at t = 0 and the headline metrics of one cross-entropy run at its end."""
    s = res.summary()
    row = {"alpha": float(res.config.alpha), "beta": float(res.config.beta)}
    row["t_end"] = s["t_end"]
    row["loss_t0"] = float(np.nanmean(res.metrics["loss"][:, 0]))
    row.update({name: s[name] for name in res.headline})
    return row


def _print_demo(out: Out, base, grid_rows, ce_rows, figures, seconds: float) -> None:
    from ..sim.result import HEADLINE_METRICS

    wrap = lambda text: textwrap.fill(text, 88, initial_indent="  ", subsequent_indent="  ")  # noqa: E731
    out(
        "Phase transition, linear signal (docs/model.md, section 3): separability over "
        f"replicas at t = {base.n_steps * base.dt:g}"
    )
    shown = HEADLINE_METRICS["linear"]
    header = ["alpha", "beta", "alpha-beta", *(DEMO_TITLES[m] for m in shown), "ok"]
    rows = [
        [r["alpha"], r["beta"], r["alpha"] - r["beta"], *(r[m] for m in shown), r["replicas_ok"]]
        for r in grid_rows
    ]
    out(table(rows, header))
    above = [r["separable_ncc"] for r in grid_rows if r["alpha"] > r["beta"]]
    on_below = [r["separable_ncc"] for r in grid_rows if r["alpha"] <= r["beta"]]
    out(
        f"  mean P(separable by NCC): alpha > beta {np.nanmean(above):.2f}, "
        f"alpha <= beta {np.nanmean(on_below):.2f}"
    )
    out(wrap(SIGNAL_READING["linear"]))
    out()
    out("Cross-entropy signal: the same transition in the loss and the accuracy")
    shown = HEADLINE_METRICS["cross_entropy"]
    header = ["alpha", "beta", "t", "loss(0)", *(DEMO_TITLES[m] for m in shown)]
    keys = ("alpha", "beta", "t_end", "loss_t0", *shown)
    out(table([[r[k] for k in keys] for r in ce_rows], header))
    out(wrap(SIGNAL_READING["cross_entropy"]))
    out()
    for f in figures:
        out(f"wrote {f}")
    out(f"done in {seconds:.1f} s")
