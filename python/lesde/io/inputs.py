"""Inputs: only regular files are read (a FIFO, a device or a folder is refused at once,
without blocking on it).

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "in.txt")
>>> _ = open(path, "w").write("x")
>>> with open_input(path, "text file") as f:
...     f.read()
b'x'
>>> file_kind(os.path.dirname(path))
'a folder'
"""

from __future__ import annotations

import os
import stat
from typing import IO

__all__ = ["check_input", "file_kind", "open_input"]


def file_kind(path: str | os.PathLike, follow_links: bool = False) -> str | None:
    """What ``path`` is when it exists and is not a regular file, else None.

    Without ``follow_links`` a symbolic link is reported as one (an output must not write
    through it); with it, the link's target is judged (an input may be a link to a file).

    Examples
    --------
    >>> import tempfile
    >>> file_kind(tempfile.mkdtemp())
    'a folder'
    """
    try:
        mode = (os.stat if follow_links else os.lstat)(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(mode):
        return None
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def open_input(path: str | os.PathLike, what: str) -> IO[bytes]:
    """Open an input file for reading, refusing anything but a regular file.

    A FIFO, a device or a socket would block the reader forever or feed it endless bytes,
    so the file is opened without blocking and checked on the open descriptor (no window
    between the check and the read); a link to a regular file is fine.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        ``path`` is not a regular file (one line that starts with the path).

    Examples
    --------
    >>> import os, tempfile
    >>> fifo = os.path.join(tempfile.mkdtemp(), "pipe")
    >>> os.mkfifo(fifo)
    >>> open_input(fifo, "lesde result file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: .../pipe: a FIFO, not a regular file; a lesde result file must be a file
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} at {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: a folder, not a regular file; a {what} must be a file") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = file_kind(path, follow_links=True) or "not a regular file"
            raise ValueError(f"{path}: {kind}, not a regular file; a {what} must be a file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_input(path: str | os.PathLike, what: str) -> None:
    """Refuse an input path that is not a regular file (see :func:`open_input`), for
    readers that open the file themselves.

    Examples
    --------
    >>> import tempfile
    >>> check_input(tempfile.mkdtemp(), "trial file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: ...: a folder, not a regular file; a trial file must be a file
    """
    open_input(path, what).close()
