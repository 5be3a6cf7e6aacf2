"""The worker processes of an ensemble training, and the parent's side of their pipes.

:func:`train_in_workers` trains an ensemble's trials in spawned worker processes, one trial
at a time each: a worker (``_worker``) loads the job it is sent (data and model, pickled
once), trains the trials it is handed and writes each trial file itself
(:func:`lesde.nn.ensemble_folder.save_trial`); the parent (``_Pool``) waits on every
worker's pipe and process together, so it never blocks on a worker that died, and ends the
call in one line (:class:`WorkerError`) as soon as one does, naming the trial and the exit
code or signal. A worker also stops when its parent dies. A script that calls
:func:`lesde.nn.train_ensemble` without a main guard is told so
(:func:`stop_if_started_by_a_worker`) instead of starting workers without end.

The job is any picklable object with ``threads`` (PyTorch threads per worker), ``folder``
(the ensemble folder) and ``run(trial) -> TrainingResult``; :mod:`lesde.nn.ensemble` sends
its own.

Examples
--------
>>> stop_if_started_by_a_worker()  # in this process (not a worker): nothing happens
>>> import os
>>> with _environment(LESDE_EXAMPLE="1"):  # what the workers are started with
...     os.environ["LESDE_EXAMPLE"]
'1'
>>> "LESDE_EXAMPLE" in os.environ
False
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .ensemble_folder import save_trial, scan_folder
from .training_result import TrainingResult

__all__ = ["Job", "WorkerError", "stop_if_started_by_a_worker", "train_in_workers"]

#: Set in the environment of the worker processes, to the pid of their parent.
_PARENT_ENV = "LESDE_ENSEMBLE_PARENT"
#: The exit code of a worker whose start-up import of the main script called train_ensemble.
_NO_MAIN_GUARD_EXIT = 87
_WAIT_SECONDS = 5.0


class WorkerError(RuntimeError):
    """A worker process of :func:`train_ensemble` died or could not start; the message
    (one line) names the cause: the trial it was training and its exit code or signal, or
    a script without a main guard."""

    __module__ = "lesde.nn.ensemble"  # where it is documented, and named in tracebacks


# ----------------------------------------------------------------------------- the parent
class Job(Protocol):
    """What the workers train: sent (pickled) once to each worker."""

    threads: int  # PyTorch threads per worker
    folder: str  # the ensemble folder, where each worker writes its trials

    def run(self, trial: int) -> TrainingResult:
        """Train trial ``trial`` and return its record (not yet written)."""
        ...


def train_in_workers(job: Job, todo: list[int], workers: int, bar) -> bool:
    """Train the trials ``todo`` of ``job`` in ``workers`` worker processes, each trial
    written by its worker; True when stopped by Ctrl-C. ``bar`` (a tqdm bar or None)
    counts the trials done. Every worker is stopped before this returns or raises
    (:class:`WorkerError` when one died or could not start).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> job = SimpleNamespace(threads=1, folder=".", run=lambda trial: None)
    >>> train_in_workers(job, [0, 1], workers=2, bar=None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    TypeError: model must be picklable to train in worker processes (a module-level ...
    """
    pool = _Pool(job, todo, workers, bar)
    try:
        pool.run()
        return False
    except KeyboardInterrupt:
        return True
    finally:
        pool.close()


@dataclass(eq=False)
class _Slot:
    """One worker process as its parent sees it."""

    proc: Any
    conn: Any
    trial: int | None = None  # the trial it is training
    ready: bool = False  # it has loaded the job
    stopping: bool = False  # it was told to stop


class _Pool:
    """The parent's side of the workers: hands out trials one at a time, and ends the call
    with one line as soon as a worker dies, whatever it was doing.

    The parent never blocks on a pipe to a worker that may be dead: it waits on every
    worker's pipe and process sentinel together (:func:`multiprocessing.connection.wait`),
    sends a worker the job only once it has asked for it and a trial only once it is idle,
    and a write to a worker that died fails at once (the parent keeps no copy of the
    worker's end). The job (data and model, pickled once) travels after start-up, so
    starting a process writes only a few bytes to it.
    """

    def __init__(self, job: Job, todo: list[int], workers: int, bar) -> None:
        import multiprocessing

        try:
            self.payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError) as err:
            raise TypeError(
                f"model must be picklable to train in worker processes (a module-level "
                f"function or a functools.partial of a class), or use workers=1: {err}"
            ) from None
        # spawn, not fork: a forked child of a process whose OpenMP runtime already started
        # threads can deadlock in its first parallel region.
        self.ctx = multiprocessing.get_context("spawn")
        self.job, self.bar, self.workers = job, bar, workers
        self.pending = collections.deque(todo)
        self.remaining = set(todo)
        self.slots: list[_Slot] = []

    def run(self) -> None:
        from multiprocessing.connection import wait

        threads = str(self.job.threads)
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        with _environment(**env, **{_PARENT_ENV: str(os.getpid())}):
            for _ in range(self.workers):
                here, there = self.ctx.Pipe()
                proc = self.ctx.Process(target=_worker, args=(there, os.getpid()), daemon=True)
                self.slots.append(_Slot(proc, here))
                proc.start()  # a few bytes to write: cannot block on a child that died
                there.close()  # the worker's end is the worker's alone
        while self.remaining:
            live = [s for s in self.slots if s.conn is not None]
            if not live:
                raise WorkerError(f"the workers stopped with trials {sorted(self.remaining)} left")
            owner = {s.conn: s for s in live} | {s.proc.sentinel: s for s in live}
            for ready in wait(list(owner), timeout=_WAIT_SECONDS):
                slot = owner[ready]
                if slot.conn is None:
                    continue  # already handled in this round
                if ready is slot.conn:
                    self._receive(slot)
                else:
                    self._ended(slot)

    def _receive(self, slot: _Slot) -> None:
        try:
            message = slot.conn.recv()
        except (EOFError, OSError):  # its end is closed: it died (said outside the except)
            message = None
        if message is None:
            self._ended(slot)
        else:
            self._handle(slot, *message)

    def _handle(self, slot: _Slot, kind: str, trial, info) -> None:
        if kind == "hello":
            self._send(slot, self.payload, raw=True)
        elif kind == "ready":
            slot.ready = True
            self._next(slot)
        elif kind == "done":
            self.remaining.discard(trial)
            slot.trial = None
            if self.bar is not None:
                self.bar.update(1)
            self._next(slot)
        else:
            raise self._failed(slot, trial, info)

    def _next(self, slot: _Slot) -> None:
        """Give an idle worker the next trial, or tell it to stop."""
        if self.pending:
            slot.trial = self.pending.popleft()
            self._send(slot, slot.trial)
        else:
            slot.stopping = True
            self._send(slot, None)

    def _send(self, slot: _Slot, message, raw: bool = False) -> None:
        try:
            if raw:
                slot.conn.send_bytes(message)
            else:
                slot.conn.send(message)
            return
        except OSError:  # its end is closed: it died (said outside the except)
            pass
        self._ended(slot)

    def _ended(self, slot: _Slot) -> None:
        """A worker's pipe closed or its process ended: fine after it was told to stop,
        otherwise the end of the call (what it reported before dying comes first)."""
        conn, slot.conn = slot.conn, None
        said = []
        try:
            while conn.poll(0):
                said.append(conn.recv())
        except (EOFError, OSError):
            pass
        conn.close()
        for kind, trial, info in said:
            if kind == "error":
                raise self._failed(slot, trial, info)
            if kind == "done":
                self.remaining.discard(trial)
                slot.trial = None
                if self.bar is not None:
                    self.bar.update(1)
        slot.proc.join(timeout=_WAIT_SECONDS)
        if slot.stopping and slot.proc.exitcode == 0:
            return
        raise self._died(slot)

    def _died(self, slot: _Slot) -> WorkerError:
        code, pid = slot.proc.exitcode, slot.proc.pid
        if code is None:
            how = "closed its pipe but is still running (stopped now)"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        if not slot.ready:
            if code == _NO_MAIN_GUARD_EXIT:
                script = getattr(sys.modules.get("__main__"), "__file__", None) or "the script"
                return WorkerError(
                    f"the ensemble's worker processes stopped at start-up: {script} calls "
                    "train_ensemble when it is imported, and each worker imports it (the "
                    "spawn start method); put that call under `if __name__ == "
                    '"__main__":` (docs/real_networks.md)'
                )
            return WorkerError(
                f"a worker process (pid {pid}) {how} at start-up, before it took a trial "
                "(its own message, if any, is above)"
            )
        doing = f"while training trial {slot.trial}" if slot.trial is not None else "between trials"
        hint = (
            " (by someone, or by the system when memory ran out)" if code == -signal.SIGKILL else ""
        )
        return WorkerError(f"a worker (pid {pid}) {how} {doing}{hint}; {self._resumes()}")

    def _failed(self, slot: _Slot, trial: int | None, info: dict) -> Exception:
        if trial is None:
            return WorkerError(
                f"a worker could not load the ensemble's model and data ({info['type']}: "
                f"{info['message']}); a model factory must be importable by a new process "
                "(defined in a module or script, not an interactive session), or use workers=1"
            )
        if info["errno"] is not None:  # a full disk, a folder removed: the same as here
            return OSError(info["errno"], info["strerror"], info["filename"])
        return WorkerError(
            f"trial {trial} failed in its worker ({info['type']}: {info['message']}); "
            f"{self._resumes()}"
        )

    def _resumes(self) -> str:
        folder = self.job.folder
        n = len(scan_folder(Path(folder))[0])
        stored = "1 trial is" if n == 1 else f"{n} trials are"
        return f"{stored} stored in {folder}: the same call resumes with the others"

    def close(self) -> None:
        """Stop every worker still running, and wait for it."""
        for slot in self.slots:
            if slot.proc.is_alive():
                slot.proc.terminate()
        for slot in self.slots:
            if slot.proc.pid is None:
                continue  # never started
            slot.proc.join(timeout=10)
            if slot.proc.is_alive():
                slot.proc.kill()
                slot.proc.join(timeout=10)
            if slot.conn is not None:
                slot.conn.close()
                slot.conn = None


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for child processes started inside the block."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------- a worker
def stop_if_started_by_a_worker() -> None:
    """In a worker's start-up, end that worker with the exit code its parent reads as "no
    main guard".

    A spawned worker imports its parent's main script; a script that calls
    train_ensemble outside ``if __name__ == "__main__":`` calls it again there, where it
    must neither train nor start workers of its own.

    Examples
    --------
    >>> stop_if_started_by_a_worker()  # this process was not started by a training: no-op
    """
    if os.environ.get(_PARENT_ENV) == str(os.getppid()):
        raise SystemExit(_NO_MAIN_GUARD_EXIT)


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies (elsewhere: no-op;
    the worker also stops when its pipe to the parent closes)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _failure(err: BaseException) -> dict:
    """What a worker reports of an exception (plain values, one line)."""
    text = " ".join(str(err).split()) or "(no message)"
    out = {"type": type(err).__name__, "message": text, "errno": None}
    if isinstance(err, OSError) and err.errno is not None:
        out.update(errno=err.errno, strerror=err.strerror, filename=err.filename)
    return out


def _worker(conn, parent: int) -> None:
    """A worker process: load the job its parent sends, then train the trials it is sent
    one at a time, until told to stop (None) or its parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    try:
        if os.getppid() != parent:  # the parent died before PR_SET_PDEATHSIG was set
            return
        conn.send(("hello", None, None))
        payload = conn.recv_bytes()
    except (EOFError, OSError):  # the parent is gone
        return
    try:
        job = pickle.loads(payload)
        import torch

        torch.set_num_threads(job.threads)
    except Exception as err:
        _tell(conn, ("error", None, _failure(err)))
        return
    if not _tell(conn, ("ready", None, None)):
        return
    while True:
        try:
            trial = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if trial is None:
            return
        try:
            res = job.run(trial)
            save_trial(res, job.folder, trial)
        except Exception as err:  # reported by the parent as one line
            _tell(conn, ("error", trial, _failure(err)))
            return
        if not _tell(conn, ("done", trial, None)):
            return


def _tell(conn, message: tuple) -> bool:
    """Send ``message`` to the parent; False when the parent is gone."""
    try:
        conn.send(message)
    except OSError:
        return False
    return True
