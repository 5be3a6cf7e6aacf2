"""Trial ensembles: many independently seeded networks, trained in parallel, stored per trial.

The paper's protocol (docs/model.md section 5) trains many networks on the same data and
averages what they record, which removes the step-to-step SGD fluctuation of a single
network. :func:`train_ensemble` trains R such trials with :func:`lesde.nn.train_and_record`
in worker processes and returns them stacked as one
:class:`~lesde.training_result.TrainingResult` with R replicas, the layout of
:class:`lesde.Result`, so estimators, plots and metrics take it as they take a simulation
with replicas.

An ensemble may live in a folder: ``ensemble.json`` (the settings and the SHA-256 of the
data, written once) and one ``trial-00000.npz`` per finished trial, each written atomically
by the worker that trained it. Calling :func:`train_ensemble` again on the folder trains
only the trials not yet written (after a kill, a Ctrl-C or to grow the ensemble) and refuses
other data or settings; :func:`load_ensemble` reads it back without PyTorch.

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

import contextlib
import functools
import hashlib
import json
import os
import queue
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import storage
from .config import available_cores
from .dataset import Dataset
from .training_result import TrainingResult, load_training
from .validate import integer, probability, real
from .version import __version__

__all__ = [
    "MANIFEST",
    "EnsembleSettings",
    "dataset_digest",
    "default_model",
    "describe_model",
    "load_ensemble",
    "read_manifest",
    "stored_trials",
    "train_ensemble",
    "trial_path",
    "trial_seed",
]

MANIFEST = "ensemble.json"
MANIFEST_KIND = "lesde.nn.Ensemble"
MANIFEST_VERSION = 1
_TRIAL = re.compile(r"^trial-(\d{5,})\.npz$")
_POLL_SECONDS = 0.2


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
    """Indices of the trials stored in ``folder``, sorted.

    Examples
    --------
    >>> import tempfile
    >>> stored_trials(tempfile.mkdtemp())
    []
    """
    found = []
    for entry in Path(folder).iterdir() if Path(folder).is_dir() else ():
        match = _TRIAL.match(entry.name)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def describe_model(factory: Callable) -> str:
    """A stable text naming a model factory (what the manifest compares on resume).

    Examples
    --------
    >>> from lesde.network import LeNet
    >>> describe_model(functools.partial(LeNet, n_classes=3))
    'lesde.network.LeNet(n_classes=3)'
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
    'lesde.network.LeNet(image_size=16, in_channels=1, input_mean=(0.07...,), ..., n_classes=3)'
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
    """Everything a worker needs to train any trial (pickled once per worker)."""

    data: Dataset
    validation: Dataset | None
    model: Callable
    settings: EnsembleSettings
    folder: str
    threads: int

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
        res.meta.update(trial=trial, trial_seed=seed, ensemble_seed=s.seed)
        return res


