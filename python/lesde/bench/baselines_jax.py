"""The JAX baseline of the benchmark (backend "jax"): the LE-SDE steps as one compiled scan.
JAX is imported when a :class:`JaxStepper` is made, not with this module;
:func:`configure_jax_threads` must run before that.

Implementation choices (micro-benchmarks on the 2-core Zen 3 box, N = 1e6, K = p = 10):

* jax: one ``jax.jit``-compiled ``lax.scan`` over the n steps (state donated), noise from
  ``jax.random.normal`` with a key split every step (default threefry2x32 PRNG; the
  ``jax_prng="rbg"`` / ``"unsafe_rbg"`` options were not faster on this CPU), class sums
  with ``jax.ops.segment_sum(indices_are_sorted=True)``, softmax with ``jax.nn.softmax``.
  float64 needs ``jax_enable_x64``, which we switch on when JAX is first loaded here
  (float32 arrays keep float32 because every dtype is explicit). XLA has no CPU
  thread-count flag (see ``configure_jax_threads``); the harness runs every configuration
  in a fresh subprocess pinned to ``threads`` cores, which is what limits it.

Examples
--------
>>> import sys
>>> from lesde.bench.baselines_jax import configure_jax_threads
>>> configure_jax_threads(1) or "jax" in sys.modules
True
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np

from .problem import Problem
from .stepper import Stepper

__all__ = ["JaxStepper", "configure_jax_threads"]

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

    >>> from lesde.bench.baselines import available_backends
    >>> from lesde.bench.problem import make_problem
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
