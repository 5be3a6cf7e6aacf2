"""Data sets for training real networks: the paper's synthetic shapes and a CIFAR-10 loader.

The paper validates the LE-SDE against small CNNs trained with plain SGD (MODEL.md,
section 5) on two kinds of inputs, both produced here as a :class:`Dataset` of float32
images ``(N, C, H, W)`` in ``[0, 1]`` with their *true* integer classes:

:func:`geometric_shapes`
    The synthetic 3-class set: filled ellipses, rectangles and triangles on 32 x 32
    single-channel images, randomly rotated, scaled, stretched and shifted, antialiased and
    slightly blurred. The three shapes have the same mean area, so total brightness does
    not give the class away. Pure NumPy/SciPy, deterministic from a seed.
:func:`cifar10`
    Class subsets of CIFAR-10 read from a local copy of the "python version" (a folder or
    the ``.tar.gz`` archive; never downloaded), unpickled with a restricted unpickler.

Label noise is applied separately with :func:`corrupt_labels` (MODEL.md, section 3, "Label
corruption"), so the true classes stay available to measure clean accuracy.

NumPy and SciPy only: the arrays are what ``lesde.nn`` (or any framework) consumes.

Examples
--------
>>> import numpy as np
>>> from lesde.data import corrupt_labels, geometric_shapes
>>> ds = geometric_shapes(20, seed=0)
>>> ds
Dataset(N=60, K=3, images=(1, 32, 32), classes=('ellipse', 'rectangle', 'triangle'))
>>> ds.class_counts().tolist()
[20, 20, 20]
>>> train, val = ds.split(0.25, seed=0)
>>> len(train), len(val)
(45, 15)
>>> noisy = corrupt_labels(train.labels, p_err=0.2, n_classes=train.n_classes, seed=1)
>>> int(np.sum(noisy != train.labels))  # about 0.2 * 45 training labels now wrong
7
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import pickle
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

__all__ = ["Dataset", "cifar10", "corrupt_labels", "geometric_shapes"]


# --------------------------------------------------------------------------------------
# small validation helpers
# --------------------------------------------------------------------------------------


def _as_int(value, name, minimum=None):
    """``operator.index(value)`` (bools rejected) with a message naming the argument."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        out = operator.index(value)
    except TypeError as exc:
        raise TypeError(f"{name} must be an int, got {value!r}") from exc
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def _as_float(value, name):
    """A finite real number, with a message naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


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
        if isinstance(validation, (bool, np.bool_)):
            raise TypeError(
                f"validation must be a fraction in (0, 1) or an int >= 1, got {validation!r}"
            )
        counts = self.class_counts()
        if isinstance(validation, numbers.Integral):
            v = int(validation)
            if v < 1:
                raise ValueError(f"validation as an int (images per class) must be >= 1, got {v}")
            n_val = np.full(self.n_classes, v, dtype=np.int64)
            how = f"validation = {v} image(s) per class"
        elif isinstance(validation, numbers.Real):
            f = float(validation)
            if not (0.0 < f < 1.0):
                raise ValueError(f"validation as a fraction must lie in (0, 1), got {f}")
            n_val = np.floor(f * counts + 0.5).astype(np.int64)
            how = f"validation fraction {f:g}"
        else:
            raise TypeError(
                f"validation must be a fraction in (0, 1) or an int >= 1, got {validation!r}"
            )
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

    The model of MODEL.md section 3 ("Label corruption"): independently for every entry, with
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
    K = _as_int(n_classes, "n_classes", minimum=2)
    p = _as_float(p_err, "p_err")
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"p_err must lie in [0, 1], got {p}")
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


# --------------------------------------------------------------------------------------
# synthetic shapes
# --------------------------------------------------------------------------------------

_SHAPE_NAMES = ("ellipse", "rectangle", "triangle")

# Base sizes as fractions of the image side, for scale 1 and aspect 1 (see geometric_shapes).
# The triangle's circumradius sets the footprint; the others are chosen so that all three
# shapes have the same area for the same (scale, aspect):
#   ellipse  pi * R_E^2 * aspect,   rectangle  4 * R_R^2 * aspect,
#   triangle (3 sqrt(3) / 4) * R_T^2 * aspect.
_R_TRIANGLE = 0.30
_R_ELLIPSE = _R_TRIANGLE * math.sqrt(3.0 * math.sqrt(3.0) / (4.0 * math.pi))  # ~0.193
_R_RECTANGLE = _R_TRIANGLE * math.sqrt(3.0 * math.sqrt(3.0) / 16.0)  # ~0.171
_ASPECT = (0.5, 1.0)
_SUPERSAMPLE = 4  # 4 x 4 sample points per pixel
_CHUNK_POINTS = 1 << 21  # sample points per rendering chunk (bounds memory)
_SQRT3 = math.sqrt(3.0)


def _render(cls, angle, scale, aspect, cx, cy, size):
    """Antialiased coverage of filled shapes, shape (B, size, size) float32.

    Per image: class ``cls``, rotation ``angle`` (radians, counter-clockwise on screen),
    relative ``scale``, ``aspect`` (minor/major) and centre ``(cx, cy)`` in pixel units
    (x = column, y = row, pixel (i, j) covering [j, j+1] x [i, i+1]).
    """
    B = cls.size
    s = _SUPERSAMPLE
    # sample coordinates: x across columns, Y = -y (up) so that angles are counter-clockwise
    t = ((np.arange(size * s, dtype=np.float32) + np.float32(0.5)) / np.float32(s))[None, :]
    radius = np.array([_R_ELLIPSE, _R_RECTANGLE, _R_TRIANGLE])[cls] * size * scale
    a = radius  # semi-extent along the shape's own u axis
    b = radius * aspect  # along v
    c, sn = np.cos(angle), np.sin(angle)
    # u = (c X + sn Y) / a and v = (-sn X + c Y) / b, with X = x - cx, Y = cy - y.
    # Written as u = ux * x + uy * y + u0 (same for v), separable over rows and columns.
    ux, uy, u0 = c / a, -sn / a, (-c * cx + sn * cy) / a
    vx, vy, v0 = -sn / b, -c / b, (sn * cx + c * cy) / b
    col = t[:, None, :]  # (1, 1, S) x coordinates of the sample columns
    row = t[:, :, None]  # (1, S, 1) y coordinates of the sample rows

    def per_image(coef):
        return coef.astype(np.float32)[:, None, None]

    u = (per_image(ux) * col + per_image(u0)) + per_image(uy) * row  # (B, S, S)
    v = (per_image(vx) * col + per_image(v0)) + per_image(vy) * row
    inside = np.empty(u.shape, dtype=bool)
    for k in range(3):
        sel = np.flatnonzero(cls == k)
        if sel.size == 0:
            continue
        uk, vk = u[sel], v[sel]
        if k == 0:  # ellipse
            inside[sel] = uk * uk + vk * vk <= 1.0
        elif k == 1:  # rectangle
            inside[sel] = (np.abs(uk) <= 1.0) & (np.abs(vk) <= 1.0)
        else:  # triangle: equilateral, circumradius 1, apex at v = +1, centroid at 0
            inside[sel] = (vk >= -0.5) & (vk <= 1.0 - _SQRT3 * np.abs(uk))
    cover = inside.reshape(B, size, s, size, s).sum(axis=(2, 4), dtype=np.int32)
    return cover.astype(np.float32) * np.float32(1.0 / (s * s))


def geometric_shapes(
    n_per_class,
    size=32,
    seed=0,
    *,
    angles=(0.0, 360.0),
    size_jitter=0.2,
    shift=2.0,
    blur=0.7,
    noise=0.0,
) -> Dataset:
    """The paper's synthetic 3-class data set: filled ellipses, rectangles and triangles.

    Each image is ``size x size``, one channel, one white shape (value 1) on black (0):

    - class 0 ``"ellipse"``: semi-axes ``R_E s`` and ``R_E s a``;
    - class 1 ``"rectangle"``: half-sides ``R_R s`` and ``R_R s a``;
    - class 2 ``"triangle"``: an equilateral triangle of circumradius ``R_T s`` (apex up),
      squashed along its axis by ``a`` (isosceles, apex angle 60 to ~98 degrees);

    with ``s ~ U[1 - size_jitter, 1 + size_jitter]`` (scale), ``a ~ U[0.5, 1]`` (aspect, so
    not only circles and squares), then rotated by ``angle ~ U[angles]`` degrees
    (counter-clockwise as displayed, row 0 at the top) about its centre (centroid for the
    triangle), which sits at the image centre shifted uniformly within a disc of radius
    ``shift`` pixels. The base sizes are fractions of ``size``: ``R_T = 0.30``,
    ``R_E = R_T sqrt(3 sqrt(3) / (4 pi)) ~ 0.193`` and ``R_R = R_T sqrt(3 sqrt(3) / 16)
    ~ 0.171``, which gives the three shapes the *same area* ``(3 sqrt(3)/4) (R_T size)^2 s^2 a``
    for equal ``(s, a)``, hence the same area distribution (mean ~ 8.9 % of the image, ~ 91
    pixels at ``size = 32``): total brightness carries no class information. With the
    defaults the shape stays at least ~2.5 pixels inside the border (more than 3 blur
    sigmas), for any ``size`` (the shift is in pixels, so it matters more at small sizes).

    Rendering: coverage sampled on 4 x 4 points per pixel (antialiasing), then a Gaussian
    blur of ``blur`` pixels (``scipy.ndimage.gaussian_filter`` over each image, zero
    outside), then additive Gaussian noise of std ``noise``, then clipping to ``[0, 1]``.

    Parameters
    ----------
    n_per_class : int
        Images per class (``>= 1``); ``N = 3 n_per_class`` in all.
    size : int, default 32
        Image side in pixels (``>= 8``).
    seed : int, default 0
        Seed of the one :func:`numpy.random.default_rng` that draws everything, in the fixed
        order: sample order (permutation), angles, scales, aspects, shift radii, shift
        directions, then the pixel noise (only if ``noise > 0``, in chunks of fixed size).
    angles : (float, float), default (0, 360)
        Range ``lo <= hi`` of the rotation angle, degrees. ``(0, 0)``: no rotation.
    size_jitter : float, default 0.2
        Relative scale jitter, ``0 <= size_jitter < 1``.
    shift : float, default 2.0
        Largest distance of the shape centre from the image centre, pixels (``>= 0``).
    blur : float, default 0.7
        Gaussian blur sigma in pixels (``>= 0``; 0 disables).
    noise : float, default 0.0
        Std of additive Gaussian pixel noise (``>= 0``; applied before clipping).

    Returns
    -------
    Dataset
        ``images`` of shape ``(3 n_per_class, 1, size, size)`` float32 in ``[0, 1]``, in a
        shuffled (deterministic) order, ``class_names = ("ellipse", "rectangle",
        "triangle")``, exactly ``n_per_class`` of each. The same arguments give bit-identical
        arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from lesde.data import geometric_shapes
    >>> ds = geometric_shapes(50, seed=0)
    >>> ds.images.shape, ds.images.dtype, ds.class_names
    ((150, 1, 32, 32), dtype('float32'), ('ellipse', 'rectangle', 'triangle'))
    >>> ds.labels[:8].tolist()  # shuffled, not class blocks
    [1, 2, 1, 2, 2, 1, 1, 2]
    >>> area = ds.images.sum(axis=(1, 2, 3))  # brightness ~ area ~ 91 pixels in every class
    >>> [round(float(area[ds.labels == k].mean())) for k in range(3)]
    [91, 97, 94]
    >>> bool(np.array_equal(ds.images, geometric_shapes(50, seed=0).images))
    True
    """
    n = _as_int(n_per_class, "n_per_class", minimum=1)
    size = _as_int(size, "size", minimum=8)
    if isinstance(angles, (str, bytes)) or not isinstance(angles, Sequence) or len(angles) != 2:
        raise TypeError(f"angles must be a pair (lo, hi) of degrees, got {angles!r}")
    lo = _as_float(angles[0], "angles[0]")
    hi = _as_float(angles[1], "angles[1]")
    if lo > hi:
        raise ValueError(f"angles must satisfy lo <= hi, got angles = ({lo}, {hi})")
    jitter = _as_float(size_jitter, "size_jitter")
    if not (0.0 <= jitter < 1.0):
        raise ValueError(f"size_jitter must satisfy 0 <= size_jitter < 1, got {jitter}")
    shift = _as_float(shift, "shift")
    if shift < 0.0:
        raise ValueError(f"shift must be >= 0 pixels, got {shift}")
    blur = _as_float(blur, "blur")
    if blur < 0.0:
        raise ValueError(f"blur must be >= 0 (Gaussian sigma in pixels), got {blur}")
    noise = _as_float(noise, "noise")
    if noise < 0.0:
        raise ValueError(f"noise must be >= 0 (std of pixel noise), got {noise}")

    N = 3 * n
    rng = np.random.default_rng(seed)
    cls = np.repeat(np.arange(3, dtype=np.int64), n)[rng.permutation(N)]
    angle = np.deg2rad(rng.uniform(lo, hi, N))
    scale = rng.uniform(1.0 - jitter, 1.0 + jitter, N)
    aspect = rng.uniform(_ASPECT[0], _ASPECT[1], N)
    r_shift = shift * np.sqrt(rng.random(N))
    phi = rng.uniform(0.0, 2.0 * math.pi, N)
    cx = size / 2.0 + r_shift * np.cos(phi)
    cy = size / 2.0 + r_shift * np.sin(phi)

    images = np.empty((N, 1, size, size), dtype=np.float32)
    chunk = max(1, _CHUNK_POINTS // (size * _SUPERSAMPLE) ** 2)
    for start in range(0, N, chunk):
        sl = slice(start, min(start + chunk, N))
        img = _render(cls[sl], angle[sl], scale[sl], aspect[sl], cx[sl], cy[sl], size)
        if blur > 0.0:
            img = ndimage.gaussian_filter(img, sigma=(0.0, blur, blur), mode="constant")
        images[sl, 0] = img
    if noise > 0.0:
        for start in range(0, N, chunk):
            block = images[start : start + chunk]
            block += np.float32(noise) * rng.standard_normal(block.shape, dtype=np.float32)
    np.clip(images, 0.0, 1.0, out=images)
    return Dataset(images, cls, _SHAPE_NAMES)


# --------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------

_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_META = "batches.meta"
_CIFAR_SPLITS = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_CIFAR_PIXELS = 3 * 32 * 32


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _codecs_encode():
    import _codecs

    return _codecs.encode


# (module, name) -> a function giving the object. Only what the CIFAR pickles need: numpy
# array reconstruction (pickled by numpy 1.x or 2.x), and _codecs.encode, which Python 3
# uses to pickle bytes objects under protocol 2.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): _codecs_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array reconstruction and ``_codecs.encode``."""

    def find_class(self, module, name):
        getter = _PICKLE_ALLOWED.get((module, name))
        if getter is None:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR-10 batch only contains numpy "
                "arrays, lists, ints and bytes (possibly a tampered or wrong file)"
            )
        return getter()


