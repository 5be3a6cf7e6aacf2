"""Neural-collapse metrics: NC1 (within- against between-class spread), NC2 (class means
against a simplex equiangular tight frame) and NC4 (nearest class centre against argmax).

Definitions in :mod:`lesde.metrics` (and docs/model.md section 4), which re-exports every
function here; ``lesde.metrics.nc1`` and ``lesde.metrics.neural_collapse.nc1`` are the same
function. The ``*_from_moments`` / ``*_from_means`` variants finish the metrics from the
small K x p and p x p aggregates that the engine streams at record steps.

Empty classes (all-NaN rows of the class means) are left out: ``K`` in the formulas is
then the number of non-empty classes.

Examples
--------
>>> import numpy as np
>>> from lesde.metrics import neural_collapse
>>> y = np.repeat(np.arange(3), 2)
>>> X = 10.0 * (np.eye(3) - 1.0 / 3.0)[y]  # every sample on its class mean: an ETF
>>> neural_collapse.nc1(X, y), neural_collapse.nc2(X, y)["etf_distance"] < 1e-12
(0.0, True)
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import chunked

__all__ = [
    "NC2_KEYS",
    "nc1",
    "nc1_from_moments",
    "nc1_from_moments_batched",
    "nc2",
    "nc2_from_means",
    "nc2_from_means_batched",
    "nc4",
    "within_between",
]

_EPS = np.finfo(np.float64).eps
#: NC1 and NC2 are scale-free: NC2 depends on the class means only up to a common factor, NC1
#: is unchanged when the means are divided by c and Sigma_W by c**2. A record whose largest
#: class-mean entry, or the square root of its largest Sigma_W entry, lies outside
#: [2**-_SAFE_EXPONENT, 2**_SAFE_EXPONENT] is divided by such a c, a power of two (exact), so
#: that the squares the formulas form can neither overflow nor underflow: from finite moments
#: NC1 and NC2 are then finite except where their definitions say otherwise. Records inside
#: the range are not touched (their values do not change by a bit).
_SAFE_EXPONENT = 400
#: The statistics :func:`nc2_from_means` returns, in its order.
NC2_KEYS = ("equinorm", "equiangularity", "etf_distance", "coherence")


# --------------------------------------------------------------------------------------
# within- and between-class covariance
# --------------------------------------------------------------------------------------


def _reduced_centred_means(mu):
    """Centred class means in coordinates of an orthonormal basis of ``1^perp`` in R^K.

    ``M = mu - mu_G`` satisfies ``1^T M = 0``, so ``M = Q R`` with ``Q`` (K x (K-1)) an
    orthonormal basis of the vectors summing to zero and ``R = Q^T M``. ``R`` has the same
    singular values and right singular vectors as ``M`` but at most ``K - 1`` rows, so the
    rounding error of the centring (of order eps * |mu_k|, large when the means share a big
    offset) cannot masquerade as an extra between-class direction.
    """
    M = mu - mu.mean(axis=0)
    return _contrast_basis(mu.shape[0]).T @ M


@functools.lru_cache(maxsize=64)
def _contrast_basis(K):
    """Orthonormal basis (K x (K-1)) of the vectors summing to zero; cached per K, since
    the engine's records finish NC1 for every replica and record time."""
    Q, _ = np.linalg.qr(np.eye(K)[:, : K - 1] - 1.0 / K)
    Q.flags.writeable = False
    return Q


def _rescaled(mu, sw=None):
    """``mu`` (..., K, p) and ``sw`` (..., p, p) divided by ``c`` and ``c**2``, ``c`` a power
    of two per record, where the record's magnitude is outside the safe range (see
    :data:`_SAFE_EXPONENT`); NaN and inf entries are ignored in choosing ``c`` and stay."""
    with np.errstate(invalid="ignore"):
        size = np.where(np.isfinite(mu), np.abs(mu), 0.0).max(axis=(-2, -1))
        if sw is not None:
            spread = np.where(np.isfinite(sw), np.abs(sw), 0.0).max(axis=(-2, -1))
            size = np.maximum(size, np.sqrt(spread))
    _, exponent = np.frexp(size)
    exponent = np.where((size > 0) & (np.abs(exponent) > _SAFE_EXPONENT), exponent, 0)
    if not np.any(exponent):
        return mu, sw
    e = exponent[..., None, None]
    return np.ldexp(mu, -e), None if sw is None else np.ldexp(sw, -2 * e)


