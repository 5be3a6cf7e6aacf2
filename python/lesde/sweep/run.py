"""How a sweep runs its points: workers and threads, executors, Ctrl-C.

:func:`plan_workers` shares the cores between concurrent runs; :func:`run_points` runs the
points on the sweep's own thread pool or on a given executor (a Dask client's, an MPI
pool), streams their rows back as they finish, and turns Ctrl-C into
:class:`SweepInterrupted` without leaving a thread inside the engine (the first press starts
no new point, the second stops the running ones after their current chunk of steps).

Examples
--------
>>> import lesde
>>> from lesde.sweep.run import plan_workers
>>> base = lesde.Config(n_classes=2, n_per_class=10, threads=1)
>>> plan_workers(1, base, own_executor=True, max_workers=None)
(1, 1)
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from concurrent.futures import FIRST_COMPLETED, Executor, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from ..sim.config import Config, available_cores
from .point import error_rows, run_point

__all__ = [
    "DASK_RETRIES",
    "SweepInterruptWarning",
    "SweepInterrupted",
    "as_executor",
    "plan_workers",
    "run_points",
    "submit_options",
]

# Tries of a task that raises on a Dask executor (a worker that dies is handled by Dask).
DASK_RETRIES = 2


# ---------------------------------------------------------------------------- execution plan
def plan_workers(n_points: int, base: Config, own_executor: bool, max_workers: int | None):
    """(workers, threads per run) so that workers x threads <= cores by default."""
    if max_workers is not None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"max_workers must be an integer >= 1, got {max_workers!r}")
    cores = available_cores()
    if base.threads is not None:
        threads = base.threads
        workers = max_workers if max_workers is not None else max(1, cores // threads)
    elif max_workers is not None:
        workers = max_workers
        threads = max(1, cores // max_workers)
    elif own_executor:
        workers = min(n_points, cores)
        threads = max(1, cores // workers)
    else:  # a foreign executor of unknown size: one thread per run
        workers, threads = None, 1
    if workers is not None:
        workers = max(1, min(workers, n_points))
    return workers, threads


# ---------------------------------------------------------------------------- Ctrl-C
class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep. The points finished before it are kept in its folder, and
    calling the same sweep again (the same ``out_dir``) runs only the others.

    Attributes
    ----------
    points_kept : int
        Points whose result file is in ``out_dir/points`` (0 without ``out_dir``).
    points_total : int
        Points of the grid.
    out_dir : Path or None
        The sweep's folder.

    Examples
    --------
    >>> err = SweepInterrupted(3, 8, None)
    >>> isinstance(err, KeyboardInterrupt), err.points_kept
    (True, 3)
    """

    def __init__(self, points_kept: int, points_total: int, out_dir: Path | None):
        self.points_kept, self.points_total, self.out_dir = points_kept, points_total, out_dir
        if out_dir is None:
            message = f"sweep interrupted; nothing is kept without out_dir ({points_total} points)"
        else:
            message = (
                f"sweep interrupted: {points_kept} of {points_total} points are kept in "
                f"{str(Path(out_dir) / 'points')!r}; the same call with the same out_dir "
                f"runs the other {points_total - points_kept}"
            )
        super().__init__(message)


class SweepInterruptWarning(UserWarning):
    """The first Ctrl-C of a sweep: no new point starts, the points running finish first."""


class _CtrlC:
    """Counts Ctrl-C (SIGINT) presses while a sweep runs its points, instead of letting a
    KeyboardInterrupt land wherever the main thread happens to be.

    The handler only counts; the waiting loop reads :attr:`count`. It is installed only in
    the main thread and only over Python's default handler (a caller's own handler is left
    alone); then a KeyboardInterrupt that reaches the waiting loop counts as a press.
    """

    def __init__(self):
        self.count = 0
        self._previous = None

    def _press(self, signum, frame) -> None:
        self.count += 1

    def __enter__(self) -> _CtrlC:
        in_main = threading.current_thread() is threading.main_thread()
        if in_main and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._press)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


# ---------------------------------------------------------------------------- running the points
def as_executor(executor):
    """A dask.distributed Client stands for its executor; anything else is used as given."""
    if executor is None or isinstance(executor, Executor):
        return executor
    distributed = sys.modules.get("distributed")
    if distributed is not None and isinstance(executor, distributed.Client):
        return executor.get_executor()
    raise TypeError(
        "executor must be a concurrent.futures.Executor (ThreadPool, ProcessPool, "
        "client.get_executor() of dask.distributed, mpi4py.futures.MPIPoolExecutor) or a "
        f"dask.distributed.Client; got {type(executor).__name__}"
    )


