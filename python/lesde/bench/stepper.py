"""The interface every backend of the benchmark offers (:class:`Stepper`: ``run(n_steps)``
blocks until done, ``state()`` returns a float64 copy), and lesde's own engine behind it
(:class:`LesdeStepper`: built as :func:`lesde.simulate` builds it, started from the
problem's X0 and advanced with no records in between).

Examples
--------
>>> from lesde.bench.problem import make_problem
>>> from lesde.bench.stepper import LesdeStepper
>>> st = LesdeStepper(make_problem("linear", 100, 2, 2))
>>> st.run(2); st.state().shape
(100, 2)
"""

from __future__ import annotations

import numpy as np

from .problem import DTYPES, Problem

__all__ = ["LesdeStepper", "Stepper"]


class Stepper:
    """Common interface: ``run(n_steps)`` advances and blocks; ``state()`` -> float64 copy.

    >>> from lesde.bench.baselines import make_stepper
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
# lesde itself
# --------------------------------------------------------------------------------------


class LesdeStepper(Stepper):
    """lesde's engine on a :class:`~lesde.bench.problem.Problem`: the same E, dt, sigma,
    classes, labels and X0.

    The engine is built as :func:`lesde.simulate` builds it (NumPy arrays the C++ writes
    into), its initial features and labels are replaced by the problem's, and ``resume(0)``
    recomputes the class sums from them; ``run(n)`` then advances n fused steps with no
    records in between (``record_every`` is the whole horizon): the work a baseline step does.

    >>> from lesde.bench.problem import make_problem
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
