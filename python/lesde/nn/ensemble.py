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

This module is the entry point; the work is done in :mod:`lesde.nn.ensemble_manifest` (the
manifest and its checks), :mod:`lesde.nn.ensemble_folder` (trial files, their binding, the
listing and the lock) and :mod:`lesde.nn.ensemble_workers` (the worker processes).

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
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.dataset import Dataset
from ..io import storage
from ..sim.config import available_cores
from ..validate import integer, probability, real
from .ensemble_folder import (
    LOCK_NAME,
    EnsembleFolderInUse,
    check_trial,
    ensemble_lock,
    open_folder,
    save_trial,
    scan_folder,
    stored_trials,
    trial_path,
)
from .ensemble_manifest import (
    MANIFEST,
    EnsembleSettings,
    build_manifest,
    dataset_digest,
    describe_model,
    read_manifest,
    trial_binding,
)
from .ensemble_workers import WorkerError, stop_if_started_by_a_worker, train_in_workers
from .memory import check_ensemble_memory, check_stack_memory
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


# ----------------------------------------------------------------------------- trials
def trial_seed(seed: int, trial: int) -> int:
    """The seed of trial ``trial`` of an ensemble seeded ``seed`` (a 32-bit integer drawn
    by NumPy's SeedSequence, so neighbouring trials get unrelated streams).

    Examples
    --------
    >>> trial_seed(0, 0) == trial_seed(0, 0) != trial_seed(0, 1)
    True
    """
    return int(np.random.SeedSequence([int(seed), int(trial)]).generate_state(1)[0])


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
    stop_if_started_by_a_worker()
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
    manifest = build_manifest(settings, data, validation)
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
        stored = open_folder(folder, manifest)
        todo = [i for i in range(trials) if i not in stored]
        if workers is None:
            workers = max(1, min(len(todo), cores // threads))
        job = _Job(data, validation, model, settings, str(folder), threads, trial_binding(manifest))
        interrupted = _train_trials(job, todo, workers, trials, progress)
        done = sorted(i for i in scan_folder(folder)[0] if i < trials)
        if not done:
            raise KeyboardInterrupt  # interrupted before any trial finished: nothing to return
        res = _stack(folder, done, manifest, interrupted=interrupted)
    return res


def _train_trials(job: _Job, todo: list[int], workers: int, total: int, progress) -> bool:
    """Train the trials ``todo``; True when stopped by Ctrl-C."""
    if not todo:
        return False
    bar = _bar(total, total - len(todo), progress)
    try:
        if workers == 1:
            return _train_here(job, todo, bar)
        return train_in_workers(job, todo, workers, bar)
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
                save_trial(res, job.folder, trial)  # atomic: whole or absent
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt:
            return True
    return False


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _bar(total: int, initial: int, progress: bool | None):
    show = progress if progress is not None else sys.stderr.isatty()
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="trial", desc="ensemble", leave=False)


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
        check_trial(path, i, res.meta, manifest)
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
    stored = sorted(scan_folder(folder)[0])
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
