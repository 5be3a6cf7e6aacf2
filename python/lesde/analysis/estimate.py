"""Estimate the impact integrals A(t), B(t) and rates alpha(t), beta(t) from class means.

This is the paper's procedure (docs/model.md section 5): record the class-mean logits
``m_k(t)`` of a real network during training, read off ``A(t) = int_0^t alpha`` and
``B(t) = int_0^t beta`` by inverting a closed-form solution of the LE-ODE, then
differentiate (Savitzky-Golay) to get ``alpha_hat(t)``, ``beta_hat(t)``. Feeding these back
into the simulator and comparing with the genuine trajectories is the validation.

Two estimators, for balanced classes (``pi_k = 1/K``):

``"I"`` (linear model, ``g(x, y) = x``)
    With ``mbar = (1/K) sum_k m_k`` and ``d_k = m_k - mbar``, docs/model.md section 2 gives,
    coordinate-wise, ``mbar(t) = exp((A + (K-1) B)/K) mbar(0)`` and
    ``d_k(t) = exp((A - B)/K) d_k(0)``. Every coordinate ``j`` of every class ``k`` with
    positive, finite ratios ``mbar_j(t)/mbar_j(0)`` and ``d_kj(t)/d_kj(0)`` yields one
    estimate of ``A`` and ``B``; they are averaged.
``"L"`` (projected model, ``g(x, y) = P_y x``)
    Growth along the label directions ``v_k = e_k - 1/K``: the coordinates
    ``a_k = v_k . m_k / |v_k|^2`` obey ``da_k/dt = (1/K)[alpha a_k - beta/(K-1)
    sum_{k' != k} a_k']``, whose common mode grows at rate ``(alpha - beta)/K`` and whose
    zero-sum modes grow at rate ``(alpha + beta/(K-1))/K``.

Entries that give no information (a ratio that is zero, negative, infinite or NaN: a sign
change or a zero at ``t = 0``) are skipped; a time with no usable entry gets NaN. Nothing
raises or warns on such data.

Examples
--------
>>> import numpy as np
>>> from lesde.analysis.estimate import impact_integrals, impact_rates
>>> K, t = 3, np.linspace(0.0, 4.0, 81)
>>> A, B = 1.5 * t, 0.5 * t  # alpha = 1.5, beta = 0.5
>>> m0 = np.array([[2.0, 0.5, 1.0], [0.3, 1.5, 0.2], [0.1, 0.4, 1.8]])
>>> mbar0 = m0.mean(axis=0)
>>> m = (np.exp((A + (K - 1) * B) / K)[:, None, None] * mbar0
...      + np.exp((A - B) / K)[:, None, None] * (m0 - mbar0))
>>> A_hat, B_hat = impact_integrals(m)
>>> bool(np.allclose(A_hat, A) and np.allclose(B_hat, B))
True
>>> alpha, beta = impact_rates(t, A_hat, B_hat)
>>> bool(np.allclose(alpha, 1.5) and np.allclose(beta, 0.5))
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..validate import choice, integer

__all__ = ["ImpactFit", "fit", "impact_integrals", "impact_rates", "replay", "replay_error"]

_MODELS = ("I", "L")
_CONVENTIONS = ("lesde", "paper")
_UNIFORM_RTOL = 1e-6


def _check_times(times, T, name="times"):
    t = np.asarray(times)
    if t.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {t.dtype}")
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.shape[0] != T:
        raise ValueError(f"{name} must have shape ({T},); got {t.shape}")
    if not np.isfinite(t).all():
        raise ValueError(f"{name} contains non-finite values")
    if T > 1 and not np.all(np.diff(t) > 0):
        raise ValueError(f"{name} must be strictly increasing")
    return t


def _mean_log(logs, valid, axis):
    """Mean of ``logs`` over ``axis`` restricted to ``valid``; NaN where nothing is valid."""
    cnt = valid.sum(axis=axis)
    tot = np.where(valid, logs, 0.0).sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def _log_ratio(num, den):
    """``log(num/den)`` and a mask of the entries where the ratio is positive and finite."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        r = num / den
        valid = np.isfinite(r) & (r > 0)
        return np.log(np.where(valid, r, 1.0)), valid


