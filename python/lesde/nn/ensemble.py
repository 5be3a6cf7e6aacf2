"""Trial ensembles: many independently seeded networks, trained in parallel, stored per trial.

The paper's protocol (docs/model.md section 5) trains many networks on the same data and
averages what they record, which removes the step-to-step SGD fluctuation of a single
network. :func:`train_ensemble` trains R such trials with :func:`lesde.nn.train_and_record`
in worker processes and returns them stacked as one
:class:`~lesde.nn.training_result.TrainingResult` with R replicas, the layout of
:class:`lesde.Result`, so estimators, plots and metrics take it as they take a simulation
with replicas.

An ensemble may live in a folder: ``ensemble.json`` (the settings and the SHA-256 of the
data, written once, with a SHA-256 over its own contents) and one ``trial-00000.npz`` per
finished trial, each written atomically by the worker that trained it and bound to its
ensemble (the digest of the settings and data, and its trial index, inside the file).
Calling :func:`train_ensemble` again on the folder trains only the trials not yet written
(after a kill, a Ctrl-C or to grow the ensemble) and refuses other data or settings, an
edited manifest and a trial file that is not the ensemble's own (from another ensemble,
copied or renamed); one training writes a folder at a time (:func:`ensemble_lock`).
:func:`load_ensemble` reads it back, with the same checks, without PyTorch.

Trial ``i`` of an ensemble with seed ``s`` draws its initial weights, its SGD samples and
its label corruption from :func:`trial_seed` ``(s, i)``: its numbers do not depend on the
number of workers or on the order in which the trials ran.

Examples
--------
>>> import tempfile
>>> from lesde.data import geometric_shapes
>>> folder = tempfile.mkdtemp()
>>> res = train_ensemble(geometric_shapes(4, size=16), trials=2, lr=0.01, steps=6,
...                      record_every=3, folder=folder, workers=1, progress=False)
>>> res.class_means.shape, res.stepped_logits.shape  # (R, T, K, K), (R, steps, K)
((2, 3, 3, 3), (2, 6, 3))
>>> load_ensemble(folder, trials=2).status.tolist()
['ok', 'ok']
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import json
import os
import pickle
import re
import signal
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..io import storage
from ..sim.config import available_cores
from ..validate import integer, probability, real
from ..version import __version__
from .memory import check_ensemble_memory, check_stack_memory
from .training_file import TRAINING_FORMAT_VERSION, TRAINING_KIND
from .training_result import TrainingResult, load_training

__all__ = [
    "LOCK_NAME",
    "MANIFEST",
    "EnsembleFolderInUse",
    "EnsembleSettings",
    "WorkerError",
    "dataset_digest",
    "default_model",
    "describe_model",
    "ensemble_lock",
    "load_ensemble",
    "read_manifest",
    "stored_trials",
    "train_ensemble",
    "trial_path",
    "trial_seed",
]

MANIFEST = "ensemble.json"
MANIFEST_KIND = "lesde.nn.Ensemble"
#: 2: the manifest holds a SHA-256 over its own contents, and every trial file is bound to
#: it (version 1 folders are refused: their trials cannot be told from another ensemble's).
MANIFEST_VERSION = 2
#: The lock file in an ensemble folder; locked only while a training writes the folder.
LOCK_NAME = ".lesde-ensemble.lock"
_TRIAL = re.compile(r"^trial-(\d+)\.npz$")
#: What writers killed mid-write leave (lesde.io.storage's ``.<name>.<random>.tmp``).
_STALE = re.compile(r"^\.(?:trial-\d+\.npz|" + re.escape(MANIFEST) + r")\..+\.tmp$")
_MANIFEST_MAX_BYTES = 2**20
#: Set in the environment of the worker processes, to the pid of their parent.
_PARENT_ENV = "LESDE_ENSEMBLE_PARENT"
#: The exit code of a worker whose start-up import of the main script called train_ensemble.
_NO_MAIN_GUARD_EXIT = 87
_WAIT_SECONDS = 5.0


class EnsembleFolderInUse(storage.InUseError):
    """Another training (another process, or another thread) is writing this folder."""


class WorkerError(RuntimeError):
    """A worker process of :func:`train_ensemble` died or could not start; the message
    (one line) names the cause: the trial it was training and its exit code or signal, or
    a script without a main guard."""


# ----------------------------------------------------------------------------- identities
def dataset_digest(data: Dataset | None) -> str | None:
    """SHA-256 of a data set's images, true classes and class names (None for None).

    What an ensemble folder stores to refuse a resume on other data.

    Examples
    --------
    >>> from lesde.data import geometric_shapes
    >>> a, b = geometric_shapes(2, size=16, seed=0), geometric_shapes(2, size=16, seed=1)
    >>> dataset_digest(a) == dataset_digest(geometric_shapes(2, size=16, seed=0))
    True
    >>> dataset_digest(a) == dataset_digest(b)
    False
    """
    if data is None:
        return None
    h = hashlib.sha256()
    h.update(repr(tuple(data.images.shape)).encode())
    h.update(np.ascontiguousarray(data.images, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(data.labels, dtype=np.int64).tobytes())
    h.update("\0".join(data.class_names).encode())
    return h.hexdigest()


def trial_seed(seed: int, trial: int) -> int:
    """The seed of trial ``trial`` of an ensemble seeded ``seed`` (a 32-bit integer drawn
    by NumPy's SeedSequence, so neighbouring trials get unrelated streams).

    Examples
    --------
    >>> trial_seed(0, 0) == trial_seed(0, 0) != trial_seed(0, 1)
    True
    """
    return int(np.random.SeedSequence([int(seed), int(trial)]).generate_state(1)[0])


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
    return sorted(_scan(Path(folder))[0])


def _scan(folder: Path) -> tuple[dict[int, Path], list[Path]]:
    """One listing of ``folder``: its trial files by index, and the temporary files of
    killed writers (an empty result for a folder that does not exist)."""
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


def describe_model(factory: Callable) -> str:
    """A stable text naming a model factory (what the manifest compares on resume).

    Examples
    --------
    >>> from lesde.nn.network import LeNet
    >>> describe_model(functools.partial(LeNet, n_classes=3))
    'lesde.nn.network.LeNet(n_classes=3)'
    """
    if isinstance(factory, functools.partial):
        args = [repr(a) for a in factory.args]
        args += [f"{k}={v!r}" for k, v in sorted(factory.keywords.items())]
        return f"{describe_model(factory.func)}({', '.join(args)})"
    name = getattr(factory, "__qualname__", type(factory).__qualname__)
    module = getattr(factory, "__module__", type(factory).__module__)
    return f"{module}.{name}"


def default_model(data: Dataset) -> Callable:
    """The paper's network for ``data``: :class:`lesde.nn.LeNet` with the data's shape and
    its per-channel statistics as input standardisation; call it with ``seed=``.

    Examples
    --------
    >>> from lesde.data import geometric_shapes
    >>> describe_model(default_model(geometric_shapes(2, size=16)))  # doctest: +ELLIPSIS
    'lesde.nn.network.LeNet(image_size=16, in_channels=1, input_mean=(0.07...,), ..., n_classes=3)'
    """
    from .network import LeNet

    mean, std = data.channel_stats()
    return functools.partial(
        LeNet,
        n_classes=data.n_classes,
        in_channels=data.channels,
        image_size=data.image_size,
        input_mean=tuple(float(m) for m in mean),
        input_std=tuple(float(s) for s in std),
    )


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class EnsembleSettings:
    """What every trial of an ensemble shares; stored in the folder's manifest and compared
    field by field when an ensemble is resumed."""

    lr: float
    steps: int
    batch_size: int
    label_noise: float
    record_every: int
    dtype: str | None
    impact_every: int | None
    impact_options: dict | None
    record_stepped: bool
    seed: int
    model: str

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs to train any trial (sent once to each worker)."""

    data: Dataset
    validation: Dataset | None
    model: Callable
    settings: EnsembleSettings
    folder: str
    threads: int
    #: What binds each trial file to its ensemble: ``ensemble`` (the settings),
    #: ``ensemble_sha256`` and ``data_sha256``, as in the manifest.
    binding: dict = field(default_factory=dict)

    def run(self, trial: int) -> TrainingResult:
        """Train trial ``trial`` and return its record (not yet written)."""
        from .training import train_and_record

        s = self.settings
        seed = trial_seed(s.seed, trial)
        res = train_and_record(
            self.model(seed=seed),
            self.data,
            lr=s.lr,
            steps=s.steps,
            batch_size=s.batch_size,
            label_noise=s.label_noise,
            record_every=s.record_every,
            validation=self.validation,
            seed=seed,
            dtype=s.dtype,
            record_logits=False,
            impact_every=s.impact_every,
            impact_options=s.impact_options,
            record_stepped=s.record_stepped,
            progress=False,
        )
        res.meta.update(trial=trial, trial_seed=seed, ensemble_seed=s.seed, **self.binding)
        return res


# ----------------------------------------------------------------------------- the manifest
def _digest(value: Any) -> str:
    """SHA-256 of a JSON value's canonical text (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _identity(manifest: dict) -> str:
    """The digest that binds trial files to their ensemble: settings, data and validation."""
    validation = manifest["validation"]
    return _digest(
        {
            "settings": manifest["settings"],
            "data": manifest["data"]["sha256"],
            "validation": None if validation is None else validation["sha256"],
        }
    )


def _data_entry(data: Dataset) -> dict:
    return {
        "sha256": dataset_digest(data),
        "description": repr(data),
        "samples": len(data),
        "classes": data.n_classes,
    }


def _json_settings(settings: EnsembleSettings) -> dict:
    try:
        return json.loads(json.dumps(settings.to_dict(), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"impact_options must hold numbers, strings and lists only (they are stored "
            f"as JSON), got {settings.impact_options!r} ({err})"
        ) from None


def _manifest(settings: EnsembleSettings, data: Dataset, validation: Dataset | None) -> dict:
    manifest = {
        "kind": MANIFEST_KIND,
        "format_version": MANIFEST_VERSION,
        "settings": _json_settings(settings),
        "data": _data_entry(data),
        "validation": None if validation is None else _data_entry(validation),
        "lesde_version": __version__,
    }
    manifest["ensemble_sha256"] = _identity(manifest)
    manifest["sha256"] = _digest(manifest)
    return manifest


def _binding(manifest: dict) -> dict:
    """What each trial file of the ensemble ``manifest`` carries in its meta."""
    return {
        "ensemble": manifest["settings"],
        "ensemble_sha256": manifest["ensemble_sha256"],
        "data_sha256": manifest["data"]["sha256"],
    }


_NUMBER = (int, float)
#: The type of every settings field in a manifest (JSON: tuples and dicts as read back).
_SETTING_TYPES: dict[str, tuple] = {
    "lr": _NUMBER,
    "steps": (int,),
    "batch_size": (int,),
    "label_noise": _NUMBER,
    "record_every": (int,),
    "dtype": (str, type(None)),
    "impact_every": (int, type(None)),
    "impact_options": (dict, type(None)),
    "record_stepped": (bool,),
    "seed": (int,),
    "model": (str,),
}
_DATA_TYPES: dict[str, tuple] = {"sha256": (str,), "description": (str,)}
_DATA_TYPES |= {"samples": (int,), "classes": (int,)}


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of the ensemble in ``folder``, checked (ValueError, one line, if it is
    not one, is damaged or was edited).

    Its ``sha256`` (over every other field) must match its contents, its fields must have
    their types, and its format version must be this lesde's: a manifest of format
    version 1 is refused (its trials were not bound to it).

    Examples
    --------
    >>> import tempfile
    >>> read_manifest(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: ...: not a lesde ensemble folder (no ensemble.json)
    """
    path = Path(folder) / MANIFEST
    what = "lesde ensemble manifest"
    try:
        with storage.open_input(path, what) as file:
            raw = file.read(_MANIFEST_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"{folder}: not a lesde ensemble folder (no {MANIFEST})") from None
    except NotADirectoryError:
        raise ValueError(f"{folder}: not a folder") from None
    redo = (
        f"restore it, or remove it and run the training call again (lesde writes it anew "
        f"when every trial in {folder} is that call's)"
    )
    if len(raw) > _MANIFEST_MAX_BYTES:
        raise ValueError(f"{path}: larger than any {what} ({_MANIFEST_MAX_BYTES} bytes); {redo}")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"{path}: not a readable {what}, not JSON ({err}); {redo}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: not a {what} (a JSON {type(manifest).__name__}); {redo}")
    if manifest.get("kind") == MANIFEST_KIND and manifest.get("format_version") == 1:
        raise ValueError(
            f"{path}: {what} format version 1 cannot be read by this lesde (it reads "
            f"version {MANIFEST_VERSION}: trials bound to their ensemble); train the "
            "ensemble again in a new folder"
        )
    storage.check_header(
        path, manifest, what=what, kind=MANIFEST_KIND, format_version=MANIFEST_VERSION
    )
    _check_manifest_fields(path, manifest, what, redo)
    return manifest