def _sigma_b(mu):
    if mu.shape[0] < 2:
        return np.zeros((mu.shape[1], mu.shape[1]))
    R = _reduced_centred_means(mu)
    return (R.T @ R) / mu.shape[0]


def within_between(X, y, n_classes=None, *, _chunk=chunked.CHUNK):
    """Within-class and between-class covariance matrices.

    ``Sigma_W = (1/N) sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T`` is accumulated from centred
    rows, chunk by chunk (two streaming passes, memory ``O(chunk * p + p^2)``).
    ``Sigma_B = (1/K) sum_k M_k M_k^T`` with ``M_k = mu_k - mu_G`` and ``mu_G`` the unweighted
    mean of the class means; empty classes are left out of ``Sigma_B`` (and of ``K``).

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features.
    y : array_like of int, shape (N,)
        Labels in ``[0, K)``.
    n_classes : int, optional
        ``K``; default ``y.max() + 1``.

    Returns
    -------
    sigma_w, sigma_b : ndarray, shape (p, p)
        Symmetric positive semi-definite matrices.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[-1.0, 0.0], [1.0, 0.0], [-1.0, 4.0], [1.0, 4.0]])
    >>> sw, sb = within_between(X, np.array([0, 0, 1, 1]))
    >>> sw
    array([[1., 0.],
           [0., 0.]])
    >>> sb
    array([[0., 0.],
           [0., 4.]])
    """
    X, y, K = chunked.features_and_labels(X, y, n_classes)
    chunk = chunked.check_chunk(_chunk)
    means = chunked.class_means(X, y, K, chunk)
    sigma_w = chunked.within_scatter(X, y, means, chunk)
    mu, _ = chunked.present_means(means)
    return sigma_w, _sigma_b(mu)


# --------------------------------------------------------------------------------------
# NC1
# --------------------------------------------------------------------------------------


_NC1_VARIANTS = ("pinv", "svd")


