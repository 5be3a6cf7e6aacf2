"""Metrics of a feature cloud: loss, accuracy, neural collapse (NC1, NC2, NC4), separability.

All functions take features ``X`` of shape ``(N, p)`` (one row per training sample) and
integer labels ``y`` of shape ``(N,)`` with values in ``[0, K)``. The number of classes ``K``
comes from ``n_classes`` (default ``y.max() + 1``) or, for metrics that need logits, from
the number of logit columns. Logits are ``X`` itself when the features are logits
(``p == K``, no head) or ``X @ head.T`` for a fixed head matrix ``head`` of shape ``(K, p)``.

Definitions (docs/model.md, section 4). With class means ``mu_k``, the *unweighted* global mean
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

Where things live. This module is the one to import: it defines the loss, accuracies,
nearest-class-centre metrics, :func:`summary` and the metric names, and re-exports the
neural-collapse metrics (:func:`within_between`, :func:`nc1`, :func:`nc1_from_moments`,
:func:`nc2`, :func:`nc2_from_means`, :func:`nc4`) from :mod:`lesde.metrics.neural_collapse` and
:func:`separable` / :class:`SeparabilityResult` from :mod:`lesde.metrics.separability`. The input
checks and chunked passes they share are in :mod:`lesde.metrics.chunked` (internal).

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
import math

import numpy as np

from . import chunked

# Re-exported: the neural-collapse metrics and separability live in their own modules, but
# lesde.metrics is where users find every metric (lesde.metrics.nc1 is neural_collapse.nc1).
from .neural_collapse import nc1, nc1_from_moments, nc2, nc2_from_means, nc4, within_between
from .separability import SeparabilityResult, separable

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


# --------------------------------------------------------------------------------------
# class means, logits, loss, accuracy, nearest class centre
# --------------------------------------------------------------------------------------


def class_means(X, y, n_classes=None, *, _chunk=chunked.CHUNK):
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
    X, y, K = chunked.features_and_labels(X, y, n_classes)
    return chunked.class_means(X, y, K, chunked.check_chunk(_chunk))


def logits(X, head=None, *, _chunk=chunked.CHUNK):
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
    X = chunked.check_features(X)
    H = chunked.check_head(head, X.shape[1])
    chunk = chunked.check_chunk(_chunk)
    n, p = X.shape
    out = np.empty((n, chunked.n_logit_columns(p, H, None)))
    for s, e in chunked.spans(n, chunk):
        out[s:e] = chunked.logits_of(chunked.rows(X, s, e), H)
    return out


def loss(X, y, head=None, *, _chunk=chunked.CHUNK):
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
    X, y, H, _ = chunked.logit_inputs(X, y, head, None)
    tot = chunked.scan(X, y, H=H, chunk=chunked.check_chunk(_chunk))
    return tot["loss"] / X.shape[0]


def accuracy(X, y, head=None, *, _chunk=chunked.CHUNK):
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
    X, y, H, _ = chunked.logit_inputs(X, y, head, None)
    tot = chunked.scan(X, y, H=H, chunk=chunked.check_chunk(_chunk))
    return tot["acc"] / X.shape[0]


def ncc_predict(X, means, *, _chunk=chunked.CHUNK):
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
    X = chunked.check_features(X)
    mu = chunked.as_real_array(means, "means")
    if mu.ndim != 2 or mu.shape[1] != X.shape[1]:
        raise ValueError(f"means must have shape (K, {X.shape[1]}); got {mu.shape}")
    rule = chunked.NearestCentre(mu, "means")
    if rule.ids.size == 0:
        raise ValueError("means has no finite row (every class is empty)")
    chunk = chunked.check_chunk(_chunk)
    n = X.shape[0]
    out = np.empty(n, dtype=np.intp)
    for s, e in chunked.spans(n, chunk):
        out[s:e] = rule.predict(chunked.rows(X, s, e))
    return out


def ncc_accuracy(X, y, n_classes=None, *, _chunk=chunked.CHUNK):
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
    X, y, K = chunked.features_and_labels(X, y, n_classes)
    chunk = chunked.check_chunk(_chunk)
    rule = chunked.NearestCentre(chunked.class_means(X, y, K, chunk))
    tot = chunked.scan(X, y, ncc=rule, want_logits=False, chunk=chunk)
    return tot["ncc"] / X.shape[0]


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
    t = np.asarray(chunked.as_real_array(times, "times"), dtype=np.float64)
    L = np.asarray(chunked.as_real_array(loss, "loss"), dtype=np.float64)
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


def summary(X, y, head=None, classes=None, n_classes=None, *, _chunk=chunked.CHUNK):
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
    X = chunked.check_features(X)
    n, p = X.shape
    y = chunked.check_labels(y, n)
    H = chunked.check_head(head, p)
    chunk = chunked.check_chunk(_chunk)
    if classes is not None:
        classes = chunked.check_labels(classes, n, name="classes")
    if H is not None:
        K = chunked.resolve_n_classes(y, H.shape[0] if n_classes is None else n_classes)
        chunked.n_logit_columns(p, H, K)
    else:
        K = chunked.resolve_n_classes(y, n_classes)
    has_logits = H is not None or (p == K and p >= 2)
    if has_logits and classes is not None:
        chunked.check_logit_labels(classes, K)
    means = chunked.class_means(X, y, K, chunk)
    sigma_w = chunked.within_scatter(X, y, means, chunk)
    tot = chunked.scan(
        X,
        y,
        H=H,
        ncc=chunked.NearestCentre(means),
        classes=classes,
        want_logits=has_logits,
        chunk=chunk,
    )
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