def _check_manifest_fields(path: Path, manifest: dict, what: str, redo: str) -> None:
    """Every field present; the digest matches the contents; every field has its type."""
    needed = ("settings", "data", "validation", "lesde_version", "ensemble_sha256", "sha256")
    missing = [name for name in needed if name not in manifest]
    if missing:
        raise ValueError(f"{path}: incomplete {what}, missing {', '.join(missing)}; {redo}")
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    if manifest["sha256"] != _digest(body):
        raise ValueError(
            f"{path}: changed after lesde wrote it (its sha256 does not match its contents); {redo}"
        )

    def check(where: str, value: Any, types: dict[str, tuple]) -> None:
        if not isinstance(value, dict) or set(value) != set(types):
            raise ValueError(f"{path}: invalid {what}, {where} should hold {sorted(types)}")
        for name, allowed in types.items():
            item = value[name]
            wrong_bool = isinstance(item, bool) and bool not in allowed
            if wrong_bool or not isinstance(item, allowed):
                kinds = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
                raise ValueError(
                    f"{path}: invalid {what}, {where}.{name} should be {kinds}, got {item!r}"
                )

    check("settings", manifest["settings"], _SETTING_TYPES)
    check("data", manifest["data"], _DATA_TYPES)
    if manifest["validation"] is not None:
        check("validation", manifest["validation"], _DATA_TYPES)
    if manifest["ensemble_sha256"] != _identity(manifest):
        raise ValueError(f"{path}: its ensemble_sha256 does not match its settings; {redo}")


