"""Parameter sweeps: run a grid of configurations and collect one tidy table.

A sweep takes a base :class:`~lesde.Config` and a *grid* that maps Config field names to
lists of values. Every point of the Cartesian product runs one :func:`lesde.simulate` call
with ``replicas`` replicas, and every replica becomes one row of a pandas DataFrame: the
grid values, the seeds, the status, the final value of every recorded metric and two
readings of separability (MODEL.md section 3):

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

Grid grammar (explicit; strings are never evaluated)::

    {"alpha": [0.5, 1.0, 2.0],                       # a list (or tuple, or 1-D array)
     "beta": {"start": 0.0, "stop": 2.0, "num": 5},  # numpy.linspace(start, stop, num)
     "sigma": {"start": 0.1, "stop": 10, "num": 3, "scale": "log"},  # numpy.geomspace
     "signal": {"values": ["linear", "projected"]}}   # same as a list

Points are numbered in the order of :func:`itertools.product` over the grid's keys in
insertion order: the *last* key varies fastest. Point ``i`` runs with the seed
``point_seed(base.seed, i)``, whatever executor or worker runs it, so a sweep gives the same
table on one thread, many threads, a process pool or a cluster. (A ``noise_seed`` set on
the base config is kept at every point: all points then share their Brownian increments.)

Beyond one machine (docs/distributed.md): ``executor=client.get_executor()`` of a
dask.distributed Client, or ``mpi4py.futures.MPIPoolExecutor()``, runs one coarse task per
point (all its replicas); tasks take plain data and return only the point's rows. With
``out_dir`` every point's Result is saved as ``out_dir/points/<config_hash>.npz`` by its
own task, and calling the same sweep again skips the points already saved: an interrupted
sweep resumes, with the same table.

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

import dataclasses
import difflib
import hashlib
import importlib.util
import itertools
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config, available_cores

__all__ = [
    "SEPARABILITY_METHODS",
    "SweepResult",
    "config_hash",
    "expand_grid",
    "label_noise_sweep",
    "phase_diagram",
    "point_seed",
    "sweep",
]

SEPARABILITY_METHODS = ("ncc", "argmax", "lp")
STATS = ("mean", "sem", "median", "q05", "q95", "count")
# Tries of a task that raises on a Dask executor (a worker that dies is handled by Dask).
DASK_RETRIES = 2

# Fields a grid may not name, and why.
_NOT_SWEEPABLE = {
    "seed": "each point's seed is derived from base.seed and the point index",
    "noise_seed": "set it on the base config (shared by all points) or leave it to the seed",
    "replicas": "pass replicas=... to the sweep",
    "threads": "the sweep sets threads from the cores available and the number of workers",
}
# Table columns that are identifiers or settings, not outcomes (excluded from summary()).
_ID_COLUMNS = ("point", "replica", "seed", "noise_seed", "status", "message", "t_end", "t_fail")


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "lesde sweeps build pandas DataFrames; install the extra: pip install 'lesde[sweep]'"
        ) from None
    return pd


def point_seed(seed: int, index: int) -> int:
    """The seed of grid point ``index`` of a sweep whose base config has ``seed``.

    It depends on these two numbers only (never on the worker that runs the point).

    Examples
    --------
    >>> point_seed(0, 3) == point_seed(0, 3) != point_seed(0, 4)
    True
    """
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)
    return int(state[0])


# ---------------------------------------------------------------------------- grid grammar
def _plain_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _grid_values(name: str, spec: Any) -> list:
    where = f"grid[{name!r}]"
    if isinstance(spec, Mapping):
        keys = set(spec)
        if keys == {"values"}:
            return _grid_values(name, spec["values"])
        if {"start", "stop", "num"} <= keys <= {"start", "stop", "num", "scale"}:
            start, stop = spec["start"], spec["stop"]
            for key, v in (("start", start), ("stop", stop)):
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                    raise TypeError(f"{where}: {key} must be a number, got {v!r}")
                if not math.isfinite(float(v)):
                    raise ValueError(f"{where}: {key} must be finite, got {v!r}")
            num = spec["num"]
            if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
                raise ValueError(f"{where}: num must be an integer >= 1, got {num!r}")
            scale = spec.get("scale", "linear")
            if scale == "linear":
                values = np.linspace(float(start), float(stop), int(num))
            elif scale == "log":
                if float(start) <= 0 or float(stop) <= 0:
                    raise ValueError(f"{where}: scale 'log' needs start > 0 and stop > 0")
                values = np.geomspace(float(start), float(stop), int(num))
            else:
                raise ValueError(f"{where}: scale must be 'linear' or 'log', got {scale!r}")
            return [float(v) for v in values]
        raise ValueError(
            f"{where}: a dict must have the keys {{'start', 'stop', 'num'}} (and optionally "
            f"'scale': 'linear' or 'log'), or the single key 'values'; got {sorted(keys)}"
        )
    if isinstance(spec, (str, bytes)) or not hasattr(spec, "__iter__"):
        raise TypeError(
            f"{where} must be a list of values or a dict ({{'start', 'stop', 'num'}} or "
            f"{{'values': [...]}}); for a single value write [{spec!r}]"
        )
    values = [_plain_value(v) for v in spec]
    if not values:
        raise ValueError(f"{where} is empty: give at least one value")
    return values


def expand_grid(grid: Mapping[str, Any]) -> dict[str, list]:
    """Check a grid and expand every entry to its list of values.

    Raises ValueError for an unknown Config field (with a did-you-mean hint) or a field
    that a sweep sets itself (seed, noise_seed, replicas, threads).

    Examples
    --------
    >>> expand_grid({"alpha": {"start": 0.0, "stop": 1.0, "num": 3}, "signal": ["linear"]})
    {'alpha': [0.0, 0.5, 1.0], 'signal': ['linear']}
    >>> expand_grid({"alhpa": [1.0]})
    Traceback (most recent call last):
    ...
    ValueError: unknown Config field 'alhpa' in the grid; did you mean 'alpha'?
    """
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a dict of Config field name -> values, got {grid!r}")
    if not grid:
        raise ValueError("grid is empty: name at least one Config field to vary")
    fields = [f.name for f in dataclasses.fields(Config)]
    out = {}
    for name, spec in grid.items():
        if name not in fields:
            hint = difflib.get_close_matches(str(name), fields, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else f"; fields: {', '.join(fields)}"
            raise ValueError(f"unknown Config field {name!r} in the grid{extra}")
        if name in _NOT_SWEEPABLE:
            raise ValueError(f"{name!r} cannot be swept: {_NOT_SWEEPABLE[name]}")
        out[name] = _grid_values(name, spec)
    return out


def _cell(value: Any) -> Any:
    """A grid value as a table cell: numbers and strings as they are, anything else as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


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