def nc1_from_moments(sigma_w, class_means, variant="pinv", rtol=None):
    """NC1 from the within-class covariance and the class means.

    ``nc1 = (1/K) trace(Sigma_W Sigma_B^+)`` with ``Sigma_B = (1/K) sum_k M_k M_k^T``. The
    pseudo-inverse is formed from the singular value decomposition of the centred means
    ``M = U diag(s) V^T`` (``K x p``), which avoids squaring the condition number:
    ``Sigma_B^+ = K V diag(1/s^2) V^T``, so ``nc1 = sum_j (v_j^T Sigma_W v_j) / s_j^2`` over
    the retained directions ``j``. The SVD is taken in a basis of the ``K - 1`` dimensional
    space of class contrasts, so ``Sigma_B`` never shows more than ``K - 1`` directions.

    Variants
    --------
    ``"pinv"`` (default)
        Moore-Penrose pseudo-inverse: directions with ``s_j > rtol * max(s_max, |mu|_max)``
        are kept, with ``rtol = max(K, p) * eps`` (``eps`` the float64 machine epsilon)
        unless given, and ``|mu|_max`` the largest norm of a class mean: singular values
        below that are within the rounding error of the centring ``mu_k - mu_G``. Without
        a common offset this is the usual cut-off on eigenvalues of ``Sigma_B`` at
        ``rtol**2`` times the largest.
    ``"svd"``
        Papyan et al.'s recipe: the top ``K - 1`` eigenvectors of ``Sigma_B`` (``Sigma_B``
        has rank at most ``K - 1``) whatever their size (``min(K - 1, p)`` if ``p < K - 1``).
        A zero eigenvalue among them gives ``inf`` (or NaN). It equals ``"pinv"`` whenever
        ``Sigma_B`` has rank exactly ``K - 1``, the generic case for ``p >= K - 1``.

    Parameters
    ----------
    sigma_w : array_like, shape (p, p)
        Within-class covariance (see :func:`within_between`).
    class_means : array_like, shape (K, p)
        Class means (see :func:`class_means`); all-NaN rows (empty classes) are dropped.
    variant : {"pinv", "svd"}
        See above.
    rtol : float, optional
        Relative cut-off on singular values of ``M`` for ``"pinv"`` (see above).

    Returns
    -------
    float
        NC1 (``>= 0``). NaN if fewer than two non-empty classes, or if all class means
        coincide and ``Sigma_W = 0``; ``inf`` if all class means coincide but
        ``Sigma_W != 0`` (no between-class spread at all).

    Examples
    --------
    >>> import numpy as np
    >>> means = np.array([[1.0, 0.0], [-1.0, 0.0]])
    >>> round(nc1_from_moments(np.diag([0.5, 3.0]), means), 12)  # Sigma_B = e1 e1^T, K = 2
    0.25
    """
    if variant not in _NC1_VARIANTS:
        raise ValueError(f"variant must be one of {_NC1_VARIANTS}, got {variant!r}")
    mu, _ = chunked.present_means(class_means)
    K, p = mu.shape
    sw = chunked.as_real_array(sigma_w, "sigma_w")
    if sw.shape != (p, p):
        raise ValueError(f"sigma_w must have shape (p, p) = ({p}, {p}) to match class_means")
    sw = np.ascontiguousarray(sw, dtype=np.float64)  # layout-independent rounding (einsum)
    if not np.isfinite(sw).all():
        raise ValueError("sigma_w contains non-finite values (NaN or inf)")
    if K < 2:
        return math.nan
    mu, sw = _rescaled(mu, sw)
    _, s, Vt = np.linalg.svd(_reduced_centred_means(mu), full_matrices=False)
    scale = max(float(s[0]), float(np.linalg.norm(mu, axis=1).max()))
    if s[0] <= max(K, p) * _EPS * scale:  # all class means coincide (to rounding)
        return math.nan if not np.any(sw) else math.inf
    if variant == "pinv":
        tol = (max(K, p) * _EPS) if rtol is None else float(rtol)
        if not tol >= 0.0:
            raise ValueError(f"rtol must be >= 0, got {rtol!r}")
        keep = s > tol * scale
    else:
        keep = np.zeros(s.shape, dtype=bool)
        keep[: min(K - 1, p)] = True
    V = Vt[keep]
    q = np.einsum("ij,jk,ik->i", V, sw, V)  # v_j^T Sigma_W v_j
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(q / s[keep] ** 2))


def nc1(X, y, n_classes=None, variant="pinv", *, rtol=None, _chunk=chunked.CHUNK):
    """NC1 = (1/K) trace(Sigma_W Sigma_B^+), within-class variability relative to between.

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features.
    y : array_like of int, shape (N,)
        Labels in ``[0, K)``.
    n_classes : int, optional
        ``K``; default ``y.max() + 1``.
    variant : {"pinv", "svd"}
        ``"pinv"``: Moore-Penrose pseudo-inverse with relative tolerance ``rtol``
        (default ``max(K, p) * eps`` on the singular values of the centred means).
        ``"svd"``: inverse on the top ``K - 1`` eigen-directions of ``Sigma_B``, as in
        Papyan et al. See :func:`nc1_from_moments`.
    rtol : float, optional
        Tolerance for ``"pinv"``.

    Returns
    -------
    float
        See :func:`nc1_from_moments` for the NaN / inf cases.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[-1.0, 0.0], [1.0, 0.0], [-1.0, 4.0], [1.0, 4.0]])
    >>> nc1(X, np.array([0, 0, 1, 1]))  # Sigma_W has no component along M
    0.0
    >>> X2 = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
    >>> nc1(X2, np.array([0, 0, 1, 1]))  # both means at 0: no between-class spread
    inf
    """
    X, y, K = chunked.features_and_labels(X, y, n_classes)
    chunk = chunked.check_chunk(_chunk)
    means = chunked.class_means(X, y, K, chunk)
    sigma_w = chunked.within_scatter(X, y, means, chunk)
    return nc1_from_moments(sigma_w, means, variant=variant, rtol=rtol)