def _paper_integrals(m, model, K):
    """A, B exactly as the paper's published code computes them (see
    :func:`impact_integrals`, Notes): the same arithmetic in the same order, so that the
    paper's numbers come out bit for bit on the logits it was given."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an all-NaN slice
        return (_paper_L if model == "L" else _paper_I)(m, K)


def _paper_I(m, K):
    """The I estimator of the paper's code: log|ratio| of the products
    ``mbar(t) d_k(t)^(K-1) / (mbar(0) d_k(0)^(K-1))`` and ``(mbar(0) / d_k(0)) d_k(t) /
    mbar(t)``, averaged over classes, then over coordinates (NaN skipped, infinities kept)."""
    per_class = np.array([m[:, k, :] for k in range(K)])  # (K, T, p)
    mbar = np.mean(per_class, axis=0)
    mbar0 = np.nanmean(mbar[0:1], axis=0)
    d0 = np.array([np.nanmean(per_class[k][0:1], axis=0) - mbar0 for k in range(K)])
    d = per_class - mbar
    shrink = (mbar0 / d0)[:, None, :] * d / mbar  # exp(-B) per class and coordinate
    B = np.nanmean(np.nanmean(-np.log(np.abs(shrink)), axis=0), axis=-1)
    grow = (mbar * d ** (K - 1)) / (mbar0 * d0 ** (K - 1))[:, None, :]  # exp(A)
    A = np.nanmean(np.nanmean(np.log(np.abs(grow)), axis=0), axis=-1)
    return A, B


# The paper's L estimator reads the 3 x 3 class-mean matrix, flattened row by row (entry
# 3 k + j is logit j of class k), through fixed entries: the common mode through a sum that
# equals the trace only when every class's logits sum to zero, one zero-sum mode through
# classes 0 and 1.
_PAPER_L_PLUS = (0, 4)  # m_00, m_11
_PAPER_L_MINUS = (6, 7)  # m_20, m_21
_PAPER_L_OFF = (1, 2, 3, 5, 6, 7)  # off the diagonal (m_20, m_21 for -m_22)
_PAPER_L_ZERO_SUM = np.array([2, -1, -1, -1, 2, -1, 0, 0, 0])


def _paper_L(m, K):
    """The L estimator of the paper's code (K = 3 only; see :data:`_PAPER_L_PLUS`)."""
    flat = m.reshape(m.shape[0], K * K)
    v = (-1 / K + np.eye(K)).reshape(-1)  # the label directions v_k, flattened
    trace = (
        np.sum(flat[:, _PAPER_L_PLUS], axis=1)
        - np.sum(flat[:, _PAPER_L_MINUS], axis=1)
        - np.sum(flat[:, _PAPER_L_OFF], axis=1)
    ) / 2
    common = np.log(np.abs(trace / trace[0])) * K  # A - B
    rest = flat - np.outer(trace / 2, v)
    zero_sum = rest @ _PAPER_L_ZERO_SUM / 3
    spread = np.log(np.abs(zero_sum / zero_sum[0])) * K  # A + B / (K - 1)
    return (common + (K - 1) * spread) / K, (spread - common) * (K - 1) / K


