"""Parameter sweeps: run a grid of configurations and collect one tidy table.

A sweep takes a base :class:`~lesde.Config` and a *grid* that maps Config field names to
lists of values. Every point of the Cartesian product runs one :func:`lesde.simulate` call
with ``replicas`` replicas, and every replica becomes one row of a pandas DataFrame: the
grid values, the seeds, the status, the final value of every recorded metric and two
readings of separability (docs/model.md section 3):

``separable_ncc``
    The nearest-class-centre rule, fitted on the final features with the training labels,
    has zero training error. A certificate of linear separability of the point clouds.
``separable_argmax``
    ``argmax`` of the logits equals the training label for every sample: the training-loss
    reading (the loss can be driven to 0). With the cross-entropy signal and alpha < beta
    the clouds can be separable while this is 0.
``separable_lp`` (only when ``"lp"`` is in ``separability``)
    Exact linear separability by a linear program, on a stratified subsample of at most
    ``lp_max_samples`` samples (``lp_subsampled`` says whether one was used).

Separability columns hold 1.0 (yes), 0.0 (no) or NaN (not computed), so that their mean
over replicas is the fraction of separable replicas.

The points, their order and their seeds follow :mod:`lesde.grid` (the grid grammar:
lists, ``{"start", "stop", "num"[, "scale"]}`` or ``{"values": [...]}``; the last key varies
fastest; point ``i`` runs with the seed ``point_seed(base.seed, i)`` whatever runs it, so a
sweep gives the same table on one thread, a process pool or a cluster). The table is a
:class:`~lesde.sweep_result.SweepResult`. :func:`expand_grid`, :func:`point_seed`,
:func:`config_hash` and :class:`SweepResult` are re-exported here.

Beyond one machine (docs/distributed.md): ``executor=client.get_executor()`` of a
dask.distributed Client, or ``mpi4py.futures.MPIPoolExecutor()``, runs one coarse task per
point (all its replicas); tasks take plain data and return only the point's rows. With
``out_dir`` every point's Result is saved as ``out_dir/points/<config_hash>.npz`` by its
own task, and calling the same sweep again skips the points already saved: an interrupted
sweep resumes, with the same table.

Ctrl-C (on the local thread pool): the first press starts no new point and lets the points
running finish (their files are saved); a second press stops those at the end of their
current chunk of steps (about :data:`lesde.engine.CHUNK_SECONDS`), losing their work. Either
way :func:`sweep` waits for its threads, so none is left inside the engine, and raises
:class:`SweepInterrupted` (a ``KeyboardInterrupt``) saying how many points are kept.

Examples
--------
>>> import lesde
>>> from lesde.sweep import sweep
>>> base = lesde.Config(n_classes=3, n_per_class=20, signal="linear", sigma=0.5,
...                     t_end=0.5, record_every=50, seed=1)
>>> res = sweep(base, {"alpha": [2.0, 0.5], "beta": [0.5]}, replicas=2, progress=False)
>>> res.table[["point", "replica", "alpha", "status"]].values.tolist()
[[0, 0, 2.0, 'ok'], [0, 1, 2.0, 'ok'], [1, 0, 0.5, 'ok'], [1, 1, 0.5, 'ok']]
>>> list(res.summary()["replicas_ok"])
[2, 2]
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import math
import os
import signal
import stat
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Executor, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from . import storage
from .config import Config, available_cores
from .engine import check_backend
from .grid import config_hash, expand_grid, point_seed, table_cell
from .storage import atomic_write_text
from .sweep_result import SweepResult
from .version import __version__, build_info

__all__ = [
    "LOCK_NAME",
    "SEPARABILITY_METHODS",
    "SweepFolderInUse",
    "SweepInterruptWarning",
    "SweepInterrupted",
    "SweepResult",
    "config_hash",
    "expand_grid",
    "label_noise_sweep",
    "phase_diagram",
    "point_seed",
    "sweep",
    "sweep_lock",
]

SEPARABILITY_METHODS = ("ncc", "argmax", "lp")
# Tries of a task that raises on a Dask executor (a worker that dies is handled by Dask).
DASK_RETRIES = 2


# ---------------------------------------------------------------------------- execution plan
def _plan(n_points: int, base: Config, own_executor: bool, max_workers: int | None):
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


class _PointStopped(Exception):
    """Raised in a point's thread, between two chunks of steps, when the sweep stops it."""


