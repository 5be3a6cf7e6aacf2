"""Overflow: the run stops with a clear error naming step and time, records are kept."""

import warnings

import numpy as np
import pytest

import lesde

BLOWUP = dict(
    n_classes=3,
    n_per_class=20,
    signal="linear",
    alpha=60.0,
    beta=30.0,
    sigma=0.1,
    t_end=40.0,
    dt=0.01,
    progress=False,
)


def test_linear_overflow_raises_with_step_time_and_partial_result():
    with pytest.raises(lesde.NonFiniteError) as info:
        lesde.simulate(**BLOWUP)
    message = str(info.value)
    assert "step" in message and "t =" in message and "linear" in message, message
    res = info.value.result
    assert res.status[0] == "nonfinite"
    step = res.fail_step[0]
    assert 0 < step < res.config.n_steps
    recorded = res.metrics["ncc_accuracy"][0]
    assert np.isfinite(recorded[0]), "the records before the failure were lost"
    assert res.times[-1] <= step * res.config.dt + 1e-12


def test_on_nonfinite_ignore_marks_status_and_keeps_other_replicas():
    res = lesde.simulate(**{**BLOWUP, "replicas": 2}, on_nonfinite="ignore")
    assert list(res.status) == ["nonfinite", "nonfinite"]
    ok = lesde.simulate(**{**BLOWUP, "t_end": 0.1}, on_nonfinite="ignore")
    assert ok.ok and list(ok.status) == ["ok"]


def test_warn_mode_warns():
    with pytest.warns(RuntimeWarning, match="non-finite"):
        lesde.simulate(**BLOWUP, on_nonfinite="warn")


# ------------------------------------------------------------------ records that overflow
# A finite state can give a non-finite record: Sigma_W squares deviations, so features beyond
# about 1e154 overflow it. Such a record fails its replica exactly like a non-finite state
# (status, fail step, NonFiniteError / on_nonfinite), on every backend; these used to stay
# "ok" with sigma_w = inf and NC1 = NaN.
SMALL = dict(n_classes=2, n_per_class=20, t_end=1.0, seed=1)
RECORD_OVERFLOWS = {
    "sigma_1e300": dict(sigma=1e300),
    "init_scale_1e200": dict(init_scale=1e200),
    "two_point_noise": dict(noise="two_point", sigma=1e300),
    "three_point_noise": dict(noise="three_point", sigma=1e300),
    "long_linear_run": dict(signal="linear", alpha=200.0, beta=0.0, t_end=8.0),  # past 1e168
}


def assert_records_finite_or_failed(res):
    """Every record of an ok replica is finite (its NC1/NC2 too); a failed replica's records
    stop at its fail step, a record step, whose record is the non-finite one."""
    for r, status in enumerate(res.status):
        with np.errstate(all="ignore"):
            finite = (
                np.isfinite(res.class_means[r]).all(axis=(-2, -1))
                & np.isfinite(res.label_means[r]).all(axis=(-2, -1))
                & np.isfinite(res.sigma_w[r]).all(axis=(-2, -1))
            )
        nc = [res.metrics[name][r] for name in ("nc1", "equinorm", "etf_distance")]
        if status == "ok":
            assert finite.all(), f"replica {r} is ok with a non-finite record"
            for values in nc:
                assert np.isfinite(values).all(), f"replica {r} is ok with NaN/inf NC values"
            continue
        step = int(res.fail_step[r])
        idx = res.config.record_index(step)
        assert idx >= 0, f"replica {r} failed at step {step}, not a record step"
        assert finite[:idx].all() and not finite[idx], f"replica {r}: {finite}"
        assert np.isnan(res.metrics["ncc_accuracy"][r, idx + 1 :]).all(), "records went on"


