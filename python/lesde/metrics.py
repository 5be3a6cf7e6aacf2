"""Metrics of a feature cloud: loss, accuracy, neural collapse (NC1, NC2, NC4), separability.

All functions take features ``X`` of shape ``(N, p)`` (one row per training sample) and
integer labels ``y`` of shape ``(N,)`` with values in ``[0, K)``. The number of classes ``K``
comes from ``n_classes`` (default ``y.max() + 1``) or, for metrics that need logits, from
the number of logit columns. Logits are ``X`` itself when the features are logits
(``p == K``, no head) or ``X @ head.T`` for a fixed head matrix ``head`` of shape ``(K, p)``.

Definitions (MODEL.md, section 4). With class means ``mu_k``, the *unweighted* global mean
``mu_G = (1/K) sum_k mu_k`` and the centred means ``M_k = mu_k - mu_G``:

- ``loss``: mean softmax cross-entropy of the logits against ``y`` (stable log-sum-exp);
  ``accuracy``: fraction with ``argmax(logits) == y`` (ties go to the lowest index, as in
  :func:`numpy.argmax`); ``clean_accuracy``: the same against the true classes.
- ``Sigma_W = (1/N) sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T``, accumulated from centred
  rows (two passes: means, then scatter), never as ``E[x x^T] - mu mu^T``.
- ``Sigma_B = (1/K) sum_k M_k M_k^T``.
- ``nc1 = (1/K) trace(Sigma_W Sigma_B^+)`` (Moore-Penrose pseudo-inverse; see :func:`nc1`).
- NC2 (see :func:`nc2_from_means`): ``equinorm = std_k |M_k| / mean_k |M_k|``;
  ``equiangularity = std_{k != k'} cos(M_k, M_k')``; ``etf_distance`` = Frobenius distance
  between the normalised Gram matrix of the unit ``M_k`` and the normalised simplex-ETF Gram
  ``I - 11^T/K``; ``coherence = mean_{k != k'} |cos(M_k, M_k') + 1/(K-1)|`` (Papyan et al.'s
  "maximal-angle" quantity ``cos_M``). Standard deviations are population ones (``ddof=0``).
- ``nc4``: fraction of samples whose nearest-class-centre decision (Euclidean, in feature
  space) equals ``argmax`` of the logits; ``ncc_mismatch = 1 - nc4``.
- ``ncc_accuracy``: fraction whose nearest class mean equals ``y``.
- ``loss_tail_exponent``: slope ``r`` of ``-log(loss)`` against ``log(t)`` (``loss ~ t^-r``).

Large inputs. Every function that reads ``X`` streams it in row chunks (65536 rows by
default), converting each chunk to native float64 on the fly, so ``N = 10^7`` rows with
``p ~ 100`` never creates an ``N x p`` temporary. Inputs may be non-contiguous, read-only,
memory-mapped, float32 or non-native-endian; they are never modified.

Empty classes. A class with no samples (possible when ``n_classes`` exceeds the labels
present) has a row of NaN in :func:`class_means`. The nearest-class-centre rule never
predicts it, and the NC1/NC2 metrics are computed over the non-empty classes only (``K`` in
their formulas is then the number of non-empty classes).

Papyan et al. (PNAS 2020) names are accepted through :data:`PAPYAN_ALIASES` and
:func:`canonical_name`.

Examples
--------
>>> import numpy as np
>>> from lesde import metrics
>>> rng = np.random.default_rng(0)
>>> y = np.repeat(np.arange(3), 50)
>>> X = 10.0 * np.eye(3)[y] + rng.normal(size=(150, 3))
>>> s = metrics.summary(X, y)
>>> s["accuracy"], s["ncc_accuracy"], s["nc4"]
(1.0, 1.0, 1.0)
>>> bool(s["nc1"] < 0.1)
True
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "PAPYAN_ALIASES",
    "SUMMARY_KEYS",
    "SeparabilityResult",
    "accuracy",
    "canonical_name",
    "class_means",
    "logits",
    "loss",
    "loss_tail_exponent",
    "nc1",
    "nc1_from_moments",
    "nc2",
    "nc2_from_means",
    "nc4",
    "ncc_accuracy",
    "ncc_predict",
    "separable",
    "summary",
    "within_between",
]

_CHUNK = 65536
_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------
# validation and chunked reading
# --------------------------------------------------------------------------------------


def _as_real_array(a, name):
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a real numeric array, got dtype object") from exc
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def _check_features(X, name="X"):
    arr = _as_real_array(X, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, p); got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); need N >= 1 rows, p >= 1 columns")
    return arr


def _check_labels(y, n, name="y"):
    arr = y if isinstance(y, np.ndarray) else np.asarray(y)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must be an integer array of class labels, got dtype {arr.dtype}"
            " (cast with .astype(int) if the values are whole numbers)"
        )
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (N,); got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but X has {n} rows")
    return arr


def _resolve_n_classes(y, n_classes, name="y"):
    ymin, ymax = int(y.min()), int(y.max())
    if ymin < 0:
        raise ValueError(f"{name} contains the negative label {ymin}; labels must lie in [0, K)")
    if n_classes is None:
        return ymax + 1
    try:
        K = operator.index(n_classes)
    except TypeError as exc:
        raise TypeError(f"n_classes must be an int or None, got {n_classes!r}") from exc
    if K < 1:
        raise ValueError(f"n_classes must be >= 1, got {K}")
    if ymax >= K:
        raise ValueError(f"{name} contains the label {ymax}, out of range for n_classes={K}")
    return K


def _check_head(head, p):
    if head is None:
        return None
    H = _as_real_array(head, "head")
    if H.ndim != 2:
        raise ValueError(f"head must be a 2-D array of shape (K, p); got shape {H.shape}")
    if H.shape[1] != p or H.shape[0] == 0:
        raise ValueError(f"head must have shape (K, p) with p = {p} (X's columns); got {H.shape}")
    H = np.array(H, dtype=np.float64)
    if not np.isfinite(H).all():
        raise ValueError("head contains non-finite values (NaN or inf)")
    return H


def _n_logit_columns(p, H, n_classes):
    """Number of logit columns; check it against ``n_classes`` when that is given."""
    K = p if H is None else H.shape[0]
    if n_classes is not None:
        try:
            nk = operator.index(n_classes)
        except TypeError as exc:
            raise TypeError(f"n_classes must be an int or None, got {n_classes!r}") from exc
        if nk != K:
            what = "head has" if H is not None else "X (used as logits, no head) has"
            raise ValueError(f"n_classes={nk} but {what} {K} logit columns")
    return K


def _check_chunk(chunk):
    c = operator.index(chunk)
    if c < 1:
        raise ValueError(f"_chunk must be >= 1, got {c}")
    return c


def _rows(X, start, stop, name="X"):
    """Rows ``start:stop`` of ``X`` as a fresh native float64 array (validated finite).

    Always a copy, so callers may modify it without touching the caller's data.
    """
    block = np.array(X[start:stop], dtype=np.float64, order="C", copy=True)
    if X.dtype.kind == "f" and not np.isfinite(block).all():
        bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
        raise ValueError(f"{name} contains non-finite values (NaN or inf), first in row {bad}")
    return block


def _labels(y, start, stop):
    return np.asarray(y[start:stop], dtype=np.intp)


def _spans(n, chunk):
    for s in range(0, n, chunk):
        yield s, min(s + chunk, n)


def _setup(X, y, n_classes):
    X = _check_features(X)
    y = _check_labels(y, X.shape[0])
    K = _resolve_n_classes(y, n_classes)
    return X, y, K


# --------------------------------------------------------------------------------------
# class means and second moments
# --------------------------------------------------------------------------------------


def _sums_counts(X, y, K, chunk):
    n, p = X.shape
    sums = np.zeros(K * p)
    counts = np.zeros(K, dtype=np.int64)
    cols = np.arange(p, dtype=np.intp)
    for s, e in _spans(n, chunk):
        Xc = _rows(X, s, e)
        yc = _labels(y, s, e)
        idx = (yc[:, None] * p + cols).ravel()
        sums += np.bincount(idx, weights=Xc.ravel(), minlength=K * p)
        counts += np.bincount(yc, minlength=K)
    return sums.reshape(K, p), counts


def _means_from_sums(sums, counts):
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    means[counts == 0] = np.nan
    return means


def _class_means(X, y, K, chunk):
    sums, counts = _sums_counts(X, y, K, chunk)
    return _means_from_sums(sums, counts)


def _within_scatter(X, y, means, chunk):
    n, p = X.shape
    S = np.zeros((p, p))
    for s, e in _spans(n, chunk):
        D = _rows(X, s, e)
        D -= means[_labels(y, s, e)]
        S += D.T @ D
    S /= n
    return 0.5 * (S + S.T)


def _present_means(means, name="class_means"):
    """Rows of ``means`` that are not all-NaN (empty classes dropped); validate the rest."""
    mu = _as_real_array(means, name)
    if mu.ndim != 2 or mu.shape[0] == 0 or mu.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array of shape (K, p); got {mu.shape}")
    mu = np.asarray(mu, dtype=np.float64)
    nan_rows = np.isnan(mu).all(axis=1)
    mu = mu[~nan_rows]
    if not np.isfinite(mu).all():
        raise ValueError(f"{name} has non-finite entries outside all-NaN (empty-class) rows")
    return mu, np.flatnonzero(~nan_rows)


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


def _sigma_b(mu):
    if mu.shape[0] < 2:
        return np.zeros((mu.shape[1], mu.shape[1]))
    R = _reduced_centred_means(mu)
    return (R.T @ R) / mu.shape[0]


def class_means(X, y, n_classes=None, *, _chunk=_CHUNK):
    """Per-class mean features.

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features, one row per sample.
    y : array_like of int, shape (N,)
        Labels in ``[0, K)``.
    n_classes : int, optional
        ``K``; default ``y.max() + 1``.

    Returns
    -------
    ndarray, shape (K, p)
        Row ``k`` is the mean of the rows of ``X`` with label ``k``. A class with no samples
        gets a row of NaN.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    >>> class_means(X, np.array([0, 0, 1]), n_classes=3)
    array([[ 1.,  0.],
           [ 0.,  4.],
           [nan, nan]])
    """
    X, y, K = _setup(X, y, n_classes)
    return _class_means(X, y, K, _check_chunk(_chunk))


def within_between(X, y, n_classes=None, *, _chunk=_CHUNK):
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
    X, y, K = _setup(X, y, n_classes)
    chunk = _check_chunk(_chunk)
    means = _class_means(X, y, K, chunk)
    sigma_w = _within_scatter(X, y, means, chunk)
    mu, _ = _present_means(means)
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
    mu, _ = _present_means(class_means)
    K, p = mu.shape
    sw = _as_real_array(sigma_w, "sigma_w")
    if sw.shape != (p, p):
        raise ValueError(f"sigma_w must have shape (p, p) = ({p}, {p}) to match class_means")
    sw = np.ascontiguousarray(sw, dtype=np.float64)  # layout-independent rounding (einsum)
    if not np.isfinite(sw).all():
        raise ValueError("sigma_w contains non-finite values (NaN or inf)")
    if K < 2:
        return math.nan
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


def nc1(X, y, n_classes=None, variant="pinv", *, rtol=None, _chunk=_CHUNK):
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
    X, y, K = _setup(X, y, n_classes)
    chunk = _check_chunk(_chunk)
    means = _class_means(X, y, K, chunk)
    sigma_w = _within_scatter(X, y, means, chunk)
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
    mu, _ = _present_means(class_means)
    K = mu.shape[0]
    keys = ("equinorm", "equiangularity", "etf_distance", "coherence")
    if K < 2:
        return dict.fromkeys(keys, math.nan)
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


def nc2(X, y, n_classes=None, *, _chunk=_CHUNK):
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
    X, y, K = _setup(X, y, n_classes)
    return nc2_from_means(_class_means(X, y, K, _check_chunk(_chunk)))


# --------------------------------------------------------------------------------------
# logits, loss, accuracy, NCC, NC4
# --------------------------------------------------------------------------------------


def _logits_of(Xc, H):
    return Xc if H is None else Xc @ H.T


def _need_logits(p, H):
    if H is None and p < 2:
        raise ValueError("X has a single column; logits need p == K >= 2 or a head (K, p)")


def _check_logit_labels(y, K):
    ymin, ymax = int(y.min()), int(y.max())
    if ymin < 0 or ymax >= K:
        bad = ymin if ymin < 0 else ymax
        raise ValueError(
            f"y contains the label {bad}, out of range for {K} logit columns"
            " (features are used as logits when head is None)"
        )


class _NCC:
    """Nearest-class-centre rule on the non-empty classes, shifted for accuracy."""

    def __init__(self, means, name="means"):
        mu, ids = _present_means(means, name)
        self.ids = ids
        self.shift = mu.mean(axis=0)
        self.mu = mu - self.shift
        self.sqn = np.einsum("ij,ij->i", self.mu, self.mu)

    def scores(self, Xc):
        """``|x - mu_k|^2 - |x|^2`` (shifted coordinates), shape (n, K_present)."""
        return self.sqn - 2.0 * ((Xc - self.shift) @ self.mu.T)

    def predict(self, Xc):
        return self.ids[np.argmin(self.scores(Xc), axis=1)]


def logits(X, head=None, *, _chunk=_CHUNK):
    """Logits of the features: ``X`` itself (no head) or ``X @ head.T``.

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features.
    head : array_like, shape (K, p), optional
        Fixed linear head. Without it the features are the logits (``K = p``).

    Returns
    -------
    ndarray, shape (N, K)
        float64 logits (a new array).

    Examples
    --------
    >>> import numpy as np
    >>> logits(np.array([[1.0, 2.0]]), head=np.array([[1.0, 0.0], [1.0, 1.0], [0.0, -1.0]]))
    array([[ 1.,  3., -2.]])
    """
    X = _check_features(X)
    H = _check_head(head, X.shape[1])
    chunk = _check_chunk(_chunk)
    n, p = X.shape
    out = np.empty((n, _n_logit_columns(p, H, None)))
    for s, e in _spans(n, chunk):
        out[s:e] = _logits_of(_rows(X, s, e), H)
    return out


def _scan(X, y, *, H=None, ncc=None, classes=None, want_logits=True, chunk=_CHUNK):
    """One streaming pass: loss sum and agreement counts."""
    n = X.shape[0]
    tot = {"loss": 0.0, "acc": 0, "clean": 0, "ncc": 0, "nc4": 0}
    for s, e in _spans(n, chunk):
        Xc = _rows(X, s, e)
        yc = _labels(y, s, e)
        am = None
        if want_logits:
            Z = _logits_of(Xc, H)
            zmax = Z.max(axis=1)
            lse = zmax + np.log(np.exp(Z - zmax[:, None]).sum(axis=1))
            tot["loss"] += float(np.sum(lse - Z[np.arange(e - s), yc]))
            am = np.argmax(Z, axis=1)
            tot["acc"] += int(np.count_nonzero(am == yc))
            if classes is not None:
                tot["clean"] += int(np.count_nonzero(am == _labels(classes, s, e)))
        if ncc is not None:
            pred = ncc.predict(Xc)
            tot["ncc"] += int(np.count_nonzero(pred == yc))
            if am is not None:
                tot["nc4"] += int(np.count_nonzero(pred == am))
    return tot


def _logit_setup(X, y, head, n_classes):
    X = _check_features(X)
    y = _check_labels(y, X.shape[0])
    H = _check_head(head, X.shape[1])
    _need_logits(X.shape[1], H)
    K = _n_logit_columns(X.shape[1], H, n_classes)
    _check_logit_labels(y, K)
    return X, y, H, K


def loss(X, y, head=None, *, _chunk=_CHUNK):
    """Mean softmax cross-entropy of the logits against the labels.

    ``mean_i [logsumexp(z_i) - z_{i, y_i}]`` with ``z = logits(X, head)``, evaluated with the
    max-shifted log-sum-exp so it is finite for any finite logits.

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features (logits if ``head`` is None).
    y : array_like of int, shape (N,)
        Labels in ``[0, K)``.
    head : array_like, shape (K, p), optional
        Fixed linear head.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> round(loss(np.zeros((2, 4)), np.array([0, 3])), 6)  # uniform: log K
    1.386294
    >>> loss(np.array([[1000.0, 0.0]]), np.array([1]))
    1000.0
    """
    X, y, H, _ = _logit_setup(X, y, head, None)
    tot = _scan(X, y, H=H, chunk=_check_chunk(_chunk))
    return tot["loss"] / X.shape[0]


def accuracy(X, y, head=None, *, _chunk=_CHUNK):
    """Fraction of samples with ``argmax(logits) == y`` (ties go to the lowest index).

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features (logits if ``head`` is None).
    y : array_like of int, shape (N,)
        Labels (training labels, or true classes for the clean accuracy).
    head : array_like, shape (K, p), optional
        Fixed linear head.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> accuracy(np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 4.0]]), np.array([0, 1, 1]))
    0.6666666666666666
    """
    X, y, H, _ = _logit_setup(X, y, head, None)
    tot = _scan(X, y, H=H, chunk=_check_chunk(_chunk))
    return tot["acc"] / X.shape[0]


def ncc_predict(X, means, *, _chunk=_CHUNK):
    """Nearest-class-centre (Euclidean) decision for every row of ``X``.

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features.
    means : array_like, shape (K, p)
        Class centres; all-NaN rows (empty classes) are never predicted. Ties go to the
        lowest class index.

    Returns
    -------
    ndarray of intp, shape (N,)
        Class index in ``[0, K)``.

    Examples
    --------
    >>> import numpy as np
    >>> ncc_predict(np.array([[0.9, 0.0], [0.0, 2.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    array([0, 1])
    """
    X = _check_features(X)
    mu = _as_real_array(means, "means")
    if mu.ndim != 2 or mu.shape[1] != X.shape[1]:
        raise ValueError(f"means must have shape (K, {X.shape[1]}); got {mu.shape}")
    rule = _NCC(mu, "means")
    if rule.ids.size == 0:
        raise ValueError("means has no finite row (every class is empty)")
    chunk = _check_chunk(_chunk)
    n = X.shape[0]
    out = np.empty(n, dtype=np.intp)
    for s, e in _spans(n, chunk):
        out[s:e] = rule.predict(_rows(X, s, e))
    return out


def ncc_accuracy(X, y, n_classes=None, *, _chunk=_CHUNK):
    """Fraction of samples whose nearest class mean (Euclidean) is their own label's mean.

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features.
    y : array_like of int, shape (N,)
        Labels in ``[0, K)``; the class means are computed from them.
    n_classes : int, optional
        ``K``; default ``y.max() + 1``.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.2], [1.0], [0.3]])
    >>> ncc_accuracy(X, np.array([0, 0, 1, 1]))  # means 0.1 and 0.65: 0.3 is nearer 0.1
    0.75
    """
    X, y, K = _setup(X, y, n_classes)
    chunk = _check_chunk(_chunk)
    rule = _NCC(_class_means(X, y, K, chunk))
    tot = _scan(X, y, ncc=rule, want_logits=False, chunk=chunk)
    return tot["ncc"] / X.shape[0]


def nc4(X, y, head=None, n_classes=None, *, _chunk=_CHUNK):
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
    X, y, H, K = _logit_setup(X, y, head, n_classes)
    chunk = _check_chunk(_chunk)
    rule = _NCC(_class_means(X, y, K, chunk))
    tot = _scan(X, y, H=H, ncc=rule, chunk=chunk)
    return tot["nc4"] / X.shape[0]


# --------------------------------------------------------------------------------------
# separability
# --------------------------------------------------------------------------------------

_SEP_METHODS = ("ncc", "lp", "argmax")


@dataclass(frozen=True)
class SeparabilityResult:
    """Outcome of :func:`separable`.

    Attributes
    ----------
    separable : bool
        The verdict of the method (see ``certain``).
    method : str
        ``"ncc"``, ``"lp"`` or ``"argmax"``.
    certain : bool
        Whether the verdict is proved for the full data set: a negative NCC result, or a
        feasible LP on a subsample, is not a proof.
    n_used : int
        Number of samples the verdict covers (``"lp"``: the subsample size when only a
        subsample was decided; the message also says how many entered the LP itself).
    subsampled : bool
        Whether the verdict covers only a subsample (``n_used < N``).
    margin : float
        ``"ncc"``: smallest signed distance of a sample to the bisecting hyperplane between
        its class mean and another class mean (feature units; > 0 iff NCC is error-free).
        ``"argmax"``: smallest ``z_{y} - max_{k != y} z_k`` over samples (logit units).
        ``"lp"``: geometric margin achieved by the LP's witness ``(W, b)`` on the samples
        covered (a lower bound of the best margin; NaN when not separable).
    error_rate : float
        ``"ncc"``/``"argmax"``: fraction of samples with margin <= 0 (NaN for ``"lp"``).
    message : str
        Human-readable explanation of the verdict and its caveats.

    Examples
    --------
    >>> r = SeparabilityResult(True, "ncc", True, 10, False, 0.5, 0.0, "ok")
    >>> r.separable, r.method
    (True, 'ncc')
    """

    separable: bool
    method: str
    certain: bool
    n_used: int
    subsampled: bool
    margin: float = math.nan
    error_rate: float = math.nan
    message: str = ""


def _stratified_subsample(y, K, m, seed):
    """Sorted indices of a seeded, stratified sample of ``m`` rows (largest remainders)."""
    counts = np.bincount(np.asarray(y, dtype=np.intp), minlength=K)
    n = int(counts.sum())
    quota = counts * (m / n)
    take = np.floor(quota).astype(np.int64)
    present = counts > 0
    take[present] = np.maximum(take[present], 1)  # every present class is represented
    short = m - int(take.sum())
    if short > 0:
        order = np.argsort(-(quota - np.floor(quota)), kind="stable")
        for k in order:
            if short == 0:
                break
            if take[k] < counts[k]:
                take[k] += 1
                short -= 1
    rng = np.random.default_rng(seed)
    parts = []
    for k in np.flatnonzero(take):
        idx = np.flatnonzero(y == k)
        parts.append(rng.choice(idx, size=int(min(take[k], idx.size)), replace=False))
    return np.sort(np.concatenate(parts))


class _Witness:
    """A linear classifier ``(W, b)`` found by the LP, in standardised coordinates."""

    def __init__(self, W, b, centre, scale, classes):
        self.W, self.b, self.centre, self.scale = W, b, centre, scale
        self.classes = classes  # original class ids of the rows of W
        W_orig = W / scale
        self.dist = np.linalg.norm(W_orig[:, None, :] - W_orig[None, :, :], axis=2)

    def margins(self, Xc, yl):
        """Per row: score margin ``s_y - max_{k != y} s_k`` and geometric margin."""
        S = ((Xc - self.centre) / self.scale) @ self.W.T + self.b
        rows = np.arange(S.shape[0])
        own = S[rows, yl]
        S[rows, yl] = -np.inf
        score = own - S.max(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            geo = (own[:, None] - S) / self.dist[yl]
        geo[rows, yl] = np.inf
        return score, np.where(np.isnan(geo), -np.inf, geo).min(axis=1)


def _solve_separation_lp(Z, yl, m):
    """HiGHS feasibility LP: ``(w_y - w_k).z_i + (b_y - b_k) >= 1`` for all i, k != y_i.

    Returns ``(status, W, b, message)`` (status 0: feasible, 2: infeasible).
    """
    from scipy import sparse
    from scipy.optimize import linprog

    n, p = Z.shape
    mp = m * p
    # Written as (w_k - w_y).z_i + (b_k - b_y) <= -1. Variables: W row-major (m*p), b (m).
    others = np.broadcast_to(np.arange(m), (n, m))
    k_idx = others[others != yl[:, None]]
    i_idx = np.repeat(np.arange(n), m - 1)
    y_idx = yl[i_idx]
    r = np.arange(i_idx.size)
    cols_p = np.arange(p)
    Zi = Z[i_idx].ravel()
    rows = np.concatenate([np.repeat(r, p), np.repeat(r, p), r, r])
    cols = np.concatenate(
        [
            (k_idx[:, None] * p + cols_p).ravel(),
            (y_idx[:, None] * p + cols_p).ravel(),
            mp + k_idx,
            mp + y_idx,
        ]
    )
    vals = np.concatenate([Zi, -Zi, np.ones(r.size), -np.ones(r.size)])
    A = sparse.csr_matrix((vals, (rows, cols)), shape=(r.size, mp + m))
    b_ub = -np.ones(r.size)
    # HiGHS interior point (with crossover) is several times faster than simplex on these
    # tall LPs; on numerical trouble (neither optimal nor infeasible) retry with simplex.
    for method in ("highs-ipm", "highs-ds"):
        res = linprog(np.zeros(mp + m), A_ub=A, b_ub=b_ub, bounds=(None, None), method=method)
        if res.status in (0, 2):
            break
    if res.status != 0:
        return res.status, None, None, res.message
    return 0, res.x[:mp].reshape(m, p), res.x[mp:], res.message


def _cheap_witnesses(Z, yl, m):
    """Candidate separators that cost no LP: nearest class centre and least squares."""
    n, p = Z.shape
    counts = np.bincount(yl, minlength=m)
    mu = np.zeros((m, p))
    np.add.at(mu, yl, Z)
    mu /= counts[:, None]
    yield mu, -0.5 * np.einsum("ij,ij->i", mu, mu)
    Y = np.full((n, m), -1.0)
    Y[np.arange(n), yl] = 1.0
    theta = np.linalg.lstsq(np.c_[Z, np.ones(n)], Y, rcond=None)[0]
    yield theta[:p].T.copy(), theta[p].copy()


def _lp_separable(Xs, ys, seed, start=500, max_rounds=30):
    """Linear separability of the sample ``(Xs, ys)``.

    First the nearest-class-centre and least-squares classifiers are tried as witnesses
    (no LP). Otherwise the feasibility LP is solved with constraint generation: on a
    stratified subset plus the points the least-squares witness gets wrong, then adding
    the points the current LP witness misclassifies, until the witness separates the whole
    sample (separable) or the LP is infeasible (not separable, for this and any superset).

    Returns ``(separable, decided, witness_or_None, margin, n_lp, message)``.
    """
    present, yl = np.unique(ys, return_inverse=True)
    m = present.size
    n = Xs.shape[0]
    if m < 2:
        return True, True, None, math.inf, 0, "only one class present: trivially separable"
    # Affine standardisation (preserves separability with biases; conditions the LP).
    centre = Xs.mean(axis=0)
    scale = Xs.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (Xs - centre) / scale
    ls_bad = np.arange(0)
    for W, b in _cheap_witnesses(Z, yl, m):
        wit = _Witness(W, b, centre, scale, present)
        score, geo = wit.margins(Xs, yl)
        if np.all(score > 0):
            msg = "a nearest-centre or least-squares witness separates the sample (no LP needed)"
            return True, True, wit, float(geo.min()), 0, msg
        ls_bad = np.flatnonzero(score <= 0)
        ls_bad = ls_bad[np.argsort(score[ls_bad], kind="stable")][:start]
    if n <= start:
        work = np.arange(n)
    else:
        work = np.union1d(_stratified_subsample(yl, m, start, seed), ls_bad)
    for round_ in range(max_rounds + 1):
        if round_ == max_rounds:
            work = np.arange(n)  # too many rounds: the whole sample at once
        status, W, b, lp_msg = _solve_separation_lp(Z[work], yl[work], m)
        if status == 2:
            return False, True, None, math.nan, work.size, "the LP is infeasible"
        if status != 0:
            return False, False, None, math.nan, work.size, f"the LP did not decide ({lp_msg})"
        wit = _Witness(W, b, centre, scale, present)
        score, geo = wit.margins(Xs, yl)
        bad = np.flatnonzero(score <= 0)
        if bad.size == 0:
            return True, True, wit, float(geo.min()), work.size, "the LP is feasible"
        if work.size == n:  # numerically feasible but the witness fails the re-check
            msg = "the LP is feasible but its witness fails the float64 re-check"
            return True, False, wit, float(geo.min()), n, msg
        # add the points violating the LP constraint (margin < 1), most violated first:
        # more than just the misclassified ones, so that few rounds are needed
        viol = np.setdiff1d(np.flatnonzero(score < 1.0), work, assume_unique=True)
        work = np.union1d(work, viol[np.argsort(score[viol], kind="stable")][:start])
    raise AssertionError("unreachable")  # pragma: no cover


def separable(
    X, y, method="ncc", head=None, max_samples=20000, seed=0, *, n_classes=None, _chunk=_CHUNK
):
    """Decide whether the labelled point cloud is separable.

    Two readings of "separable" (MODEL.md section 3) are offered; report both:

    ``"ncc"``
        Nearest-class-centre rule on all ``N`` samples. The NCC rule is a linear classifier
        (``w_k = mu_k``, ``b_k = -|mu_k|^2 / 2``), so zero NCC error (every sample strictly
        nearer its own mean) certifies linear separability (``certain=True``). NCC errors do
        *not* prove non-separability: then ``separable=False, certain=False``.
    ``"lp"``
        Exact multi-class linear separability: feasibility of ``W (K x p)``, ``b (K)`` with
        ``(w_{y_i} - w_k) . x_i + (b_{y_i} - b_k) >= 1`` for all ``i`` and ``k != y_i``,
        solved by :func:`scipy.optimize.linprog` (HiGHS interior point, dual simplex as
        fallback) on standardised features. Above
        ``max_samples`` rows the LP only considers a seeded, stratified subsample. Within
        that sample, the nearest-class-centre and least-squares classifiers are first tried
        as witnesses (no LP needed when one separates the sample); otherwise constraints
        are generated lazily: the LP is solved on a stratified subset of 500 points plus
        the points least squares gets wrong, then every point the current LP witness
        misclassifies is added and the LP re-solved, until the witness separates the whole
        sample or the LP is infeasible. The LP has ``(K - 1)`` rows per point and
        ``K (p + 1)`` columns; its cost grows steeply with ``K p``, so lower
        ``max_samples`` for wide features (``K = 10, p = 10`` takes seconds at the
        default). Verdicts:
        an infeasible LP proves non-separability of the full set (``certain=True``, even
        when subsampled); a witness separating the sample proves separability of the
        sample; when subsampled, the witness is then checked on all ``N`` rows (streamed):
        if it separates them all the full set is certified separable (``n_used = N``,
        ``subsampled=False``), otherwise ``separable=True, certain=False, subsampled=True``
        and the message says that a separable subsample does not certify the full set.
    ``"argmax"``
        Training-loss reading: every ``argmax(logits) == y`` (zero training error of the
        given logits, so the loss can be driven to 0 by scaling). A positive answer also
        certifies linear separability; a negative one does not refute it (a different
        linear map may separate the classes).

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features.
    y : array_like of int, shape (N,)
        Labels in ``[0, K)``.
    method : {"ncc", "lp", "argmax"}
        See above.
    head : array_like, shape (K, p), optional
        Fixed linear head (``"argmax"`` only).
    max_samples : int
        Largest sample the ``"lp"`` method decides exactly.
    seed : int
        Seed of the ``"lp"`` subsamples.
    n_classes : int, optional
        ``K``; default ``y.max() + 1``.

    Returns
    -------
    SeparabilityResult

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])  # XOR
    >>> separable(X, np.array([0, 0, 1, 1]), method="lp").separable
    False
    >>> r = separable(X[:2] * [1.0, 0.0], np.array([0, 1]), method="ncc")
    >>> r.separable, r.certain, r.margin
    (True, True, 0.5)
    """
    if method not in _SEP_METHODS:
        raise ValueError(f"method must be one of {_SEP_METHODS}, got {method!r}")
    chunk = _check_chunk(_chunk)
    if method == "argmax":
        X, y, H, _ = _logit_setup(X, y, head, n_classes)
        n = X.shape[0]
        worst, errors = math.inf, 0
        for s, e in _spans(n, chunk):
            Z = _logits_of(_rows(X, s, e), H)
            yc = _labels(y, s, e)
            rows = np.arange(e - s)
            own = Z[rows, yc].copy()
            Z[rows, yc] = -np.inf
            mar = own - Z.max(axis=1)
            worst = min(worst, float(mar.min()))
            errors += int(np.count_nonzero(mar <= 0))
        ok = errors == 0
        msg = (
            "argmax of the logits equals the label for every sample (training error 0)"
            if ok
            else f"{errors} of {n} samples have argmax(logits) != label; this is the "
            "training-loss reading and does not rule out separability by another linear map"
        )
        return SeparabilityResult(ok, method, True, n, False, worst, errors / n, msg)

    X, y, K = _setup(X, y, n_classes)
    n = X.shape[0]
    if head is not None:
        raise ValueError(f"head is only used by method='argmax', not method={method!r}")
    if method == "ncc":
        rule = _NCC(_class_means(X, y, K, chunk))
        # |mu_y - mu_k| for the present classes
        dmu = np.linalg.norm(rule.mu[:, None, :] - rule.mu[None, :, :], axis=2)
        worst, errors = math.inf, 0
        for s, e in _spans(n, chunk):
            sc = rule.scores(_rows(X, s, e))  # |x - mu_k|^2 - |x|^2
            yl = _local_labels(_labels(y, s, e), rule.ids, K)
            rows = np.arange(e - s)
            diff = sc - sc[rows, yl][:, None]  # |x-mu_k|^2 - |x-mu_y|^2
            den = 2.0 * dmu[yl]
            with np.errstate(divide="ignore", invalid="ignore"):
                geo = np.where(den > 0, diff / den, 0.0)
            geo[rows, yl] = np.inf
            mar = geo.min(axis=1) if geo.shape[1] > 1 else np.full(e - s, np.inf)
            worst = min(worst, float(mar.min()))
            errors += int(np.count_nonzero(mar <= 0))
        ok = errors == 0
        if ok:
            msg = "nearest-class-centre rule has zero training error: linearly separable"
        else:
            msg = (
                f"nearest-class-centre rule misclassifies {errors} of {n} samples; this does "
                "not prove non-separability (use method='lp' for an exact answer)"
            )
        return SeparabilityResult(ok, method, ok, n, False, worst, errors / n, msg)

    # method == "lp"
    try:
        max_samples = operator.index(max_samples)
    except TypeError as exc:
        raise TypeError(f"max_samples must be an int, got {max_samples!r}") from exc
    if max_samples < 2:
        raise ValueError(f"max_samples must be >= 2, got {max_samples}")
    subsampled = n > max_samples
    if subsampled:
        idx = _stratified_subsample(y, K, max_samples, seed)
        Xs = np.asarray(X[idx], dtype=np.float64)
        ys = np.asarray(y[idx], dtype=np.intp)
    else:
        Xs = np.array(X, dtype=np.float64)
        ys = np.asarray(y, dtype=np.intp)
    if not np.isfinite(Xs).all():
        raise ValueError("X contains non-finite values (NaN or inf)")
    ok, decided, wit, margin, n_lp, msg = _lp_separable(Xs, ys, seed)
    what = f"{n_lp} of the {Xs.shape[0]} samples entered the LP"
    if not ok:
        if decided:
            msg += ": not linearly separable"
            if subsampled:
                msg += (
                    f" (LP on a stratified subsample of {Xs.shape[0]} of {n} samples, seed "
                    f"{seed}; a non-separable subsample proves the full set non-separable)"
                )
        return SeparabilityResult(False, method, decided, Xs.shape[0], subsampled, margin,
                                  math.nan, f"{msg}; {what}")  # fmt: skip
    if not subsampled or wit is None:
        msg += f": linearly separable; {what}"
        return SeparabilityResult(True, method, decided, n, False, margin, math.nan, msg)
    # A separable subsample: check its witness on all N samples (chunked).
    lut = np.full(K, -1, dtype=np.intp)
    lut[wit.classes] = np.arange(wit.classes.size)
    full_margin, failures = math.inf, 0
    for s, e in _spans(n, chunk):
        yl = lut[_labels(y, s, e)]
        unseen = yl < 0  # a class absent from the subsample: cannot be verified
        score, geo = wit.margins(_rows(X, s, e), np.where(unseen, 0, yl))
        bad = unseen | (score <= 0)
        failures += int(np.count_nonzero(bad))
        full_margin = min(full_margin, float(np.where(bad, -np.inf, geo).min()))
    if failures == 0:
        msg += (
            f": linearly separable; decided on a stratified subsample of {Xs.shape[0]} of "
            f"{n} samples (seed {seed}; {what}) and the witness separates all {n} samples"
        )
        return SeparabilityResult(True, method, decided, n, False, full_margin, math.nan, msg)
    msg += (
        f" on a stratified subsample of {Xs.shape[0]} of {n} samples (seed {seed}; {what}), "
        f"but its witness misclassifies {failures} of the {n} samples: a separable subsample "
        "does not certify the full set"
    )
    return SeparabilityResult(True, method, False, Xs.shape[0], True, margin, math.nan, msg)


def _local_labels(yc, ids, K):
    lut = np.full(K, -1, dtype=np.intp)
    lut[ids] = np.arange(ids.size)
    return lut[yc]


# --------------------------------------------------------------------------------------
# loss tail exponent
# --------------------------------------------------------------------------------------


def loss_tail_exponent(times, loss, tail=0.5):
    """Exponent ``r`` of a power-law loss tail, ``loss ~ t^-r``.

    Least-squares slope of ``-log(loss)`` against ``log(t)`` over the last ``tail``
    fraction (by count) of the points with ``t > 0``; within those, points whose loss is not
    finite and positive are skipped.

    Parameters
    ----------
    times : array_like, shape (T,)
        Recording times.
    loss : array_like, shape (T,)
        Loss at those times.
    tail : float in (0, 1]
        Fraction of the positive-time points, counted from the end, used for the fit.

    Returns
    -------
    float
        ``r``; NaN if fewer than two usable points (or all usable times are equal).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 100.0, 101)
    >>> round(loss_tail_exponent(t, 3.0 / (1.0 + t) ** 2, tail=0.3), 2)
    1.98
    """
    t = np.asarray(_as_real_array(times, "times"), dtype=np.float64)
    L = np.asarray(_as_real_array(loss, "loss"), dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"times must be a non-empty 1-D array; got shape {t.shape}")
    if L.shape != t.shape:
        raise ValueError(f"loss must have the shape of times {t.shape}; got {L.shape}")
    tail = float(tail)
    if not 0.0 < tail <= 1.0:
        raise ValueError(f"tail must lie in (0, 1], got {tail}")
    pos = np.flatnonzero(np.isfinite(t) & (t > 0))
    if pos.size == 0:
        return math.nan
    use = pos[pos.size - max(1, math.ceil(tail * pos.size)) :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = np.isfinite(L[use]) & (L[use] > 0)
    use = use[ok]
    if use.size < 2:
        return math.nan
    lt = np.log(t[use])
    if np.ptp(lt) == 0:
        return math.nan
    v = -np.log(L[use])
    lt_c = lt - lt.mean()
    return float(np.dot(lt_c, v - v.mean()) / np.dot(lt_c, lt_c))


# --------------------------------------------------------------------------------------
# summary and Papyan et al. names
# --------------------------------------------------------------------------------------

SUMMARY_KEYS = (
    "loss",
    "accuracy",
    "clean_accuracy",
    "ncc_accuracy",
    "nc1",
    "nc1_svd",
    "equinorm",
    "equiangularity",
    "etf_distance",
    "coherence",
    "nc4",
    "ncc_mismatch",
)

#: Papyan, Han & Donoho (PNAS 2020) measurement names -> lesde names.
#:
#: - ``"Sw_invSb"`` -> ``"nc1"``. Papyan et al. define ``Tr(Sigma_W Sigma_B^+)/C`` and compute
#:   ``Sigma_B^+`` from the top ``C - 1`` eigenpairs (``svds(Sb, k=C-1)``): our ``"svd"``
#:   variant, reported by :func:`summary` as ``"nc1_svd"``. It equals ``"nc1"`` (pinv
#:   variant) whenever ``Sigma_B`` has rank ``K - 1``. Some circulating versions of their
#:   measurement code omit the ``1/C``; their numbers are ``K`` times ours.
#: - ``"norm_M_CoV"`` -> ``"equinorm"`` (theirs uses the sample std, ``ddof=1``: multiply
#:   ours by ``sqrt(K/(K-1))``).
#: - ``"cos_M"`` -> ``"coherence"``: their ``cos_M`` is the mutual coherence
#:   ``mean_{k != k'} |cos + 1/(K-1)|``, not the std of the cosines (``"equiangularity"``).
#: - ``"NCC_mismatch"`` -> ``"ncc_mismatch"`` = ``1 - nc4``.
#: - ``"accuracy"`` and ``"loss"`` map to themselves (training accuracy and loss).
PAPYAN_ALIASES = {
    "Sw_invSb": "nc1",
    "norm_M_CoV": "equinorm",
    "cos_M": "coherence",
    "NCC_mismatch": "ncc_mismatch",
    "accuracy": "accuracy",
    "loss": "loss",
}

_PAPYAN_NOT_COMPUTED = {
    "norm_W_CoV": "classifier-weight equinorm (NC2 for W)",
    "cos_W": "classifier-weight coherence (NC2 for W)",
    "W_M_dist": "self-duality distance between W and M (NC3)",
    "reg_loss": "loss with weight decay",
}


def canonical_name(name):
    """Map a metric name or a Papyan et al. alias to the key used by :func:`summary`.

    Matching is exact first, then case-insensitive (``"NC1"`` -> ``"nc1"``).

    Papyan, Han & Donoho (PNAS 2020) names (:data:`PAPYAN_ALIASES`):

    - ``"Sw_invSb"`` -> ``"nc1"``: ``Tr(Sigma_W Sigma_B^+)/K``. Papyan et al. form
      ``Sigma_B^+`` from the top ``K - 1`` eigenpairs (``svds(Sb, k=C-1)``), i.e. our
      ``variant="svd"`` (:func:`summary` key ``"nc1_svd"``); ``"nc1"`` uses the
      pseudo-inverse (``variant="pinv"``). The two agree whenever ``Sigma_B`` has rank
      ``K - 1`` (generic for ``p >= K - 1``). Versions of their code without the ``1/C``
      give ``K`` times our value.
    - ``"norm_M_CoV"`` -> ``"equinorm"``; theirs uses the sample std (``ddof=1``), equal
      to ours times ``sqrt(K/(K-1))``.
    - ``"cos_M"`` -> ``"coherence"`` (``mean |cos + 1/(K-1)|`` over pairs), not
      ``"equiangularity"`` (the std of the cosines).
    - ``"NCC_mismatch"`` -> ``"ncc_mismatch"`` (``1 - nc4``).
    - ``"accuracy"``, ``"loss"`` -> themselves.

    Parameters
    ----------
    name : str
        A key of :func:`summary` or of :data:`PAPYAN_ALIASES`.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For an unknown name, with a "did you mean" hint; also for Papyan et al. metrics of
        the classifier weights, which lesde does not compute.

    Examples
    --------
    >>> canonical_name("Sw_invSb"), canonical_name("NCC_mismatch"), canonical_name("NC1")
    ('nc1', 'ncc_mismatch', 'nc1')
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name in SUMMARY_KEYS:
        return name
    if name in PAPYAN_ALIASES:
        return PAPYAN_ALIASES[name]
    lower = {k.lower(): k for k in SUMMARY_KEYS}
    lower.update({k.lower(): v for k, v in PAPYAN_ALIASES.items()})
    if name.lower() in lower:
        return lower[name.lower()]
    if name in _PAPYAN_NOT_COMPUTED:
        raise ValueError(
            f"{name!r} is Papyan et al.'s {_PAPYAN_NOT_COMPUTED[name]}, which lesde does not "
            "compute (it needs trained classifier weights)"
        )
    known = list(SUMMARY_KEYS) + list(PAPYAN_ALIASES)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown metric name {name!r}{hint} (known: {', '.join(known)})")


