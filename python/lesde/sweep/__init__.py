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

The points, their order and their seeds follow :mod:`lesde.sweep.grid` (the grid grammar:
lists, ``{"start", "stop", "num"[, "scale"]}`` or ``{"values": [...]}``; the last key varies
fastest; point ``i`` runs with the seed ``point_seed(base.seed, i)`` whatever runs it, so a
sweep gives the same table on one thread, a process pool or a cluster). The table is a
:class:`~lesde.sweep.result.SweepResult`. :func:`expand_grid`, :func:`point_seed`,
:func:`config_hash` and :class:`SweepResult` are re-exported here.

The parts: :mod:`lesde.sweep.grid` (points and seeds), :mod:`lesde.sweep.point` (one point:
run it, reuse its file, its rows), :mod:`lesde.sweep.run` (workers, executors, Ctrl-C),
:mod:`lesde.sweep.folder` (the folder's files and lock) and :mod:`lesde.sweep.result` (the
table); this module holds :func:`sweep` itself and re-exports the public names.

Beyond one machine (docs/distributed.md): ``executor=client.get_executor()`` of a
dask.distributed Client, or ``mpi4py.futures.MPIPoolExecutor()``, runs one coarse task per
point (all its replicas); tasks take plain data and return only the point's rows. With
``out_dir`` every point's Result is saved as ``out_dir/points/<config_hash>.npz`` by its
own task, and calling the same sweep again skips the points already saved: an interrupted
sweep resumes, with the same table.

Ctrl-C (on the local thread pool): the first press starts no new point and lets the points
running finish (their files are saved); a second press stops those at the end of their
current chunk of steps (about :data:`lesde.sim.engine.CHUNK_SECONDS`), losing their work. Either
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
import os
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from typing import Any

import numpy as np

from ..sim.config import Config
from ..sim.engine import check_backend
from .folder import (
    LOCK_NAME,
    SweepFolderInUse,
    load_finished,
    make_folder,
    point_files,
    points_kept,
    sweep_lock,
    write_files,
)
from .grid import config_hash, expand_grid, point_seed, table_cell
from .result import SweepResult
from .run import SweepInterrupted, SweepInterruptWarning, as_executor, plan_workers, run_points

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
        ``"scale": "log"`` for geomspace) or ``{"values": [...]}``. See :mod:`lesde.sweep.grid`
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
    executor = as_executor(executor)
    check_backend(base.backend)  # the grid's backends: expand_grid
    values = expand_grid(grid)
    methods = _check_separability(separability)
    _check_lp_max_samples(lp_max_samples)
    R = base.replicas if replicas is None else replicas
    combos = list(itertools.product(*values.values()))
    workers, threads = plan_workers(len(combos), base, executor is None, max_workers)
    configs = _point_configs(base, values, combos, R, threads)

    started = time.perf_counter()
    folder = make_folder(out_dir)
    with contextlib.nullcontext() if folder is None else sweep_lock(folder):
        paths = point_files(folder, configs)
        try:
            outcomes = load_finished(configs, paths, methods, lp_max_samples)
            reused = len(outcomes)
            tasks = {
                index: (cfg.to_dict(), methods, lp_max_samples, None if path is None else str(path))
                for index, (cfg, path) in enumerate(zip(configs, paths, strict=True))
                if index not in outcomes
            }
            ran, interrupted = run_points(tasks, R, executor, workers, len(configs), progress)
            outcomes.update(ran)
            if interrupted:
                raise SweepInterrupted(points_kept(folder, outcomes), len(configs), folder)
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
            write_files(folder, paths, result)
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