def impact_integrals(class_mean_logits, model="I", times=None, conventions="lesde"):
    """Estimate ``A(t) = int alpha`` and ``B(t) = int beta`` from recorded class means.

    Parameters
    ----------
    class_mean_logits : array_like, shape (T, K, p)
        ``class_mean_logits[t, k]`` is the mean logit vector of class ``k`` at record ``t``
        (``p = K`` for logits; model ``"I"`` accepts any ``p``, model ``"L"`` needs
        ``p == K``). The first record is the reference time.
    model : {"I", "L"}
        ``"I"``: linear-model estimator (coordinate-wise growth of the class average and
        of the class contrasts). ``"L"``: projected-model estimator (growth along the
        label directions ``v_k = e_k - 1/K``). See the module docstring.
    times : array_like, shape (T,), optional
        Recording times; only validated (finite, strictly increasing). ``A_hat[j]``
        estimates ``int_{times[0]}^{times[j]} alpha``.
    conventions : {"lesde", "paper"}
        ``"lesde"`` (default): the estimators described above. ``"paper"``: the choices of
        the paper's published code, to reproduce its numbers (see Notes).

    Returns
    -------
    A_hat, B_hat : ndarray, shape (T,)
        ``A_hat[0] = B_hat[0] = 0`` whenever record 0 is usable. NaN at times where no
        coordinate gives a positive, finite growth ratio.

    Notes
    -----
    Model ``"I"``. From the closed form (docs/model.md section 2), coordinate-wise,
    ``log(mbar(t)/mbar(0)) = (A + (K-1) B)/K =: u`` and ``log(d_k(t)/d_k(0)) = (A - B)/K
    =: v``. Hence ``A = u + (K-1) v`` and ``B = u - v``, i.e.
    ``exp(A) = [mbar(t)/mbar(0)] [d_k(t)/d_k(0)]^(K-1)`` and
    ``exp(-B) = [d_k(t)/d_k(0)] [mbar(0)/mbar(t)]``: the formulas printed in docs/model.md
    section 5 agree with the closed form. Each pair ``(k, j)`` with both ratios positive
    and finite gives one ``(A, B)``; the logs are averaged over those pairs.

    Model ``"L"``. With ``a_k = v_k . m_k / |v_k|^2 = (m_kk - mean_j m_kj) K/(K-1)``,
    ``abar = mean_k a_k`` and ``z_k = a_k - abar``: ``P = log(abar(t)/abar(0)) =
    (A - B)/K`` and ``Q = mean_k log(z_k(t)/z_k(0)) = (A + B/(K-1))/K``. Solving,
    ``B = (K-1)(Q - P)`` and ``A = K P + B``. Both need a usable common mode and at least
    one usable zero-sum coordinate, else NaN.

    Conventions. ``conventions="paper"`` computes what the paper's published code
    (github.com/zjiayao/le_sde, ``src/data_analyzer.py``) computes on the same class means,
    bit for bit: its arithmetic, in its order. lesde's default departs from it on purpose:

    - ``"L"`` is offset-invariant: ``a_k`` uses ``v_k . m_k``, unchanged when a constant is
      added to a class's logits (softmax ignores it). The paper's code is written for
      K = 3 (other K are refused) and reads the common mode as ``(m_00 + m_11 - m_01 -
      m_02 - m_10 - m_12 - 2 m_20 - 2 m_21) / 2``, which is the trace ``sum_k m_kk`` only
      when each class's logits sum to zero, and one zero-sum mode through classes 0 and 1
      only (equal to the last class's ``z_2`` for such logits). On raw logits, whose rows
      do not sum to zero, both readings pick up the row sums.
    - ``"L"`` averages the growth of all K zero-sum coordinates ``z_k``; the paper's code
      uses one.
    - Both estimators skip ratios that are not positive (a sign change carries no
      information about a growth rate); the paper's code averages ``log|ratio|`` over all
      of them (a zero ratio gives -inf), and for ``"I"`` first over classes, then over
      coordinates, taking the log of the products written above rather than summing logs.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.array([[[1.0, 0.0], [0.0, 1.0]],
    ...               [[np.e, 0.0], [0.0, np.e]]])  # both m_k scaled by e
    >>> impact_integrals(m)  # mbar and d both grow by e: (A + B)/2 = (A - B)/2 = 1
    (array([0., 2.]), array([0., 0.]))
    """
    choice("model", model, _MODELS)
    choice("conventions", conventions, _CONVENTIONS)
    m = np.asarray(class_mean_logits)
    if m.dtype.kind not in "fiu":
        raise TypeError(f"class_mean_logits must be a real numeric array, got dtype {m.dtype}")
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 3:
        raise ValueError(f"class_mean_logits must have shape (T, K, p); got shape {m.shape}")
    T, K, p = m.shape
    if T == 0 or p == 0:
        raise ValueError(f"class_mean_logits is empty (shape {m.shape})")
    if K < 2:
        raise ValueError(f"class_mean_logits needs K >= 2 classes (axis 1); got K = {K}")
    if times is not None:
        _check_times(times, T)

    if model == "L" and p != K:
        raise ValueError(f"model 'L' needs logits (p == K); got K = {K}, p = {p}")
    if model == "L" and conventions == "paper" and K != 3:
        raise ValueError(
            f"conventions='paper' with model 'L' is the paper's code, written for K = 3 "
            f"classes only; got K = {K}: use conventions='lesde' (any K) or model 'I'"
        )
    if conventions == "paper":
        return _paper_integrals(m, model, K)
    with np.errstate(all="ignore"):
        if model == "I":
            mbar = m.mean(axis=1)  # (T, p)
            d = m - mbar[:, None, :]  # (T, K, p)
            lm, vm = _log_ratio(mbar, mbar[0])  # u per coordinate, (T, p)
            ld, vd = _log_ratio(d, d[0])  # v per (k, coordinate), (T, K, p)
            valid = vd & vm[:, None, :]
            # Derivation in the Notes: A = u + (K-1) v, B = u - v.
            A_kj = lm[:, None, :] + (K - 1) * ld
            B_kj = lm[:, None, :] - ld
            A = _mean_log(A_kj, valid, axis=(1, 2))
            B = _mean_log(B_kj, valid, axis=(1, 2))
            return A, B

        a = (np.einsum("tkk->tk", m) - m.mean(axis=2)) * (K / (K - 1))  # (T, K)
        abar = a.mean(axis=1)
        z = a - abar[:, None]
        P, vp = _log_ratio(abar, abar[0])
        lz, vz = _log_ratio(z, z[0])
        Q = _mean_log(lz, vz, axis=1)
        P = np.where(vp, P, np.nan)
        B = (K - 1) * (Q - P)
        A = K * P + B
        return A, B


