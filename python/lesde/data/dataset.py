"""The container for a network's training data, and label corruption.

:class:`Dataset` holds float32 images ``(N, C, H, W)`` in ``[0, 1]`` with their *true*
integer classes; :func:`corrupt_labels` makes the training labels of docs/model.md section 3
("Label corruption") separately, so the true classes stay available to measure clean
accuracy. The data sets themselves come from :mod:`lesde.data.shapes` and :mod:`lesde.data.cifar`;
:mod:`lesde.data` gathers all of it.

Examples
--------
>>> import numpy as np
>>> ds = Dataset(np.zeros((4, 1, 8, 8)), [0, 1, 1, 0], ("a", "b"))
>>> corrupt_labels(ds.labels, p_err=1.0, n_classes=ds.n_classes).tolist()
[1, 0, 0, 1]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..validate import integer, probability, real

__all__ = ["Dataset", "corrupt_labels"]


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images with their true classes, ready for a network.

    Parameters
    ----------
    images : array_like, shape (N, C, H, W)
        Pixel values in ``[0, 1]`` (finite), square images (``H == W``), ``N >= 1``. Stored
        as a C-contiguous float32 array (converted if needed).
    labels : array_like of int, shape (N,)
        The *true* class of each image, in ``0 .. K-1``. Stored as C-contiguous int64.
        Corrupted training labels are kept separately (see :func:`corrupt_labels`).
    class_names : sequence of str
        ``K >= 2`` distinct names; ``class_names[k]`` names label ``k``. Stored as a tuple.
        A class may have no images.

    Notes
    -----
    The dataclass is frozen (the fields cannot be rebound) but the arrays are ordinary
    writable NumPy arrays; :meth:`subset` and :meth:`split` always copy. Equality is
    identity (``eq=False``): compare the arrays to compare contents.

    Examples
    --------
    >>> import numpy as np
    >>> from lesde.data import Dataset
    >>> ds = Dataset(np.zeros((4, 1, 8, 8)), [0, 1, 1, 0], ("a", "b"))
    >>> ds
    Dataset(N=4, K=2, images=(1, 8, 8), classes=('a', 'b'))
    >>> ds.images.dtype, ds.labels.dtype, ds.n_classes, ds.channels, ds.image_size, len(ds)
    (dtype('float32'), dtype('int64'), 2, 1, 8, 4)
    >>> ds.class_counts().tolist()
    [2, 2]
    >>> ds.subset([1, 2]).labels.tolist()
    [1, 1]
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self):
        # class_names
        names = self.class_names
        if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
            raise TypeError(f"class_names must be a sequence of str (one per class), got {names!r}")
        names = tuple(names)
        for nm in names:
            if not isinstance(nm, str):
                raise TypeError(f"class_names must contain str only, got {nm!r}")
        if len(names) < 2:
            raise ValueError(f"class_names must name K >= 2 classes, got {len(names)}: {names}")
        if len(set(names)) != len(names):
            dup = sorted({nm for nm in names if names.count(nm) > 1})
            raise ValueError(f"class_names must be distinct; repeated: {dup}")
        K = len(names)

        # images
        img = np.asarray(self.images)
        if img.dtype.kind not in "fiu":
            raise TypeError(f"images must be a real numeric array, got dtype {img.dtype}")
        if img.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W); got shape {img.shape}")
        N, C, H, W = img.shape
        if N == 0:
            raise ValueError(f"images is empty (N = 0, shape {img.shape}); need N >= 1")
        if C == 0 or H == 0 or W == 0:
            raise ValueError(f"images must have C, H, W >= 1; got shape {img.shape}")
        if H != W:
            raise ValueError(f"images must be square (H == W); got H = {H}, W = {W}")
        img = np.ascontiguousarray(img, dtype=np.float32)
        lo, hi = float(img.min()), float(img.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("images contains non-finite values (NaN or inf)")
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"images values must lie in [0, 1]; got min {lo:g}, max {hi:g}")

        # labels
        lab = np.asarray(self.labels)
        if lab.dtype.kind not in "iu" or lab.dtype == np.bool_:
            raise TypeError(f"labels must be an integer array, got dtype {lab.dtype}")
        if lab.shape != (N,):
            raise ValueError(
                f"labels must have shape (N,) = ({N},) to match images; got {lab.shape}"
            )
        lab = np.ascontiguousarray(lab, dtype=np.int64)
        if lab.min() < 0 or lab.max() >= K:
            raise ValueError(
                f"labels must lie in 0..{K - 1} (K = {K} class_names); "
                f"got min {int(lab.min())}, max {int(lab.max())}"
            )

        object.__setattr__(self, "images", img)
        object.__setattr__(self, "labels", lab)
        object.__setattr__(self, "class_names", names)

    # ---- basic properties ------------------------------------------------------------

    @property
    def n_classes(self) -> int:
        """Number of classes ``K`` (``len(class_names)``)."""
        return len(self.class_names)

    @property
    def channels(self) -> int:
        """Number of channels ``C`` (1 for the shapes, 3 for CIFAR-10)."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        """Side ``H == W`` of the (square) images, in pixels."""
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        shape = tuple(int(s) for s in self.images.shape[1:])
        return (
            f"Dataset(N={len(self)}, K={self.n_classes}, images={shape}, "
            f"classes={self.class_names})"
        )

    def class_counts(self) -> np.ndarray:
        """Number of images of each class, shape ``(K,)``, int64.

        Examples
        --------
        >>> from lesde.data import geometric_shapes
        >>> geometric_shapes(3, size=16).class_counts().tolist()
        [3, 3, 3]
        """
        return np.bincount(self.labels, minlength=self.n_classes).astype(np.int64)

    def channel_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and standard deviation of the pixels, each of shape ``(C,)``.

        What a network standardises its inputs with (``lesde.nn.LeNet(input_mean=...,
        input_std=...)``); take them from the training set only.

        Examples
        --------
        >>> from lesde.data import geometric_shapes
        >>> mean, std = geometric_shapes(10, size=16).channel_stats()
        >>> mean.shape, bool(0 < mean[0] < 1 and std[0] > 0)
        ((1,), True)
        """
        pixels = self.images.transpose(1, 0, 2, 3).reshape(self.channels, -1)
        return pixels.mean(axis=1, dtype=np.float64), pixels.std(axis=1, dtype=np.float64)

    # ---- selection -------------------------------------------------------------------

    def subset(self, indices) -> Dataset:
        """A new :class:`Dataset` with the images at ``indices`` (copied), same class names.

        Parameters
        ----------
        indices : array_like
            Integer positions (negative ones count from the end; repeats allowed) or a
            boolean mask of length ``N``. The result must not be empty.

        Examples
        --------
        >>> import numpy as np
        >>> from lesde.data import Dataset
        >>> ds = Dataset(np.zeros((3, 1, 8, 8)), [0, 1, 0], ("a", "b"))
        >>> ds.subset([2, 0]).labels.tolist(), ds.subset(ds.labels == 1).labels.tolist()
        ([0, 0], [1])
        """
        idx = np.asarray(indices)
        N = len(self)
        if idx.dtype == np.bool_:
            if idx.shape != (N,):
                raise ValueError(
                    f"indices as a boolean mask must have shape ({N},); got {idx.shape}"
                )
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.intp)
        elif idx.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers or a boolean mask, got dtype {idx.dtype}")
        if idx.ndim != 1:
            raise ValueError(f"indices must be 1-D; got shape {idx.shape}")
        if idx.size and (idx.min() < -N or idx.max() >= N):
            raise IndexError(
                f"indices must lie in [-{N}, {N}) for a data set of N = {N} images; "
                f"got min {int(idx.min())}, max {int(idx.max())}"
            )
        return Dataset(self.images[idx], self.labels[idx], self.class_names)

    def split(self, validation, seed=0) -> tuple[Dataset, Dataset]:
        """Stratified split into ``(train, val)``.

        Each class is split on its own, so both parts keep the class proportions.

        Parameters
        ----------
        validation : float or int
            A fraction in ``(0, 1)``: class ``k`` with ``n_k`` images gives
            ``floor(validation * n_k + 0.5)`` of them to ``val``; or an int ``>= 1``: that
            many images of *every* class go to ``val``.
        seed : int, default 0
            Seed of :func:`numpy.random.default_rng`; the classes are permuted in order
            ``0 .. K-1``, so the split is a deterministic function of ``seed``.

        Returns
        -------
        train, val : Dataset
            Copies; the images keep their original relative order in each part.

        Raises
        ------
        ValueError
            If some class would end up with no image on one side (including a class with
            fewer than two images).

        Examples
        --------
        >>> from lesde.data import geometric_shapes
        >>> train, val = geometric_shapes(10, size=16).split(3, seed=0)
        >>> train.class_counts().tolist(), val.class_counts().tolist()
        ([7, 7, 7], [3, 3, 3])
        """
        if isinstance(validation, (bool, np.bool_)) or not isinstance(validation, numbers.Real):
            raise TypeError(
                f"validation must be a fraction in (0, 1) or an int >= 1, got {validation!r}"
            )
        counts = self.class_counts()
        if isinstance(validation, numbers.Integral):
            v = integer("validation (images per class)", validation, at_least=1)
            n_val = np.full(self.n_classes, v, dtype=np.int64)
            how = f"validation = {v} image(s) per class"
        else:
            f = real("validation (a fraction)", validation, above=0, below=1)
            n_val = np.floor(f * counts + 0.5).astype(np.int64)
            how = f"validation fraction {f:g}"
        bad = [
            f"{self.class_names[k]!r} ({counts[k]} images -> {counts[k] - n_val[k]} train, "
            f"{n_val[k]} val)"
            for k in range(self.n_classes)
            if n_val[k] < 1 or counts[k] - n_val[k] < 1
        ]
        if bad:
            raise ValueError(
                f"split with {how} leaves a class with no image on one side: "
                + "; ".join(bad)
                + ". Every class needs at least one training and one validation image."
            )
        rng = np.random.default_rng(seed)
        train_idx, val_idx = [], []
        for k in range(self.n_classes):
            perm = rng.permutation(np.flatnonzero(self.labels == k))
            val_idx.append(perm[: n_val[k]])
            train_idx.append(perm[n_val[k] :])
        train = self.subset(np.sort(np.concatenate(train_idx)))
        val = self.subset(np.sort(np.concatenate(val_idx)))
        return train, val