# --------------------------------------------------------------------------------------
# NC2
# --------------------------------------------------------------------------------------


def nc2_from_means(class_means):
    """NC2 statistics of the class means (closeness to a simplex equiangular tight frame).

    With ``M_k = mu_k - mu_G`` (``mu_G`` the unweighted mean of the non-empty class means)
    and ``u_k = M_k / |M_k|``:

    - ``equinorm = std_k |M_k| / mean_k |M_k|`` (population std). Papyan et al.'s
      ``norm_M_CoV`` uses the sample std (``ddof=1``): it equals
      ``equinorm * sqrt(K / (K - 1))``.
    - ``equiangularity = std over ordered pairs k != k' of cos(M_k, M_k') = u_k . u_k'``.
    - ``etf_distance = || G / ||G||_F - E / ||E||_F ||_F`` with ``G = [u_k . u_k']`` and
      ``E = I - 11^T / K``. It lies in ``[0, 2]``; 0 exactly for a simplex ETF (any scale,
      rotation or class order).
    - ``coherence = mean over k != k' of |cos(M_k, M_k') + 1/(K - 1)|``, Papyan et al.'s
      ``cos_M`` ("maximal angle"; 0 for a simplex ETF).

    All four are 0 for a simplex ETF. If some ``M_k = 0`` the angle-based ones are NaN.

    Parameters
    ----------
    class_means : array_like, shape (K, p)
        Class means; all-NaN rows (empty classes) are dropped.

    Returns
    -------
    dict
        Keys ``"equinorm"``, ``"equiangularity"``, ``"etf_distance"``, ``"coherence"``
        (floats; all NaN with fewer than two non-empty classes).

    Examples
    --------
    >>> import numpy as np
    >>> etf = np.eye(3) - 1.0 / 3.0  # centred simplex ETF, K = 3
    >>> {k: round(v, 12) + 0.0 for k, v in nc2_from_means(5.0 * etf).items()}
    {'equinorm': 0.0, 'equiangularity': 0.0, 'etf_distance': 0.0, 'coherence': 0.0}
    """
    mu, _ = chunked.present_means(class_means)
    K = mu.shape[0]
    if K < 2:
        return dict.fromkeys(NC2_KEYS, math.nan)
    mu, _ = _rescaled(mu)
    M = mu - mu.mean(axis=0)
    norms = np.linalg.norm(M, axis=1)
    mean_norm = norms.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        equinorm = float(norms.std() / mean_norm) if mean_norm > 0 else math.nan
        U = M / norms[:, None]
        G = U @ U.T
    off = G[~np.eye(K, dtype=bool)]
    E = np.eye(K) - 1.0 / K
    with np.errstate(divide="ignore", invalid="ignore"):
        etf = np.linalg.norm(G / np.linalg.norm(G) - E / np.linalg.norm(E))
    return {
        "equinorm": equinorm,
        "equiangularity": float(off.std()),
        "etf_distance": float(etf),
        "coherence": float(np.mean(np.abs(off + 1.0 / (K - 1)))),
    }


def nc2(X, y, n_classes=None, *, _chunk=chunked.CHUNK):
    """NC2 statistics of the class means of ``X``; see :func:`nc2_from_means`.

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features.
    y : array_like of int, shape (N,)
        Labels in ``[0, K)``.
    n_classes : int, optional
        ``K``; default ``y.max() + 1``.

    Returns
    -------
    dict
        ``"equinorm"``, ``"equiangularity"``, ``"etf_distance"``, ``"coherence"``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [-1.0, 0.0]])
    >>> nc2(X, np.array([0, 1]))["etf_distance"]
    0.0
    """
    X, y, K = chunked.features_and_labels(X, y, n_classes)
    return nc2_from_means(chunked.class_means(X, y, K, chunked.check_chunk(_chunk)))


