"""What a training or an ensemble needs in memory, counted from its settings (no PyTorch).

Every training refuses, before anything is allocated, records that would not fit: the
bytes are counted from the settings alone (:func:`training_record_bytes`), never by
building arrays, and compared with the memory available (:func:`check_training_memory`,
the convention of :func:`lesde.sim.engine.check_memory`). An ensemble counts its workers'
trainings at once and its trials stacked at the end (:func:`check_ensemble_memory`), and
reading an ensemble back counts the trials read (:func:`check_stack_memory`).

Examples
--------
>>> need = training_record_bytes(steps=1000, record_every=10, n_samples=300, n_classes=3)
>>> need < 2**20
True
>>> check_training_memory(need, "its records", "record less often")  # fits: no error
"""

from __future__ import annotations

from ..data.dataset import Dataset
from ..io import storage

__all__ = [
    "check_ensemble_memory",
    "check_stack_memory",
    "check_training_memory",
    "training_record_bytes",
]


def training_record_bytes(
    *,
    steps: int,
    record_every: int,
    n_samples: int,
    n_classes: int,
    validation: bool = False,
    impact_every: int | None = None,
    record_stepped: bool = False,
    record_logits: bool = False,
) -> int:
    """Bytes of the records of one network's training: what
    :func:`lesde.nn.train_and_record` allocates for them, and about what its file holds.

    Counted from the settings alone, never by building arrays: T = ceil(steps /
    record_every) + 1 records of class and label means (2 T K^2 floats) and metrics, the
    final logits, labels and classes (N each), with ``record_stepped`` one sample index and
    K float32 logits per step, with ``impact_every`` the impact track, with
    ``record_logits`` every sample's logits at every record (T N K floats).

    Examples
    --------
    >>> training_record_bytes(steps=10_000_000_000, record_every=50_000_000, n_samples=900,
    ...                       n_classes=3, record_stepped=True) / 2**30  # doctest: +ELLIPSIS
    186.26...
    """
    K, N = int(n_classes), int(n_samples)
    T = -(-int(steps) // int(record_every)) + 1
    n_metrics = 12 if validation else 10
    total = 4 * T * 8  # times, steps and the record steps' temporaries
    total += 2 * T * K * K * 8 + n_metrics * T * 8
    total += N * K * 8 + 2 * N * 8  # features, classes, labels
    if record_logits:
        total += T * N * K * 8
    if record_stepped:
        total += int(steps) * (8 + 4 * K)
    if impact_every:
        S = -(-int(steps) // int(impact_every)) + 1
        total += S * (K * K + 14) * 8
    return total


def check_training_memory(need: int, what: str, advice: str) -> None:
    """Raise :class:`lesde.sim.engine.InsufficientMemoryError` (one line) if ``need`` bytes
    exceed 90 % of the memory available (:func:`lesde.io.storage.available_memory`), the
    convention of :func:`lesde.sim.engine.check_memory`; ``what`` says what they are for,
    ``advice`` what to change.

    Examples
    --------
    >>> check_training_memory(1024, "its records", "record less often")  # fits
    >>> check_training_memory(2**70, "its records", "record less often")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    lesde.sim.engine.InsufficientMemoryError: this training needs about 1099511627776.00 GiB ...
    """
    from ..sim.engine import InsufficientMemoryError

    have = storage.available_memory()
    if have is not None and need > 0.9 * have:
        raise InsufficientMemoryError(
            f"this training needs about {need / 2**30:.2f} GiB for {what}, but only "
            f"{have / 2**30:.2f} GiB of memory is available; {advice}"
        )


# ----------------------------------------------------------------------------- ensembles
def _trial_record_bytes(settings: dict, data: dict, validation: bool) -> int:
    """Bytes of one trial's records, from the manifest's settings and data entry."""
    return training_record_bytes(
        steps=settings["steps"],
        record_every=settings["record_every"],
        n_samples=data["samples"],
        n_classes=data["classes"],
        validation=validation,
        impact_every=settings["impact_every"],
        record_stepped=settings["record_stepped"],
    )


def _stack_bytes(manifest: dict, trials: int) -> int:
    """Bytes of reading ``trials`` trials back and stacking them: each trial's records,
    the stacked copy, and the float32 copy of the stepped logits."""
    s, data = manifest["settings"], manifest["data"]
    per = _trial_record_bytes(s, data, manifest["validation"] is not None)
    stepped = s["steps"] * data["classes"] * 4 if s["record_stepped"] else 0
    return trials * (2 * per + stepped)


def check_stack_memory(manifest: dict, trials: int) -> None:
    """Refuse (one line) reading ``trials`` trials of the ensemble ``manifest`` (a checked
    manifest, :func:`lesde.nn.ensemble.read_manifest`) back and stacking them, when they
    would not fit.

    Examples
    --------
    >>> settings = dict(steps=100, record_every=10, impact_every=None, record_stepped=True)
    >>> manifest = dict(settings=settings, data=dict(samples=30, classes=3), validation=None)
    >>> check_stack_memory(manifest, trials=10)  # fits: no error
    """
    need = _stack_bytes(manifest, trials)
    check_training_memory(
        need,
        f"{trials} trials read back and stacked",
        "read fewer trials (load_ensemble(folder, trials=...), --trials)",
    )


def check_ensemble_memory(manifest: dict, data: Dataset, validation: Dataset | None,
                          trials: int, parallel: int) -> None:  # fmt: skip
    """Refuse, before anything is allocated, an ensemble that cannot fit: ``parallel``
    trainings at once (each with its records, the data and its tensor copy), or the
    ``trials`` trials stacked at the end.

    Examples
    --------
    >>> from lesde.data import geometric_shapes
    >>> data = geometric_shapes(4, size=16)
    >>> settings = dict(steps=10**12, record_every=1000, impact_every=None, record_stepped=True)
    >>> manifest = dict(settings=settings, data=dict(samples=len(data), classes=3),
    ...                 validation=None)  # what lesde.nn.ensemble_manifest writes, in part
    >>> check_ensemble_memory(manifest, data, None, trials=4, parallel=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    lesde.sim.engine.InsufficientMemoryError: this training needs about ... GiB for 4 trials ...
    """
    data_bytes = sum(d.images.nbytes + d.labels.nbytes for d in (data, validation) if d)
    per = _trial_record_bytes(manifest["settings"], manifest["data"], validation is not None)
    training = parallel * (per + 2 * data_bytes) + data_bytes
    stacked = _stack_bytes(manifest, trials)
    what = (
        f"{trials} trial{'s' if trials != 1 else ''} of {per / 2**30:.2f} GiB of records "
        f"each ({parallel} trained at a time, then all stacked)"
    )
    advice = "fewer trials or steps, record less often (record_every)"
    if parallel > 1:
        advice += ", fewer workers"
    if manifest["settings"]["record_stepped"]:
        advice += ", or record_stepped=False"
    check_training_memory(max(training, stacked), what, advice)