def _odd_window(w, n, polyorder):
    w = max(int(w), polyorder + 2)
    if w % 2 == 0:
        w += 1
    if w > n:
        w = n if n % 2 == 1 else n - 1
    return w


def _derivative(t, f, window, polyorder, uniform):
    from scipy.signal import savgol_filter

    out = np.full(t.shape, np.nan)
    valid = np.isfinite(f)
    if valid.sum() < polyorder + 2:
        return out
    idx = np.flatnonzero(valid)
    i0, i1 = idx[0], idx[-1] + 1
    ts = t[i0:i1]
    fs = np.interp(ts, t[valid], f[valid])  # fills interior NaN gaps linearly
    n = ts.size
    w = _odd_window(round(n / 10) if window is None else window, n, polyorder)
    if uniform:
        dt = (ts[-1] - ts[0]) / (n - 1)
        out[i0:i1] = savgol_filter(fs, w, polyorder, deriv=1, delta=dt, mode="interp")
    else:
        tu = np.linspace(ts[0], ts[-1], n)
        fu = np.interp(tu, ts, fs)
        du = savgol_filter(fu, w, polyorder, deriv=1, delta=tu[1] - tu[0], mode="interp")
        out[i0:i1] = np.interp(ts, tu, du)
    return out


def impact_rates(times, A_hat, B_hat, window=None, polyorder=2):
    """Smoothed derivatives ``alpha_hat = dA/dt``, ``beta_hat = dB/dt`` (Savitzky-Golay).

    Parameters
    ----------
    times : array_like, shape (T,)
        Strictly increasing recording times. The Savitzky-Golay filter needs a uniform grid:
        if the spacing varies by more than a relative ``1e-6``, ``A_hat`` and ``B_hat`` are
        linearly resampled to ``T`` uniform points, differentiated there, and the
        derivatives interpolated back to ``times``.
    A_hat, B_hat : array_like, shape (T,)
        Estimated integrals, e.g. from :func:`impact_integrals`; NaN allowed.
    window : int, optional
        Filter window in samples (made odd, at least ``polyorder + 2`` by default, and at
        most the number of usable samples). Default: the odd number nearest a tenth of the
        number of samples in the usable span (``T / 10`` without NaN at the ends).
    polyorder : int
        Degree of the local polynomial (``>= 1``).

    Returns
    -------
    alpha_hat, beta_hat : ndarray, shape (T,)
        Interior NaN gaps of the input are interpolated over (linearly in time) before
        filtering; leading and trailing NaNs stay NaN, and a series with fewer than
        ``polyorder + 2`` finite values is all NaN.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 11)
    >>> a, b = impact_rates(t, 2.0 * t, np.where(t == 0.5, np.nan, -t), window=5)
    >>> bool(np.allclose(a, 2.0) and np.allclose(b, -1.0))
    True
    """
    A = np.asarray(A_hat, dtype=np.float64)
    B = np.asarray(B_hat, dtype=np.float64)
    if A.ndim != 1 or A.size == 0:
        raise ValueError(f"A_hat must be a non-empty 1-D array; got shape {A.shape}")
    if B.shape != A.shape:
        raise ValueError(f"B_hat must have the shape of A_hat {A.shape}; got {B.shape}")
    t = _check_times(times, A.shape[0])
    polyorder = integer("polyorder", polyorder, at_least=1)  # 0 would not differentiate
    if window is not None:
        window = integer("window", window)
        if window <= polyorder:
            raise ValueError(f"window must exceed polyorder={polyorder}, got {window}")
    uniform = True
    if t.size > 2:
        dt = np.diff(t)
        uniform = bool(np.ptp(dt) <= _UNIFORM_RTOL * dt.mean())
    return (
        _derivative(t, A, window, polyorder, uniform),
        _derivative(t, B, window, polyorder, uniform),
    )


