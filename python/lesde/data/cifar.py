"""CIFAR-10 from a local copy of its "python version", read without running any code.

:func:`cifar10` reads class subsets from the extracted folder or the ``.tar.gz`` archive
(never downloaded). The batches are Python pickles; they are read with a restricted
unpickler that resolves nothing but NumPy array reconstruction, so a tampered file cannot
run code.

Examples
--------
>>> cifar10("/nowhere")
Traceback (most recent call last):
    ...
FileNotFoundError: CIFAR-10 path /nowhere does not exist. This loader never downloads: ...
"""

from __future__ import annotations

import numbers
import os
import pickle
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..io.storage import open_input
from ..validate import choice, integer
from .dataset import Dataset

__all__ = ["cifar10"]

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
    how = (
        f"This loader never downloads: get {_CIFAR_URL}, then pass that archive, the folder "
        f"holding it, the {_CIFAR_DIR} folder extracted from it, or the folder holding that."
    )

    def is_batch_dir(p):
        return p.is_dir() and (p / _CIFAR_META).is_file()

    if root.is_file():
        if tarfile.is_tarfile(root):
            return "tar", root
        raise FileNotFoundError(f"CIFAR-10 file {root} is not a tar archive. {how}")
    if not root.exists():
        raise FileNotFoundError(f"CIFAR-10 path {root} does not exist. {how}")
    if is_batch_dir(root):
        return "dir", root
    if is_batch_dir(root / _CIFAR_DIR):
        return "dir", root / _CIFAR_DIR
    archive = root / _CIFAR_ARCHIVE
    if archive.is_file():
        return "tar", archive
    raise FileNotFoundError(
        f"CIFAR-10 (python version) not found in {root}: neither {root} nor "
        f"{root / _CIFAR_DIR} holds {_CIFAR_META}, and there is no {archive}. {how}"
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
            with open_input(path / nm, "CIFAR-10 batch file") as f:  # a FIFO is refused
                out[nm] = _safe_unpickle(f, str(path / nm))
        return out
    archive = open_input(path, "CIFAR-10 archive")
    try:
        tar = tarfile.open(fileobj=archive, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        archive.close()
        raise ValueError(f"cannot open the CIFAR-10 archive {path}: {exc}") from exc
    with archive, tar:
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
    choice("split", split, tuple(_CIFAR_SPLITS))
    n_keep = None if n_per_class is None else integer("n_per_class", n_per_class, at_least=1)
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
