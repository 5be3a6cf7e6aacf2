"""A run warns, once, when its records outgrow the resolution of the features' dtype.

The linear signal's common mode grows like exp((alpha + (K-1) beta) t / K), its contrasts
like exp((alpha - beta) t / K) and its within-class spread like sigma sqrt(t): long before
anything overflows, the structure the metrics measure sinks below the rounding error of the
class means (docs/model.md, numerical notes). These runs take a few hundredths of a second.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import lesde

LINEAR = dict(n_classes=3, n_per_class=100, signal="linear", alpha=2.0, beta=1.0, sigma=0.1, seed=1)


def run(**fields):
    """The result and the messages of the RuntimeWarnings the run gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = lesde.simulate(progress=False, **fields)
    return res, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def first_lost_time(res):
    """Record by record: the first time the contrasts or the spread (the smaller nonzero
    one) fall below sqrt(eps) times the largest class mean, in any replica."""
    eps = np.finfo(res.features.dtype).eps
    for t, time in enumerate(res.times):
        for r in range(res.label_means.shape[0]):
            mu = res.label_means[r, t]
            common = np.linalg.norm(mu, axis=1).max()
            scales = [
                np.linalg.norm(mu - mu.mean(axis=0), axis=1).max(),
                math.sqrt(np.trace(res.sigma_w[r, t])),
            ]
            structure = min(s for s in scales if s > 0)
            if structure / common < math.sqrt(eps):
                return time
    return None


def test_linear_run_warns_once_naming_the_first_record_without_resolution():
    res, messages = run(t_end=20.0, replicas=3, **LINEAR)
    lost = first_lost_time(res)
    assert lost is not None and 10 < lost < 20, f"the records lose resolution at t = {lost}"
    resolution = [m for m in messages if "significant digits" in m]
    assert len(resolution) == 1, f"expected one resolution warning, got {messages}"
    message = resolution[0]
    assert "\n" not in message, message
    named = float(re.search(r"from t = ([0-9.e+-]+)", message).group(1))
    assert named == pytest.approx(lost, rel=1e-6), f"{message} (records: t = {lost})"
    assert "t_end" in message and "cross_entropy" in message, message


def test_no_warning_while_the_records_keep_their_resolution():
    res, messages = run(t_end=10.0, **LINEAR)
    assert first_lost_time(res) is None
    assert messages == [], messages
    _, messages = run(
        n_classes=3, n_per_class=100, signal="cross_entropy", alpha=2.0, beta=1.0, t_end=50.0
    )
    assert messages == [], f"cross-entropy records keep their resolution: {messages}"


def test_float32_runs_lose_resolution_sooner_and_say_so():
    res, messages = run(t_end=10.0, dtype="float32", **LINEAR)
    lost = first_lost_time(res)
    assert lost is not None, "float32 features resolve only about 7 digits"
    assert len(messages) == 1 and "float32" in messages[0], messages
    assert f"from t = {lost:g} " in messages[0], messages


def test_a_diverged_run_is_reported_once_by_on_nonfinite_only():
    _, messages = run(t_end=12.0, on_nonfinite="warn", **{**LINEAR, "alpha": 3e8})
    assert len(messages) == 1 and "non-finite" in messages[0], messages


def test_no_warning_when_the_spread_is_zero_by_construction():
    # init_scale = 0 and sigma = 0: every sample of a class sits on its mean, so the recorded
    # Sigma_W is rounding noise around 0, not structure that lost its resolution.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        lesde.simulate(
            n_classes=3,
            class_sizes=(2, 3, 5),
            signal="linear",
            alpha=1.0,
            beta=0.3,
            sigma=0.0,
            init_scale=0.0,
            init_means=np.eye(3),
            dt=0.01,
            t_end=1.0,
            progress=False,
        )
