"""An ensemble folder's files: its trial files and their binding, the listing, the lock.

An ensemble folder (:mod:`lesde.nn.ensemble`) holds its manifest
(:mod:`lesde.nn.ensemble_manifest`) and one ``trial-00000.npz`` per finished trial
(:func:`trial_path`), each written atomically by the worker that trained it
(:func:`save_trial`) and bound to its ensemble: the ensemble's digest and its own trial index
are inside the file, and :func:`check_trial` refuses a trial of another ensemble, or one
copied or renamed. The folder is listed once (:func:`scan_folder`), and one training writes
it at a time (:func:`ensemble_lock`); :func:`open_folder` does all of this when a training
starts. No PyTorch needed.

Examples
--------
>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> trial_path(folder, 3).name, stored_trials(folder)
('trial-00003.npz', [])
>>> with ensemble_lock(folder):
...     pass  # this training alone writes the folder here
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..io import storage
from .ensemble_manifest import MANIFEST, check_resume, describe_data, read_manifest
from .training_file import read_training_meta
from .training_result import TrainingResult

__all__ = [
    "LOCK_NAME",
    "EnsembleFolderInUse",
    "check_trial",
    "ensemble_lock",
    "open_folder",
    "save_trial",
    "scan_folder",
    "stored_trials",
    "trial_path",
]

#: The lock file in an ensemble folder; locked only while a training writes the folder.
LOCK_NAME = ".lesde-ensemble.lock"
_TRIAL = re.compile(r"^trial-(\d+)\.npz$")
#: What writers killed mid-write leave (lesde.io.storage's ``.<name>.<random>.tmp``).
_STALE = re.compile(r"^\.(?:trial-\d+\.npz|" + re.escape(MANIFEST) + r")\..+\.tmp$")
_TRIAL_WHAT = "lesde ensemble trial file"


class EnsembleFolderInUse(storage.InUseError):
    """Another training (another process, or another thread) is writing this folder."""

    __module__ = "lesde.nn.ensemble"  # where it is documented, and named in tracebacks


# ----------------------------------------------------------------------------- the listing
def trial_path(folder: str | os.PathLike, trial: int) -> Path:
    """Where trial ``trial`` of the ensemble in ``folder`` is stored.

    Examples
    --------
    >>> trial_path("runs", 7).as_posix()
    'runs/trial-00007.npz'
    """
    return Path(folder) / f"trial-{trial:05d}.npz"


def stored_trials(folder: str | os.PathLike) -> list[int]:
    """Indices of the trials stored in ``folder``, sorted (one listing of the folder).

    A file named like a trial but not as lesde names one (``trial-000003.npz`` for trial
    3) is refused, so that no trial counts twice.

    Examples
    --------
    >>> import tempfile
    >>> stored_trials(tempfile.mkdtemp())
    []
    """
    return sorted(scan_folder(Path(folder))[0])


def scan_folder(folder: Path) -> tuple[dict[int, Path], list[Path]]:
    """One listing of ``folder``: its trial files by index, and the temporary files of
    killed writers (an empty result for a folder that does not exist).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> for name in ("trial-00002.npz", ".trial-00003.npz.x1y2.tmp", "notes.txt"):
    ...     (folder / name).touch()
    >>> trials, stale = scan_folder(folder)
    >>> sorted(trials), [p.name for p in stale]
    ([2], ['.trial-00003.npz.x1y2.tmp'])
    """
    trials: dict[int, Path] = {}
    stale: list[Path] = []
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except (FileNotFoundError, NotADirectoryError):
        return trials, stale
    for entry in entries:
        match = _TRIAL.match(entry.name)
        if match:
            index = int(match.group(1))
            if entry.name != trial_path("", index).name:
                raise ValueError(
                    f"{entry.path}: not a name lesde gives a trial file (trial {index} is "
                    f"{trial_path('', index).name}); remove or rename it, so that no trial "
                    "counts twice"
                )
            trials[index] = Path(entry.path)
        elif _STALE.match(entry.name):
            stale.append(Path(entry.path))
    return trials, stale


# ----------------------------------------------------------------------------- trial files
def check_trial(path: Path, index: int, meta: Any, manifest: dict) -> None:
    """Refuse (ValueError, one line) a trial file that is not trial ``index`` of the
    ensemble ``manifest``, from the ``meta`` it holds: not bound to an ensemble, another
    trial's (copied or renamed), trained on other data, or of another ensemble.

    Examples
    --------
    >>> manifest = {"ensemble_sha256": "e1", "settings": {"lr": 0.1},
    ...             "data": {"sha256": "d1", "description": "shapes"}}
    >>> meta = {"ensemble_sha256": "e1", "data_sha256": "d1", "trial": 1}
    >>> check_trial(Path("runs/trial-00001.npz"), 1, meta, manifest)  # its own: fine
    >>> check_trial(Path("runs/trial-00002.npz"), 2, meta, manifest)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: runs/trial-00002.npz: holds trial 1 but its name says trial 2 (a copied or ...
    """
    folder = path.parent
    if not isinstance(meta, dict) or not isinstance(meta.get("ensemble_sha256"), str):
        raise ValueError(
            f"{path}: not bound to an ensemble (a training record saved outside "
            f"train_ensemble, or by an older lesde); move it out of {folder}"
        )
    inside = meta.get("trial")
    if isinstance(inside, bool) or inside != index:
        raise ValueError(
            f"{path}: holds trial {inside!r} but its name says trial {index} (a copied or "
            f"renamed trial file); remove it, so that no trial counts twice"
        )
    if meta.get("data_sha256") != manifest["data"]["sha256"]:
        raise ValueError(
            f"{path}: a trial trained on other data than the ensemble in {folder} "
            f"({describe_data(manifest['data'])}); move it out of {folder}"
        )
    if meta["ensemble_sha256"] != manifest["ensemble_sha256"]:
        theirs, ours = meta.get("ensemble"), manifest["settings"]
        differ = [k for k in ours if isinstance(theirs, dict) and theirs.get(k) != ours[k]]
        why = (
            f"its {differ[0]} = {theirs[differ[0]]!r}, the ensemble's is {ours[differ[0]]!r}"
            if differ
            else "other settings or validation data"
        )
        raise ValueError(f"{path}: a trial of another ensemble ({why}); move it out of {folder}")


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """An OSError inside the block names ``path`` (a failed write, e.g. on a full disk,
    names no file of its own)."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            raise OSError(err.errno, err.strerror or str(err), str(path)) from None
        raise


def save_trial(res: TrainingResult, folder: str | os.PathLike, trial: int) -> None:
    """Write trial ``trial`` of the ensemble in ``folder`` atomically (whole or absent);
    an OSError, e.g. of a full disk, names the trial file.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> save_trial(TrainingResult.tiny_example(), folder, 4)
    >>> stored_trials(folder)
    [4]
    """
    path = trial_path(folder, trial)
    with _writing(path):
        res.save(path)


# ----------------------------------------------------------------------------- the lock
def ensemble_lock(folder: str | os.PathLike):
    """Hold the lock of an ensemble folder: one training writes a folder at a time.

    An exclusive ``flock`` on ``folder/.lesde-ensemble.lock``
    (:func:`lesde.io.storage.exclusive_lock`), which says who holds it (pid and host); the
    system drops it when its holder exits or is killed. A second training of the folder
    gets :class:`EnsembleFolderInUse` at once, naming the holder.
    :func:`train_ensemble` holds it for the whole call.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with ensemble_lock(folder):
    ...     with ensemble_lock(folder):  # the same thread: fine
    ...         pass
    """
    return storage.exclusive_lock(
        Path(folder) / LOCK_NAME,
        what=f"ensemble folder {str(folder)!r}",
        holder="training",
        error=EnsembleFolderInUse,
    )


def open_folder(folder: Path, manifest: dict) -> dict[int, Path]:
    """Check the stored manifest matches ``manifest`` (or write it) and every stored trial
    is the ensemble's own; remove what killed writers left. The stored trials, by index.
    Call with the folder's lock held.

    Examples
    --------
    >>> import tempfile
    >>> from lesde.data import geometric_shapes
    >>> from lesde.nn.ensemble_manifest import EnsembleSettings, build_manifest
    >>> settings = EnsembleSettings(lr=0.01, steps=10, batch_size=1, label_noise=0.0,
    ...     record_every=5, dtype=None, impact_every=None, impact_options=None,
    ...     record_stepped=True, seed=0, model="m")
    >>> manifest = build_manifest(settings, geometric_shapes(4, size=16), None)
    >>> folder = Path(tempfile.mkdtemp())
    >>> with ensemble_lock(folder):
    ...     open_folder(folder, manifest)  # a new folder: the manifest is written
    {}
    >>> sorted(p.name for p in folder.iterdir())
    ['ensemble.json']
    """
    trials, stale = scan_folder(folder)
    for path in stale:  # no one else writes the folder: the lock is held
        with contextlib.suppress(OSError):
            path.unlink()
    if os.path.lexists(folder / MANIFEST):
        check_resume(folder, read_manifest(folder), manifest)
    else:
        for index, path in sorted(trials.items()):
            try:
                check_trial(path, index, read_training_meta(path, _TRIAL_WHAT), manifest)
            except ValueError as err:
                raise ValueError(
                    f"{folder} holds trial files but no {MANIFEST}, which is written anew "
                    f"only when every trial is this call's: {err}"
                ) from None
        with _writing(folder / MANIFEST):
            storage.atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        return trials
    for index, path in sorted(trials.items()):
        check_trial(path, index, read_training_meta(path, _TRIAL_WHAT), manifest)
    return trials
