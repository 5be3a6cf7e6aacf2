"""Internal: chunked passes over a feature matrix (the input checks are
:mod:`lesde.validate`'s, re-exported here for the metric modules).

Not part of lesde's API (users call :mod:`lesde.metrics`); the names are public only so
that :mod:`lesde.metrics`, :mod:`lesde.metrics.neural_collapse` and
:mod:`lesde.metrics.separability` can share them, and they may change without notice.

Every pass reads ``X`` (``N x p``) in blocks of ``chunk`` rows (:data:`CHUNK` by default),
each converted to native float64 on the fly (:func:`rows`), so ``N = 10^7`` rows never
create an ``N x p`` temporary. Inputs may be non-contiguous, read-only, memory-mapped,
float32 or non-native-endian; they are never modified.

Examples
--------
>>> import numpy as np
>>> from lesde.metrics import chunked
>>> X, y, K = chunked.features_and_labels(np.eye(3), np.array([0, 1, 1]), None)
>>> chunked.class_means(X, y, K, chunk=2)
array([[1. , 0. , 0. ],
       [0. , 0.5, 0.5]])
"""

from __future__ import annotations

import numpy as np

from ..validate import (
    as_real_array,
    check_chunk,
    check_features,
    check_head,
    check_labels,
    check_logit_labels,
    n_logit_columns,
    resolve_n_classes,
)

__all__ = [
    "CHUNK",
    "NearestCentre",
    "as_real_array",
    "check_chunk",
    "check_features",
    "check_head",
    "check_labels",
    "check_logit_labels",
    "class_means",
    "features_and_labels",
    "labels",
    "logit_inputs",
    "logits_of",
    "n_logit_columns",
    "present_means",
    "resolve_n_classes",
    "rows",
    "scan",
    "spans",
    "within_scatter",
]

#: Rows read per block: 65536 x p float64 stays a few MiB for the widths lesde simulates.
CHUNK = 65536


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------


def features_and_labels(X, y, n_classes):
    """Checked ``(X, y, K)`` for metrics that group features by label.

    >>> features_and_labels(np.zeros((2, 3)), [0, 1], None)[2]
    2
    """
    X = check_features(X)
    y = check_labels(y, X.shape[0])
    K = resolve_n_classes(y, n_classes)
    return X, y, K


def logit_inputs(X, y, head, n_classes):
    """Checked ``(X, y, H, K)`` for metrics of the logits (``X`` itself, or ``X @ H.T``).

    >>> logit_inputs(np.zeros((2, 3)), [0, 2], None, None)[3]
    3
    """
    X = check_features(X)
    y = check_labels(y, X.shape[0])
    H = check_head(head, X.shape[1])
    if H is None and X.shape[1] < 2:
        raise ValueError("X has a single column; logits need p == K >= 2 or a head (K, p)")
    K = n_logit_columns(X.shape[1], H, n_classes)
    check_logit_labels(y, K)
    return X, y, H, K


def present_means(means, name="class_means"):
    """Rows of ``means`` that are not all-NaN (empty classes dropped), and their class ids.

    The remaining rows are validated finite.

    >>> mu, ids = present_means([[1.0, 2.0], [np.nan, np.nan], [3.0, 4.0]])
    >>> ids
    array([0, 2])
    """
    mu = as_real_array(means, name)
    if mu.ndim != 2 or mu.shape[0] == 0 or mu.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array of shape (K, p); got {mu.shape}")
    mu = np.asarray(mu, dtype=np.float64)
    nan_rows = np.isnan(mu).all(axis=1)
    mu = mu[~nan_rows]
    if not np.isfinite(mu).all():
        raise ValueError(f"{name} has non-finite entries outside all-NaN (empty-class) rows")
    return mu, np.flatnonzero(~nan_rows)


# --------------------------------------------------------------------------------------
# reading in chunks
# --------------------------------------------------------------------------------------


def spans(n, chunk):
    """``(start, stop)`` of consecutive blocks of at most ``chunk`` rows out of ``n``.

    >>> list(spans(5, 2))
    [(0, 2), (2, 4), (4, 5)]
    """
    for s in range(0, n, chunk):
        yield s, min(s + chunk, n)


def rows(X, start, stop, name="X"):
    """Rows ``start:stop`` of ``X`` as a fresh native float64 array (validated finite).

    Always a copy, so callers may modify it without touching the caller's data.

    >>> rows(np.arange(6, dtype=np.float32).reshape(3, 2), 1, 3)
    array([[2., 3.],
           [4., 5.]])
    """
    block = np.array(X[start:stop], dtype=np.float64, order="C", copy=True)
    if X.dtype.kind == "f" and not np.isfinite(block).all():
        bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
        raise ValueError(f"{name} contains non-finite values (NaN or inf), first in row {bad}")
    return block


def labels(y, start, stop):
    """Labels ``start:stop`` as an index array.

    >>> labels(np.array([3, 1, 2], dtype=np.uint8), 0, 2)
    array([3, 1])
    """
    return np.asarray(y[start:stop], dtype=np.intp)


