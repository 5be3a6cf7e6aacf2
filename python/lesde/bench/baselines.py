"""Baseline implementations of one LE-SDE Euler-Maruyama step (MODEL.md, section 2(b)).

These are the comparison points for lesde's fused C++ step: the same model written the way
a competent researcher would write it in NumPy, PyTorch (CPU) and JAX (CPU).

Model (all baselines implement exactly this):

    state X (N, p), samples stored class-sorted: class k occupies rows
        offsets[k] : offsets[k] + counts[k]
    c (N,) true classes, y (N,) training labels (y == c unless given), E (K, K) impact matrix
    S[k']  = sum_{j : c_j = k'} g(x_j, y_j)                      (K, p)
    b      = (1 / N) E @ S   i.e.  b_k = sum_k' pi_k' E[k, k'] Gbar_k'
    x_i   <- x_i + b[c_i] dt + sigma sqrt(dt) xi_i,   xi_i ~ N(0, I_p)

Signals: "linear" g(x, y) = x; "cross_entropy" g(x, y) = e_y - softmax(x) (needs p == K).

For the cross-entropy signal every baseline uses the identity
    S[k'] = L[k'] - sum_{j : c_j = k'} softmax(x_j),     L[k', l] = #{j : c_j = k', y_j = l}
where the label-count matrix L is fixed for the whole run and computed once; this saves
forming e_y - softmax(x) sample by sample and is what anyone who wrote the formula down
would do.

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
* torch: CPU tensors, ``torch.no_grad``, preallocated buffers, in-place ops. The softmax is
  written out (amax, sub, exp_, sum, div_) into preallocated buffers because
  ``torch.softmax(X, 1)`` over a length-10 last axis is 2-4x slower (160-200 ms vs
  50-70 ms single-threaded). Class sums: per-class slice ``.sum(0)`` (class-sorted layout);
  ``index_add_`` and ``torch.segment_reduce`` were slower. Noise: ``torch.randn(..., out=Z,
  generator=gen)``; note torch's CPU float64 normal sampler is slow (about 300 ms per 1e7 on
  one thread vs 37 ms for float32). ``threads`` -> ``torch.set_num_threads`` (process-wide).
* jax: one ``jax.jit``-compiled ``lax.scan`` over the n steps (state donated), noise from
  ``jax.random.normal`` with a key split every step (default threefry2x32 PRNG; the
  ``jax_prng="rbg"`` / ``"unsafe_rbg"`` options were not faster on this CPU), class sums
  with ``jax.ops.segment_sum(indices_are_sorted=True)``, softmax with ``jax.nn.softmax``.
  float64 needs ``jax_enable_x64``, which we switch on when JAX is first loaded here
  (float32 arrays keep float32 because every dtype is explicit). XLA has no CPU
  thread-count flag (see ``configure_jax_threads``); the harness runs every configuration
  in a fresh subprocess pinned to ``threads`` cores, which is what limits it.

All imports of torch / jax are lazy: ``available_backends()`` reports what can run.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

SIGNALS = ("linear", "cross_entropy")
BACKENDS = ("numpy", "numpy_mt", "torch", "jax")
DTYPES = ("float64", "float32")


# --------------------------------------------------------------------------------------
# Problem definition (shared by all baselines so they start from the same state)
# --------------------------------------------------------------------------------------


def default_impact(K: int, alpha: float = 1.0, beta: float = 0.2) -> np.ndarray:
    """Canonical impact matrix: alpha on the diagonal, beta off it."""
    E = np.full((K, K), float(beta))
    np.fill_diagonal(E, float(alpha))
    return E


@dataclass
class Problem:
    """One LE-SDE instance in class-sorted layout (float64 master copy of X0)."""

    signal: str
    N: int
    K: int
    p: int
    counts: np.ndarray  # (K,) int64, n_k
    offsets: np.ndarray  # (K,) int64, first row of class k
    c: np.ndarray  # (N,) int64 true classes, sorted
    y: np.ndarray  # (N,) int64 training labels
    E: np.ndarray  # (K, K) float64
    dt: float
    sigma: float
    X0: np.ndarray  # (N, p) float64
    seed: int = 0
    label_counts: np.ndarray = field(default=None)  # (K, K): L[k', l] = #{c = k', y = l}

    @property
    def pi(self) -> np.ndarray:
        return self.counts / self.N


def make_problem(
    signal: str,
    N: int,
    K: int,
    p: int,
    *,
    counts=None,
    E=None,
    alpha: float = 1.0,
    beta: float = 0.2,
    dt: float = 1e-2,
    sigma: float = 0.1,
    seed: int = 0,
    X0=None,
    y=None,
    x0_scale: float = 1.0,
) -> Problem:
    """Build a class-sorted problem. ``counts`` defaults to (nearly) balanced classes.

    ``y`` (training labels, same class-sorted row order) defaults to ``c``.
    ``X0`` defaults to ``x0_scale`` * standard normal (PCG64(seed), float64).
    """
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
    if signal == "cross_entropy" and p != K:
        raise ValueError("cross_entropy signal needs p == K (no head matrix in the baselines)")
    N, K, p = int(N), int(K), int(p)
    if counts is None:
        counts = np.full(K, N // K, dtype=np.int64)
        counts[: N % K] += 1
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (K,) or counts.sum() != N or (counts <= 0).any():
        raise ValueError("counts must be K positive integers summing to N")
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    c = np.repeat(np.arange(K, dtype=np.int64), counts)
    y = c.copy() if y is None else np.asarray(y, dtype=np.int64)
    if y.shape != (N,):
        raise ValueError("y must have shape (N,)")
    E = default_impact(K, alpha, beta) if E is None else np.array(E, dtype=np.float64)
    if E.shape != (K, K):
        raise ValueError("E must be K x K")
    if X0 is None:
        rng = np.random.Generator(np.random.PCG64(seed))
        X0 = rng.standard_normal((N, p))
        if x0_scale != 1.0:
            X0 *= x0_scale
    X0 = np.array(X0, dtype=np.float64)
    if X0.shape != (N, p):
        raise ValueError("X0 must be N x p")
    L = None
    if signal == "cross_entropy":
        L = np.zeros((K, K))
        np.add.at(L, (c, y), 1.0)  # once, at set-up
    return Problem(
        signal, N, K, p, counts, offsets, c, y, E, float(dt), float(sigma), X0, int(seed), L
    )


# --------------------------------------------------------------------------------------
# Reference (plain, obviously-correct NumPy float64, written from the model formula)
# --------------------------------------------------------------------------------------


def _ref_signal(signal: str, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    if signal == "linear":
        return X.copy()
    z = X - X.max(axis=1, keepdims=True)
    s = np.exp(z)
    s /= s.sum(axis=1, keepdims=True)
    return np.eye(X.shape[1])[y] - s


def reference_drift(prob: Problem, X: np.ndarray) -> np.ndarray:
    """b (K, p) with b_k = sum_k' pi_k' E[k, k'] Gbar_k' (MODEL.md 2(b)), by masks, not slices."""
    K, p = prob.K, prob.p
    Gbar = np.zeros((K, p))
    for k in range(K):
        mask = prob.c == k
        Gbar[k] = _ref_signal(prob.signal, X[mask], prob.y[mask]).mean(axis=0)
    pi = prob.pi
    b = np.zeros((K, p))
    for k in range(K):
        for kp in range(K):
            b[k] += pi[kp] * prob.E[k, kp] * Gbar[kp]
    return b


def reference_run(prob: Problem, n_steps: int, X=None, noises=None) -> np.ndarray:
    """Euler-Maruyama in float64. ``noises``: optional iterable of (N, p) standard normals
    (one per step); without it the run is deterministic (sigma is ignored)."""
    X = prob.X0.copy() if X is None else np.array(X, dtype=np.float64)
    it = iter(noises) if noises is not None else None
    for _ in range(n_steps):
        b = reference_drift(prob, X)
        X = X + b[prob.c] * prob.dt
        if it is not None:
            X = X + prob.sigma * math.sqrt(prob.dt) * next(it)
    return X


# --------------------------------------------------------------------------------------
# Stepper base
# --------------------------------------------------------------------------------------


class Stepper:
    """Common interface: ``run(n_steps)`` advances and blocks; ``state()`` -> float64 copy."""

    backend = "?"

    def __init__(self, prob: Problem, dtype: str, threads: int):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}")
        self.prob = prob
        self.dtype = dtype
        self.threads = int(threads)
        self.notes = ""

    def run(self, n_steps: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        p = self.prob
        return dict(
            backend=self.backend,
            signal=p.signal,
            N=p.N,
            K=p.K,
            p=p.p,
            dtype=self.dtype,
            threads=self.threads,
            notes=self.notes,
        )


# --------------------------------------------------------------------------------------
# NumPy, whole-array vectorised
# --------------------------------------------------------------------------------------


def _np_dtype(dtype: str):
    return np.float64 if dtype == "float64" else np.float32


def _np_rowmax(X, out):
    """Row max of a (n, p) array by a loop over the p columns (much faster than
    X.max(axis=1) for small p)."""
    np.copyto(out, X[:, 0])
    for j in range(1, X.shape[1]):
        np.maximum(out, X[:, j], out=out)
    return out


class NumpyStepper(Stepper):
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

    def run(self, n_steps: int) -> None:
        for _ in range(int(n_steps)):
            self.step()

    def state(self) -> np.ndarray:
        return self.X.astype(np.float64)


# --------------------------------------------------------------------------------------
# NumPy, blocked and threaded over row chunks
# --------------------------------------------------------------------------------------


class NumpyThreadedStepper(Stepper):
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

    def run(self, n_steps: int) -> None:
        for _ in range(int(n_steps)):
            self.step()

    def state(self) -> np.ndarray:
        return self.X.astype(np.float64)

    def __del__(self):
        if getattr(self, "pool", None) is not None:
            self.pool.shutdown(wait=False)


# --------------------------------------------------------------------------------------
# PyTorch (CPU)
# --------------------------------------------------------------------------------------


class TorchStepper(Stepper):
    backend = "torch"

    def __init__(
        self, prob: Problem, dtype: str = "float64", threads: int = 1, softmax: str = "manual"
    ):
        super().__init__(prob, dtype, threads)
        import torch

        self.torch = torch
        torch.set_num_threads(max(1, int(threads)))
        tdt = torch.float64 if dtype == "float64" else torch.float32
        N, K, p = prob.N, prob.K, prob.p
        self.gen = torch.Generator().manual_seed(prob.seed + 1)
        self.X = torch.from_numpy(prob.X0).to(tdt).contiguous()  # copy (dtype cast or clone)
        if dtype == "float64":
            self.X = self.X.clone()
        self.Z = torch.empty((N, p), dtype=tdt)
        self.E = torch.from_numpy(prob.E).to(tdt)
        self.ranges = [(int(o), int(o + n)) for o, n in zip(prob.offsets, prob.counts, strict=True)]
        self.S = torch.empty((K, p), dtype=tdt)
        self.sd = prob.sigma * math.sqrt(prob.dt)
        self.softmax = softmax
        if prob.signal == "cross_entropy":
            self.G = torch.empty((N, p), dtype=tdt)
            self.m = torch.empty((N, 1), dtype=tdt)
            self.L = torch.from_numpy(prob.label_counts).to(tdt)
        self.notes = (
            f"torch {torch.__version__}, set_num_threads({threads}), "
            f"{softmax} softmax, per-class slice sums"
        )

    def _class_sums(self, A):
        for k, (s, e) in enumerate(self.ranges):
            self.torch.sum(A[s:e], 0, out=self.S[k])
        return self.S

    def step(self):
        torch = self.torch
        prob = self.prob
        X = self.X
        if prob.signal == "linear":
            S = self._class_sums(X)
        else:
            G, m = self.G, self.m
            if self.softmax == "builtin":
                G.copy_(torch.softmax(X, dim=1))
            else:
                torch.amax(X, 1, keepdim=True, out=m)
                torch.sub(X, m, out=G)
                G.exp_()
                torch.sum(G, 1, keepdim=True, out=m)
                G.div_(m)
            S = self._class_sums(G)
            torch.sub(self.L, S, out=S)
        bdt = (self.E @ S).mul_(prob.dt / prob.N)
        torch.randn(X.shape, generator=self.gen, out=self.Z, dtype=X.dtype)
        X.add_(self.Z, alpha=self.sd)
        for k, (s, e) in enumerate(self.ranges):
            X[s:e].add_(bdt[k])

    def run(self, n_steps: int) -> None:
        with self.torch.no_grad():
            for _ in range(int(n_steps)):
                self.step()

    def state(self) -> np.ndarray:
        return self.X.to(self.torch.float64).numpy().copy()


# --------------------------------------------------------------------------------------
# JAX (CPU)
# --------------------------------------------------------------------------------------

_JAX_THREADS = None  # the thread count XLA_FLAGS asked for when jax was first imported here


def configure_jax_threads(threads: int) -> bool:
    """Best-effort limit of XLA's CPU backend to ``threads`` threads. Works only before jax
    is imported (XLA reads XLA_FLAGS once); returns False if it was too late.

    Honest limits: XLA exposes no flag for the size of its CPU intra-op thread pool (the
    TF-style ``intra_op_parallelism_threads`` is not an XLA flag; jaxlib 0.10 knows only
    ``--xla_cpu_multi_thread_eigen``, which covers Eigen-backed ops such as dot). For
    threads == 1 we set ``--xla_cpu_multi_thread_eigen=false``; the real limit is the CPU
    affinity mask, which XLA reads to size its pool: the harness runs every configuration
    in a subprocess pinned (``os.sched_setaffinity``) to ``threads`` cores.
    """
    global _JAX_THREADS
    if "jax" in sys.modules:
        return _JAX_THREADS == threads
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "multi_thread_eigen" not in f]
    if threads == 1:
        flags += ["--xla_cpu_multi_thread_eigen=false"]
    os.environ["XLA_FLAGS"] = " ".join(flags)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # these are CPU baselines
    _JAX_THREADS = threads
    return True


def _import_jax(threads: int):
    ok = configure_jax_threads(threads)
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax, ok


class JaxStepper(Stepper):
    backend = "jax"

    def __init__(
        self,
        prob: Problem,
        dtype: str = "float64",
        threads: int = 1,
        jax_prng: str = "threefry2x32",
    ):
        super().__init__(prob, dtype, threads)
        jax, ok = _import_jax(int(threads))
        import jax.numpy as jnp
        from jax import lax

        self.jax = jax
        jdt = jnp.float64 if dtype == "float64" else jnp.float32
        N, K = prob.N, prob.K
        self.X = jnp.asarray(prob.X0, dtype=jdt)
        self.key = jax.random.key(prob.seed + 1, impl=jax_prng)
        c = jnp.asarray(prob.c, dtype=jnp.int32)
        E = jnp.asarray(prob.E, dtype=jdt)
        L = jnp.asarray(prob.label_counts, dtype=jdt) if prob.label_counts is not None else None
        dtv, sd, invN = prob.dt, prob.sigma * math.sqrt(prob.dt), 1.0 / N
        ce = prob.signal == "cross_entropy"

        def one_step(carry, _):
            X, key = carry
            key, sub = jax.random.split(key)
            if ce:
                sm = jax.nn.softmax(X, axis=1)
                S = L - jax.ops.segment_sum(sm, c, num_segments=K, indices_are_sorted=True)
            else:
                S = jax.ops.segment_sum(X, c, num_segments=K, indices_are_sorted=True)
            bdt = (E @ S) * (dtv * invN)
            X = X + bdt[c] + sd * jax.random.normal(sub, X.shape, dtype=jdt)
            return (X, key), None

        def run_n(X, key, n):
            (X, key), _ = lax.scan(one_step, (X, key), None, length=n)
            return X, key

        self._run = jax.jit(run_n, static_argnums=2, donate_argnums=(0,))
        self.notes = (
            f"jax {jax.__version__}, prng {jax_prng}, XLA_FLAGS="
            f"{os.environ.get('XLA_FLAGS', '')!r}"
            + ("" if ok else " (WARNING: jax imported earlier; thread flags unset)")
        )

    def run(self, n_steps: int) -> None:
        self.X, self.key = self._run(self.X, self.key, int(n_steps))
        self.X.block_until_ready()

    def state(self) -> np.ndarray:
        return np.asarray(self.X, dtype=np.float64).copy()


# --------------------------------------------------------------------------------------
# Factory / availability
# --------------------------------------------------------------------------------------

_CLASSES = {
    "numpy": NumpyStepper,
    "numpy_mt": NumpyThreadedStepper,
    "torch": TorchStepper,
    "jax": JaxStepper,
}


def available_backends() -> dict:
    """backend -> (available, reason). Does not import torch / jax."""
    out = {"numpy": (True, ""), "numpy_mt": (True, "")}
    for name in ("torch", "jax"):
        found = importlib.util.find_spec(name) is not None
        out[name] = (found, "" if found else f"{name} not installed")
    return out


def make_stepper(
    backend: str,
    signal: str = "cross_entropy",
    N: int = 100_000,
    K: int = 10,
    p: int = 10,
    dtype: str = "float64",
    threads: int = 1,
    *,
    problem=None,
    **kwargs,
) -> Stepper:
    """Build a baseline stepper.

    ``problem``: a ``Problem`` to share one initial state between baselines (then signal, N,
    K, p are taken from it). Remaining keyword arguments go to ``make_problem`` (E, alpha,
    beta, dt, sigma, seed, counts, X0, y) or, if they are stepper options (``block_rows``,
    ``bit_generator``, ``softmax``, ``jax_prng``), to the stepper.
    """
    if backend not in _CLASSES:
        raise ValueError(f"backend must be one of {tuple(_CLASSES)}")
    ok, why = available_backends()[backend]
    if not ok:
        raise ImportError(why)
    stepper_opts = {
        k: kwargs.pop(k)
        for k in ("block_rows", "bit_generator", "softmax", "jax_prng")
        if k in kwargs
    }
    if problem is None:
        problem = make_problem(signal, N, K, p, **kwargs)
    elif kwargs:
        warnings.warn(f"ignored with an explicit problem: {sorted(kwargs)}", stacklevel=2)
    return _CLASSES[backend](problem, dtype=dtype, threads=threads, **stepper_opts)


def check_against_reference(
    backend: str,
    signal: str,
    dtype: str,
    *,
    N: int = 997,
    K: int = 4,
    p=None,
    n_steps: int = 5,
    threads: int = 1,
    seed: int = 3,
    **stepper_opts,
) -> tuple[float, float]:
    """Run ``backend`` with sigma = 0 from the reference's initial state and compare with
    ``reference_run`` (float64). Unbalanced classes, a random non-symmetric E and (for the
    cross-entropy signal) some corrupted labels exercise pi weighting, E's orientation and
    the label-count identity. Returns (max relative error, tolerance used)."""
    rng = np.random.default_rng(seed)
    if p is None:
        p = K if signal == "cross_entropy" else 3
    w = rng.uniform(0.5, 2.0, K)
    counts = np.maximum(1, np.floor(w / w.sum() * N)).astype(np.int64)
    counts[-1] += N - counts.sum()
    E = rng.uniform(-0.5, 2.0, (K, K))
    c = np.repeat(np.arange(K), counts)
    y = c.copy()
    flip = rng.random(N) < 0.2
    y[flip] = rng.integers(0, K, flip.sum())
    # large dt so that a few steps move the state visibly
    prob = make_problem(
        signal, N, K, p, counts=counts, E=E, dt=0.5, sigma=0.0, seed=seed, y=y, x0_scale=2.0
    )
    ref = reference_run(prob, n_steps)
    st = make_stepper(backend, problem=prob, dtype=dtype, threads=threads, **stepper_opts)
    st.run(n_steps)
    got = st.state()
    scale = np.abs(ref).max()
    err = float(np.abs(got - ref).max() / scale)
    tol = 1e-10 if dtype == "float64" else 1e-4
    return err, tol
