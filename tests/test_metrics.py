"""Tests of lesde.metrics, grouped by what they protect.

- exact values on constructed geometry (simplex ETF, hand-computed moments)
- invariances (sample permutation, class relabelling, rotation, scale) via hypothesis
- agreement between entry points, and chunked == unchunked streaming
- separability verdicts and their certainty
- input validation and input handling (dtypes, layouts, no mutation)
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.special import logsumexp
from scipy.stats import ortho_group

from lesde import metrics
from lesde.metrics import (
    PAPYAN_ALIASES,
    SeparabilityResult,
    accuracy,
    canonical_name,
    class_means,
    logits,
    loss,
    loss_tail_exponent,
    nc1,
    nc1_from_moments,
    nc2,
    nc2_from_means,
    nc4,
    ncc_accuracy,
    ncc_predict,
    separability,
    separable,
    summary,
    within_between,
)

HYP = settings(max_examples=30, deadline=None, derandomize=True)


def gaussian_clouds(seed, K=3, p=4, n_per_class=20, spread=1.0, sep=3.0):
    """Labelled Gaussian clouds around random class centres (balanced, fixed seed)."""
    rng = np.random.default_rng(seed)
    centres = sep * rng.normal(size=(K, p))
    y = np.repeat(np.arange(K), n_per_class)
    X = centres[y] + spread * rng.normal(size=(y.size, p))
    return X, y


def simplex_etf(K, p, seed, scale=3.0):
    """Simplex-ETF class means (K of them) in R^p, randomly rotated and offset.

    Returns (means, offset) with the offset orthogonal to the span of the centred means.
    """
    rng = np.random.default_rng(seed)
    E = np.zeros((K, p))
    E[:, :K] = np.eye(K) - 1.0 / K  # centred simplex in the first K coordinates
    E *= scale / np.linalg.norm(E[0])
    Q = ortho_group.rvs(p, random_state=rng)
    M = E @ Q.T
    offset = rng.normal(size=p)
    U, _, _ = np.linalg.svd(M.T, full_matrices=False)
    offset -= U[:, : K - 1] @ (U[:, : K - 1].T @ offset)  # orthogonal to span(M)
    return M + offset, offset


def max_margin_separable(X, y, K, tol=1e-7):
    """Independent oracle: max t s.t. (w_y - w_k).x + b_y - b_k >= t, |W|, |b| <= 1."""
    n, p = X.shape
    q = K * (p + 1)
    rows = []
    for i in range(n):
        for k in range(K):
            if k == y[i]:
                continue
            row = np.zeros(q + 1)
            row[y[i] * p : (y[i] + 1) * p] -= X[i]
            row[k * p : (k + 1) * p] += X[i]
            row[K * p + y[i]] -= 1.0
            row[K * p + k] += 1.0
            row[q] = 1.0  # ... + t <= 0
            rows.append(row)
    c = np.zeros(q + 1)
    c[q] = -1.0
    bounds = [(-1.0, 1.0)] * q + [(None, 1.0)]
    res = linprog(c, A_ub=np.array(rows), b_ub=np.zeros(len(rows)), bounds=bounds)
    assert res.status == 0, res.message
    return -res.fun > tol


def nc_values(X, y, K=None):
    d = nc2(X, y, n_classes=K)
    return {"nc1": nc1(X, y, n_classes=K), **d, "ncc": ncc_accuracy(X, y, n_classes=K)}


def assert_dicts_close(a, b, rtol=1e-8, atol=1e-10, what=""):
    assert a.keys() == b.keys(), f"{what}: key sets differ: {sorted(a)} vs {sorted(b)}"
    for k in a:
        assert np.isclose(a[k], b[k], rtol=rtol, atol=atol, equal_nan=True), (
            f"{what}: {k} changed from {a[k]!r} to {b[k]!r}"
        )


# --------------------------------------------------------------------------------------
# exact values
# --------------------------------------------------------------------------------------


class TestExactValues:
    def test_simplex_etf_is_perfect_collapse(self):
        K, p, n = 4, 5, 7
        means, offset = simplex_etf(K, p, seed=11)
        y = np.tile(np.arange(K), n)
        X = means[y]  # zero within-class spread
        d = nc2(X, y)
        for key in ("equinorm", "equiangularity", "etf_distance", "coherence"):
            assert abs(d[key]) < 1e-10, f"simplex ETF should have {key} = 0, got {d[key]}"
        assert nc1(X, y) < 1e-10, f"zero within-class spread should give nc1 = 0, got {nc1(X, y)}"
        assert nc1(X, y, variant="svd") < 1e-10, "svd variant of nc1 should also be 0"
        assert ncc_accuracy(X, y) == 1.0, "NCC must classify an ETF without spread perfectly"
        head = means - offset  # logits x . M_k: largest for the own class on an ETF
        assert nc4(X, y, head=head) == 1.0, "NCC and argmax of ETF-head logits must agree"
        assert accuracy(X, y, head=head) == 1.0, "ETF head should classify its own ETF"

    def test_etf_with_noise_has_small_positive_nc1(self):
        means, _ = simplex_etf(4, 5, seed=2)
        rng = np.random.default_rng(2)
        y = np.repeat(np.arange(4), 50)
        X = means[y] + 1e-3 * rng.normal(size=(200, 5))
        v = nc1(X, y)
        assert 0.0 < v < 1e-4, f"tiny within-class noise should give tiny positive nc1, got {v}"

    def test_nc2_of_non_etf_geometry(self):
        means = np.array([[3.0, 0.0], [0.0, 0.0], [0.0, 3.0]])  # mu_G = (1, 1)
        M = means - means.mean(axis=0)
        norms = np.linalg.norm(M, axis=1)
        U = M / norms[:, None]
        cos = np.array([U[0] @ U[1], U[0] @ U[2], U[1] @ U[2]])
        d = nc2_from_means(means)
        assert math.isclose(d["equinorm"], norms.std() / norms.mean(), rel_tol=1e-12), (
            "equinorm must be the population coefficient of variation of |M_k|"
        )
        assert math.isclose(d["equiangularity"], cos.std(), rel_tol=1e-12), (
            "equiangularity must be the std of the pairwise cosines"
        )
        assert math.isclose(d["coherence"], np.mean(np.abs(cos + 0.5)), rel_tol=1e-12), (
            "coherence must be mean |cos + 1/(K-1)|"
        )
        G, E = U @ U.T, np.eye(3) - 1.0 / 3.0
        ref = np.linalg.norm(G / np.linalg.norm(G) - E / np.linalg.norm(E))
        assert math.isclose(d["etf_distance"], ref, rel_tol=1e-12), "etf_distance definition"

    def test_within_between_hand_computed(self):
        X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]])
        y = np.array([0, 0, 1, 1])
        sw, sb = within_between(X, y)
        # class 0: mean (1,0), deviations (+-1, 0); class 1: mean (0,5), deviations (0, +-1)
        np.testing.assert_allclose(sw, np.diag([0.5, 0.5]), err_msg="Sigma_W by hand")
        # M_0 = (0.5, -2.5), M_1 = -M_0; Sigma_B = M_0 M_0^T
        M0 = np.array([0.5, -2.5])
        np.testing.assert_allclose(sb, np.outer(M0, M0), err_msg="Sigma_B by hand")
        ref = np.trace(sw @ np.linalg.pinv(sb)) / 2
        assert math.isclose(nc1(X, y), ref, rel_tol=1e-12), "nc1 = trace(Sw Sb^+)/K"

    def test_within_scatter_is_centred_not_raw_moments(self):
        # huge common offset: E[xx^T] - mm^T would lose every digit here
        rng = np.random.default_rng(5)
        y = np.repeat(np.arange(2), 500)
        Z = rng.normal(size=(1000, 2))
        X = Z + 1e8
        sw, _ = within_between(X, y, _chunk=64)
        ref = (
            sum(np.cov(Z[y == k].T, bias=True) * np.count_nonzero(y == k) for k in range(2))
            / y.size
        )
        np.testing.assert_allclose(sw, ref, rtol=1e-6, err_msg="Sigma_W lost precision")

    def test_nc1_matches_numpy_pinv(self):
        X, y = gaussian_clouds(3, K=4, p=6)
        sw, sb = within_between(X, y)
        ref = np.trace(sw @ np.linalg.pinv(sb, hermitian=True)) / 4
        for variant in ("pinv", "svd"):
            v = nc1(X, y, variant=variant)
            assert math.isclose(v, ref, rel_tol=1e-9), f"nc1 {variant}: {v} vs pinv ref {ref}"

    def test_nc1_variants_differ_only_when_sigma_b_rank_deficient(self):
        # K = 4 classes in p = 2 dimensions: Sigma_B has rank 2 < K - 1 = 3
        X, y = gaussian_clouds(4, K=4, p=2)
        a, b = nc1(X, y), nc1(X, y, variant="svd")
        assert math.isclose(a, b, rel_tol=1e-10), "with p < K-1 both use all p directions"
        # collinear means: rank 1 < K - 1 = 2; svd variant inverts a ~0 eigenvalue
        means = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
        rng = np.random.default_rng(1)
        y = np.repeat(np.arange(3), 30)
        X = means[y] + 0.1 * rng.normal(size=(90, 3))
        X -= class_means(X, y)[y] - means[y]  # make the sample means exactly collinear
        pinv_v = nc1(X, y)
        svd_v = nc1(X, y, variant="svd")
        assert np.isfinite(pinv_v), "pinv variant must drop the null direction"
        assert svd_v > 1e6 * pinv_v, "svd variant must blow up on a null direction"

    def test_nc1_degenerate_cases(self):
        X = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
        y = np.array([0, 0, 1, 1])
        assert nc1(X, y) == math.inf, "coincident means with spread: nc1 = inf"
        assert math.isnan(nc1(np.zeros((4, 2)), y)), "coincident means, no spread: nan"
        assert math.isnan(nc1(X, np.zeros(4, dtype=int))), "a single class: nan"

    def test_empty_class_gives_nan_row_and_is_ignored(self):
        X, y = gaussian_clouds(6, K=3, p=3)
        mu = class_means(X, y, n_classes=5)
        assert np.isnan(mu[3:]).all(), "empty classes must have NaN means"
        assert math.isclose(nc1(X, y, n_classes=5), nc1(X, y), rel_tol=1e-12), (
            "empty classes must not change nc1"
        )
        assert_dicts_close(nc2(X, y, n_classes=5), nc2(X, y), what="nc2 with empty classes")
        pred = ncc_predict(X, mu)
        assert pred.max() < 3, "NCC must never predict an empty class"

    def test_loss_values(self):
        rng = np.random.default_rng(0)
        Z = 30.0 * rng.normal(size=(50, 4))
        y = rng.integers(0, 4, size=50)
        ref = np.mean(logsumexp(Z, axis=1) - Z[np.arange(50), y])
        assert math.isclose(loss(Z, y), ref, rel_tol=1e-12), "loss vs scipy logsumexp"
        assert loss(np.array([[1000.0, 0.0]]), np.array([1])) == 1000.0, "overflow-safe loss"
        assert loss(np.array([[1000.0, 0.0]]), np.array([0])) == 0.0, "underflow-safe loss"
        H = rng.normal(size=(4, 6))
        F = rng.normal(size=(50, 6))
        assert math.isclose(loss(F, y, head=H), loss(F @ H.T, y), rel_tol=1e-12), "head"
        np.testing.assert_allclose(logits(F, head=H), F @ H.T, err_msg="logits with head")

    def test_accuracy_ncc_nc4_small_example(self):
        X = np.array([[2.0, 0.0], [0.0, 2.0], [0.4, 0.5], [1.0, 0.9]])
        y = np.array([0, 1, 0, 1])
        assert accuracy(X, y) == 0.5, "argmax: rows 0, 1 right; rows 2, 3 wrong"
        mu = class_means(X, y)  # (1.2, 0.25), (0.5, 1.45)
        np.testing.assert_array_equal(ncc_predict(X, mu), [0, 1, 0, 0], err_msg="NCC")
        assert ncc_accuracy(X, y) == 0.75, "NCC accuracy"
        # argmax = [0, 1, 1, 0], NCC = [0, 1, 0, 0]: they agree on rows 0, 1, 3
        assert nc4(X, y) == 0.75, "NCC vs argmax agreement"

    def test_loss_tail_exponent(self):
        t = np.linspace(0.0, 200.0, 401)
        L = 0.7 * np.where(t > 0, t, 1.0) ** -1.5
        assert math.isclose(loss_tail_exponent(t, L), 1.5, rel_tol=1e-10), "pure power law"
        L2 = L.copy()
        L2[-5:] = 0.0  # underflowed loss values are skipped
        assert math.isclose(loss_tail_exponent(t, L2), 1.5, rel_tol=1e-10), "zeros skipped"
        assert math.isnan(loss_tail_exponent([0.0, 1.0], [1.0, 0.5])), "one point: nan"
        # only the tail is fitted: a different early regime must not matter
        L3 = np.where(t < 100, np.exp(-t / 10), L)
        assert math.isclose(loss_tail_exponent(t, L3, tail=0.4), 1.5, rel_tol=1e-10)


# --------------------------------------------------------------------------------------
# invariances
# --------------------------------------------------------------------------------------

cloud_params = st.tuples(
    st.integers(0, 2**31 - 1),  # seed
    st.integers(2, 4),  # K
    st.integers(0, 3),  # extra dimensions beyond K
    st.integers(3, 8),  # samples per class
)


def make_cloud(params):
    seed, K, extra, n = params
    X, y = gaussian_clouds(seed, K=K, p=K + extra, n_per_class=n, sep=2.0)
    return np.random.default_rng(seed + 1), X, y, K


class TestInvariance:
    @HYP
    @given(cloud_params)
    def test_sample_permutation(self, params):
        rng, X, y, K = make_cloud(params)
        perm = rng.permutation(y.size)
        assert_dicts_close(nc_values(X, y), nc_values(X[perm], y[perm]), what="permutation")
        Z = X[:, :K]
        for f in (loss, accuracy, nc4):
            a, b = f(Z, y), f(Z[perm], y[perm])
            assert math.isclose(a, b, rel_tol=1e-10), f"{f.__name__} changed under permutation"

    @HYP
    @given(cloud_params)
    def test_class_relabelling(self, params):
        rng, X, y, K = make_cloud(params)
        pi = rng.permutation(K)  # class k becomes class pi[k]
        y2 = pi[y]
        assert_dicts_close(nc_values(X, y), nc_values(X, y2), what="relabelling")
        Z = X[:, :K]
        Z2 = np.empty_like(Z)
        Z2[:, pi] = Z  # logit column k moves to pi[k]
        for f in (loss, accuracy, nc4):
            a, b = f(Z, y), f(Z2, y2)
            assert math.isclose(a, b, rel_tol=1e-10), f"{f.__name__} changed under relabelling"

    @HYP
    @given(cloud_params)
    def test_rotation(self, params):
        rng, X, y, K = make_cloud(params)
        Q = ortho_group.rvs(X.shape[1], random_state=rng)
        assert_dicts_close(nc_values(X, y), nc_values(X @ Q.T, y), what="rotation")

    @HYP
    @given(cloud_params, st.floats(1e-3, 1e3))
    def test_global_scale(self, params, c):
        _, X, y, _ = make_cloud(params)
        assert_dicts_close(nc_values(X, y), nc_values(c * X, y), what=f"scale by {c}")

    @HYP
    @given(cloud_params)
    def test_translation_leaves_nc_metrics(self, params):
        rng, X, y, _ = make_cloud(params)
        shift = 10.0 * rng.normal(size=X.shape[1])
        assert_dicts_close(nc_values(X, y), nc_values(X + shift, y), what="translation")


# --------------------------------------------------------------------------------------
# agreement between entry points; chunked == unchunked
# --------------------------------------------------------------------------------------


class TestAgreement:
    def test_nc1_equals_moments_route(self):
        X, y = gaussian_clouds(8, K=5, p=7)
        sw, sb = within_between(X, y)
        mu = class_means(X, y)
        M = mu - mu.mean(axis=0)
        np.testing.assert_allclose(
            sb, M.T @ M / 5, rtol=1e-10, atol=1e-12, err_msg="Sigma_B from means"
        )
        for variant in ("pinv", "svd"):
            a = nc1(X, y, variant=variant)
            b = nc1_from_moments(sw, mu, variant=variant)
            assert a == b, f"nc1 ({variant}) differs from nc1_from_moments: {a} vs {b}"

    def test_nc2_equals_means_route(self):
        X, y = gaussian_clouds(9, K=4, p=4)
        assert nc2(X, y) == nc2_from_means(class_means(X, y)), "nc2 vs nc2_from_means"

    def test_summary_agrees_with_individual_functions(self):
        X, y = gaussian_clouds(10, K=3, p=3)
        c = y.copy()
        c[::7] = (c[::7] + 1) % 3
        s = summary(X, y, classes=c)
        assert s["loss"] == pytest.approx(loss(X, y), rel=1e-12), "summary loss"
        assert s["accuracy"] == accuracy(X, y), "summary accuracy"
        assert s["clean_accuracy"] == accuracy(X, c), "summary clean accuracy"
        assert s["ncc_accuracy"] == ncc_accuracy(X, y), "summary ncc_accuracy"
        assert s["nc1"] == nc1(X, y) and s["nc1_svd"] == nc1(X, y, variant="svd"), "nc1"
        assert s["nc4"] == nc4(X, y) and s["ncc_mismatch"] == 1.0 - s["nc4"], "nc4/mismatch"
        for key, v in nc2(X, y).items():
            assert s[key] == v, f"summary {key}"
        assert tuple(s) == metrics.SUMMARY_KEYS, f"summary keys/order changed: {tuple(s)}"
        assert "clean_accuracy" not in summary(X, y), "clean_accuracy only with classes"

    def test_summary_without_logits_gives_nan_logit_metrics(self):
        X, y = gaussian_clouds(12, K=3, p=5)
        s = summary(X, y)
        assert math.isnan(s["loss"]) and math.isnan(s["nc4"]), "p != K and no head: NaN"
        assert np.isfinite(s["nc1"]) and s["ncc_accuracy"] > 0.5, "NC metrics still computed"
        H = np.random.default_rng(0).normal(size=(3, 5))
        assert math.isclose(summary(X, y, head=H)["loss"], loss(X, y, head=H)), "with head"

    def test_chunked_equals_unchunked(self):
        X, y = gaussian_clouds(13, K=4, p=4, n_per_class=250)  # 1000 rows, chunks of 37
        H = np.random.default_rng(1).normal(size=(4, 4))
        mu = class_means(X, y)
        one, many = {"_chunk": 10**6}, {"_chunk": 37}
        np.testing.assert_allclose(class_means(X, y, **many), mu, rtol=1e-12)
        for a, b in zip(within_between(X, y, **one), within_between(X, y, **many), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14, err_msg="within_between")
        np.testing.assert_array_equal(ncc_predict(X, mu, **one), ncc_predict(X, mu, **many))
        np.testing.assert_allclose(logits(X, H, **one), logits(X, H, **many), rtol=1e-13)
        assert_dicts_close(summary(X, y, **one), summary(X, y, **many), rtol=1e-11, what="chunk")
        for f in (loss, accuracy, nc4):
            assert math.isclose(f(X, y, H, **one), f(X, y, H, **many), rel_tol=1e-12), (
                f"{f.__name__}: chunked result differs"
            )
        assert math.isclose(nc1(X, y, **one), nc1(X, y, **many), rel_tol=1e-10), "nc1 chunks"
        for method in ("ncc", "argmax"):
            r1 = separable(X, y, method=method, **one)
            r2 = separable(X, y, method=method, **many)
            assert r1.separable == r2.separable, f"separable({method}) differs across chunks"
            assert math.isclose(r1.margin, r2.margin, rel_tol=1e-10), f"{method} margin"
            assert r1.error_rate == r2.error_rate, f"{method} error rate"

    def test_default_chunk_boundary_against_numpy(self):
        # more rows than one default chunk (65536), checked against direct NumPy
        rng = np.random.default_rng(14)
        n, K = 70000, 3
        y = rng.integers(0, K, size=n)
        X = np.eye(K)[y] + 0.5 * rng.normal(size=(n, K))
        mu = np.stack([X[y == k].mean(axis=0) for k in range(K)])
        D = X - mu[y]
        np.testing.assert_allclose(class_means(X, y), mu, rtol=1e-10)
        np.testing.assert_allclose(within_between(X, y)[0], D.T @ D / n, rtol=1e-10)
        ref_loss = np.mean(logsumexp(X, axis=1) - X[np.arange(n), y])
        assert math.isclose(loss(X, y), ref_loss, rel_tol=1e-10), "loss across chunks"
        ref_ncc = np.argmin(((X[:, None, :] - mu[None]) ** 2).sum(axis=2), axis=1)
        assert ncc_accuracy(X, y) == np.mean(ref_ncc == y), "ncc accuracy across chunks"


# --------------------------------------------------------------------------------------
# separability
# --------------------------------------------------------------------------------------


class TestSeparable:
    def test_well_separated_clouds(self):
        X, y = gaussian_clouds(20, K=2, p=2, n_per_class=100, sep=1.0)
        X = X + np.where(y[:, None] == 0, -8.0, 8.0)
        for method in ("lp", "ncc"):
            r = separable(X, y, method=method)
            assert isinstance(r, SeparabilityResult)
            assert r.separable and r.certain, f"{method} must certify separable: {r.message}"
            assert r.margin > 0 and not r.subsampled and r.n_used == 200, f"{method}: {r}"
        assert separable(X, y, method="ncc").error_rate == 0.0

    def test_xor_is_not_separable(self):
        X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
        y = np.array([0, 0, 1, 1])
        r = separable(X, y, method="lp")
        assert not r.separable and r.certain, f"XOR: LP must prove non-separable: {r}"
        r = separable(X, y, method="ncc")
        assert not r.separable and not r.certain, "NCC failure is not a proof"
        assert "does not prove" in r.message, "NCC failure must say it is not a proof"

    def test_three_classes_on_a_line(self):
        # classes at -5, 0, 5 along a line: separable with biases, NCC too
        rng = np.random.default_rng(21)
        y = np.repeat(np.arange(3), 40)
        X = np.c_[5.0 * (y - 1) + 0.5 * rng.normal(size=120), 0.1 * rng.normal(size=120)]
        assert separable(X, y, method="lp").separable, "3 collinear clusters are separable"
        assert separable(X, y, method="ncc").separable, "NCC separates 3 collinear clusters"
        # middle class flanked by the other class: not linearly separable
        X1 = np.array([[-1.0], [1.0], [0.0], [-1.2], [1.3], [0.1]])
        y1 = np.array([0, 0, 1, 0, 0, 1])
        r = separable(X1, y1, method="lp")
        assert not r.separable and r.certain, f"flanked class must be non-separable: {r}"

    def test_subsample_witness_verified_on_full_set(self):
        X, y = gaussian_clouds(22, K=3, p=3, n_per_class=400, spread=0.3, sep=4.0)
        assert separable(X, y, method="ncc").separable, "setup: the clouds are separable"
        r = separable(X, y, method="lp", max_samples=150, seed=3)
        assert r.separable and r.certain, f"witness should separate all 1200 points: {r}"
        assert not r.subsampled and r.n_used == 1200, f"verdict covers all samples: {r}"
        assert "subsample of 150" in r.message, f"the subsample must be reported: {r.message}"

    def test_subsampling_is_reported_and_deterministic(self):
        # two separated clouds plus one mislabelled point inside the wrong cloud: the full
        # set is not separable, but a subsample without that point is
        X, y = gaussian_clouds(22, K=2, p=2, n_per_class=500, spread=0.3, sep=4.0)
        X = np.r_[X, X[:1]]
        y = np.r_[y, 1]
        full = separable(X, y, method="lp")
        assert not full.separable and full.certain, f"setup: full set non-separable: {full}"
        r = separable(X, y, method="lp", max_samples=150, seed=3)
        assert r.subsampled and r.n_used == 150, f"subsample of 150 expected: {r}"
        assert r.separable and not r.certain, "a separable subsample certifies nothing"
        assert "subsample" in r.message and "does not certify" in r.message, r.message
        assert separable(X, y, method="lp", max_samples=150, seed=3) == r, "same seed"
        # an infeasible subsample does prove the full set non-separable
        Xo, yo = gaussian_clouds(23, K=2, p=2, n_per_class=1000, spread=3.0, sep=0.1)
        r = separable(Xo, yo, method="lp", max_samples=200)
        assert r.subsampled and not r.separable and r.certain, f"overlap: {r}"

    @HYP
    @given(
        st.integers(0, 2**31 - 1),
        st.integers(2, 3),
        st.integers(1, 3),
        st.integers(6, 40),
        st.sampled_from([0.5, 2.0, 6.0]),
    )
    def test_lp_verdict_matches_independent_max_margin_lp(self, seed, K, p, n, sep):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, K, size=n)
        y[:K] = np.arange(K)  # every class present
        X = sep * rng.normal(size=(K, p))[y] + rng.normal(size=(n, p))
        expected = max_margin_separable(X, y, K)
        r = separable(X, y, method="lp")
        assert r.separable == expected and r.certain, f"lp says {r}, oracle says {expected}"
        if expected:
            assert r.margin > 0, f"separable but non-positive witness margin: {r}"
        # the constraint-generation path (tiny starting set), called directly
        ok, decided, _, _, _, msg = separability._lp_separable(X, y, seed=0, start=2)
        assert ok == expected and decided, f"constraint generation: {msg}"

    def test_argmax_reading(self):
        Z = np.array([[3.0, 1.0], [0.0, 2.0], [1.0, 1.5]])
        r = separable(Z, np.array([0, 1, 1]), method="argmax")
        assert r.separable and r.certain and r.margin == 0.5, f"all argmax correct: {r}"
        r = separable(Z, np.array([0, 1, 0]), method="argmax")
        assert not r.separable and r.error_rate == pytest.approx(1 / 3), f"one wrong: {r}"
        assert r.margin == -0.5, "margin is z_y - max_other"
        tie = separable(np.array([[1.0, 1.0]]), np.array([0]), method="argmax")
        assert not tie.separable, "a tie is not a strict separation"

    def test_readings_differ_when_pushed_away_from_labels(self):
        # classes separable, but logits point to the wrong label (alpha < beta regime)
        X, y = gaussian_clouds(24, K=2, p=2, n_per_class=50, spread=0.2)
        X = np.where(y[:, None] == 0, [0.0, 5.0], [5.0, 0.0]) + X * 0.1
        assert separable(X, y, method="lp").separable, "clouds are linearly separable"
        r = separable(X, y, method="argmax")
        assert not r.separable and r.error_rate == 1.0, "but every argmax is wrong"


# --------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------


class TestNames:
    def test_papyan_aliases(self):
        assert canonical_name("Sw_invSb") == "nc1"
        assert canonical_name("norm_M_CoV") == "equinorm"
        assert canonical_name("cos_M") == "coherence"
        assert canonical_name("NCC_mismatch") == "ncc_mismatch"
        assert canonical_name("NC1") == "nc1", "case-insensitive fallback"
        X, y = gaussian_clouds(30, K=3, p=3)
        s = summary(X, y)
        for alias, name in PAPYAN_ALIASES.items():
            assert name in s, f"alias {alias} maps to {name}, which summary does not return"

    def test_unknown_name_has_hint(self):
        with pytest.raises(ValueError, match="did you mean 'equinorm'"):
            canonical_name("equinrom")
        with pytest.raises(ValueError, match="does not compute"):
            canonical_name("W_M_dist")


# --------------------------------------------------------------------------------------
# input validation and handling
# --------------------------------------------------------------------------------------


class TestInputs:
    X, y = gaussian_clouds(40, K=3, p=3)

    @pytest.mark.parametrize(
        ("call", "exc", "match"),
        [
            (lambda X, y: nc1(X[:, 0], y), ValueError, "X must be a 2-D"),
            (lambda X, y: nc1(X[:0], y[:0]), ValueError, "X is empty"),
            (lambda X, y: nc1(X, y[:-1]), ValueError, "y has 59 entries"),
            (lambda X, y: nc1(X, y - 1), ValueError, "y contains the negative label"),
            (lambda X, y: nc1(X, y, n_classes=2), ValueError, "y contains the label 2"),
            (lambda X, y: nc1(X, y.astype(float)), TypeError, "y must be an integer"),
            (lambda X, y: nc1(X.astype(complex), y), TypeError, "X must be a real"),
            (lambda X, y: nc1(X, y, variant="eig"), ValueError, "variant"),
            (lambda X, y: loss(X, y, head=np.ones((3, 2))), ValueError, "head must have"),
            (lambda X, y: loss(X, y, head=np.full((3, 3), np.nan)), ValueError, "head contains"),
            (lambda X, y: loss(X[:, :2], y), ValueError, "y contains the label 2"),
            (lambda X, y: nc4(X, y, n_classes=4), ValueError, "n_classes=4"),
            (lambda X, y: separable(X, y, method="svm"), ValueError, "method"),
            (lambda X, y: separable(X, y, head=np.eye(3)), ValueError, "head is only used"),
            (lambda X, y: ncc_predict(X, np.ones((3, 2))), ValueError, "means must have"),
            (lambda X, y: nc1_from_moments(np.eye(2), np.eye(3)), ValueError, "sigma_w"),
            (lambda X, y: loss_tail_exponent([1.0, 2.0], [1.0], 0.5), ValueError, "loss must"),
            (lambda X, y: loss_tail_exponent([1.0, 2.0], [1.0, 0.5], 0.0), ValueError, "tail"),
        ],
    )
    def test_invalid_input_names_the_argument(self, call, exc, match):
        with pytest.raises(exc, match=match):
            call(self.X, self.y)

    def test_non_finite_features_rejected_with_row(self):
        X = self.X.copy()
        X[17, 1] = np.nan
        with pytest.raises(ValueError, match="X contains non-finite values.*row 17"):
            nc1(X, self.y, _chunk=5)
        with pytest.raises(ValueError, match="X contains non-finite"):
            separable(X, self.y, method="lp")

    def test_layouts_and_dtypes_accepted(self):
        X, y = self.X, self.y
        ref = summary(X, y)
        big = X.astype(">f8")  # non-native byte order
        assert_dicts_close(summary(big, y.astype(">i4")), ref, rtol=1e-12, what="big-endian")
        wide = np.zeros((X.shape[0], 6))
        wide[:, ::2] = X
        view = wide[:, ::2]  # strided, non-contiguous
        assert not view.flags.c_contiguous
        assert_dicts_close(summary(view, y), ref, rtol=1e-12, what="strided view")
        ro = X.copy()
        ro.setflags(write=False)
        assert_dicts_close(summary(ro, y), ref, rtol=1e-12, what="read-only")
        f32 = summary(X.astype(np.float32), y.astype(np.uint8))
        assert_dicts_close(f32, ref, rtol=1e-5, atol=1e-6, what="float32")
        assert_dicts_close(summary(X.tolist(), y.tolist()), ref, rtol=1e-12, what="lists")

    def test_inputs_not_modified(self):
        X, y = self.X.copy(), self.y.copy()
        summary(X, y, classes=y)
        for method in ("ncc", "lp", "argmax"):
            separable(X, y, method=method)
        logits(X)
        np.testing.assert_array_equal(X, self.X, err_msg="a metric modified X in place")
        np.testing.assert_array_equal(y, self.y, err_msg="a metric modified y in place")

    def test_no_warnings_on_degenerate_data(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            nc2(np.zeros((4, 2)), np.array([0, 0, 1, 1]))
            nc1(np.zeros((4, 2)), np.array([0, 0, 1, 1]))
            summary(np.zeros((4, 2)), np.array([0, 0, 1, 1]))


def test_module_exports():
    for name in metrics.__all__:
        assert hasattr(metrics, name), f"metrics.__all__ lists missing name {name}"


# --------------------------------------------------------------------------------------
# finishing many records at once: the batched forms equal the single-record functions
# --------------------------------------------------------------------------------------


def record_stack(seed, R=6, T=5, K=4, p=3):
    """Random engine-like records (R, T) with every case the finishing must handle: absent
    labels (all-NaN rows), a replica that failed (NaN records), coinciding class means with
    and without within-class spread, collinear means (rank-deficient contrasts) and means
    with a large common offset."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(R, T, K, p))
    A = rng.normal(size=(R, T, p, p))
    sigma_w = A @ A.transpose(0, 1, 3, 2) / p
    means[0, 1, 2] = np.nan  # one label absent
    means[0, 2, 1:3] = np.nan  # two absent: two classes left
    means[0, 3, 1:] = np.nan  # one class left: NaN
    means[1, 3:] = np.nan  # replica 1 failed after its third record
    sigma_w[1, 3:] = np.nan
    means[2, 0] = 1.5  # all class means equal, Sigma_W != 0: inf
    means[2, 1] = -0.5
    sigma_w[2, 1] = 0.0  # all equal, Sigma_W = 0: NaN
    means[3, 0] = np.outer(np.arange(K), rng.normal(size=p))  # collinear: rank 1
    means[3, 1] += 1e6  # a common offset much larger than the contrasts
    return sigma_w, means


