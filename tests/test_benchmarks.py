"""Hot paths under pytest-benchmark.

In CI these run once each as smoke tests (``--benchmark-disable`` in pyproject); nothing
here asserts a time. For numbers: ``pytest tests/test_benchmarks.py --benchmark-enable``,
or the full comparison suite in ``bench/``.
"""

import numpy as np
import pytest

import lesde
import lesde.metrics
from lesde import _core
from lesde.engine import allocate, engine_config


def _engine(cfg):
    """An initialised engine over freshly allocated arrays (what simulate does)."""
    cls = _core.Simulation64 if cfg.dtype == "float64" else _core.Simulation32
    sim = cls(engine_config(cfg), **allocate(cfg))
    sim.initialize()
    return sim


@pytest.mark.parametrize("signal", ["cross_entropy", "linear"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sde_step(benchmark, signal, dtype):
    cfg = lesde.Config(
        n_classes=10,
        n_per_class=2000,
        signal=signal,
        dtype=dtype,
        alpha=0.1,
        beta=0.05,
        steps=10**6,
        record_every=10**6,
    )
    sim = _engine(cfg)
    benchmark(lambda: sim.advance(sim.step + 1))
    assert sim.step >= 1


def test_sgd_steps_cost_is_independent_of_n(benchmark):
    cfg = lesde.Config(
        n_classes=10,
        n_per_class=100_000,
        process="sgd",
        batch_size=8,
        steps=10**7,
        record_every=10**7,
    )
    sim = _engine(cfg)
    benchmark(lambda: sim.advance(sim.step + 1000))
    assert sim.step >= 1000


def test_metrics_summary(benchmark):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 10))
    y = np.repeat(np.arange(10), 2000)
    out = benchmark(lambda: lesde.metrics.summary(X, y))
    assert np.isfinite(out["nc1"])
