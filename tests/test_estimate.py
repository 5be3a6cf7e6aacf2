"""Tests of lesde.analysis.estimate, grouped by what they protect.

- round trips: class means generated from the exact LE-ODE solution with known
  alpha(t) = 1 + 0.5 sin t, beta(t) = 0.3 are turned back into A, B (to 1e-8) and
  alpha, beta (to 2e-2 away from the edges), for both the "I" (linear) and the "L"
  (projected) estimators; the closed forms are themselves checked against solve_ivp
- robustness: zeros and sign changes give NaN, never exceptions or warnings
- conventions: the paper's code's choices agree with lesde's where the paper's
  assumptions hold, and each deliberate departure shows where one fails;
  ``conventions="paper"`` is the paper's published code bit for bit (against its NumPy
  transcription, tests/paper_code.py) on raw logits, L for K = 3 (other K refused in one
  line), I for any K
- impact_rates: NaN gaps, non-uniform grids, window handling
- input validation
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from paper_code import estimate_AB_I, estimate_AB_L, rows_of
from scipy.integrate import solve_ivp

from lesde.analysis.estimate import impact_integrals, impact_rates
from lesde.nn.pipeline import paper_pipeline

K = 3
T_END = 10.0


def alpha_fn(t):
    return 1.0 + 0.5 * np.sin(t)


def beta_fn(t):
    return 0.3 + 0.0 * np.asarray(t)


def A_fn(t):
    return t + 0.5 * (1.0 - np.cos(t))


def B_fn(t):
    return 0.3 * t


def times(n=501):
    return np.linspace(0.0, T_END, n)


def initial_means(seed=0, k=K):
    return np.random.default_rng(seed).normal(size=(k, k)) + 0.5


def linear_closed_form(t, m0):
    """docs/model.md section 2: mbar grows as exp((A+(K-1)B)/K), contrasts as exp((A-B)/K)."""
    k = m0.shape[0]
    A, B = A_fn(t), B_fn(t)
    mbar0 = m0.mean(axis=0)
    u = np.exp((A + (k - 1) * B) / k)[:, None, None]
    v = np.exp((A - B) / k)[:, None, None]
    return u * mbar0 + v * (m0 - mbar0)


def impact_matrix(t, k=K):
    return beta_fn(t) * np.ones((k, k)) + (alpha_fn(t) - beta_fn(t)) * np.eye(k)


def solve_linear_ode(t, m0):
    """dm/dt = (E o pi) m with pi = 1/K, integrated numerically."""
    k = m0.shape[0]

    def rhs(s, flat):
        return (impact_matrix(s, k) / k @ flat.reshape(k, k)).ravel()

    sol = solve_ivp(rhs, (t[0], t[-1]), m0.ravel(), t_eval=t, rtol=1e-12, atol=1e-12,
                    method="DOP853")  # fmt: skip
    assert sol.success, sol.message
    return sol.y.T.reshape(t.size, k, k)


def label_dirs(k=K):
    return np.eye(k) - 1.0 / k  # row k is v_k


def solve_projected_ode(t, m0):
    """Projected signal: dm_k/dt = sum_k' pi_k' E[k,k'] P_k' m_k', P_k = v_k v_k^T/|v_k|^2."""
    k = m0.shape[0]
    V = label_dirs(k)
    vv = (k - 1) / k

    def rhs(s, flat):
        m = flat.reshape(k, k)
        a = np.einsum("kj,kj->k", V, m) / vv  # a_k = v_k . m_k / |v_k|^2
        g = a[:, None] * V  # P_k m_k = a_k v_k
        return (impact_matrix(s, k) / k @ g).ravel()

    sol = solve_ivp(rhs, (t[0], t[-1]), m0.ravel(), t_eval=t, rtol=1e-12, atol=1e-12,
                    method="DOP853")  # fmt: skip
    assert sol.success, sol.message
    return sol.y.T.reshape(t.size, k, k)


def projected_modes_closed_form(t, m0):
    """a(t) from the mode decomposition of docs/model.md section 3 (common vs zero-sum modes)."""
    k = m0.shape[0]
    a0 = np.einsum("kj,kj->k", label_dirs(k), m0) * k / (k - 1)
    abar0 = a0.mean()
    A, B = A_fn(t), B_fn(t)
    common = np.exp((A - B) / k)[:, None] * abar0
    zero_sum = np.exp((A + B / (k - 1)) / k)[:, None] * (a0 - abar0)
    return common + zero_sum


def interior(t, frac=0.1):
    return (t > t[0] + frac * (t[-1] - t[0])) & (t < t[-1] - frac * (t[-1] - t[0]))


# --------------------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------------------


class TestRoundTripI:
    def test_closed_form_matches_ode(self):
        t = times(101)
        m0 = initial_means()
        np.testing.assert_allclose(
            solve_linear_ode(t, m0),
            linear_closed_form(t, m0),
            rtol=1e-9,
            err_msg="docs/model.md closed form disagrees with the integrated linear LE-ODE",
        )

    def test_integrals_exact_data(self):
        t = times()
        m = linear_closed_form(t, initial_means())
        A_hat, B_hat = impact_integrals(m, model="I", times=t)
        np.testing.assert_allclose(A_hat, A_fn(t), atol=1e-8, err_msg="A_hat from exact data")
        np.testing.assert_allclose(B_hat, B_fn(t), atol=1e-8, err_msg="B_hat from exact data")

    def test_integrals_from_ode_solution(self):
        t = times(201)
        A_hat, B_hat = impact_integrals(solve_linear_ode(t, initial_means(seed=1)))
        np.testing.assert_allclose(A_hat, A_fn(t), atol=1e-7, err_msg="A_hat from ODE data")
        np.testing.assert_allclose(B_hat, B_fn(t), atol=1e-7, err_msg="B_hat from ODE data")

    def test_rates(self):
        t = times()
        A_hat, B_hat = impact_integrals(linear_closed_form(t, initial_means()))
        alpha, beta = impact_rates(t, A_hat, B_hat)
        inner = interior(t)
        err_a = np.max(np.abs(alpha - alpha_fn(t))[inner])
        err_b = np.max(np.abs(beta - beta_fn(t)))
        assert err_a < 2e-2, f"alpha_hat off by {err_a} in the interior (default window)"
        assert err_b < 1e-8, f"beta_hat off by {err_b}: B is linear, its derivative is exact"
        alpha_small, _ = impact_rates(t, A_hat, B_hat, window=21)
        err = np.max(np.abs(alpha_small - alpha_fn(t))[inner])
        # bias of a local quadratic fit: |alpha''| / 6 * (3/5) h^2 = 0.002 for h = 0.2
        assert err < 2.5e-3 and err < err_a, f"window=21 should track alpha closer: {err}"

    @pytest.mark.parametrize("seed", [2, 3, 4])
    def test_larger_K_and_other_dimension(self, seed):
        # the I estimator works for any feature dimension p, and K = 5
        rng = np.random.default_rng(seed)
        t = times(51)
        m0 = rng.normal(size=(5, 7)) + 1.0
        mbar0 = m0.mean(axis=0)
        u = np.exp((A_fn(t) + 4 * B_fn(t)) / 5)[:, None, None]
        v = np.exp((A_fn(t) - B_fn(t)) / 5)[:, None, None]
        A_hat, B_hat = impact_integrals(u * mbar0 + v * (m0 - mbar0))
        np.testing.assert_allclose(A_hat, A_fn(t), atol=1e-8, err_msg=f"A_hat, seed {seed}")
        np.testing.assert_allclose(B_hat, B_fn(t), atol=1e-8, err_msg=f"B_hat, seed {seed}")


class TestRoundTripL:
    def test_mode_decomposition_matches_ode(self):
        t = times(101)
        m0 = initial_means()
        m = solve_projected_ode(t, m0)
        a = np.einsum("kj,tkj->tk", label_dirs(), m) * K / (K - 1)
        np.testing.assert_allclose(
            a,
            projected_modes_closed_form(t, m0),
            rtol=1e-9,
            err_msg="docs/model.md section 3 mode decomposition disagrees with the projected ODE",
        )

    def test_integrals_exact_modes(self):
        # class means whose label-direction coordinates follow the modes exactly; the part
        # orthogonal to v_k is arbitrary (the L estimator must ignore it)
        t = times()
        m0 = initial_means()
        a = projected_modes_closed_form(t, m0)
        V = label_dirs()
        rng = np.random.default_rng(7)
        junk = rng.normal(size=(t.size, K, K))
        junk -= np.einsum("tkj,kj->tk", junk, V)[:, :, None] * V / np.sum(V[0] ** 2)
        m = a[:, :, None] * V + junk
        A_hat, B_hat = impact_integrals(m, model="L", times=t)
        np.testing.assert_allclose(A_hat, A_fn(t), atol=1e-8, err_msg="L: A_hat, exact modes")
        np.testing.assert_allclose(B_hat, B_fn(t), atol=1e-8, err_msg="L: B_hat, exact modes")

    def test_integrals_and_rates_from_ode(self):
        t = times(251)
        m = solve_projected_ode(t, initial_means(seed=5))
        A_hat, B_hat = impact_integrals(m, model="L")
        np.testing.assert_allclose(A_hat, A_fn(t), atol=1e-7, err_msg="L: A_hat from ODE")
        np.testing.assert_allclose(B_hat, B_fn(t), atol=1e-7, err_msg="L: B_hat from ODE")
        alpha, beta = impact_rates(t, A_hat, B_hat)
        inner = interior(t)
        err_a = np.max(np.abs(alpha - alpha_fn(t))[inner])
        err_b = np.max(np.abs(beta - beta_fn(t))[inner])
        assert err_a < 2e-2, f"L: alpha_hat off by {err_a} in the interior"
        assert err_b < 1e-5, f"L: beta_hat off by {err_b} in the interior"

    def test_I_estimator_is_not_the_L_estimator(self):
        # guard against the two models being silently swapped
        t = times(101)
        m = solve_projected_ode(t, initial_means(seed=6))
        A_I, _ = impact_integrals(m, model="I")
        assert not np.allclose(A_I, A_fn(t), atol=1e-3), "I estimator fitted projected data"


# --------------------------------------------------------------------------------------
# robustness: zeros, sign changes, NaN
# --------------------------------------------------------------------------------------


class TestRobustness:
    def test_sign_change_gives_nan_not_exception(self):
        # K = 2, p = 1: mbar(t) = 1 - t changes sign at t = 1; d_k(t) = +-1 stays put
        t = np.linspace(0.0, 2.0, 21)
        mbar = 1.0 - t
        m = np.stack([mbar + 1.0, mbar - 1.0], axis=1)[:, :, None]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            A_hat, B_hat = impact_integrals(m)
            alpha, beta = impact_rates(t, A_hat, B_hat)
        assert np.all(np.isfinite(A_hat[t < 1])), "before the sign change A_hat is defined"
        assert np.all(np.isnan(A_hat[t >= 1])), "at/after mbar hits 0 or flips: NaN"
        assert np.all(np.isnan(B_hat[t >= 1])), "B_hat NaN where A_hat is"
        assert np.isnan(alpha[-1]) and np.isfinite(alpha[0]), "rates follow the valid span"

    def test_zero_coordinates_are_skipped(self):
        t = times(51)
        m0 = initial_means()
        m0[:, 1] -= m0[:, 1].mean()  # mbar_1(0) = 0: coordinate 1 carries no mbar ratio
        m = linear_closed_form(t, m0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            A_hat, B_hat = impact_integrals(m)
        np.testing.assert_allclose(A_hat, A_fn(t), atol=1e-8, err_msg="other coords suffice")
        np.testing.assert_allclose(B_hat, B_fn(t), atol=1e-8, err_msg="other coords suffice")

    @pytest.mark.parametrize("model", ["I", "L"])
    def test_all_zero_or_nan_input(self, model):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for m in (np.zeros((5, 3, 3)), np.full((5, 3, 3), np.nan)):
                A_hat, B_hat = impact_integrals(m, model=model)
                assert np.isnan(A_hat).all() and np.isnan(B_hat).all(), f"{model}: all NaN"
                a, b = impact_rates(np.arange(5.0), A_hat, B_hat)
                assert np.isnan(a).all() and np.isnan(b).all(), "no data: NaN rates"

    def test_L_sign_change_of_common_mode(self):
        # alpha < beta shrinks the common mode; flip its sign by hand mid-way
        t = np.linspace(0.0, 1.0, 11)
        a = np.array([1.0, 2.0, 3.0])
        a_t = a[None, :] * np.ones((t.size, 1))
        a_t[6:] -= 10.0  # abar < 0 from record 6 on: common-mode ratio negative
        m = a_t[:, :, None] * label_dirs()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            A_hat, B_hat = impact_integrals(m, model="L")
        assert np.all(np.isfinite(A_hat[:6])) and np.all(np.isnan(A_hat[6:])), A_hat
        assert np.all(np.isnan(B_hat[6:])), "B_hat NaN where the common mode flipped"


# --------------------------------------------------------------------------------------
# conventions: lesde's estimators against the paper's code's choices
# --------------------------------------------------------------------------------------


class TestConventions:
    """``conventions="paper"`` reproduces the paper's code; the default departs from it on
    purpose. Where the paper's assumptions hold (logits summing to zero per class, no sign
    change, the exact LE-ODE) both agree; each departure shows where one fails."""

    def zero_sum_projected(self, t, seed):
        m = solve_projected_ode(t, initial_means(seed=seed))
        return m - m.mean(axis=2, keepdims=True)  # every class's logits sum to zero

    @pytest.mark.parametrize("model", ["I", "L"])
    def test_agree_where_the_paper_assumptions_hold(self, model):
        t = times(101)
        if model == "L":
            m = self.zero_sum_projected(t, seed=5)
        else:
            m = linear_closed_form(t, initial_means(seed=3))
        A, B = impact_integrals(m, model=model)
        A_p, B_p = impact_integrals(m, model=model, conventions="paper")
        np.testing.assert_allclose(A_p, A, atol=1e-8, err_msg=f"{model}: A, paper vs lesde")
        np.testing.assert_allclose(B_p, B, atol=1e-8, err_msg=f"{model}: B, paper vs lesde")
        np.testing.assert_allclose(A, A_fn(t), atol=1e-7, err_msg=f"{model}: A vs truth")

    def test_L_offsets_break_only_the_paper_reading(self):
        t = times(101)
        m = self.zero_sum_projected(t, seed=5)
        shifted = m + np.array([0.5, -0.3, 0.8])[None, :, None]  # a constant per class
        A, B = impact_integrals(shifted, model="L")
        np.testing.assert_allclose(A, A_fn(t), atol=1e-7, err_msg="lesde L: offset-invariant")
        A_p, _ = impact_integrals(shifted, model="L", conventions="paper")
        assert np.max(np.abs(A_p - A_fn(t))) > 0.1, "paper reading unaffected by offsets"

    def test_I_sign_change_skipped_by_lesde_averaged_by_the_paper(self):
        t = times(51)
        m = linear_closed_form(t, initial_means(seed=3))
        m[10:, 0, 1] *= -1.0  # one class-coordinate flips sign: no growth information
        A, B = impact_integrals(m)
        A_p, _ = impact_integrals(m, conventions="paper")
        np.testing.assert_allclose(A[:10], A_fn(t)[:10], atol=1e-8, err_msg="before the flip")
        assert np.all(np.abs(A - A_fn(t))[10:] < 0.3), "lesde: the flip moves A only mildly"
        assert np.any(np.abs(A_p - A)[10:] > 1e-3), "paper: log|ratio| keeps the entry"

    def test_paper_L_uses_one_zero_sum_coordinate(self):
        """The zero-sum coordinates z_k of a network need not grow alike; lesde averages
        the growth of all K, the paper's code reads the last class's only."""
        t = times(51)
        v = label_dirs()
        a = np.stack([1.0 + 0 * t, 2.0 + 0 * t, 4.0 + t], axis=1)  # z_k grow unevenly
        m = a[:, :, None] * v
        A, _ = impact_integrals(m, model="L")
        A_p, _ = impact_integrals(m, model="L", conventions="paper")
        assert np.all(np.isfinite(A)) and np.all(np.isfinite(A_p)), "both defined"
        assert np.max(np.abs(A - A_p)) > 0.1, "one coordinate read like all three"

    @staticmethod
    def raw_logits(k, seed):
        """An LE-ODE trajectory as a network reports it: a different constant added to
        each class's logits (their rows do not sum to zero), a little noise, and one
        class-coordinate that changes sign (log|ratio| keeps it)."""
        rng = np.random.default_rng(seed)
        m = linear_closed_form(times(41), initial_means(seed=seed, k=k))
        m = m + rng.normal(size=(1, k, 1)) + 0.01 * rng.normal(size=m.shape)
        m[20:, 0, 1] = -m[20:, 0, 1]
        return m

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_paper_L_is_the_published_code_bit_for_bit(self, seed):
        m = self.raw_logits(3, seed)
        assert np.min(np.abs(m.sum(axis=2))) > 0.01, "rows sum to zero: not raw logits"
        A, B = impact_integrals(m, model="L", conventions="paper")
        A_ref, B_ref, _, _ = estimate_AB_L(rows_of(m)[0], 3)
        np.testing.assert_array_equal(A, A_ref, err_msg="A_hat")
        np.testing.assert_array_equal(B, B_ref, err_msg="B_hat")
        A_centred, _ = impact_integrals(m - m.mean(axis=2, keepdims=True), model="L")
        assert np.nanmax(np.abs(A - A_centred)) > 0.1, "raw logits read like centred ones"

    @pytest.mark.parametrize("k", [2, 3, 4, 5, 10])
    def test_paper_I_is_the_published_code_bit_for_bit(self, k):
        m = self.raw_logits(k, seed=k)
        A, B = impact_integrals(m, model="I", conventions="paper")
        A_ref, B_ref = estimate_AB_I(*rows_of(m), k)
        np.testing.assert_array_equal(A, A_ref, err_msg=f"A_hat, K = {k}")
        np.testing.assert_array_equal(B, B_ref, err_msg=f"B_hat, K = {k}")

    def test_paper_I_keeps_what_a_zero_gives(self):
        """A class-coordinate equal to the class average at some record: log 0 = -inf in
        the published code, where lesde skips the entry."""
        m = self.raw_logits(3, seed=4)
        m[9, 1, 2] = 0.0
        m[9, 0, 2] = -m[9, 2, 2]  # mbar_2 = 0 at record 9
        A, B = impact_integrals(m, model="I", conventions="paper")
        with np.errstate(divide="ignore", invalid="ignore"):
            A_ref, B_ref = estimate_AB_I(*rows_of(m), 3)
        np.testing.assert_array_equal(A, A_ref)
        np.testing.assert_array_equal(B, B_ref)
        assert not np.isfinite(A[9]), A[9]
        assert np.isfinite(impact_integrals(m, model="I")[0][9]), "lesde skips the entry"

    @pytest.mark.parametrize("k", [2, 4, 10])
    def test_paper_L_other_K_is_one_line(self, k):
        m = linear_closed_form(times(41), initial_means(seed=1, k=k))
        for call in (
            lambda: impact_integrals(m, model="L", conventions="paper"),
            lambda: paper_pipeline(m, times=times(41), conventions="paper", start=0, window=5),
        ):
            with pytest.raises(
                ValueError, match=f"written for K = 3 classes only; got K = {k}"
            ) as e:
                call()
            assert "\n" not in str(e.value) and "conventions='lesde'" in str(e.value)
        A, _ = impact_integrals(m, model="L")  # lesde's L takes any K
        assert A.shape == (41,) and np.isfinite(A[0])

    def test_unknown_conventions_refused(self):
        with pytest.raises(ValueError, match="conventions"):
            impact_integrals(np.ones((4, 3, 3)), conventions="mine")


# --------------------------------------------------------------------------------------
# impact_rates specifics
# --------------------------------------------------------------------------------------


class TestRates:
    def test_nan_gaps_are_interpolated(self):
        t = times()
        A, B = A_fn(t), B_fn(t)
        A_gap = A.copy()
        A_gap[200:210] = np.nan
        A_gap[:5] = np.nan
        alpha, beta = impact_rates(t, A_gap, B)
        inner = interior(t)
        assert np.all(np.isnan(alpha[:5])), "leading NaNs cannot be differentiated"
        err = np.max(np.abs(alpha - alpha_fn(t))[inner])
        assert err < 2e-2, f"an interior gap should be bridged, error {err}"

    def test_non_uniform_times_are_resampled(self):
        rng = np.random.default_rng(8)
        t = np.sort(np.r_[0.0, rng.uniform(0.0, T_END, 599), T_END])
        alpha, beta = impact_rates(t, A_fn(t), B_fn(t))
        inner = interior(t)
        err_a = np.max(np.abs(alpha - alpha_fn(t))[inner])
        err_b = np.max(np.abs(beta - 0.3)[inner])
        assert err_a < 3e-2, f"non-uniform grid: alpha off by {err_a}"
        assert err_b < 1e-6, f"non-uniform grid: beta off by {err_b}"

    def test_window_larger_than_data_is_clipped(self):
        t = np.linspace(0.0, 1.0, 6)
        a, b = impact_rates(t, 3.0 * t, t**2, window=51)
        np.testing.assert_allclose(a, 3.0, err_msg="linear A: constant rate")
        np.testing.assert_allclose(b, 2.0 * t, atol=1e-12, err_msg="quadratic B, polyorder 2")

    def test_too_few_points_give_nan(self):
        a, b = impact_rates([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [0.0, np.nan, np.nan])
        assert np.isnan(b).all(), "a single finite value cannot be differentiated"
        assert np.isnan(a).all(), "3 points < polyorder + 2 = 4: NaN"


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: impact_integrals(np.ones((4, 3))), ValueError, "shape \\(T, K, p\\)"),
        (lambda: impact_integrals(np.ones((4, 1, 3))), ValueError, "K >= 2"),
        (lambda: impact_integrals(np.ones((0, 3, 3))), ValueError, "empty"),
        (lambda: impact_integrals(np.ones((4, 3, 3)), model="X"), ValueError, "model"),
        (lambda: impact_integrals(np.ones((4, 3, 2)), model="L"), ValueError, "p == K"),
        (lambda: impact_integrals(np.ones((4, 3, 3)), times=[0, 1, 2]), ValueError, "times"),
        (lambda: impact_integrals(np.ones((3, 3, 3)), times=[0, 2, 1]), ValueError, "increas"),
        (lambda: impact_integrals(np.array([[["a"]]])), TypeError, "class_mean_logits"),
        (lambda: impact_rates([0.0, 1.0], [0.0, 1.0], [0.0]), ValueError, "B_hat"),
        (lambda: impact_rates([0.0, 1.0], [[0.0, 1.0]], [0.0, 1.0]), ValueError, "A_hat"),
        (lambda: impact_rates([0.0, 1.0, 2.0], [0, 1, 2], [0, 1, 2], polyorder=0), ValueError,
         "polyorder"),
        (lambda: impact_rates([0.0, 1.0, 2.0], [0, 1, 2], [0, 1, 2], window=2), ValueError,
         "window"),
        (lambda: impact_rates([0.0, np.nan, 2.0], [0, 1, 2], [0, 1, 2]), ValueError, "times"),
    ],
)  # fmt: skip
def test_invalid_input_names_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_estimate_then_replay_recovers_the_trajectory():
    """Simulate the LE-ODE with known alpha(t), estimate the rates, replay them."""
    import lesde
    from lesde.analysis.estimate import replay, replay_error

    t = np.linspace(0.0, 2.0, 81)
    alpha = lesde.Tabulated(t, 1.0 + 0.5 * np.sin(2 * t))
    m0 = np.array([[1.2, 0.1, -0.2], [0.0, 0.9, 0.3], [-0.1, 0.2, 1.1]])
    genuine = lesde.simulate(
        n_classes=3,
        n_per_class=1,
        signal="linear",
        alpha=alpha,
        beta=0.3,
        sigma=0.0,
        init_scale=0.0,
        init_means=m0,
        dt=0.0025,
        t_end=2.0,
        record_every=10,
        scheme="heun",
        progress=False,
    )
    logits = genuine.class_means[0]
    A, B = impact_integrals(logits, model="I")
    a_hat, b_hat = impact_rates(genuine.times, A, B, window=9, polyorder=3)
    inner = slice(5, -5)
    np.testing.assert_allclose(
        a_hat[inner], alpha(t)[inner], atol=2e-2, err_msg="alpha(t) not recovered from the LE-ODE"
    )
    res = replay(genuine.times, a_hat, b_hat, logits[0], scheme="heun")
    err = replay_error(res, logits)
    assert err.max() < 1e-2, f"replayed class means are off by {err.max():.2e}"


def test_replay_rejects_bad_input():
    from lesde.analysis.estimate import replay

    t = np.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="alpha_hat"):
        replay(t, np.ones(4), np.ones(5), np.eye(2))
    with pytest.raises(ValueError, match="increasing"):
        replay(t[::-1], np.ones(5), np.ones(5), np.eye(2))
    with pytest.raises(ValueError, match="no finite"):
        replay(t, np.full(5, np.nan), np.ones(5), np.eye(2))
