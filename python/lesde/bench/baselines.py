"""The backends of the benchmark: the same LE-SDE step (:mod:`lesde.bench.problem`) written
the way a competent researcher would write it in NumPy, PyTorch (CPU) and JAX (CPU), and
lesde's own engine behind the same interface (:class:`Stepper`: ``run(n_steps)`` blocks
until done, ``state()`` returns a float64 copy).

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

* lesde: the compiled engine, built as :func:`lesde.simulate` builds it, started from the
  problem's X0 and advanced with no records in between (:class:`LesdeStepper`).

All imports of torch / jax are lazy: :func:`available_backends` reports what can run,
without importing them.

Examples
--------
>>> st = make_stepper("numpy", "cross_entropy", N=1000, K=4, p=4)
>>> st.run(2)
>>> st.state().shape
(1000, 4)
>>> err, tol = check_against_reference("lesde", "linear", "float64")
>>> err < tol
True
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .problem import DTYPES, Problem, make_problem, reference_run

__all__ = [
    "BACKENDS",
    "JaxStepper",
    "LesdeStepper",
    "NumpyStepper",
    "NumpyThreadedStepper",
    "Stepper",
    "TorchStepper",
    "available_backends",
    "check_against_reference",
    "configure_jax_threads",
    "make_stepper",
]

#: Every backend, lesde first; torch and jax are optional.
BACKENDS = ("lesde", "numpy", "numpy_mt", "torch", "jax")

# --------------------------------------------------------------------------------------
# Stepper base
# --------------------------------------------------------------------------------------


class Stepper:
    """Common interface: ``run(n_steps)`` advances and blocks; ``state()`` -> float64 copy.

    >>> st = make_stepper("numpy", "linear", N=100, K=2, p=2)
    >>> isinstance(st, Stepper), st.describe()["backend"]
    (True, 'numpy')
    """

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


# --------------------------------------------------------------------------------------
# PyTorch (CPU)
# --------------------------------------------------------------------------------------


class TorchStepper(Stepper):
    """PyTorch on the CPU under ``no_grad``: in-place ops, a hand-written softmax.

    >>> if available_backends()["torch"][0]:  # optional: torch
    ...     TorchStepper(make_problem("linear", 100, 2, 2)).run(1)
    """

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

    >>> isinstance(configure_jax_threads(1), bool)
    True

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
    """JAX on the CPU: one ``jit`` of a ``lax.scan`` over the steps, the state donated.

    >>> if available_backends()["jax"][0]:  # optional: jax
    ...     JaxStepper(make_problem("linear", 100, 2, 2)).run(1)
    """

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

# --------------------------------------------------------------------------------------
# lesde itself
# --------------------------------------------------------------------------------------


class LesdeStepper(Stepper):
    """lesde's engine on a :class:`~lesde.bench.problem.Problem`: the same E, dt, sigma,
    classes, labels and X0.

    The engine is built as :func:`lesde.simulate` builds it (NumPy arrays the C++ writes
    into), its initial features and labels are replaced by the problem's, and ``resume(0)``
    recomputes the class sums from them; ``run(n)`` then advances n fused steps with no
    records in between (``record_every`` is the whole horizon): the work a baseline step does.

    >>> st = LesdeStepper(make_problem("linear", 100, 2, 2))
    >>> st.run(3); st.sim.step
    3
    """

    backend = "lesde"

    def __init__(
        self, prob: Problem, dtype: str = "float64", threads: int = 1, noise: str = "gaussian"
    ):
        super().__init__(prob, dtype, threads)
        from ..sim.config import Config
        from ..sim.engine import allocate, make_engine

        horizon = 10**8
        self.cfg = Config(
            n_classes=prob.K,
            dim=prob.p,
            class_sizes=tuple(int(n) for n in prob.counts),
            signal=prob.signal,
            impact=prob.E,
            sigma=prob.sigma,
            noise=noise,  # lesde's own option: the law of the increments (Config.noise)
            dt=prob.dt,
            steps=horizon,
            record_every=horizon,
            threads=threads,
            dtype=dtype,
        )
        self.arrays = allocate(self.cfg)
        self.sim = make_engine(self.cfg, self.arrays)
        self.sim.initialize()
        self.arrays["features"][0] = prob.X0
        self.arrays["labels"][0] = prob.y.astype(np.int32)
        self.sim.resume(0)
        self.notes = f"{type(self.sim).__name__}, {threads} OpenMP thread(s)"

    def run(self, n_steps: int) -> None:
        self.sim.advance(self.sim.step + int(n_steps))

    def state(self) -> np.ndarray:
        return self.arrays["features"][0].astype(np.float64)


_CLASSES = {
    "lesde": LesdeStepper,
    "numpy": NumpyStepper,
    "numpy_mt": NumpyThreadedStepper,
    "torch": TorchStepper,
    "jax": JaxStepper,
}


def available_backends() -> dict[str, tuple[bool, str]]:
    """backend -> (available, why not). Does not import torch or jax.

    >>> available_backends()["numpy"]
    (True, '')
    """
    out = {"lesde": (True, ""), "numpy": (True, ""), "numpy_mt": (True, "")}
    for name in ("torch", "jax"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or blocked installation
            found = False
        hint = "pip install 'lesde[bench]'"
        out[name] = (found, "" if found else f"{name} is not installed ({hint})")
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

    >>> make_stepper("numpy_mt", "linear", N=100, K=2, p=2, threads=2, block_rows=16).T
    2
    """
    if backend not in _CLASSES:
        raise ValueError(f"backend must be one of {tuple(_CLASSES)}")
    ok, why = available_backends()[backend]
    if not ok:
        raise ImportError(why)
    stepper_opts = {
        k: kwargs.pop(k)
        for k in ("block_rows", "bit_generator", "softmax", "jax_prng", "noise")
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
    the label-count identity. Returns (max relative error, tolerance used).

    >>> err, tol = check_against_reference("numpy", "cross_entropy", "float32")
    >>> err < tol, tol
    (True, 0.0001)
    """
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
