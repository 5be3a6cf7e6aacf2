"""Tests of lesde.impact_replay (the matrix LE-ODE), grouped by what they protect.

- the replay is the class-mean LE-ODE with a time-varying K x K E(t): against an
  independent solve_ivp of dm_k/dt = (1/K) sum_k' E[k, k'](t) g(m_k', k') for the
  projected, cross-entropy and linear signals (E linear in time, K = 3 and 4)
- the scalar form through the matrix route is the scalar replay of lesde.analysis.estimate
- fitted E(t): read back from an exact trajectory it reproduces the derivative, differs from
  the true E only along the non-identifiable direction (1/a_k' per row), and its replay
  follows the trajectory
- measured E(t): the trial average skips NaN, fills a pair's gaps in time, smooths
- refusals, one line each: an impact matrix with missing class pairs (measured and given),
  half-splits with fewer than 2 trials or an empty half
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from lesde.analysis.estimate import replay
from lesde.nn.impact_replay import (
    compare_replays,
    fitted_impact,
    measured_impact,
    relative_error,
    replay_impact,
    scalar_impact,
    split_halves,
)


def signal_of(name, m):
    """g(m_k, k) of docs/model.md section 1 for class means m (K, K)."""
    K = m.shape[0]
    if name == "linear":
        return m
    if name == "projected":
        v = np.eye(K) - 1.0 / K
        return (np.einsum("kj,kj->k", m, v) / np.einsum("kj,kj->k", v, v))[:, None] * v
    z = np.exp(m - m.max(axis=1, keepdims=True))
    return np.eye(K) - z / z.sum(axis=1, keepdims=True)


def impact_at(t, K):
    """A non-scalar, time-varying E(t): rows and columns differ, linear in t."""
    base = np.arange(K * K, dtype=float).reshape(K, K) / (K * K)
    return 1.0 + 2.0 * np.eye(K) + base + t * (0.5 * np.eye(K) - 0.3 * base.T)


def exact(times, m0, signal):
    K = m0.shape[0]

    def rhs(t, y):
        m = y.reshape(K, K)
        return (impact_at(t, K) @ signal_of(signal, m) / K).ravel()

    sol = solve_ivp(rhs, (times[0], times[-1]), m0.ravel(), t_eval=times, rtol=1e-11, atol=1e-12)
    return sol.y.T.reshape(-1, K, K)


def start(K, seed=0):
    rng = np.random.default_rng(seed)
    return 2.0 * (np.eye(K) - 1.0 / K) + 0.3 * rng.normal(size=(K, K))


@pytest.mark.parametrize("signal", ["projected", "cross_entropy", "linear"])
@pytest.mark.parametrize("K", [3, 4])
def test_replay_is_the_matrix_le_ode(signal, K):
    """Midpoint E per record interval with Heun steps: second order in the record spacing.
    Measured (relative max-norm): 1e-6 (cross-entropy), 1e-5 (projected), 1e-4 (linear,
    whose logits grow fastest) with 8 steps per interval; the bound is 5e-4."""
    t = np.linspace(0.0, 1.5, 31)
    m0 = start(K)
    table = np.stack([impact_at(s, K) for s in t])
    run = replay_impact(t, table, m0, signal=signal, steps_per_interval=8)
    err = relative_error(run, exact(t, m0, signal)).max()
    assert err < 5e-4, f"{signal}, K = {K}: {err:.2e}"
    # a coarse table (every third record) is interpolated linearly in time: same answer
    coarse = replay_impact(t, table[::3], m0, impact_times=t[::3], signal=signal,
                           steps_per_interval=8)  # fmt: skip
    assert relative_error(coarse, run).max() < 1e-10, "E is linear in t: nothing to lose"


def test_scalar_form_is_the_scalar_replay():
    t = np.linspace(0.0, 2.0, 21)
    m0 = start(3, seed=1)
    alpha, beta = np.full(21, 1.7), np.full(21, 0.4)
    ours = replay_impact(t, scalar_impact(alpha, beta, 3), m0, steps_per_interval=5)
    theirs = replay(t, alpha, beta, m0, signal="projected", scheme="heun", steps_per_interval=5)
    np.testing.assert_allclose(ours, theirs.class_means[0], rtol=1e-12, atol=1e-12)


@pytest.fixture(scope="module")
def path():
    """An exact projected trajectory under the time-varying E, rows not summing to zero."""
    t = np.linspace(0.0, 2.0, 81)
    m0 = start(3, seed=2) - start(3, seed=2).mean(axis=1, keepdims=True) + 0.5
    return t, exact(t, m0, "projected")


class TestFitted:
    def test_reproduces_the_derivative_up_to_the_gauge(self, path):
        t, m = path
        E = fitted_impact(t, m, window=9, polyorder=3)
        inner = slice(10, -10)
        G = np.stack([signal_of("projected", x) for x in m])
        drift = np.einsum("tkj,tjl->tkl", E, G) / 3
        truth = np.stack([impact_at(s, 3) @ g / 3 for s, g in zip(t, G, strict=True)])
        assert relative_error(drift[inner], truth[inner]).max() < 1e-4
        # E differs from the truth only along the null direction: (E_fit - E) G = 0 ...
        gap = E - np.stack([impact_at(s, 3) for s in t])
        assert np.abs(np.einsum("tkj,tjl->tkl", gap, G)[inner]).max() < 1e-4
        # ... which is (1/a_1, ..., 1/a_K) per row, and the gap is not zero: not identifiable
        v = np.eye(3) - 1 / 3
        a = np.einsum("tkj,kj->tk", m, v) / (2 / 3)
        null = 1.0 / a[:, None, :]
        along = np.sum(gap * null, axis=2, keepdims=True) / np.sum(null * null, 2, keepdims=True)
        assert np.abs(gap - along * null)[inner].max() < 1e-4
        assert np.abs(gap[inner]).max() > 0.1, "the minimum-norm gauge is the true E?"

    def test_its_replay_follows_the_trajectory(self, path):
        t, m = path
        E = fitted_impact(t, m, window=9, polyorder=3)
        assert relative_error(replay_impact(t, E, m[0]), m).max() < 1e-3

    def test_refuses_bad_class_means(self, path):
        t, m = path
        holes = m.copy()
        holes[5, 1, 2] = np.nan
        with pytest.raises(ValueError, match="NaN or inf"):
            fitted_impact(t, holes)
        with pytest.raises(ValueError, match=r"\(T, K, K\)"):
            fitted_impact(t, m[:, :2])


class TestMeasured:
    def track(self, matrices, times=None):
        S = matrices.shape[1]
        times = np.arange(S, dtype=float) if times is None else times
        return SimpleNamespace(impact=SimpleNamespace(times=times, matrices=matrices))

    def test_trial_average_skips_nan_and_fills_gaps(self):
        rng = np.random.default_rng(3)
        mats = rng.normal(size=(4, 7, 3, 3))
        mats[1, 2, 0, 1] = np.nan  # one trial missed this pair once: the others count
        mats[:, 4, 2, 2] = np.nan  # no trial measured it at t = 4: filled in time
        t, E = measured_impact(self.track(mats), window=1)
        np.testing.assert_allclose(E[2, 0, 1], np.mean(mats[[0, 2, 3], 2, 0, 1]), rtol=1e-14)
        mean = mats.mean(axis=0)
        np.testing.assert_allclose(E[4, 2, 2], 0.5 * (mean[3, 2, 2] + mean[5, 2, 2]), rtol=1e-14)
        picked = measured_impact(self.track(mats), trials=[0, 3], window=1)[1]
        np.testing.assert_allclose(picked[0], mats[[0, 3], 0].mean(axis=0), rtol=1e-14)

    def test_smoothing_keeps_a_straight_line(self):
        t = np.arange(9.0)
        line = (1.0 + 0.5 * t)[None, :, None, None] * np.ones((2, 9, 3, 3))
        noisy = line + 0.1 * np.random.default_rng(4).normal(size=line.shape)
        _, E = measured_impact(self.track(line, t), window=5)
        np.testing.assert_allclose(E, line[0], rtol=1e-12)
        _, rough = measured_impact(self.track(noisy, t), window=1)
        _, smooth = measured_impact(self.track(noisy, t), window=5)
        assert np.abs(smooth - line[0]).mean() < np.abs(rough - line[0]).mean()

    @pytest.mark.parametrize("pairs", [[(0, 2)], [(1, 0), (2, 2)]])
    def test_a_pair_never_measured_is_one_line(self, pairs):
        mats = np.ones((2, 5, 3, 3))
        for k, j in pairs:
            mats[:, :, k, j] = np.nan
        with pytest.raises(ValueError, match="no value for class pairs") as err:
            measured_impact(self.track(mats))
        shown = ", ".join(f"({k}, {j})" for k, j in pairs)
        assert shown in str(err.value) and "\n" not in str(err.value), str(err.value)

    def test_no_measurement_at_all_is_one_line(self):
        with pytest.raises(ValueError, match="impact_every"):
            measured_impact(SimpleNamespace(impact=None))


def test_a_given_matrix_with_missing_pairs_is_one_line():
    t = np.linspace(0.0, 1.0, 5)
    E = np.broadcast_to(2.0 * np.eye(3) + 0.5, (5, 3, 3)).copy()
    E[3:, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"class pairs \(row, column\) \(1, 0\) from t = 0.75"):
        replay_impact(t, E, start(3))
    with pytest.raises(ValueError, match=r"impact must be \(5, 3, 3\)"):
        replay_impact(t, E[:, :2], start(3))


@pytest.mark.parametrize("trials", [0, 1])
def test_half_split_needs_two_trials(trials):
    with pytest.raises(ValueError, match=f"at least 2 trials .one per half.; .* has {trials}$"):
        split_halves(trials)
    means = np.ones((max(trials, 1), 10, 3, 3))
    ens = SimpleNamespace(times=np.arange(10.0), class_means=means[:trials] if trials else means)
    if trials == 1:
        with pytest.raises(ValueError, match="at least 2 trials"):
            compare_replays(ens, start=0)
    with pytest.raises(ValueError, match="one trial in each half; got 0 and 1"):
        compare_replays(ens, start=0, halves=([], [0]))


def test_halves_are_disjoint_and_cover():
    for n in (2, 3, 10):
        a, b = split_halves(n, seed=n)
        assert len(a) == n // 2 and len(b) == n - n // 2
        assert sorted(np.r_[a, b].tolist()) == list(range(n))
