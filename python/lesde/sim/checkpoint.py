"""Checkpoints: the full state of a run at a record step, so a killed run can be finished.

``lesde.simulate(cfg, checkpoint="run.ckpt")`` writes one; ``lesde.resume("run.ckpt")``
finishes the run from it. The resumed result is bit-identical to an uninterrupted run:
random numbers are keyed by (seed, purpose, replica, step, sample), never by a stream
position, and at a record step the SGD class offsets and pending noise are folded into the
features, so features + labels + noise variance (SGD) + records + status + fail_step are
the complete state.

When. ``checkpoint_every=n`` writes at the first record step at or after every ``n``
steps since the last checkpoint; the default (``None``) writes at the first record step
after each :data:`CHECKPOINT_SECONDS` of wall time. The run's chunks are cut short at that
record step, so Ctrl-C and the progress bar stay responsive. A last checkpoint holds the
finished state (resuming it returns at once), unless every replica failed between records.

How. The file is an ``.npz`` of :mod:`lesde.io.storage` (never pickle) holding the arrays, a
JSON ``header`` (kind, format version, step, the config as TOML, lesde and random-stream
versions, dtype, wall time) and ``sha256``, a SHA-256 digest over the header and every
array's name, dtype, shape and bytes. It is written atomically: a temporary file in the
same directory, flushed and fsynced, renamed over the old checkpoint with
:func:`os.replace`, then the directory is fsynced. A reader therefore sees the previous
checkpoint or the new one, never a mixture; a file damaged afterwards (truncated, flipped
bytes) fails the storage checks, the zip CRCs or the digest and is refused with a
:class:`ValueError`.

Examples
--------
>>> import lesde, tempfile, os, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
>>> cfg = lesde.Config(n_classes=2, n_per_class=20, steps=40, record_every=10)
>>> full = lesde.simulate(cfg, checkpoint=path, checkpoint_every=20, progress=False)
>>> read_checkpoint(path).step
40
>>> np.array_equal(lesde.resume(path, progress=False).features, full.features)
True
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core, validate
from ..io import storage
from ..io.atomic import probe_write
from ..version import __version__
from .config import Config
from .engine import allocate, check_memory, check_on_nonfinite, run_engine
from .result import record_count

__all__ = [
    "CHECKPOINT_SECONDS",
    "FORMAT_VERSION",
    "Checkpoint",
    "Checkpointer",
    "check_random_stream",
    "check_reduction_order",
    "checkpoint_lock",
    "next_checkpoint_step",
    "read_checkpoint",
    "resume",
    "write_checkpoint",
]

#: Wall time between checkpoints when ``checkpoint_every`` is not given.
CHECKPOINT_SECONDS = 60.0
#: Version of the checkpoint layout; a file of another version is refused (it goes up
#: with every change of the recorded scalars, lesde.sim.result.SCALAR_METRICS).
FORMAT_VERSION = 1
KIND = "lesde-checkpoint"
# Record arrays: stored up to the checkpoint's record, padded with NaN on loading.
RECORD_ARRAYS = ("class_means", "label_means", "sigma_w", "scalars", "samples")
_STATE = ("features", "labels", "noise_var", "status", "fail_step")
_STATE_ALWAYS = tuple(name for name in _STATE if name != "noise_var")  # noise_var: SGD only


def checkpoint_digest(header_json: str, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(header_json.encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


def run_header(kind: str, cfg: Config, step: int, wall_seconds: float) -> dict[str, Any]:
    """What every checkpoint header (whole or sharded) says about the run it holds: kind,
    format version, step, the config as TOML, dtype, lesde and random-stream versions and
    wall time so far."""
    return {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "step": int(step),
        "config_toml": cfg.to_toml(),
        "dtype": cfg.dtype,
        "lesde_version": __version__,
        "random_stream_version": int(_core.RANDOM_STREAM_VERSION),
        "reduction_order": int(_core.REDUCTION_ORDER_VERSION),
        "wall_seconds": float(wall_seconds),
    }


def next_checkpoint_step(
    cfg: Config, every: int | None, last_step: int, last_time: float, step: int
) -> int | None:
    """The record step at which a checkpoint is due, seen at ``step`` (None: none yet), for a
    writer whose last checkpoint was at ``last_step`` (``time.perf_counter()`` ``last_time``):
    the first record step at or after ``last_step + every``, or with ``every`` None, the
    first at or after ``step`` once :data:`CHECKPOINT_SECONDS` have passed. None past the
    last record step.

    Examples
    --------
    >>> cfg = Config(n_classes=2, steps=25, record_every=10)
    >>> next_checkpoint_step(cfg, 12, 0, time.perf_counter(), 3)
    20
    >>> next_checkpoint_step(cfg, 30, 0, time.perf_counter(), 3) is None
    True
    """
    at = last_step + every if every is not None else step
    if every is None and time.perf_counter() - last_time < CHECKPOINT_SECONDS:
        return None
    return cfg.next_record_step(at) if at <= cfg.n_steps else None


def check_random_stream(path: Any, header: dict[str, Any]) -> None:
    """Refuse a checkpoint (or sharded manifest) drawn with another random stream than this
    lesde's: resumed, its run would continue with other numbers.

    Examples
    --------
    >>> check_random_stream("a.ckpt", {"random_stream_version": _core.RANDOM_STREAM_VERSION})
    >>> try:
    ...     check_random_stream("a.ckpt", {"random_stream_version": 1})
    ... except ValueError as err:
    ...     print(str(err)[:45])
    a.ckpt: written with random-stream version 1,
    """
    stream = header.get("random_stream_version")
    if stream != int(_core.RANDOM_STREAM_VERSION):
        raise ValueError(
            f"{path}: written with random-stream version {stream}, this lesde draws version "
            f"{int(_core.RANDOM_STREAM_VERSION)}; the run cannot be continued identically"
        )


def check_reduction_order(path: Any, header: dict[str, Any], cfg: Config) -> None:
    """Refuse a checkpoint whose run added its samples' sums in another order than this
    lesde would for its N: resumed, the run would mix orders (its last bits would match
    neither). Order 1 (no ``reduction_order`` in the header: lesde before the reduction
    tree) adds at most 256 blocks left to right, as order 2 does up to 256 x 2048 samples.

    Examples
    --------
    >>> check_reduction_order("a.ckpt", {}, Config(n_classes=2, n_per_class=10))
    >>> try:
    ...     check_reduction_order("a.ckpt", {}, Config(n_classes=2, n_per_class=300_000))
    ... except ValueError as err:
    ...     print(str(err)[:62])
    a.ckpt: its run added its 600000 samples' sums in reduction or
    """
    order = header.get("reduction_order", 1)
    ours = int(_core.REDUCTION_ORDER_VERSION)
    if order == ours:
        return
    if order == 1 and _core.block_layout(cfg.n_samples)[0] <= _core.REDUCTION_LINEAR_BLOCKS:
        return  # the same additions in both orders
    raise ValueError(
        f"{path}: its run added its {cfg.n_samples} samples' sums in reduction order {order}, "
        f"this lesde in order {ours}; the run cannot be continued identically: run it again "
        "from the start"
    )


def write_checkpoint(
    path: str | os.PathLike,
    cfg: Config,
    step: int,
    arrays: dict[str, Any],
    wall_seconds: float = 0.0,
    *,
    every: int | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    """Write the state in ``arrays`` (after ``step`` steps, a record step) to ``path``.

    ``every`` (the run's ``checkpoint_every``) and ``meta`` (JSON-friendly values of the
    caller, e.g. where the ``lesde`` command saves the result) are kept in the header, so
    that :func:`resume` carries on as the run would have.

    Examples
    --------
    >>> import lesde, tempfile, os
    >>> from lesde.sim.engine import allocate, run_engine
    >>> cfg = lesde.Config(n_classes=2, n_per_class=5, steps=4, record_every=2)
    >>> arrays = allocate(cfg)
    >>> _ = run_engine(cfg, arrays, progress=False, on_nonfinite="raise")
    >>> path = os.path.join(tempfile.mkdtemp(), "end.ckpt")
    >>> write_checkpoint(path, cfg, 4, arrays)
    >>> read_checkpoint(path).step
    4
    """
    idx = cfg.record_index(step)
    if idx < 0:
        raise ValueError(f"a checkpoint must be taken at a record step; {step} is not one")
    payload = {name: arrays[name] for name in _STATE if arrays.get(name) is not None}
    for name in RECORD_ARRAYS:
        payload[name] = np.ascontiguousarray(arrays[name][:, : idx + 1])
    header = {
        **run_header(KIND, cfg, step, wall_seconds),
        "checkpoint_every": every,
        "meta": dict(meta or {}),
    }
    payload["sha256"] = np.array(checkpoint_digest(storage.header_text(header), payload))
    storage.write_npz(path, payload, header)


@dataclass
class Checkpoint:
    """A validated checkpoint: the config, the step, and the engine's arrays (full size)."""

    config: Config
    step: int
    arrays: dict[str, np.ndarray | None]
    header: dict[str, Any]
    path: Path | None = None

    @property
    def every(self) -> int | None:
        """The run's ``checkpoint_every`` (None: by wall time)."""
        return self.header.get("checkpoint_every")

    @property
    def meta(self) -> dict[str, Any]:
        """What the writer kept beside the state (``checkpoint_meta`` of simulate)."""
        return self.header.get("meta") or {}


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load and validate a checkpoint; anything damaged or incompatible is a ValueError.

    Checked, in order: the file's structure, its header's kind and format version and the
    CRC of every member (:func:`lesde.io.storage.read_npz`), the SHA-256 digest, the
    random-stream version (another one could not continue the run bit-identically), the
    config, and every array's dtype and shape against the config, the step (a record
    step), status codes and labels.
    """
    try:
        contents = storage.read_npz(
            path,
            what="lesde checkpoint",
            kind=KIND,
            format_version=FORMAT_VERSION,
            required=("sha256", *_STATE_ALWAYS, *RECORD_ARRAYS),
            optional=("noise_var",),
            expect=_expected_checkpoint_arrays,
        )
    except RecursionError:  # a JSON header nested thousands deep
        raise ValueError(
            f"{path}: not a readable lesde checkpoint (header nested too deeply)"
        ) from None
    header, stored = contents.header, contents.arrays
    if str(stored.pop("sha256")[()]) != checkpoint_digest(contents.header_text, stored):
        raise ValueError(
            f"{path}: damaged or truncated lesde checkpoint (SHA-256 checksum mismatch); "
            "refusing to resume from it"
        )
    check_random_stream(path, header)
    if header.get("lesde_version") != __version__:
        warnings.warn(
            f"{path}: written by lesde {header.get('lesde_version')}, resuming with "
            f"{__version__} (same random-stream version)",
            RuntimeWarning,
            stacklevel=3,
        )
    try:
        cfg = Config.from_toml_text(header["config_toml"])
        step = header["step"]
        if cfg.dtype != header.get("dtype"):
            raise ValueError(f"dtype {header.get('dtype')!r} disagrees with the config")
        every = header.get("checkpoint_every")
        if every is not None:
            validate.integer("checkpoint_every", every, at_least=1)
        if not isinstance(header.get("meta", {}), dict):
            raise TypeError("meta must be a table")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid checkpoint header ({err})") from None
    check_reduction_order(path, header, cfg)
    check_memory(cfg)  # before the record grid or any array is built
    idx = cfg.record_index(step) if isinstance(step, int) and not isinstance(step, bool) else -1
    if idx < 0:
        raise ValueError(f"{path}: step {step!r} is not a record step of its config")
    arrays = allocate(cfg)
    for name in _STATE + RECORD_ARRAYS:
        want = arrays[name]
        have = stored.pop(name, None)
        if want is None:
            if have is not None:
                raise ValueError(f"{path}: unexpected array {name!r} for process {cfg.process!r}")
            continue
        shape = want.shape if name in _STATE else (want.shape[0], idx + 1) + want.shape[2:]
        if have is None or have.dtype != want.dtype or have.shape != shape:
            got = "missing" if have is None else f"{have.dtype} {have.shape}"
            raise ValueError(f"{path}: array {name!r} should be {want.dtype} {shape}, got {got}")
        if name in _STATE:  # the loaded array itself: no second copy of the state
            arrays[name] = np.require(have, requirements=["C", "W"])
        else:
            want[:, : idx + 1] = have
    status, fail_step = arrays["status"], arrays["fail_step"]
    if not np.all(np.isin(status, (0, 1))):
        raise ValueError(f"{path}: unknown status codes {np.unique(status).tolist()}")
    if np.any((status == 0) != (fail_step == -1)) or np.any(fail_step > step):
        raise ValueError(f"{path}: status and fail_step disagree")
    labels = arrays["labels"]
    if labels.size and (labels.min() < 0 or labels.max() >= cfg.n_classes):
        raise ValueError(f"{path}: labels outside [0, {cfg.n_classes})")
    return Checkpoint(cfg, int(step), arrays, header, Path(path))


def _expected_checkpoint_arrays(header: dict, declared: dict) -> dict[str, storage.Spec]:
    """The dtype and shape of every array of a checkpoint, from its header, checked by
    storage.read_npz before anything is read: the run must fit in memory (check_memory,
    from the config alone) and the records go up to the checkpoint's step."""
    try:
        cfg = Config.from_toml_text(header["config_toml"])
        step = header["step"]
        if not isinstance(step, int) or isinstance(step, bool):
            raise TypeError(f"step must be an int, got {step!r}")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"invalid checkpoint header ({err})") from None
    check_memory(cfg)
    n, every = cfg.n_steps, cfg.record_interval
    if not (0 <= step <= n and (step % every == 0 or step == n)):
        raise ValueError(f"step {step} is not a record step of its config")
    R, N, K, p = cfg.replicas, cfg.n_samples, cfg.n_classes, cfg.p
    T, S = record_count(cfg, step), len(cfg.recorded_sample_indices)
    real = np.dtype(np.float64 if cfg.dtype == "float64" else np.float32)
    f8, i4, i8 = np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64)
    expected = {
        "sha256": ("U", ()),
        "features": (real, (R, N, p)),
        "labels": (i4, (R, N)),
        "status": (i4, (R,)),
        "fail_step": (i8, (R,)),
        "class_means": (f8, (R, T, K, p)),
        "label_means": (f8, (R, T, K, p)),
        "sigma_w": (f8, (R, T, p, p)),
        "scalars": (f8, (R, T, _core.NUM_SCALARS)),
        "samples": (f8, (R, T, S, p)),
    }
    if cfg.process == "sgd":
        expected["noise_var"] = (f8, (R, N))
    return expected


