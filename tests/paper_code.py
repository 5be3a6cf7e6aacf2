"""The paper's published estimators, transcribed to NumPy: the oracle of ``conventions="paper"``.

Source: github.com/zjiayao/le_sde (the code of Zhang, Wang and Su, "Imitating Deep Learning
Dynamics via Locally Elastic Stochastic Differential Equations", NeurIPS 2021), file
``src/data_analyzer.py`` at commit 1b0a0e9, functions ``estimate_AB_L(df, n_classes)`` and
``estimate_AB_I(df, nc)``. Their input ``df`` is a pandas frame of per-(iteration, class)
means, ``hists.groupby(['itr', 'y']).mean()``: one row per iteration and class, sorted by
iteration then class, with columns ``y_logit0 .. y_logit{K-1}``. Here that frame is passed as
its two parts: ``rows`` (T * K, K), the logit columns in the frame's row order, and ``y``
(T * K,), its class column.

Every operation below is the published code's, in its order and with its NumPy calls (the
frame's ``df[cols]`` becomes ``rows``, ``df[df.y == c][cols]`` becomes ``rows[y == c]``), so
that the package can be held to it bit for bit. Nothing is corrected: the L estimator reads
the class-mean matrix through hard-coded indices of a 3 x 3 layout, and both take
``log|ratio|`` of every entry.
"""

from __future__ import annotations

import numpy as np


def rows_of(class_means):
    """The frame's ``(rows, y)`` for class means ``m`` (T, K, K): row ``t * K + k`` is
    ``m[t, k]`` (iteration t, class k), the order of ``groupby(['itr', 'y'])``."""
    m = np.asarray(class_means, dtype=np.float64)
    T, K, _ = m.shape
    return m.reshape(T * K, K), np.tile(np.arange(K), T)


def estimate_AB_L(rows, n_classes):
    """``estimate_AB_L``: returns ``Ahat, Bhat, A_B1, c1`` as the published function."""
    Xbar = np.array(rows).reshape(-1, 9)
    ds = np.array(
        [
            [-1 / n_classes + (1 if i == j else 0) for j in range(n_classes)]
            for i in range(n_classes)
        ]
    ).reshape(-1)
    Xbar_s1 = np.sum(Xbar[:, (0, 4)], axis=1) - np.sum(Xbar[:, (6, 7)], axis=1)
    Xbar_s2 = -np.sum(Xbar[:, (1, 2, 3, 5, 6, 7)], axis=1)
    Xbar_s = (Xbar_s1 + Xbar_s2) / 2
    Xbar_s_c1 = Xbar_s / 2
    c1 = Xbar_s[0]
    Xbar_s /= c1
    A_B1 = np.log(np.abs(Xbar_s)) * n_classes

    Xbar_fc0 = Xbar - np.outer(Xbar_s_c1, ds)
    Xbar_f = Xbar_fc0 @ np.array([2, -1, -1, -1, 2, -1, 0, 0, 0]) / 3
    Xbar_f /= Xbar_f[0]
    A_B2 = np.log(np.abs(Xbar_f)) * n_classes
    Ahat = (A_B1 + (n_classes - 1) * A_B2) / n_classes
    Bhat = (A_B2 - A_B1) * (n_classes - 1) / n_classes
    return Ahat, Bhat, A_B1, c1


def estimate_AB_I(rows, y, nc):
    """``estimate_AB_I``: returns ``A_hat, B_hat`` as the published function."""
    logits = np.array([rows[y == c] for c in range(nc)])  # class, itr, logit
    logits_ck = np.mean(logits, axis=0)
    c0 = np.nanmean(logits_ck[0:1], axis=0)
    cks = np.array([np.nanmean(logits[c][0:1], axis=0) - c0 for c in range(nc)])
    B_hat_exp = np.array([(c0 / cks[c]) * (logits[c] - logits_ck) / logits_ck for c in range(nc)])
    B_hat = np.nanmean(np.nanmean(-np.log(np.abs(B_hat_exp)), axis=0), axis=-1)
    A_hat_exp = np.array(
        [
            (logits_ck * (logits[c] - logits_ck) ** (nc - 1)) / (c0 * cks[c] ** (nc - 1))
            for c in range(nc)
        ]
    )
    A_hat = np.nanmean(np.nanmean(np.log(np.abs(A_hat_exp)), axis=0), axis=-1)
    return A_hat, B_hat