def _fill_gaps(times, values, name):
    values = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(values)
    if not ok.any():
        raise ValueError(f"{name} has no finite value to replay")
    if ok.all():
        return values
    return np.interp(times, times[ok], values[ok])  # NaN gaps: linear, held at the ends


def replay(
    times,
    alpha_hat,
    beta_hat,
    class_means0,
    *,
    signal="linear",
    sigma=0.0,
    n_per_class=1,
    init_scale=0.0,
    steps_per_interval=10,
    progress=False,
    **fields,
):
    """Drive the LE-ODE / LE-SDE with estimated rates and record it at ``times``.

    This is the paper's validation (Figure 5): rates estimated from a network's class-mean
    logits are fed back into the simulator, whose class means are then compared with the
    genuine ones (:func:`replay_error`). With the defaults (one sample per class, no noise,
    no spread) the run *is* the class-mean LE-ODE; pass ``sigma``, ``n_per_class`` and
    ``init_scale`` for the LE-SDE, and any other :class:`lesde.Config` field as a keyword.

    Parameters
    ----------
    times : (T,) increasing array
        Times of the estimates; the replay starts at ``times[0]`` (shifted to 0).
    alpha_hat, beta_hat : (T,) arrays
        Estimated rates; NaN gaps are filled by linear interpolation.
    class_means0 : (K, p) array
        The genuine class means at ``times[0]``: the starting point.
    steps_per_interval : int
        Integrator steps between consecutive ``times`` (on a uniform grid) or per mean
        spacing (otherwise).

    Returns
    -------
    lesde.Result
        Records at every step multiple that falls on ``times`` (all of them for a uniform
        grid); ``result.class_means[0]`` has shape (T, K, p).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 11)
    >>> m0 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.5]])
    >>> res = replay(t, np.full(11, 2.0), np.full(11, 0.5), m0, scheme="heun")
    >>> res.class_means.shape
    (1, 11, 3, 3)
    """
    from ..sim.config import Config
    from ..sim.schedules import Tabulated
    from ..sim.simulate import simulate

    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size < 2 or np.any(np.diff(times) <= 0):
        raise ValueError("times must be a 1-D increasing array with at least two entries")
    for name, arr in (("alpha_hat", alpha_hat), ("beta_hat", beta_hat)):
        if np.shape(arr) != times.shape:
            raise ValueError(
                f"{name} must have the shape of times {times.shape}, got {np.shape(arr)}"
            )
    means0 = np.asarray(class_means0, dtype=np.float64)
    if means0.ndim != 2:
        raise ValueError(f"class_means0 must be a (K, p) array, got shape {means0.shape}")
    t = times - times[0]
    alpha = Tabulated(t, _fill_gaps(t, alpha_hat, "alpha_hat"))
    beta = Tabulated(t, _fill_gaps(t, beta_hat, "beta_hat"))
    spacing = np.diff(t)
    uniform = np.allclose(spacing, spacing[0], rtol=1e-9, atol=0.0)
    steps_per_interval = integer("steps_per_interval", steps_per_interval, at_least=1)
    dt = (spacing[0] if uniform else spacing.mean()) / steps_per_interval
    steps = int(round(t[-1] / dt))
    K, p = means0.shape
    cfg = Config(
        n_classes=K,
        dim=p,
        n_per_class=n_per_class,
        signal=signal,
        alpha=alpha,
        beta=beta,
        sigma=sigma,
        init_scale=init_scale,
        init_means=means0,
        dt=dt,
        steps=steps,
        record_every=steps_per_interval if uniform else None,
        **fields,
    )
    return simulate(cfg, progress=progress)


