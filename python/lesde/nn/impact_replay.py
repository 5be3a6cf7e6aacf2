"""A matrix LE-ODE: replay trial-averaged class means with a K x K impact matrix E(t).

The paper's pipeline (:mod:`lesde.nn.pipeline`) replays a network's class means with two
scalar rates, ``E = alpha I + beta (1 1^T - I)``. The impact matrices measured on real
networks are not of that form (docs/real_networks.md), so this module replays with a full,
time-varying E(t), fed to the simulator's general impact matrix (``Config(impact=...)``,
constant within each record interval, taken at the interval's midpoint), from the genuine
class means at a start record, one sample per class, no noise: the class-mean LE-ODE.
Three sources of E(t):

- :func:`measured_impact`: the directly measured impact matrix (``impact_every`` in
  training, :func:`lesde.nn.impact_matrix`), averaged over trials and smoothed in time; it
  belongs to the cross-entropy signal. Nothing is fitted to the class means.
- :func:`fitted_impact`: E(t) of the projected model ``dm_k/dt = (1/K) sum_k' E[k, k']
  P_k' m_k'`` read off class means (Savitzky-Golay derivatives, then per record the
  least-squares E of minimum norm; see the function for what is not identifiable).
- :func:`scalar_impact`: the scalar form of rates alpha(t), beta(t) (e.g. the L estimator's),
  so the scalar LE-ODE runs through the same integrator.

:func:`compare_replays` puts them side by side out of sample: the trials are split in two
halves (:func:`split_halves`), every E(t) is taken from the first, and each replay starts
from the second half's class means and is scored against the second half's averages with
the study's error (relative max-norm, :func:`relative_error`).

Examples
--------
>>> import numpy as np
>>> t = np.arange(21) * 0.1
>>> E = np.array([[2.0, 0.5, 0.1], [0.4, 1.5, 0.3], [0.2, 0.6, 2.5]])
>>> m0 = np.eye(3) - 1 / 3 + 0.05 * np.arange(9).reshape(3, 3)
>>> run = replay_impact(t, np.broadcast_to(E, (21, 3, 3)), m0)
>>> back = fitted_impact(t, run, window=7)  # the projected model's E, read back
>>> bool(relative_error(replay_impact(t, back, m0), run).max() < 0.01)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..analysis.estimate import impact_integrals, impact_rates
from ..sim.config import Config
from ..sim.simulate import simulate
from ..validate import choice, integer
from .pipeline import PAPER_WINDOW, ReplayErrors, average_class_means

__all__ = [
    "MatrixReplay",
    "compare_replays",
    "fitted_impact",
    "measured_impact",
    "relative_error",
    "replay_impact",
    "scalar_impact",
    "split_halves",
]

_SIGNALS = ("projected", "cross_entropy", "linear")
KINDS = ("scalar", "measured", "fitted")


# ----------------------------------------------------------------------------- checks
def _uniform_times(times, name="times") -> np.ndarray:
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size < 2 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError(f"{name} must be a finite, increasing 1-D array of at least 2 times")
    return t


def _check_pairs(impact: np.ndarray, times: np.ndarray, what: str) -> None:
    """One line naming the class pairs (and the first time) where ``impact`` has no value."""
    bad = ~np.isfinite(impact)
    if bad.any():
        pairs = sorted({(int(k), int(j)) for k, j in np.argwhere(bad.any(axis=0))})
        first = float(times[np.flatnonzero(bad.any(axis=(1, 2)))[0]])
        shown = ", ".join(f"({k}, {j})" for k, j in pairs[:6]) + (" ..." if len(pairs) > 6 else "")
        raise ValueError(
            f"{what} has no value for class pairs (row, column) {shown} from t = {first:g} on; "
            "measure them (more stepped inputs per class) or start the replay later"
        )


def relative_error(replayed, genuine) -> np.ndarray:
    """The study's replay error per record: ``max |replayed - genuine| / max |genuine|``
    over classes and logits (as :func:`lesde.analysis.estimate.replay_error`).

    Examples
    --------
    >>> import numpy as np
    >>> relative_error(np.ones((1, 2, 2)), np.full((1, 2, 2), 2.0)).tolist()
    [0.5]
    """
    r, g = np.asarray(replayed, dtype=np.float64), np.asarray(genuine, dtype=np.float64)
    if r.shape != g.shape:
        raise ValueError(f"replayed {r.shape} and genuine {g.shape} class means differ in shape")
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.abs(r - g).reshape(len(g), -1).max(axis=1)
        return diff / np.abs(g).reshape(len(g), -1).max(axis=1)


# ----------------------------------------------------------------------------- E(t)
def measured_impact(source, trials=None, window: int = 5, polyorder: int = 1):
    """The directly measured impact matrix of an ensemble: ``(times (S,), E (S, K, K))``.

    ``source.impact.matrices`` (R, S, K, K), measured during training
    (``impact_every``), averaged over the trials (``trials``: replica indices, default
    all; a trial's NaN entries, a class whose stepped inputs had all saturated, are
    skipped), then smoothed over the measurement times by a Savitzky-Golay filter of
    ``window`` measurements and order ``polyorder`` (``window=1``: no smoothing). A class
    pair missing at some measurements is filled linearly in time; a pair measured at none
    is refused in one line.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> track = SimpleNamespace(times=np.arange(4.0), matrices=np.ones((2, 4, 2, 2)))
    >>> t, E = measured_impact(SimpleNamespace(impact=track), window=3)
    >>> t.tolist(), E.shape, round(float(E[2, 0, 1]), 12)
    ([0.0, 1.0, 2.0, 3.0], (4, 2, 2), 1.0)
    """
    from scipy.signal import savgol_filter

    track = getattr(source, "impact", None)
    if track is None:
        raise ValueError("the result has no measured impact: train with impact_every=...")
    times = _uniform_times(track.times, "impact times")
    mats = np.asarray(track.matrices, dtype=np.float64)
    if trials is not None:
        mats = mats[np.asarray(trials)]
    with np.errstate(invalid="ignore"):
        count = np.sum(np.isfinite(mats), axis=0)
        total = np.where(np.isfinite(mats), mats, 0.0).sum(axis=0)
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)  # (S, K, K)
    never = ~np.isfinite(mean).any(axis=0)
    if never.any():
        _check_pairs(np.where(never, np.nan, 0.0)[None], times[:1], "the measured impact matrix")
    K = mean.shape[-1]
    flat = mean.reshape(len(times), K * K)
    for j in range(K * K):  # gaps of one pair: linear in time, held at the ends
        ok = np.isfinite(flat[:, j])
        if not ok.all():
            flat[:, j] = np.interp(times, times[ok], flat[ok, j])
    window = integer("window", window, at_least=1)
    if window > 1:
        window = min(window if window % 2 else window + 1, len(times) - (len(times) % 2 == 0))
        if window > polyorder:
            flat = savgol_filter(flat, window, polyorder, axis=0, mode="interp")
    return times, flat.reshape(len(times), K, K)


def fitted_impact(times, class_means, window: int = PAPER_WINDOW, polyorder: int = 2):
    """E(t) (T, K, K) of the projected model read off class means ``m`` (T, K, K).

    The model: ``dm_k/dt = (1/K) sum_k' E[k, k'] g_k'`` with ``g_k' = P_k' m_k' = a_k'
    v_k'`` (docs/model.md section 1, balanced classes). With ``G`` the K x K matrix of rows
    ``g_k'``, ``dm/dt = E G / K``; the derivative comes from a Savitzky-Golay filter
    (``window`` records, order ``polyorder``) and each record's E is the least-squares
    solution of minimum norm, ``E = K (dm/dt) G^+``.

    Not identifiable, and why that is harmless: the K vectors ``g_k'`` lie in the (K-1)-
    dimensional space of zero-sum logits and satisfy ``sum_k' g_k' / a_k' = 0``, so adding
    ``c_k / a_k'`` to every entry of row k (a constant per row when the a_k' are equal)
    leaves ``dm/dt`` unchanged. Each row of E is thus known up to one number; the
    minimum-norm choice fixes it, and the replay does not depend on it (to the extent the
    replay's a_k' stay proportional to the data's). The part of ``dm/dt`` along ``1``
    (a common shift of a class's logits, which softmax ignores) is not in the model and is
    left out by the least squares.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 11)
    >>> v = np.eye(3) - 1 / 3
    >>> m = (1.0 + t)[:, None, None] * v  # a_k = 1 + t, dm/dt = v = E (1 + t) v / 3
    >>> E = fitted_impact(t, m, window=5)
    >>> bool(np.allclose(E[5] @ v, 2.0 * v))  # E = 3 / (1 + t) on the zero-sum space
    True
    """
    from scipy.signal import savgol_filter

    t = _uniform_times(times)
    m = np.asarray(class_means, dtype=np.float64)
    if m.ndim != 3 or m.shape[0] != t.size or m.shape[1] != m.shape[2]:
        raise ValueError(f"class means must be (T, K, K) with times (T,); got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("class means contain NaN or inf: no derivative to fit E(t) to")
    window = integer("window", window, at_least=polyorder + 1)
    window = min(window if window % 2 else window + 1, t.size - (t.size % 2 == 0))
    if window <= polyorder:
        raise ValueError(f"fitted_impact needs more than {polyorder + 1} records, got {t.size}")
    dt = (t[-1] - t[0]) / (t.size - 1)
    dm = savgol_filter(m, window, polyorder, deriv=1, delta=dt, axis=0, mode="interp")
    K = m.shape[1]
    v = np.eye(K) - 1.0 / K
    a = np.einsum("tkj,kj->tk", m, v) / np.einsum("kj,kj->k", v, v)  # a_k = v_k.m_k/|v_k|^2
    G = a[:, :, None] * v[None]  # (T, K', K): rows g_k' = a_k' v_k'
    return K * dm @ np.linalg.pinv(G, rcond=1e-10)


def scalar_impact(alpha, beta, K: int) -> np.ndarray:
    """``alpha I + beta (1 1^T - I)`` for every entry of ``alpha``, ``beta`` (T,): (T, K, K).

    Examples
    --------
    >>> scalar_impact([2.0], [0.5], 2).tolist()
    [[[2.0, 0.5], [0.5, 2.0]]]
    """
    alpha, beta = np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    eye = np.eye(integer("K", K, at_least=2))
    return alpha[:, None, None] * eye + beta[:, None, None] * (1.0 - eye)


# ----------------------------------------------------------------------------- the replay
def replay_impact(
    times,
    impact,
    class_means0,
    *,
    impact_times=None,
    signal: str = "projected",
    steps_per_interval: int = 4,
    scheme: str = "heun",
) -> np.ndarray:
    """Class means (T, K, K) of the class-mean LE-ODE driven by E(t), on the grid ``times``.

    ``impact`` (S, K, K) is tabulated at ``impact_times`` (default ``times``); between two
    records the simulator (:func:`lesde.simulate`, one sample per class, sigma = 0) runs
    with the constant ``Config(impact=E)`` at the interval's midpoint (linear in time
    between tabulated matrices, held past the ends), ``steps_per_interval`` steps of
    ``scheme``, from ``class_means0`` (K, K) at ``times[0]``. An E with a missing entry
    (NaN) in the span is refused, naming the class pairs.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 3)
    >>> E = np.array([[[2.0, 0.5], [0.5, 2.0]]])
    >>> replay_impact(t, E, np.eye(2), impact_times=[0.0], signal="linear").shape
    (3, 2, 2)
    """
    choice("signal", signal, _SIGNALS)
    t = _uniform_times(times)
    steps = integer("steps_per_interval", steps_per_interval, at_least=1)
    m0 = np.asarray(class_means0, dtype=np.float64)
    K = m0.shape[0]
    if m0.shape != (K, K) or K < 2:
        raise ValueError(f"class_means0 must be (K, K) logits, got shape {m0.shape}")
    if not np.all(np.isfinite(m0)):
        raise ValueError("class_means0 has NaN or inf: no state to replay from")
    E = np.asarray(impact, dtype=np.float64)
    ti = t if impact_times is None else np.asarray(impact_times, dtype=np.float64)
    if E.shape != (ti.size, K, K):
        raise ValueError(f"impact must be ({ti.size}, {K}, {K}) for its times, got {E.shape}")
    if ti.size > 1 and np.any(np.diff(ti) <= 0):
        raise ValueError("impact_times must be increasing")
    mid = 0.5 * (t[:-1] + t[1:])
    lo, hi = np.searchsorted(ti, t[0], "right") - 1, np.searchsorted(ti, t[-1], "left") + 1
    used = slice(max(lo, 0), min(hi, ti.size))
    _check_pairs(E[used], ti[used], "the impact matrix")
    flat = E.reshape(ti.size, K * K)
    table = np.stack([np.interp(mid, ti, flat[:, j]) for j in range(K * K)], axis=1)
    out = np.empty((t.size, K, K))
    out[0] = m0
    for i in range(t.size - 1):
        cfg = Config(
            n_classes=K,
            n_per_class=1,
            signal=signal,
            impact=table[i].reshape(K, K),
            sigma=0.0,
            init_scale=0.0,
            init_means=out[i],
            dt=(t[i + 1] - t[i]) / steps,
            steps=steps,
            record_every=steps,
            scheme=scheme,
            threads=1,
        )
        out[i + 1] = simulate(cfg, progress=False).class_means[0, -1]
    return out


# ----------------------------------------------------------------------------- halves
def split_halves(trials: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of ``range(trials)`` (sizes differ by at most one), seeded.

    Examples
    --------
    >>> a, b = split_halves(5, seed=1)
    >>> sorted(np.concatenate([a, b]).tolist()), len(a), len(b)
    ([0, 1, 2, 3, 4], 2, 3)
    """
    trials = integer("trials", trials)
    if trials < 2:
        raise ValueError(
            f"a half-split needs at least 2 trials (one per half); the ensemble has {trials}"
        )
    order = np.random.default_rng(seed).permutation(trials)
    half = trials // 2
    return np.sort(order[:half]), np.sort(order[half:])


