"""What went wrong in a run, in words: why a replica became non-finite, and when the
records lost the resolution to show the class structure.

The run loop (:func:`lesde.sim.engine.run_engine`) calls these once a run ends; the advice
per signal comes from :data:`lesde.sim.model.SIGNAL_INFO`.

Examples
--------
>>> import lesde
>>> cfg = lesde.Config(n_classes=2, n_per_class=2, signal="projected")
>>> likely_cause(cfg)
'the step is probably too large for the impact matrix; reduce dt or alpha/beta'
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .config import Config
from .model import SIGNAL_INFO
from .result import Result

__all__ = ["likely_cause", "resolution_loss", "warn_resolution", "what_failed"]

Arrays = dict[str, "np.ndarray | None"]


def likely_cause(cfg: Config, state_finite: bool = False) -> str:
    """The likely cause of a non-finite replica of a run of ``cfg``: the signal's own growth
    (:attr:`SignalInfo.nonfinite_cause <lesde.sim.model.SignalInfo>`), else the step or the
    size of the features."""
    cause = SIGNAL_INFO[cfg.signal].nonfinite_cause
    if cause is not None:
        return cause
    if state_finite:
        return "the features are too large to record; lower init_scale or sigma"
    return "the step is probably too large for the impact matrix; reduce dt or alpha/beta"


def what_failed(cfg: Config, arrays: Arrays, r: int) -> tuple[str, bool]:
    """What of replica ``r`` became non-finite at its fail step, and whether its state is
    finite there.

    A replica fails when its state (features, class sums) or one of its records is NaN or
    infinite. A record can overflow while the state is finite: Sigma_W squares deviations,
    so features beyond about 1e154 give an infinite record (the engine's ``record_finite``:
    every recorded value counts, except the NaNs a record holds by definition, the mean of
    a label no sample holds and the loss, accuracies and NC4 of a signal without logits).
    Told apart by the record at the fail step, which every MPI rank holds whole: its class
    means are finite exactly when the state's class sums were.
    """
    idx = cfg.record_index(int(arrays["fail_step"][r]))
    means = arrays["class_means"][r, idx] if idx >= 0 else None
    with np.errstate(all="ignore"):
        if means is None or not np.all(np.isfinite(means)):
            return "its state", False
        size = float(np.max(np.abs(means), initial=0.0))
    return (
        f"its record (the state is finite, class means up to {size:.1e} in size, but "
        "squares beyond about 1e154 overflow)",
        True,
    )


def resolution_loss(
    times: np.ndarray, means: np.ndarray, sigma_w: np.ndarray, dtype: str = "float64"
) -> tuple[float, float] | None:
    """When the records' within-class structure falls below the resolution of the features.

    Features are stored in ``dtype``, so a feature near a class mean ``m_k`` carries a
    rounding error of about ``eps * |m_k|``. What the metrics measure, the contrasts
    ``M_k = m_k - mbar`` and the within-class spread ``sqrt(trace Sigma_W)``, is resolved
    only to ``eps * max_k |m_k| / structure``, with ``structure`` the smaller of
    ``max_k |M_k|`` and the spread (the nonzero ones). The linear signal's common mode grows
    like ``exp((alpha + (K-1) beta) t / K)``, its contrasts like ``exp((alpha - beta) t / K)``
    and its spread like ``sigma sqrt(t)``, so this error grows long before anything
    overflows. Returns ``(t, ratio)`` for the first record time at which ``ratio =
    structure / max_k |m_k|`` falls below ``sqrt(eps)`` in some replica (about 1.5e-8 in
    float64, 3.5e-4 in float32: half the significant digits lost), with the smallest ratio
    over replicas there; None if it never does. Absent classes and failed records are
    left out.

    Parameters
    ----------
    times : (T,) record times
    means : (R, T, K, p) class means (the engine's ``label_means``)
    sigma_w : (R, T, p, p) within-class covariances
    dtype : "float64" or "float32", the features' dtype

    Examples
    --------
    >>> means = np.array([[[[1e9 + 1.0, 0.0], [1e9 - 1.0, 0.0]]]])  # (R, T, K, p)
    >>> t, ratio = resolution_loss(np.array([2.0]), means, np.zeros((1, 1, 2, 2)))
    >>> t, f"{ratio:.1e}"
    (2.0, '1.0e-09')
    >>> means[..., 0] -= 1e9 - 1e3  # class means near 1e3: nine digits of contrast left
    >>> resolution_loss(np.array([2.0]), means, np.zeros((1, 1, 2, 2))) is None
    True
    """
    limit = math.sqrt(np.finfo(np.float64 if dtype == "float64" else np.float32).eps)
    with np.errstate(all="ignore"):
        present = np.all(np.isfinite(means), axis=-1)  # (R, T, K)
        counts = present.sum(axis=-1)
        m = np.where(present[..., None], means, 0.0)
        common = np.where(present, np.linalg.norm(m, axis=-1), 0.0).max(axis=-1, initial=0.0)
        centre = m.sum(axis=-2) / counts[..., None]
        contrast = np.linalg.norm(m - centre[..., None, :], axis=-1)
        contrast = np.where(present & (counts[..., None] >= 2), contrast, 0.0).max(
            axis=-1, initial=0.0
        )
        spread = np.sqrt(np.trace(sigma_w, axis1=-2, axis2=-1))
        spread = np.where(np.isfinite(spread), spread, 0.0)
        structure = np.where(
            (contrast > 0) & ((spread <= 0) | (contrast < spread)), contrast, spread
        )
        ratio = np.where((structure > 0) & (common > 0), structure / common, np.inf)
    lost = np.flatnonzero(np.any(ratio < limit, axis=0))
    if lost.size == 0:
        return None
    first = int(lost[0])
    return float(times[first]), float(ratio[:, first].min())


def warn_resolution(result: Result) -> None:
    """One RuntimeWarning (one line) if the run's records lost their resolution; not for a
    run with failed replicas, which on_nonfinite reports (with the same likely cause)."""
    cfg = result.config
    if np.any(result.status != "ok"):
        return
    sigma_w = result.sigma_w
    if cfg.init_scale == 0 and isinstance(cfg.sigma, float) and cfg.sigma == 0:
        # No within-class spread by construction: what the records hold is rounding noise,
        # not structure that lost its resolution (only the contrasts count).
        sigma_w = np.zeros_like(sigma_w)
    lost = resolution_loss(result.times, result.label_means, sigma_w, cfg.dtype)
    if lost is None:
        return
    t, ratio = lost
    eps = np.finfo(np.float64 if cfg.dtype == "float64" else np.float32).eps
    advice = SIGNAL_INFO[cfg.signal].resolution_advice
    if advice is None:
        advice = "shorten t_end" + (" or use dtype='float64'" if cfg.dtype == "float32" else "")
    digits = math.log10(ratio / eps)
    left = f"about {digits:.0f} significant digits" if digits >= 0.5 else "no significant digit"
    warnings.warn(
        f"from t = {t:g} the class contrasts or within-class spread are only {ratio:.1e} of "
        f"the class means, so {left} of them (and of nc1, nc2) remain in {cfg.dtype}: "
        f"{advice}",
        RuntimeWarning,
        stacklevel=4,  # the caller of lesde.simulate / lesde.resume
    )