# --------------------------------------------------------------------------------------
# many records at once
# --------------------------------------------------------------------------------------


def _stacked(class_means, sigma_w=None):
    """Flat (B, K, p) class means and (B, p, p) covariances, and the leading shape."""
    mu = np.asarray(chunked.as_real_array(class_means, "class_means"), dtype=np.float64)
    if mu.ndim < 2 or mu.shape[-2] == 0 or mu.shape[-1] == 0:
        raise ValueError(f"class_means must have shape (..., K, p), K, p >= 1; got {mu.shape}")
    lead, (K, p) = mu.shape[:-2], mu.shape[-2:]
    if sigma_w is None:
        return mu.reshape(-1, K, p), None, lead
    sw = np.asarray(chunked.as_real_array(sigma_w, "sigma_w"), dtype=np.float64)
    if sw.shape != (*lead, p, p):
        raise ValueError(
            f"sigma_w must have shape {(*lead, p, p)} to match class_means {mu.shape}; "
            f"got {sw.shape}"
        )
    return mu.reshape(-1, K, p), sw.reshape(-1, p, p), lead


def _groups_by_present_classes(mu, sw=None):
    """(records, present) pairs: the flat records that can be finished, grouped by which
    classes they hold (rows that are not all-NaN), each group with its boolean class mask.

    A record with fewer than two present classes, a partly non-finite class mean or a
    non-finite ``sw`` is in no group: its statistics stay NaN (where the single-record
    functions would return NaN or raise).
    """
    absent = np.isnan(mu).all(axis=2)
    finite = np.isfinite(mu).all(axis=2)
    ok = np.all(finite | absent, axis=1) & ((~absent).sum(axis=1) >= 2)
    if sw is not None:
        ok &= np.isfinite(sw).all(axis=(1, 2))
    records = np.flatnonzero(ok)
    if records.size == 0:
        return []
    present = ~absent[records]
    if present.all():  # the usual case: every record holds every class
        return [(records, present[0])]
    patterns, which = np.unique(present, axis=0, return_inverse=True)
    which = which.reshape(-1)
    return [(records[which == g], present) for g, present in enumerate(patterns)]


def nc1_from_moments_batched(sigma_w, class_means):
    """:func:`nc1_from_moments` (variant ``"pinv"``) of many records at once.

    The same definition (the SVD of the centred means in the basis of class contrasts, the
    same cut-off and the same NaN / inf cases), evaluated by stacked ``numpy.linalg``
    calls over all records that hold the same classes, instead of one call per record.
    A record that :func:`nc1_from_moments` would refuse (a non-finite ``sigma_w``, a class
    mean with some but not all entries NaN or inf) gives NaN here, so that one diverged
    replica does not stop the others.

    Parameters
    ----------
    sigma_w : array_like, shape (..., p, p)
        Within-class covariances.
    class_means : array_like, shape (..., K, p)
        Class means; all-NaN rows are absent classes (left out, as in
        :func:`nc1_from_moments`).

    Returns
    -------
    ndarray, shape (...)

    Examples
    --------
    >>> import numpy as np
    >>> means = np.array([[[1.0, 0.0], [-1.0, 0.0]], [[2.0, 0.0], [-2.0, 0.0]]])
    >>> nc1_from_moments_batched(np.diag([0.5, 3.0])[None].repeat(2, axis=0), means)
    array([0.25  , 0.0625])
    """
    mu_all, sw_all, lead = _stacked(class_means, sigma_w)
    mu_all, sw_all = _rescaled(mu_all, sw_all)
    p = mu_all.shape[2]
    out = np.full(mu_all.shape[0], np.nan)
    for records, present in _groups_by_present_classes(mu_all, sw_all):
        mu, sw = mu_all[records][:, present], sw_all[records]
        K = mu.shape[1]
        contrasts = _contrast_basis(K).T @ (mu - mu.mean(axis=1, keepdims=True))
        _, s, Vt = np.linalg.svd(contrasts, full_matrices=False)
        scale = np.maximum(s[:, 0], np.linalg.norm(mu, axis=2).max(axis=1))
        tol = max(K, p) * _EPS
        keep = s > tol * scale[:, None]
        q = np.einsum("bij,bjk,bik->bi", Vt, sw, Vt)  # v_j^T Sigma_W v_j
        with np.errstate(divide="ignore", invalid="ignore"):
            nc1_values = np.sum(np.where(keep, q / s**2, 0.0), axis=1)
        coincide = s[:, 0] <= tol * scale  # all class means equal (to rounding)
        spread = np.any(sw != 0, axis=(1, 2))
        out[records] = np.where(coincide, np.where(spread, np.inf, np.nan), nc1_values)
    return out.reshape(lead)