def single_record_reference(sigma_w, means):
    """nc1_from_moments / nc2_from_means record by record (NaN where they refuse)."""
    lead = means.shape[:-2]
    nc1_values = np.full(lead, np.nan)
    nc2_values = {key: np.full(lead, np.nan) for key in ("equinorm", "equiangularity")}
    nc2_values.update({key: np.full(lead, np.nan) for key in ("etf_distance", "coherence")})
    for index in np.ndindex(*lead):
        try:
            nc1_values[index] = nc1_from_moments(sigma_w[index], means[index])
        except ValueError:  # a non-finite sigma_w or class mean
            pass
        try:
            for key, value in nc2_from_means(means[index]).items():
                nc2_values[key][index] = value
        except ValueError:
            pass
    return nc1_values, nc2_values


class TestBatchedFinishing:
    @pytest.mark.parametrize("K, p", [(4, 3), (4, 2), (3, 5), (3, 1), (6, 6)])
    def test_batched_equals_single_record_functions(self, K, p):
        from lesde.metrics.neural_collapse import nc1_from_moments_batched, nc2_from_means_batched

        sigma_w, means = record_stack(seed=K * 10 + p, K=K, p=p)
        want_nc1, want_nc2 = single_record_reference(sigma_w, means)
        got_nc1 = nc1_from_moments_batched(sigma_w, means)
        np.testing.assert_allclose(
            got_nc1, want_nc1, rtol=1e-12, atol=0, err_msg=f"batched NC1, K={K} p={p}"
        )
        for key, values in nc2_from_means_batched(means).items():
            np.testing.assert_allclose(
                values, want_nc2[key], rtol=1e-12, atol=1e-14, err_msg=f"batched {key}"
            )
        if K == 4 and p == 3:  # the special records really are special
            assert np.isinf(got_nc1[2, 0]) and np.isnan(got_nc1[2, 1]), "coinciding means"
            assert np.isnan(got_nc1[0, 3]) and np.isnan(got_nc1[1, 4]), "one class / failed"
            assert np.isfinite(got_nc1[0, 2]), "two classes left must still give NC1"

    def test_finish_metrics_keeps_the_per_record_rule(self):
        """finish_metrics leaves out classes whose mean is not finite (absent, or a diverged
        class) and gives NaN for a record whose sigma_w is not finite: record by record."""
        from lesde.sim.result import SCALAR_METRICS, finish_metrics

        sigma_w, means = record_stack(seed=3)
        means[4, 2, 0, 1] = np.inf  # one diverged class mean: that class is left out
        scalars = np.zeros((*means.shape[:2], len(SCALAR_METRICS)))
        got = finish_metrics(scalars, sigma_w, means)
        for r, t in np.ndindex(*means.shape[:2]):
            mu = means[r, t][np.all(np.isfinite(means[r, t]), axis=1)]
            if mu.shape[0] < 2 or not np.all(np.isfinite(sigma_w[r, t])):
                assert np.isnan(got["nc1"][r, t]) and np.isnan(got["equinorm"][r, t]), (r, t)
                continue
            want = nc1_from_moments(sigma_w[r, t], mu)
            np.testing.assert_allclose(got["nc1"][r, t], want, rtol=1e-12, err_msg=f"{r},{t}")
            for key, value in nc2_from_means(mu).items():
                np.testing.assert_allclose(got[key][r, t], value, rtol=1e-12, atol=1e-14)

    def test_finishing_many_replicas_is_not_a_python_loop(self):
        """16,384 records (8,192 replicas x 2) took 4 s record by record; batched, about
        0.05 s. The bound leaves a factor of 10 for a slow, shared machine."""
        import time

        from lesde.sim.result import SCALAR_METRICS, finish_metrics

        rng = np.random.default_rng(5)
        means, sigma_w = rng.normal(size=(8192, 2, 3, 3)), np.eye(3) + np.zeros((8192, 2, 3, 3))
        scalars = np.zeros((8192, 2, len(SCALAR_METRICS)))
        start = time.perf_counter()
        finish_metrics(scalars, sigma_w, means)
        elapsed = time.perf_counter() - start
        assert elapsed < 1.0, f"finishing 16,384 records took {elapsed:.2f} s (want < 1 s)"
