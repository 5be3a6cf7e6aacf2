"""One grid point of a sweep: run it (or reuse its saved file) and turn it into table rows.

A point is a top-level function of plain data, :func:`run_point`, so that any executor
(threads, processes, Dask, MPI) can run it and send back only the rows. With a file path the
point saves its Result there, and a file already there that holds this very run is used
instead of running again (:func:`load_point`). :func:`result_rows` reads the rows off a
Result: the final value of every metric, the loss tail exponent and the separability
columns.

Examples
--------
>>> import lesde
>>> from lesde.sweep.point import run_point
>>> cfg = lesde.Config(n_classes=2, n_per_class=10, signal="linear", t_end=0.2, replicas=2)
>>> rows = run_point(cfg.to_dict(), ("ncc",), 100)
>>> [row["status"] for row in rows], rows[0]["separable_ncc"] in (0.0, 1.0)
(['ok', 'ok'], True)
"""

from __future__ import annotations

import math
import os
import stat
import threading
from typing import Any

from ..sim.config import Config
from ..version import __version__, build_info
from .grid import config_hash

__all__ = ["error_rows", "load_point", "result_rows", "run_point"]


class _PointStopped(Exception):
    """Raised in a point's thread, between two chunks of steps, when the sweep stops it."""


class _StopBetweenChunks:
    """A record writer (:class:`lesde.sim.engine.RecordWriter`) that records nothing: after each
    chunk of steps it ends the run, with :class:`_PointStopped`, once ``stop`` is set. The
    engine's loop calls it between chunks, where the GIL is held and nothing is half done."""

    def __init__(self, stop: threading.Event):
        self.stop = stop

    def append(self, step: int, arrays) -> None:
        if self.stop.is_set():
            raise _PointStopped

    def close(self, result, arrays) -> None:
        pass


def load_point(path: str | os.PathLike, cfg: Config):
    """The saved Result of ``cfg`` at ``path``, or None when missing, damaged or not this run.

    A file is reused only if it loads (every member and shape is checked), holds the same
    config (threads aside), was not interrupted, keeps its features and was made by this
    lesde version with this build's random stream and order of sums, so that the rows
    rebuilt from it equal a fresh run's.
    """
    from ..sim.result import load

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
        # the order sums are added in (reduce.hpp); results saved before it was recorded
        # were summed in order 1
        or res.meta.get("reduction_order", 1) != build_info()["reduction_order"]
        or res.meta.get("lesde_version") != __version__
    ):
        return None
    return res


def run_point(
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
        res = load_point(out_path, cfg)
        if res is not None:
            return result_rows(cfg, res, separability, lp_max_samples)
    try:
        res = _simulate_point(cfg, stop)
    except _PointStopped:
        return None
    except Exception as err:  # the point is kept in the table, the sweep goes on
        return error_rows(cfg.replicas, err)
    if out_path is not None and not res.interrupted:
        _discard_unreadable_point(out_path)
        res.save(out_path)  # an OSError propagates: Dask retries the task (elsewhere)
    return result_rows(cfg, res, separability, lp_max_samples)


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
    from ..sim import engine

    engine.check_memory(cfg)
    return engine.run_engine(
        cfg,
        engine.allocate(cfg),
        progress=False,
        on_nonfinite="ignore",
        zarr_writer=None if stop is None else _StopBetweenChunks(stop),
    )


def result_rows(
    cfg: Config, res, separability: tuple[str, ...], lp_max_samples: int
) -> list[dict[str, Any]]:
    """The table rows of one point from its Result (fresh or loaded from a file)."""
    from .. import metrics

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


def error_rows(replicas: int, err: BaseException) -> list[dict[str, Any]]:
    """The rows of a point whose run raised ``err``: status "error" and the error's message.

    Examples
    --------
    >>> error_rows(2, RuntimeError("engine refused"))[1]["message"]
    'RuntimeError: engine refused'
    """
    message = f"{type(err).__name__}: {err}"
    return [{"status": "error", "message": message, "t_fail": math.nan}] * replicas
