"""The backends of the benchmark: the same LE-SDE step (:mod:`lesde.bench.problem`) written
the way a competent researcher would write it in NumPy, PyTorch (CPU) and JAX (CPU), and
lesde's own engine behind the same interface (:class:`Stepper`: ``run(n_steps)`` blocks
until done, ``state()`` returns a float64 copy).

The implementation choices of each baseline (what was measured, what was kept) are in its
module: :mod:`lesde.bench.baselines_numpy` ("numpy", "numpy_mt"),
:mod:`lesde.bench.baselines_torch` ("torch"), :mod:`lesde.bench.baselines_jax` ("jax");
:mod:`lesde.bench.stepper` holds the interface and lesde's own stepper ("lesde"). This
module is the registry: :func:`make_stepper` builds any of them by name,
:func:`available_backends` says which can run, :func:`check_against_reference` compares one
with the float64 reference; the classes are re-exported here.

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
import warnings

import numpy as np

from .baselines_jax import JaxStepper, configure_jax_threads
from .baselines_numpy import NumpyStepper, NumpyThreadedStepper
from .baselines_torch import TorchStepper
from .problem import make_problem, reference_run
from .stepper import LesdeStepper, Stepper

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
