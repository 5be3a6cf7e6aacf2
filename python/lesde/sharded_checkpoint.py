"""Checkpoints of a run sharded over MPI ranks (:mod:`lesde.mpi`).

A run sharded over MPI ranks (lesde.mpi) checkpoints in parts: every rank writes its own
samples' state, rank 0 the records (the same on every rank), then, once every part is on
disk, rank 0 writes the manifest at the checkpoint's path, which names each part and its
digest. A checkpoint exists only when its manifest does; the parts are tagged with their
step, so writing the next checkpoint never touches the parts the current manifest names,
and a rank killed while writing leaves the previous checkpoint whole.

Examples
--------
>>> records, parts = sharded_part_names("out/run.ckpt", 120, 2)
>>> records, parts[0]
('run.ckpt.step000000000120.records', 'run.ckpt.step000000000120.rank0-of-2')
"""

from __future__ import annotations

import glob
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import _core, storage, validate
from .checkpoint import (
    CHECKPOINT_SECONDS,
    FORMAT_VERSION,
    RECORD_ARRAYS,
    Checkpoint,
    checkpoint_digest,
    run_header,
)
from .config import Config
from .result import record_count
from .version import __version__

__all__ = [
    "RECORDS_KIND",
    "SHARDED_KIND",
    "SHARD_KIND",
    "ShardedCheckpointer",
    "read_sharded_checkpoint",
    "sharded_part_names",
    "write_sharded_checkpoint",
]

SHARDED_KIND = "lesde-sharded-checkpoint"
SHARD_KIND = "lesde-checkpoint-shard"
RECORDS_KIND = "lesde-checkpoint-records"
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


def _write_part(file: Path, kind: str, about: dict[str, Any], arrays: dict) -> str:
    """One part of a sharded checkpoint (atomically), with its digest; returns the digest."""
    header = {"kind": kind, "format_version": FORMAT_VERSION, **about}
    arrays = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
    digest = checkpoint_digest(storage.header_text(header), arrays)
    storage.write_npz(file, {**arrays, "sha256": np.array(digest)}, header)
    return digest


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
    parts of older checkpoints. A failure on any rank raises the same OSError on all of
    them, and the previous checkpoint stays whole.

    Examples
    --------
    >>> import lesde, tempfile, os
    >>> from mpi4py import MPI
    >>> from lesde.engine import allocate, run_engine
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
    error, digest, records_digest = None, None, None
    try:
        about = {"step": int(step), "rank": rank, "ranks": size, "samples": list(sample_range)}
        shard = {name: arrays[name] for name in _SHARD_STATE}
        digest = _write_part(path.parent / shard_names[rank], SHARD_KIND, about, shard)
        if rank == 0:
            records = {name: arrays[name][:, :T] for name in RECORD_ARRAYS}
            about = {"step": int(step), "ranks": size}
            records_digest = _write_part(path.parent / records_name, RECORDS_KIND, about, records)
    except OSError as err:
        error = f"rank {rank}: {err}"
    # The all-gather is the barrier: the manifest is written once every part is.
    parts = comm.allgather((error, digest, list(sample_range)))
    failed = next((e for e, _, _ in parts if e), None)
    if failed:  # on every rank alike, so that none waits for the others
        raise OSError(f"{path}: not written, the previous checkpoint is kept ({failed})")
    if rank == 0:
        header = {
            **run_header(SHARDED_KIND, cfg, step, wall_seconds),
            "ranks": size,
            "records": {"file": records_name, "sha256": records_digest},
            "shards": [
                {"file": name, "sha256": d, "samples": samples}
                for name, (_, d, samples) in zip(shard_names, parts, strict=True)
            ],
        }
        try:
            storage.write_npz(path, {}, header)
            _remove_parts_before(path, step)
        except OSError as err:
            error = f"rank 0: {err}"
    error = comm.bcast(error, root=0)
    if error:
        raise OSError(f"{path}: manifest not written, the previous one is kept ({error})")


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


def _read_part(
    folder: Path, entry: Any, what: str, kind: str, manifest: Path, expected: dict
) -> dict[str, np.ndarray]:
    """A part named by the manifest: its arrays, checked against ``expected`` before they
    are read, and its digest against its own and the manifest's."""
    name = entry.get("file") if isinstance(entry, dict) else None
    if (
        not isinstance(name, str)
        or Path(name).name != name
        or not name.startswith(f"{manifest.name}.step")
    ):
        raise ValueError(f"{manifest}: invalid manifest entry for the {what}: {entry!r}")
    contents = storage.read_npz(
        folder / name,
        what=f"{what} of a sharded lesde checkpoint",
        kind=kind,
        format_version=FORMAT_VERSION,
        required=("sha256", *expected),
        expect=lambda header, declared: {"sha256": ("U", ()), **expected},
    )
    stored = contents.arrays
    digest = str(stored.pop("sha256")[()])
    if digest != checkpoint_digest(contents.header_text, stored) or digest != entry.get("sha256"):
        raise ValueError(
            f"{folder / name}: damaged, truncated or not the part its manifest names "
            "(SHA-256 mismatch); refusing to resume from it"
        )
    return stored


def read_sharded_checkpoint(
    path: str | os.PathLike, comm: Any, layout: Callable[[Config], tuple[int, int]]
) -> Checkpoint:
    """Read this rank's part of the sharded checkpoint ``path``, and its records.

    Collective: every rank of ``comm`` calls it; if any rank finds something wrong (the
    manifest, a part, a digest, another rank count or sample layout), all raise the same
    error. ``layout(config)`` gives the samples (lo, hi) this rank owns, which its part must
    hold. The arrays are this rank's ``features`` and ``labels``, ``status``, ``fail_step``
    and the records up to the checkpoint's step (an example: :func:`write_sharded_checkpoint`).
    """
    error, ckpt = None, None
    try:
        ckpt = _read_sharded_part(Path(path), comm.Get_rank(), comm.Get_size(), layout)
    except FileNotFoundError as err:
        error = ("FileNotFoundError", str(err))
    except (OSError, ValueError) as err:
        error = ("ValueError", str(err))
    errors = [e for e in comm.allgather(error) if e]
    if errors:
        kind, message = errors[0]
        raise (FileNotFoundError if kind == "FileNotFoundError" else ValueError)(message)
    return ckpt


