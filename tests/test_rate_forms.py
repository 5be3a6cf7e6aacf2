"""Rate forms that take off (lesde.analysis.rate_forms) and their use in lesde.analysis.predict.

- each form recovers its own parameters from exact data, and extrapolates it
- the out-of-sample choice picks the form that generated a take-off, not the one that fits
  the observed part best
- predict_training takes the form, refuses unknown ones, and reports it
- bad input: too few points for a form, non-positive rates, an unknown form
"""

from types import SimpleNamespace

import numpy as np
import pytest

from lesde.analysis.predict import predict_training
from lesde.analysis.rate_forms import FORMS, fit_rate, select_form

T = np.linspace(0.0, 20.0, 41)
TRUTH = {
    "power_law": dict(a0=2.0, tau=3.0, gamma=-1.5),
    "logistic": dict(r0=3.0, rise=np.exp(4.0), tc=12.0, w=1.5),
    "rational": dict(r0=3.0, tau=10.0, n=4.0, saturation=200.0),
}


def curve(form, t=T):
    p = TRUTH[form]
    if form == "power_law":
        return p["a0"] * (1 + t / p["tau"]) ** (-p["gamma"])
    if form == "logistic":
        return p["r0"] * p["rise"] ** (1 / (1 + np.exp(-(t - p["tc"]) / p["w"])))
    u = (t / p["tau"]) ** p["n"]
    return p["r0"] * (1 + u) / (1 + u / p["saturation"])


@pytest.mark.parametrize("form", FORMS)
def test_each_form_recovers_itself(form):
    fit = fit_rate(T, curve(form), form)
    for name, value in TRUTH[form].items():
        assert fit.params[name] == pytest.approx(value, rel=1e-4), (name, fit.params)
    later = np.linspace(20.0, 40.0, 5)
    np.testing.assert_allclose(fit(later), curve(form, later), rtol=1e-4)
    assert fit.rms_log < 1e-6 and fit.form == form


def test_out_of_sample_choice_finds_the_take_off():
    """Observed up to t = 11, just into the rise of a logistic: the power law can follow
    the observed part, but only the logistic (or the rational form) predicts the rest."""
    series = [(T, curve("logistic") * np.exp(0.01 * np.sin(3 * T + k))) for k in range(3)]
    best, errors = select_form(series, t_split=11.0)
    assert best in ("logistic", "rational"), errors
    assert errors["power_law"] > 2 * errors[best], errors
    best, _ = select_form([(T, curve("power_law"))], t_split=11.0, forms=("power_law",))
    assert best == "power_law"


@pytest.mark.parametrize(
    "values, form, words",
    [
        (np.ones(4), "logistic", "needs 5 finite values; got 4"),
        (np.r_[1.0, -1.0, 2.0, 3.0, 4.0], "rational", "rates > 0"),
        (np.ones(5), "spline", "form must be one of"),
    ],
)
def test_bad_input_is_one_line(values, form, words):
    with pytest.raises(ValueError, match=words) as err:
        fit_rate(np.arange(len(values), dtype=float), values, form)
    assert "\n" not in str(err.value)


def fake_ensemble():
    """Three 'trials' whose measured rates take off (logistic alpha, beta flat)."""
    t = np.linspace(0.0, 20.0, 41)
    R, T_ = 3, 41
    imp_t = t[::2]
    alpha = np.tile(curve("logistic", imp_t) / 3.0, (R, 1))
    impact = SimpleNamespace(times=imp_t, alpha_hat=alpha, beta_hat=np.full((R, imp_t.size), 1.0))
    means = np.zeros((R, T_, 3, 3))
    means[:, 0] = 0.01 * np.arange(9).reshape(3, 3)
    return SimpleNamespace(
        impact=impact, times=t, meta={"lr": 0.05}, classes=np.repeat(np.arange(3), 4),
        class_means=means, metrics={"loss": np.tile(np.exp(-t / 8), (R, 1))},
    )  # fmt: skip


def test_predict_takes_the_form():
    ens = fake_ensemble()
    p = predict_training(ens, 0.6, n_boot=0, model_trials=1, form="logistic")
    assert p.settings["form"] == "logistic" and p.alpha_fit.form == "logistic"
    assert p.summary()["alpha_fit"]["form"] == "logistic"
    assert p.alpha_fit(40.0) == pytest.approx(curve("logistic", 40.0) / 3.0, rel=1e-2)
    with pytest.raises(ValueError, match="form must be one of"):
        predict_training(ens, 0.6, n_boot=0, model_trials=1, form="cubic")
    with pytest.raises(ValueError, match="a rational fit needs 5"):
        predict_training(ens, 0.15, n_boot=0, model_trials=1, form="rational")


@pytest.mark.parametrize("form", ["power_law", "logistic"])
def test_observing_the_whole_run_extrapolates_nothing(form):
    """fit_fraction = 1 (allowed) built a rate table whose extrapolated part repeated the
    last time 199 times, which Tabulated refuses as not increasing."""
    p = predict_training(fake_ensemble(), 1.0, n_boot=0, model_trials=1, form=form)
    assert p.t_fit == p.t_end == 20.0 and 0 < p.predicted["loss_halves"] < 20