def submit_options(executor) -> dict[str, Any]:
    """Extra ``submit`` options for a Dask client executor (``{}`` for any other).

    ``retries``: a task that raises (e.g. an I/O error while saving its file) is run again,
    on any worker. ``pure=False``: every submission runs (a task that writes a file must
    not be answered from a cached key). Options the user gave to ``get_executor`` win.
    A task whose worker dies is rescheduled by Dask itself, retries or not.

    >>> from concurrent.futures import ThreadPoolExecutor
    >>> submit_options(ThreadPoolExecutor(1))
    {}
    """
    cfexecutor = sys.modules.get("distributed.cfexecutor")
    if cfexecutor is None or not isinstance(executor, cfexecutor.ClientExecutor):
        return {}
    given = getattr(executor, "_kwargs", {})
    options = {"retries": DASK_RETRIES, "pure": False}
    return {k: v for k, v in options.items() if k not in given}


def run_points(
    tasks: dict, replicas: int, executor, workers, total: int, progress
) -> tuple[dict, bool]:
    """Step 4: run ``tasks`` (point index -> arguments of :func:`run_point`); their rows,
    and whether Ctrl-C stopped the sweep.

    On our own thread pool unless an executor is given. Rows stream back as points finish;
    a task the executor could not run becomes error rows. Ctrl-C is counted, not raised
    (:class:`_CtrlC`): the first press cancels what is queued and waits for the points
    running; the second stops those after their current chunk (our own pool) or leaves
    them to their executor. Our own threads are always joined before this returns, so
    none is left inside the engine when the interpreter exits. A failure cancels
    everything still queued, here or on a cluster.
    """
    from tqdm.auto import tqdm

    own = executor is None
    stop = threading.Event()
    outcomes: dict[int, list[dict[str, Any]]] = {}
    futures: dict = {}
    with _CtrlC() as presses:
        bar = tqdm(
            total=total,
            initial=total - len(tasks),
            unit="point",
            desc="lesde sweep",
            disable=None if progress is None else not progress,
        )
        pool = None
        if tasks:
            pool = (
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lesde-sweep")
                if own
                else executor
            )
        options = submit_options(pool)
        finished = False
        try:
            for index, args in tasks.items():
                if presses.count:
                    break
                task = (*args, stop) if own else args
                futures[pool.submit(run_point, *task, **options)] = index
            _collect(futures, outcomes, replicas, bar, presses, stop, own)
            finished = True
        finally:
            bar.close()
            for future in futures:
                future.cancel()  # the queued ones, after a failure
            if own and pool is not None:
                if not finished:  # a failure (or a KeyboardInterrupt) here: stop the points
                    stop.set()
                _join(pool, presses, stop)
    return outcomes, presses.count > 0


def _collect(futures: dict, outcomes: dict, replicas: int, bar, presses, stop, own) -> None:
    """Take the rows of the points as they finish, until all have, or Ctrl-C stops them."""
    pending = set(futures)
    seen = 0
    while pending:
        if presses.count > seen:
            seen = presses.count
            pending = {f for f in pending if not f.cancel()}  # the running ones stay
            if seen == 1 and pending:
                warnings.warn(
                    f"Ctrl-C: no new point starts; waiting for the {len(pending)} point(s) "
                    "running to finish (Ctrl-C again to stop them now, losing their work)",
                    SweepInterruptWarning,
                    stacklevel=4,
                )
            elif seen > 1:
                stop.set()
                if not own:  # the executor's tasks are not ours to stop or wait for
                    return
        try:
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
        except KeyboardInterrupt:  # a caller's own SIGINT handler raised: count it
            presses.count += 1
            continue
        for future in done:
            index = futures[future]
            if future.cancelled():
                continue
            try:
                rows = future.result()
            except Exception as err:  # e.g. the executor could not run or pickle the task
                rows = error_rows(replicas, err)
            if rows is not None:  # None: stopped by the second Ctrl-C
                outcomes[index] = rows
                bar.update(1)


def _join(pool: ThreadPoolExecutor, presses: _CtrlC, stop: threading.Event) -> None:
    """Shut our pool down and wait for its threads; a Ctrl-C meanwhile stops the points."""
    while True:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        except KeyboardInterrupt:  # a caller's own SIGINT handler raised
            presses.count += 1
            stop.set()
