"""Model factories that fail inside a worker process of lesde.nn.ensemble, for its tests (import
after ``pytest.importorskip("torch")``).

A factory is pickled by reference and called in the worker, so the fault happens there: the
worker exits, raises, or finds the disk full when it writes its trial. Use them as
``functools.partial(faulty_model, lenet=default_model(data), fault=..., at_seed=...)``.
"""

from __future__ import annotations

import errno
import os

import torch

import lesde.io.atomic


class FaultOnStep(torch.nn.Module):
    """Wraps a model; its ``step``-th training forward (gradients on) runs ``fault``."""

    def __init__(self, inner, step: int, fault: str):
        super().__init__()
        self.inner, self.step, self.fault, self.calls = inner, step, fault, 0

    def forward(self, x):
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.step:
                if self.fault == "exit":
                    os._exit(0)  # a silent exit in the middle of a trial, code 0
                if self.fault == "memory":
                    raise MemoryError
        return self.inner(x)


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def faulty_model(seed: int, *, lenet, fault: str, at_seed: int, step: int = 3):
    """``lenet(seed=seed)``; for the trial seeded ``at_seed`` one that fails: "exit" and
    "memory" at its ``step``-th SGD step, "enospc" when its trial file is written."""
    net = lenet(seed=seed)
    if seed != at_seed:
        return net
    if fault == "enospc":  # this worker process's disk is full from now on
        lesde.io.atomic.atomic_savez = _no_space
        return net
    return FaultOnStep(net, step, fault)