# ---------------------------------------------------------------------------- one point
def config_hash(cfg: Config) -> str:
    """The SHA-256 (hex) of a point's resolved config: the name of its file in a sweep folder.

    It hashes the TOML text of the resolved config (every default filled in, fields in
    their declaration order, ``threads`` set to 1): every field that decides the result
    (seed and replicas included) counts, the thread count does not (results do not depend
    on it, and its default depends on the machine), and two spellings of one run
    (``t_end`` or ``steps``, ``n_per_class`` or ``class_sizes``) hash alike. The text is the
    same in every process on every machine, so is the hash.

    Examples
    --------
    >>> a = Config(n_classes=2, alpha=2.0, seed=5)
    >>> config_hash(a) == config_hash(a.replace(threads=4)) != config_hash(a.replace(seed=6))
    True
    >>> len(config_hash(a))
    64
    """
    resolved = Config.from_dict(cfg.replace(threads=1).to_dict(resolved=True))
    text = resolved.to_toml()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _load_point(path: str | os.PathLike, cfg: Config):
    """The saved Result of ``cfg`` at ``path``, or None when missing, damaged or not this run.

    A file is reused only if it loads (every member and shape is checked), holds the same
    config (threads aside), was not interrupted, keeps its features and was made by this
    lesde version with this build's random stream, so that the rows rebuilt from it equal
    a fresh run's.
    """
    from . import __version__, _core
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
        or res.meta.get("random_stream_version") != int(_core.RANDOM_STREAM_VERSION)
        or res.meta.get("lesde_version") != __version__
    ):
        return None
    return res


def _run_point(
    cfg_dict: dict,
    separability: tuple[str, ...],
    lp_max_samples: int,
    out_path: str | None = None,
) -> list[dict[str, Any]]:
    """Run one grid point; return one dict of plain values per replica.

    A top-level function of plain data, so any executor (threads, processes, Dask, MPI)
    can run it: the Config is rebuilt here from its dict, and only the rows go back.

    With ``out_path`` the point's Result is saved there (atomically; this task is the only
    writer of that file), and a file already there that holds this run is used instead
    of running again (a retried task whose first try got as far as saving).
    """
    from .simulate import simulate

    cfg = Config.from_dict(cfg_dict)
    if out_path is not None:
        res = _load_point(out_path, cfg)
        if res is not None:
            return _result_rows(cfg, res, separability, lp_max_samples)
    try:
        res = simulate(cfg, progress=False, on_nonfinite="ignore")
    except Exception as err:  # the point is kept in the table, the sweep goes on
        return _error_rows(cfg.replicas, err)
    if out_path is not None and not res.interrupted:
        res.save(out_path)  # an OSError propagates: Dask retries the task (elsewhere)
    return _result_rows(cfg, res, separability, lp_max_samples)


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