def _describe_data(entry: dict | None) -> str:
    return "none" if entry is None else f"{entry['description']}, sha256 {entry['sha256'][:12]}"


def _check_resume(folder: Path, stored: dict, wanted: dict) -> None:
    """One-line refusals when ``folder`` holds an ensemble of other data or settings."""
    for part in ("data", "validation"):
        old, new = stored.get(part), wanted.get(part)
        if (old or {}).get("sha256") != (new or {}).get("sha256"):
            raise ValueError(
                f"{folder}: the stored ensemble was trained on other {part} "
                f"({_describe_data(old)}); this call gives {_describe_data(new)}"
            )
    for name, new in wanted["settings"].items():
        old = stored["settings"].get(name)
        if new != old:
            raise ValueError(
                f"{folder}: the stored ensemble has {name} = {old!r}; this call asks for "
                f"{new!r} (use another folder, or the stored settings to resume)"
            )


# ----------------------------------------------------------------------------- trial files
def _trial_meta(path: Path) -> Any:
    """The meta of a stored trial file, read from its header alone (no array is read):
    what binds it to its ensemble. :func:`load_training` checks the whole file."""
    what = "lesde ensemble trial file"
    with storage.open_input(path, what) as file:
        try:
            with zipfile.ZipFile(file) as archive:
                info = archive.getinfo("header.npy")
                if info.file_size > storage.MAX_HEADER_BYTES:
                    raise ValueError(f"a header of {info.file_size} bytes")
                with archive.open(info) as member:
                    text = np.lib.format.read_array(member, allow_pickle=False)
            header = json.loads(str(text[()]))
        except Exception as err:  # the zip, .npy and JSON parsers raise many kinds
            why = f"{type(err).__name__}: {err}"
            raise ValueError(f"{path}: not a readable {what}, damaged ({why})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a {what} (its header is not a JSON object)")
    storage.check_header(
        path, header, what=what, kind=TRAINING_KIND, format_version=TRAINING_FORMAT_VERSION
    )
    return header.get("meta")