# --------------------------------------------------------------------------------------
# label corruption
# --------------------------------------------------------------------------------------


def corrupt_labels(labels, p_err, n_classes, seed=0) -> np.ndarray:
    """Replace each label, with probability ``p_err``, by one of the other ``K-1`` classes.

    The model of docs/model.md section 3 ("Label corruption"): independently for every entry, with
    probability ``p_err`` the label becomes a class drawn uniformly from the ``K-1`` classes
    *other* than the true one (a corrupted label is never the true one); otherwise it is kept.
    So a fraction ``(1 - p_err)`` of labels is correct, and the transition in clean accuracy
    is expected at ``p_err = (K-1)/K``.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        True classes in ``0 .. n_classes-1``. Never modified.
    p_err : float
        Corruption probability in ``[0, 1]``.
    n_classes : int
        ``K >= 2``.
    seed : int, default 0
        Seed of :func:`numpy.random.default_rng`. Two arrays of ``N`` values (uniforms, then
        offsets ``1 .. K-1``) are drawn whatever ``p_err`` is, so with a fixed seed the
        corrupted set grows monotonically with ``p_err`` (coupled noise levels).

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        A new array; equal to ``labels`` when ``p_err = 0``, different everywhere when
        ``p_err = 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from lesde.data import corrupt_labels
    >>> y = np.repeat(np.arange(3), 1000)
    >>> z = corrupt_labels(y, 0.3, 3, seed=0)
    >>> round(float(np.mean(z != y)), 2)
    0.3
    >>> bool(np.all(corrupt_labels(y, 1.0, 3) != y)), bool(np.all(corrupt_labels(y, 0.0, 3) == y))
    (True, True)
    """
    K = integer("n_classes", n_classes, at_least=2)
    p = probability("p_err", p_err)
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" or y.dtype == np.bool_:
        if y.size == 0 and y.ndim == 1:
            y = y.astype(np.int64)
        else:
            raise TypeError(f"labels must be an integer array, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of shape (N,); got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= K):
        raise ValueError(
            f"labels must lie in 0..{K - 1} (n_classes = {K}); "
            f"got min {int(y.min())}, max {int(y.max())}"
        )
    y = y.astype(np.int64)  # always a copy
    rng = np.random.default_rng(seed)
    flip = rng.random(y.size) < p
    offset = rng.integers(1, K, size=y.size)
    return np.where(flip, (y + offset) % K, y).astype(np.int64, copy=False)
