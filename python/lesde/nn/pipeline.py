"""The paper's pipeline in one call: trial-averaged class means to an LE-ODE replay.

docs/model.md section 5, as the paper ran it: train many networks (a trial ensemble,
:func:`lesde.nn.train_ensemble`), average their class-mean logits over the trials, read
``A(t)``, ``B(t)`` off the averages with the L (or I) estimator, differentiate them with a
Savitzky-Golay filter of the paper's window (21 samples, polynomial order 2), and replay
the projected (or linear) LE-ODE with these rates from the averaged class means at the
first record. The replay's relative max-norm error against the averages says how well an
LE-ODE with scalar rates imitates the network.

How the replay reads the rate table (the mapping that reproduces the paper's numbers): the
rates live on the record grid ``t_0 < t_1 < ...``; forward Euler steps once per record
interval, and the step from ``t_m`` to ``t_{m+1}`` uses the rate at table index ``m + 1``
(``rate_offset=1``), as the paper's integrator does. :func:`lesde.analysis.estimate.replay` alone
uses index ``m`` (``rate_offset=0``).

Two sources of class means (``data``):

- ``"records"`` (default): each trial's class means over all training samples at its
  record steps, averaged over trials;
- ``"stepped"``: the paper's own: at every SGD step, the logits of the input stepped there,
  averaged per step and class over the trials (:func:`lesde.nn.stepped_class_means`); one
  record per step, so the window of 21 spans 21 steps, as in the paper.

Examples
--------
>>> import numpy as np
>>> t = np.arange(41) * 0.05
>>> v = np.eye(3) - 1 / 3
>>> m = np.exp(0.4 * t)[:, None, None] * (v + 0.1 * np.eye(3)[[1, 2, 0]])  # grows, rotates
>>> run = paper_pipeline(m, times=t, window=11)
>>> run.class_means.shape, run.replayed.shape, bool(run.mean_error < 0.1)
((41, 3, 3), (41, 3, 3), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis.estimate import impact_integrals, impact_rates, replay, replay_error
from ..validate import choice, integer
from .training_result import stepped_class_means

__all__ = [
    "PAPER_WINDOW",
    "PaperPipeline",
    "aligned_start",
    "average_class_means",
    "paper_pipeline",
]

#: The Savitzky-Golay window of the paper's pipeline, in samples (records).
PAPER_WINDOW = 21
_SIGNAL = {"I": "linear", "L": "projected"}
_SOURCES = ("records", "stepped")


class ReplayErrors:
    """The summary errors of a replay whose ``error`` (T,) holds one error per record."""

    error: np.ndarray

    @property
    def mean_error(self) -> float:
        """Mean over records of the error (records without a finite error skipped)."""
        finite = self.error[np.isfinite(self.error)]
        return float(finite.mean()) if finite.size else float("nan")

    @property
    def final_error(self) -> float:
        """The error at the last record."""
        return float(self.error[-1])


@dataclass(frozen=True, eq=False)
class PaperPipeline(ReplayErrors):
    """What :func:`paper_pipeline` computed, on the record grid ``times`` (T,).

    ``class_means`` (T, K, K) are the trial averages the pipeline started from;
    ``A_hat``/``B_hat`` the integrals from ``times[0]``, ``alpha_hat``/``beta_hat`` their
    smoothed derivatives; ``replay`` the :class:`lesde.Result` of the LE-ODE (its times start
    at 0), ``replayed`` (T, K, K) its class means and ``error`` (T,) the relative max-norm
    error per record (:func:`lesde.analysis.estimate.replay_error`). ``settings`` lists every
    choice.
    """

    times: np.ndarray
    class_means: np.ndarray
    A_hat: np.ndarray
    B_hat: np.ndarray
    alpha_hat: np.ndarray
    beta_hat: np.ndarray
    replay: Any
    replayed: np.ndarray
    error: np.ndarray
    settings: dict

    def summary(self) -> dict[str, Any]:
        """The settings and the error, as plain numbers (e.g. for JSON)."""
        return {
            **self.settings,
            "records": int(self.times.size),
            "mean_error": self.mean_error,
            "final_error": self.final_error,
            "max_error": float(np.nanmax(self.error)) if np.any(np.isfinite(self.error)) else None,
            "median_alpha_hat": float(np.nanmedian(self.alpha_hat)),
            "median_beta_hat": float(np.nanmedian(self.beta_hat)),
        }

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"PaperPipeline(estimator={s['estimator']!r}, trials={s['trials']}, "
            f"records={self.times.size}, window={s['window']}, mean_error={self.mean_error:.4g})"
        )


def average_class_means(source, data: str = "records", trials=None):
    """Trial-averaged class means of an ensemble and their times: ``(times, means)``.

    ``data="records"``: the mean over replicas of ``source.class_means`` (a replica that
    stopped early is left out where it has no record). ``data="stepped"``: the paper's
    per-step averages of the stepped inputs' logits (:func:`lesde.nn.stepped_class_means`),
    at times ``step * lr``. ``trials`` selects replicas (indices), default all.

    Examples
    --------
    >>> from lesde.nn.training_result import TrainingResult
    >>> one = TrainingResult.tiny_example()
    >>> t, m = average_class_means(TrainingResult.stack([one, one]))
    >>> t.tolist(), m.shape
    ([0.0, 0.1], (2, 2, 2))
    """
    choice("data", data, _SOURCES)
    if data == "stepped":
        means = stepped_class_means(source, trials)
        lr = float(source.meta.get("lr", np.nan))
        if not np.isfinite(lr):
            raise ValueError("the result's meta has no lr: stepped records need it for times")
        return np.arange(means.shape[0]) * lr, means
    means = np.asarray(source.class_means, dtype=np.float64)
    if trials is not None:
        means = means[np.asarray(trials)]
    with np.errstate(invalid="ignore"):
        count = np.sum(np.isfinite(means), axis=0)
        total = np.where(np.isfinite(means), means, 0.0).sum(axis=0)
        averaged = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return np.asarray(source.times, dtype=np.float64), averaged


def aligned_start(class_means, share: float = 0.9) -> int:
    """First record from which the class means point at their labels: the first ``j``
    such that at a ``share`` of the records from ``j`` on, ``argmax_j m_k = k`` for every
    class k. Early in training the class means are noise around a common value (no class
    information yet); the I and L estimators divide by their values at the reference
    record, so it must be one where they carry the classes' structure. ValueError if no
    record qualifies.

    Examples
    --------
    >>> import numpy as np
    >>> noise = np.array([[[0.0, 1.0], [1.0, 0.0]]] * 3)  # each class points at the other
    >>> labels = np.array([[[1.0, 0.0], [0.0, 1.0]]] * 7)
    >>> aligned_start(np.concatenate([noise, labels]))
    3
    """
    m = np.asarray(class_means, dtype=np.float64)
    K = m.shape[1]
    with np.errstate(invalid="ignore"):
        ok = np.all(np.argmax(np.nan_to_num(m, nan=-np.inf), axis=2) == np.arange(K), axis=1)
    ok &= np.all(np.isfinite(m), axis=(1, 2))
    after = np.cumsum(ok[::-1])[::-1] / np.arange(ok.size, 0, -1)  # share from j on
    good = np.flatnonzero(ok & (after >= share))
    if good.size == 0:
        raise ValueError(
            f"the class means never point at their labels for {share:.0%} of the remaining "
            "records; pass start= a record index"
        )
    return int(good[0])


def paper_pipeline(
    source,
    *,
    times=None,
    estimator: str = "L",
    window: int = PAPER_WINDOW,
    polyorder: int = 2,
    data: str = "records",
    trials=None,
    start: int | str = "aligned",
    rate_offset: int = 1,
    conventions: str = "lesde",
    scheme: str = "euler_maruyama",
    steps_per_interval: int = 1,
) -> PaperPipeline:
    """Trial-averaged class means -> L/I estimator -> Savitzky-Golay rates -> LE-ODE replay.

    Parameters
    ----------
    source : TrainingResult, Result or array_like (T, K, K)
        A trial ensemble (:func:`lesde.nn.train_ensemble`; its replicas are averaged), any
        result with ``class_means`` (R, T, K, K) and ``times``, or already averaged class
        means with ``times``.
    times : array_like (T,), optional
        With an array ``source`` only: its record times, uniformly spaced.
    estimator : {"L", "I"}
        ``"L"`` (the paper's choice): projected model, replayed with the projected signal;
        ``"I"``: linear model, replayed with the linear signal.
    window, polyorder : int
        Savitzky-Golay window (odd, in records; the paper's 21) and polynomial order (2).
    data : {"records", "stepped"}
        Which class means (module docstring). ``"stepped"`` needs a result recorded with
        ``record_stepped=True``.
    trials : sequence of int, optional
        Replicas to average (default all).
    start : int or "aligned"
        First record used: the estimators' reference time and the replay's start.
        ``"aligned"`` (default): :func:`aligned_start`, the first record from which the
        class means point at their labels. The paper starts at record 0, where a network's
        class means are still noise: the constant this adds to ``A_hat``, ``B_hat`` does
        not change their derivatives, but a noise reference changes sign from trial
        average to trial average, and lesde's estimators skip ratios of the wrong sign.
    rate_offset : {1, 0}
        Table index of the rate used for the step from record m: ``m + rate_offset``. 1 is
        the paper's integrator (the default of this route); 0 is
        :func:`lesde.analysis.estimate.replay`'s.
    conventions : {"lesde", "paper"}
        Estimator conventions (:func:`lesde.analysis.estimate.impact_integrals`): lesde's
        offset-invariant L estimator that skips non-positive ratios, or the paper's
        published code, bit for bit on the raw logits it is given (its L estimator is
        written for K = 3; other K are refused).
    scheme, steps_per_interval
        The replay's integrator; the defaults (forward Euler, one step per record) are the
        paper's. Finer steps or Heun no longer reproduce its numbers.

    Returns
    -------
    PaperPipeline

    Raises
    ------
    ValueError
        A window that is even, not above ``polyorder`` or longer than the trajectory, a
        non-uniform record grid, fewer than 3 records, or no class means to replay from.
        A last record off the grid (``steps`` not a multiple of ``record_every``: training
        records its final state too) is left out, not refused.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(31) * 0.1
    >>> m0 = np.eye(3) - 1 / 3 + np.array([[0.0, 0.1, 0.0], [0.0, 0.0, 0.2], [0.1, 0.0, 0.0]])
    >>> grow = np.exp(0.3 * t)[:, None, None]
    >>> run = paper_pipeline(grow * m0, times=t, window=21)
    >>> round(float(np.nanmedian(run.alpha_hat - run.beta_hat)) / 3, 3)  # (alpha - beta)/K
    0.3
    >>> paper_pipeline(grow * m0, times=t, window=41, start=0)
    Traceback (most recent call last):
        ...
    ValueError: window = 41 is longer than the trajectory (31 records from start = 0)
    """
    choice("estimator", estimator, tuple(_SIGNAL))
    choice("data", data, _SOURCES)
    choice("conventions", conventions, ("lesde", "paper"))
    polyorder = integer("polyorder", polyorder, at_least=1)
    window = integer("window", window, at_least=1)
    if window % 2 == 0 or window <= polyorder:
        raise ValueError(f"window must be odd and above polyorder = {polyorder}, got {window}")
    rate_offset = integer("rate_offset", rate_offset, at_least=0, at_most=1)
    if not (isinstance(start, str) and start == "aligned"):
        start = integer("start", start, at_least=0)
    if hasattr(source, "class_means"):
        if times is not None:
            raise ValueError("times come from the result; pass times only with an array")
        t, means = average_class_means(source, data, trials)
        R = len(trials) if trials is not None else int(np.shape(source.class_means)[0])
    else:
        if times is None:
            raise ValueError("paper_pipeline needs times (T,) with an array of class means")
        means = np.asarray(source, dtype=np.float64)
        t = np.asarray(times, dtype=np.float64)
        R = 1
        if means.ndim != 3 or t.shape != (means.shape[0],):
            raise ValueError(
                f"class means must be (T, K, K) with times (T,); got {means.shape}, {t.shape}"
            )
    if t.size >= 3 and not np.isclose(t[-1] - t[-2], t[-2] - t[-3], rtol=1e-9, atol=0.0):
        # a last record off the grid: training that stopped between two records (steps not
        # a multiple of record_every) records its final state too; the replay's uniform
        # Euler steps cannot reach it, so it is left out
        t, means = t[:-1], means[:-1]
    rule = "index"
    if start == "aligned":
        start, rule = aligned_start(means), "aligned"
    T = t.size - start
    if T < 3:
        raise ValueError(f"the pipeline needs 3 records from start = {start}; there are {T}")
    if window > T:
        raise ValueError(
            f"window = {window} is longer than the trajectory ({T} records from start = {start})"
        )
    t, means = t[start:], means[start:]
    spacing = np.diff(t)
    if not np.allclose(spacing, spacing[0], rtol=1e-9, atol=0.0):
        raise ValueError(
            "the pipeline needs a uniform record grid (steps a multiple of record_every)"
        )
    if not np.all(np.isfinite(means[0])):
        raise ValueError(
            f"no class means to replay from at record {start} (a class with no sample there); "
            "choose another start"
        )
    A_hat, B_hat = impact_integrals(means, model=estimator, times=t, conventions=conventions)
    alpha_hat, beta_hat = impact_rates(t, A_hat, B_hat, window=window, polyorder=polyorder)
    if not (np.any(np.isfinite(alpha_hat)) and np.any(np.isfinite(beta_hat))):
        raise ValueError(
            f"the {estimator} estimator found no usable record from start = {start} (its "
            "growth ratios change sign: a reference record of noise); start where the "
            'class means point at their labels (start="aligned")'
        )
    alpha_table, beta_table = alpha_hat.copy(), beta_hat.copy()
    if rate_offset:  # the step from record m reads the rate of record m + 1
        alpha_table[:-1], beta_table[:-1] = alpha_hat[1:], beta_hat[1:]
    replayed = replay(
        t,
        alpha_table,
        beta_table,
        means[0],
        signal=_SIGNAL[estimator],
        scheme=scheme,
        steps_per_interval=steps_per_interval,
    )
    settings = {
        "estimator": estimator,
        "signal": _SIGNAL[estimator],
        "window": window,
        "polyorder": polyorder,
        "data": data,
        "trials": R,
        "start": start,
        "start_rule": rule,
        "t_start": float(t[0]),
        "rate_offset": rate_offset,
        "conventions": conventions,
        "scheme": scheme,
        "steps_per_interval": steps_per_interval,
    }
    return PaperPipeline(
        times=t,
        class_means=means,
        A_hat=A_hat,
        B_hat=B_hat,
        alpha_hat=alpha_hat,
        beta_hat=beta_hat,
        replay=replayed,
        replayed=replayed.class_means[0],
        error=replay_error(replayed, means),
        settings=settings,
    )
