"""Files: written atomically, and read back only after every check that can be made first.

Writing. :func:`atomic_write_bytes`, :func:`atomic_write_text` and :func:`atomic_savez`
write a temporary file ``.<name>.<random>.tmp`` in the target's folder, flush and fsync it,
rename it over the target with :func:`os.replace` (atomic on POSIX) and fsync the folder,
so a reader sees the old file or the whole new one, and the rename survives a power cut.
The folder is created if needed. The file gets the mode any new file gets (0666 less the
umask, as ``open(path, "w")`` would give it; :func:`tempfile.mkstemp` would make it 0600).

lesde's ``.npz`` files (results, checkpoints, training records) are ``np.savez`` archives
with one JSON member ``header`` that holds at least ``kind`` and ``format_version``:
:func:`write_npz` writes one, :func:`read_npz` reads one back without ever unpickling.
Before any array is read it checks the member names, the header's kind and format
version, and every member's declared dtype and shape (``.npy`` headers) against the bytes
the zip directory gives, against a memory limit and against what the header says the
file must hold (the reader's ``expect``: results and checkpoints compute every shape from
their config), so a damaged or hostile file cannot make it allocate more than the file
says it holds, nor that more than the memory allows. Every refusal is one ``ValueError``
line that starts with the file's path.

Examples
--------
>>> import os, tempfile, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
>>> write_npz(path, {"x": np.arange(3.0)}, {"kind": "demo", "format_version": 1})
>>> read_npz(path, what="demo file", kind="demo", format_version=1, required=["x"]).arrays
{'x': array([0., 1., 2.])}
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import socket
import stat
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "KINDS",
    "Declared",
    "Expect",
    "InUseError",
    "NotReplacedError",
    "NpzContents",
    "Spec",
    "atomic_savez",
    "atomic_write_bytes",
    "atomic_write_parquet",
    "atomic_write_text",
    "available_memory",
    "memory_limits",
    "check_header",
    "check_replace",
    "check_input",
    "check_size",
    "exclusive_lock",
    "file_kind",
    "header_text",
    "lesde_kind",
    "open_input",
    "output_lock",
    "read_header",
    "read_npz",
    "remove_stale_temporaries",
    "same_path",
    "write_npz",
]

#: The kinds of file lesde writes, and how each is read: named when a file of one kind is
#: given to the reader of another.
KINDS = {
    "lesde-result": "a result file, read it with lesde.load",
    "lesde-checkpoint": "a checkpoint, resume it with lesde.resume",
    "lesde.nn.TrainingResult": "a training record, read it with lesde.nn.load_training",
    "lesde-zarr": "a Zarr store, read it with lesde.load_zarr",
    "lesde-sharded-checkpoint": (
        "the checkpoint of a run sharded over MPI ranks, resume it on as many ranks with "
        "`mpiexec -n RANKS lesde resume PATH --mpi` (lesde.mpi.resume_sharded)"
    ),
    "lesde-checkpoint-shard": "one rank's part of a sharded checkpoint, resume its manifest",
    "lesde-checkpoint-records": "the records of a sharded checkpoint, resume its manifest",
}
#: Share of the available memory that the arrays of one file may declare.
MEMORY_SHARE = 0.9


# ----------------------------------------------------------------------------- writing
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


def header_text(header: Mapping[str, Any]) -> str:
    """The JSON text :func:`write_npz` stores for ``header`` (keys sorted, so it is one text
    per header: what a checksum over the header covers).

    Examples
    --------
    >>> header_text({"kind": "demo", "format_version": 1})
    '{"format_version": 1, "kind": "demo"}'
    """
    return json.dumps(dict(header), sort_keys=True)


def write_npz(
    path: str | os.PathLike, arrays: Mapping[str, np.ndarray], header: Mapping[str, Any]
) -> None:
    """Write ``arrays`` and the JSON ``header`` (which names its ``kind`` and
    ``format_version``) to an ``.npz`` file, atomically.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
    >>> write_npz(path, {"x": np.zeros(2)}, {"kind": "demo", "format_version": 1})
    >>> sorted(np.load(path).files)
    ['header', 'x']
    """
    if "kind" not in header or "format_version" not in header:
        raise ValueError("an npz header must hold 'kind' and 'format_version'")
    if "header" in arrays:
        raise ValueError("'header' is the name of the JSON member; rename that array")
    atomic_savez(path, {**arrays, "header": np.array(header_text(header))})


# ----------------------------------------------------------------------------- one writer
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
    or is killed, so a crashed writer never leaves it locked. A second writer gets ``error`` at once, naming
    ``what`` is locked and the holder. The thread that holds the lock may take it again.

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


# ----------------------------------------------------------------------------- replacing
class NotReplacedError(ValueError):
    """lesde refuses to replace what is at an output path: a file it did not write (or of
    another kind), or its own file when replacing it was not asked for."""


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file: the same inode when both exist (so hard
    links, symbolic links and relative spellings are caught), else the same real path.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> same_path(os.path.join(folder, "x.npz"), os.path.join(folder, ".", "x.npz"))
    True
    """
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def read_header(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON header of the lesde ``.npz`` file at ``path``, or None when it is not one
    (not a zip, no header, not a regular file, unreadable).

    Only the zip directory and the header member are read: nothing is unpickled, no array
    is read, and a FIFO or a device is not opened for a blocking read (:func:`open_input`).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
    >>> write_npz(path, {"x": np.zeros(2)}, {"kind": "demo", "format_version": 1})
    >>> read_header(path)
    {'format_version': 1, 'kind': 'demo'}
    >>> read_header(os.path.dirname(path)) is None
    True
    """
    try:
        with open_input(path, "lesde file") as file, _parsing():
            with zipfile.ZipFile(file) as archive:
                infos = _members(path, archive.infolist(), "lesde file")
                return _parse_header(_header_text(archive, infos["header"]))
    except (OSError, ValueError, _Unreadable, RecursionError):
        return None


def lesde_kind(header: Mapping[str, Any] | None) -> str | None:
    """The kind (a key of :data:`KINDS`) of a file with this :func:`read_header`, or None
    when it is not a file lesde writes. Result files written before lesde tagged its files
    have no ``kind``; their header holds the config and ``steps_done``.

    Examples
    --------
    >>> lesde_kind({"kind": "lesde-checkpoint", "format_version": 1})
    'lesde-checkpoint'
    >>> lesde_kind({"config_toml": "", "steps_done": 3, "format_version": 1})
    'lesde-result'
    >>> lesde_kind({"kind": "demo"}) is None
    True
    """
    if header is None:
        return None
    kind = header.get("kind")
    if kind is None and {"config_toml", "steps_done", "format_version"} <= set(header):
        return "lesde-result"
    return kind if kind in KINDS else None


def check_replace(
    path: str | os.PathLike,
    *,
    kind: str,
    name: str,
    overwrite: bool,
    advice: str = "pass overwrite=True to replace it",
) -> dict[str, Any] | None:
    """Refuse to write a file of ``kind`` at ``path`` over anything lesde may not replace.

    Nothing there: fine. A file lesde did not write, a lesde file of another kind, or
    something that is not a regular file (a link, a FIFO, a folder, ...) is never replaced.
    A lesde file of ``kind`` is replaced only with ``overwrite``; otherwise the refusal
    ends with ``advice`` (how to ask for it: ``--force``, ``overwrite=True``). Only the
    file's header is read (:func:`read_header`). Returns that header, or None when
    nothing is there.

    ``name`` says what the path is in messages, e.g. ``"--out 'run.npz'"``.

    Raises
    ------
    NotReplacedError
        One line that names the path, what is there and what to do.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> _ = open(path, "w").write("mine")
    >>> check_replace(path, kind="lesde-result", name="notes.txt", overwrite=True)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    lesde.storage.NotReplacedError: notes.txt exists and is not a file lesde wrote; ...
    """
    if not os.path.lexists(path):
        return None
    found = file_kind(path)
    if found is not None:
        raise NotReplacedError(
            f"{name} is {found}, not a regular file, which writing would replace; give a file path"
        )
    header = read_header(path)
    found = lesde_kind(header)
    if found is None:
        raise NotReplacedError(
            f"{name} exists and is not a file lesde wrote; lesde never replaces a file it "
            "did not write: move it away or choose another path"
        )
    article, noun = KINDS[kind].split(",")[0].split(" ", 1)  # "a", "result file"
    if found != kind:
        raise NotReplacedError(
            f"{name} is {KINDS[found]}; lesde would replace only {article} lesde {noun} "
            "there: choose another path"
        )
    if not overwrite:
        step = f" (step {header['step']})" if isinstance(header.get("step"), int) else ""
        raise NotReplacedError(
            f"{name} holds {article} lesde {noun} already{step}; {advice}, or choose another path"
        )
    return header


# ----------------------------------------------------------------------------- reading
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


def available_memory(proc: str | os.PathLike = "/proc") -> int | None:
    """Bytes of memory this process can still allocate, or None where nothing says.

    The smallest of every limit that applies (each only where it is set and readable):

    - the machine's ``MemAvailable`` (``/proc/meminfo``);
    - ``ulimit -v`` (RLIMIT_AS) minus the process's current virtual size (``VmSize``), and
      ``ulimit -d`` (RLIMIT_DATA) minus its data size (``VmData``);
    - the memory cgroups the process is in and their ancestors (a container's or a batch
      job's limit): cgroup v2 ``memory.max`` minus ``memory.current``, cgroup v1
      ``memory.limit_in_bytes`` minus ``memory.usage_in_bytes``; page cache that can be
      dropped (``inactive_file`` of ``memory.stat``) counts as free.

    ``proc`` is where procfs is read (``meminfo``, ``self/status``, ``self/cgroup``,
    ``self/mountinfo``, which says where the cgroup file systems are): a folder of fake
    files in tests.

    Examples
    --------
    >>> memory = available_memory()
    >>> memory is None or memory >= 0
    True
    """
    limits = memory_limits(proc)
    return max(min(limits.values()), 0) if limits else None


def memory_limits(proc: str | os.PathLike = "/proc") -> dict[str, int]:
    """What each limit of :func:`available_memory` leaves, in bytes, by where it comes
    from ("MemAvailable", "ulimit -v", "ulimit -d", "cgroup FOLDER"): the ones set and
    readable only.

    Examples
    --------
    >>> all(n >= 0 or name.startswith("ulimit") for name, n in memory_limits().items())
    True
    """
    proc = Path(proc)
    out: dict[str, int] = {}
    meminfo = _meminfo_available(proc)
    if meminfo is not None:
        out["MemAvailable"] = meminfo
    out.update(_rlimit_available(proc))
    out.update(_cgroup_available(proc))
    return out


def _read_text(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(1 << 20)  # procfs and cgroup files are small; never more
    except OSError:
        return None


def _kib_field(text: str | None, key: str) -> int | None:
    """``key: N kB`` of a procfs file, in bytes."""
    for line in (text or "").splitlines():
        if line.startswith(key + ":"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def _meminfo_available(proc: Path) -> int | None:
    return _kib_field(_read_text(proc / "meminfo"), "MemAvailable")


def _rlimit_available(proc: Path) -> dict[str, int]:
    """What ``ulimit -v`` and ``ulimit -d`` leave, from the process's sizes now."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return {}
    status = _read_text(proc / "self" / "status")
    out: dict[str, int] = {}
    for name, field, shell in (("RLIMIT_AS", "VmSize", "-v"), ("RLIMIT_DATA", "VmData", "-d")):
        which = getattr(resource, name, None)
        if which is None:
            continue
        soft, _ = resource.getrlimit(which)
        if soft == resource.RLIM_INFINITY:
            continue
        out[f"ulimit {shell}"] = soft - (_kib_field(status, field) or 0)
    return out


#: cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages).
_CGROUP_NO_LIMIT = 1 << 62


def _cgroup_available(proc: Path) -> dict[str, int]:
    """``limit - usage`` of every memory cgroup that limits this process (its own and
    every ancestor's, in cgroup v2 and in v1), usage without reclaimable page cache."""
    memberships = _read_text(proc / "self" / "cgroup")
    mounts = _read_text(proc / "self" / "mountinfo")
    if memberships is None or mounts is None:
        return {}
    out = {}
    for version, root, mount_point in _cgroup_mounts(mounts):
        for line in memberships.splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            v2 = parts[0] == "0" and parts[1] == ""
            if (version == 2) != v2 or (version == 1 and "memory" not in parts[1].split(",")):
                continue
            for folder in _cgroup_folders(Path(mount_point), root, parts[2]):
                free = _cgroup_free(folder, version)
                if free is not None:
                    out[f"cgroup {folder}"] = free
    return out


def _cgroup_mounts(mountinfo: str) -> list[tuple[int, str, str]]:
    """(version, root, mount point) of the cgroup2 mounts and the v1 memory mounts."""
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or len(fields) < dash + 4:
            continue
        fstype, options = fields[dash + 1], fields[dash + 3].split(",")
        root, point = (_unescape_mount(f) for f in (fields[3], fields[4]))
        if fstype == "cgroup2":
            out.append((2, root, point))
        elif fstype == "cgroup" and "memory" in options:
            out.append((1, root, point))
    return out


def _unescape_mount(field: str) -> str:
    """mountinfo writes a space, tab, newline or backslash in a path as \\ooo (octal)."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def _cgroup_folders(mount_point: Path, root: str, path: str) -> list[Path]:
    """The folder of cgroup ``path`` under a mount of cgroup ``root``, and its ancestors up
    to the mount point. In a container the mount's root may not be a prefix of the path
    (a cgroup namespace shows "/"): then the mount point holds the process's own cgroup."""
    rel = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
    if rel.startswith(".."):
        rel = ""
    folder = (mount_point / rel) if rel not in ("", ".") else mount_point
    if not folder.is_dir():
        folder = mount_point
    folders = [folder]
    while folder != mount_point and mount_point in folder.parents:
        folder = folder.parent
        folders.append(folder)
    return folders


def _cgroup_free(folder: Path, version: int) -> int | None:
    """limit - (usage - inactive page cache) of one cgroup, or None where it has no limit."""
    names = (
        ("memory.max", "memory.current", "inactive_file")
        if version == 2
        else ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    )
    limit_text, usage_text = (_read_text(folder / name) for name in names[:2])
    try:
        limit = int((limit_text or "").strip())
        usage = int((usage_text or "").strip())
    except ValueError:  # "max" (v2 without a limit), a missing or odd file
        return None
    if limit >= _CGROUP_NO_LIMIT:
        return None
    cache = 0
    for line in (_read_text(folder / "memory.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key == names[2] and value.strip().isdigit():
            cache = int(value)
    return limit - max(usage - cache, 0)


def check_header(
    source: Any,
    header: Mapping[str, Any],
    *,
    what: str,
    kind: str,
    format_version: int,
    allow_missing_kind: bool = False,
) -> None:
    """Refuse a header (npz header, Zarr attributes) of another kind or format version.

    ``allow_missing_kind`` accepts a header without ``kind``: result files written before
    lesde tagged its files have none.

    Examples
    --------
    >>> check_header("run.npz", {"kind": "lesde-result", "format_version": 1},
    ...              what="lesde checkpoint", kind="lesde-checkpoint", format_version=1)
    Traceback (most recent call last):
        ...
    ValueError: run.npz: not a lesde checkpoint (it is a result file, read it with lesde.load)
    """
    found = header.get("kind")
    if found != kind and not (found is None and allow_missing_kind):
        why = f"it is {KINDS[found]}" if found in KINDS else f"kind {found!r}"
        raise ValueError(f"{source}: not a {what} ({why})")
    version = header.get("format_version")
    if version != format_version:
        raise ValueError(
            f"{source}: {what} format version {version} cannot be read by this lesde "
            f"(it reads version {format_version})"
        )


@dataclass
class NpzContents:
    """What :func:`read_npz` read: the parsed header, its exact text, and the arrays."""

    header: dict[str, Any]
    header_text: str
    arrays: dict[str, np.ndarray]


@dataclass(frozen=True)
class Declared:
    """What a member's ``.npy`` header declares: dtype and shape (nothing read yet)."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


#: What a reader expects of one member: its dtype (exact, or a string of dtype kinds such
#: as ``"f"``, ``"iu"``, ``"U"``) and its shape.
Spec = tuple["np.dtype | str", tuple[int, ...]]
#: ``expect(header, declared)``: the :data:`Spec` of every member a file with this header
#: may hold, given what the members declare (e.g. a record count read off one member).
#: It raises ValueError (a message without the path) for a header it cannot use.
Expect = Callable[[dict[str, Any], dict[str, Declared]], Mapping[str, Spec]]

#: Largest JSON header read (bytes of its ``.npy`` member): a config with long tabulated
#: schedules takes a few MB; anything far beyond is not a lesde file.
MAX_HEADER_BYTES = 64 * 2**20


class _Unreadable(Exception):
    """A file that cannot be parsed; :func:`read_npz` turns it into one ValueError."""


def read_npz(
    path: str | os.PathLike,
    *,
    what: str,
    kind: str,
    format_version: int,
    required: Iterable[str],
    optional: Iterable[str] = (),
    prefixes: Iterable[str] = (),
    allow_missing_kind: bool = False,
    limit_bytes: int | None = None,
    expect: Expect | None = None,
) -> NpzContents:
    """Read an ``.npz`` file written by :func:`write_npz`, checking it first.

    Nothing but the zip directory, ``.npy`` headers and the JSON header is read until every
    check has passed. In order: the zip directory (every member an ``.npy`` array, no name
    twice, a ``header``); the JSON header (at most :data:`MAX_HEADER_BYTES`; kind and
    format version, :func:`check_header`); the member names (all of ``required``, the
    others among ``optional`` or starting with one of ``prefixes``); every member's ``.npy``
    header (no Python objects; the declared dtype and shape account for exactly the
    uncompressed bytes the zip directory gives); the total declared bytes (at most
    ``limit_bytes``, by default 90 % of :func:`available_memory`); then, with ``expect``,
    every member's declared dtype and shape against what the header says it must be. Only
    then are the arrays read (the zip CRC of each is checked). Never unpickles.

    Parameters
    ----------
    what : str
        How messages name the file, e.g. ``"lesde result file"``.
    kind, format_version, allow_missing_kind
        What the header must say (:func:`check_header`).
    expect : callable, optional
        ``expect(header, declared)`` (see :data:`Expect`): the dtype and shape each member
        must declare. A member it does not name is refused.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Anything else; one line that starts with the path and says what is wrong.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
    >>> write_npz(path, {"x": np.zeros(2)}, {"kind": "demo", "format_version": 1})
    >>> read_npz(path, what="demo file", kind="other", format_version=1, required=["x"])
    Traceback (most recent call last):
        ...
    ValueError: ...demo.npz: not a demo file (kind 'demo')
    >>> read_npz(path, what="demo file", kind="demo", format_version=1, required=["y"])
    Traceback (most recent call last):
        ...
    ValueError: ...demo.npz: incomplete demo file, missing y
    >>> read_npz(path, what="demo file", kind="demo", format_version=1, required=["x"],
    ...          expect=lambda header, declared: {"x": ("f", (3,))})
    Traceback (most recent call last):
        ...
    ValueError: ...demo.npz: array 'x' should be float (3,) for its header, but declares ...
    """
    try:
        with open_input(path, what) as file:
            text, header, declared = _read_directory(
                path, file, what, kind, format_version, allow_missing_kind
            )
            _check_names(path, set(declared), what, required, optional, prefixes)
            _check_total(path, declared, what, limit_bytes)
            if expect is not None:
                try:
                    expected = expect(header, declared)
                except ValueError as err:  # keeps its type (InsufficientMemoryError, ...)
                    raise type(err)(f"{path}: {err}") from None
                _check_declared(path, declared, expected, what)
            file.seek(0)
            with np.load(file, allow_pickle=False) as data:
                arrays = {name: _member(data, name) for name in declared}
    except _Unreadable as err:
        raise ValueError(f"{path}: not a readable {what}, damaged or truncated ({err})") from None
    return NpzContents(header, text, arrays)


def _read_directory(
    path: Any, file: IO[bytes], what: str, kind: str, format_version: int, allow_missing: bool
) -> tuple[str, dict[str, Any], dict[str, Declared]]:
    """The header's text and content, and every other member's declared dtype and shape,
    from the zip directory and the first bytes of each member."""
    with _parsing():
        archive = zipfile.ZipFile(file)
    with archive:
        infos = _members(path, archive.infolist(), what)
        with _parsing():
            text = _header_text(archive, infos.pop("header"))
        header = _parse_header(text)
        check_header(
            path,
            header,
            what=what,
            kind=kind,
            format_version=format_version,
            allow_missing_kind=allow_missing,
        )
        with _parsing():
            declared = {name: _npy_header(archive, name, info) for name, info in infos.items()}
    return text, header, declared


@contextlib.contextmanager
def _parsing() -> Iterator[None]:
    """Any error of the zip or .npy parsers (BadZipFile, EOFError, zlib.error, a bad .npy
    header, ...) as :class:`_Unreadable`."""
    try:
        yield
    except (_Unreadable, MemoryError):
        raise
    except Exception as err:
        raise _Unreadable(f"{type(err).__name__}: {err}") from None


def _members(path: Any, infos: list[zipfile.ZipInfo], what: str) -> dict[str, zipfile.ZipInfo]:
    """The zip directory by array name: each member an ``.npy``, none twice, a header."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename.removesuffix(".npy")
        if name == info.filename:
            raise _Unreadable(f"member {name!r} is not an .npy array")
        if name in members:
            raise _Unreadable(f"member {info.filename!r} appears twice")
        members[name] = info
    if "header" not in members:
        names = ", ".join(sorted(members)) or "none"
        raise ValueError(f"{path}: not a readable {what} (no header; members: {names})")
    return members


def _npy_header(archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo) -> Declared:
    """The dtype and shape a member's ``.npy`` header declares, checked against the
    uncompressed size in the zip directory (what reading it would produce)."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise _Unreadable(f"array {name!r} has .npy version {version}")
        data_offset = member.tell()
    if dtype.hasobject:  # only a pickle could restore it
        raise _Unreadable(f"array {name!r} holds Python objects")
    declared = Declared(dtype, tuple(int(n) for n in shape))
    if data_offset + declared.nbytes != info.file_size:
        raise _Unreadable(
            f"array {name!r} declares {declared.nbytes} bytes but holds "
            f"{info.file_size - data_offset}"
        )
    return declared


def _header_text(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """The JSON text of the ``header`` member (a 0-d text array of bounded size)."""
    declared = _npy_header(archive, "header", info)
    if declared.shape != () or declared.dtype.kind != "U":
        raise _Unreadable(f"the header is {declared.dtype} {declared.shape}, not a text")
    if declared.nbytes > MAX_HEADER_BYTES:
        raise _Unreadable(
            f"the header declares {declared.nbytes} bytes, more than the "
            f"{MAX_HEADER_BYTES} a header may take"
        )
    with archive.open(info) as member:
        return str(np.lib.format.read_array(member, allow_pickle=False)[()])


def _describe(dtype: np.dtype | str) -> str:
    if isinstance(dtype, str):
        names = {"f": "float", "i": "int", "u": "uint", "U": "text"}
        return "/".join(names.get(k, k) for k in dtype)
    return str(dtype)


def _check_declared(
    path: Any, declared: dict[str, Declared], expected: Mapping[str, Spec], what: str
) -> None:
    for name, found in declared.items():
        if name not in expected:
            raise ValueError(f"{path}: unexpected array {name!r} in a {what}")
        dtype, shape = expected[name]
        dtype_ok = found.dtype.kind in dtype if isinstance(dtype, str) else found.dtype == dtype
        if not dtype_ok or found.shape != tuple(shape):
            raise ValueError(
                f"{path}: array {name!r} should be {_describe(dtype)} {tuple(shape)} for its "
                f"header, but declares {found.dtype} {found.shape}; the file is damaged "
                "(nothing was read)"
            )


def _check_total(path: Any, declared: dict[str, Declared], what: str, limit: int | None) -> None:
    check_size(path, sum(d.nbytes for d in declared.values()), what, limit)


def check_size(path: Any, nbytes: int, what: str, limit: int | None = None) -> None:
    """Refuse to read ``nbytes`` of arrays of one file: more than ``limit``, by default
    90 % of :func:`available_memory` (no limit where that is unknown).

    Examples
    --------
    >>> check_size("run.zarr", 3 * 2**30, "store", limit=2**30)
    Traceback (most recent call last):
        ...
    ValueError: run.zarr: the arrays of this store declare 3.00 GiB, more than the 1.00 GiB ...
    """
    if limit is None:
        memory = available_memory()
        limit = None if memory is None else int(MEMORY_SHARE * memory)
        why = " (90 % of the available memory)"
    else:
        why = ""
    if limit is not None and nbytes > limit:
        raise ValueError(
            f"{path}: the arrays of this {what} declare {nbytes / 2**30:.2f} GiB, more than "
            f"the {limit / 2**30:.2f} GiB it may take{why}"
        )


def _member(data: Any, name: str) -> np.ndarray:
    try:
        return data[name]
    except MemoryError:
        raise
    except Exception as err:  # a bad CRC, a truncated member, ...
        raise _Unreadable(f"array {name!r}: {type(err).__name__}: {err}") from None


def _parse_header(text: str) -> dict[str, Any]:
    """The JSON object of a header's text."""
    try:
        header = json.loads(text)
    except ValueError as err:
        raise _Unreadable(f"unreadable header: {err}") from None
    if not isinstance(header, dict):
        raise _Unreadable("unreadable header: not a JSON object")
    return header


def _check_names(
    path: Any,
    names: set[str],
    what: str,
    required: Iterable[str],
    optional: Iterable[str],
    prefixes: Iterable[str],
) -> None:
    required = list(required)
    missing = [name for name in required if name not in names]
    if missing:
        raise ValueError(f"{path}: incomplete {what}, missing {', '.join(missing)}")
    known = set(required) | set(optional)
    prefixes = tuple(prefixes)
    unexpected = sorted(n for n in names if n not in known and not n.startswith(prefixes))
    if unexpected:
        raise ValueError(f"{path}: unexpected arrays {unexpected} in a {what}")
