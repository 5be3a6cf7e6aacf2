"""Predict a network's training from its beginning: fitted impact rates drive the LE-SDE.

Beyond the paper: measure the impact matrix of a trial ensemble during the first part of
training only (``fit_fraction`` of the steps), fit a power law (or a form that levels
off, :mod:`lesde.analysis.rate_forms`) to the trial-averaged ``alpha_hat(t)`` and ``beta_hat(t)``,
extrapolate them, and run the SGD imitation of the
LE-SDE (docs/model.md section 2a, cross-entropy signal, one sample per step, the network's
learning rate and class sizes) from the networks' initial logits. The moments at which
the simulated training passes a milestone are the prediction; the trials' own milestones
(with their spread) are the truth. The interval of a prediction is a bootstrap over the
trials: resample them, refit, rerun.

Milestones (:data:`EVENTS`):

- ``"loss_halves"``: the training loss first falls to half its initial value;
- ``"means_separated"``: every class-mean logit vector has its largest entry at its own
  class, so the argmax rule (the network's linear decision) separates the class means.
  Three class means are always separable by *some* linear map; this reading asks that the
  network's own one does.

Examples
--------
>>> import numpy as np
>>> t = np.linspace(0.0, 10.0, 21)
>>> fit = fit_power_law(t, 2.0 * (1 + t / 4.0) ** 0.5)
>>> round(fit.a0, 6), round(fit.tau, 6), round(fit.gamma, 6)
(2.0, 4.0, -0.5)
>>> event_time(t, 1.0 - t / 10.0, 0.5)  # first time the values fall to 0.5
5.0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..sim.schedules import PowerLaw, Tabulated
from ..validate import choice, integer, probability, real
from .rate_forms import FORMS, RateFit, fit_rate

__all__ = [
    "EVENTS",
    "PowerLawFit",
    "TrainingPrediction",
    "event_time",
    "fit_power_law",
    "milestones",
    "predict_training",
]


# ----------------------------------------------------------------------------- power laws
@dataclass(frozen=True)
class PowerLawFit:
    """``a0 (1 + t/tau)^(-gamma)`` fitted to a rate on ``[t_min, t_max]`` (a growing rate
    has ``gamma < 0``); ``rms_log`` is the root-mean-square residual of the log-rate."""

    a0: float
    tau: float
    gamma: float
    t_min: float
    t_max: float
    rms_log: float

    def __call__(self, t):
        """The fitted rate at ``t``."""
        return self.schedule()(t)

    def schedule(self) -> PowerLaw:
        """The fit as a :class:`lesde.PowerLaw` schedule."""
        return PowerLaw(a0=self.a0, tau=self.tau, gamma=self.gamma)


def fit_power_law(times, values) -> PowerLawFit:
    """Least-squares fit of ``log values`` by ``log(a0 (1 + t/tau)^(-gamma))``.

    ``times`` >= 0 and ``values`` > 0 (NaN pairs are dropped; at least 3 must remain).
    ``tau`` is searched over ``[1e-3, 1e3] * max(times)``, so a rate that is constant on
    the window gets ``gamma`` ~ 0 rather than a runaway ``tau``.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 5.0, 11)
    >>> fit = fit_power_law(t, 3.0 + 0.0 * t)
    >>> round(fit(20.0), 6), fit.rms_log < 1e-8
    (3.0, True)
    """
    from scipy.optimize import least_squares

    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"times and values must be 1-D of one length; got {t.shape}, {v.shape}")
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    if t.size < 3:
        raise ValueError(f"a power-law fit needs 3 finite values; got {t.size}")
    if np.any(v <= 0) or np.any(t < 0):
        raise ValueError("a power-law fit needs rates > 0 at times >= 0")
    span = max(float(t.max()), 1e-12)
    log_v = np.log(v)

    def residual(x):
        log_a0, log_tau, gamma = x
        return log_a0 - gamma * np.log1p(t / np.exp(log_tau)) - log_v

    bounds = ([-np.inf, np.log(1e-3 * span), -20.0], [np.inf, np.log(1e3 * span), 20.0])
    best = None
    for log_tau in np.log(span * np.array([0.01, 0.1, 1.0, 10.0])):  # a few starts
        sol = least_squares(residual, [log_v[0], log_tau, 0.0], bounds=bounds, method="trf")
        if best is None or sol.cost < best.cost:
            best = sol
    log_a0, log_tau, gamma = best.x
    return PowerLawFit(
        a0=float(np.exp(log_a0)),
        tau=float(np.exp(log_tau)),
        gamma=float(gamma),
        t_min=float(t.min()),
        t_max=float(t.max()),
        rms_log=float(np.sqrt(np.mean(best.fun**2))),
    )


# ----------------------------------------------------------------------------- milestones
def event_time(times, values, threshold: float, below: bool = True) -> float:
    """First time ``values`` reaches ``threshold`` (from above if ``below``), linearly
    interpolated between records; NaN if it never does (or already does at the start).

    Examples
    --------
    >>> event_time([0.0, 1.0, 2.0], [1.0, 0.8, 0.2], 0.5)
    1.5
    >>> event_time([0.0, 1.0], [1.0, 0.9], 0.5)
    nan
    """
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    hit = (v <= threshold) if below else (v >= threshold)
    hit &= np.isfinite(v)
    if not hit.any():
        return float("nan")
    j = int(np.argmax(hit))
    if j == 0:
        return float("nan")
    v0, v1 = v[j - 1], v[j]
    if not np.isfinite(v0) or v1 == v0:
        return float(t[j])
    return float(t[j - 1] + (threshold - v0) / (v1 - v0) * (t[j] - t[j - 1]))


def _loss_halves(times, loss, class_means) -> float:
    return event_time(times, loss, 0.5 * loss[0]) if np.isfinite(loss[0]) else float("nan")


def _means_separated(times, loss, class_means) -> float:
    K = class_means.shape[1]
    ok = np.all(np.argmax(class_means, axis=2) == np.arange(K), axis=1).astype(float)
    ok[~np.all(np.isfinite(class_means), axis=(1, 2))] = np.nan
    return event_time(times, ok, 1.0, below=False)


#: Milestone name -> ``f(times, loss (T,), class_means (T, K, K)) -> time``.
EVENTS: dict[str, Callable] = {
    "loss_halves": _loss_halves,
    "means_separated": _means_separated,
}


def milestones(result) -> dict[str, np.ndarray]:
    """Milestone times (:data:`EVENTS`) of every replica of a result, name -> (R,).

    ``result`` is a :class:`lesde.Result` or a :class:`lesde.nn.TrainingResult`.

    Examples
    --------
    >>> import lesde
    >>> res = lesde.simulate(n_classes=3, n_per_class=5, signal="cross_entropy", alpha=2.0,
    ...                      beta=0.2, t_end=20.0, init_scale=0.0, sigma=0.0, progress=False)
    >>> m = milestones(res)
    >>> sorted(m), bool(0 < m["loss_halves"][0] < 20)
    (['loss_halves', 'means_separated'], True)
    """
    loss = np.asarray(result.metrics["loss"], dtype=np.float64)
    means = np.asarray(result.class_means, dtype=np.float64)
    times = np.asarray(result.times, dtype=np.float64)
    return {
        name: np.array([f(times, loss[r], means[r]) for r in range(loss.shape[0])])
        for name, f in EVENTS.items()
    }


# ----------------------------------------------------------------------------- prediction
@dataclass(frozen=True, eq=False)
class TrainingPrediction:
    """What :func:`predict_training` found.

    ``t_fit`` is the end of the observed part of training; ``alpha_fit``/``beta_fit`` the
    forms fitted to the trial-averaged measured rates there (``settings["form"]``). The
    LE-SDE is run once from the initial state of each of ``model_trials`` trials:
    ``runs[name]`` holds their milestone times (inf where a run never got there),
    ``predicted[name]`` their median and ``interval[name]`` a bootstrap interval of it over
    the trials at level ``confidence`` (the rates refitted on resampled trials, each
    resample run from a few resampled initial states). ``observed[name]`` are the trials'
    own milestone times (R,; NaN where
    a trial never got there). ``simulation`` is the first run, a :class:`lesde.Result`.
    """

    fit_fraction: float
    t_fit: float
    t_end: float
    alpha_fit: PowerLawFit | RateFit
    beta_fit: PowerLawFit | RateFit
    predicted: dict[str, float]
    interval: dict[str, tuple[float, float]]
    runs: dict[str, np.ndarray]
    observed: dict[str, np.ndarray]
    simulation: Any
    confidence: float
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain numbers (inf and NaN as None): per milestone the prediction, its interval,
        the 10-90% range of the runs, the trials' median and 10-90% range, and the
        relative error of the prediction against the trials' median."""

        def num(x):
            x = float(x)
            return x if np.isfinite(x) else None

        out: dict[str, Any] = {
            "fit_fraction": self.fit_fraction,
            "t_fit": self.t_fit,
            "t_end": self.t_end,
            "alpha_fit": vars(self.alpha_fit),
            "beta_fit": vars(self.beta_fit),
            **self.settings,
        }
        for name in EVENTS:
            seen = self.observed[name]
            finite = seen[np.isfinite(seen)]
            median = float(np.median(finite)) if finite.size else float("nan")
            trials = _quantiles(finite, [0.1, 0.9]) if finite.size else (np.nan, np.nan)
            out[name] = {
                "predicted": num(self.predicted[name]),
                "interval": [num(x) for x in self.interval[name]],
                "runs_10_90": [num(x) for x in _quantiles(self.runs[name], [0.1, 0.9])],
                "trials_median": num(median),
                "trials_10_90": [num(x) for x in trials],
                "trials_reached": int(finite.size),
                "relative_error": num((self.predicted[name] - median) / median),
                "already_passed": bool(np.isfinite(median) and median <= self.t_fit),
            }
        return out


