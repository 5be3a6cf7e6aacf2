"""What the MPI ranks of one sharded run decide together: errors and Ctrl-C.

The ranks of a run sharded over MPI (:mod:`lesde.sim.mpi`) meet in collectives (every step's
exchange, every chunk boundary, every checkpoint), and a collective returns only once every
rank has entered it. So a rank must never leave on its own:

- an error that can happen on one rank (a file it cannot read or write, memory, a bad
  argument) is *agreed* before the next collective: :func:`agreed` runs a block on every
  rank, gathers the outcome, and every rank raises the same error (an :class:`AgreedError`
  of the original class, with the message of the first rank that failed, prefixed with its
  rank when that is not rank 0);
- Ctrl-C (SIGINT) is *counted*, not raised where it lands, while :func:`counting_interrupts`
  is in force: the ranks exchange their counts at each chunk boundary and stop together
  (:func:`interrupt_count`).

Examples
--------
>>> from mpi4py import MPI
>>> with agreed(MPI.COMM_SELF):
...     raise OSError("run.npz: No space left on device")
Traceback (most recent call last):
    ...
OSError: run.npz: No space left on device
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

__all__ = [
    "AgreedError",
    "agree",
    "agreed",
    "agreed_error",
    "counting_interrupts",
    "interrupt_count",
]


class AgreedError(Exception):
    """An error that every rank of a communicator raised together (see :func:`agree`).

    Instances are also of the original error's class (``ValueError``, ``OSError``, ...), so
    callers catch them as before; ``kind`` is that class.

    >>> err = agreed_error(ValueError, "rank 1: bad part")
    >>> isinstance(err, ValueError), isinstance(err, AgreedError), err.kind.__name__
    (True, True, 'ValueError')
    """

    kind: type[BaseException] = Exception


_AGREED: dict[type[BaseException], type[AgreedError]] = {}


def agreed_error(kind: type[BaseException], message: str) -> AgreedError:
    """An :class:`AgreedError` that is also a ``kind``, with ``message``.

    >>> str(agreed_error(FileNotFoundError, "no checkpoint at x"))
    'no checkpoint at x'
    """
    cls = _AGREED.get(kind)
    if cls is None:  # named as the original, so a traceback or a pickle shows that one
        names = {"__module__": kind.__module__, "__qualname__": kind.__qualname__}
        cls = type(kind.__name__, (AgreedError, kind), {"kind": kind, **names})
        _AGREED[kind] = cls
    return cls(message)


def _kind(error: BaseException) -> type[BaseException]:
    """The class to raise everywhere: the error's own, or the nearest one that every rank
    can import (the builtins and lesde's), so that it travels between ranks."""
    if isinstance(error, AgreedError):
        return error.kind
    for cls in type(error).__mro__:
        module = getattr(cls, "__module__", "")
        if issubclass(cls, Exception) and (module == "builtins" or module.startswith("lesde")):
            try:
                cls("probe")  # one message must make one: NonFiniteError(message, result) cannot
            except Exception:
                continue
            return cls
    return RuntimeError


def _line(error: BaseException) -> str:
    """One line for ``error`` (an OSError names its file, as the ``lesde`` command does)."""
    if isinstance(error, OSError) and error.strerror and not isinstance(error, AgreedError):
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error) or type(error).__name__


def agree(comm: Any, error: BaseException | None = None, *, interrupts: bool = False) -> None:
    """Collective over ``comm``: every rank passes its error (None when it has none); if any
    rank has one, every rank raises the first rank's as an :class:`AgreedError`. With
    ``interrupts``, a Ctrl-C counted on any rank (:func:`counting_interrupts`) then raises
    KeyboardInterrupt on every rank.

    >>> from mpi4py import MPI
    >>> agree(MPI.COMM_SELF)  # nothing wrong anywhere: returns
    >>> agree(MPI.COMM_SELF, ValueError("--out x is a folder"))
    Traceback (most recent call last):
        ...
    ValueError: --out x is a folder
    """
    mine = None if error is None else (_kind(error), _line(error))
    everyone = comm.allgather((mine, interrupt_count()))
    for rank, (found, _) in enumerate(everyone):
        if found is not None:
            kind, line = found
            raise agreed_error(kind, line if rank == 0 else f"rank {rank}: {line}") from error
    if interrupts and any(count for _, count in everyone):
        raise KeyboardInterrupt


@contextlib.contextmanager
def agreed(comm: Any, *, interrupts: bool = False) -> Iterator[None]:
    """Run the block on every rank, then :func:`agree` on its outcome: an exception on any
    rank is raised on all. The block must hold no collective (a rank that failed before it
    would leave the others waiting there). ``comm`` None: the block alone.

    >>> from mpi4py import MPI
    >>> with agreed(MPI.COMM_SELF):
    ...     x = 1
    >>> x
    1
    """
    if comm is None:
        yield
        return
    error = None
    try:
        yield
    except Exception as err:
        error = err
    agree(comm, error, interrupts=interrupts)


# ------------------------------------------------------------------------------- Ctrl-C
_count = 0  # SIGINTs received while counting
_depth = 0  # nested counting_interrupts blocks
_lock = threading.Lock()


def _count_sigint(signum, frame) -> None:
    global _count
    _count += 1


def interrupt_count() -> int:
    """SIGINTs this process received since :func:`counting_interrupts` began (0 outside).

    >>> interrupt_count()
    0
    """
    return _count


@contextlib.contextmanager
def counting_interrupts() -> Iterator[None]:
    """Within the block, Ctrl-C (SIGINT) adds one to :func:`interrupt_count` instead of
    raising KeyboardInterrupt wherever the process happens to be; the ranks then agree on
    when to stop. Only the main thread can handle signals, and a handler the program set
    itself is left alone: in those cases nothing changes. Blocks nest (one count).

    >>> import os, signal
    >>> with counting_interrupts():
    ...     os.kill(os.getpid(), signal.SIGINT)
    ...     interrupt_count()
    1
    >>> signal.getsignal(signal.SIGINT) is signal.default_int_handler
    True
    """
    global _count, _depth
    previous = None
    with _lock:
        if (
            _depth == 0
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            _count = 0
            previous = signal.signal(signal.SIGINT, _count_sigint)
        if previous is not None or _depth > 0:
            _depth += 1
    try:
        yield
    finally:
        with _lock:
            if previous is not None or _depth > 0:
                _depth -= 1
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
                _count = 0
