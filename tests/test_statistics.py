"""Statistical checks with fixed seeds and stated false-positive rates.

Each bound is 5 standard errors: for a Gaussian statistic the chance that a correct
engine fails one is about 6e-7; the seeds are fixed, so the outcome is reproducible.
"""

import numpy as np
import pytest

import lesde

from backends import small_for

Z = 5.0


@pytest.mark.parametrize("process", ["sde", "sgd"])
def test_pure_diffusion_variance_is_sigma2_t(process, backend):
    sigma, t_end = 0.7, 1.0
    res = lesde.simulate(
        n_classes=3,
        n_per_class=small_for(backend, 3000, 1000),
        signal="linear",
        alpha=0.0,
        beta=0.0,
        sigma=sigma,
        init_scale=0.0,
        dt=0.01,
        t_end=t_end,
        process=process,
        batch_size=4,
        seed=3,
        backend=backend,
        progress=False,
    )
    x = res.features[0].ravel()
    expected = sigma**2 * t_end
    assert abs(x.mean()) < Z * np.sqrt(expected / x.size), f"{process}: mean {x.mean()} != 0"
    sem_var = expected * np.sqrt(2.0 / x.size)
    assert abs(x.var() - expected) < Z * sem_var, (
        f"{process}: variance {x.var():.4f}, expected sigma^2 t = {expected:.4f}"
    )


def test_sde_increments_are_independent_across_steps(backend):
    # Var(x(t)) = sigma^2 t at several record times: a check on the noise counters per step.
    res = lesde.simulate(
        n_classes=2,
        n_per_class=4000,
        signal="linear",
        alpha=0.0,
        beta=0.0,
        sigma=1.0,
        init_scale=0.0,
        dt=0.05,
        steps=40,
        record_every=10,
        record_samples=2000,
        backend=backend,
        progress=False,
    )
    traj = res.sample_trajectories[0]  # (T, S, p)
    for t_idx, t in enumerate(res.times):
        if t == 0:
            continue
        v = traj[t_idx].var()
        assert abs(v - t) < Z * t * np.sqrt(2.0 / traj[t_idx].size), f"Var at t={t} is {v}"


@pytest.mark.parametrize("signal", ["linear", "cross_entropy"])
def test_sgd_mean_drift_matches_sde_drift(signal):
    # One SGD step from one deterministic state, averaged over 4000 replicas, moves the
    # class means by eta * b_k with b_k = sum_k' pi_k' E[k, k'] g(mu_k', k') (docs/model.md 2b).
    K, eta, B, R = 3, 0.1, 2, 4000
    means = np.array([[1.0, 0.0, -0.5], [0.2, 0.8, 0.0], [-0.3, 0.1, 0.6]])
    alpha, beta = 1.5, 0.4
    res = lesde.simulate(
        n_classes=K,
        n_per_class=4,
        signal=signal,
        alpha=alpha,
        beta=beta,
        sigma=0.0,
        init_scale=0.0,
        init_means=means,
        process="sgd",
        dt=eta,
        steps=1,
        batch_size=B,
        replicas=R,
        seed=5,
        progress=False,
    )
    moves = res.class_means[:, 1] - res.class_means[:, 0]  # (R, K, p)
    if signal == "linear":
        g = means
    else:
        s = np.exp(means - means.max(axis=1, keepdims=True))
        g = np.eye(K) - s / s.sum(axis=1, keepdims=True)
    E = np.full((K, K), beta) + (alpha - beta) * np.eye(K)
    expected = eta * (E @ g) / K  # pi_k' = 1/K
    sem = moves.std(axis=0, ddof=1) / np.sqrt(R)
    np.testing.assert_array_less(
        np.abs(moves.mean(axis=0) - expected),
        Z * sem + 1e-15,
        err_msg="SGD mean drift differs from the SDE drift",
    )