class _StopBetweenChunks:
    """A record writer (:class:`lesde.engine.RecordWriter`) that records nothing: after each
    chunk of steps it ends the run, with :class:`_PointStopped`, once ``stop`` is set. The
    engine's loop calls it between chunks, where the GIL is held and nothing is half done."""

    def __init__(self, stop: threading.Event):
        self.stop = stop

    def append(self, step: int, arrays) -> None:
        if self.stop.is_set():
            raise _PointStopped

    def close(self, result, arrays) -> None:
        pass


# ---------------------------------------------------------------------------- one point
def _load_point(path: str | os.PathLike, cfg: Config):
    """The saved Result of ``cfg`` at ``path``, or None when missing, damaged or not this run.

    A file is reused only if it loads (every member and shape is checked), holds the same
    config (threads aside), was not interrupted, keeps its features and was made by this
    lesde version with this build's random stream, so that the rows rebuilt from it equal
    a fresh run's.
    """
    from .result import load

    if not os.path.exists(path):
        return None
    try:
        res = load(path)
    except MemoryError:
        raise
    except Exception:  # damaged, truncated, unreadable: run the point again
        return None
    if (
        res.interrupted
        or config_hash(res.config) != config_hash(cfg)
        or res.features.shape[1] != cfg.n_samples
        or res.meta.get("random_stream_version") != build_info()["random_stream_version"]
        or res.meta.get("lesde_version") != __version__
    ):
        return None
    return res


def _run_point(
    cfg_dict: dict,
    separability: tuple[str, ...],
    lp_max_samples: int,
    out_path: str | None = None,
    stop: threading.Event | None = None,
) -> list[dict[str, Any]] | None:
    """Run one grid point; return one dict of plain values per replica.

    A top-level function of plain data, so any executor (threads, processes, Dask, MPI)
    can run it: the Config is rebuilt here from its dict, and only the rows go back.

    With ``out_path`` the point's Result is saved there (atomically; this task is the only
    writer of that file), and a file already there that holds this run is used instead
    of running again (a retried task whose first try got as far as saving).

    ``stop`` (the sweep's own threads only): once set, the run ends after its current chunk
    of steps, nothing is saved and None is returned.
    """
    cfg = Config.from_dict(cfg_dict)
    if stop is not None and stop.is_set():
        return None
    if out_path is not None:
        res = _load_point(out_path, cfg)
        if res is not None:
            return _result_rows(cfg, res, separability, lp_max_samples)
    try:
        res = _simulate_point(cfg, stop)
    except _PointStopped:
        return None
    except Exception as err:  # the point is kept in the table, the sweep goes on
        return _error_rows(cfg.replicas, err)
    if out_path is not None and not res.interrupted:
        _discard_unreadable_point(out_path)
        res.save(out_path)  # an OSError propagates: Dask retries the task (elsewhere)
    return _result_rows(cfg, res, separability, lp_max_samples)


def _discard_unreadable_point(path: str | os.PathLike) -> None:
    """Remove a regular file at a point's path that did not load as this point (cut short by
    a kill, damaged): the points folder is the sweep's own (its files are named by the hash
    of their config, and the sweep holds the folder's lock), so such a file is a broken
    point of this sweep, not the user's. Anything but a regular file is left for
    :meth:`lesde.Result.save` to refuse (the point becomes an error row)."""
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def _simulate_point(cfg: Config, stop: threading.Event | None):
    """``lesde.simulate(cfg, progress=False, on_nonfinite="ignore")``, built as simulate
    builds a run without checkpoints or a Zarr store (memory check, arrays, the engine's
    chunked loop), so that ``stop`` can end it between two chunks of steps."""
    from . import engine

    engine.check_memory(cfg)
    return engine.run_engine(
        cfg,
        engine.allocate(cfg),
        progress=False,
        on_nonfinite="ignore",
        zarr_writer=None if stop is None else _StopBetweenChunks(stop),
    )


