"""Atomic writes: a reader sees the old file or the whole new one, never a part.

:func:`atomic_write_bytes`, :func:`atomic_write_text`, :func:`atomic_savez` and
:func:`atomic_write_parquet` write a temporary file ``.<name>.<random>.tmp`` in the
target's folder, flush and fsync it, rename it over the target with :func:`os.replace`
(atomic on POSIX) and fsync the folder, so the rename survives a power cut. The folder is
created if needed. The file gets the mode any new file gets (0666 less the umask, as
``open(path, "w")`` would give it; :func:`tempfile.mkstemp` would make it 0600).
:func:`remove_stale_temporaries` deletes what killed writers left.

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "note.txt")
>>> atomic_write_text(path, "done\\n")
>>> open(path).read()
'done\\n'
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import numpy as np

__all__ = [
    "PARQUET_HINT",
    "atomic_savez",
    "atomic_write_bytes",
    "atomic_write_parquet",
    "atomic_write_text",
    "probe_write",
    "remove_stale_temporaries",
]


def _create_temporary(path: Path) -> tuple[int, str]:
    """Create ``.<name>.<random>.tmp`` beside ``path``, open for writing, with mode 0666 less
    the umask: the kernel applies the umask (and any default ACL) itself, so nothing reads
    the process-wide umask, which threads writing at the same time could race on."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")  # pragma: no cover


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path``: readers see the old file or the whole new one.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "blob.bin")
    >>> atomic_write_bytes(path, b"\\x00\\x01")
    >>> open(path, "rb").read()
    b'\\x00\\x01'
    """
    _atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "table.csv")
    >>> atomic_write_text(path, "a,b\\n1,2\\n")
    >>> open(path).read().splitlines()
    ['a,b', '1,2']
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_savez(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez(path, **arrays)``, atomically (a plain ``.npz``, no header).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "plain.npz")
    >>> atomic_savez(path, {"a": np.ones(2)})
    >>> np.load(path)["a"]
    array([1., 1.])
    """
    _atomic_write(path, lambda f: np.savez(f, **arrays))


#: How to get a Parquet engine, named when there is none.
PARQUET_HINT = "pip install 'lesde[parquet]' (pyarrow)"


def atomic_write_parquet(path: str | os.PathLike, frame, **kwargs) -> None:
    """Write the pandas DataFrame ``frame`` as Parquet (without its index), atomically.

    ``kwargs`` go to :meth:`pandas.DataFrame.to_parquet`. Needs pyarrow (the ``parquet``
    extra) or fastparquet: without one, an ImportError says how to install it, before
    anything is written.

    Examples
    --------
    >>> import os, tempfile, pandas as pd
    >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
    >>> atomic_write_parquet(path, pd.DataFrame({"t": [0.0, 0.5], "loss": [1.0, 0.2]}))
    >>> pd.read_parquet(path)["loss"].tolist()
    [1.0, 0.2]
    """
    import importlib.util

    if not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
        raise ImportError(f"writing Parquet needs a Parquet engine: {PARQUET_HINT}, or use CSV")
    _atomic_write(path, lambda f: frame.to_parquet(f, index=False, **kwargs))


def remove_stale_temporaries(path: str | os.PathLike) -> None:
    """Delete temporary files that killed writers of ``path`` left beside it.

    Only call this when no other process may be writing ``path``.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> open(os.path.join(folder, ".run.ckpt.x1y2.tmp"), "w").close()
    >>> remove_stale_temporaries(os.path.join(folder, "run.ckpt"))
    >>> os.listdir(folder)
    []
    """
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass


def probe_write(folder: str | os.PathLike, prefix: str = ".lesde-write-test.") -> None:
    """Create and delete a file in ``folder``: a place where nothing can be written (a
    read-only mount, a folder without permission) raises the ``OSError`` now, before a run,
    not at its first write. The probe is named ``PREFIX<random>.probe``, a name no writer's
    clean-up of its temporaries removes. The one probe of lesde's writers (checkpoints,
    sharded checkpoints, the command line's outputs).

    Examples
    --------
    >>> import tempfile
    >>> probe_write(tempfile.mkdtemp())  # writable: returns None
    """
    fd, probe = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".probe")
    os.close(fd)
    os.unlink(probe)
