"""GPU benchmark of the CUDA backend (run by bench/gpu_check.sh on a machine with a GPU).

For N * p >= 1e8 (N = 1e7, K = p = 10 by default), float32 and float64, cross-entropy and
linear signals, Gaussian and two-point noise:

* lesde's CUDA engine: time per step (records off), the bytes a step must move (the state
  read and written once per sweep) over that time, and that bandwidth as a fraction of the
  device's measured copy bandwidth (a device-to-device copy through PyTorch, counting bytes
  read plus written: the roofline) and of its nominal peak;
* the same step written by hand in PyTorch on the same GPU (preallocated tensors, in-place
  ops, the same drift and noise law), as a same-run ratio;
* lesde's CPU engine on this machine's cores, as a same-run ratio;
* the cost of a record step on the GPU (records on the device) over a plain step.

Writes JSON (--out) and prints a table. Needs lesde built with LESDE_CUDA=ON on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import lesde
from lesde import _core
from lesde.sim.engine import allocate, engine_config


def per_step(sim, short: int, long: int, repeats: int = 2) -> float:
    """Seconds per step: two advances of different lengths, so the copy of the state back
    to the host at the end of each advance cancels; the best of `repeats`."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        sim.advance(sim.step + short)
        t1 = time.perf_counter()
        sim.advance(sim.step + long)
        t2 = time.perf_counter()
        best = min(best, ((t2 - t1) - (t1 - t0)) / (long - short))
    return best


def config(N, K, signal, dtype, noise, threads, record_every=1_000_000):
    return lesde.Config(
        n_classes=K,
        n_per_class=N // K,
        signal=signal,
        dtype=dtype,
        noise=noise,
        alpha=1.0,
        beta=0.2,
        sigma=0.5,
        dt=1e-3,
        steps=1_000_000,
        record_every=record_every,
        threads=threads,
        seed=1,
    )


def engine(cfg, backend):
    bits = "64" if cfg.dtype == "float64" else "32"
    name = ("CudaSimulation" if backend == "cuda" else "Simulation") + bits
    arrays = allocate(cfg)
    sim = getattr(_core, name)(engine_config(cfg), **arrays)
    sim.initialize()
    return sim, arrays


def copy_bandwidth(torch, nbytes=4 << 30) -> float:
    """Device-to-device copy, bytes read + written per second (median of 10)."""
    a = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        b.copy_(a)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * nbytes / float(np.median(times))