def _check_trial(path: Path, index: int, meta: Any, manifest: dict) -> None:
    """Refuse a trial file that is not trial ``index`` of the ensemble ``manifest``."""
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
            f"({_describe_data(manifest['data'])}); move it out of {folder}"
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


def _open_folder(folder: Path, manifest: dict) -> dict[int, Path]:
    """Check the stored manifest matches ``manifest`` (or write it) and every stored trial
    is the ensemble's own; remove what killed writers left. The stored trials, by index.
    Call with the folder's lock held."""
    trials, stale = _scan(folder)
    for path in stale:  # no one else writes the folder: the lock is held
        with contextlib.suppress(OSError):
            path.unlink()
    if os.path.lexists(folder / MANIFEST):
        _check_resume(folder, read_manifest(folder), manifest)
    else:
        for index, path in sorted(trials.items()):
            try:
                _check_trial(path, index, _trial_meta(path), manifest)
            except ValueError as err:
                raise ValueError(
                    f"{folder} holds trial files but no {MANIFEST}, which is written anew "
                    f"only when every trial is this call's: {err}"
                ) from None
        with _writing(folder / MANIFEST):
            storage.atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        return trials
    for index, path in sorted(trials.items()):
        _check_trial(path, index, _trial_meta(path), manifest)
    return trials


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


