"""Determinism: results depend on the seed only, never on threads or layout."""

import numpy as np
import pytest

import lesde

from backends import small_for


def assert_same(a, b, what):
    for name in ("features", "labels", "class_means", "sigma_w"):
        np.testing.assert_array_equal(
            getattr(a, name), getattr(b, name), err_msg=f"{what}: {name} differs"
        )
    for name in a.metrics:
        np.testing.assert_array_equal(
            a.metrics[name], b.metrics[name], err_msg=f"{what}: metric {name} differs"
        )


BASE = dict(
    n_classes=3,
    n_per_class=4000,
    signal="cross_entropy",
    alpha=1.0,
    beta=0.3,
    sigma=0.5,
    label_noise=0.2,
    steps=30,
    record_every=10,
    seed=9,
)


@pytest.mark.parametrize(
    "extra",
    [
        dict(process="sde", scheme="euler_maruyama"),
        dict(process="sde", scheme="heun", dtype="float32"),
        dict(process="sde", noise="two_point", dtype="float32"),
        dict(process="sde", noise="three_point", scheme="heun"),
        dict(process="sgd", batch_size=16),
        dict(process="sde", replicas=6, n_per_class=20),  # replica-parallel layout
        dict(process="sgd", replicas=6, n_per_class=20),
    ],
)
def test_threads_1_and_2_give_identical_arrays(extra, backend):
    if backend != "cpu" and extra["process"] == "sgd":
        pytest.skip("process sgd runs on the CPU engine whatever the backend")
    n = extra.get("n_per_class", small_for(backend, BASE["n_per_class"], 300))
    cfg = lesde.Config(**{**BASE, **extra, "n_per_class": n, "backend": backend})
    one = lesde.simulate(cfg.replace(threads=1), progress=False)
    two = lesde.simulate(cfg.replace(threads=2), progress=False)
    assert_same(one, two, f"threads 1 vs 2 with {extra}")


def test_same_seed_repeats_and_different_seeds_differ(backend):
    cfg = lesde.Config(**{**BASE, "n_per_class": 200, "backend": backend})
    a = lesde.simulate(cfg, progress=False)
    assert_same(a, lesde.simulate(cfg, progress=False), "same seed twice")
    b = lesde.simulate(cfg.replace(seed=10), progress=False)
    assert not np.array_equal(a.features, b.features), "seeds 9 and 10 gave the same features"
    c = lesde.simulate(cfg.replace(noise_seed=123), progress=False)
    assert np.array_equal(a.labels, c.labels), "noise_seed changed the labels"
    assert not np.array_equal(a.features, c.features), "noise_seed had no effect"


def test_noise_seed_gives_common_random_numbers():
    # Two configs differing in seed but sharing noise_seed draw identical Brownian paths.
    kw = dict(
        n_classes=2,
        n_per_class=100,
        signal="linear",
        alpha=0.0,
        beta=0.0,
        sigma=1.0,
        init_scale=0.0,
        steps=20,
        noise_seed=42,
        progress=False,
    )
    a = lesde.simulate(seed=1, **kw)
    b = lesde.simulate(seed=2, **kw)
    np.testing.assert_array_equal(a.features, b.features)


def test_replicas_are_independent_streams():
    res = lesde.simulate(n_classes=2, n_per_class=50, replicas=3, steps=5, progress=False)
    assert not np.array_equal(res.features[0], res.features[1])
    single = lesde.simulate(n_classes=2, n_per_class=50, replicas=1, steps=5, progress=False)
    np.testing.assert_array_equal(
        single.features[0], res.features[0], err_msg="replica 0 depends on how many replicas run"
    )