def _safe_unpickle(fileobj, where):
    try:
        return _RestrictedUnpickler(fileobj, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise pickle.UnpicklingError(f"{where}: {exc}") from exc
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise ValueError(f"{where} is not a readable CIFAR-10 pickle: {exc}") from exc


def _get(d, key, where):
    """``d[key]`` for a bytes key written by Python 2 (or its str twin)."""
    if not isinstance(d, dict):
        raise ValueError(f"{where} must hold a pickled dict, got {type(d).__name__}")
    for k in (key, key.decode("ascii")):
        if k in d:
            return d[k]
    raise ValueError(f"{where} has no {key!r} entry (keys: {sorted(map(repr, d))})")


def _find_cifar(root):
    """Locate the data: ``("dir", path)`` or ``("tar", path)``; else FileNotFoundError."""
    root = Path(os.fspath(root)).expanduser()
    tried = []

    def is_batch_dir(p):
        tried.append(str(p))
        return p.is_dir() and (p / _CIFAR_META).is_file()

    if root.is_file():
        tried.append(str(root))
        if tarfile.is_tarfile(root):
            return "tar", root
        raise FileNotFoundError(
            f"{root} is a file but not a tar archive; pass the {_CIFAR_ARCHIVE} archive, the "
            f"{_CIFAR_DIR} folder or a folder containing either"
        )
    if is_batch_dir(root):
        return "dir", root
    if is_batch_dir(root / _CIFAR_DIR):
        return "dir", root / _CIFAR_DIR
    archive = root / _CIFAR_ARCHIVE
    tried.append(str(archive))
    if archive.is_file():
        return "tar", archive
    raise FileNotFoundError(
        "CIFAR-10 (python version) not found; looked for a folder with batches.meta at / an "
        f"archive at: {', '.join(tried)}. This loader never downloads: get {_CIFAR_URL} and "
        f"pass root = the archive, the folder holding it, its extracted {_CIFAR_DIR} folder, "
        "or the folder holding that."
    )


def _load_cifar_files(kind, path, names):
    """Unpickle the named batch files from a folder or a tar archive (one pass)."""
    out = {}
    if kind == "dir":
        missing = [nm for nm in names if not (path / nm).is_file()]
        if missing:
            raise FileNotFoundError(
                f"CIFAR-10 folder {path} lacks {missing}; a complete copy has "
                f"{list(_CIFAR_SPLITS['train'] + _CIFAR_SPLITS['test'])} and {_CIFAR_META} "
                f"(from {_CIFAR_URL})"
            )
        for nm in names:
            with open(path / nm, "rb") as f:
                out[nm] = _safe_unpickle(f, str(path / nm))
        return out
    try:
        tar = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ValueError(f"cannot open the CIFAR-10 archive {path}: {exc}") from exc
    with tar:
        for member in tar:  # one sequential pass: random access would re-decompress
            base = member.name.rstrip("/").rsplit("/", 1)[-1]
            if member.isfile() and base in names and base not in out:
                f = tar.extractfile(member)
                out[base] = _safe_unpickle(f, f"{path}:{member.name}")
    missing = [nm for nm in names if nm not in out]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 archive {path} lacks {missing} (expected under {_CIFAR_DIR}/; "
            f"the original is {_CIFAR_URL})"
        )
    return out


def _batch_arrays(batch, where, n_names):
    data = _get(batch, b"data", where)
    labels = _get(batch, b"labels", where)
    data = np.asarray(data)
    if data.dtype.kind not in "iu":
        raise ValueError(f"{where}: data must hold integer pixel values, got dtype {data.dtype}")
    if data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS:
        raise ValueError(
            f"{where}: data must have shape (rows, {_CIFAR_PIXELS}) (3 x 32 x 32 pixels per "
            f"row); got {data.shape}"
        )
    if data.size and (data.min() < 0 or data.max() > 255):
        raise ValueError(f"{where}: pixel values must lie in 0..255")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" and labels.size:
        raise ValueError(f"{where}: labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64).reshape(-1) if labels.ndim <= 1 else labels
    if labels.ndim != 1 or labels.size != data.shape[0]:
        raise ValueError(
            f"{where}: {data.shape[0]} data rows but labels of shape {np.shape(labels)}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= n_names):
        raise ValueError(f"{where}: labels must lie in 0..{n_names - 1}")
    return data.astype(np.uint8, copy=False), labels


def _resolve_classes(classes, names):
    K_all = len(names)
    if classes is None:
        return list(range(K_all))
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence | np.ndarray):
        raise TypeError(
            f"classes must be None or a sequence of class names or indices, got {classes!r}"
        )
    out = []
    for c in classes:
        if isinstance(c, str):
            if c not in names:
                raise ValueError(f"unknown CIFAR-10 class {c!r}; valid names: {list(names)}")
            out.append(names.index(c))
        elif isinstance(c, (numbers.Integral, np.integer)) and not isinstance(c, (bool, np.bool_)):
            if not 0 <= int(c) < K_all:
                raise ValueError(
                    f"class index {int(c)} out of range 0..{K_all - 1}; valid names: {list(names)}"
                )
            out.append(int(c))
        else:
            raise TypeError(f"classes entries must be names (str) or indices (int), got {c!r}")
    if len(out) < 2:
        raise ValueError(f"classes must select at least 2 classes, got {len(out)}")
    if len(set(out)) != len(out):
        dup = sorted({names[k] for k in out if out.count(k) > 1})
        raise ValueError(f"classes must not repeat a class; repeated: {dup}")
    return out


def cifar10(root, classes=None, n_per_class=None, split="train") -> Dataset:
    """Load (a class subset of) CIFAR-10 from a local copy of the python version.

    Parameters
    ----------
    root : str or path-like
        Any of: the extracted ``cifar-10-batches-py`` folder; a folder containing it; the
        ``cifar-10-python.tar.gz`` archive (read in one pass with :mod:`tarfile`, nothing is
        extracted to disk); a folder containing that archive (an extracted folder wins).
        Nothing is downloaded: get the archive from
        https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz.
    classes : sequence of str or int, optional
        The classes to keep, by CIFAR-10 name (``"cat"``) or index (``3``), at least 2,
        without repeats. Their order defines the new labels ``0 .. K-1``. Default: all 10.
    n_per_class : int, optional
        Keep the first ``n_per_class`` images of each selected class in file order
        (deterministic; no seed). Default: all of them.
    split : {"train", "test"}, default "train"
        ``"train"``: ``data_batch_1`` .. ``data_batch_5`` in that order (50000 images);
        ``"test"``: ``test_batch`` (10000 images).

    Returns
    -------
    Dataset
        ``images`` of shape ``(N, 3, 32, 32)`` float32 in ``[0, 1]`` (``pixel / 255``; the
        channels are R, G, B), in file order; ``labels`` remapped to the order of
        ``classes``; ``class_names`` the CIFAR-10 names of the selected classes.

    Raises
    ------
    FileNotFoundError
        If no copy is found at ``root`` (the message names the paths tried and the download
        address) or batch files are missing.
    pickle.UnpicklingError
        If a file tries to load anything but numpy arrays and plain data: the batches are
        unpickled with a restricted unpickler, so a tampered file cannot run code.
    ValueError
        For an unknown class (the message lists the valid names), bad arguments, a class
        with fewer than ``n_per_class`` images, or malformed batch contents (naming the file).

    Notes
    -----
    Batches are dicts pickled by Python 2 (read with ``encoding="bytes"``): ``b"data"``, a
    ``(10000, 3072)`` uint8 array whose rows hold the R, G and B planes of a 32 x 32 image
    in row-major order, and ``b"labels"``, a list of ints; ``batches.meta`` holds
    ``b"label_names"``. The full training split is 600 MB as float32.

    Examples
    --------
    A tiny stand-in in the real format (20 images per batch), then a 2-class subset:

    >>> import pickle, shutil, tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from lesde.data import cifar10
    >>> names = "airplane automobile bird cat deer dog frog horse ship truck".split()
    >>> tmp = Path(tempfile.mkdtemp())
    >>> folder = tmp / "cifar-10-batches-py"
    >>> folder.mkdir()
    >>> def write(name, obj):
    ...     with open(folder / name, "wb") as f:
    ...         pickle.dump(obj, f, protocol=2)
    >>> write("batches.meta", {b"label_names": [nm.encode() for nm in names]})
    >>> rng = np.random.default_rng(0)
    >>> for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    ...     write(name, {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
    ...                  b"labels": [i % 10 for i in range(20)]})
    >>> ds = cifar10(tmp, classes=["dog", "cat"], n_per_class=3)
    >>> ds
    Dataset(N=6, K=2, images=(3, 32, 32), classes=('dog', 'cat'))
    >>> ds.labels.tolist()  # file order: cat (3), dog (5), cat, dog, ...
    [1, 0, 1, 0, 1, 0]
    >>> len(cifar10(folder, split="test"))
    20
    >>> shutil.rmtree(tmp)
    """
    if split not in _CIFAR_SPLITS:
        raise ValueError(f"split must be one of {tuple(_CIFAR_SPLITS)}, got {split!r}")
    n_keep = None if n_per_class is None else _as_int(n_per_class, "n_per_class", minimum=1)
    kind, path = _find_cifar(root)
    batch_names = _CIFAR_SPLITS[split]
    files = _load_cifar_files(kind, path, (_CIFAR_META, *batch_names))

    where_meta = f"{path}:{_CIFAR_META}" if kind == "tar" else str(path / _CIFAR_META)
    raw_names = _get(files[_CIFAR_META], b"label_names", where_meta)
    try:
        names = tuple(
            nm.decode("ascii") if isinstance(nm, bytes) else str(nm) for nm in list(raw_names)
        )
    except (TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where_meta}: label_names must be a list of names: {exc}") from exc
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"{where_meta}: label_names must be >= 2 distinct names, got {names}")
    selected = _resolve_classes(classes, names)

    datas, labels = [], []
    for nm in batch_names:
        where = f"{path}:{nm}" if kind == "tar" else str(path / nm)
        d, y = _batch_arrays(files.pop(nm), where, len(names))
        datas.append(d)
        labels.append(y)
    data = np.concatenate(datas) if len(datas) > 1 else datas[0]
    y_all = np.concatenate(labels)
    del datas

    remap = np.full(len(names), -1, dtype=np.int64)
    remap[selected] = np.arange(len(selected))
    new = remap[y_all]
    if n_keep is None:
        keep = np.flatnonzero(new >= 0)
    else:
        parts = []
        for k, c in enumerate(selected):
            idx = np.flatnonzero(new == k)
            if idx.size < n_keep:
                raise ValueError(
                    f"n_per_class = {n_keep} but class {names[c]!r} has only {idx.size} "
                    f"images in the {split!r} split"
                )
            parts.append(idx[:n_keep])
        keep = np.sort(np.concatenate(parts))
    images = data[keep].reshape(-1, 3, 32, 32).astype(np.float32)
    images /= np.float32(255.0)  # exact at 0 and 255
    return Dataset(images, new[keep], tuple(names[c] for c in selected))
