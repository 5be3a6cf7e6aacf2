"""Closed forms for a rate that takes off, fitted on the log scale, chosen out of sample.

The measured impact rates of a network sit on a plateau, then rise by two orders of
magnitude as training leaves it (docs/real_networks.md). Extrapolating the first part of
training needs a form that can rise and level off:

- ``"power_law"``: ``a0 (1 + t/tau)^(-gamma)`` (grows without bound when gamma < 0);
- ``"logistic"``: ``log r = l0 + L / (1 + exp(-(t - tc)/w))``, a rise by ``exp(L)`` centred
  at ``tc`` over a time ``w``;
- ``"rational"``: ``r = r0 (1 + (t/tau)^n) / (1 + (t/tau)^n / S)``, a rise like ``t^n``
  that saturates at ``r0 S`` (a ratio of polynomials for integer n).

:func:`fit_rate` fits one form by least squares of the log-rate; :func:`select_form`
chooses among forms by their error on data they were not fitted to.

Examples
--------
>>> import numpy as np
>>> t = np.linspace(0.0, 20.0, 41)
>>> rate = 2.0 * np.exp(3.0 / (1.0 + np.exp(-(t - 10.0) / 2.0)))
>>> fit = fit_rate(t, rate, "logistic")
>>> round(float(fit(30.0)), 3), fit.rms_log < 1e-6
(40.166, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validate import choice

__all__ = ["FORMS", "RateFit", "fit_rate", "select_form"]

#: The forms :func:`fit_rate` knows.
FORMS = ("power_law", "logistic", "rational")


def _log_rate(form: str, x: np.ndarray, t: np.ndarray) -> np.ndarray:
    if form == "power_law":
        log_a0, log_tau, gamma = x
        return log_a0 - gamma * np.log1p(t / np.exp(log_tau))
    if form == "logistic":
        l0, rise, tc, log_w = x
        return l0 + rise * 0.5 * (1.0 + np.tanh(0.5 * (t - tc) / np.exp(log_w)))
    log_r0, log_tau, n, log_s = x
    u = n * (np.log(np.maximum(t, 0.0) + 1e-300) - log_tau)  # log (t/tau)^n
    return log_r0 + np.logaddexp(0.0, u) - np.logaddexp(0.0, u - log_s)


@dataclass(frozen=True)
class RateFit:
    """A fitted rate: ``form``, its parameters ``params`` (name -> value), the fitted span
    ``[t_min, t_max]`` and the RMS residual of the log-rate there."""

    form: str
    params: dict
    t_min: float
    t_max: float
    rms_log: float

    def __call__(self, t):
        """The fitted rate at ``t`` (scalar or array)."""
        x = np.array(list(self.params.values())[: len(_NAMES[self.form])], dtype=np.float64)
        internal = _to_internal(self.form, x)
        return np.exp(_log_rate(self.form, internal, np.asarray(t, dtype=np.float64)))


_NAMES = {
    "power_law": ("a0", "tau", "gamma"),
    "logistic": ("r0", "rise", "tc", "w"),
    "rational": ("r0", "tau", "n", "saturation"),
}


def _to_internal(form, p):
    """Parameters as the fit sees them: logs of the positive ones (gamma, tc, n as they are)."""
    if form == "power_law":
        return np.array([np.log(p[0]), np.log(p[1]), p[2]])
    return np.array([np.log(p[0]), np.log(p[1]), p[2], np.log(p[3])])


def _to_params(form, x):
    """The inverse of :func:`_to_internal`, named (logistic: ``rise`` is the factor e^L)."""
    if form == "power_law":
        values = (np.exp(x[0]), np.exp(x[1]), x[2])
    else:
        values = (np.exp(x[0]), np.exp(x[1]), x[2], np.exp(x[3]))
    return dict(zip(_NAMES[form], (float(v) for v in values), strict=True))


def fit_rate(times, values, form: str = "logistic") -> RateFit:
    """Least-squares fit of ``log values`` by one of :data:`FORMS`.

    ``values`` > 0 at ``times`` >= 0; NaN pairs are dropped, at least as many points as the
    form has parameters plus one must remain. Each form is fitted from a few starting
    points within bounds that keep it finite: time scales from a thousandth to a thousand
    times the span, rises up to a factor ``e^20``.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 10.0, 21)
    >>> fit = fit_rate(t, 3.0 * (1 + (t / 4.0) ** 3) / (1 + (t / 4.0) ** 3 / 50.0), "rational")
    >>> round(fit.params["saturation"], 3), round(fit.params["n"], 3)
    (50.0, 3.0)
    """
    from scipy.optimize import least_squares

    choice("form", form, FORMS)
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"times and values must be 1-D of one length; got {t.shape}, {v.shape}")
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    n_params = len(_NAMES[form])
    if t.size < n_params + 1:
        raise ValueError(f"a {form} fit needs {n_params + 1} finite values; got {t.size}")
    if np.any(v <= 0) or np.any(t < 0):
        raise ValueError(f"a {form} fit needs rates > 0 at times >= 0")
    span = max(float(t.max()), 1e-12)
    log_v = np.log(v)
    lo_tau, hi_tau = np.log(1e-3 * span), np.log(1e3 * span)
    if form == "power_law":
        bounds = ([-np.inf, lo_tau, -20.0], [np.inf, hi_tau, 20.0])
        starts = [[log_v[0], np.log(span * s), 0.0] for s in (0.01, 0.1, 1.0, 10.0)]
    elif form == "logistic":
        bounds = ([-np.inf, 0.0, -span, lo_tau], [np.inf, 20.0, 10.0 * span, hi_tau])
        starts = [[log_v[0], r, c * span, np.log(w * span)]
                  for r in (1.0, 5.0) for c in (0.5, 1.0, 2.0) for w in (0.05, 0.3)]  # fmt: skip
    else:
        bounds = ([-np.inf, lo_tau, 0.5, 0.0], [np.inf, hi_tau, 20.0, 20.0])
        starts = [[log_v[0], np.log(c * span), n, 5.0]
                  for c in (0.5, 1.0, 2.0) for n in (2.0, 6.0)]  # fmt: skip

    def residual(x):
        return _log_rate(form, x, t) - log_v

    best = None
    for x0 in starts:
        x0 = np.clip(x0, np.array(bounds[0]) + 1e-9, np.array(bounds[1]) - 1e-9)
        sol = least_squares(residual, x0, bounds=bounds, method="trf")
        if best is None or sol.cost < best.cost:
            best = sol
    return RateFit(
        form=form,
        params=_to_params(form, best.x),
        t_min=float(t.min()),
        t_max=float(t.max()),
        rms_log=float(np.sqrt(np.mean(best.fun**2))),
    )


def select_form(series, t_split: float, forms=FORMS) -> tuple[str, dict[str, float]]:
    """The form with the smallest out-of-sample error over ``series``.

    ``series``: a list of ``(times, values)`` rate curves (e.g. the trial-averaged measured
    alpha_hat of several ensembles). Each form is fitted on ``t <= t_split`` of each curve
    and scored by the RMS error of the log-rate on ``t > t_split``; a curve it cannot be
    fitted to counts as an infinite error. Returns the best form and the mean error of each.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 20.0, 41)
    >>> curve = 2.0 * np.exp(3.0 / (1.0 + np.exp(-(t - 8.0) / 1.5)))
    >>> best, errors = select_form([(t, curve)], t_split=10.0)
    >>> best, errors["logistic"] < errors["power_law"]
    ('logistic', True)
    """
    for form in forms:
        choice("form", form, FORMS)
    errors = {}
    for form in forms:
        scores = []
        for times, values in series:
            t, v = np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64)
            seen, later = t <= t_split, (t > t_split) & np.isfinite(v) & (v > 0)
            try:
                fit = fit_rate(t[seen], v[seen], form)
            except ValueError:
                scores.append(np.inf)
                continue
            with np.errstate(all="ignore"):
                gap = np.log(fit(t[later])) - np.log(v[later])
            scores.append(float(np.sqrt(np.mean(gap**2))) if later.any() else np.nan)
        errors[form] = float(np.nanmean(scores)) if np.isfinite(scores).any() else np.inf
    best = min(errors, key=lambda f: errors[f])
    return best, errors