def _read_sharded_part(path: Path, rank: int, size: int, layout: Callable) -> Checkpoint:
    manifest = storage.read_npz(
        path,
        what="sharded lesde checkpoint",
        kind=SHARDED_KIND,
        format_version=FORMAT_VERSION,
        required=(),
        expect=lambda header, declared: {},
    ).header
    if manifest.get("ranks") != size:
        raise ValueError(
            f"{path}: written by {manifest.get('ranks')} MPI ranks; resume it on as many "
            f"(mpiexec -n {manifest.get('ranks')}), not on {size}"
        )
    stream = manifest.get("random_stream_version")
    if stream != int(_core.RANDOM_STREAM_VERSION):
        raise ValueError(
            f"{path}: written with random-stream version {stream}, this lesde draws version "
            f"{int(_core.RANDOM_STREAM_VERSION)}; the run cannot be continued identically"
        )
    try:
        cfg = Config.from_toml_text(manifest["config_toml"])
        step, shards = manifest["step"], manifest["shards"]
        if not isinstance(step, int) or isinstance(step, bool) or len(shards) != size:
            raise TypeError("step must be an int and shards one entry per rank")
        if cfg.dtype != manifest.get("dtype"):
            raise ValueError(f"dtype {manifest.get('dtype')!r} disagrees with the config")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid sharded checkpoint manifest ({err})") from None
    if not 0 <= step <= cfg.n_steps or record_count(cfg, step) == record_count(cfg, step - 1):
        raise ValueError(f"{path}: step {step} is not a record step of its config")
    if rank == 0 and manifest.get("lesde_version") != __version__:
        warnings.warn(
            f"{path}: written by lesde {manifest.get('lesde_version')}, resuming with "
            f"{__version__} (same random-stream version)",
            RuntimeWarning,
            stacklevel=4,
        )
    samples = layout(cfg)
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
    folder = path.parent
    arrays = _read_part(folder, shards[rank], f"rank {rank}'s part", SHARD_KIND, path, state)
    arrays.update(
        _read_part(folder, manifest.get("records"), "records", RECORDS_KIND, path, records)
    )
    status, fail_step, labels = arrays["status"], arrays["fail_step"], arrays["labels"]
    if not np.all(np.isin(status, (0, 1))) or np.any((status == 0) != (fail_step == -1)):
        raise ValueError(f"{path}: status and fail_step of rank {rank} disagree")
    if labels.size and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"{path}: labels of rank {rank} outside [0, {K})")
    return Checkpoint(cfg, int(step), arrays, manifest)


class ShardedCheckpointer:
    """The :class:`lesde.engine.Checkpointing` of a run sharded over MPI ranks.

    Every method is collective: the run loops of all ranks call :meth:`limit` once per
    chunk, so it all-gathers each rank's chunk target and due checkpoint step and every
    rank takes the smallest. The chunks therefore end at the same step on every rank (the
    engine's exchanges pair up, replica by replica), and a checkpoint due by wall time on
    one rank is written by all at the same record step.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        cfg: Config,
        every: int | None,
        comm: Any,
        sample_range: tuple[int, int],
        start_step: int = 0,
    ):
        self.path, self.cfg, self.every, self.comm = Path(path), cfg, every, comm
        self.saved_step: int | None = None  # the step of the manifest this writer wrote last
        self.sample_range = sample_range
        self.last_step, self.last_time = start_step, time.perf_counter()
        self.due: int | None = None  # agreed by every rank in limit()
        if comm.Get_rank() == 0:  # left by a killed writer; no rank writes before a step
            for stale in self.path.parent.glob(f".{glob.escape(self.path.name)}*.tmp"):
                stale.unlink(missing_ok=True)
        comm.Barrier()

    @classmethod
    def create(
        cls, path: Any, cfg: Config, every: Any, comm: Any, sample_range: tuple[int, int]
    ) -> ShardedCheckpointer | None:
        """Validate ``checkpoint``/``checkpoint_every`` as :meth:`Checkpointer.create` does;
        None if not checkpointing."""
        if path is None:
            if every is not None:
                raise ValueError("checkpoint_every needs a checkpoint path (checkpoint=...)")
            return None
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path, got {type(path).__name__}")
        if str(path) == "" or Path(path).is_dir():
            raise ValueError(f"checkpoint must be a file path, got {str(path)!r}")
        if every is not None:
            every = validate.integer("checkpoint_every", every, at_least=1)
        return cls(path, cfg, every, comm, sample_range)

    def _record_at_or_after(self, step: int) -> int | None:
        index = record_count(self.cfg, step - 1)  # records before step
        if index >= record_count(self.cfg):
            return None
        return min(index * self.cfg.record_interval, self.cfg.n_steps)

    def limit(self, step: int, target: int) -> int:
        if self.every is not None:
            due = self._record_at_or_after(self.last_step + self.every)
        elif time.perf_counter() - self.last_time >= CHECKPOINT_SECONDS:
            due = self._record_at_or_after(step)
        else:
            due = None
        agreed = self.comm.allgather((due, target))
        dues = [d for d, _ in agreed if d is not None]
        self.due = min(dues) if dues else None
        target = min(t for _, t in agreed)
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
