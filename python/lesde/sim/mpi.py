"""One giant run sharded by samples over MPI ranks (``lesde.simulate(cfg, comm=...)``).

The N coupled SDEs interact only through the K x p class sums, so each rank owns a
contiguous range of the engine's fixed reduction blocks (``_core.block_layout``: about 2048
samples each, any number of them) and, once per step, the ranks all-gather their part of
the fixed reduction tree over the blocks (at most 2 log2(blocks) partial sums of K x p
numbers each; ``_core.reduction_nodes``) and add them as the tree says. Random numbers are
keyed by global sample indices. The result is therefore bit-identical to a single-process
run with the same seed, whatever the number of ranks (tested with ``mpiexec -n 2`` and
``-n 3``; a 1,000-rank reduction in-process). Any number of ranks works: with more ranks
than blocks, some own no samples and still take part in every exchange. Each rank
allocates only its own samples' state (and the whole run's records); rank 0 also the
features it gathers at the end.

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
(:func:`lesde.sim.sharded_checkpoint.write_sharded_checkpoint`). :func:`resume_sharded` finishes the
run on the same number of ranks, bit-identically; from the shell, ``mpiexec -n 2 lesde run
cfg.toml --mpi --checkpoint run.ckpt`` and ``mpiexec -n 2 lesde resume run.ckpt --mpi``.

The ranks decide together, once per chunk of the run loop (one all-gather of a few
integers, :class:`lesde.sim.engine.Checkpointing`): where the chunk ends (the engine runs the
replicas one after another within a chunk, so every rank's exchanges must pair up), whether
a checkpoint is due, and whether to stop for Ctrl-C. Ctrl-C is counted, not raised, on the
rank it reaches (:func:`lesde.sim.collective.counting_interrupts`; ``mpiexec`` forwards it to
every rank, ``kill -INT`` may reach one): at the next chunk boundary every rank sees it, the
run goes on to the next record step, writes the checkpoint there and ends ``interrupted``
on every rank; a second Ctrl-C on any rank stops them all at the next boundary, without
the checkpoint. Every check that can fail on one rank (memory, files, arguments) is agreed
by all before the run (:func:`lesde.sim.collective.agreed`); an error that reaches one rank in
the middle of the run, where the others wait in a collective, aborts them all
(``MPI_Abort``) after one line saying which rank failed and why.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import _core
from .collective import AgreedError, agreed, counting_interrupts, interrupt_count
from .config import Config
from .engine import NonFiniteError, allocate, check_on_nonfinite, run_engine
from .sharded_checkpoint import ShardedCheckpointer, check_rank_memory, read_sharded_checkpoint

__all__ = ["check_shardable", "resume_sharded", "shard_blocks", "simulate_sharded"]


def shard_blocks(n_samples: int, rank: int, size: int) -> tuple[int, int, int, int]:
    """(first_block, last_block, first_sample, end_sample) owned by ``rank`` of ``size``.

    Any number of ranks works: with more ranks than blocks some own none (an empty range)
    and still take part in every exchange.

    Examples
    --------
    >>> shard_blocks(9000, 0, 2), shard_blocks(9000, 1, 2)
    ((0, 2, 0, 3600), (2, 5, 3600, 9000))
    >>> shard_blocks(9000, 0, 8)  # 5 blocks over 8 ranks: rank 0 owns none
    (0, 0, 0, 0)
    """
    count, block = _core.block_layout(n_samples)
    first, last = rank * count // size, (rank + 1) * count // size
    return first, last, min(n_samples, first * block), min(n_samples, last * block)


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
    """The run loop's Checkpointing of a sharded run: at every chunk boundary one
    all-gather of (chunk end, due checkpoint, Ctrl-C count) from every rank, from which all
    take the same decisions: the earliest chunk end, the earliest due checkpoint (written by
    ``writer``, if any), and whether to stop.

    Stopping for Ctrl-C: with a writer the run goes on to the next record step (the only
    steps a run resumes from), writes the checkpoint there and raises KeyboardInterrupt on
    every rank, where the run loop ends it as interrupted; without one it stops at once.
    A second Ctrl-C (a rank that counted two) stops at once, without the checkpoint:
    ``path`` is then None, so that the run loop does not try to finish the record interval
    itself (its chunks there are sized by each rank's own clock)."""

    def __init__(
        self,
        comm: Any,
        cfg: Config,
        arrays: dict,
        writer: ShardedCheckpointer | None,
        wall_before: float = 0.0,
    ):
        self.comm, self.cfg, self.arrays, self.writer = comm, cfg, arrays, writer
        self.abandoned = False  # a second Ctrl-C: stopped without the checkpoint
        self.wall_before, self.started = wall_before, time.perf_counter()

    @property
    def path(self):
        return None if self.writer is None or self.abandoned else self.writer.path

    @property
    def saved_step(self) -> int | None:
        return None if self.writer is None else self.writer.saved_step

    def limit(self, step: int, target: int) -> int:
        proposal = None if self.writer is None else self.writer.proposal(step)
        agreed_values = self.comm.allgather((target, proposal, interrupt_count()))
        target = min(t for t, _, _ in agreed_values)
        if self.writer is not None:
            target = self.writer.agree_due([d for _, d, _ in agreed_values], step, target)
        signals = max(n for _, _, n in agreed_values)
        if signals >= 2:  # a second Ctrl-C: now, without the checkpoint
            self.abandoned = True
            raise KeyboardInterrupt
        if signals == 1:
            stop = step if self.writer is None else self.cfg.next_record_step(step)
            if step == stop:
                if self.writer is not None:
                    wall = self.wall_before + time.perf_counter() - self.started
                    self.writer.write_final(step, self.arrays, wall)
                raise KeyboardInterrupt
            target = min(target, stop)
        return target

    def maybe_write(self, step: int, arrays: dict, wall_seconds: float) -> None:
        if self.writer is not None:
            self.writer.maybe_write(step, arrays, wall_seconds)

    def write_final(self, step: int, arrays: dict, wall_seconds: float) -> None:
        if self.writer is not None:
            self.writer.write_final(step, arrays, wall_seconds)


def _shard(cfg: Config, comm: Any):
    """This rank's samples (lo, hi), its arrays (its samples' state, the whole run's
    records) and the engine setup that makes it one shard of the run."""
    check_shardable(cfg)
    rank, size = comm.Get_rank(), comm.Get_size()
    N = cfg.n_samples
    count, _ = _core.block_layout(N)
    first, last, lo, hi = shard_blocks(N, rank, size)
    check_rank_memory(cfg, (lo, hi), rank)  # its samples, the records, rank 0's gathering
    bounds = [shard_blocks(N, r, size)[0] for r in range(size)] + [count]

    def exchange(local: np.ndarray, whole: np.ndarray, counts: list[int]) -> None:
        # Every rank's nodes of the fixed reduction tree (reduce.hpp): O(log blocks) each.
        from mpi4py import MPI  # the optional extra lesde[mpi], needed only here

        displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
        comm.Allgatherv(local, [whole, counts, displs, MPI.DOUBLE])

    arrays = allocate(cfg, samples=(lo, hi))  # this rank's samples, the whole run's records

    def setup(engine_cfg) -> None:
        engine_cfg.first_block, engine_cfg.last_block = first, last
        engine_cfg.rank_blocks = bounds
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
    zarr_store: Any = None,
    checkpoint_meta: Any = None,
):
    """The body of ``simulate(cfg, comm=..., checkpoint=...)`` (see the module docstring).

    With ``checkpoint`` every rank writes its part of each checkpoint and rank 0 the
    manifest (:func:`lesde.sim.sharded_checkpoint.write_sharded_checkpoint`); :func:`resume_sharded`
    finishes the run on as many ranks. What can fail on one rank (memory, the checkpoint's
    folder) fails on all, before the run.
    """
    with counting_interrupts():
        with agreed(comm, interrupts=True):
            if zarr_store is not None:
                raise ValueError("zarr_store is not supported with comm (MPI)")
            if checkpoint_meta is not None:
                raise ValueError("checkpoint_meta is not supported with comm (MPI)")
            samples, arrays, setup = _shard(cfg, comm)
            writer = ShardedCheckpointer.create(checkpoint, cfg, checkpoint_every, comm, samples)
        return _run(cfg, comm, samples, arrays, setup, writer, progress, on_nonfinite)


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
    with counting_interrupts():
        ckpt = read_sharded_checkpoint(
            path, comm, lambda cfg: shard_blocks(cfg.n_samples, rank, size)[2:]
        )
        cfg = ckpt.config
        with agreed(comm, interrupts=True):
            samples, arrays, setup = _shard(cfg, comm)
            T = ckpt.arrays["class_means"].shape[1]
            for name, stored in ckpt.arrays.items():
                if arrays[name].shape == stored.shape:  # this rank's state: the loaded array
                    arrays[name] = np.require(stored, requirements=["C", "W"])
                else:  # a record array, stored up to the checkpoint's record
                    arrays[name][:, :T] = stored
            writer = ShardedCheckpointer.create(
                path,
                cfg,
                checkpoint_every,
                comm,
                samples,
                start_step=ckpt.step,
                saved_step=ckpt.step,
            )
        return _run(
            cfg,
            comm,
            samples,
            arrays,
            setup,
            writer,
            progress,
            on_nonfinite,
            resume_step=ckpt.step,
            wall_before=float(ckpt.header.get("wall_seconds", 0.0)),
        )


