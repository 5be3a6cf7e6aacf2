"""A record stays exact (cpp/include/lesde/metrics.hpp, record.hpp).

A record's pass 2 decides each sample's nearest label mean by the exact rule (squared
distance summed over q in order, never |x|^2 - 2 mu.x + |mu|^2, which cancels when the common
mode grows; the first of equal distances wins) and makes the scatter about the label means.
These tests take every recorded state (``record_samples`` = all samples) and recompute the
record independently:

* NCC accuracy and NC4 by record.hpp's rule in NumPy (squared distance summed over q in
  order, the first of equal ones): the counts must be equal, whichever path decided;
* Sigma_W exactly (rational arithmetic on the recorded doubles) where the common mode is
  large, where E[xx^T] - mm^T loses every digit; elsewhere against the centred two-pass
  computation in float64.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import lesde
from lesde.sim.engine import allocate, make_engine


def run(**fields):
    n = fields["n_classes"] * fields.pop("n_per_class")
    cfg = lesde.Config(
        n_per_class=n // fields["n_classes"], record_samples=tuple(range(n)), seed=5, **fields
    )
    return lesde.simulate(cfg, progress=False)


def states(res):
    """(T, N, p) recorded states, (N,) labels, (T, K, p) label means of replica 0."""
    return res.sample_trajectories[0], res.labels[0], res.label_means[0]


def rule_decisions(x, means):
    """record.hpp's nearest_mean: squared distance summed over q in order, first of ties."""
    d2 = np.zeros((len(x), len(means)))
    for q in range(x.shape[1]):
        d = x[:, q, None] - means[None, :, q]
        d2 += d * d
    d2[:, ~np.isfinite(means).all(axis=1)] = np.inf  # labels no sample holds
    return np.argmin(d2, axis=1)


def check_decisions(res):
    X, y, means = states(res)
    N = len(y)
    for t in range(len(X)):
        nearest = rule_decisions(X[t], means[t])
        assert res.metrics["ncc_accuracy"][0, t] == np.count_nonzero(nearest == y) / N, t
        if res.config.dim is None or res.config.dim == res.config.n_classes:
            argmax = np.argmax(X[t], axis=1)  # the logits are the features (p = K)
            assert res.metrics["nc4"][0, t] == np.count_nonzero(nearest == argmax) / N, t


def centred_scatter(x, y, means):
    c = x - means[y]
    return c.T @ c / len(x)


CASES = {
    # Classes apart: few samples near a tie.
    "separated": dict(n_classes=3, n_per_class=2000, init_means=1.5 * np.eye(3), steps=8),
    # Classes on top of each other: most samples are near-ties.
    "overlapping": dict(n_classes=3, n_per_class=2000, steps=8),
    # Runs of one label are short; records every third step (a staler shift).
    "label_noise": dict(
        n_classes=4,
        n_per_class=500,
        init_means=2.0 * np.eye(4),
        label_noise=0.3,
        steps=12,
        record_every=3,
    ),
    "float32_linear": dict(
        n_classes=3,
        n_per_class=1000,
        init_means=2.0 * np.eye(3),
        signal="linear",
        dtype="float32",
        steps=8,
    ),
    # The means move far between records.
    "fast_drift": dict(
        n_classes=3,
        n_per_class=500,
        alpha=40.0,
        beta=5.0,
        signal="linear",
        steps=40,
        record_every=10,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_decisions_are_the_rules_and_the_scatter_is_centred(case):
    fields = dict(signal="cross_entropy", record_every=1)
    fields.update(CASES[case])
    res = run(**fields)
    assert res.ok
    check_decisions(res)
    X, y, means = states(res)
    for t in range(len(X)):
        want = centred_scatter(X[t].astype(np.float64), y, means[t])
        np.testing.assert_allclose(res.sigma_w[0, t], want, rtol=1e-12, atol=1e-14, err_msg=t)


def test_threads_give_the_same_record_bits():
    fields = dict(
        n_classes=3,
        n_per_class=3000,
        init_means=1.5 * np.eye(3),
        steps=6,
        record_every=1,
        signal="cross_entropy",
    )
    one, two = run(threads=1, **fields), run(threads=2, **fields)
    for name in ("sigma_w", "label_means"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name), err_msg=name)
    for name, values in one.metrics.items():
        np.testing.assert_array_equal(two.metrics[name], values, err_msg=name)


def exact_scatter(x, y, K):
    """N Sigma_W / N in rational arithmetic on the doubles x (labels y)."""
    N, p = x.shape
    rows = [[Fraction(float(v)) for v in row] for row in x]
    out = [[Fraction(0)] * p for _ in range(p)]
    for k in range(K):
        members = [rows[i] for i in range(N) if y[i] == k]
        if not members:
            continue
        mu = [sum(r[q] for r in members) / len(members) for q in range(p)]
        for r in members:
            d = [r[q] - mu[q] for q in range(p)]
            for a in range(p):
                for b in range(p):
                    out[a][b] += d[a] * d[b]
    return np.array([[float(v / N) for v in row] for row in out])


@pytest.mark.filterwarnings("ignore:from t = 0 the class contrasts:RuntimeWarning")
@pytest.mark.parametrize("common", [1e6, 1e8])
def test_a_large_common_mode_keeps_the_record_exact(common):
    K = 3
    res = run(
        n_classes=K,
        n_per_class=40,
        init_means=common + 3.0 * np.eye(K),
        signal="linear",
        sigma=0.5,
        steps=4,
        record_every=1,
    )
    assert res.ok
    check_decisions(res)
    X, y, _ = states(res)
    for t in range(len(X)):
        exact = exact_scatter(X[t], y, K)
        np.testing.assert_allclose(res.sigma_w[0, t], exact, rtol=1e-12, atol=1e-13, err_msg=t)
        # What this guards against: E[xx^T] - mm^T by label keeps at most 4 digits here.
        naive = np.zeros_like(exact)
        for k in range(K):
            xk = X[t][y == k]
            naive += xk.T @ xk - len(xk) * np.outer(xk.mean(0), xk.mean(0))
        naive /= len(y)
        assert np.abs(naive - exact).max() > 1e-6 * np.abs(exact).max()


def test_a_resumed_engine_makes_the_same_record_bits():
    """A run resumed from step 5 makes the same arrays, records included, as one that ran
    through: nothing a record needs is kept outside the state and the record arrays."""
    cfg = lesde.Config(
        n_classes=3,
        n_per_class=2000,
        init_means=1.5 * np.eye(3),
        steps=10,
        record_every=1,
        signal="cross_entropy",
        seed=5,
    )
    whole = allocate(cfg)
    sim = make_engine(cfg, whole)
    sim.initialize()
    sim.advance(10)
    part = allocate(cfg)
    first = make_engine(cfg, part)
    first.initialize()
    first.advance(5)
    second = make_engine(cfg, part)
    second.resume(5)
    second.advance(10)
    for name, values in whole.items():
        np.testing.assert_array_equal(part[name], values, err_msg=name)
