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
on the CPU backend without ``record_samples``, checkpoints or Zarr output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _core
from .config import Config
from .engine import allocate, run_engine

__all__ = ["check_shardable", "shard_blocks", "simulate_sharded"]


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


def simulate_sharded(cfg: Config, comm: Any, *, progress: bool | None, on_nonfinite: str):
    """The body of ``simulate(cfg, comm=...)`` (see the module docstring)."""
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

    result = run_engine(
        cfg,
        arrays,
        progress=progress if rank == 0 else False,
        on_nonfinite=on_nonfinite,
        engine_setup=setup,
    )
    _gather_state(result, comm, (lo, hi), N)
    result.meta.update(mpi_ranks=size, mpi_rank=rank, sample_range=[lo, hi])
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