def _run(
    cfg: Config,
    comm: Any,
    samples: tuple[int, int],
    arrays: dict,
    setup,
    writer: ShardedCheckpointer | None,
    progress: bool | None,
    on_nonfinite: str,
    resume_step: int | None = None,
    wall_before: float = 0.0,
):
    """The run loop on every rank, in lock-step, and the gathering of its result. A
    NonFiniteError is raised by every rank alike (the records are the same on all), with
    the gathered result."""
    lockstep = _Lockstep(comm, cfg, arrays, writer, wall_before)
    with _abort_on_a_lone_error(comm):
        try:
            result = run_engine(
                cfg,
                arrays,
                progress=progress if comm.Get_rank() == 0 else False,
                on_nonfinite=on_nonfinite,
                checkpointer=lockstep,
                resume_step=resume_step,
                wall_before=wall_before,
                engine_setup=setup,
            )
        except NonFiniteError as err:
            _finish(err.result, comm, samples)
            raise
        return _finish(result, comm, samples)


@contextlib.contextmanager
def _abort_on_a_lone_error(comm: Any) -> Iterator[None]:
    """An error that only this rank may have met in the middle of the run (the others wait
    for it in a collective, for ever) aborts every rank, after one line on stderr. Errors
    every rank raises together (agreed ones, NonFiniteError) pass."""
    try:
        yield
    except (AgreedError, NonFiniteError):
        raise
    except BaseException as err:
        if comm.Get_size() == 1:
            raise
        if os.environ.get("LESDE_DEBUG"):
            import traceback

            traceback.print_exc()
        print(
            f"lesde: error: rank {comm.Get_rank()} of {comm.Get_size()} failed in the middle "
            f"of a sharded run ({type(err).__name__}: {err}); aborting every rank "
            "(MPI_Abort)",
            file=sys.stderr,
            flush=True,
        )
        comm.Abort(1)


