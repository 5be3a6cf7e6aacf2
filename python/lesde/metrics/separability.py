"""Separability of a labelled point cloud: the nearest-class-centre certificate, the exact
linear program and the training-loss (argmax) reading (docs/model.md section 3).

:func:`separable` is the entry point; :mod:`lesde.metrics` re-exports it and
:class:`SeparabilityResult`, so ``lesde.metrics.separable`` is this function. The exact
reading solves a feasibility LP with HiGHS (:func:`scipy.optimize.linprog`), by constraint
generation on a seeded, stratified subsample when the cloud is large; every verdict says
how certain it is and what it covers.

Examples
--------
>>> import numpy as np
>>> from lesde.metrics.separability import separable
>>> X = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 1.0]])
>>> r = separable(X, np.array([0, 0, 1, 1]), method="lp")
>>> r.separable, r.certain
(True, True)
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from . import chunked

__all__ = ["SeparabilityResult", "separable"]

_METHODS = ("ncc", "lp", "argmax")


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


def separable(
    X,
    y,
    method="ncc",
    head=None,
    max_samples=20000,
    seed=0,
    *,
    n_classes=None,
    _chunk=chunked.CHUNK,
):
    """Decide whether the labelled point cloud is separable.

    Two readings of "separable" (docs/model.md section 3) are offered; report both:

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
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    chunk = chunked.check_chunk(_chunk)
    if method == "argmax":
        return _argmax_reading(X, y, head, n_classes, chunk)
    X, y, K = chunked.features_and_labels(X, y, n_classes)
    if head is not None:
        raise ValueError(f"head is only used by method='argmax', not method={method!r}")
    if method == "ncc":
        return _ncc_certificate(X, y, K, chunk)
    try:
        max_samples = operator.index(max_samples)
    except TypeError as exc:
        raise TypeError(f"max_samples must be an int, got {max_samples!r}") from exc
    if max_samples < 2:
        raise ValueError(f"max_samples must be >= 2, got {max_samples}")
    return _lp_verdict(X, y, K, max_samples, seed, chunk)


def _argmax_reading(X, y, head, n_classes, chunk):
    """``separable(method="argmax")``: is ``argmax(logits) == y`` for every sample?"""
    X, y, H, _ = chunked.logit_inputs(X, y, head, n_classes)
    n = X.shape[0]
    worst, errors = math.inf, 0
    for s, e in chunked.spans(n, chunk):
        Z = chunked.logits_of(chunked.rows(X, s, e), H)
        yc = chunked.labels(y, s, e)
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
    return SeparabilityResult(ok, "argmax", True, n, False, worst, errors / n, msg)


def _ncc_certificate(X, y, K, chunk):
    """``separable(method="ncc")``: does the nearest-class-centre rule make no error?"""
    n = X.shape[0]
    rule = chunked.NearestCentre(chunked.class_means(X, y, K, chunk))
    # |mu_y - mu_k| for the present classes
    dmu = np.linalg.norm(rule.mu[:, None, :] - rule.mu[None, :, :], axis=2)
    worst, errors = math.inf, 0
    for s, e in chunked.spans(n, chunk):
        sc = rule.scores(chunked.rows(X, s, e))  # |x - mu_k|^2 - |x|^2
        yl = _local_labels(chunked.labels(y, s, e), rule.ids, K)
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
    return SeparabilityResult(ok, "ncc", ok, n, False, worst, errors / n, msg)


def _local_labels(yc, ids, K):
    lut = np.full(K, -1, dtype=np.intp)
    lut[ids] = np.arange(ids.size)
    return lut[yc]


def _lp_verdict(X, y, K, max_samples, seed, chunk):
    """``separable(method="lp")``: the LP on (a subsample of) the cloud, and what it covers."""
    n = X.shape[0]
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
    m = Xs.shape[0]
    ok, decided, wit, margin, n_lp, msg = _lp_separable(Xs, ys, seed)
    what = f"{n_lp} of the {m} samples entered the LP"
    if not ok:
        if decided:
            msg += ": not linearly separable"
            if subsampled:
                msg += (
                    f" (LP on a stratified subsample of {m} of {n} samples, seed "
                    f"{seed}; a non-separable subsample proves the full set non-separable)"
                )
        return SeparabilityResult(False, "lp", decided, m, subsampled, margin, math.nan,
                                  f"{msg}; {what}")  # fmt: skip
    if not subsampled or wit is None:
        msg += f": linearly separable; {what}"
        return SeparabilityResult(True, "lp", decided, n, False, margin, math.nan, msg)
    failures, full_margin = _witness_on_all(wit, X, y, K, chunk)
    if failures == 0:
        msg += (
            f": linearly separable; decided on a stratified subsample of {m} of "
            f"{n} samples (seed {seed}; {what}) and the witness separates all {n} samples"
        )
        return SeparabilityResult(True, "lp", decided, n, False, full_margin, math.nan, msg)
    msg += (
        f" on a stratified subsample of {m} of {n} samples (seed {seed}; {what}), "
        f"but its witness misclassifies {failures} of the {n} samples: a separable subsample "
        "does not certify the full set"
    )
    return SeparabilityResult(True, "lp", False, m, True, margin, math.nan, msg)


def _witness_on_all(wit, X, y, K, chunk):
    """Check a subsample's witness on all N samples (chunked): ``(failures, margin)``."""
    lut = np.full(K, -1, dtype=np.intp)
    lut[wit.classes] = np.arange(wit.classes.size)
    margin, failures = math.inf, 0
    for s, e in chunked.spans(X.shape[0], chunk):
        yl = lut[chunked.labels(y, s, e)]
        unseen = yl < 0  # a class absent from the subsample: cannot be verified
        score, geo = wit.margins(chunked.rows(X, s, e), np.where(unseen, 0, yl))
        bad = unseen | (score <= 0)
        failures += int(np.count_nonzero(bad))
        margin = min(margin, float(np.where(bad, -np.inf, geo).min()))
    return failures, margin


# --------------------------------------------------------------------------------------
# the linear program
# --------------------------------------------------------------------------------------


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
