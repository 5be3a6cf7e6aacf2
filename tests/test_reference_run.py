"""A tiny run of the core reproduced by an independent NumPy implementation."""

import numpy as np
import pytest

import lesde

from reference import sde_euler, training_labels


@pytest.mark.parametrize("signal", ["linear", "projected", "cross_entropy"])
def test_sde_euler_matches_numpy_reference(signal, backend):
    cfg = lesde.Config(
        n_classes=3,
        class_sizes=(5, 7, 4),
        signal=signal,
        alpha=1.3,
        beta=0.4,
        sigma=0.3,
        label_noise=0.25,
        init_scale=0.8,
        dt=0.05,
        steps=12,
        seed=2024,
        noise_seed=77,
        record_every=4,
        init_means=[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]],
        backend=backend,
    )
    res = lesde.simulate(cfg, progress=False)
    X, y = sde_euler(cfg)
    np.testing.assert_array_equal(res.labels[0], y, err_msg="training labels differ")
    np.testing.assert_allclose(
        res.features[0],
        X,
        rtol=1e-12,
        atol=1e-12,
        err_msg="features after 12 Euler steps differ from NumPy",
    )


def test_label_noise_rate_and_uniform_targets():
    # 30,000 labels at p_err = 0.3: flip rate within 5 standard errors (FP rate ~1e-6).
    K, n = 3, 10_000
    classes = np.repeat(np.arange(K), n)
    y = training_labels(11, 0, classes, K, 0.3)
    rate = np.mean(y != classes)
    assert abs(rate - 0.3) < 5 * np.sqrt(0.3 * 0.7 / y.size), f"flip rate {rate}"
    moved_from_0 = y[(classes == 0) & (y != 0)]
    assert set(np.unique(moved_from_0)) == {1, 2}, "a flipped label kept its class"
    res = lesde.simulate(
        n_classes=K, n_per_class=n, label_noise=0.3, seed=11, steps=1, progress=False
    )
    np.testing.assert_array_equal(res.labels[0], y)