def replay_error(result, class_mean_logits, times=None):
    """Relative error of replayed class means against the genuine ones, per record.

    ``max_k |m_k^replay(t) - m_k(t)| / max_k |m_k(t)|`` at each record time (genuine
    trajectories interpolated to the record times when ``times`` is given).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 11)
    >>> m0 = np.eye(3)
    >>> res = replay(t, np.full(11, 1.0), np.full(11, 0.2), m0)
    >>> float(replay_error(res, res.class_means[0]).max())
    0.0
    """
    replayed = result.class_means[0]
    genuine = np.asarray(class_mean_logits, dtype=np.float64)
    if times is not None:
        times = np.asarray(times, dtype=np.float64)
        flat = genuine.reshape(len(times), -1)
        at = result.times + times[0]
        genuine = np.stack(
            [np.interp(at, times, flat[:, j]) for j in range(flat.shape[1])], axis=1
        ).reshape((len(at),) + genuine.shape[1:])
    if genuine.shape != replayed.shape:
        raise ValueError(
            f"genuine trajectories have shape {genuine.shape}, the replay "
            f"{replayed.shape}; pass times to interpolate"
        )
    scale = np.abs(genuine).reshape(len(genuine), -1).max(axis=1)
    diff = np.abs(replayed - genuine).reshape(len(genuine), -1).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return diff / scale


_REPLAY_SIGNAL = {"I": "linear", "L": "projected"}


