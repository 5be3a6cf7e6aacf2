"""What a lesde Zarr store's folder holds, and what may be replaced.

A store is lesde's when its group attributes say ``kind = "lesde-zarr"``
(:data:`KIND`); it may be replaced only when asked and only when every file in the folder
belongs to the store (its metadata, its arrays and their chunks, zarr's leftover
``.partial`` files), so the user's files beside or inside a store are never removed.
:func:`store_lock` gives the store one writer at a time. The writer and the reader of the
store's contents are :mod:`lesde.sim.zarr_store`.

Examples
--------
>>> import os, tempfile
>>> folder = os.path.join(tempfile.mkdtemp(), "notes")
>>> os.makedirs(folder)
>>> open(os.path.join(folder, "mine.txt"), "w").close()
>>> check_store(folder, overwrite=True)  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
lesde.io.replace.NotReplacedError: ...
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..io import storage
from .result import SCALAR_METRICS

__all__ = [
    "KIND",
    "RECORD_ARRAYS",
    "check_regular_files",
    "check_store",
    "remove_store_files",
    "store_attributes",
    "store_lock",
]

KIND = "lesde-zarr"
#: Record arrays: store name -> name in the engine's arrays (metrics are handled apart).
RECORD_ARRAYS = {
    "class_means": "class_means",
    "label_means": "label_means",
    "sigma_w": "sigma_w",
    "sample_trajectories": "samples",
}

#: Metadata files of zarr 3 (``zarr.json``) and zarr 2 stores.
_METADATA = frozenset({"zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata"})
#: The arrays of a lesde store (at its top, and in its ``metrics`` group).
_ARRAYS = frozenset(
    {
        *RECORD_ARRAYS,
        "times",
        "classes",
        "sample_indices",
        "labels",
        "status",
        "fail_step",
        "features",
    }
)
_DIGITS = re.compile(r"[0-9]+")
_CHUNK_V2 = re.compile(r"[0-9]+(\.[0-9]+)*")  # zarr 2 chunk keys: 0.3.0
# A write that zarr's local store did not finish (killed): NAME.<uuid hex>.partial
_PARTIAL = re.compile(r".*\.[0-9a-f]{32}\.partial")
#: Largest metadata file read to learn a store's kind.
_MAX_METADATA_BYTES = 64 * 2**20


def store_lock(path: str | os.PathLike):
    """The lock of a Zarr store (:func:`lesde.io.storage.output_lock`, on ``.NAME.lock``
    beside the store's folder): one writer at a time.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "run.zarr")
    >>> with store_lock(path):
    ...     pass
    """
    return storage.output_lock(path, what=f"Zarr store {str(path)!r}")


def store_attributes(path: Path) -> dict | None:
    """The group attributes of the Zarr store at ``path`` (zarr 3 or 2), or None when its
    metadata are missing, not regular files (a FIFO is never read) or unreadable."""
    try:
        if os.path.lexists(path / "zarr.json"):
            meta = _read_json(path / "zarr.json")
            if meta.get("node_type") != "group":
                return None
            attrs = meta.get("attributes", {})
        elif os.path.lexists(path / ".zgroup"):
            _read_json(path / ".zgroup")
            attrs = _read_json(path / ".zattrs") if os.path.lexists(path / ".zattrs") else {}
        else:
            return None
    except (OSError, ValueError, RecursionError):
        return None
    return attrs if isinstance(attrs, dict) else None


def _read_json(path: Path) -> dict:
    with storage.open_input(path, "Zarr metadata file") as f:
        text = f.read(_MAX_METADATA_BYTES + 1)
    if len(text) > _MAX_METADATA_BYTES:
        raise ValueError(f"{path}: a metadata file larger than {_MAX_METADATA_BYTES} bytes")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def _store_layout(path: Path) -> tuple[list[Path], list[str]]:
    """The files and folders of the lesde store at ``path`` (deepest first), and what else
    the folder holds (relative names): anything but zarr metadata, the store's arrays and
    their chunks, and zarr's unfinished ``.partial`` writes; a link, a FIFO or a device
    anywhere is something else too."""
    ours: list[Path] = []
    foreign: list[str] = []

    def walk(folder: Path, allowed) -> None:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                child = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    inner = allowed(entry.name, True)
                    if inner is None:
                        foreign.append(str(child.relative_to(path)) + "/")
                        continue
                    walk(child, inner)
                    ours.append(child)
                elif entry.is_file(follow_symlinks=False) and (
                    allowed(entry.name, False) or _PARTIAL.fullmatch(entry.name)
                ):
                    ours.append(child)
                else:
                    foreign.append(str(child.relative_to(path)))

    def chunks(name: str, is_dir: bool):  # below an array's "c" (zarr 3) or nested chunks
        return (chunks if _DIGITS.fullmatch(name) else None) if is_dir else _DIGITS.fullmatch(name)

    def array(name: str, is_dir: bool):
        if is_dir:
            return chunks if name == "c" or _DIGITS.fullmatch(name) else None
        return name in _METADATA or _CHUNK_V2.fullmatch(name)

    def metrics(name: str, is_dir: bool):
        if is_dir:
            return array if name in SCALAR_METRICS else None
        return name in _METADATA

    def top(name: str, is_dir: bool):
        if is_dir:
            return array if name in _ARRAYS else metrics if name == "metrics" else None
        return name in _METADATA

    walk(path, top)
    return ours, foreign


def check_store(
    path: str | os.PathLike,
    *,
    overwrite: bool,
    name: str | None = None,
    advice: str = "pass overwrite=True to replace it",
) -> list[Path]:
    """Refuse a Zarr store path where lesde would destroy what it did not write; return
    the files and folders of the lesde store there that writing a new one removes.

    Nothing there, or an empty folder: nothing to remove. A file, a link or a FIFO is
    refused; so is a folder that is not a lesde store (another Zarr store, the user's
    files), a lesde store with anything else in it (every file and folder is checked: only
    zarr metadata, the store's arrays and their chunks belong to it), and a lesde store
    without ``overwrite`` (the message ends with ``advice``).

    Raises
    ------
    lesde.io.storage.NotReplacedError
        One line naming the path (``name``, by default ``zarr_store '...'``), what is there
        and what to do.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = open(os.path.join(folder, "notes.txt"), "w").write("mine")
    >>> check_store(folder, overwrite=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    lesde.io.replace.NotReplacedError: zarr_store '...' is a folder that is not a Zarr store ...
    """
    target = Path(path)
    name = name or f"zarr_store {str(path)!r}"
    found = storage.file_kind(target)
    if found is None and os.path.lexists(target):
        found = "a file"
    if found not in (None, "a folder"):
        raise storage.NotReplacedError(f"{name} is {found}, not a folder (a Zarr store)")
    if found is None or not any(target.iterdir()):
        return []
    attrs = store_attributes(target)
    if attrs is None:
        raise storage.NotReplacedError(
            f"{name} is a folder that is not a Zarr store and not empty; lesde writes a "
            "store only into an empty folder or over one of its own: choose another path"
        )
    kind = attrs.get("kind")
    if kind != KIND:
        what = f"kind {kind!r}" if kind is not None else "no kind"
        raise storage.NotReplacedError(
            f"{name} is a Zarr store that lesde did not write ({what}); lesde replaces only "
            "its own stores: choose another path"
        )
    ours, foreign = _store_layout(target)
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise storage.NotReplacedError(
            f"{name} holds a lesde Zarr store and other files ({', '.join(foreign[:3])}{more}); "
            "lesde removes only its own stores: move those away or choose another path"
        )
    if not overwrite:
        raise storage.NotReplacedError(
            f"{name} holds a lesde Zarr store already; {advice}, or choose another path"
        )
    return ours


def remove_store_files(root: Path, path: Path) -> None:
    """Remove one file or (empty) folder of the store at ``root``, as :func:`check_store`
    listed it: a folder that is not empty now is left, and refused."""
    try:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        raise storage.NotReplacedError(
            f"zarr_store {str(root)!r} changed while its lesde store was being replaced "
            f"({path.relative_to(root)}: {err.strerror or err}); nothing else was removed"
        ) from None


def check_regular_files(path: Path) -> None:
    """Refuse a store that holds anything but folders and regular files (links followed):
    zarr would block forever on a FIFO, or read a device without end."""
    seen = set()
    for folder, dirs, files in os.walk(path, followlinks=True):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:  # a link back up: walked already
            dirs[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        for name in files:
            entry = Path(folder, name)
            found = storage.file_kind(entry, follow_links=True)
            if found is None and not entry.exists():
                found = "a broken link"
            if found is not None:
                raise ValueError(
                    f"{path}: {entry.relative_to(path)} is {found}, not a regular file; a "
                    "lesde Zarr store holds only folders and files (nothing was read)"
                )