def _result_rows(
    cfg: Config, res, separability: tuple[str, ...], lp_max_samples: int
) -> list[dict[str, Any]]:
    """The table rows of one point from its Result (fresh or loaded from a file)."""
    from . import metrics

    K, p = cfg.n_classes, cfg.p
    has_logits = cfg.head is not None or p == K
    rows = []
    for r in range(cfg.replicas):
        status = str(res.status[r])
        ok = status == "ok"
        row: dict[str, Any] = {"status": status, "message": "", "t_fail": math.nan}
        if not ok:
            step = int(res.fail_step[r])
            row["t_fail"] = step * cfg.dt if step >= 0 else math.nan
            row["message"] = (
                f"replica became non-finite at step {step} (t = {step * cfg.dt:g}); "
                "its metrics are left NaN"
            )
        for name, values in res.metrics.items():
            row[name] = float(values[r, -1]) if ok and values.shape[1] else math.nan
        row["loss_tail_exponent"] = (
            metrics.loss_tail_exponent(res.times, res.metrics["loss"][r]) if ok else math.nan
        )
        X, y = res.features[r], res.labels[r]
        for method in separability:
            column = f"separable_{method}"
            row[column] = math.nan
            if method == "lp":
                row["lp_subsampled"] = math.nan
            if not ok or (method == "argmax" and not has_logits):
                continue
            try:
                if method == "argmax":
                    sep = metrics.separable(X, y, method="argmax", head=cfg.head, n_classes=K)
                elif method == "lp":
                    sep = metrics.separable(
                        X, y, method="lp", max_samples=lp_max_samples, seed=r, n_classes=K
                    )
                    row["lp_subsampled"] = float(sep.subsampled)
                else:
                    sep = metrics.separable(X, y, method="ncc", n_classes=K)
            except Exception as err:  # a failed check leaves NaN and says why
                row["message"] += f"{column} failed: {type(err).__name__}: {err}. "
                continue
            row[column] = float(sep.separable)
        rows.append(row)
    return rows


def _error_rows(replicas: int, err: BaseException) -> list[dict[str, Any]]:
    message = f"{type(err).__name__}: {err}"
    return [{"status": "error", "message": message, "t_fail": math.nan}] * replicas