@dataclass(frozen=True, eq=False)
class ImpactFit:
    """Estimated impact integrals and rates of one trajectory (see :func:`fit`).

    ``times`` (T,) are the record times used (from ``start`` on), ``class_means`` (T, K, p)
    the genuine class means there, ``A_hat``/``B_hat`` the integrals from ``times[0]`` and
    ``alpha_hat``/``beta_hat`` their smoothed derivatives. ``model`` is "I" or "L".
    """

    times: np.ndarray
    class_means: np.ndarray
    A_hat: np.ndarray
    B_hat: np.ndarray
    alpha_hat: np.ndarray
    beta_hat: np.ndarray
    model: str

    @property
    def signal(self) -> str:
        """The signal whose LE-ODE the estimator inverts: "linear" (I) or "projected" (L)."""
        return _REPLAY_SIGNAL[self.model]

    def replay(self, **kwargs):
        """:func:`replay` these rates from the genuine class means at ``times[0]``.

        The signal defaults to the one the estimator assumes (:attr:`signal`); keywords go
        to :func:`replay`. The replay's times start at 0: add ``times[0]`` to compare.
        """
        kwargs.setdefault("signal", self.signal)
        return replay(self.times, self.alpha_hat, self.beta_hat, self.class_means[0], **kwargs)

    def replay_error(self, replayed) -> np.ndarray:
        """:func:`replay_error` of a replay against these genuine class means, per record."""
        return replay_error(replayed, self.class_means)


def fit(source, times=None, *, model="I", start=0, window=None, polyorder=2, replica=0):
    """Estimate ``A(t), B(t)`` and ``alpha(t), beta(t)`` from a run or a trained network.

    One call for :func:`impact_integrals` then :func:`impact_rates`. ``source`` is anything
    with ``class_means`` (R, T, K, p) and ``times`` (T,): a :class:`lesde.Result` or a
    :class:`lesde.nn.TrainingResult`; or a (T, K, p) array of class means, with ``times``.

    Parameters
    ----------
    source : Result, TrainingResult or array_like (T, K, p)
    times : array_like (T,), optional
        Needed when ``source`` is an array; otherwise ``source.times``.
    model : {"I", "L"}
        Estimator (see :func:`impact_integrals`).
    start : int
        First record used: the reference time of the integrals (e.g. skip the first records
        of a network whose class means are still near zero).
    window, polyorder : int
        Savitzky-Golay settings of :func:`impact_rates`.
    replica : int
        Which replica of a Result.

    Returns
    -------
    ImpactFit

    Examples
    --------
    >>> import lesde
    >>> res = lesde.simulate(n_classes=3, n_per_class=1, signal="linear", alpha=2.0,
    ...                      beta=0.5, sigma=0.0, init_scale=0.0, t_end=1.0,
    ...                      init_means=[[1.0, 0.2, 0.1], [0.0, 1.0, 0.3], [0.2, 0.1, 1.2]],
    ...                      scheme="heun", record_every=5, progress=False)
    >>> est = fit(res, window=7)
    >>> round(float(est.alpha_hat[5]), 3), round(float(est.beta_hat[5]), 3)
    (2.0, 0.5)
    """
    if hasattr(source, "class_means") and hasattr(source, "times"):
        if times is not None:
            raise ValueError("times come from the result; pass times only with an array")
        means = np.asarray(source.class_means)[replica]
        times = np.asarray(source.times)
    else:
        means = np.asarray(source)
        if times is None:
            raise ValueError("fit needs times (T,) when source is an array of class means")
    start = integer("start", start)
    T = np.shape(means)[0]
    if not 0 <= start < T - 2:
        raise ValueError(f"start must lie in [0, {T - 3}] to leave 3 records; got {start}")
    means, times = means[start:], _check_times(times, T)[start:]
    A_hat, B_hat = impact_integrals(means, model=model, times=times)
    alpha_hat, beta_hat = impact_rates(times, A_hat, B_hat, window=window, polyorder=polyorder)
    return ImpactFit(
        times=times,
        class_means=np.asarray(means, dtype=np.float64),
        A_hat=A_hat,
        B_hat=B_hat,
        alpha_hat=alpha_hat,
        beta_hat=beta_hat,
        model=model,
    )
