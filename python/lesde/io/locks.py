"""Locks: one writer of a file or folder at a time, across threads and processes.

:func:`exclusive_lock` holds an ``flock`` on a lock file (the system drops it when its
holder dies, so a crashed writer never leaves it locked); :func:`output_lock` takes the
lock ``.NAME.lock`` beside an output. A second writer gets :class:`InUseError` (or the
subclass the caller names) at once, naming the holder.

Examples
--------
>>> import os, tempfile
>>> folder = tempfile.mkdtemp()
>>> with output_lock(os.path.join(folder, "run.npz"), what="result 'run.npz'"):
...     sorted(os.listdir(folder))
['.run.npz.lock']
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["InUseError", "exclusive_lock", "output_lock"]

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None


class InUseError(RuntimeError):
    """Another lesde process, or another thread of this one, holds the lock of a file or
    folder that only one writer may use at a time."""


# Locks this process holds: resolved lock path -> [owning thread, depth, descriptor].
_held: dict[str, list] = {}
_held_guard = threading.Lock()


@contextlib.contextmanager
def exclusive_lock(
    lock_path: str | os.PathLike,
    *,
    what: str,
    holder: str = "run",
    error: type[InUseError] = InUseError,
) -> Iterator[None]:
    """Hold an exclusive lock: one writer of a file or folder at a time.

    The lock is an ``flock`` on ``lock_path`` (created if needed, removed when let go),
    which also says who holds it (pid and host). The system drops it when its holder exits
    or is killed, so a crashed writer never leaves it locked. A second writer gets
    ``error`` at once, naming ``what`` is locked and the holder. The thread that holds the
    lock may take it again.

    Examples
    --------
    >>> import os, tempfile
    >>> lock = os.path.join(tempfile.mkdtemp(), ".demo.lock")
    >>> with exclusive_lock(lock, what="demo folder"):
    ...     with exclusive_lock(lock, what="demo folder"):  # the same thread: fine
    ...         pass
    """
    path = Path(lock_path)
    key = os.path.realpath(path)
    me = threading.get_ident()
    with _held_guard:
        held = _held.get(key)
        if held is not None and held[0] != me:
            raise error(
                f"{what} is in use by another {holder} of this process (pid {os.getpid()}); "
                "wait for it to finish, or choose another path"
            )
        if held is None:
            held = _held[key] = [me, 0, _locked_descriptor(path, what, holder, error)]
        held[1] += 1
    try:
        yield
    finally:
        with _held_guard:
            held[1] -= 1
            if held[1] == 0:
                del _held[key]
                _release(held[2], path)


def _locked_descriptor(path: Path, what: str, holder: str, error: type) -> int | None:
    """An open descriptor of the lock file, exclusively locked (None without flock).

    The holder removes the lock file when it lets go (:func:`_release`), so a writer that
    opened the file just before it was removed may lock a file no longer at ``path``:
    it then tries again with the file now there, so two writers never both hold ``path``.
    """
    if fcntl is None:  # pragma: no cover - not POSIX
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder_line = os.pread(fd, 200, 0).decode(errors="replace").strip() or "pid unknown"
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise error(
                f"{what} is in use by another lesde {holder} ({holder_line}); wait for it to "
                "finish, or choose another path"
            ) from None
        if _same_file(fd, path):
            break
        os.close(fd)  # locked a file its holder had just removed: take the new one
    else:  # pragma: no cover - a hundred holders came and went in between
        raise error(f"{what}: could not take its lock file {str(path)!r}")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _release(fd: int | None, path: Path) -> None:
    """Remove the lock file while still holding it (no lock file is left beside the
    output), then let go."""
    if fd is None:  # pragma: no cover - not POSIX
        return
    try:
        if _same_file(fd, path):
            os.unlink(path)
    except OSError:  # a read-only folder: the file stays, unlocked
        pass
    finally:
        os.close(fd)


def output_lock(
    path: str | os.PathLike,
    *,
    what: str,
    holder: str = "run",
    error: type[InUseError] = InUseError,
):
    """:func:`exclusive_lock` on ``.NAME.lock`` beside the output ``path``: one writer of a
    file (or a folder such as a Zarr store) at a time. The lock file (empty but for its
    holder's pid) is there only while a writer holds it; one killed keeps it, unlocked.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with output_lock(os.path.join(folder, "run.ckpt"), what="checkpoint 'run.ckpt'"):
    ...     os.listdir(folder)
    ['.run.ckpt.lock']
    >>> os.listdir(folder)
    []
    """
    path = Path(path)
    return exclusive_lock(path.parent / f".{path.name}.lock", what=what, holder=holder, error=error)
