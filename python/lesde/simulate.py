"""Run a configuration on the compiled core and collect a :class:`~lesde.result.Result`.

The C++ engine writes straight into NumPy arrays allocated here (features, labels and
the records), so nothing is copied on the way back and whatever was recorded survives an
error or a Ctrl-C. The run advances in chunks of roughly a quarter of a second, with the
GIL released inside each chunk; between chunks Python updates the progress bar, writes
checkpoints (:mod:`lesde.checkpoint`) and can be interrupted.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

import numpy as np

from . import _core
from .checkpoint import Checkpointer
from .config import Config
from .result import Result, status_names
from .schedules import Constant, ExponentialDecay, PowerLaw, Tabulated, as_schedule
from .zarr_store import ZarrWriter

__all__ = ["simulate", "NonFiniteError", "InsufficientMemoryError", "engine_config"]

CHUNK_SECONDS = 0.25


class NonFiniteError(FloatingPointError):
    """A replica's state became NaN or infinite. ``err.result`` holds what was recorded."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


class InsufficientMemoryError(MemoryError, ValueError):
    """The run would not fit in memory; raised before anything is allocated."""


def _schedule(name: str, value: Any) -> _core.Schedule:
    sched = as_schedule(name, value)
    out = _core.Schedule()
    if isinstance(sched, Constant):
        out.kind, out.a0 = _core.ScheduleKind.constant, sched.value
    elif isinstance(sched, PowerLaw):
        out.kind, out.a0, out.tau, out.gamma = (
            _core.ScheduleKind.power_law,
            sched.a0,
            sched.tau,
            sched.gamma,
        )
    elif isinstance(sched, ExponentialDecay):
        out.kind, out.a0, out.tau = _core.ScheduleKind.exponential, sched.a0, sched.tau
    elif isinstance(sched, Tabulated):
        out.kind = _core.ScheduleKind.tabulated
        out.times, out.values = sched.times.tolist(), sched.values.tolist()
    return out


def engine_config(cfg: Config) -> _core.EngineConfig:
    """The plain C++ struct that mirrors a validated :class:`Config`.

    Examples
    --------
    >>> engine_config(Config(n_classes=2, n_per_class=5, t_end=1.0)).n_steps
    100
    """
    e = _core.EngineConfig()
    e.K, e.p = cfg.n_classes, cfg.p
    e.class_sizes = list(cfg.class_sizes_resolved)
    e.signal = getattr(_core.Signal, cfg.signal)
    e.head = [] if cfg.head is None else cfg.head.ravel().tolist()
    e.full_impact = cfg.impact is not None
    if cfg.impact is not None:
        e.impact = cfg.impact.ravel().tolist()
    else:
        e.alpha, e.beta = _schedule("alpha", cfg.alpha), _schedule("beta", cfg.beta)
    e.sigma = _schedule("sigma", cfg.sigma)
    e.label_noise, e.init_scale = cfg.label_noise, cfg.init_scale
    e.init_means = [] if cfg.init_means is None else cfg.init_means.ravel().tolist()
    e.process = getattr(_core.Process, cfg.process)
    e.scheme = getattr(_core.Scheme, cfg.scheme)
    e.dt, e.n_steps, e.batch_size = cfg.dt, cfg.n_steps, cfg.batch_size
    e.replicas, e.seed, e.noise_seed = cfg.replicas, cfg.seed, cfg.effective_noise_seed
    e.threads = cfg.effective_threads
    e.record_steps = cfg.record_steps.tolist()
    e.record_samples = cfg.recorded_sample_indices.tolist()
    e.check()
    return e


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _check_memory(cfg: Config) -> None:
    need = cfg.state_bytes()
    have = _available_memory()
    if have is not None and need > 0.9 * have:
        raise InsufficientMemoryError(
            f"this run needs about {need / 2**30:.2f} GiB for its state and records, but only "
            f"{have / 2**30:.2f} GiB of memory is available; reduce replicas, class sizes, dim "
            f"or use dtype='float32'"
        )


class _Progress:
    """A tqdm bar that appears only once a run is expected to last over a second."""

    def __init__(self, total: int, enabled: bool | None, first_step: int = 0):
        self.total, self.enabled, self.bar = total, enabled, None
        self.start, self.first_step = time.perf_counter(), first_step

    def update(self, step: int) -> None:
        if self.enabled is False:
            return
        if self.bar is None:
            elapsed = time.perf_counter() - self.start
            expected = elapsed / max(step - self.first_step, 1) * (self.total - self.first_step)
            if not (self.enabled or expected > 1.0):
                return
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="step", desc="lesde", leave=False)
        self.bar.n = step
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _since(start: float) -> float:
    return time.perf_counter() - start


