"""The NumPy baselines of the benchmark: the LE-SDE step written the way a competent
researcher would write it in NumPy, whole-array (:class:`NumpyStepper`, backend "numpy") and
over row chunks in a thread pool (:class:`NumpyThreadedStepper`, backend "numpy_mt").

Implementation choices (micro-benchmarks on the 2-core Zen 3 box, N = 1e6, K = p = 10,
taken while other jobs shared the machine: read them as relative, not absolute, timings):


* numpy: whole-array vectorised code, preallocated buffers, in-place ufuncs.
  - Segment (per-class) sums: the layout is class-sorted, so S[k] is a sum over a contiguous
    slice. ``ones @ X[slice]`` (a BLAS gemv) took 7 ms for all classes versus 26 ms for
    ``np.add.reduceat(X, offsets, axis=0)``, 20 ms for a one-hot (K, N) matmul and 24 ms for
    ``X[slice].sum(axis=0)`` (NumPy reductions over a length-10 inner axis are slow). We use
    the gemv per class slice.
  - Row max for the stable softmax: ``X.max(axis=1)`` costs 50-80 ms; a loop of p
    ``np.maximum`` calls over the columns costs 17-29 ms. We use the column loop. Row sums use
    ``G @ ones`` (gemv), 4-14 ms versus 22-28 ms for ``G.sum(axis=1)``.
  - Noise: ``Generator(PCG64).standard_normal(out=Z, dtype=...)`` (ziggurat); about 120 ms
    per 1e7 normals in either precision and it dominates the step. (SFC64 is about 15% faster;
    we keep NumPy's default PCG64.) Element-wise ufuncs and the RNG are single-threaded, so
    ``threads`` only matters for BLAS (OPENBLAS_NUM_THREADS, read when NumPy is imported).
* numpy_mt: the same arithmetic, but rows are split into ``threads`` contiguous chunks
  processed by a ``ThreadPoolExecutor`` (NumPy ufuncs, BLAS calls and ``Generator`` fills
  release the GIL), each chunk walked in cache-sized blocks (default 2048 rows) so that the
  softmax / noise scratch stays in L2 and no full-size G or Z buffer is streamed through
  memory. One independent PCG64 stream per thread from ``SeedSequence.spawn``. A step is two
  parallel phases (class sums, then the update) with the K x K drift computed in between.
  This is about the best one can do without compiling code; it is not fused across steps.

Examples
--------
>>> from lesde.bench.problem import make_problem
>>> from lesde.bench.baselines_numpy import NumpyStepper
>>> st = NumpyStepper(make_problem("linear", 100, 2, 2))
>>> st.run(2); st.state().shape
(100, 2)
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .problem import Problem
from .stepper import Stepper

__all__ = ["NumpyStepper", "NumpyThreadedStepper"]


def _np_dtype(dtype: str):
    return np.float64 if dtype == "float64" else np.float32


def _np_rowmax(X, out):
    """Row max of a (n, p) array by a loop over the p columns (much faster than
    X.max(axis=1) for small p)."""
    np.copyto(out, X[:, 0])
    for j in range(1, X.shape[1]):
        np.maximum(out, X[:, j], out=out)
    return out


class _NumpyLoop(Stepper):
    """The NumPy steppers' shared part: ``run`` calls ``step`` (one LE-SDE step on the
    array ``X``) ``n_steps`` times in Python; ``state`` is ``X`` in float64."""

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, n_steps: int) -> None:
        for _ in range(int(n_steps)):
            self.step()

    def state(self) -> np.ndarray:
        return self.X.astype(np.float64)


class NumpyStepper(_NumpyLoop):
    """Whole-array vectorised NumPy: preallocated buffers, in-place ufuncs, gemv class sums.

    >>> from lesde.bench.problem import make_problem
    >>> st = NumpyStepper(make_problem("cross_entropy", 100, 2, 2), "float32")
    >>> st.run(1); st.X.dtype
    dtype('float32')
    """

    backend = "numpy"

    def __init__(
        self, prob: Problem, dtype: str = "float64", threads: int = 1, bit_generator: str = "PCG64"
    ):
        super().__init__(prob, dtype, threads)
        dt = _np_dtype(dtype)
        N, K, p = prob.N, prob.K, prob.p
        self.X = prob.X0.astype(dt)  # copy
        self.Z = np.empty((N, p), dt)
        self.rng = np.random.Generator(getattr(np.random, bit_generator)(prob.seed + 1))
        self.E = prob.E.astype(dt)
        self.slices = [
            slice(int(o), int(o + n)) for o, n in zip(prob.offsets, prob.counts, strict=True)
        ]
        self.ones_N = np.ones(int(prob.counts.max()), dt)
        self.S = np.empty((K, p), dt)
        self.sd = dt(prob.sigma * math.sqrt(prob.dt))
        self.dtv = dt(prob.dt)
        if prob.signal == "cross_entropy":
            self.G = np.empty((N, p), dt)
            self.m = np.empty(N, dt)
            self.ones_p = np.ones(p, dt)
            self.L = prob.label_counts.astype(dt)
        self.notes = f"{bit_generator}; elementwise+RNG single-threaded; BLAS gemv class sums"

    def _class_sums(self, A):
        for k, sl in enumerate(self.slices):
            n = sl.stop - sl.start
            np.dot(self.ones_N[:n], A[sl], out=self.S[k])
        return self.S

    def step(self):
        prob = self.prob
        X = self.X
        if prob.signal == "linear":
            S = self._class_sums(X)
        else:
            G, m = self.G, self.m
            _np_rowmax(X, m)
            np.subtract(X, m[:, None], out=G)
            np.exp(G, out=G)
            np.dot(G, self.ones_p, out=m)  # row sums
            np.divide(G, m[:, None], out=G)
            S = self._class_sums(G)
            np.subtract(self.L, S, out=S)  # S = L - sum softmax
        bdt = (self.E @ S) * (self.dtv / prob.N)  # (K, p), drift * dt
        Z = self.Z
        self.rng.standard_normal(out=Z, dtype=Z.dtype)
        Z *= self.sd
        X += Z
        for k, sl in enumerate(self.slices):
            X[sl] += bdt[k]


# --------------------------------------------------------------------------------------
# NumPy, blocked and threaded over row chunks
# --------------------------------------------------------------------------------------


class NumpyThreadedStepper(_NumpyLoop):
    """NumPy over ``threads`` row chunks in a thread pool, in cache-sized blocks.

    >>> from lesde.bench.problem import make_problem
    >>> st = NumpyThreadedStepper(make_problem("linear", 1000, 2, 2), threads=2)
    >>> st.run(1); st.notes
    '2 python threads, 2048-row blocks, PCG64 per thread'
    """

    backend = "numpy_mt"

    def __init__(
        self,
        prob: Problem,
        dtype: str = "float64",
        threads: int = 1,
        block_rows: int = 2048,
        bit_generator: str = "PCG64",
    ):
        super().__init__(prob, dtype, threads)
        dt = _np_dtype(dtype)
        N, K, p = prob.N, prob.K, prob.p
        T = max(1, int(threads))
        self.T = T
        self.X = prob.X0.astype(dt)
        self.E = prob.E.astype(dt)
        self.sd = dt(prob.sigma * math.sqrt(prob.dt))
        self.dtv = dt(prob.dt)
        self.L = prob.label_counts.astype(dt) if prob.label_counts is not None else None
        bounds = np.linspace(0, N, T + 1).round().astype(np.int64)
        seqs = np.random.SeedSequence(prob.seed + 1).spawn(T)
        bg = getattr(np.random, bit_generator)
        self.rngs = [np.random.Generator(bg(s)) for s in seqs]
        # per-thread segment lists: (start, stop, class), each inside one class, <= block_rows
        ends = prob.offsets + prob.counts
        self.segs = []
        for w in range(T):
            a0, a1 = int(bounds[w]), int(bounds[w + 1])
            segs = []
            for k in range(K):
                lo, hi = max(a0, int(prob.offsets[k])), min(a1, int(ends[k]))
                for s in range(lo, hi, block_rows):
                    segs.append((s, min(s + block_rows, hi), k))
            self.segs.append(segs)
        B = block_rows
        self.scratch = [dict(g=np.empty((B, p), dt), m=np.empty(B, dt)) for _ in range(T)]
        self.partial = [np.zeros((K, p), dt) for _ in range(T)]
        self.ones_B = np.ones(B, dt)
        self.ones_p = np.ones(p, dt)
        self.pool = ThreadPoolExecutor(max_workers=T) if T > 1 else None
        self.bdt = np.zeros((K, p), dt)
        self.notes = f"{T} python threads, {block_rows}-row blocks, {bit_generator} per thread"

    # phase 1: per-thread partial class sums of g (or of softmax for cross-entropy)
    def _phase1(self, w):
        X = self.X
        P = self.partial[w]
        P.fill(0)
        sc = self.scratch[w]
        ones_B = self.ones_B
        tmp = np.empty(self.prob.p, X.dtype)
        ce = self.prob.signal == "cross_entropy"
        for s, e, k in self.segs[w]:
            n = e - s
            x = X[s:e]
            if ce:
                g, m = sc["g"][:n], sc["m"][:n]
                _np_rowmax(x, m)
                np.subtract(x, m[:, None], out=g)
                np.exp(g, out=g)
                np.dot(g, self.ones_p, out=m)
                np.divide(g, m[:, None], out=g)
                np.dot(ones_B[:n], g, out=tmp)
            else:
                np.dot(ones_B[:n], x, out=tmp)
            P[k] += tmp

    # phase 2: x += b[c] dt + sigma sqrt(dt) xi over the thread's rows
    def _phase2(self, w):
        X = self.X
        g = self.scratch[w]["g"]
        rng = self.rngs[w]
        bdt, sd = self.bdt, self.sd
        for s, e, k in self.segs[w]:
            z = g[: e - s]
            rng.standard_normal(out=z, dtype=z.dtype)
            z *= sd
            z += bdt[k]
            X[s:e] += z

    def _par(self, fn):
        if self.pool is None:
            fn(0)
        else:
            for f in [self.pool.submit(fn, w) for w in range(self.T)]:
                f.result()

    def step(self):
        self._par(self._phase1)
        S = self.partial[0].copy()
        for P in self.partial[1:]:
            S += P
        if self.prob.signal == "cross_entropy":
            S = self.L - S
        np.multiply(self.E @ S, self.dtv / self.prob.N, out=self.bdt)
        self._par(self._phase2)

    def __del__(self):
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown(wait=False)
