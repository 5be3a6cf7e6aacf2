"""One giant run sharded by samples over MPI ranks (``lesde.simulate(cfg, comm=...)``).

The N coupled SDEs interact only through the K x p class sums, so each rank owns a
contiguous range of the engine's fixed reduction blocks (``_core.block_layout``) and, once
per step, the ranks all-gather their block partial sums (at most 256 x K x p numbers) and
add them in global block order. Random numbers are keyed by global sample indices. The
result is therefore bit-identical to a single-process run with the same seed, whatever the
number of ranks (tested with ``mpiexec -n 2``).

Run a script with ``mpiexec -n 4 python script.py``; in it::

    from mpi4py import MPI
    import lesde
    res = lesde.simulate(cfg, comm=MPI.COMM_WORLD)   # rank 0 gets the gathered features
    if MPI.COMM_WORLD.rank == 0:
        res.save("run.npz")

Records (class means, metrics) are identical on every rank. Supported: ``process="sde"``
on the CPU backend without ``record_samples`` or Zarr output.

Checkpoints. ``simulate(cfg, comm=..., checkpoint="run.ckpt")`` makes every rank write its
part of each checkpoint (its samples' state; rank 0 also the records) and rank 0, once all
parts are written, the manifest ``run.ckpt`` that names them with their digests
(:func:`lesde.sharded_checkpoint.write_sharded_checkpoint`). :func:`resume_sharded` finishes the
run on the same number of ranks, bit-identically; from the shell, ``mpiexec -n 2 lesde run
cfg.toml --mpi --checkpoint run.ckpt`` and ``mpiexec -n 2 lesde resume run.ckpt --mpi``.

Every rank's run loop ends its chunks at the same step (the ranks agree on each chunk's
end), since the engine runs the replicas one after another within a chunk and the
exchanges of all ranks must pair up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from .config import Config
from .engine import allocate, check_on_nonfinite, run_engine
from .sharded_checkpoint import ShardedCheckpointer, read_sharded_checkpoint

__all__ = ["check_shardable", "resume_sharded", "shard_blocks", "simulate_sharded"]


def shard_blocks(n_samples: int, rank: int, size: int) -> tuple[int, int, int, int]:
    """(first_block, last_block, first_sample, end_sample) owned by ``rank`` of ``size``.

    Examples
    --------
    >>> shard_blocks(9000, 0, 2), shard_blocks(9000, 1, 2)
    ((0, 2, 0, 3600), (2, 5, 3600, 9000))
    """
    count, block = _core.block_layout(n_samples)
    if count < size:
        raise ValueError(
            f"{n_samples} samples make {count} reduction block(s) of {block}; sharding over "
            f"{size} ranks needs at least one block per rank"
        )
    first, last = rank * count // size, (rank + 1) * count // size
    return first, last, first * block, min(n_samples, last * block)


def check_shardable(cfg: Config) -> None:
    """Raise ValueError if ``cfg`` uses a feature a sharded run does not support.

    Examples
    --------
    >>> check_shardable(Config(n_classes=2, process="sgd"))
    Traceback (most recent call last):
        ...
    ValueError: a run sharded over MPI ranks needs process="sde"
    """
    if cfg.process != "sde":
        raise ValueError('a run sharded over MPI ranks needs process="sde"')
    if cfg.record_samples is not None:
        raise ValueError("record_samples is not supported in a run sharded over MPI ranks")
    if cfg.backend == "cuda":
        raise ValueError('a run sharded over MPI ranks runs on the CPU: use backend="cpu"')


class _Lockstep:
    """The run loop's Checkpointing without checkpoints: chunks that end at the same step on
    every rank. The engine runs replica after replica within a chunk, each step exchanging
    sums collectively; ranks that cut their chunks at different steps would pair one
    replica's exchanges with another's (and records with steps)."""

    saved_step = None  # it writes nothing
    path = None

    def __init__(self, comm: Any):
        self.comm = comm

    def limit(self, step: int, target: int) -> int:
        return min(self.comm.allgather(target))

    def maybe_write(self, step: int, arrays: dict, wall_seconds: float) -> None:
        pass

    def write_final(self, step: int, arrays: dict, wall_seconds: float) -> None:
        pass


def _shard(cfg: Config, comm: Any):
    """This rank's samples (lo, hi), its arrays (its samples' state, the whole run's
    records) and the engine setup that makes it one shard of the run."""
    from mpi4py import MPI  # the optional extra lesde[mpi], needed only here

    check_shardable(cfg)
    rank, size = comm.Get_rank(), comm.Get_size()
    N = cfg.n_samples
    count, _ = _core.block_layout(N)
    first, last, lo, hi = shard_blocks(N, rank, size)
    blocks_of = [shard_blocks(N, r, size)[1] - shard_blocks(N, r, size)[0] for r in range(size)]

    def exchange(local: np.ndarray, whole: np.ndarray) -> None:
        width = whole.size // count
        counts = [n * width for n in blocks_of]
        displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
        comm.Allgatherv(local, [whole, counts, displs, MPI.DOUBLE])

    full = allocate(cfg)  # records and the class list of the whole run
    R, p = cfg.replicas, cfg.p
    arrays = dict(full)
    arrays["features"] = np.empty((R, hi - lo, p), dtype=full["features"].dtype)
    arrays["labels"] = np.empty((R, hi - lo), dtype=np.int32)
    arrays["classes"] = np.ascontiguousarray(full["classes"][lo:hi])
    del full

    def setup(engine_cfg) -> None:
        engine_cfg.first_block, engine_cfg.last_block = first, last
        engine_cfg.exchange = exchange

    return (lo, hi), arrays, setup


def simulate_sharded(
    cfg: Config,
    comm: Any,
    *,
    progress: bool | None,
    on_nonfinite: str,
    checkpoint: Any = None,
    checkpoint_every: int | None = None,
):
    """The body of ``simulate(cfg, comm=..., checkpoint=...)`` (see the module docstring).

    With ``checkpoint`` every rank writes its part of each checkpoint and rank 0 the
    manifest (:func:`lesde.sharded_checkpoint.write_sharded_checkpoint`); :func:`resume_sharded`
    finishes the run on as many ranks.
    """
    samples, arrays, setup = _shard(cfg, comm)
    writer = ShardedCheckpointer.create(checkpoint, cfg, checkpoint_every, comm, samples)
    result = run_engine(
        cfg,
        arrays,
        progress=progress if comm.Get_rank() == 0 else False,
        on_nonfinite=on_nonfinite,
        checkpointer=writer if writer is not None else _Lockstep(comm),
        engine_setup=setup,
    )
    return _finish(result, comm, samples)


def resume_sharded(
    path: Any,
    comm: Any,
    *,
    progress: bool | None = None,
    checkpoint_every: int | None = None,
    on_nonfinite: str = "raise",
):
    """Finish the sharded run whose checkpoint (manifest) is ``path``, on as many ranks.

    Collective over ``comm``, which must have the rank count that wrote the checkpoint.
    The result equals the uninterrupted run's bit for bit (and a single-process run's).
    The run keeps checkpointing to ``path``. Every rank raises the same error for a
    missing, damaged or incompatible checkpoint. From the shell::

        mpiexec -n 2 lesde resume run.ckpt --mpi --out run.npz

    Examples
    --------
    >>> from mpi4py import MPI
    >>> resume_sharded("no-such.ckpt", MPI.COMM_SELF)
    Traceback (most recent call last):
        ...
    FileNotFoundError: no sharded lesde checkpoint at no-such.ckpt
    """
    check_on_nonfinite(on_nonfinite)
    rank, size = comm.Get_rank(), comm.Get_size()
    ckpt = read_sharded_checkpoint(
        path, comm, lambda cfg: shard_blocks(cfg.n_samples, rank, size)[2:]
    )
    cfg = ckpt.config
    samples, arrays, setup = _shard(cfg, comm)
    T = ckpt.arrays["class_means"].shape[1]
    for name, stored in ckpt.arrays.items():
        if arrays[name].shape == stored.shape:  # this rank's state: the loaded array itself
            arrays[name] = np.require(stored, requirements=["C", "W"])
        else:  # a record array, stored up to the checkpoint's record
            arrays[name][:, :T] = stored
    writer = ShardedCheckpointer.create(path, cfg, checkpoint_every, comm, samples)
    writer.last_step = ckpt.step  # the next checkpoint is counted from this one
    result = run_engine(
        cfg,
        arrays,
        progress=progress if comm.Get_rank() == 0 else False,
        on_nonfinite=on_nonfinite,
        checkpointer=writer,
        resume_step=ckpt.step,
        wall_before=float(ckpt.header.get("wall_seconds", 0.0)),
        engine_setup=setup,
    )
    return _finish(result, comm, samples)


def _finish(result, comm: Any, samples: tuple[int, int]):
    _gather_state(result, comm, samples, result.config.n_samples)
    result.meta.update(
        mpi_ranks=comm.Get_size(), mpi_rank=comm.Get_rank(), sample_range=list(samples)
    )
    return result


def _gather_state(result, comm, local_range: tuple[int, int], N: int) -> None:
    """Rank 0 receives every rank's features and labels (in sample order)."""
    ranges = comm.gather(local_range, root=0)
    feats = comm.gather(result.features, root=0)
    labels = comm.gather(result.labels, root=0)
    if comm.Get_rank() != 0:
        return
    order = np.argsort([r[0] for r in ranges])
    result.features = np.concatenate([feats[i] for i in order], axis=1)
    result.labels = np.concatenate([labels[i] for i in order], axis=1)
    result.classes = np.repeat(
        np.arange(result.config.n_classes, dtype=np.int32), result.config.class_sizes_resolved
    )
    assert result.features.shape[1] == N
