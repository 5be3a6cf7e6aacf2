"""Checkpoints of a run sharded over MPI ranks (:mod:`lesde.sim.mpi`).

A run sharded over MPI ranks (lesde.sim.mpi) checkpoints in parts: every rank writes its own
samples' state, rank 0 the records (the same on every rank), then, once every part is on
disk, rank 0 writes the manifest at the checkpoint's path, which names each part and its
digest. A checkpoint exists only when its manifest does; the parts are tagged with their
step, so writing the next checkpoint never touches the parts the current manifest names,
and a rank killed while writing leaves the previous checkpoint whole.

Every file is bound to its run: the manifest carries a SHA-256 digest over its header (the
config, the step, the rank count and each part's digest), so an edited manifest is refused
as a single-file checkpoint is; each part carries the run's identity (:func:`run_identity`:
config, step, rank count) and its rank, so a part of another run, step or rank, or a part
renamed to another's name, is refused with a line that says so.

Examples
--------
>>> records, parts = sharded_part_names("out/run.ckpt", 120, 2)
>>> records, parts[0]
('run.ckpt.step000000000120.records', 'run.ckpt.step000000000120.rank0-of-2')
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core, validate
from ..io import storage
from ..io.atomic import probe_write
from ..version import __version__
from .checkpoint import (
    RECORD_ARRAYS,
    Checkpoint,
    check_random_stream,
    check_reduction_order,
    checkpoint_digest,
    next_checkpoint_step,
    run_header,
)
from .collective import agree, agreed_error
from .config import Config
from .engine import check_memory
from .result import record_count

__all__ = [
    "RECORDS_KIND",
    "SHARDED_FORMAT_VERSION",
    "SHARDED_KIND",
    "SHARD_KIND",
    "ShardedCheckpointer",
    "check_rank_memory",
    "read_sharded_checkpoint",
    "read_sharded_manifest",
    "run_identity",
    "sharded_part_names",
    "write_sharded_checkpoint",
]

SHARDED_KIND = "lesde-sharded-checkpoint"
SHARD_KIND = "lesde-checkpoint-shard"
RECORDS_KIND = "lesde-checkpoint-records"
#: Version of the sharded layout (manifest and parts); another version is refused.
#: 2: the manifest's digest, and the run's identity in every part.
SHARDED_FORMAT_VERSION = 2
_SHARD_STATE = ("features", "labels", "status", "fail_step")


def sharded_part_names(path: str | os.PathLike, step: int, ranks: int) -> tuple[str, list[str]]:
    """File names (in the manifest's folder) of the records and of every rank's part of the
    sharded checkpoint ``path`` at ``step``.

    Examples
    --------
    >>> records, parts = sharded_part_names("out/run.ckpt", 120, 2)
    >>> records, parts[1]
    ('run.ckpt.step000000000120.records', 'run.ckpt.step000000000120.rank1-of-2')
    """
    stem = f"{Path(path).name}.step{int(step):012d}"
    return f"{stem}.records", [f"{stem}.rank{r}-of-{ranks}" for r in range(ranks)]


def run_identity(config_toml: str, step: int, ranks: int) -> str:
    """The identity of a sharded run's checkpoint at ``step``: a SHA-256 digest over the
    run's config (its TOML text), the step and the number of ranks. Every part of the
    checkpoint carries it, with its rank.

    Examples
    --------
    >>> one, other = Config(seed=1).to_toml(), Config(seed=2).to_toml()
    >>> run_identity(one, 100, 2) == run_identity(one, 100, 2)
    True
    >>> run_identity(one, 100, 2) == run_identity(other, 100, 2)
    False
    """
    text = storage.header_text({"config_toml": config_toml, "step": int(step), "ranks": int(ranks)})
    return hashlib.sha256(text.encode()).hexdigest()


def _write_part(file: Path, kind: str, about: dict[str, Any], arrays: dict) -> str:
    """One part of a sharded checkpoint (atomically), with its digest; returns the digest."""
    header = {"kind": kind, "format_version": SHARDED_FORMAT_VERSION, **about}
    arrays = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
    digest = checkpoint_digest(storage.header_text(header), arrays)
    storage.write_npz(file, {**arrays, "sha256": np.array(digest)}, header)
    return digest


def _os_line(err: OSError) -> str:
    what = err.strerror or str(err)
    return f"{err.filename}: {what}" if err.filename else what


def write_sharded_checkpoint(
    path: str | os.PathLike,
    cfg: Config,
    step: int,
    arrays: dict[str, Any],
    comm: Any,
    sample_range: tuple[int, int],
    wall_seconds: float = 0.0,
) -> None:
    """Write the checkpoint of a sharded run after ``step`` steps (a record step); every
    rank of ``comm`` calls it with its own ``arrays`` (its samples ``sample_range``).

    Every rank writes its part; rank 0 also writes the records; once all parts are written
    (an all-gather of their digests), rank 0 writes the manifest ``path`` and deletes the
    parts of older checkpoints. A failure on any rank raises the same OSError (an
    :class:`lesde.sim.collective.AgreedError`) on all of them, and the previous checkpoint
    stays whole.

    Examples
    --------
    >>> import lesde, tempfile, os
    >>> from mpi4py import MPI
    >>> from lesde.sim.engine import allocate, run_engine
    >>> cfg = lesde.Config(n_classes=2, n_per_class=5, steps=4, record_every=2)
    >>> arrays = allocate(cfg)
    >>> _ = run_engine(cfg, arrays, progress=False, on_nonfinite="raise")
    >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
    >>> write_sharded_checkpoint(path, cfg, 4, arrays, MPI.COMM_SELF, (0, 10))
    >>> sorted(os.listdir(os.path.dirname(path)))
    ['run.ckpt', 'run.ckpt.step000000000004.rank0-of-1', 'run.ckpt.step000000000004.records']
    >>> read_sharded_checkpoint(path, MPI.COMM_SELF, lambda cfg: (0, 10)).step
    4
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    if record_count(cfg, step) - record_count(cfg, step - 1) != 1:
        raise ValueError(f"a checkpoint must be taken at a record step; {step} is not one")
    T = record_count(cfg, step)
    path = Path(path)
    records_name, shard_names = sharded_part_names(path, step, size)
    run = run_identity(cfg.to_toml(), step, size)
    error, digest, records_digest = None, None, None
    try:
        about = {
            "run": run,
            "step": int(step),
            "rank": rank,
            "ranks": size,
            "samples": list(sample_range),
        }
        shard = {name: arrays[name] for name in _SHARD_STATE}
        digest = _write_part(path.parent / shard_names[rank], SHARD_KIND, about, shard)
        if rank == 0:
            records = {name: arrays[name][:, :T] for name in RECORD_ARRAYS}
            about = {"run": run, "step": int(step), "ranks": size}
            records_digest = _write_part(path.parent / records_name, RECORDS_KIND, about, records)
    except OSError as err:
        error = f"rank {rank}: {_os_line(err)}"
    # The all-gather is the barrier: the manifest is written once every part is.
    parts = comm.allgather((error, digest, list(sample_range)))
    failed = next((e for e, _, _ in parts if e), None)
    if failed:  # on every rank alike, so that none waits for the others
        raise agreed_error(
            OSError, f"{path}: not written, the previous checkpoint is kept ({failed})"
        )
    if rank == 0:
        header = {
            **run_header(SHARDED_KIND, cfg, step, wall_seconds),
            "format_version": SHARDED_FORMAT_VERSION,
            "ranks": size,
            "run": run,
            "records": {"file": records_name, "sha256": records_digest},
            "shards": [
                {"file": name, "sha256": d, "samples": samples}
                for name, (_, d, samples) in zip(shard_names, parts, strict=True)
            ],
        }
        # The manifest's own digest binds its header (config, step, every part's digest).
        sealed = {"sha256": np.array(checkpoint_digest(storage.header_text(header), {}))}
        try:
            storage.write_npz(path, sealed, header)
            _remove_parts_before(path, step)
        except OSError as err:
            error = f"rank 0: {_os_line(err)}"
    error = comm.bcast(error, root=0)
    if error:
        raise agreed_error(
            OSError, f"{path}: manifest not written, the previous one is kept ({error})"
        )


def _remove_parts_before(path: Path, step: int) -> None:
    """Delete the parts of sharded checkpoints at ``path`` older than ``step``."""
    pattern = re.compile(re.escape(path.name) + r"\.step(\d{12})\.(records|rank\d+-of-\d+)")
    for part in path.parent.glob(f"{glob.escape(path.name)}.step*"):
        found = pattern.fullmatch(part.name)
        if found and int(found.group(1)) < step:
            try:
                part.unlink()
            except OSError:
                pass


def _check_identity(header: dict, about: dict[str, Any], what: str, manifest: Path) -> None:
    """Refuse a part whose header is not of the run, step and rank the manifest names
    (ValueError; read_npz puts the part's path in front)."""
    wrong = [key for key, value in about.items() if header.get(key) != value]
    if not wrong:
        return
    if "run" in wrong:
        it = f"it is of another run or step (step {header.get('step')!r})"
    elif "rank" in wrong:
        it = f"it is the part of rank {header.get('rank')!r}"
    else:
        it = ", ".join(f"its {key} is {header.get(key)!r}, not {about[key]!r}" for key in wrong)
    raise ValueError(
        f"not the {what} of {manifest} at step {about['step']} ({it}); refusing to resume from it"
    )


def _read_part(
    folder: Path,
    entry: Any,
    what: str,
    kind: str,
    manifest: Path,
    expected: dict,
    about: dict[str, Any],
) -> dict[str, np.ndarray]:
    """A part named by the manifest: its identity (``about``: run, step, rank) and arrays
    checked against what the manifest says before they are read, then its digest against
    its own and the manifest's."""
    name = entry.get("file") if isinstance(entry, dict) else None
    if (
        not isinstance(name, str)
        or Path(name).name != name
        or not name.startswith(f"{manifest.name}.step")
    ):
        raise ValueError(f"{manifest}: invalid manifest entry for the {what}: {entry!r}")

    def expect(header: dict, declared: dict) -> dict:
        _check_identity(header, about, what, manifest)
        return {"sha256": ("U", ()), **expected}

    contents = storage.read_npz(
        folder / name,
        what=f"{what} of a sharded lesde checkpoint",
        kind=kind,
        format_version=SHARDED_FORMAT_VERSION,
        required=("sha256", *expected),
        expect=expect,
    )
    stored = contents.arrays
    digest = str(stored.pop("sha256")[()])
    if digest != checkpoint_digest(contents.header_text, stored):
        raise ValueError(
            f"{folder / name}: damaged or truncated (SHA-256 mismatch); refusing to resume from it"
        )
    if digest != entry.get("sha256"):
        raise ValueError(
            f"{folder / name}: not the part its manifest names (SHA-256 mismatch); refusing "
            "to resume from it"
        )
    return stored


def read_sharded_manifest(path: str | os.PathLike) -> tuple[Config, dict[str, Any]]:
    """The config and header of the manifest of sharded checkpoint ``path``, checked: its
    kind and format version, its SHA-256 digest (an edited manifest is refused), the
    random-stream version, the config, the step (a record step), the rank count and that
    the run's records fit in memory. Reads this process's copy only (no collective).

    Examples
    --------
    >>> import lesde, tempfile, os
    >>> from mpi4py import MPI
    >>> from lesde.sim.engine import allocate, run_engine
    >>> cfg = lesde.Config(n_classes=2, n_per_class=5, steps=4, record_every=2, seed=3)
    >>> arrays = allocate(cfg)
    >>> _ = run_engine(cfg, arrays, progress=False, on_nonfinite="raise")
    >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
    >>> write_sharded_checkpoint(path, cfg, 4, arrays, MPI.COMM_SELF, (0, 10))
    >>> config, header = read_sharded_manifest(path)
    >>> config.seed, header["step"], header["ranks"]
    (3, 4, 1)
    """
    path = Path(path)
    contents = storage.read_npz(
        path,
        what="sharded lesde checkpoint",
        kind=SHARDED_KIND,
        format_version=SHARDED_FORMAT_VERSION,
        required=("sha256",),
        expect=lambda header, declared: {"sha256": ("U", ())},
    )
    manifest = contents.header
    if str(contents.arrays["sha256"][()]) != checkpoint_digest(contents.header_text, {}):
        raise ValueError(
            f"{path}: damaged or edited sharded checkpoint manifest (SHA-256 mismatch); "
            "refusing to resume from it"
        )
    check_random_stream(path, manifest)
    try:
        cfg = Config.from_toml_text(manifest["config_toml"])
        step, shards, ranks = manifest["step"], manifest["shards"], manifest["ranks"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (step, ranks)):
            raise TypeError("step and ranks must be integers")
        if not isinstance(shards, list) or len(shards) != ranks or ranks < 1:
            raise TypeError("shards must hold one entry per rank")
        if cfg.dtype != manifest.get("dtype"):
            raise ValueError(f"dtype {manifest.get('dtype')!r} disagrees with the config")
        if manifest.get("run") != run_identity(manifest["config_toml"], step, ranks):
            raise ValueError("its run identity disagrees with its config, step and ranks")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid sharded checkpoint manifest ({err})") from None
    if not 0 <= step <= cfg.n_steps or record_count(cfg, step) == record_count(cfg, step - 1):
        raise ValueError(f"{path}: step {step} is not a record step of its config")
    check_reduction_order(path, manifest, cfg)
    check_memory(cfg, samples=0)  # the records every rank holds (its samples: when read)
    return cfg, manifest


def check_rank_memory(cfg: Config, samples: tuple[int, int], rank: int) -> None:
    """Refuse (:class:`lesde.sim.engine.InsufficientMemoryError`) a rank of a sharded run
    that would not fit: its samples ``(lo, hi)``, the whole run's records and, on rank 0,
    the features and labels it gathers at the end.

    Examples
    --------
    >>> check_rank_memory(Config(n_classes=2, n_per_class=10), (0, 10), 0)  # fits
    """
    gathered = cfg.state_bytes() - cfg.record_bytes() if rank == 0 else 0
    check_memory(cfg, samples[1] - samples[0], gathered)


def read_sharded_checkpoint(
    path: str | os.PathLike, comm: Any, layout: Callable[[Config], tuple[int, int]]
) -> Checkpoint:
    """Read this rank's part of the sharded checkpoint ``path``, and its records.

    Collective: every rank of ``comm`` calls it; if any rank finds something wrong (the
    manifest, a part, a digest, another rank count or sample layout), all raise the same
    error (:func:`lesde.sim.collective.agree`). ``layout(config)`` gives the samples (lo, hi)
    this rank owns, which its part must hold. The arrays are this rank's ``features`` and
    ``labels``, ``status``, ``fail_step`` and the records up to the checkpoint's step (an
    example: :func:`write_sharded_checkpoint`).
    """
    error, ckpt = None, None
    try:
        ckpt = _read_sharded_part(Path(path), comm.Get_rank(), comm.Get_size(), layout)
    except Exception as err:  # whatever it is, every rank must hear of it
        error = err
    agree(comm, error)
    return ckpt


def _read_sharded_part(path: Path, rank: int, size: int, layout: Callable) -> Checkpoint:
    cfg, manifest = read_sharded_manifest(path)
    step, shards, ranks = manifest["step"], manifest["shards"], manifest["ranks"]
    if ranks != size:
        raise ValueError(
            f"{path}: written by {ranks} MPI ranks; resume it on as many "
            f"(mpiexec -n {ranks}), not on {size}"
        )
    if rank == 0 and manifest.get("lesde_version") != __version__:
        warnings.warn(
            f"{path}: written by lesde {manifest.get('lesde_version')}, resuming with "
            f"{__version__} (same random-stream version)",
            RuntimeWarning,
            stacklevel=4,
        )
    samples = layout(cfg)
    check_rank_memory(cfg, samples, rank)  # before its part is read
    if not isinstance(shards[rank], dict) or shards[rank].get("samples") != list(samples):
        raise ValueError(
            f"{path}: the part of rank {rank} is not of samples {list(samples)}, which this "
            "lesde gives it"
        )
    R, K, p, n = cfg.replicas, cfg.n_classes, cfg.p, samples[1] - samples[0]
    T, S = record_count(cfg, step), len(cfg.recorded_sample_indices)
    real = np.dtype(np.float64 if cfg.dtype == "float64" else np.float32)
    f8, i4, i8 = np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64)
    state = {
        "features": (real, (R, n, p)),
        "labels": (i4, (R, n)),
        "status": (i4, (R,)),
        "fail_step": (i8, (R,)),
    }
    records = {
        "class_means": (f8, (R, T, K, p)),
        "label_means": (f8, (R, T, K, p)),
        "sigma_w": (f8, (R, T, p, p)),
        "scalars": (f8, (R, T, _core.NUM_SCALARS)),
        "samples": (f8, (R, T, S, p)),
    }
    run = manifest["run"]
    folder = path.parent
    shard_about = {"run": run, "step": step, "rank": rank, "ranks": size, "samples": list(samples)}
    arrays = _read_part(
        folder, shards[rank], f"rank {rank}'s part", SHARD_KIND, path, state, shard_about
    )
    records_about = {"run": run, "step": step, "ranks": size}
    arrays.update(
        _read_part(
            folder, manifest.get("records"), "records", RECORDS_KIND, path, records, records_about
        )
    )
    status, fail_step, labels = arrays["status"], arrays["fail_step"], arrays["labels"]
    if not np.all(np.isin(status, (0, 1))) or np.any((status == 0) != (fail_step == -1)):
        raise ValueError(f"{path}: status and fail_step of rank {rank} disagree")
    if np.any(fail_step > step):
        raise ValueError(f"{path}: status and fail_step of rank {rank} disagree")
    if labels.size and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"{path}: labels of rank {rank} outside [0, {K})")
    return Checkpoint(cfg, int(step), arrays, manifest, path)