def _likely_cause(cfg: Config) -> str:
    if cfg.signal == "linear":
        return (
            "the linear signal grows exponentially (class means ~ exp((alpha+(K-1)beta)t/K)); "
            "shorten t_end, lower alpha/beta, or use signal='cross_entropy'"
        )
    return "the step is probably too large for the impact matrix; reduce dt or alpha/beta"


def simulate(
    config: Config | None = None,
    *,
    progress: bool | None = None,
    on_nonfinite: str = "raise",
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    zarr_store: str | os.PathLike | None = None,
    zarr_features: bool = False,
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
        bit-identical result. An existing file at this path is overwritten.
    checkpoint_every : int, optional
        Steps between checkpoints (each written at the first record step at or after the
        due step). Default: one checkpoint about every
        :data:`lesde.checkpoint.CHECKPOINT_SECONDS` (60 s) of wall time. A last checkpoint
        holds the finished state.
    zarr_store : path, optional
        Also append the records to a Zarr group in this folder while the run goes
        (:mod:`lesde.zarr_store`; needs ``pip install 'lesde[zarr]'``): a killed run leaves
        a store that :func:`lesde.load_zarr` reads up to its last complete record. An
        existing store there is replaced.
    zarr_features : bool
        Write the final features ``(R, N, p)`` to the store too.
    comm : mpi4py communicator, optional
        Shard this one run by samples over the ranks of ``comm`` (:mod:`lesde.mpi`); the
        result is bit-identical to a single-process run. Rank 0 gets the gathered features.

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
    _check_on_nonfinite(on_nonfinite)
    if config is None:
        config = Config(**fields)
    elif fields:
        config = config.replace(**fields)
    elif not isinstance(config, Config):
        raise TypeError(f"config must be a lesde.Config, got {type(config).__name__}")
    cfg = config
    if comm is not None and comm.Get_size() > 1:
        if checkpoint is not None or zarr_store is not None:
            raise ValueError("checkpoint and zarr_store are not supported with comm (MPI)")
        from .mpi import simulate_sharded

        _check_memory(cfg)
        return simulate_sharded(cfg, comm, progress=progress, on_nonfinite=on_nonfinite)
    writer = Checkpointer.create(checkpoint, cfg, checkpoint_every)
    _check_memory(cfg)
    store = ZarrWriter.create(zarr_store, cfg, zarr_features)
    return run_engine(
        cfg,
        allocate(cfg),
        progress=progress,
        on_nonfinite=on_nonfinite,
        checkpointer=writer,
        zarr_writer=store,
    )


def _check_on_nonfinite(on_nonfinite: str) -> None:
    if on_nonfinite not in ("raise", "warn", "ignore"):
        raise ValueError(f"on_nonfinite must be 'raise', 'warn' or 'ignore', got {on_nonfinite!r}")


def allocate(cfg: Config) -> dict[str, np.ndarray | None]:
    """The arrays the engine writes into: state, records (NaN until written), status."""
    R, N, K, p = cfg.replicas, cfg.n_samples, cfg.n_classes, cfg.p
    T = len(cfg.record_steps)
    S = len(cfg.recorded_sample_indices)
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    return dict(
        features=np.empty((R, N, p), dtype=dtype),
        labels=np.empty((R, N), dtype=np.int32),
        classes=np.repeat(np.arange(K, dtype=np.int32), cfg.class_sizes_resolved),
        noise_var=np.zeros((R, N)) if cfg.process == "sgd" else None,
        class_means=np.full((R, T, K, p), np.nan),
        label_means=np.full((R, T, K, p), np.nan),
        sigma_w=np.full((R, T, p, p), np.nan),
        scalars=np.full((R, T, _core.NUM_SCALARS), np.nan),
        samples=np.full((R, T, S, p), np.nan),
        status=np.zeros(R, dtype=np.int32),
        fail_step=np.full(R, -1, dtype=np.int64),
    )


AUTO_CUDA_MIN_SIZE = 10**6  # replicas * N * p below which "auto" stays on the CPU


def _use_cuda(cfg: Config) -> bool:
    """Whether ``cfg.backend`` selects the CUDA engine (raises if "cuda" cannot run)."""
    if cfg.backend == "cpu":
        return False
    devices = _core.cuda_device_count()
    if cfg.backend == "cuda":
        if devices == 0:
            why = (
                "a GPU is not visible"
                if _core.build_info()["cuda_built"]
                else ("this lesde was built without CUDA (see docs/cuda.md)")
            )
            raise RuntimeError(f"backend='cuda' cannot run: {why}; use backend='cpu' or 'auto'")
        return True
    limit = getattr(_core, "CUDA_MAX_DIM", 0)
    return (
        devices > 0
        and cfg.process == "sde"
        and max(cfg.n_classes, cfg.p) <= limit
        and cfg.replicas * cfg.n_samples * cfg.p >= AUTO_CUDA_MIN_SIZE
    )


def _make_engine(cfg: Config, arrays: dict[str, np.ndarray | None], engine_setup=None):
    """The engine for ``cfg``: CPU (OpenMP) or CUDA, float64 or float32.

    ``engine_setup(engine_config)`` may adjust the C++ config first (MPI sharding).
    """
    bits = "64" if cfg.dtype == "float64" else "32"
    ecfg = engine_config(cfg)
    if engine_setup is not None:
        engine_setup(ecfg)
    if _use_cuda(cfg):
        try:
            return getattr(_core, f"CudaSimulation{bits}")(ecfg, **arrays)
        except RuntimeError as err:  # e.g. the state does not fit on the device
            if cfg.backend == "cuda":
                raise
            warnings.warn(
                f"backend='auto' falls back to the CPU: {err}", RuntimeWarning, stacklevel=3
            )
    return getattr(_core, f"Simulation{bits}")(ecfg, **arrays)


def run_engine(
    cfg: Config,
    arrays: dict[str, np.ndarray | None],
    *,
    progress: bool | None,
    on_nonfinite: str,
    checkpointer: Checkpointer | None = None,
    resume_step: int | None = None,
    wall_before: float = 0.0,
    zarr_writer: ZarrWriter | None = None,
    engine_setup=None,
) -> Result:
    """Drive the engine over ``arrays`` to the end and collect the Result.

    A fresh run (``resume_step=None``) draws the initial state; otherwise the arrays hold
    the state after ``resume_step`` steps (a record step), as :func:`lesde.resume` loads it.
    A ``zarr_writer`` gets the records complete after each chunk, and the Result at the end.
    """
    sim = _make_engine(cfg, arrays, engine_setup)
    status = arrays["status"]
    interrupted = False
    bar = _Progress(cfg.n_steps, progress, first_step=resume_step or 0)
    started = time.perf_counter()
    try:
        if resume_step is None:
            sim.initialize()
        else:
            sim.resume(resume_step)
        chunk = max(1, cfg.record_interval)
        while sim.step < cfg.n_steps and np.any(status == 0):
            before = sim.step
            target = before + chunk
            if checkpointer is not None:  # stop on the record step where one is due
                target = checkpointer.limit(before, target)
            t0 = time.perf_counter()
            sim.advance(target)
            elapsed = time.perf_counter() - t0
            # Aim each chunk at about CHUNK_SECONDS, so Ctrl-C and progress respond fast.
            rate = (sim.step - before) / max(elapsed, 1e-6)
            chunk = int(np.clip(rate * CHUNK_SECONDS, 1, 2 * chunk + 1))
            bar.update(sim.step)
            if checkpointer is not None:
                checkpointer.maybe_write(sim.step, arrays, wall_before + _since(started))
            if zarr_writer is not None:
                zarr_writer.append(sim.step, arrays)
        if checkpointer is not None:
            checkpointer.write_final(sim.step, arrays, wall_before + _since(started))
    except KeyboardInterrupt:
        interrupted = True
        warnings.warn(
            f"interrupted at step {sim.step} of {cfg.n_steps}: the result holds the records "
            f"up to t = {sim.step * cfg.dt:g}",
            RuntimeWarning,
            stacklevel=3,
        )
    finally:
        bar.close()

    # Failed replicas stop early; when all did, the run ends where the last one stopped.
    reached = np.where(status != 0, arrays["fail_step"], sim.step)
    result = Result.from_engine(
        cfg,
        arrays,
        steps_done=int(reached.max()),
        interrupted=interrupted,
        wall_seconds=wall_before + _since(started),
    )
    if resume_step is not None:
        result.meta["resumed_from_step"] = int(resume_step)
    if zarr_writer is not None:
        zarr_writer.close(result, arrays)
    failed = np.flatnonzero(status != 0)
    if failed.size and on_nonfinite != "ignore":
        r = int(failed[0])
        step = int(arrays["fail_step"][r])
        message = (
            f"{failed.size} of {cfg.replicas} replica(s) became non-finite (NaN/Inf); replica "
            f"{r} at step {step} (t = {step * cfg.dt:g}). Likely cause: {_likely_cause(cfg)}. "
            f"Records up to that point are kept (status '{status_names(status)[r]}')."
        )
        if on_nonfinite == "raise":
            raise NonFiniteError(message, result)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return result
