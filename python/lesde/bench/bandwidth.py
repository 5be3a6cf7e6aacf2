"""STREAM-like memory bandwidth with NumPy (copy and triad), single- and multi-threaded.

Convention (STREAM's): bytes moved = bytes read + bytes written by the kernel's definition,
ignoring write-allocate traffic and any temporaries:
    copy   a = b          2 * 8 * n bytes
    triad  a = b + s * c  3 * 8 * n bytes
(float64 arrays). The numbers are what a roofline for the LE-SDE step should be compared
with: one Euler-Maruyama step must at least read and write X once (2 * N * p * itemsize).

Implementation:
* copy:  ``np.copyto(a, b)`` (glibc memcpy, which uses non-temporal stores for large sizes).
* triad: NumPy has no fused triad, and ``np.multiply(c, s, out=a); a += b`` makes two passes
  (5 array streams for the 3 counted). We therefore compute it in cache-sized blocks
  (``block`` elements: ``tmp = s * c[blk]; a[blk] = tmp + b[blk]`` with ``tmp`` in L1/L2),
  so memory sees the 3 counted streams (+ write-allocate on a). The naive two-pass version
  is reported too (``triad_naive``) with the same 3 x 8 x n byte count, i.e. as the
  bandwidth a NumPy user effectively gets; ``triad`` is the better of the two.
  Observed on the 2-core Zen 3 box: the naive version is usually the faster one (about
  11-12 vs 8-10 GB/s counted). Writing a stream that is not read first (``a[blk] = ...``)
  costs a read-for-ownership that the prefetchers handle poorly here, while the naive
  version's second pass reads ``a`` before writing it. ``copy`` uses memcpy's
  non-temporal stores and so avoids that cost (about 20-22 GB/s counted).
* multi-threaded: the arrays are cut into ``threads`` contiguous chunks processed by a
  ``concurrent.futures.ThreadPoolExecutor`` (NumPy ufuncs and memcpy release the GIL); the
  time is the wall time of the slowest chunk (all chunks submitted together). The single-
  thread numbers use the same code with one chunk, run in the calling thread.

Each figure is the best of ``repeats`` runs after one warm-up (pages are touched before
timing). Default array size 2e8 bytes (25e6 float64) per array, 3 arrays = 600 MB.
``python -m lesde.bench.bandwidth`` prints the JSON of :func:`measure_bandwidth`.

Examples
--------
>>> r = measure_bandwidth(8e6, threads=(1,), repeats=1)
>>> sorted(r["results"]["1"])
['copy_GBps', 'triad_GBps', 'triad_blocked_GBps', 'triad_naive_GBps']
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def _copy_chunk(a, b, lo, hi):
    np.copyto(a[lo:hi], b[lo:hi])


def _triad_chunk(a, b, c, s, lo, hi, block, tmp):
    for i in range(lo, hi, block):
        j = min(i + block, hi)
        t = tmp[: j - i]
        np.multiply(c[i:j], s, out=t)
        np.add(t, b[i:j], out=a[i:j])


def _triad_naive_chunk(a, b, c, s, lo, hi):
    np.multiply(c[lo:hi], s, out=a[lo:hi])
    np.add(a[lo:hi], b[lo:hi], out=a[lo:hi])


__all__ = ["main", "measure_bandwidth"]


def measure_bandwidth(
    nbytes: float = 2e8,
    threads=(1, None),
    repeats: int = 5,
    block: int = 32768,
) -> dict:
    """Return {'nbytes_per_array', 'repeats', 'results': {threads: {kernel: GB/s}}}.

    ``threads``: thread counts to measure; None means ``os.cpu_count()`` (or the affinity
    mask's size). GB = 1e9 bytes.

    >>> measure_bandwidth(8e6, threads=(1, 2), repeats=1)["results"]["2"]["copy_GBps"] > 0
    True
    """
    n = int(nbytes // 8)
    a = np.zeros(n)
    b = np.full(n, 1.0)
    c = np.full(n, 2.0)
    s = 3.0
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        ncpu = os.cpu_count() or 1
    out = {
        "nbytes_per_array": n * 8,
        "repeats": repeats,
        "block_elements": block,
        "cpus_available": ncpu,
        "results": {},
    }
    for T in threads:
        T = ncpu if T is None else int(T)
        if str(T) in out["results"]:
            continue
        bounds = np.linspace(0, n, T + 1).astype(np.int64)
        chunks = [(int(bounds[i]), int(bounds[i + 1])) for i in range(T)]
        tmps = [np.empty(block) for _ in range(T)]
        pool = ThreadPoolExecutor(max_workers=T) if T > 1 else None

        def run(kind, chunks=chunks, tmps=tmps, pool=pool):
            if kind == "copy":
                jobs = [(_copy_chunk, (a, b, lo, hi)) for lo, hi in chunks]
            elif kind == "triad_blocked":
                jobs = [
                    (_triad_chunk, (a, b, c, s, lo, hi, block, tmps[w]))
                    for w, (lo, hi) in enumerate(chunks)
                ]
            else:
                jobs = [(_triad_naive_chunk, (a, b, c, s, lo, hi)) for lo, hi in chunks]
            t0 = time.perf_counter()
            if pool is None:
                for fn, args in jobs:
                    fn(*args)
            else:
                for f in [pool.submit(fn, *args) for fn, args in jobs]:
                    f.result()
            return time.perf_counter() - t0

        res = {}
        for kind, nstreams in (("copy", 2), ("triad_blocked", 3), ("triad_naive", 3)):
            run(kind)  # warm-up
            best = min(run(kind) for _ in range(repeats))
            res[kind + "_GBps"] = nstreams * 8 * n / best / 1e9
        res["triad_GBps"] = max(res["triad_blocked_GBps"], res["triad_naive_GBps"])
        out["results"][str(T)] = res
        if pool is not None:
            pool.shutdown()
    # sanity: triad result is correct
    assert a[0] == 1.0 + 3.0 * 2.0
    return out


def main(argv=None) -> int:
    """``python -m lesde.bench.bandwidth [--nbytes B] [--repeats R] [--threads T ...]``.

    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()) as text:
    ...     code = main(["--nbytes", "8e6", "--repeats", "1", "--threads", "1"])
    >>> code, '"copy_GBps"' in text.getvalue()
    (0, True)
    """
    ap = argparse.ArgumentParser(
        prog="python -m lesde.bench.bandwidth", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--nbytes", type=float, default=2e8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--threads",
        type=int,
        nargs="*",
        default=None,
        help="thread counts (default: 1 and all available CPUs)",
    )
    args = ap.parse_args(argv)
    th = tuple(args.threads) if args.threads else (1, None)
    print(json.dumps(measure_bandwidth(args.nbytes, th, args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
