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
from lesde.simulate import engine_config


def _engine(cfg):
    """An initialised engine over freshly allocated arrays (what simulate does)."""
    R, N, K, p, T = cfg.replicas, cfg.n_samples, cfg.n_classes, cfg.p, len(cfg.record_steps)
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    arrays = dict(
        features=np.empty((R, N, p), dtype),
        labels=np.empty((R, N), np.int32),
        classes=np.repeat(np.arange(K, dtype=np.int32), cfg.class_sizes_resolved),
        noise_var=np.zeros((R, N)) if cfg.process == "sgd" else None,
        class_means=np.full((R, T, K, p), np.nan),
        label_means=np.full((R, T, K, p), np.nan),
        sigma_w=np.full((R, T, p, p), np.nan),
        scalars=np.full((R, T, _core.NUM_SCALARS), np.nan),
        samples=np.zeros((R, T, 0, p)),
        status=np.zeros(R, np.int32),
        fail_step=np.full(R, -1, np.int64),
    )
    cls = _core.Simulation64 if dtype == np.float64 else _core.Simulation32
    sim = cls(engine_config(cfg), **arrays)
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
