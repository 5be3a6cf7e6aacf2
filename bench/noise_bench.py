"""lesde's CPU step with each noise kind, against the NumPy baseline and the memory roofline,
all measured in one process (same-run ratios; a busy column for a shared machine).

For K = p = 10, N = 1e6 (default), float64 and float32, cross-entropy and linear signals:
lesde with Gaussian, two-point and no noise (sigma = 0: nothing is drawn) on all cores,
the vectorised NumPy baseline of lesde.bench (Gaussian noise, one thread: the reference of
`lesde bench`), and the machine's copy bandwidth (bytes read plus written), so that each
lesde row reports its ratio to NumPy and its fraction of the roofline (the state read and
written once per step). Rows alternate between the engines repeat by repeat, so a drift of
the machine's speed shows in both.

    python bench/noise_bench.py --out bench/results/noise_2core.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from lesde.bench.bandwidth import measure_bandwidth
from lesde.bench.baselines import make_stepper
from lesde.bench.harness import cpu_busy_fraction
from lesde.bench.problem import make_problem
from lesde.version import build_info


def normal_rates(repeats: int) -> dict[str, float]:
    """Standard normals per ns on one thread, filled into an array of 2^16 that stays in
    cache (so the generator, not memory, is timed): lesde's float64 and float32 fill, and
    NumPy's own (its ziggurat on PCG64 and on Philox4x64) in the same run."""
    import numpy as np

    from lesde import _core

    size, rounds = 1 << 16, 64
    out64, out32 = np.empty(size), np.empty(size, dtype=np.float32)
    gaussian = _core.NoiseKind.gaussian
    pcg, philox = np.random.default_rng(1), np.random.Generator(np.random.Philox(1))
    makers = {
        "lesde float64 (ziggurat, Philox4x32)": lambda k: _core.fill_increments(
            gaussian, 1, 0, k, 0, out64
        ),
        "lesde float32": lambda k: _core.fill_increments(gaussian, 1, 0, k, 0, out32),
        "NumPy float64 (ziggurat, PCG64)": lambda k: pcg.standard_normal(out=out64),
        "NumPy float64 (ziggurat, Philox4x64)": lambda k: philox.standard_normal(out=out64),
    }
    best = {name: float("inf") for name in makers}
    for _ in range(max(repeats, 3)):  # alternate, best of
        for name, make in makers.items():
            t0 = time.perf_counter()
            for k in range(rounds):
                make(k)
            best[name] = min(best[name], (time.perf_counter() - t0) / (rounds * size))
    return {name: 1e-9 / t for name, t in best.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=float, default=1e6)
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    N, K = int(args.N), args.K
    busy = cpu_busy_fraction(0.5)
    bw = measure_bandwidth(2e8, threads=(args.threads,), repeats=5)
    copy = bw["results"][str(args.threads)]["copy_GBps"] * 1e9  # bytes/s, read + written
    rows = []
    for signal in ("cross_entropy", "linear"):
        for dtype in ("float64", "float32"):
            prob = make_problem(signal, N, K, K, sigma=0.1, seed=1)
            quiet = make_problem(signal, N, K, K, sigma=0.0, seed=1)
            engines = {
                "numpy": make_stepper("numpy", problem=prob, dtype=dtype, threads=1),
                "gaussian": make_stepper("lesde", problem=prob, dtype=dtype, threads=args.threads),
                "two_point": make_stepper(
                    "lesde", problem=prob, dtype=dtype, threads=args.threads, noise="two_point"
                ),
                "sigma0": make_stepper("lesde", problem=quiet, dtype=dtype, threads=args.threads),
            }
            times = {name: [] for name in engines}
            for engine in engines.values():
                engine.run(1)  # warm-up
            for _ in range(args.repeats):  # alternate: drift shows in every engine
                for name, engine in engines.items():
                    n = 1 if name == "numpy" else args.steps
                    t0 = time.perf_counter()
                    engine.run(n)
                    times[name].append((time.perf_counter() - t0) / n)
            item = 8 if dtype == "float64" else 4
            roofline = 2 * N * K * item / copy  # seconds: the state read + written once
            numpy = statistics.median(times["numpy"])
            for name in ("gaussian", "two_point", "sigma0"):
                t = statistics.median(times[name])
                rows.append(
                    dict(
                        signal=signal,
                        dtype=dtype,
                        noise=name,
                        ms=t * 1e3,
                        numpy_ms=numpy * 1e3,
                        x_numpy=numpy / t,
                        of_roofline=roofline / t,
                        roofline_ms=roofline * 1e3,
                    )
                )
            del engines
    normals = normal_rates(args.repeats)
    busy_after = cpu_busy_fraction(0.5)
    print(
        f"N = {N:.0e}, K = p = {K}, {args.threads} threads; copy bandwidth "
        f"{copy / 1e9:.1f} GB/s; busy before {busy}, after {busy_after}"
    )
    print(
        f"{'signal':<14} {'dtype':<8} {'noise':<10} {'ms/step':>8} {'x NumPy':>8} "
        f"{'of roofline':>11}"
    )
    for r in rows:
        print(
            f"{r['signal']:<14} {r['dtype']:<8} {r['noise']:<10} {r['ms']:8.2f} "
            f"{r['x_numpy']:8.1f} {r['of_roofline']:11.1%}"
        )
    step = {(r["signal"], r["dtype"], r["noise"]): r["ms"] for r in rows}
    ratio = (
        step["cross_entropy", "float64", "gaussian"] / step["cross_entropy", "float32", "gaussian"]
    )
    print(f"cross-entropy Gaussian: float32 is {ratio:.2f}x float64")
    print("standard normals on one thread (into an array in cache), per ns:")
    for name, rate in normals.items():
        print(f"  {name:<34} {rate:6.3f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                dict(
                    N=N,
                    K=K,
                    threads=args.threads,
                    copy_bandwidth=copy,
                    bandwidth=bw,
                    busy_before=busy,
                    busy_after=busy_after,
                    rows=rows,
                    normals_per_ns_one_thread=normals,
                    lesde=build_info(),
                ),
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
