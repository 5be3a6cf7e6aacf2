"""Command-line benchmark of the LE-SDE step baselines (NumPy, threaded NumPy, PyTorch, JAX)
plus STREAM-like bandwidth.

    python bench/run_bench.py --quick --out bench_quick.json
    python bench/run_bench.py --N 100000 1000000 --K 10 --p 10 --signal linear \
        --backends numpy torch jax --dtypes float32 --threads 1 2 --steps 5 --repeats 5

--quick: signal cross_entropy, K = p = 10, N = 1e6, float64 and float32, numpy (1 thread),
numpy_mt / torch / jax with 1 and all CPUs, 2 timed steps x 3 repeats after a warm-up, and
bandwidth on 2e8-byte arrays. Under 2 minutes on the 2-core development box.
Each configuration runs in its own subprocess (see harness.py for thread control).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description="LE-SDE step baselines benchmark")
    ap.add_argument("--quick", action="store_true", help="the standard quick configuration")
    ap.add_argument("--out", default=None, help="write JSON results here")
    ap.add_argument("--signal", default="cross_entropy", choices=("linear", "cross_entropy"))
    ap.add_argument("--N", type=float, nargs="+", default=[1e6])
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--p", type=int, default=None, help="default: K")
    ap.add_argument(
        "--backends",
        nargs="+",
        default=["lesde", "numpy", "numpy_mt", "torch", "jax"],
        help="any of lesde numpy numpy_mt torch jax (missing ones are reported unavailable)",
    )
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help="thread counts (default: 1 and all CPUs; numpy always 1)",
    )
    ap.add_argument("--steps", type=int, default=None, help="steps per timed run")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--no-bandwidth", action="store_true")
    ap.add_argument("--bandwidth-bytes", type=float, default=2e8)
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each configuration wait up to SECONDS for other processes "
        "to leave the CPUs idle (shared machine)",
    )
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="no subprocess per configuration (JAX threads cannot be changed)",
    )
    args = ap.parse_args(argv)

    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = tuple(args.threads) if args.threads else tuple(sorted({1, ncpu}))
    steps = args.steps or (2 if args.quick else 5)
    repeats = args.repeats or 3
    p = args.p or args.K
    sizes = [(int(n), args.K, p) for n in args.N]
    if args.quick:
        sizes, args.signal = [(1_000_000, 10, 10)], "cross_entropy"
    backend_threads = {"numpy": (1,)} if not args.threads else None

    t_start = time.time()
    print(
        f"# {len(os.sched_getaffinity(0))} CPUs, loadavg {os.getloadavg()}, "
        f"signal={args.signal}, steps={steps}, repeats={repeats}",
        flush=True,
    )

    def progress(row):
        ms = (
            f"{row['seconds_per_step'] * 1e3:.1f} ms/step"
            if row.get("status") == "ok"
            else row.get("status")
        )
        print(
            f"  {row['backend']:<9} {row['dtype']:<7} N={row['N']} thr={row['threads']}: {ms}",
            flush=True,
        )

    rows = harness.run_baselines(
        sizes,
        backends=args.backends,
        dtypes=args.dtypes,
        threads=threads,
        signal=args.signal,
        n_steps=steps,
        repeats=repeats,
        subprocess_isolation=not args.in_process,
        backend_threads=backend_threads,
        progress=progress,
        wait_idle=args.wait_idle,
    )
    bw = None
    if not args.no_bandwidth:
        import bandwidth

        busy = (
            harness.wait_for_idle(args.wait_idle)
            if args.wait_idle > 0
            else harness.cpu_busy_fraction()
        )
        bw = bandwidth.measure_bandwidth(
            args.bandwidth_bytes, threads=threads, repeats=3 if args.quick else 5
        )
        bw["cpu_busy_other"] = busy
    print()
    print(harness.format_table(rows))
    if bw is not None:
        print()
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
    ratios = harness.ratio_table(rows, bw)
    if ratios:
        print("\nlesde against the baselines of this run (best thread count of each):")
        print(ratios)
    elapsed = time.time() - t_start
    print(f"\n# total {elapsed:.1f} s")
    if args.out:
        doc = {
            "rows": rows,
            "bandwidth": bw,
            "elapsed_s": elapsed,
            "argv": sys.argv[1:] if argv is None else list(argv),
            "env": {
                k: os.environ.get(k)
                for k in (
                    "OPENBLAS_CORETYPE",
                    "OMP_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS",
                    "XLA_FLAGS",
                )
            },
        }
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"# wrote {args.out}")
    return rows, bw


if __name__ == "__main__":
    main()
