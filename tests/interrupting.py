"""A model wrapper that presses Ctrl-C in the middle of training, for the tests of
lesde.nn and lesde.ensemble (import it after ``pytest.importorskip("torch")``)."""

from __future__ import annotations

import torch


class InterruptOnCall(torch.nn.Module):
    """Wraps a model; the n-th forward with gradients on (a training step) raises Ctrl-C."""

    def __init__(self, inner, n):
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def forward(self, x):
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.n:
                raise KeyboardInterrupt
        return self.inner(x)
