"""The benchmark problem: one LE-SDE instance every backend integrates, and a plain float64
reference that each backend is checked against before it is timed.

Model (docs/model.md, section 2(b)); every backend implements exactly this Euler-Maruyama
step:

    state X (N, p), samples stored class-sorted: class k occupies rows
        offsets[k] : offsets[k] + counts[k]
    c (N,) true classes, y (N,) training labels (y == c unless given), E (K, K) impact matrix
    S[k']  = sum_{j : c_j = k'} g(x_j, y_j)                      (K, p)
    b      = (1 / N) E @ S   i.e.  b_k = sum_k' pi_k' E[k, k'] Gbar_k'
    x_i   <- x_i + b[c_i] dt + sigma sqrt(dt) xi_i,   xi_i ~ N(0, I_p)

Signals: "linear" g(x, y) = x; "cross_entropy" g(x, y) = e_y - softmax(x) (needs p == K).

For the cross-entropy signal the baselines use the identity
    S[k'] = L[k'] - sum_{j : c_j = k'} softmax(x_j),     L[k', l] = #{j : c_j = k', y_j = l}
where the label-count matrix L is fixed for the whole run and computed once
(:attr:`Problem.label_counts`).

Examples
--------
>>> prob = make_problem("linear", 300, 3, 2, sigma=0.0)
>>> reference_run(prob, 2).shape
(300, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DTYPES",
    "SIGNALS",
    "Problem",
    "default_impact",
    "make_problem",
    "reference_drift",
    "reference_run",
]

SIGNALS = ("linear", "cross_entropy")
DTYPES = ("float64", "float32")


# --------------------------------------------------------------------------------------
# Problem definition (shared by all baselines so they start from the same state)
# --------------------------------------------------------------------------------------


def default_impact(K: int, alpha: float = 1.0, beta: float = 0.2) -> np.ndarray:
    """Canonical impact matrix: alpha on the diagonal, beta off it.

    >>> default_impact(2, 1.0, 0.2).tolist()
    [[1.0, 0.2], [0.2, 1.0]]
    """
    E = np.full((K, K), float(beta))
    np.fill_diagonal(E, float(alpha))
    return E


@dataclass
class Problem:
    """One LE-SDE instance in class-sorted layout (float64 master copy of X0).

    >>> prob = make_problem("cross_entropy", 10, 2, 2)
    >>> prob.counts.tolist(), prob.pi.tolist(), prob.label_counts.tolist()
    ([5, 5], [0.5, 0.5], [[5.0, 0.0], [0.0, 5.0]])
    """

    signal: str
    N: int
    K: int
    p: int
    counts: np.ndarray  # (K,) int64, n_k
    offsets: np.ndarray  # (K,) int64, first row of class k
    c: np.ndarray  # (N,) int64 true classes, sorted
    y: np.ndarray  # (N,) int64 training labels
    E: np.ndarray  # (K, K) float64
    dt: float
    sigma: float
    X0: np.ndarray  # (N, p) float64
    seed: int = 0
    label_counts: np.ndarray = field(default=None)  # (K, K): L[k', l] = #{c = k', y = l}

    @property
    def pi(self) -> np.ndarray:
        return self.counts / self.N


def make_problem(
    signal: str,
    N: int,
    K: int,
    p: int,
    *,
    counts=None,
    E=None,
    alpha: float = 1.0,
    beta: float = 0.2,
    dt: float = 1e-2,
    sigma: float = 0.1,
    seed: int = 0,
    X0=None,
    y=None,
    x0_scale: float = 1.0,
) -> Problem:
    """Build a class-sorted problem. ``counts`` defaults to (nearly) balanced classes.

    ``y`` (training labels, same class-sorted row order) defaults to ``c``.
    ``X0`` defaults to ``x0_scale`` * standard normal (PCG64(seed), float64).

    >>> prob = make_problem("linear", 7, 3, 2)
    >>> prob.counts.tolist(), prob.offsets.tolist(), prob.X0.shape
    ([3, 2, 2], [0, 3, 5], (7, 2))
    """
    if signal not in SIGNALS:
        raise ValueError(f"signal must be one of {SIGNALS}, got {signal!r}")
    if signal == "cross_entropy" and p != K:
        raise ValueError("cross_entropy signal needs p == K (no head matrix in the baselines)")
    N, K, p = int(N), int(K), int(p)
    if counts is None:
        counts = np.full(K, N // K, dtype=np.int64)
        counts[: N % K] += 1
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (K,) or counts.sum() != N or (counts <= 0).any():
        raise ValueError("counts must be K positive integers summing to N")
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    c = np.repeat(np.arange(K, dtype=np.int64), counts)
    y = c.copy() if y is None else np.asarray(y, dtype=np.int64)
    if y.shape != (N,):
        raise ValueError("y must have shape (N,)")
    E = default_impact(K, alpha, beta) if E is None else np.array(E, dtype=np.float64)
    if E.shape != (K, K):
        raise ValueError("E must be K x K")
    if X0 is None:
        rng = np.random.Generator(np.random.PCG64(seed))
        X0 = rng.standard_normal((N, p))
        if x0_scale != 1.0:
            X0 *= x0_scale
    X0 = np.array(X0, dtype=np.float64)
    if X0.shape != (N, p):
        raise ValueError("X0 must be N x p")
    L = None
    if signal == "cross_entropy":
        L = np.zeros((K, K))
        np.add.at(L, (c, y), 1.0)  # once, at set-up
    return Problem(
        signal, N, K, p, counts, offsets, c, y, E, float(dt), float(sigma), X0, int(seed), L
    )


# --------------------------------------------------------------------------------------
# Reference (plain, obviously-correct NumPy float64, written from the model formula)
# --------------------------------------------------------------------------------------


def _ref_signal(signal: str, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    if signal == "linear":
        return X.copy()
    z = X - X.max(axis=1, keepdims=True)
    s = np.exp(z)
    s /= s.sum(axis=1, keepdims=True)
    return np.eye(X.shape[1])[y] - s


def reference_drift(prob: Problem, X: np.ndarray) -> np.ndarray:
    """b (K, p) with b_k = sum_k' pi_k' E[k, k'] Gbar_k' (docs/model.md 2(b)), by masks.

    >>> prob = make_problem("linear", 4, 2, 1, X0=[[1.0], [1.0], [2.0], [2.0]], E=np.eye(2))
    >>> reference_drift(prob, prob.X0).tolist()  # pi_k Gbar_k
    [[0.5], [1.0]]
    """
    K, p = prob.K, prob.p
    Gbar = np.zeros((K, p))
    for k in range(K):
        mask = prob.c == k
        Gbar[k] = _ref_signal(prob.signal, X[mask], prob.y[mask]).mean(axis=0)
    pi = prob.pi
    b = np.zeros((K, p))
    for k in range(K):
        for kp in range(K):
            b[k] += pi[kp] * prob.E[k, kp] * Gbar[kp]
    return b


def reference_run(prob: Problem, n_steps: int, X=None, noises=None) -> np.ndarray:
    """Euler-Maruyama in float64. ``noises``: optional iterable of (N, p) standard normals
    (one per step); without it the run is deterministic (sigma is ignored).

    >>> prob = make_problem("linear", 4, 2, 1, X0=[[1.0], [1.0], [2.0], [2.0]], E=np.eye(2),
    ...                     dt=0.5)
    >>> reference_run(prob, 1).ravel().tolist()  # x + b dt
    [1.25, 1.25, 2.5, 2.5]
    """
    X = prob.X0.copy() if X is None else np.array(X, dtype=np.float64)
    it = iter(noises) if noises is not None else None
    for _ in range(n_steps):
        b = reference_drift(prob, X)
        X = X + b[prob.c] * prob.dt
        if it is not None:
            X = X + prob.sigma * math.sqrt(prob.dt) * next(it)
    return X