@dataclass(frozen=True, eq=False)
class MatrixReplay(ReplayErrors):
    """One replay of :func:`compare_replays`, on the record grid ``times`` (T,).

    ``genuine`` (T, K, K): the class means it is scored against; ``replayed`` its own;
    ``impact`` (T, K, K): E(t) at the records; ``error`` (T,): :func:`relative_error`;
    ``kind``: "scalar", "measured" or "fitted"; ``signal``: the LE-ODE's signal.
    """

    kind: str
    signal: str
    times: np.ndarray
    genuine: np.ndarray
    replayed: np.ndarray
    impact: np.ndarray
    error: np.ndarray

    def summary(self) -> dict[str, Any]:
        """Kind, signal, start time and errors, as plain numbers."""
        return {
            "kind": self.kind,
            "signal": self.signal,
            "t_start": float(self.times[0]),
            "mean_error": self.mean_error,
            "final_error": self.final_error,
        }


def compare_replays(
    source,
    *,
    start: int,
    halves=None,
    kinds=KINDS,
    window: int = PAPER_WINDOW,
    impact_window: int = 5,
    steps_per_interval: int = 4,
) -> dict[str, MatrixReplay]:
    """Scalar, measured-matrix and fitted-matrix LE-ODE, out of sample, side by side.

    ``source``: a trial ensemble (:class:`lesde.nn.TrainingResult`) with class means and,
    for ``"measured"``, impact measurements. ``halves``: two arrays of replica indices
    (default :func:`split_halves` of all trials); E(t) comes from the first half, the
    replay starts at record ``start`` from the second half's trial-averaged class means
    and is scored against them:

    - ``"scalar"``: the L estimator's rates (lesde conventions, Savitzky-Golay window
      ``window``) of the first half as ``alpha I + beta (1 1^T - I)``, projected signal;
    - ``"measured"``: :func:`measured_impact` of the first half (smoothed over
      ``impact_window`` measurements), cross-entropy signal (the signal it was measured
      with); nothing fitted to class means;
    - ``"fitted"``: :func:`fitted_impact` of the first half's class means, projected signal.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> t = np.arange(31) * 0.1
    >>> m0 = np.diag([1.0, 1.2, 0.8]) - np.array([1.0, 1.2, 0.8])[:, None] / 3
    >>> one = replay_impact(t, scalar_impact([2.0], [0.5], 3), m0, impact_times=[0.0])
    >>> ens = SimpleNamespace(times=t, class_means=np.stack([one, one]), impact=None)
    >>> out = compare_replays(ens, start=0, kinds=("scalar", "fitted"), window=11)
    >>> {k: bool(r.mean_error < 0.05) for k, r in out.items()}
    {'scalar': True, 'fitted': True}
    """
    for kind in kinds:
        choice("kind", kind, KINDS)
    R = int(np.shape(source.class_means)[0])
    first, second = split_halves(R) if halves is None else (np.asarray(h) for h in halves)
    if len(first) < 1 or len(second) < 1:
        raise ValueError(
            f"a half-split needs at least one trial in each half; got {len(first)} and "
            f"{len(second)}"
        )
    start = integer("start", start, at_least=0)
    times, fit_means = average_class_means(source, trials=first)
    _, test_means = average_class_means(source, trials=second)
    if start > times.size - 3:
        raise ValueError(f"start = {start} leaves fewer than 3 of {times.size} records")
    t, fit_means, test_means = times[start:], fit_means[start:], test_means[start:]
    K = fit_means.shape[1]
    out = {}
    for kind in kinds:
        if kind == "scalar":
            A, B = impact_integrals(fit_means, model="L", times=t)
            w = min(window, t.size - (t.size % 2 == 0))
            alpha, beta = impact_rates(t, A, B, window=w)
            ok_a, ok_b = np.isfinite(alpha), np.isfinite(beta)
            if not (ok_a.any() and ok_b.any()):
                raise ValueError(
                    f"the L estimator found no usable record from start = {start}; start "
                    "where the class means point at their labels"
                )
            alpha = np.interp(t, t[ok_a], alpha[ok_a])
            beta = np.interp(t, t[ok_b], beta[ok_b])
            impact, signal, it = scalar_impact(alpha, beta, K), "projected", t
        elif kind == "fitted":
            impact, signal, it = fitted_impact(t, fit_means, window=window), "projected", t
        else:
            it, impact = measured_impact(source, trials=first, window=impact_window)
            signal = "cross_entropy"
        replayed = replay_impact(
            t,
            impact,
            test_means[0],
            impact_times=it,
            signal=signal,
            steps_per_interval=steps_per_interval,
        )
        flat = impact.reshape(len(it), K * K)
        at = np.stack([np.interp(t, it, flat[:, j]) for j in range(K * K)], 1).reshape(-1, K, K)
        out[kind] = MatrixReplay(
            kind=kind,
            signal=signal,
            times=t,
            genuine=test_means,
            replayed=replayed,
            impact=at,
            error=relative_error(replayed, test_means),
        )
    return out