def nc2_from_means_batched(class_means):
    """:func:`nc2_from_means` of many records at once: a dict of arrays of shape (...).

    The same four statistics by the same formulas, stacked over all records that hold the
    same classes. A record with fewer than two present classes or a partly non-finite class
    mean gives NaN.

    Parameters
    ----------
    class_means : array_like, shape (..., K, p)
        Class means; all-NaN rows are absent classes.

    Examples
    --------
    >>> import numpy as np
    >>> etf = np.eye(3) - 1.0 / 3.0
    >>> out = nc2_from_means_batched(np.stack([etf, 2.0 * etf, np.full((3, 3), np.nan)]))
    >>> out["etf_distance"].round(12) + 0.0
    array([ 0.,  0., nan])
    """
    mu_all, _, lead = _stacked(class_means)
    mu_all, _ = _rescaled(mu_all)
    out = {key: np.full(mu_all.shape[0], np.nan) for key in NC2_KEYS}
    for records, present in _groups_by_present_classes(mu_all):
        mu = mu_all[records][:, present]
        K = mu.shape[1]
        M = mu - mu.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(M, axis=2)
        mean_norm = norms.mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            equinorm = np.where(mean_norm > 0, norms.std(axis=1) / mean_norm, np.nan)
            U = M / norms[:, :, None]
            G = U @ U.transpose(0, 2, 1)
            E = np.eye(K) - 1.0 / K
            G_unit = G / np.linalg.norm(G, axis=(1, 2))[:, None, None]
            etf = np.linalg.norm(G_unit - E / np.linalg.norm(E), axis=(1, 2))
        off = G[:, ~np.eye(K, dtype=bool)]
        out["equinorm"][records] = equinorm
        out["equiangularity"][records] = off.std(axis=1)
        out["etf_distance"][records] = etf
        out["coherence"][records] = np.mean(np.abs(off + 1.0 / (K - 1)), axis=1)
    return {key: values.reshape(lead) for key, values in out.items()}


# --------------------------------------------------------------------------------------
# NC4
# --------------------------------------------------------------------------------------


def nc4(X, y, head=None, n_classes=None, *, _chunk=chunked.CHUNK):
    """NC4: fraction where the nearest-class-centre decision equals ``argmax`` of the logits.

    The class centres are the means of ``X`` (feature space) grouped by ``y``; the logits
    are ``X`` (no head) or ``X @ head.T``. Papyan et al.'s ``NCC_mismatch`` is ``1 - nc4``.

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features.
    y : array_like of int, shape (N,)
        Grouping labels in ``[0, K)``.
    head : array_like, shape (K, p), optional
        Fixed linear head.
    n_classes : int, optional
        Must equal the number of logit columns when given.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[2.0, 0.0], [0.0, 2.0], [0.4, 0.5]])
    >>> nc4(X, np.array([0, 1, 0]))  # last row: NCC says 0, argmax says 1
    0.6666666666666666
    """
    X, y, H, K = chunked.logit_inputs(X, y, head, n_classes)
    chunk = chunked.check_chunk(_chunk)
    rule = chunked.NearestCentre(chunked.class_means(X, y, K, chunk))
    tot = chunked.scan(X, y, H=H, ncc=rule, chunk=chunk)
    return tot["nc4"] / X.shape[0]
