"""Run a configuration on the compiled core and collect a :class:`~lesde.sim.result.Result`.

:func:`simulate` is the user-facing call: it builds the :class:`~lesde.sim.config.Config`,
checks the arguments and the memory, and hands the run to the engine
(:func:`lesde.sim.engine.run_engine`) with the writers it asked for: checkpoints
(:mod:`lesde.sim.checkpoint`), a live Zarr store (:mod:`lesde.sim.zarr_store`), or a run sharded
over MPI ranks (:mod:`lesde.sim.mpi`).

Examples
--------
>>> res = simulate(n_classes=2, n_per_class=10, t_end=0.1, progress=False)
>>> res.ok
True
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from ..io.storage import same_path
from .checkpoint import Checkpointer
from .config import Config
from .engine import (
    InsufficientMemoryError,
    NonFiniteError,
    allocate,
    check_backend,
    check_memory,
    check_on_nonfinite,
    run_engine,
)
from .mpi import simulate_sharded
from .result import Result
from .zarr_store import ZarrWriter

# The two errors live with the engine that raises them; they are part of this module's
# API (lesde.sim.simulate.NonFiniteError) since the first release.
__all__ = ["simulate", "NonFiniteError", "InsufficientMemoryError"]


def simulate(
    config: Config | None = None,
    *,
    progress: bool | None = None,
    on_nonfinite: str = "raise",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    checkpoint_meta: dict[str, Any] | None = None,
    zarr_store: str | os.PathLike | None = None,
    zarr_features: bool = False,
    overwrite: bool = False,
    comm: Any = None,
    **fields: Any,
) -> Result:
    """Integrate the LE-SDE (or the SGD imitation) and return what was recorded.

    Parameters
    ----------
    config : Config, optional
        The run; keyword ``fields`` build one (or override fields of ``config``).
    progress : bool, optional
        Show a progress bar: ``None`` (default) shows one for runs longer than a second.
    on_nonfinite : {"raise", "warn", "ignore"}
        What to do when a replica's state becomes NaN/Inf: raise
        :class:`NonFiniteError` (its ``result`` holds what was recorded), warn, or just
        mark it in ``result.status``.
    checkpoint : path, optional
        Write the full state of the run to this file (atomically, with a checksum) at
        record steps, so that :func:`lesde.resume` can finish a killed run with a
        bit-identical result. A checkpoint of lesde already there is replaced only with
        ``overwrite``; anything else there is never replaced. One run writes a checkpoint
        at a time: a second gets :class:`lesde.io.storage.InUseError` naming the first. On
        Ctrl-C the run goes on to the next record step and checkpoints there (a second
        Ctrl-C skips that), so an interrupted run can always be resumed.
    checkpoint_every : int, optional
        Steps between checkpoints (each written at the first record step at or after the
        due step). Default: one checkpoint about every
        :data:`lesde.sim.checkpoint.CHECKPOINT_SECONDS` (60 s) of wall time. A last checkpoint
        holds the finished state.
    checkpoint_meta : dict, optional
        JSON-friendly values kept in every checkpoint's header, for whoever resumes it
        (``lesde.sim.checkpoint.read_checkpoint(path).meta``; the ``lesde`` command keeps its
        ``--out`` there).
    zarr_store : path, optional
        Also append the records to a Zarr group in this folder while the run goes
        (:mod:`lesde.sim.zarr_store`; needs ``pip install 'lesde[zarr]'``): a killed run leaves
        a store that :func:`lesde.load_zarr` reads up to its last complete record. A
        lesde store already there is replaced only with ``overwrite`` (and only when the
        folder holds nothing else); any other folder that is not empty is never touched.
    zarr_features : bool
        Write the final features ``(R, N, p)`` to the store too.
    overwrite : bool
        Replace a checkpoint or a store of lesde that is already at ``checkpoint`` or
        ``zarr_store`` (by default refused: it may hold a run to resume). Files lesde did
        not write are never replaced.
    comm : mpi4py communicator, optional
        Shard this one run by samples over the ranks of ``comm`` (:mod:`lesde.sim.mpi`); the
        result is bit-identical to a single-process run. Rank 0 gets the gathered features.
        With ``checkpoint`` each rank writes its part and rank 0 a manifest at that path;
        :func:`lesde.sim.mpi.resume_sharded` finishes the run on as many ranks.

    Returns
    -------
    Result
        ``times`` (T,), ``class_means`` (R, T, K, p), ``metrics`` name -> (R, T),
        ``features`` (R, N, p), ``classes`` (N,), ``labels`` (R, N), ``status`` (R,).

    Examples
    --------
    >>> res = simulate(n_classes=3, n_per_class=50, signal="linear", alpha=2.0, beta=0.5,
    ...                sigma=0.0, t_end=1.0, progress=False)
    >>> res.class_means.shape
    (1, 101, 3, 3)
    """
    check_on_nonfinite(on_nonfinite)
    if config is None:
        config = Config(**fields)
    elif fields:
        config = config.replace(**fields)
    elif not isinstance(config, Config):
        raise TypeError(f"config must be a lesde.Config, got {type(config).__name__}")
    cfg = config
    check_backend(cfg.backend)  # before any file is created
    if comm is not None and comm.Get_size() > 1:  # its checks are agreed by every rank
        return simulate_sharded(
            cfg,
            comm,
            progress=progress,
            on_nonfinite=on_nonfinite,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            zarr_store=zarr_store,
            checkpoint_meta=checkpoint_meta,
        )
    writer = Checkpointer.create(
        checkpoint, cfg, checkpoint_every, meta=checkpoint_meta, overwrite=overwrite
    )
    store = ZarrWriter.create(zarr_store, cfg, zarr_features, overwrite=overwrite)
    if writer is not None and store is not None:
        _check_apart(checkpoint, zarr_store)
    with contextlib.ExitStack() as held:  # each writer's lock, for the whole run
        if writer is not None:
            held.enter_context(writer)
        check_memory(cfg)
        if store is not None:
            held.enter_context(store)
        return run_engine(
            cfg,
            allocate(cfg),
            progress=progress,
            on_nonfinite=on_nonfinite,
            checkpointer=writer,
            zarr_writer=store,
        )


def _check_apart(checkpoint: str | os.PathLike, store: str | os.PathLike) -> None:
    """The checkpoint file must be neither the store's folder nor inside it."""
    folder = os.path.realpath(store)
    if os.path.realpath(checkpoint) == folder or same_path(checkpoint, store):
        raise ValueError(f"checkpoint and zarr_store are the same path ({checkpoint}); give two")
    if os.path.realpath(checkpoint).startswith(folder + os.sep):
        raise ValueError(
            f"checkpoint {str(checkpoint)!r} is inside zarr_store {str(store)!r}; put it "
            "beside the store"
        )
