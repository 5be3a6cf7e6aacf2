"""Data sets for training real networks: the paper's shapes, CIFAR-10, scikit-learn's digits.

The paper validates the LE-SDE against small CNNs trained with plain SGD (docs/model.md,
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
:func:`digits`
    Ten classes: the 8 x 8 handwritten digits that scikit-learn ships (no download),
    enlarged to 16 x 16 for the LeNet.

Label noise is applied separately with :func:`corrupt_labels` (docs/model.md, section 3, "Label
corruption"), so the true classes stay available to measure clean accuracy.

NumPy and SciPy only: the arrays are what ``lesde.nn`` (or any framework) consumes.

This module is where to start; the work is done in :mod:`lesde.data.dataset` (the container and
label corruption), :mod:`lesde.data.shapes`, :mod:`lesde.data.cifar` and
:mod:`lesde.data.sklearn_digits`.

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

from .cifar import cifar10
from .dataset import Dataset, corrupt_labels
from .shapes import geometric_shapes
from .sklearn_digits import digits

__all__ = ["Dataset", "cifar10", "corrupt_labels", "digits", "geometric_shapes"]