# ---------------------------------------------------------------------------- the result
class SweepResult:
    """The outcome of :func:`sweep`: one table row per (point, replica).

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``point``, ``replica``, the grid fields, ``seed``, ``noise_seed``,
        ``status`` ("ok", "nonfinite" or "error"), ``message``, ``t_end`` (the run's
        horizon; a swept ``t_end`` column holds the requested value), ``t_fail`` (time of
        a non-finite failure, else NaN), the final value of every recorded metric,
        ``loss_tail_exponent`` and the ``separable_*`` columns. Rows are sorted by point,
        then replica. Metrics of a replica whose status is not "ok" are NaN.
    base : Config
        The base configuration.
    grid : dict
        Field name -> the list of values swept.
    meta : dict
        ``workers``, ``threads`` (per run), ``wall_seconds``, ``separability``.
    """

    def __init__(self, table, base: Config, grid: dict[str, list], meta: dict | None = None):
        self.table = table
        self.base = base
        self.grid = grid
        self.meta = dict(meta or {})

    def __repr__(self) -> str:
        t = self.table
        status = t["status"].value_counts().to_dict() if len(t) else {}
        grid = ", ".join(f"{k}: {len(v)}" for k, v in self.grid.items())
        return (
            f"SweepResult(points={t['point'].nunique() if len(t) else 0}, rows={len(t)}, "
            f"grid={{{grid}}}, status={status})"
        )

    @property
    def metric_columns(self) -> list[str]:
        """The numeric outcome columns that :meth:`summary` describes."""
        pd = _pandas()
        skip = set(_ID_COLUMNS) | set(self.grid)
        return [
            c
            for c in self.table.columns
            if c not in skip
            and pd.api.types.is_numeric_dtype(self.table[c])
            and not pd.api.types.is_bool_dtype(self.table[c])
        ]

    def points(self):
        """One row per point: its grid values (index: ``point``)."""
        cols = ["point", *self.grid]
        return self.table[cols].drop_duplicates("point").set_index("point")

    def summary(self, metrics=None):
        """Statistics over replicas, one row per point.

        For every numeric metric ``m`` (or those named in ``metrics``): ``m_mean``,
        ``m_sem`` (standard error, ``std(ddof=1) / sqrt(count)``), ``m_median``, ``m_q05``,
        ``m_q95`` (5% and 95% quantiles) and ``m_count`` (finite values: NaN rows from
        failed replicas are left out). Also ``replicas`` and ``replicas_ok`` per point.

        Returns
        -------
        pandas.DataFrame indexed by ``point``, with the grid columns first.
        """
        pd = _pandas()
        names = self.metric_columns if metrics is None else list(metrics)
        unknown = [m for m in names if m not in self.table.columns]
        if unknown:
            hint = difflib.get_close_matches(unknown[0], self.metric_columns, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise KeyError(f"no metric column {unknown[0]!r} in the sweep table{extra}")
        t = self.table
        g = t.groupby("point", sort=True)
        parts = [self.points()]
        counts = pd.DataFrame(
            {"replicas": g.size(), "replicas_ok": g["status"].agg(lambda s: int((s == "ok").sum()))}
        )
        parts.append(counts)
        if "t_end" in t.columns and "t_end" not in self.grid:
            parts.append(g[["t_end"]].first())
        if names:
            values = t[["point", *names]].astype({m: float for m in names})
            gv = values.groupby("point", sort=True)
            count = gv.count()
            stats = {
                "mean": gv.mean(),
                "sem": gv.std(ddof=1) / np.sqrt(count.where(count > 0)),
                "median": gv.median(),
                "q05": gv.quantile(0.05),
                "q95": gv.quantile(0.95),
                "count": count,
            }
            cols = {f"{m}_{s}": stats[s][m] for m in names for s in STATS}
            parts.append(pd.DataFrame(cols))
        return pd.concat(parts, axis=1)

    def to_csv(self, path, **kwargs) -> None:
        """Write the table as CSV (``kwargs`` go to :meth:`pandas.DataFrame.to_csv`)."""
        self.table.to_csv(path, index=False, **kwargs)

    def to_parquet(self, path, **kwargs) -> None:
        """Write the table as Parquet (needs pyarrow or fastparquet)."""
        if not any(importlib.util.find_spec(m) for m in ("pyarrow", "fastparquet")):
            raise ImportError(
                "SweepResult.to_parquet needs a Parquet engine: pip install pyarrow (or use to_csv)"
            )
        self.table.to_parquet(path, index=False, **kwargs)


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


def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path``: readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
        ``"scale": "log"`` for geomspace) or ``{"values": [...]}``. See the module docstring
        for the order of the points.
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
        written (atomically). Without ``out_dir`` nothing is written.

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
    """
    if not isinstance(base, Config):
        raise TypeError(f"base must be a lesde.Config, got {type(base).__name__}")
    pd = _pandas()
    executor = _as_executor(executor)
    values = expand_grid(grid)
    methods = _check_separability(separability)
    if isinstance(lp_max_samples, bool) or not isinstance(lp_max_samples, int):
        raise TypeError(f"lp_max_samples must be an integer, got {lp_max_samples!r}")
    if lp_max_samples < 2:
        raise ValueError(f"lp_max_samples must be >= 2, got {lp_max_samples}")
    R = base.replicas if replicas is None else replicas
    combos = list(itertools.product(*values.values()))
    workers, threads = _plan(len(combos), base, executor is None, max_workers)

    configs: list[Config] = []
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

    started = time.perf_counter()
    outcomes: dict[int, list[dict[str, Any]]] = {}
    paths: list[Path | None] = [None] * len(configs)
    if out_dir is not None:
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")
        (out / "points").mkdir(parents=True, exist_ok=True)
        paths = [out / "points" / f"{config_hash(cfg)}.npz" for cfg in configs]
        for index, cfg in enumerate(configs):  # resume: rebuild rows of finished points
            res = _load_point(paths[index], cfg)
            if res is not None:
                outcomes[index] = _result_rows(cfg, res, methods, lp_max_samples)
    reused = len(outcomes)

    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(configs),
        initial=reused,
        unit="point",
        desc="lesde sweep",
        disable=None if progress is None else not progress,
    )
    todo = [index for index in range(len(configs)) if index not in outcomes]
    own = executor is None
    pool = None
    if todo:
        pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lesde-sweep")
            if own
            else executor
        )
    options = _submit_options(pool)
    futures: dict = {}
    clean_exit = False
    try:
        for index in todo:
            path = None if paths[index] is None else str(paths[index])
            args = (configs[index].to_dict(), methods, lp_max_samples)
            if path is not None:
                args += (path,)
            futures[pool.submit(_run_point, *args, **options)] = index
        for future in as_completed(futures):  # rows stream back as points finish
            index = futures.pop(future)
            try:
                outcomes[index] = future.result()
            except Exception as err:  # e.g. the executor could not run or pickle the task
                outcomes[index] = _error_rows(configs[index].replicas, err)
            bar.update(1)
        clean_exit = True
    finally:
        bar.close()
        if not clean_exit:  # interrupted or failed: do not leave work queued anywhere
            for future in futures:
                future.cancel()
        if own and pool is not None:
            pool.shutdown(wait=clean_exit, cancel_futures=True)

    rows = []
    for index, cfg in enumerate(configs):
        head = {"point": index}
        head.update({k: _cell(v) for k, v in zip(values, combos[index], strict=True)})
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
    table = table.astype({"seed": np.uint64, "noise_seed": np.uint64})
    meta = {
        "workers": workers,
        "threads": threads,
        "wall_seconds": time.perf_counter() - started,
        "separability": methods,
    }
    if out_dir is not None:
        meta.update(
            out_dir=str(out),
            point_files=[str(p) for p in paths],
            points_reused=reused,
            points_run=len(todo),
        )
    result = SweepResult(table, base, values, meta)
    if out_dir is not None:
        _remove_partial_files(out / "points", {p.name for p in paths})
        _atomic_write_text(out / "table.csv", table.to_csv(index=False))
        _atomic_write_text(out / "summary.csv", result.summary().to_csv())
    return result


def phase_diagram(
    base: Config, alphas, betas, replicas: int | None = None, **kwargs
) -> SweepResult:
    """Sweep the alpha x beta plane (alpha the outer, beta the inner loop).

    ``alphas`` and ``betas`` follow the grid grammar of :func:`sweep` (lists or
    ``{"start", "stop", "num"}``); ``kwargs`` go to :func:`sweep`. The theory (MODEL.md
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
    (1/K) past p_err = (K-1)/K (MODEL.md section 3). ``kwargs`` go to :func:`sweep`.
    """
    return sweep(base, {"label_noise": p_errs}, replicas=replicas, **kwargs)