def torch_step_time(torch, N, K, signal, dtype, noise, steps=50, dev="cuda") -> float:
    """The LE-SDE Euler step written by hand in PyTorch on the GPU (seconds per step)."""
    dt, sigma = 1e-3, 0.5
    tdtype = torch.float64 if dtype == "float64" else torch.float32
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    n = N // K
    X = torch.randn(N, K, dtype=tdtype, device=dev)
    y = torch.arange(K, device=dev).repeat_interleave(n)
    onehot = torch.nn.functional.one_hot(y, K).to(tdtype)
    E = torch.full((K, K), 0.2, dtype=tdtype, device=dev)
    E.fill_diagonal_(1.0)
    g = torch.empty_like(X)
    xi = torch.empty_like(X)
    bits = torch.empty(N, K, dtype=torch.uint8, device=dev)

    def step():
        if signal == "cross_entropy":
            torch.sub(X, X.amax(dim=1, keepdim=True), out=g)
            g.exp_()
            g.div_(g.sum(dim=1, keepdim=True))
            torch.sub(onehot, g, out=g)
        else:
            g.copy_(X)
        sums = g.view(K, n, K).sum(dim=1)  # classes are contiguous blocks of n samples
        b = (E @ sums) / N  # K x p drift
        if noise == "two_point":  # +-1: a random bit each
            bits.random_(0, 2)
            xi.copy_(bits)
            xi.mul_(2.0).sub_(1.0)
        else:
            xi.normal_()
        X.view(K, n, K).add_(b.view(K, 1, K), alpha=dt)
        X.add_(xi, alpha=sigma * dt**0.5)

    for _ in range(3):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - t0) / steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=float, default=1e7)
    ap.add_argument("--K", type=int, default=10)
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    N, K = int(args.N), args.K
    cores = os.cpu_count() or 1
    info = _core.cuda_device_info()
    try:
        import torch

        measured = copy_bandwidth(torch)
    except Exception as err:  # noqa: BLE001 - report and go on without the PyTorch rows
        torch, measured = None, float("nan")
        print(f"PyTorch on the GPU unavailable: {err}")
    print(
        f"device {info['name']}: nominal peak {info['peak_bandwidth'] / 1e9:.0f} GB/s, "
        f"measured copy {measured / 1e9:.0f} GB/s; CPU: {cores} threads",
        flush=True,
    )
    rows = []
    for signal in ("cross_entropy", "linear"):
        for dtype in ("float32", "float64"):
            for noise in ("gaussian", "two_point"):
                cfg = config(N, K, signal, dtype, noise, cores)
                item = 4 if dtype == "float32" else 8
                traffic = 2 * N * K * item  # state read + written once per sweep
                sim, arrays = engine(cfg, "cuda")
                sim.advance(3)
                gpu = per_step(sim, 10, 110)
                assert (arrays["status"] == 0).all(), "the GPU run became non-finite"
                del sim, arrays
                row = dict(
                    signal=signal,
                    dtype=dtype,
                    noise=noise,
                    N=N,
                    K=K,
                    gpu_ms=gpu * 1e3,
                    bandwidth=traffic / gpu,
                    of_copy=traffic / gpu / measured,
                    of_peak=traffic / gpu / max(info["peak_bandwidth"], 1.0),
                )
                if torch is not None:
                    row["torch_ms"] = torch_step_time(torch, N, K, signal, dtype, noise) * 1e3
                if not args.skip_cpu and noise == "two_point":
                    csim, carrays = engine(cfg, "cpu")
                    csim.advance(1)
                    row["cpu_ms"] = per_step(csim, 1, 3, repeats=1) * 1e3
                    del csim, carrays
                rows.append(row)
                print(json.dumps(row), flush=True)
    # A record step on the GPU (records on the device) against a plain step.
    cfg = config(N, K, "cross_entropy", "float64", "gaussian", cores, record_every=1)
    sim, arrays = engine(cfg, "cuda")
    sim.advance(2)
    record = per_step(sim, 4, 24)
    plain = next(
        r["gpu_ms"]
        for r in rows
        if r["signal"] == "cross_entropy" and r["dtype"] == "float64" and r["noise"] == "gaussian"
    )
    del sim, arrays
    records = dict(record_ms=record * 1e3, plain_ms=plain, ratio=record * 1e3 / plain)
    print(json.dumps(records), flush=True)

    print(
        f"\nN = {N:.3g}, K = p = {K} (N p = {N * K:.3g}); roofline: measured copy "
        f"{measured / 1e9:.0f} GB/s (nominal {info['peak_bandwidth'] / 1e9:.0f})"
    )
    head = (
        f"{'signal':<14} {'dtype':<8} {'noise':<10} {'GPU ms':>8} {'GB/s':>6} {'of copy':>8} "
        f"{'torch ms':>9} {'x torch':>8} {'CPU ms':>8} {'x CPU':>7}"
    )
    print(head + "\n" + "-" * len(head))
    for r in rows:
        t, c = r.get("torch_ms", float("nan")), r.get("cpu_ms", float("nan"))
        print(
            f"{r['signal']:<14} {r['dtype']:<8} {r['noise']:<10} {r['gpu_ms']:8.3f} "
            f"{r['bandwidth'] / 1e9:6.0f} {r['of_copy']:8.1%} {t:9.3f} {t / r['gpu_ms']:8.1f} "
            f"{c:8.1f} {c / r['gpu_ms']:7.0f}"
        )
    print(
        f"record step / plain step (cross-entropy float64, records on the device): "
        f"{records['ratio']:.2f}"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                dict(
                    device=info,
                    measured_copy=measured,
                    cpu_threads=cores,
                    rows=rows,
                    records=records,
                    lesde=lesde.build_info(),
                ),
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