def _manifest(settings: EnsembleSettings, data: Dataset, validation: Dataset | None) -> dict:
    return {
        "kind": MANIFEST_KIND,
        "format_version": MANIFEST_VERSION,
        "settings": settings.to_dict(),
        "data": {
            "sha256": dataset_digest(data),
            "description": repr(data),
        },
        "validation": None
        if validation is None
        else {"sha256": dataset_digest(validation), "description": repr(validation)},
        "lesde_version": __version__,
    }


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of the ensemble in ``folder`` (ValueError if it is not one).

    Examples
    --------
    >>> import tempfile
    >>> read_manifest(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: ...: not a lesde ensemble folder (no ensemble.json)
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{folder}: not a lesde ensemble folder (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable ensemble manifest ({err})") from None
    storage.check_header(
        path, manifest, what="lesde ensemble manifest", kind=MANIFEST_KIND,
        format_version=MANIFEST_VERSION,
    )  # fmt: skip
    return manifest


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
        if json.loads(json.dumps(new)) != old:
            raise ValueError(
                f"{folder}: the stored ensemble has {name} = {old!r}; this call asks for "
                f"{new!r} (use another folder, or the stored settings to resume)"
            )


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
        is used and removed: nothing can be resumed.
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
        not written; ``interrupted=True``). If a worker dies, RuntimeError: the trials
        finished are stored, and the same call resumes.

    Examples
    --------
    >>> from lesde.data import geometric_shapes
    >>> res = train_ensemble(geometric_shapes(4, size=16), trials=3, lr=0.01, steps=4,
    ...                      record_every=2, workers=1, progress=False)
    >>> res.replicas, res.metrics["loss"].shape, res.meta["trials"][2]["trial"]
    (3, (3, 3), 2)
    """
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

    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="lesde-ensemble-"))
        folder = Path(folder)
        _open_folder(folder, _manifest(settings, data, validation))
        for trial in range(max([trials, *(i + 1 for i in stored_trials(folder))])):
            # what writers killed mid-write left (one ensemble call per folder at a time)
            storage.remove_stale_temporaries(trial_path(folder, trial))
        todo = [i for i in range(trials) if not trial_path(folder, i).exists()]
        if workers is None:
            workers = max(1, min(len(todo), cores // threads))
        job = _Job(data, validation, model, settings, str(folder), threads)
        interrupted = _train_trials(job, todo, workers, trials, progress)
        done = [i for i in range(trials) if trial_path(folder, i).exists()]
        if not done:
            raise KeyboardInterrupt  # interrupted before any trial finished: nothing to return
        res = _stack(folder, done, interrupted=interrupted)
    return res


def _open_folder(folder: Path, manifest: dict) -> None:
    """Create the ensemble folder and its manifest, or check the stored one matches."""
    if (folder / MANIFEST).exists():
        _check_resume(folder, read_manifest(folder), manifest)
    else:
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{folder}: not a folder")
        if folder.is_dir() and stored_trials(folder):
            raise ValueError(f"{folder}: holds trial files but no {MANIFEST}")
        storage.atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")


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
                res.save(trial_path(job.folder, trial))  # atomic: whole or absent
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt:
            return True
    return False


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies (elsewhere: no-op;
    the worker loop also checks its parent before each trial)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _worker(job: _Job, tasks, results, parent: int) -> None:
    """A worker process: train trials from ``tasks`` until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    import torch

    torch.set_num_threads(job.threads)
    while True:
        if os.getppid() != parent:  # the parent died: no one collects the trials
            return
        try:
            trial = tasks.get(timeout=1.0)
        except queue.Empty:
            continue
        if trial is None:
            return
        results.put(("start", trial, os.getpid()))
        try:
            res = job.run(trial)
            res.save(trial_path(job.folder, trial))
        except Exception as err:  # reported by the parent as one line
            results.put(("error", trial, f"{type(err).__name__}: {err}"))
            return
        results.put(("done", trial, os.getpid()))


def _train_in_workers(job: _Job, todo: list[int], workers: int, bar) -> bool:
    import multiprocessing

    # spawn, not fork: a forked child of a process whose OpenMP runtime already started
    # threads can deadlock in its first parallel region.
    ctx = multiprocessing.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for trial in todo:
        tasks.put(trial)
    for _ in range(workers):
        tasks.put(None)
    threads = str(job.threads)
    with _environment(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads):
        procs = [
            ctx.Process(target=_worker, args=(job, tasks, results, os.getpid()), daemon=True)
            for _ in range(workers)
        ]
        for p in procs:
            p.start()
    running: dict[int, int] = {}  # pid -> trial
    remaining = set(todo)
    try:
        while remaining:
            try:
                kind, trial, info = results.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                _check_workers(procs, running, remaining, job.folder)
                continue
            if kind == "start":
                running[info] = trial
            elif kind == "done":
                running.pop(info, None)
                remaining.discard(trial)
                if bar is not None:
                    bar.update(1)
            else:
                raise RuntimeError(f"trial {trial} failed: {info}")
        return False
    except KeyboardInterrupt:
        return True
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
        tasks.close()
        results.close()


def _check_workers(procs, running: dict[int, int], remaining: set[int], folder: str) -> None:
    """RuntimeError (one line) when a worker died or all stopped with trials left."""
    for p in procs:
        if p.exitcode not in (None, 0):
            lost = running.get(p.pid)
            what = f" while training trial {lost}" if lost is not None else ""
            raise RuntimeError(
                f"a worker (pid {p.pid}) died with exit code {p.exitcode}{what}; "
                f"{len(stored_trials(folder))} trials are stored in {folder}: the same call "
                "resumes with the others"
            )
    if all(p.exitcode is not None for p in procs):
        raise RuntimeError(f"the workers stopped with trials {sorted(remaining)} not trained")


# ----------------------------------------------------------------------------- reading
def _stack(folder: Path, indices: Sequence[int], interrupted: bool = False) -> TrainingResult:
    manifest = read_manifest(folder)
    results = [load_training(trial_path(folder, i)) for i in indices]
    meta = dict(results[0].meta)
    for name in ("trial", "trial_seed", "seed", "wall_seconds"):
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

    Parameters
    ----------
    folder : path
        Written by :func:`train_ensemble`.
    trials : int, sequence of int, optional
        An int R: trials 0..R-1, every one of which must be stored. A sequence: those
        trials. None: every stored trial.

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
    read_manifest(folder)
    stored = stored_trials(folder)
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
        missing = sorted(set(indices) - set(stored))
        if missing:
            raise ValueError(f"{folder}: trials {missing} are not stored ({_ranges(stored)})")
    if not indices:
        raise ValueError(f"{folder}: no trial is stored yet")
    return _stack(folder, indices)


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