def _finish(result, comm: Any, samples: tuple[int, int]):
    _gather_state(result, comm, samples, result.config.n_samples)
    result.meta.update(
        mpi_ranks=comm.Get_size(), mpi_rank=comm.Get_rank(), sample_range=list(samples)
    )
    return result


def _gather_state(result, comm, local_range: tuple[int, int], N: int) -> None:
    """Rank 0 receives every rank's features and labels (in sample order). A Ctrl-C that
    came after the last chunk boundary marks the finished run interrupted on every rank."""
    ranges = comm.allgather((local_range, interrupt_count()))
    if any(count for _, count in ranges):
        result.interrupted = True
    result.features = _gather_samples(comm, result.features, ranges, N)
    result.labels = _gather_samples(comm, result.labels, ranges, N)
    if comm.Get_rank() != 0:
        return
    result.classes = np.repeat(
        np.arange(result.config.n_classes, dtype=np.int32), result.config.class_sizes_resolved
    )


def _gather_samples(comm: Any, local: np.ndarray, ranges: list, N: int) -> np.ndarray:
    """Rank 0 gets the whole run's array (R x N x ...) from every rank's samples, received
    in place (one replica at a time, a sample as one MPI item, so that counts stay below
    2^31); the other ranks keep their own."""
    from mpi4py.util import dtlib

    R, item = local.shape[0], local.shape[2:]
    per_sample = int(np.prod(item, dtype=np.int64))
    base = dtlib.from_numpy_dtype(local.dtype)
    sample_type = base.Create_contiguous(per_sample).Commit()
    try:
        counts = [hi - lo for (lo, hi), _ in ranges]
        displs = [lo for (lo, _), _ in ranges]
        whole = np.empty((R, N, *item), dtype=local.dtype) if comm.Get_rank() == 0 else None
        for r in range(R):
            recv = [whole[r], counts, displs, sample_type] if whole is not None else None
            comm.Gatherv(
                [np.ascontiguousarray(local[r]), counts[comm.Get_rank()], sample_type], recv, root=0
            )
    finally:
        sample_type.Free()
    return whole if whole is not None else local