def logits_of(Xc, H):
    """The logits of a block of rows: the rows themselves, or ``Xc @ H.T`` with a head.

    >>> logits_of(np.array([[1.0, 2.0]]), np.array([[0.0, 1.0]]))
    array([[2.]])
    """
    return Xc if H is None else Xc @ H.T


# --------------------------------------------------------------------------------------
# the passes
# --------------------------------------------------------------------------------------


def class_means(X, y, K, chunk):
    """Per-class means ``(K, p)`` in one pass; an empty class gets a row of NaN.

    >>> class_means(np.array([[1.0], [3.0]]), np.array([0, 0]), 2, chunk=1)
    array([[ 2.],
           [nan]])
    """
    n, p = X.shape
    sums = np.zeros(K * p)
    counts = np.zeros(K, dtype=np.int64)
    cols = np.arange(p, dtype=np.intp)
    for s, e in spans(n, chunk):
        Xc = rows(X, s, e)
        yc = labels(y, s, e)
        idx = (yc[:, None] * p + cols).ravel()
        sums += np.bincount(idx, weights=Xc.ravel(), minlength=K * p)
        counts += np.bincount(yc, minlength=K)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums.reshape(K, p) / counts[:, None]
    means[counts == 0] = np.nan
    return means


def within_scatter(X, y, means, chunk):
    """``Sigma_W = (1/N) sum_i (x_i - mu_{y_i})(x_i - mu_{y_i})^T`` from centred rows.

    Accumulated from rows already centred (the second pass after :func:`class_means`),
    never as ``E[x x^T] - mu mu^T``, which cancels catastrophically for large offsets.

    >>> X = np.array([[0.0], [2.0]])
    >>> within_scatter(X, np.array([0, 0]), np.array([[1.0]]), chunk=1)
    array([[1.]])
    """
    n, p = X.shape
    S = np.zeros((p, p))
    for s, e in spans(n, chunk):
        D = rows(X, s, e)
        D -= means[labels(y, s, e)]
        S += D.T @ D
    S /= n
    return 0.5 * (S + S.T)


class NearestCentre:
    """Nearest-class-centre rule on the non-empty classes of ``means``.

    The centres are stored relative to their average, which keeps ``|x - mu_k|^2`` accurate
    when every feature carries a large common offset.

    >>> rule = NearestCentre(np.array([[0.0, 0.0], [np.nan, np.nan], [4.0, 0.0]]))
    >>> rule.predict(np.array([[1.0, 0.0], [3.0, 1.0]]))
    array([0, 2])
    """

    def __init__(self, means, name="means"):
        mu, ids = present_means(means, name)
        self.ids = ids
        self.shift = mu.mean(axis=0)
        self.mu = mu - self.shift
        self.sqn = np.einsum("ij,ij->i", self.mu, self.mu)

    def scores(self, Xc):
        """``|x - mu_k|^2 - |x|^2`` (shifted coordinates), shape (n, K_present).

        >>> NearestCentre(np.array([[-1.0], [1.0]])).scores(np.array([[0.5]]))
        array([[2., 0.]])
        """
        return self.sqn - 2.0 * ((Xc - self.shift) @ self.mu.T)

    def predict(self, Xc):
        """The class id of the nearest centre of every row (ties: the lowest id).

        >>> NearestCentre(np.array([[-1.0], [1.0]])).predict(np.array([[0.0], [0.5]]))
        array([0, 1])
        """
        return self.ids[np.argmin(self.scores(Xc), axis=1)]


def scan(X, y, *, H=None, ncc=None, classes=None, want_logits=True, chunk=CHUNK):
    """One pass: the summed loss and the agreement counts of the logits and the NCC rule.

    Returns a dict: ``"loss"`` (sum of cross-entropies), ``"acc"`` (argmax == y),
    ``"clean"`` (argmax == classes), ``"ncc"`` (NCC == y) and ``"nc4"`` (NCC == argmax).

    >>> X, y = np.array([[2.0, 0.0], [0.0, 2.0]]), np.array([0, 0])
    >>> scan(X, y, ncc=NearestCentre(X))["acc"]
    1
    """
    n = X.shape[0]
    tot = {"loss": 0.0, "acc": 0, "clean": 0, "ncc": 0, "nc4": 0}
    for s, e in spans(n, chunk):
        Xc = rows(X, s, e)
        yc = labels(y, s, e)
        am = None
        if want_logits:
            Z = logits_of(Xc, H)
            zmax = Z.max(axis=1)
            lse = zmax + np.log(np.exp(Z - zmax[:, None]).sum(axis=1))
            tot["loss"] += float(np.sum(lse - Z[np.arange(e - s), yc]))
            am = np.argmax(Z, axis=1)
            tot["acc"] += int(np.count_nonzero(am == yc))
            if classes is not None:
                tot["clean"] += int(np.count_nonzero(am == labels(classes, s, e)))
        if ncc is not None:
            pred = ncc.predict(Xc)
            tot["ncc"] += int(np.count_nonzero(pred == yc))
            if am is not None:
                tot["nc4"] += int(np.count_nonzero(pred == am))
    return tot
