"""The files of a sweep's folder: its lock, the points' result files, the tables.

``out_dir/points/<config_hash>.npz`` holds each point's Result (written by its own task),
``table.csv`` and ``summary.csv`` the sweep's tables (written once every point has
finished), and ``.lesde-sweep.lock`` says that a sweep is writing the folder
(:func:`sweep_lock`: one sweep writes a folder at a time).

Examples
--------
>>> import tempfile
>>> from lesde.sweep.folder import make_folder, sweep_lock
>>> folder = make_folder(tempfile.mkdtemp())
>>> with sweep_lock(folder):
...     sorted(p.name for p in folder.iterdir())
['.lesde-sweep.lock', 'points']
"""

from __future__ import annotations

import os
from pathlib import Path

from ..io import storage
from ..io.storage import atomic_write_text
from .grid import config_hash
from .point import load_point, result_rows
from .result import SweepResult

__all__ = [
    "LOCK_NAME",
    "SweepFolderInUse",
    "load_finished",
    "make_folder",
    "point_files",
    "points_kept",
    "sweep_lock",
    "write_files",
]


def make_folder(out_dir) -> Path | None:
    """Step 2: the sweep's folder, created (None without ``out_dir``)."""
    if out_dir is None:
        return None
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out_dir {str(folder)!r} exists and is not a folder")
    (folder / "points").mkdir(parents=True, exist_ok=True)
    return folder


def point_files(folder: Path | None, configs: list) -> list:
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
    (:func:`lesde.io.storage.exclusive_lock`), which also says who holds it (pid and host).
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


def load_finished(configs: list, paths: list, methods, lp_max_samples: int) -> dict:
    """Step 3: the rows of every point whose result file is already there (a resumed sweep)."""
    outcomes = {}
    for index, (cfg, path) in enumerate(zip(configs, paths, strict=True)):
        res = None if path is None else load_point(path, cfg)
        if res is not None:
            outcomes[index] = result_rows(cfg, res, methods, lp_max_samples)
    return outcomes


def points_kept(folder: Path | None, outcomes: dict) -> int:
    """Points whose result file is in the folder: every point with an outcome but those
    whose run raised (error rows only; nothing was saved)."""
    if folder is None:
        return 0
    return sum(any(row["status"] != "error" for row in rows) for rows in outcomes.values())


def write_files(folder: Path, paths: list, result: SweepResult) -> None:
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
