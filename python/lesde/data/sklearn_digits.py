"""Ten classes of real images no one here made: scikit-learn's 8 x 8 handwritten digits.

:func:`digits` reads the 1797 digits that scikit-learn ships with its package (the test
set of the UCI "Optical Recognition of Handwritten Digits" data: 8 x 8 images with 17 grey
levels, about 180 per digit; nothing is downloaded) as a :class:`lesde.data.Dataset` of
K = 10 classes named "0" to "9", scaled to ``[0, 1]`` and enlarged (bilinear) to
``size`` x ``size`` so that the paper's LeNet (two 5 x 5 convolutions with pooling, at
least 16 x 16) can read them. Classes are balanced by default (the estimators of
:mod:`lesde.analysis.estimate` assume ``pi_k = 1/K``).

Examples
--------
>>> ds = digits(n_per_class=5, size=16)
>>> ds
Dataset(N=50, K=10, images=(1, 16, 16), classes=('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))
>>> ds.class_counts().tolist() == [5] * 10, float(ds.images.max()) <= 1.0
(True, True)
"""

from __future__ import annotations

import numpy as np

from ..validate import integer
from .dataset import Dataset

__all__ = ["DIGIT_NAMES", "digits"]

#: The class names of :func:`digits`: the digit each class shows.
DIGIT_NAMES = tuple(str(d) for d in range(10))
_SMALLEST_CLASS = 174  # images of the rarest digit (8) in scikit-learn's copy


def digits(n_per_class: int | None = _SMALLEST_CLASS, size: int = 16, seed: int = 0) -> Dataset:
    """scikit-learn's 8 x 8 digits as a 10-class :class:`lesde.data.Dataset`.

    Parameters
    ----------
    n_per_class : int or None
        Images per digit, drawn at random (``seed``) within each class; at most 174, the
        size of the rarest digit (the default: balanced classes, 1740 images). None keeps
        all 1797 (unbalanced: 174 to 183 per digit).
    size : int
        Side of the images: the 8 x 8 originals enlarged by bilinear interpolation
        (``size >= 8``; 8 keeps them as they are). Pixel values ``v / 16`` in ``[0, 1]``.
    seed : int
        Chooses the images of each class when ``n_per_class`` is below a class's size.

    Returns
    -------
    Dataset
        Images (N, 1, size, size) float32, true classes 0-9, names "0" to "9", ordered by
        class.

    Raises
    ------
    ImportError
        scikit-learn is not installed (``pip install 'lesde[nn]'`` brings it).

    Examples
    --------
    >>> digits(n_per_class=200)
    Traceback (most recent call last):
        ...
    ValueError: n_per_class must be at most 174 (the rarest digit), got 200; None keeps all
    """
    if n_per_class is not None:
        n_per_class = integer("n_per_class", n_per_class, at_least=1)
        if n_per_class > _SMALLEST_CLASS:
            raise ValueError(
                f"n_per_class must be at most {_SMALLEST_CLASS} (the rarest digit), "
                f"got {n_per_class}; None keeps all"
            )
    size = integer("size", size, at_least=8)
    seed = integer("seed", seed)
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError(
            "lesde.data.digits needs scikit-learn (it ships the digits): "
            "pip install 'lesde[nn]' or pip install scikit-learn"
        ) from err
    from scipy import ndimage

    raw = load_digits()
    images = np.asarray(raw.images, dtype=np.float64) / 16.0  # 17 grey levels, 0..16
    labels = np.asarray(raw.target, dtype=np.int64)
    rng = np.random.default_rng(seed)
    keep = []
    for k in range(10):
        members = np.flatnonzero(labels == k)
        if n_per_class is not None:
            members = np.sort(rng.permutation(members)[:n_per_class])
        keep.append(members)
    keep = np.concatenate(keep)
    images, labels = images[keep], labels[keep]
    if size != 8:
        images = ndimage.zoom(images, (1, size / 8, size / 8), order=1, grid_mode=True,
                              mode="nearest")  # fmt: skip
    return Dataset(np.clip(images, 0.0, 1.0)[:, None], labels, DIGIT_NAMES)