class ShardedCheckpointer:
    """Writes the checkpoints of a run sharded over MPI ranks, at record steps all ranks
    agree on.

    The run loop's :class:`lesde.sim.engine.Checkpointing` is :mod:`lesde.sim.mpi`'s lock-step,
    which at every chunk boundary all-gathers each rank's :meth:`proposal` (the record step
    at which this rank finds a checkpoint due, by steps or by its own clock) and hands them
    all to :meth:`agree_due`: every rank takes the smallest, so a checkpoint due on one rank
    is written by all at the same record step (:meth:`maybe_write`, :meth:`write_final`;
    writing is collective).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        cfg: Config,
        every: int | None,
        comm: Any,
        sample_range: tuple[int, int],
        start_step: int = 0,
        saved_step: int | None = None,
    ):
        self.path, self.cfg, self.every, self.comm = Path(path), cfg, every, comm
        self.saved_step = saved_step  # the step of the manifest on disk (None while none)
        self.sample_range = sample_range
        self.last_step, self.last_time = start_step, time.perf_counter()
        self.due: int | None = None  # agreed by every rank in agree_due()

    @classmethod
    def create(
        cls,
        path: Any,
        cfg: Config,
        every: Any,
        comm: Any,
        sample_range: tuple[int, int],
        *,
        start_step: int = 0,
        saved_step: int | None = None,
    ) -> ShardedCheckpointer | None:
        """Validate ``checkpoint``/``checkpoint_every`` as :meth:`Checkpointer.create` does
        (a path that exists and is not a regular file is refused, and so is a folder where
        this rank cannot create a file); None if not checkpointing. Rank 0 also removes the
        temporary files of killed writers. Not collective: call it on every rank and agree
        on the outcome (:func:`lesde.sim.collective.agreed`) before the run, which is also the
        barrier after that clean-up."""
        if path is None:
            if every is not None:
                raise ValueError("checkpoint_every needs a checkpoint path (checkpoint=...)")
            return None
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path, got {type(path).__name__}")
        if str(path) == "":
            raise ValueError("checkpoint must be a file path, got ''")
        kind = storage.file_kind(path)
        if kind is not None:
            raise ValueError(
                f"checkpoint must be a file path; {str(path)!r} is {kind}, which writing a "
                "checkpoint would replace"
            )
        if every is not None:
            every = validate.integer("checkpoint_every", every, at_least=1)
        path = Path(path)
        _check_can_write(path, comm.Get_rank())
        if comm.Get_rank() == 0:  # left by a killed writer; no rank writes before a step
            for stale in path.parent.glob(f".{glob.escape(path.name)}*.tmp"):
                stale.unlink(missing_ok=True)
        return cls(path, cfg, every, comm, sample_range, start_step, saved_step)

    def proposal(self, step: int) -> int | None:
        """The record step at which this rank finds a checkpoint due (None: none yet)."""
        return next_checkpoint_step(self.cfg, self.every, self.last_step, self.last_time, step)

    def agree_due(self, proposals: list, step: int, target: int) -> int:
        """Take the earliest of every rank's proposals as the due step; the chunk's end
        ``target``, cut short at it."""
        dues = [d for d in proposals if d is not None]
        self.due = min(dues) if dues else None
        return min(target, self.due) if self.due is not None and self.due > step else target

    def maybe_write(self, step: int, arrays: dict, wall_seconds: float) -> None:
        if self.due is not None and step == self.due:
            self.write(step, arrays, wall_seconds)

    def write_final(self, step: int, arrays: dict, wall_seconds: float) -> None:
        if step != self.last_step and record_count(self.cfg, step) > record_count(
            self.cfg, step - 1
        ):
            self.write(step, arrays, wall_seconds)

    def write(self, step: int, arrays: dict, wall_seconds: float) -> None:
        write_sharded_checkpoint(
            self.path, self.cfg, step, arrays, self.comm, self.sample_range, wall_seconds
        )
        self.saved_step = step
        self.last_step, self.last_time, self.due = step, time.perf_counter(), None


def _check_can_write(path: Path, rank: int) -> None:
    """Create and delete a file beside ``path`` (creating its folder, as the writer would),
    so that a place where this rank cannot write fails before the run, not at its first
    checkpoint. The probe's name is not one rank 0's clean-up removes."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe_write(path.parent, prefix=f".{path.name}-rank{rank}.")
    except OSError as err:
        raise OSError(err.errno, f"cannot write a checkpoint: {err.strerror}", str(path)) from None