# ---------------------------------------------------------------------------- the sweep
def _check_separability(separability) -> tuple[str, ...]:
    if isinstance(separability, str):
        separability = (separability,)
    out: list[str] = []
    for method in separability:
        if method not in SEPARABILITY_METHODS:
            hint = difflib.get_close_matches(str(method), SEPARABILITY_METHODS, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(
                f"separability methods must be among {SEPARABILITY_METHODS}, got {method!r}{extra}"
            )
        if method not in out:
            out.append(method)
    return tuple(out)


def _as_executor(executor):
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


def _submit_options(executor) -> dict[str, Any]:
    """Extra ``submit`` options for a Dask client executor (``{}`` for any other).

    ``retries``: a task that raises (e.g. an I/O error while saving its file) is run again,
    on any worker. ``pure=False``: every submission runs (a task that writes a file must
    not be answered from a cached key). Options the user gave to ``get_executor`` win.
    A task whose worker dies is rescheduled by Dask itself, retries or not.
    """
    cfexecutor = sys.modules.get("distributed.cfexecutor")
    if cfexecutor is None or not isinstance(executor, cfexecutor.ClientExecutor):
        return {}
    given = getattr(executor, "_kwargs", {})
    options = {"retries": DASK_RETRIES, "pure": False}
    return {k: v for k, v in options.items() if k not in given}


def sweep(
    base: Config,
    grid: Mapping[str, Any],
    replicas: int | None = None,
    executor: Executor | None = None,
    max_workers: int | None = None,
    progress: bool | None = None,
    separability=("ncc", "argmax"),
    lp_max_samples: int = 3000,
    out_dir: str | os.PathLike | None = None,
) -> SweepResult:
    """Run ``base`` at every point of ``grid``; one table row per (point, replica).

    Parameters
    ----------
    base : Config
        Fields not in the grid come from here.
    grid : dict
        Config field name -> list of values, ``{"start", "stop", "num"}`` (linspace;
        ``"scale": "log"`` for geomspace) or ``{"values": [...]}``. See :mod:`lesde.grid`
        for the order of the points and their seeds.
    replicas : int, optional
        Replicas per point (default ``base.replicas``).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Runs the points, one task per point (all its replicas). Default: a local
        ThreadPoolExecutor (the engine releases the GIL) with ``workers x threads per run
        <= cores``. Any executor works: ProcessPoolExecutor, ``client.get_executor()`` of
        a dask.distributed Client (or the Client itself), ``mpi4py.futures.MPIPoolExecutor``;
        tasks are a top-level function of plain data that returns only the rows. With a
        foreign executor each run gets ``base.threads`` threads, or ``cores // max_workers``
        when ``max_workers`` is given, else 1. On a Dask executor tasks are submitted with
        ``retries=2`` and ``pure=False`` (unless given to ``get_executor``); a task whose
        worker dies is rescheduled by Dask on another worker.
    max_workers : int, optional
        Concurrent runs (default: as many as cores, at most one per point).
    progress : bool, optional
        A tqdm bar counting finished points; ``None`` shows it on a terminal only.
    separability : sequence of {"ncc", "argmax", "lp"}
        Separability columns to compute on each replica's final features.
    lp_max_samples : int
        Largest number of samples the exact LP looks at (a stratified subsample above it).
    out_dir : path, optional
        A folder for the sweep's files (on a file system that every worker sees, for a
        cluster). Each point's task saves its Result as ``out_dir/points/<hash>.npz``
        (:func:`config_hash`; one writer per file, written atomically). A point whose file
        is already there and loads is not run again: its rows are rebuilt from the file,
        so calling the same sweep again finishes an interrupted one, and the table is the
        same as an uninterrupted run's. At the end ``table.csv`` and ``summary.csv`` are
        written (atomically). Without ``out_dir`` nothing is written. One sweep writes a
        folder at a time (:func:`sweep_lock`): a second one raises
        :class:`SweepFolderInUse` at once.

    Returns
    -------
    SweepResult
        ``meta`` also holds, with ``out_dir``: ``out_dir``, ``point_files`` (the file of
        each point, in point order), ``points_reused`` (found on disk) and ``points_run``.

    Notes
    -----
    Every point's Config is built (and validated) before anything runs: an invalid
    combination raises at once, naming the point. A run that raises, or a replica that
    becomes non-finite, is kept in the table with status "error" or "nonfinite" and a
    message, and the sweep goes on (a point that raised has no file, so a later call with
    the same ``out_dir`` runs it again).

    Ctrl-C raises :class:`SweepInterrupted` (a ``KeyboardInterrupt``) with the number of
    points kept in ``out_dir``. On the default thread pool the first press starts no new
    point and waits for the points running, which finish and are saved (a
    :class:`SweepInterruptWarning` says how many); a second press stops them after their
    current chunk of steps (their work is lost). The sweep's threads have ended when it
    raises. With another executor the first press cancels the queued tasks and waits for
    the running ones, the second returns at once and leaves those to the executor.

    Examples
    --------
    >>> import lesde
    >>> base = lesde.Config(n_classes=2, n_per_class=10, signal="linear", t_end=0.2)
    >>> res = sweep(base, {"sigma": [0.0, 1.0]}, replicas=3, progress=False)
    >>> res.table.shape[0], res.meta["separability"]
    (6, ('ncc', 'argmax'))
    """
    if not isinstance(base, Config):
        raise TypeError(f"base must be a lesde.Config, got {type(base).__name__}")
    executor = _as_executor(executor)
    check_backend(base.backend)  # the grid's backends: expand_grid
    values = expand_grid(grid)
    methods = _check_separability(separability)
    _check_lp_max_samples(lp_max_samples)
    R = base.replicas if replicas is None else replicas
    combos = list(itertools.product(*values.values()))
    workers, threads = _plan(len(combos), base, executor is None, max_workers)
    configs = _point_configs(base, values, combos, R, threads)

    started = time.perf_counter()
    folder = _make_folder(out_dir)
    with contextlib.nullcontext() if folder is None else sweep_lock(folder):
        paths = _point_files(folder, configs)
        try:
            outcomes = _load_finished(configs, paths, methods, lp_max_samples)
            reused = len(outcomes)
            tasks = {
                index: (cfg.to_dict(), methods, lp_max_samples, None if path is None else str(path))
                for index, (cfg, path) in enumerate(zip(configs, paths, strict=True))
                if index not in outcomes
            }
            ran, interrupted = _run_missing(tasks, R, executor, workers, len(configs), progress)
            outcomes.update(ran)
            if interrupted:
                raise SweepInterrupted(_points_kept(folder, outcomes), len(configs), folder)
        except SweepInterrupted:
            raise
        except KeyboardInterrupt:  # outside the points' run (reading the finished ones)
            kept = 0 if folder is None else sum(os.path.exists(p) for p in paths)
            raise SweepInterrupted(kept, len(configs), folder) from None
        table = _assemble_table(configs, values, combos, outcomes)

        meta = {
            "workers": workers,
            "threads": threads,
            "wall_seconds": time.perf_counter() - started,
            "separability": methods,
        }
        if folder is not None:
            meta.update(
                out_dir=str(folder),
                point_files=[str(p) for p in paths],
                points_reused=reused,
                points_run=len(tasks),
            )
        result = SweepResult(table, base, values, meta)
        if folder is not None:
            _write_files(folder, paths, result)
    return result


def _check_lp_max_samples(lp_max_samples) -> None:
    if isinstance(lp_max_samples, bool) or not isinstance(lp_max_samples, int):
        raise TypeError(f"lp_max_samples must be an integer, got {lp_max_samples!r}")
    if lp_max_samples < 2:
        raise ValueError(f"lp_max_samples must be >= 2, got {lp_max_samples}")


def _point_configs(base: Config, values: dict, combos: list, R: int, threads: int) -> list:
    """Step 1: the Config of every point, all built (and validated) before anything runs."""
    configs = []
    for index, combo in enumerate(combos):
        changes = dict(zip(values, combo, strict=True))
        try:
            cfg = base.replace(
                **changes, replicas=R, seed=point_seed(base.seed, index), threads=threads
            )
        except (TypeError, ValueError) as err:
            where = ", ".join(f"{k}={v!r}" for k, v in changes.items())
            raise type(err)(f"grid point {index} ({where}): {err}") from None
        configs.append(cfg)
    return configs


def _make_folder(out_dir) -> Path | None:
    """Step 2: the sweep's folder, created (None without ``out_dir``)."""
    if out_dir is None:
        return None
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out_dir {str(folder)!r} exists and is not a folder")
    (folder / "points").mkdir(parents=True, exist_ok=True)
    return folder


def _point_files(folder: Path | None, configs: list) -> list:
    """Each point's result file (None without a folder)."""
    if folder is None:
        return [None] * len(configs)
    return [folder / "points" / f"{config_hash(cfg)}.npz" for cfg in configs]


# ---------------------------------------------------------------------------- one writer
class SweepFolderInUse(storage.InUseError):
    """Another sweep (another process, or another thread) is writing this folder."""


#: The lock file in a sweep folder; it stays there, locked only while a sweep runs.
LOCK_NAME = ".lesde-sweep.lock"


def sweep_lock(folder: str | os.PathLike):
    """Hold the lock of a sweep folder: one sweep writes a folder at a time.

    The lock is an exclusive ``flock`` on ``folder/.lesde-sweep.lock``
    (:func:`lesde.storage.exclusive_lock`), which also says who holds it (pid and host).
    The system drops it when its holder exits or is killed, so a crashed sweep never leaves
    the folder locked. A second sweep of the same folder gets a :class:`SweepFolderInUse`
    at once, naming the holder. The thread that holds the lock may take it again
    (:func:`sweep` inside a caller that already holds it).

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with sweep_lock(folder):
    ...     with sweep_lock(folder):  # the same thread: fine
    ...         pass
    """
    return storage.exclusive_lock(
        Path(folder) / LOCK_NAME,
        what=f"sweep folder {str(folder)!r}",
        holder="sweep",
        error=SweepFolderInUse,
    )


def _load_finished(configs: list, paths: list, methods, lp_max_samples: int) -> dict:
    """Step 3: the rows of every point whose result file is already there (a resumed sweep)."""
    outcomes = {}
    for index, (cfg, path) in enumerate(zip(configs, paths, strict=True)):
        res = None if path is None else _load_point(path, cfg)
        if res is not None:
            outcomes[index] = _result_rows(cfg, res, methods, lp_max_samples)
    return outcomes


def _points_kept(folder: Path | None, outcomes: dict) -> int:
    """Points whose result file is in the folder: every point with an outcome but those
    whose run raised (error rows only; nothing was saved)."""
    if folder is None:
        return 0
    return sum(any(row["status"] != "error" for row in rows) for rows in outcomes.values())


def _run_missing(
    tasks: dict, replicas: int, executor, workers, total: int, progress
) -> tuple[dict, bool]:
    """Step 4: run ``tasks`` (point index -> arguments of :func:`_run_point`); their rows,
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
        options = _submit_options(pool)
        finished = False
        try:
            for index, args in tasks.items():
                if presses.count:
                    break
                task = (*args, stop) if own else args
                futures[pool.submit(_run_point, *task, **options)] = index
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
                rows = _error_rows(replicas, err)
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


def _assemble_table(configs: list, values: dict, combos: list, outcomes: dict):
    """Step 5: one row per (point, replica), identifiers first, then the outcomes."""
    import pandas as pd

    rows = []
    for index, cfg in enumerate(configs):
        head = {"point": index}
        head.update({k: table_cell(v) for k, v in zip(values, combos[index], strict=True)})
        head.update(seed=cfg.seed, noise_seed=cfg.effective_noise_seed)
        for r, outcome in enumerate(outcomes[index]):
            row = {**head, "replica": r, **outcome}
            if "t_end" not in values:
                row["t_end"] = cfg.n_steps * cfg.dt
            rows.append(row)
    table = pd.DataFrame(rows)
    first = ["point", "replica", *values, "seed", "noise_seed", "status", "message", "t_end"]
    first = [c for c in dict.fromkeys(first) if c in table.columns]
    table = table[first + [c for c in table.columns if c not in first]]
    return table.astype({"seed": np.uint64, "noise_seed": np.uint64})


def _write_files(folder: Path, paths: list, result: SweepResult) -> None:
    """Step 6: ``table.csv`` and ``summary.csv``, once every task has finished."""
    _remove_partial_files(folder / "points", {p.name for p in paths})
    atomic_write_text(folder / "table.csv", result.table.to_csv(index=False))
    atomic_write_text(folder / "summary.csv", result.summary().to_csv())


def _remove_partial_files(folder: Path, names: set[str]) -> None:
    """Delete the temporary files that killed writers of these point files left behind.

    Called once every task of the sweep has finished, so none of them is still writing.
    """
    for entry in os.listdir(folder):
        if entry.startswith(".") and entry.endswith(".tmp"):
            target = entry[1:].rsplit(".", 2)[0]  # .<name>.<random>.tmp -> <name>
            if target in names:
                try:
                    os.unlink(folder / entry)
                except FileNotFoundError:  # pragma: no cover - removed meanwhile
                    pass


def phase_diagram(
    base: Config, alphas, betas, replicas: int | None = None, **kwargs
) -> SweepResult:
    """Sweep the alpha x beta plane (alpha the outer, beta the inner loop).

    ``alphas`` and ``betas`` follow the grid grammar of :func:`sweep` (lists or
    ``{"start", "stop", "num"}``); ``kwargs`` go to :func:`sweep`. The theory (docs/model.md
    section 3) puts the boundary of separability at alpha = beta.

    Examples
    --------
    >>> import lesde
    >>> base = lesde.Config(n_classes=3, n_per_class=10, signal="linear", t_end=0.2)
    >>> res = phase_diagram(base, [0.5, 2.0], [0.5, 2.0], progress=False)
    >>> res.table[["alpha", "beta"]].values.tolist()
    [[0.5, 0.5], [0.5, 2.0], [2.0, 0.5], [2.0, 2.0]]
    """
    return sweep(base, {"alpha": alphas, "beta": betas}, replicas=replicas, **kwargs)


def label_noise_sweep(base: Config, p_errs, replicas: int | None = None, **kwargs) -> SweepResult:
    """Sweep the label-corruption probability p_err (Config field ``label_noise``).

    With the cross-entropy signal and alpha > beta the clean accuracy falls below chance
    (1/K) past p_err = (K-1)/K (docs/model.md section 3). ``kwargs`` go to :func:`sweep`.

    Examples
    --------
    >>> import lesde
    >>> base = lesde.Config(n_classes=3, n_per_class=10, alpha=2.0, t_end=0.2)
    >>> res = label_noise_sweep(base, [0.0, 0.5], replicas=2, progress=False)
    >>> res.summary()["label_noise"].tolist()
    [0.0, 0.5]
    """
    return sweep(base, {"label_noise": p_errs}, replicas=replicas, **kwargs)