@pytest.mark.parametrize("case", RECORD_OVERFLOWS)
def test_a_record_that_overflows_fails_its_replica(case, backend):
    cfg = lesde.Config(**{**SMALL, **RECORD_OVERFLOWS[case], "backend": backend})
    with pytest.raises(lesde.NonFiniteError) as info:
        lesde.simulate(cfg, progress=False)
    res, message = info.value.result, str(info.value)
    assert list(res.status) == ["nonfinite"] and not res.ok
    assert np.isfinite(res.features).all(), "the state was finite: the record failed"
    step = int(res.fail_step[0])
    assert f"at step {step} (t = {step * cfg.dt:g}): its record" in message, message
    assert_records_finite_or_failed(res)
    ignored = lesde.simulate(cfg, progress=False, on_nonfinite="ignore")
    np.testing.assert_array_equal(ignored.fail_step, res.fail_step)
    assert list(ignored.status) == ["nonfinite"]


def test_only_the_replica_whose_record_overflows_fails(backend):
    """Four replicas of the same scale: the three whose initial spread squares beyond the
    largest float fail at step 0, the fourth runs on and stays ok with finite records."""
    cfg = lesde.Config(
        n_classes=2, n_per_class=10, replicas=4, init_scale=3e153, sigma=0.0, t_end=0.02,
        seed=3, backend=backend,
    )  # fmt: skip
    res = lesde.simulate(cfg, progress=False, on_nonfinite="ignore")
    # Which replica's spread stays finite is the random stream's choice (with this seed,
    # one of the four): the others fail at step 0, it runs to the end.
    ok = np.flatnonzero(res.status == "ok")
    assert len(ok) == 1 and set(res.status) == {"ok", "nonfinite"}, res.status
    expected = [-1 if r == ok[0] else 0 for r in range(cfg.replicas)]
    assert res.fail_step.tolist() == expected and res.steps_done == cfg.n_steps
    assert_records_finite_or_failed(res)
    summary = res.summary()
    assert summary["replicas_ok"] == 1
    assert summary["nc1"] == res.metrics["nc1"][ok[0], -1], "only the ok replica, at t_end"


def test_nc1_and_nc2_of_finite_records_are_finite_at_any_scale(backend):
    """Class means of 1e160 with a finite Sigma_W (the linear signal before its records
    overflow) used to give NC1 = inf and NC2 = NaN with status ok: their squares overflowed.
    NC1/NC2 are scale-free and are now evaluated so (as are means of 1e-200)."""
    linear = lesde.Config(**{**SMALL, **RECORD_OVERFLOWS["long_linear_run"], "t_end": 5.4})
    tiny = lesde.Config(**{**SMALL, "init_scale": 1e-200, "sigma": 0.0, "t_end": 0.02})
    for cfg, scale in ((linear, 1e160), (tiny, 1e-199)):
        with warnings.catch_warnings():  # the resolution warning: both lost their contrasts
            warnings.simplefilter("ignore", RuntimeWarning)
            res = lesde.simulate(cfg.replace(backend=backend), progress=False)
        assert res.ok
        assert_records_finite_or_failed(res)
        size = np.abs(res.label_means[0]).max(axis=(-2, -1))
        assert size.max() > scale if scale > 1 else size.min() < scale, "the scale was reached"


@pytest.mark.parametrize("exponent", [-700, -450, 450, 700])
def test_nc_from_moments_is_scale_free(exponent):
    from lesde import metrics
    from lesde.metrics import neural_collapse

    rng = np.random.default_rng(0)
    means, a = rng.normal(size=(3, 2)), rng.normal(size=(2, 2))
    sigma_w = a @ a.T
    c = np.ldexp(1.0, exponent)  # exact: a power of two
    expected_nc1 = metrics.nc1_from_moments(sigma_w, means)
    expected_nc2 = metrics.nc2_from_means(means)
    if abs(exponent) < 500:  # sigma_w * c**2 is still a float64
        assert metrics.nc1_from_moments(sigma_w * c * c, means * c) == pytest.approx(expected_nc1)
        batched = neural_collapse.nc1_from_moments_batched(
            (sigma_w * c * c)[None], (means * c)[None]
        )
        assert batched[0] == pytest.approx(expected_nc1)
    for key, value in metrics.nc2_from_means(means * c).items():
        assert value == pytest.approx(expected_nc2[key], abs=1e-12), key
    for key, values in neural_collapse.nc2_from_means_batched((means * c)[None]).items():
        assert values[0] == pytest.approx(expected_nc2[key], abs=1e-12), key
