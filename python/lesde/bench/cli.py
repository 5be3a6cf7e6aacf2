"""The benchmark suite's command line: ``lesde bench ARGS`` (and ``python -m lesde.bench``,
``python bench/run_bench.py`` in a source checkout) run :func:`main` with ``ARGS``.

Presets:

``--quick``
    The standard comparison: cross-entropy signal, K = p = 10, N = 1e6, float64 and float32,
    ``numpy`` at 1 thread, lesde / ``numpy_mt`` / ``torch`` / ``jax`` at 1 and all CPUs, 2
    timed steps x 3 repeats after a warm-up, each configuration in its own pinned
    subprocess, then the bandwidth probe on 2e8-byte arrays. About 2 minutes on 2 cores.
``--smoke``
    A seconds-long check that the whole suite runs (every backend checked against the
    reference, timed, compared, written out): N = 20000, float64, 1 thread, 1 step x 2
    repeats, in this process, bandwidth on 8 MB arrays. Its timings mean nothing.

Every row is checked against the float64 reference before it is timed (status ``wrong``
otherwise), reports its speed-up over the single-threaded NumPy baseline of the same run
(``x numpy``), and lesde is compared with the best thread count of every baseline. PyTorch
and JAX rows say ``unavailable`` when the package is missing (``pip install 'lesde[bench]'``).
The exit status is 1 when a row is ``wrong`` or failed, else 0.

Examples
--------
>>> import contextlib, io, json, os, tempfile
>>> out = os.path.join(tempfile.mkdtemp(), "bench.json")
>>> with contextlib.redirect_stdout(io.StringIO()):
...     code = main(["--smoke", "--backends", "lesde", "numpy", "--out", out])
>>> code, sorted({row["backend"] for row in json.load(open(out))["rows"]})
(0, ['lesde', 'numpy'])
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from .bandwidth import measure_bandwidth
from .baselines import BACKENDS
from .harness import cpu_busy_fraction, format_table, ratio_table, run_baselines, wait_for_idle

__all__ = ["PRESETS", "build_parser", "main"]

#: What --quick and --smoke set (explicit options still win, except --quick's problem size).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(signal="cross_entropy", N=[1e6], K=10, p=10, steps=2, repeats=3),
    "smoke": dict(
        signal="cross_entropy",
        N=[2e4],
        K=10,
        p=10,
        steps=1,
        repeats=2,
        dtypes=["float64"],
        threads=[1],
        in_process=True,
        bandwidth_bytes=8e6,
    ),
}
#: The settings without a preset (None: p = K, threads = 1 and all CPUs).
DEFAULTS: dict[str, Any] = dict(
    signal="cross_entropy",
    N=[1e6],
    K=10,
    p=None,
    steps=5,
    repeats=3,
    dtypes=["float64", "float32"],
    threads=None,
    in_process=False,
    bandwidth_bytes=2e8,
)
# Environment variables that decide how the libraries thread: recorded with the results.
THREAD_ENV = (
    "OPENBLAS_CORETYPE",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "XLA_FLAGS",
)


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 with one ``lesde: error:`` line, as in every lesde command."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(1, f"lesde: error: {message}\n")


def _default(key: str, none: str = "") -> str:
    """ "(default: ...)" for a setting, with what each preset sets instead, from DEFAULTS
    and PRESETS (so --help cannot drift from what runs).

    >>> _default("steps")
    '(default: 5; --quick: 2; --smoke: 1)'
    """

    def show(value: Any) -> str:
        if value is None:
            return none
        if isinstance(value, list):
            return " ".join(show(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    text = f"default: {show(DEFAULTS[key])}"
    for name, preset in PRESETS.items():
        if key in preset and preset[key] != DEFAULTS[key]:
            text += f"; --{name}: {show(preset[key])}"
    return f"({text})"


def build_parser() -> argparse.ArgumentParser:
    """The suite's options (``lesde bench --help``).

    >>> build_parser().parse_args(["--smoke"]).smoke
    True
    """
    ap = _Parser(
        prog="lesde bench",
        description="Time lesde's LE-SDE step against NumPy, threaded NumPy, PyTorch and JAX "
        "baselines of the same problem (each checked against a float64 reference first), "
        "and measure the memory bandwidth.",
    )
    preset = ap.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="the standard comparison (~2 min)")
    preset.add_argument(
        "--smoke", action="store_true", help="a seconds-long check that the suite runs"
    )
    ap.add_argument("--out", default=None, metavar="FILE", help="write the results as JSON")
    ap.add_argument(
        "--signal",
        default=None,
        choices=("linear", "cross_entropy"),
        help=f"the backprop signal {_default('signal')}",
    )
    ap.add_argument(
        "--N", type=float, nargs="+", default=None, help=f"sample counts {_default('N')}"
    )
    ap.add_argument("--K", type=int, default=None, help=f"classes {_default('K')}")
    ap.add_argument(
        "--p", type=int, default=None, help=f"feature dimension {_default('p', none='K')}"
    )
    ap.add_argument(
        "--backends",
        nargs="+",
        default=list(BACKENDS),
        choices=BACKENDS,
        help="the backends to time (default: all); missing ones (torch, jax) are reported "
        "unavailable",
    )
    ap.add_argument(
        "--dtypes",
        nargs="+",
        default=None,
        choices=("float64", "float32"),
        help=f"storage types {_default('dtypes')}",
    )
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help=f"thread counts {_default('threads', none='1 and all CPUs')}; numpy always 1",
    )
    ap.add_argument(
        "--steps", type=int, default=None, help=f"steps per timed run {_default('steps')}"
    )
    ap.add_argument(
        "--repeats", type=int, default=None, help=f"timed runs per row {_default('repeats')}"
    )
    ap.add_argument("--no-bandwidth", action="store_true", help="skip the bandwidth probe")
    ap.add_argument(
        "--bandwidth-bytes",
        type=float,
        default=None,
        help=f"bytes per array {_default('bandwidth_bytes')}",
    )
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each configuration wait up to SECONDS for other processes "
        "to leave the CPUs idle (shared machine; default: 0.0, no wait)",
    )
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="no subprocess per configuration (JAX threads cannot be changed; --smoke: on)",
    )
    return ap


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The options in force: the preset's, then what was given explicitly."""
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    chosen: dict[str, Any] = dict(DEFAULTS)
    preset = "quick" if args.quick else "smoke" if args.smoke else None
    if preset:
        chosen.update(PRESETS[preset])
    for key in chosen:
        given = getattr(args, key, None)
        if given not in (None, False) and not (preset == "quick" and key in ("N", "K", "p")):
            chosen[key] = given
    chosen["preset"] = preset
    chosen["p"] = chosen["p"] or chosen["K"]
    chosen["threads_given"] = chosen["threads"] is not None
    chosen["threads"] = tuple(chosen["threads"] or sorted({1, ncpu or 1}))
    return chosen


