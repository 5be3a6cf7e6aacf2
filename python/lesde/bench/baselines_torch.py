"""The PyTorch baseline of the benchmark (backend "torch"): the LE-SDE step on CPU tensors.
PyTorch is imported when a :class:`TorchStepper` is made, not with this module.

Implementation choices (micro-benchmarks on the 2-core Zen 3 box, N = 1e6, K = p = 10):

* torch: CPU tensors, ``torch.no_grad``, preallocated buffers, in-place ops. The softmax is
  written out (amax, sub, exp_, sum, div_) into preallocated buffers because
  ``torch.softmax(X, 1)`` over a length-10 last axis is 2-4x slower (160-200 ms vs
  50-70 ms single-threaded). Class sums: per-class slice ``.sum(0)`` (class-sorted layout);
  ``index_add_`` and ``torch.segment_reduce`` were slower. Noise: ``torch.randn(..., out=Z,
  generator=gen)``; note torch's CPU float64 normal sampler is slow (about 300 ms per 1e7 on
  one thread vs 37 ms for float32). ``threads`` -> ``torch.set_num_threads`` (process-wide).

Examples
--------
>>> from lesde.bench.baselines import available_backends
>>> from lesde.bench.problem import make_problem
>>> if available_backends()["torch"][0]:  # optional: torch
...     TorchStepper(make_problem("linear", 100, 2, 2), threads=1).state().shape
... else:
...     (100, 2)
(100, 2)
"""

from __future__ import annotations

import math

import numpy as np

from .problem import Problem
from .stepper import Stepper

__all__ = ["TorchStepper"]


class TorchStepper(Stepper):
    """PyTorch on the CPU under ``no_grad``: in-place ops, a hand-written softmax.

    >>> from lesde.bench.baselines import available_backends
    >>> from lesde.bench.problem import make_problem
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