class Checkpointer:
    """Decides when the run loop writes a checkpoint, and writes it.

    It is the :class:`lesde.sim.engine.Checkpointing` that :func:`lesde.sim.engine.run_engine`
    takes: the loop asks :meth:`limit` to cut a chunk short at the record step where the next
    checkpoint is due, and calls :meth:`maybe_write` after each chunk and
    :meth:`write_final` at the end.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        cfg: Config,
        every: int | None = None,
        start_step: int = 0,
        *,
        saved_step: int | None = None,
        meta: dict[str, Any] | None = None,
        overwrite: bool = False,
    ):
        self.path, self.cfg, self.every = Path(path), cfg, every
        self.meta = dict(meta or {})
        self.last_step, self.last_time = start_step, time.perf_counter()
        self.saved_step = saved_step  # the step of the checkpoint at path: None while none
        self.failing = False  # the last write failed (warned once)
        # Replace the checkpoint at path: asked for, or the one being resumed.
        self.overwrite = overwrite or saved_step is not None
        self._held: contextlib.ExitStack | None = None  # the lock, while entered

    def __enter__(self) -> Checkpointer:
        """Take the checkpoint's lock (:func:`checkpoint_lock`: one writer), then check the
        path (only a lesde checkpoint, and only with ``overwrite`` or when resuming it, is
        replaced; a place where no file can be created fails now, not at the first
        checkpoint) and remove the temporary files that killed writers left."""
        self._check_replace()  # first without the lock: a refusal leaves no lock file
        with contextlib.ExitStack() as held:  # let go of the lock if anything below fails
            try:
                held.enter_context(checkpoint_lock(self.path))
            except OSError as err:  # the lock file cannot be created: an unwritable folder
                raise _cannot_write(err, self.path) from None
            self._check_replace()  # again, now that no other run writes it
            _check_can_write(self.path)
            storage.remove_stale_temporaries(self.path)  # left by a killed writer
            self._held = held.pop_all()  # kept until __exit__
        return self

    def __exit__(self, *exc: Any) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()

    def _check_replace(self) -> None:
        storage.check_replace(
            self.path,
            kind=KIND,
            name=f"checkpoint {str(self.path)!r}",
            overwrite=self.overwrite,
            advice=f"resume it with lesde.resume({str(self.path)!r}), or pass overwrite=True "
            "to start over and replace it",
        )

    @classmethod
    def create(
        cls,
        path: Any,
        cfg: Config,
        every: Any,
        start_step: int = 0,
        *,
        saved_step: int | None = None,
        meta: dict[str, Any] | None = None,
        overwrite: bool = False,
    ) -> Checkpointer | None:
        """Validate the user's ``checkpoint``/``checkpoint_every``; None if not checkpointing.

        A path that exists and is not a regular file (a folder, a symbolic link, a device,
        a FIFO) is refused: writing the checkpoint would replace it. The writer is a
        context manager: entering it (``with writer:``, before the run) takes the
        checkpoint's lock and refuses a file lesde did not write, or a lesde checkpoint
        unless ``overwrite`` (:class:`lesde.io.storage.NotReplacedError`), and a place where
        no file can be created (an ``OSError``).
        """
        if path is None:
            if every is not None:
                raise ValueError("checkpoint_every needs a checkpoint path (checkpoint=...)")
            if meta:
                raise ValueError("checkpoint_meta needs a checkpoint path (checkpoint=...)")
            return None
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path, got {type(path).__name__}")
        if str(path) == "":
            raise ValueError("checkpoint must be a file path, got ''")
        if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
            raise ValueError(
                f"checkpoint must be a file path; {str(path)!r} exists and is not a regular "
                "file (a folder, a symbolic link, a device or a FIFO), which writing a "
                "checkpoint would replace"
            )
        if every is not None:
            every = validate.integer("checkpoint_every", every, at_least=1)
        if meta is not None:
            if not isinstance(meta, dict):
                raise TypeError(f"checkpoint_meta must be a dict, got {type(meta).__name__}")
            try:
                storage.header_text(meta)
            except (TypeError, ValueError) as err:
                raise TypeError(f"checkpoint_meta must hold JSON values only: {err}") from None
        return cls(
            path, cfg, every, start_step, saved_step=saved_step, meta=meta, overwrite=overwrite
        )

    def due_step(self, step: int) -> int | None:
        """The record step of the next checkpoint, once one is due (else None)."""
        return next_checkpoint_step(self.cfg, self.every, self.last_step, self.last_time, step)

    def limit(self, step: int, target: int) -> int:
        due = self.due_step(step)
        return min(target, due) if due is not None and due > step else target

    def maybe_write(self, step: int, arrays: dict, wall_seconds: float) -> None:
        if step == self.due_step(step):
            self.write(step, arrays, wall_seconds)

    def write_final(self, step: int, arrays: dict, wall_seconds: float) -> None:
        if step != self.last_step and self.cfg.record_index(step) >= 0:  # not tried yet
            self.write(step, arrays, wall_seconds)

    def write(self, step: int, arrays: dict, wall_seconds: float) -> None:
        """Write the checkpoint of ``step``. A write that fails (a full disk) is a warning,
        not an error: the run goes on, so its result is not lost with the checkpoint, and
        the next due checkpoint tries again; the file on disk is left as it was."""
        try:
            write_checkpoint(
                self.path, self.cfg, step, arrays, wall_seconds, every=self.every, meta=self.meta
            )
        except OSError as err:
            if not self.failing:  # once, not at every due step while the disk stays full
                kept = (
                    "no checkpoint was written"
                    if self.saved_step is None
                    else f"the checkpoint on disk still holds step {self.saved_step}"
                )
                warnings.warn(
                    f"cannot write checkpoint {self.path} at step {step}: "
                    f"{err.strerror or err}; the run goes on and {kept}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self.failing = True
        else:
            self.saved_step, self.failing = step, False
        self.last_step, self.last_time = step, time.perf_counter()


def checkpoint_lock(path: str | os.PathLike):
    """The lock of a checkpoint (:func:`lesde.io.storage.output_lock`, on ``.NAME.lock``
    beside it): one writer at a time. :func:`lesde.simulate` and :func:`resume` hold it for
    the whole run; a second writer of the same checkpoint, in this process or another, gets
    a :class:`lesde.io.storage.InUseError` naming the holder. The system drops the lock when
    its holder exits, even when killed.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
    >>> with checkpoint_lock(path):
    ...     pass
    """
    return storage.output_lock(path, what=f"checkpoint {str(path)!r}")


def _cannot_write(err: OSError, path: Path) -> OSError:
    # errno keeps the class (PermissionError, ...); name the target
    return OSError(err.errno, f"cannot write a checkpoint: {err.strerror}", str(path))


def _check_can_write(path: Path) -> None:
    """Create and delete a file beside ``path`` (its folder exists: the lock file is in
    it), so that a read-only or unwritable place fails before the run, not at its first
    checkpoint. The probe is not named like the writer's temporaries, which another
    writer's start may remove."""
    try:
        probe_write(path.parent, prefix=f".{path.name}.")
    except OSError as err:
        raise _cannot_write(err, path) from None


