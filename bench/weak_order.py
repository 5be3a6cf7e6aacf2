"""Weak order of every scheme x noise on a coupled cross-entropy LE-SDE, with error bars.

The weak error of a scheme at step dt is |E f(x_T^dt) - E f(x_T)| for a smooth f; here f is
the mean training loss at T = 1 (the average of a smooth function of each sample), E f(x_T)
is estimated by Gaussian Heun at a fine step, and each estimate carries the Monte Carlo
standard error of a mean over all samples. The slopes of log error against log dt are the
measured weak orders; the core declares them (lesde.sim.engine.scheme_orders):

    euler_maruyama x {gaussian, two_point, three_point}: 1;  heun x gaussian, three_point: 2;
    heun x two_point: 1 (the increments' fourth moment is off by O(dt)).

Every run starts from the same initial state, so only the noise differs between runs; the
Monte Carlo error of one run is the spread of three references with independent noise. It
must stay well below the bias at every dt used, which takes ~1e8 samples for Heun's
second-order errors: a GPU run (backend="cuda"); --quick runs a small version on the CPU
whose Heun rows are noise-dominated (the table says so).

    python bench/weak_order.py --quick --out weak_quick.json
    python bench/weak_order.py --backend cuda --samples 300000000 --out weak_gpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

import lesde
from lesde.sim.engine import scheme_orders

SCHEMES = ("euler_maruyama", "heun")
NOISES = ("gaussian", "two_point", "three_point")


def final_loss(noise, scheme, dt, n_per_class, backend, dtype, noise_seed):
    """The mean training loss at T = 1 of one run (all runs start from the same state)."""
    cfg = lesde.Config(
        n_classes=3,
        n_per_class=n_per_class,
        signal="cross_entropy",
        alpha=3.0,
        beta=0.0,
        sigma=2.0,
        init_scale=0.3,
        init_means=2 * (np.eye(3) - 1 / 3),
        noise=noise,
        scheme=scheme,
        dt=dt,
        t_end=1.0,
        record_every=int(round(1 / dt)),
        seed=1,
        noise_seed=noise_seed,
        backend=backend,
        dtype=dtype,
    )
    return float(lesde.simulate(cfg, progress=False).metrics["loss"][0, -1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small CPU run (about a minute)")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--samples", type=float, default=None, help="samples per run (3 classes)")
    ap.add_argument("--dtype", default="float64")
    ap.add_argument("--dts", type=float, nargs="+", default=[0.25, 0.125, 0.0625, 0.03125])
    ap.add_argument("--reference-dt", type=float, default=1 / 256)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    samples = int(args.samples or (3e5 if args.quick else 3e8))
    n = samples // 3
    dts = args.dts[:3] if args.quick else args.dts
    started = time.perf_counter()
    # Three references with independent noise: their spread is the Monte Carlo error of one
    # run (every run starts from the same initial state, so only the noise differs).
    refs = [
        final_loss("gaussian", "heun", args.reference_dt, n, args.backend, args.dtype, seed)
        for seed in (1001, 1002, 1003)
    ]
    ref, run_se = float(np.mean(refs)), float(np.std(refs, ddof=1))
    ref_se = run_se / math.sqrt(len(refs))
    print(
        f"reference (Gaussian Heun, dt = {args.reference_dt:g}): {ref:.6f}, Monte Carlo "
        f"error of one run {run_se:.1e} (from 3 noise seeds)",
        flush=True,
    )
    rows = []
    for scheme in SCHEMES:
        for noise in NOISES:
            errors, ses = [], []
            for dt in dts:
                errors.append(
                    final_loss(noise, scheme, dt, n, args.backend, args.dtype, 1001) - ref
                )
                ses.append(math.hypot(run_se, ref_se))
            err = np.abs(errors)
            slope = float(np.polyfit(np.log(dts), np.log(err), 1)[0])
            resolved = bool(np.all(err > 3 * np.array(ses)))
            rows.append(
                dict(
                    scheme=scheme,
                    noise=noise,
                    dts=list(dts),
                    errors=errors,
                    standard_errors=ses,
                    slope=slope,
                    declared=scheme_orders(scheme, noise)["weak"],
                    resolved=resolved,
                )
            )
            flag = "" if resolved else "  (noise-dominated: some |error| < 3 SE)"
            print(
                f"{scheme:15s} {noise:12s} slope {slope:5.2f} (declared "
                f"{rows[-1]['declared']:.0f}) errors "
                + " ".join(f"{e:+.1e}+-{s:.0e}" for e, s in zip(errors, ses, strict=True))
                + flag,
                flush=True,
            )
    out = dict(
        samples=3 * n,
        backend=args.backend,
        dtype=args.dtype,
        reference=ref,
        reference_se=ref_se,
        reference_dt=args.reference_dt,
        rows=rows,
        seconds=time.perf_counter() - started,
        lesde=lesde.build_info(),
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