def _save_trial(res: TrainingResult, folder: str | os.PathLike, trial: int) -> None:
    """Write trial ``trial`` atomically; an OSError names the trial file."""
    path = trial_path(folder, trial)
    with _writing(path):
        res.save(path)


# ----------------------------------------------------------------------------- training
def train_ensemble(
    data: Dataset,
    trials: int,
    *,
    lr: float,
    steps: int,
    folder: str | os.PathLike | None = None,
    model: Callable | None = None,
    seed: int = 0,
    workers: int | None = None,
    threads: int = 1,
    batch_size: int = 1,
    label_noise: float = 0.0,
    record_every: int | None = None,
    validation: Dataset | None = None,
    dtype: str | None = None,
    impact_every: int | None = None,
    impact_options: dict | None = None,
    record_stepped: bool = True,
    progress: bool | None = None,
) -> TrainingResult:
    """Train ``trials`` independently seeded networks on ``data``; return them stacked.

    Every trial is :func:`lesde.nn.train_and_record` with the same settings and its own
    seed (:func:`trial_seed`), in one of ``workers`` processes running ``threads`` PyTorch
    threads each. One LeNet step costs PyTorch's per-call overhead (1-3 ms), which threads
    cannot share: one thread per worker and one worker per core is the fast layout, and
    more threads than cores in all is refused (spinning OpenMP threads then slow every
    step 10-100x).

    The workers are spawned processes: each imports the main script of the program, so a
    script must call this function under ``if __name__ == "__main__":``. Without that
    guard the workers stop at start-up and the call raises :class:`WorkerError` saying so
    (no worker trains, nothing hangs).

    Parameters
    ----------
    data : lesde.data.Dataset
        The training set, shared by every trial.
    trials : int
        R >= 1, the number of networks. With a ``folder`` holding fewer, the missing ones
        are trained (to resume, or to grow the ensemble); trials already stored are read.
    lr, steps, batch_size, label_noise, record_every, validation, dtype, impact_every,
    impact_options, record_stepped
        As for :func:`lesde.nn.train_and_record` (``record_every`` defaults to
        ``max(1, steps // 200)``); ``record_stepped`` (default True here) keeps the paper's
        stepped-input logits (needs ``batch_size == 1``).
    folder : path, optional
        Where the trials are stored (created if needed). Without one, a temporary folder
        is used and removed: nothing can be resumed. One training writes a folder at a
        time (:func:`ensemble_lock`); its manifest and every stored trial are checked
        first (:func:`read_manifest`: other data or settings, an edited manifest, a trial
        file of another ensemble, copied or renamed are refused in one line).
    model : callable, optional
        ``model(seed=...) -> torch.nn.Module``, picklable (a module-level function or a
        ``functools.partial`` of a class), called once per trial. Default: the paper's
        :class:`lesde.nn.LeNet` for ``data`` (:func:`default_model`).
    seed : int
        The ensemble's seed; trial i uses ``trial_seed(seed, i)`` for its weights, SGD
        samples and label corruption.
    workers : int, optional
        Processes; default ``min(trials to train, cores // threads)``. With one worker the
        trials run in this process.
    threads : int
        PyTorch threads per worker (default 1); ``workers * threads`` may not exceed the
        cores this process may use.
    progress : bool, optional
        A progress bar over trials; None shows it when stderr is a terminal.

    Returns
    -------
    TrainingResult
        R replicas, in trial order. On Ctrl-C the trials finished so far (the others are
        not written; ``interrupted=True``).

    Raises
    ------
    WorkerError
        A worker died (killed by a signal, out of memory, an exit) or could not start: one
        line naming the trial and the exit code or signal, or the missing main guard. The
        other workers are stopped, the trials finished are stored, and the same call
        resumes. An exception in a worker's trial is raised as such (an OSError, e.g. a
        full disk, naming the trial file) or as WorkerError naming the trial.
    lesde.sim.engine.InsufficientMemoryError
        Before anything is trained, when the workers' records or the stacked trials would
        take over 90 % of the memory available.
    EnsembleFolderInUse
        Another training holds the folder.

    Examples
    --------
    >>> from lesde.data import geometric_shapes
    >>> res = train_ensemble(geometric_shapes(4, size=16), trials=3, lr=0.01, steps=4,
    ...                      record_every=2, workers=1, progress=False)
    >>> res.replicas, res.metrics["loss"].shape, res.meta["trials"][2]["trial"]
    (3, (3, 3), 2)
    """
    _stop_if_started_by_a_worker()
    from .network import check_dataset, torch_dtype  # needs PyTorch, as training does

    data = check_dataset(data)
    if validation is not None:
        validation = check_dataset(validation, "validation")
    if not isinstance(record_stepped, bool):
        raise TypeError(f"record_stepped must be True or False, got {record_stepped!r}")
    trials = integer("trials", trials, at_least=1)
    steps = integer("steps", steps, at_least=1)
    batch_size = integer("batch_size", batch_size, at_least=1)
    if record_stepped and batch_size != 1:
        raise ValueError(
            f"record_stepped needs batch_size = 1, got {batch_size}; pass "
            "record_stepped=False for larger batches"
        )
    if record_every is None:
        record_every = max(1, steps // 200)
    if impact_every is not None:
        impact_every = integer("impact_every", impact_every, at_least=1)
    model = default_model(data) if model is None else model
    if not callable(model):
        raise TypeError(f"model must be a callable model(seed=...) -> torch module, got {model!r}")
    settings = EnsembleSettings(
        lr=real("lr", lr, above=0),
        steps=steps,
        batch_size=batch_size,
        label_noise=probability("label_noise", label_noise),
        record_every=integer("record_every", record_every, at_least=1),
        dtype=None if dtype is None else str(torch_dtype(dtype)).replace("torch.", ""),
        impact_every=impact_every,
        impact_options=None if impact_options is None else dict(impact_options),
        record_stepped=record_stepped,
        seed=integer("seed", seed, at_least=0),
        model=describe_model(model),
    )
    threads = integer("threads", threads, at_least=1)
    cores = available_cores()
    if workers is not None:
        workers = integer("workers", workers, at_least=1)
        if workers * threads > cores:
            raise ValueError(
                f"workers x threads = {workers} x {threads} exceeds the {cores} cores: "
                "oversubscribed PyTorch threads spin and slow every step 10-100x"
            )
    elif threads > cores:
        raise ValueError(f"threads = {threads} exceeds the {cores} cores")
    manifest = _manifest(settings, data, validation)
    # Before the folder is touched: at most `trials` to train, as many at once as workers.
    parallel = 1 if workers == 1 else min(trials, workers or max(1, cores // threads))
    check_ensemble_memory(manifest, data, validation, trials, parallel)

    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="lesde-ensemble-"))
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            kind = storage.file_kind(folder, follow_links=True) or "a file"
            raise ValueError(f"{folder}: {kind}, not a folder; an ensemble folder must be one")
        stack.enter_context(ensemble_lock(folder))
        stored = _open_folder(folder, manifest)
        todo = [i for i in range(trials) if i not in stored]
        if workers is None:
            workers = max(1, min(len(todo), cores // threads))
        job = _Job(data, validation, model, settings, str(folder), threads, _binding(manifest))
        interrupted = _train_trials(job, todo, workers, trials, progress)
        done = sorted(i for i in _scan(folder)[0] if i < trials)
        if not done:
            raise KeyboardInterrupt  # interrupted before any trial finished: nothing to return
        res = _stack(folder, done, manifest, interrupted=interrupted)
    return res


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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


def _bar(total: int, initial: int, progress: bool | None):
    show = progress if progress is not None else sys.stderr.isatty()
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="trial", desc="ensemble", leave=False)


def _train_trials(job: _Job, todo: list[int], workers: int, total: int, progress) -> bool:
    """Train the trials ``todo``; True when stopped by Ctrl-C."""
    if not todo:
        return False
    bar = _bar(total, total - len(todo), progress)
    try:
        if workers == 1:
            return _train_here(job, todo, bar)
        return _train_in_workers(job, todo, workers, bar)
    finally:
        if bar is not None:
            bar.close()


def _train_here(job: _Job, todo: list[int], bar) -> bool:
    with _torch_threads(job.threads):
        try:
            for trial in todo:
                res = job.run(trial)
                if res.interrupted:  # Ctrl-C inside train_and_record: the trial is not kept
                    return True
                _save_trial(res, job.folder, trial)  # atomic: whole or absent
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt:
            return True
    return False


# ----------------------------------------------------------------------------- workers
def _stop_if_started_by_a_worker() -> None:
    """In a worker's start-up, end that worker with the exit code its parent reads as "no
    main guard".

    A spawned worker imports its parent's main script; a script that calls
    train_ensemble outside ``if __name__ == "__main__":`` calls it again there, where it
    must neither train nor start workers of its own.
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
            _save_trial(res, job.folder, trial)
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

    def __init__(self, job: _Job, todo: list[int], workers: int, bar) -> None:
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
        n = len(_scan(Path(folder))[0])
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


def _train_in_workers(job: _Job, todo: list[int], workers: int, bar) -> bool:
    pool = _Pool(job, todo, workers, bar)
    try:
        pool.run()
        return False
    except KeyboardInterrupt:
        return True
    finally:
        pool.close()


# ----------------------------------------------------------------------------- reading
def _stack(
    folder: Path, indices: Sequence[int], manifest: dict, interrupted: bool = False
) -> TrainingResult:
    check_stack_memory(manifest, len(indices))
    results = []
    for i in indices:
        path = trial_path(folder, i)
        res = load_training(path)
        if res.replicas != 1:
            raise ValueError(f"{path}: holds {res.replicas} networks, a trial file holds one")
        _check_trial(path, i, res.meta, manifest)
        results.append(res)
    meta = dict(results[0].meta)
    for name in ("trial", "trial_seed", "seed", "wall_seconds", "ensemble"):
        meta.pop(name, None)
    meta.update(
        ensemble=manifest["settings"],
        data_sha256=manifest["data"]["sha256"],
        folder=str(folder),
        trials=[r.meta for r in results],
        wall_seconds=float(sum(r.meta.get("wall_seconds", 0.0) for r in results)),
    )
    return TrainingResult.stack(results, meta=meta, interrupted=interrupted)


def load_ensemble(folder: str | os.PathLike, trials: int | Sequence[int] | None = None):
    """Read the ensemble stored in ``folder`` as one TrainingResult (no PyTorch needed).

    The manifest is checked (:func:`read_manifest`) and so is every trial read: a trial
    file of another ensemble, or one copied or renamed to another trial's name, is refused
    in one line.

    Parameters
    ----------
    folder : path
        Written by :func:`train_ensemble`.
    trials : int, sequence of int, optional
        An int R: trials 0..R-1, every one of which must be stored. A sequence: those
        trials (each once). None: every stored trial.

    Examples
    --------
    >>> import tempfile
    >>> from lesde.data import geometric_shapes
    >>> folder = tempfile.mkdtemp()
    >>> _ = train_ensemble(geometric_shapes(4, size=16), trials=2, lr=0.01, steps=4,
    ...                    folder=folder, workers=1, progress=False)
    >>> load_ensemble(folder, trials=5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: ...: 5 trials asked for, 2 stored (trials 0-1); train_ensemble(trials=5) adds them
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    stored = sorted(_scan(folder)[0])
    if trials is None:
        indices = stored
    elif isinstance(trials, (int, np.integer)) and not isinstance(trials, bool):
        R = integer("trials", trials, at_least=1)
        indices = list(range(R))
        if R > len(stored) or stored[R - 1] != R - 1:
            raise ValueError(
                f"{folder}: {R} trials asked for, {len(stored)} stored "
                f"({_ranges(stored)}); train_ensemble(trials={R}) adds them"
            )
    else:
        indices = [integer("trials", i, at_least=0) for i in trials]
        twice = sorted({i for i in indices if indices.count(i) > 1})
        if twice:
            raise ValueError(f"trials {twice} are asked for more than once; name each trial once")
        missing = sorted(set(indices) - set(stored))
        if missing:
            raise ValueError(f"{folder}: trials {missing} are not stored ({_ranges(stored)})")
    if not indices:
        raise ValueError(f"{folder}: no trial is stored yet")
    return _stack(folder, indices, manifest)


def _ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"trials 0-2, 5"``."""
    if not indices:
        return "none"
    parts, start = [], indices[0]
    for a, b in zip(indices, [*indices[1:], None], strict=True):
        if b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}-{a}")
            start = b
    return "trials " + ", ".join(parts)