def _print_row(row: dict[str, Any]) -> None:
    if row.get("status") == "ok":
        what = f"{row['seconds_per_step'] * 1e3:.1f} ms/step"
    else:
        what = f"{row.get('status')}: {str(row.get('notes', ''))[:80]}"
    print(
        f"  {row['backend']:<9} {row['dtype']:<7} N={row['N']} thr={row['threads']}: {what}",
        flush=True,
    )


def _print_bandwidth(bw: dict[str, Any]) -> None:
    print(
        f"STREAM-like bandwidth (NumPy, {bw['nbytes_per_array'] / 1e6:.0f} MB arrays, "
        f"GB/s = 1e9 B/s, read + write counted, best of {bw['repeats']}; "
        f"other processes busy {bw['cpu_busy_other']}):"
    )
    print(f"{'threads':>7} {'copy':>8} {'triad':>8} {'triad_blocked':>14} {'triad_naive':>12}")
    for th, r in bw["results"].items():
        print(
            f"{th:>7} {r['copy_GBps']:8.2f} {r['triad_GBps']:8.2f} "
            f"{r['triad_blocked_GBps']:14.2f} {r['triad_naive_GBps']:12.2f}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the suite with the options ``argv``; print the tables; the exit status.

    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()) as text:
    ...     code = main(["--smoke", "--backends", "numpy", "--no-bandwidth"])
    >>> code, "x numpy" in text.getvalue()
    (0, True)
    """
    args = build_parser().parse_args(argv)
    s = _settings(args)
    started = time.time()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(
        f"# {len(s['threads'])} thread count(s) {s['threads']}, loadavg {load}, "
        f"signal={s['signal']}, steps={s['steps']}, repeats={s['repeats']}"
        + (f", preset {s['preset']}" if s["preset"] else ""),
        flush=True,
    )
    rows = run_baselines(
        [(int(n), s["K"], s["p"]) for n in s["N"]],
        backends=args.backends,
        dtypes=s["dtypes"],
        threads=s["threads"],
        signal=s["signal"],
        n_steps=s["steps"],
        repeats=s["repeats"],
        subprocess_isolation=not s["in_process"],
        backend_threads=None if s["threads_given"] else {"numpy": (1,)},
        progress=_print_row,
        wait_idle=args.wait_idle,
    )
    bw = None
    if not args.no_bandwidth:
        busy = wait_for_idle(args.wait_idle) if args.wait_idle > 0 else cpu_busy_fraction()
        repeats = 3 if s["preset"] == "quick" else 1 if s["preset"] == "smoke" else 5
        bw = measure_bandwidth(s["bandwidth_bytes"], threads=s["threads"], repeats=repeats)
        bw["cpu_busy_other"] = busy
    print()
    print(format_table(rows))
    if bw is not None:
        print()
        _print_bandwidth(bw)
    ratios = ratio_table(rows, bw)
    if ratios:
        print("\nlesde against the baselines of this run (best thread count of each):")
        print(ratios)
    if s["preset"] == "smoke":
        print("\n# --smoke: a check that the suite runs; these timings mean nothing")
    elapsed = time.time() - started
    print(f"\n# total {elapsed:.1f} s")
    if args.out:
        doc = {
            "rows": rows,
            "bandwidth": bw,
            "elapsed_s": elapsed,
            "argv": sys.argv[1:] if argv is None else list(argv),
            "settings": {k: v for k, v in s.items() if k != "threads_given"},
            "env": {k: os.environ.get(k) for k in THREAD_ENV},
        }
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1, allow_nan=True)
        print(f"# wrote {args.out}")
    failed = [r for r in rows if r.get("status") in ("wrong", "error")]
    for r in failed:
        print(
            f"lesde bench: {r['backend']} {r['dtype']} thr={r['threads']}: {r['status']}: "
            f"{str(r.get('notes', ''))[:300]}",
            file=sys.stderr,
        )
    return 1 if failed else 0