def resume(
    path: str | os.PathLike | Checkpoint,
    *,
    progress: bool | None = None,
    checkpoint_every: int | None = None,
    on_nonfinite: str = "raise",
    checkpoint_meta: dict[str, Any] | None = None,
):
    """Finish the run saved in checkpoint ``path``; the result equals an uninterrupted run.

    The run keeps checkpointing to ``path``, every ``checkpoint_every`` steps as in
    :func:`lesde.simulate`; by default as often as the run that wrote the checkpoint did.
    ``checkpoint_meta`` replaces what that run kept in the checkpoint (default: kept as it
    is). ``progress`` and ``on_nonfinite`` are those of :func:`lesde.simulate`. ``path`` may
    also be the :class:`Checkpoint` that :func:`read_checkpoint` returned (the ``lesde``
    command reads it first, to learn where the result goes); the run continues in its
    arrays, so it is used up.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is damaged, truncated, not a checkpoint, or of an incompatible format or
        random-stream version.
    lesde.io.storage.InUseError
        Another run (another process, or another thread) writes this checkpoint: one
        writer at a time (:func:`checkpoint_lock`, taken before the file is read).
    """
    check_on_nonfinite(on_nonfinite)
    target = path.path if isinstance(path, Checkpoint) else path
    if target is None:
        raise ValueError("resume needs the checkpoint's file: Checkpoint.path is None")
    storage.check_input(target, "lesde checkpoint")  # before the lock file is made beside it
    if not isinstance(path, Checkpoint) and storage.lesde_kind(storage.read_header(path)) != KIND:
        read_checkpoint(path)  # not a checkpoint: its one-line refusal, and no lock file
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(checkpoint_lock(target))
        except OSError as err:
            raise _cannot_write(err, Path(target)) from None
        # Read under the lock: no other writer changes it from now on.
        ckpt = path if isinstance(path, Checkpoint) else read_checkpoint(path)
        writer = Checkpointer.create(
            ckpt.path,
            ckpt.config,
            ckpt.every if checkpoint_every is None else checkpoint_every,
            start_step=ckpt.step,
            saved_step=ckpt.step,
            meta=ckpt.meta if checkpoint_meta is None else checkpoint_meta,
        )
        with writer:
            return run_engine(
                ckpt.config,
                ckpt.arrays,
                progress=progress,
                on_nonfinite=on_nonfinite,
                checkpointer=writer,
                resume_step=ckpt.step,
                wall_before=float(ckpt.header.get("wall_seconds", 0.0)),
            )