def _trial_rates(impact) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if impact is None:
        raise ValueError("the ensemble has no impact measurements: train it with impact_every=...")
    return np.asarray(impact.times), np.asarray(impact.alpha_hat), np.asarray(impact.beta_hat)


def _rate_schedule(times, mean_rate, fit, t_fit: float, t_end: float):
    """Measured (trial-averaged) up to ``t_fit``, the fitted form after it, on one grid."""
    seen = times <= t_fit
    # nothing to extrapolate when the whole run is observed (fit_fraction = 1)
    future = np.linspace(t_fit, t_end, 200)[1:] if t_end > t_fit else np.empty(0)
    grid = np.r_[times[seen], future]
    values = np.r_[mean_rate[seen], fit(future)]
    return Tabulated(grid, values)


def _quantiles(values, q) -> np.ndarray:
    """Quantiles without interpolation, so never-reached milestones (inf) stay inf."""
    return np.quantile(np.asarray(values, dtype=np.float64), q, method="inverted_cdf")


def _median(values) -> float:
    """Median with never-reached milestones (inf) counted as late."""
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isnan(v), np.inf, v)
    return float(np.median(v)) if v.size else float("nan")


def predict_training(
    ensemble,
    fit_fraction: float = 0.3,
    *,
    n_boot: int = 20,
    confidence: float = 0.9,
    model_trials: int = 32,
    init_scale: float = 0.0,
    seed: int = 0,
    form: str = "power_law",
) -> TrainingPrediction:
    """Predict the milestones of a trial ensemble's training from its first part.

    Parameters
    ----------
    ensemble : TrainingResult
        R trials with impact measurements (:func:`lesde.nn.train_ensemble` with
        ``impact_every``), lr in ``meta``, class sizes from ``classes``.
    fit_fraction : float in (0, 1]
        The part of training observed: measurements at ``t <= fit_fraction * t_end``. The
        rates are the measured trial averages up to there and the fitted power laws after.
    n_boot : int
        Bootstrap resamples of the trials for the interval (0: none).
    confidence : float
        Level of the interval.
    model_trials : int
        How many trials' initial class means the LE-SDE starts from (one run each). Each
        network starts with its own, random, class-mean logits; their orientation decides
        when the argmax rule first separates them, so the runs start from them too.
    init_scale : float
        Spread (standard deviation per logit) of the initial logits around their class
        means, e.g. measured on freshly initialised networks; the class means themselves
        are each trial's first record.
    seed : int
        Seeds the bootstrap and the SGD imitation.
    form : {"power_law", "logistic", "rational"}
        The form the observed rates are extrapolated with (:mod:`lesde.analysis.rate_forms`; choose
        one out of sample with :func:`lesde.analysis.rate_forms.select_form`). The power law cannot
        level off; the other two can take off and saturate.

    Returns
    -------
    TrainingPrediction

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> t = np.linspace(0.0, 20.0, 41)
    >>> R, T = 3, 41  # three "trials" whose rates and loss are made up, to show the call
    >>> impact = SimpleNamespace(times=t[::4], alpha_hat=np.full((R, 11), 3.0),
    ...                          beta_hat=np.full((R, 11), 0.5))
    >>> means = np.zeros((R, T, 3, 3)); means[:, 0] = 0.01 * np.arange(9).reshape(3, 3)
    >>> fake = SimpleNamespace(
    ...     impact=impact, times=t, meta={"lr": 0.05}, classes=np.repeat(np.arange(3), 4),
    ...     class_means=means, metrics={"loss": np.tile(np.exp(-t / 8), (R, 1))})
    >>> p = predict_training(fake, 0.5, n_boot=0, model_trials=2)
    >>> round(p.alpha_fit(30.0), 6), bool(0 < p.predicted["loss_halves"] < 20)
    (3.0, True)
    """
    from ..sim.simulate import simulate

    fit_fraction = real("fit_fraction", fit_fraction, above=0.0, at_most=1.0)
    n_boot = integer("n_boot", n_boot, at_least=0)
    model_trials = integer("model_trials", model_trials, at_least=1)
    confidence = probability("confidence", confidence)
    choice("form", form, FORMS)
    times, alpha, beta = _trial_rates(ensemble.impact)
    lr = real("meta['lr']", ensemble.meta.get("lr"), above=0.0)
    t_end = float(ensemble.times[-1])
    t_fit = fit_fraction * t_end
    seen = times <= t_fit * (1 + 1e-12)
    needed = 3 if form == "power_law" else 5
    if seen.sum() < needed:
        raise ValueError(
            f"only {int(seen.sum())} impact measurements at t <= {t_fit:g}: a {form} fit "
            f"needs {needed} (measure more often or observe a larger fraction)"
        )
    initial = np.asarray(ensemble.class_means, dtype=np.float64)[:, 0]  # (R, K, K)
    spread = real("init_scale", init_scale, at_least=0.0)
    K = initial.shape[1]
    sizes = [int(n) for n in np.bincount(np.asarray(ensemble.classes), minlength=K)]
    steps = int(round(t_end / lr))
    R = alpha.shape[0]
    rng = np.random.default_rng(seed)

    def fits(rows):
        a, b = np.nanmean(alpha[rows], axis=0), np.nanmean(beta[rows], axis=0)
        if form == "power_law":
            fa, fb = fit_power_law(times[seen], a[seen]), fit_power_law(times[seen], b[seen])
        else:
            fa, fb = fit_rate(times[seen], a[seen], form), fit_rate(times[seen], b[seen], form)
        return (
            fa,
            fb,
            _rate_schedule(times, a, fa, t_fit, t_end),
            _rate_schedule(times, b, fb, t_fit, t_end),
        )

    def run(alpha_schedule, beta_schedule, trial, run_seed):
        sim = simulate(
            n_classes=K,
            class_sizes=sizes,
            signal="cross_entropy",
            process="sgd",
            batch_size=1,
            alpha=alpha_schedule,
            beta=beta_schedule,
            sigma=0.0,
            init_means=initial[trial],
            init_scale=spread,
            dt=lr,
            steps=steps,
            record_every=max(1, steps // 400),
            seed=run_seed,
            progress=False,
        )
        return sim, {name: float(v[0]) for name, v in milestones(sim).items()}

    fa, fb, sa, sb = fits(np.arange(R))
    starts = np.arange(min(model_trials, R))
    runs = {name: np.empty(starts.size) for name in EVENTS}
    first = None
    for i, trial in enumerate(starts):
        sim, found = run(sa, sb, trial, seed + i)
        if first is None:
            first = sim
        for name, value in found.items():
            runs[name][i] = np.inf if np.isnan(value) else value
    predicted = {name: _median(values) for name, values in runs.items()}
    boot: dict[str, list[float]] = {name: [] for name in EVENTS}
    for b in range(n_boot):
        _, _, ba, bb = fits(rng.integers(0, R, size=R))
        found = [run(ba, bb, trial, seed + 10_000 + 4 * b + j)[1]
                 for j, trial in enumerate(rng.integers(0, R, size=4))]  # fmt: skip
        for name in EVENTS:
            boot[name].append(_median([f[name] for f in found]))
    q = (1.0 - confidence) / 2.0
    interval = {
        name: tuple(float(x) for x in _quantiles(values, [q, 1.0 - q]))
        if values
        else (np.nan, np.nan)
        for name, values in boot.items()
    }
    return TrainingPrediction(
        fit_fraction=fit_fraction,
        t_fit=t_fit,
        t_end=t_end,
        alpha_fit=fa,
        beta_fit=fb,
        predicted=predicted,
        interval=interval,
        runs=runs,
        observed=milestones(ensemble),
        simulation=first,
        confidence=confidence,
        settings={
            "trials": R,
            "model_trials": int(starts.size),
            "n_boot": n_boot,
            "init_scale": spread,
            "form": form,
        },
    )