def summary(X, y, head=None, classes=None, n_classes=None, *, _chunk=_CHUNK):
    """All metrics of one feature snapshot, in one dict of floats.

    Keys: ``"loss"``, ``"accuracy"``, ``"clean_accuracy"`` (only if ``classes`` is given),
    ``"ncc_accuracy"``, ``"nc1"`` (pinv variant), ``"nc1_svd"`` (Papyan's variant),
    ``"equinorm"``, ``"equiangularity"``, ``"etf_distance"``, ``"coherence"``, ``"nc4"``,
    ``"ncc_mismatch"`` (``1 - nc4``). The data are read in three streaming passes.

    When ``head`` is None and ``p`` differs from ``K``, the features are not logits: the
    logit-based entries (loss, accuracy, clean_accuracy, nc4, ncc_mismatch) are NaN. (Pass
    ``n_classes`` when the last classes may have no sample, so that ``K`` is not
    under-counted from ``y.max() + 1``.)

    Parameters
    ----------
    X : array_like, shape (N, p)
        Features.
    y : array_like of int, shape (N,)
        Training labels in ``[0, K)``; they group the samples for the NC metrics.
    head : array_like, shape (K, p), optional
        Fixed linear head producing the logits.
    classes : array_like of int, shape (N,), optional
        True classes, for the clean accuracy.
    n_classes : int, optional
        ``K``; default: ``head.shape[0]`` when a head is given, else ``y.max() + 1``.

    Returns
    -------
    dict

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[3.0, 0.0], [2.0, 0.5], [0.0, 3.0], [0.5, 2.0]])
    >>> s = summary(X, np.array([0, 0, 1, 1]), classes=np.array([0, 1, 1, 1]))
    >>> s["accuracy"], s["clean_accuracy"], s["nc4"]
    (1.0, 0.75, 1.0)
    """
    X = _check_features(X)
    n, p = X.shape
    y = _check_labels(y, n)
    H = _check_head(head, p)
    chunk = _check_chunk(_chunk)
    if classes is not None:
        classes = _check_labels(classes, n, name="classes")
    if H is not None:
        K = _resolve_n_classes(y, H.shape[0] if n_classes is None else n_classes)
        _n_logit_columns(p, H, K)
    else:
        K = _resolve_n_classes(y, n_classes)
    has_logits = H is not None or (p == K and p >= 2)
    if has_logits and classes is not None:
        _check_logit_labels(classes, K)
    means = _class_means(X, y, K, chunk)
    sigma_w = _within_scatter(X, y, means, chunk)
    tot = _scan(X, y, H=H, ncc=_NCC(means), classes=classes, want_logits=has_logits, chunk=chunk)
    nan = math.nan
    out = {
        "loss": tot["loss"] / n if has_logits else nan,
        "accuracy": tot["acc"] / n if has_logits else nan,
    }
    if classes is not None:
        out["clean_accuracy"] = tot["clean"] / n if has_logits else nan
    out["ncc_accuracy"] = tot["ncc"] / n
    out["nc1"] = nc1_from_moments(sigma_w, means, variant="pinv")
    out["nc1_svd"] = nc1_from_moments(sigma_w, means, variant="svd")
    out.update(nc2_from_means(means))
    out["nc4"] = tot["nc4"] / n if has_logits else nan
    out["ncc_mismatch"] = 1.0 - out["nc4"]
    return out
