"""Overflow: the run stops with a clear error naming step and time, records are kept."""

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
