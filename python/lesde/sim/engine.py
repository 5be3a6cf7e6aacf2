"""The engine room: from a validated Config to a finished Result on the compiled core.

Everything between :func:`lesde.simulate` and the C++ engine, in the order a run needs it:

1. :func:`check_memory`: refuse a run that does not fit, before anything is allocated;
2. :func:`allocate`: the NumPy arrays the engine writes into (state and records, NaN
   until written), so nothing is copied back and whatever was recorded survives an error
   or a Ctrl-C;
3. :func:`engine_config` and :func:`make_engine`: the plain C++ struct that mirrors the
   Config, and the CPU (OpenMP) or CUDA engine over the arrays (:func:`uses_cuda`);
4. :func:`run_engine`: the chunked driver. The run advances in chunks of about
   :data:`CHUNK_SECONDS`, with the GIL released inside each chunk; between chunks Python
   updates the :class:`Progress` bar, hands the records to a checkpoint writer and a live
   record writer if it was given them, and can be interrupted.

The writers are passed in (:class:`Checkpointing`, :class:`RecordWriter`: what
:class:`lesde.sim.checkpoint.Checkpointer` and :class:`lesde.sim.zarr_store.ZarrWriter` do), so
this module imports neither: :mod:`lesde.sim.checkpoint`, :mod:`lesde.sim.zarr_store` and
:mod:`lesde.sim.mpi` build on it, and :mod:`lesde.simulate` on all of them.

Examples
--------
>>> from lesde.sim.config import Config
>>> cfg = Config(n_classes=2, n_per_class=10, t_end=0.1)
>>> res = run_engine(cfg, allocate(cfg), progress=False, on_nonfinite="raise")
>>> res.steps_done, res.class_means.shape
(10, (1, 11, 2, 2))
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Protocol

import numpy as np

from .. import _core, validate
from ..io import storage
from . import diagnostics
from .backends import (
    AUTO_CUDA_MIN_SIZE,
    BackendUnavailableError,
    available_backends,
    backend_registry,
    check_backend,
    uses_cuda,
)
from .config import Config
from .result import Result, status_names
from .schedules import Constant, ExponentialDecay, PowerLaw, Tabulated, as_schedule

__all__ = [
    "AUTO_CUDA_MIN_SIZE",
    "BackendUnavailableError",
    "CHUNK_SECONDS",
    "Checkpointing",
    "InsufficientMemoryError",
    "NonFiniteError",
    "Progress",
    "RecordWriter",
    "RunInterruptedWarning",
    "allocate",
    "available_backends",
    "check_backend",
    "check_memory",
    "check_on_nonfinite",
    "engine_config",
    "make_engine",
    "run_engine",
    "uses_cuda",
]

#: Wall time a chunk of steps aims at: how quickly Ctrl-C and the progress bar respond.
CHUNK_SECONDS = 0.25
#: After Ctrl-C, finishing the steps to a record step for longer than this gets a notice.
NOTICE_SECONDS = 1.0
ON_NONFINITE = ("raise", "warn", "ignore")

Arrays = dict[str, "np.ndarray | None"]


class NonFiniteError(FloatingPointError):
    """A replica's state became NaN or infinite. ``err.result`` holds what was recorded."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


class InsufficientMemoryError(MemoryError, ValueError):
    """The run would not fit in memory; raised before anything is allocated, or when
    allocating its arrays or its engine ran out of memory."""


class RunInterruptedWarning(RuntimeWarning):
    """A run was stopped by Ctrl-C; the Result holds what was recorded (``interrupted``).

    Its own class, so that a caller that reports the interrupt itself (the ``lesde``
    command) can filter it.
    """


# ----------------------------------------------------------------------------- before a run


def check_memory(cfg: Config, samples: int | None = None, extra: int = 0) -> None:
    """Raise :class:`InsufficientMemoryError` if ``cfg`` needs over 90 % of free memory.

    Counted from the config alone (:meth:`Config.state_bytes`), never by building arrays;
    free memory is the least that any limit leaves (:func:`lesde.io.storage.available_memory`:
    the machine, ``ulimit -v``/``-d``, memory cgroups), and the message names that limit.
    A rank of a sharded run counts its own ``samples`` and, in ``extra`` bytes, what else
    it allocates (rank 0: the gathered features).

    Examples
    --------
    >>> check_memory(Config(n_classes=2, n_per_class=10))  # fits: returns None
    """
    need = cfg.state_bytes(samples) + extra
    limits = storage.memory_limits()
    if not limits:
        return
    source, have = min(limits.items(), key=lambda item: item[1])
    have = max(have, 0)
    if need > 0.9 * have:
        why = "" if source == "MemAvailable" else f" (left by {source})"
        raise InsufficientMemoryError(
            f"this run needs about {need / 2**30:.2f} GiB for its state and records, but only "
            f"{have / 2**30:.2f} GiB of memory is available{why}; {_memory_advice(cfg)}"
        )


def _memory_advice(cfg: Config) -> str:
    """What to change so that ``cfg`` needs less memory: most of it may be records."""
    records = cfg.record_bytes()
    if records > cfg.state_bytes() / 2:
        return (
            f"{records / 2**30:.2f} GiB of it are its {cfg.n_records} records: record "
            "less often (record_every), fewer samples (record_samples) or fewer replicas"
        )
    return "reduce replicas, class sizes, dim or use dtype='float32'"


def _out_of_memory(cfg: Config, what: str, err: MemoryError) -> InsufficientMemoryError:
    """The refusal for a MemoryError while a run's arrays or engine were being made: the
    memory available was less than :func:`check_memory` could see (a limit it does not
    know of, or memory taken meanwhile)."""
    detail = str(err).strip() or type(err).__name__
    return InsufficientMemoryError(
        f"this run needs about {cfg.state_bytes() / 2**30:.2f} GiB for its state and "
        f"records, and {what} ran out of memory ({detail}); {_memory_advice(cfg)}"
    )


def check_on_nonfinite(on_nonfinite: Any) -> str:
    """Validate the ``on_nonfinite`` argument of :func:`lesde.simulate` and :func:`run_engine`.

    Examples
    --------
    >>> check_on_nonfinite("warn")
    'warn'
    """
    return validate.choice("on_nonfinite", on_nonfinite, ON_NONFINITE)


def allocate(cfg: Config, samples: tuple[int, int] | None = None) -> Arrays:
    """The arrays the engine writes into: state, records (NaN until written), status.

    ``samples=(lo, hi)``: the state of those samples only (a rank of a sharded run), the
    whole run's records. A MemoryError while making them becomes
    :class:`InsufficientMemoryError`.

    Examples
    --------
    >>> arrays = allocate(Config(n_classes=2, n_per_class=5, t_end=1.0))
    >>> arrays["features"].shape, arrays["class_means"].shape
    ((1, 10, 2), (1, 101, 2, 2))
    >>> allocate(Config(n_classes=2, n_per_class=5), samples=(3, 7))["classes"].tolist()
    [0, 0, 1, 1]
    """
    try:
        return _allocate(cfg, (0, cfg.n_samples) if samples is None else samples)
    except InsufficientMemoryError:
        raise
    except MemoryError as err:  # a limit check_memory could not see: the same refusal
        raise _out_of_memory(cfg, "allocating its arrays", err) from None


def _allocate(cfg: Config, samples: tuple[int, int]) -> Arrays:
    R, K, p = cfg.replicas, cfg.n_classes, cfg.p
    lo, hi = samples
    N = hi - lo
    T = len(cfg.record_steps)
    S = len(cfg.recorded_sample_indices)
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    return dict(
        features=np.empty((R, N, p), dtype=dtype),
        labels=np.empty((R, N), dtype=np.int32),
        classes=_class_slice(cfg.class_sizes_resolved, lo, hi),
        noise_var=np.zeros((R, N)) if cfg.process == "sgd" else None,
        class_means=np.full((R, T, K, p), np.nan),
        label_means=np.full((R, T, K, p), np.nan),
        sigma_w=np.full((R, T, p, p), np.nan),
        scalars=np.full((R, T, _core.NUM_SCALARS), np.nan),
        samples=np.full((R, T, S, p), np.nan),
        status=np.zeros(R, dtype=np.int32),
        fail_step=np.full(R, -1, dtype=np.int64),
    )


def _class_slice(sizes: list[int], lo: int, hi: int) -> np.ndarray:
    """The classes of samples lo .. hi - 1 (stored class by class), made without the rest."""
    ends = np.cumsum(sizes)
    starts = ends - np.asarray(sizes)
    counts = np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0, None)
    return np.repeat(np.arange(len(sizes), dtype=np.int32), counts)


def _core_schedule(name: str, value: Any) -> _core.Schedule:
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
    """The plain C++ struct that mirrors a validated :class:`Config` (checked by the core).

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
        e.alpha, e.beta = _core_schedule("alpha", cfg.alpha), _core_schedule("beta", cfg.beta)
    e.sigma = _core_schedule("sigma", cfg.sigma)
    e.noise = getattr(_core.NoiseKind, cfg.noise)
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


def scheme_orders(scheme: str, noise: str = "gaussian") -> dict[str, float]:
    """The convergence orders the core declares for ``scheme`` driven by ``noise``.

    ``ode``: without noise (the LE-ODE); ``strong``: pathwise, with Gaussian noise (none for
    the weak noises, which do not approximate paths); ``weak``: of laws (expectations of
    smooth functions), the smaller of the scheme's and what the noise's moments allow. The
    declarations live in the core (integrators.hpp kSchemes, rng.hpp kNoiseKinds); the
    convergence tests read them from here.

    Examples
    --------
    >>> scheme_orders("heun", "three_point")
    {'ode': 2.0, 'strong': nan, 'weak': 2.0}
    >>> scheme_orders("euler_maruyama")["strong"]
    1.0
    """
    schemes = {s["name"]: s for s in _core.schemes()}
    noises = {n["name"]: n for n in _core.noise_kinds()}
    if scheme not in schemes or noise not in noises:
        raise ValueError(
            f"unknown scheme {scheme!r} or noise {noise!r}: schemes {sorted(schemes)}, "
            f"noises {sorted(noises)}"
        )
    s, limit = schemes[scheme], noises[noise]["weak_order"]
    return {
        "ode": s["ode_order"],
        "strong": s["strong_order"] if noise == "gaussian" else math.nan,
        "weak": s["weak_order"] if limit == 0 else min(s["weak_order"], limit),
    }


# ----------------------------------------------------------------------------- the engine


def make_engine(cfg: Config, arrays: Arrays, engine_setup=None):
    """The engine for ``cfg`` over ``arrays``: CPU (OpenMP) or CUDA, float64 or float32.

    ``engine_setup(engine_config)`` may adjust the C++ config first (MPI sharding). With
    ``backend="auto"`` a CUDA engine that cannot be built (e.g. the state does not fit on
    the device) falls back to the CPU with a warning. Running out of host memory raises
    :class:`InsufficientMemoryError`.

    Examples
    --------
    >>> cfg = Config(n_classes=2, n_per_class=5, steps=3)
    >>> type(make_engine(cfg, allocate(cfg))).__name__
    'Simulation64'
    """
    bits = "64" if cfg.dtype == "float64" else "32"
    ecfg = engine_config(cfg)
    if engine_setup is not None:
        engine_setup(ecfg)
    engines = {name: entry["engine"] for name, entry in backend_registry().items()}
    try:
        if uses_cuda(cfg):
            name = "cuda" if cfg.backend == "auto" else cfg.backend
            try:
                return getattr(_core, engines[name] + bits)(ecfg, **arrays)
            except RuntimeError as err:
                if cfg.backend != "auto":
                    raise
                warnings.warn(
                    f"backend='auto' falls back to the CPU: {err}", RuntimeWarning, stacklevel=3
                )
        return getattr(_core, engines["cpu"] + bits)(ecfg, **arrays)
    except MemoryError as err:  # std::bad_alloc in the engine's own buffers
        raise _out_of_memory(cfg, "building its engine", err) from None


class Progress:
    """A tqdm bar that appears only once a run is expected to last over a second.

    ``enabled``: True always shows it, False never, None (default) once the steps done so
    far predict over a second in all. Call :meth:`update` with the step reached and
    :meth:`close` at the end.

    Examples
    --------
    >>> bar = Progress(total=100, enabled=False)
    >>> bar.update(50)
    >>> bar.close()
    """

    def __init__(self, total: int, enabled: bool | None, first_step: int = 0):
        self.total, self.enabled, self.bar = total, enabled, None
        self.start, self.first_step = time.perf_counter(), first_step

    def update(self, step: int) -> None:
        """Show ``step`` of ``total`` (creating the bar once the run looks long enough)."""
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
        """Remove the bar, if one was shown."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ----------------------------------------------------------------------------- the run loop
class Checkpointing(Protocol):
    """What :func:`run_engine` asks of a checkpoint writer (a
    :class:`lesde.sim.checkpoint.Checkpointer`)."""

    def limit(self, step: int, target: int) -> int:
        """``target``, or the earlier record step at which a checkpoint is due."""

    def maybe_write(self, step: int, arrays: Arrays, wall_seconds: float) -> None:
        """After a chunk: write a checkpoint if one is due at ``step``."""

    def write_final(self, step: int, arrays: Arrays, wall_seconds: float) -> None:
        """At the end (or on Ctrl-C, at a record step): write the state, if not written."""

    @property
    def saved_step(self) -> int | None:
        """The step of the checkpoint on disk (None while there is none)."""

    @property
    def path(self) -> Any:
        """The checkpoint file (None for a writer that only keeps ranks' chunks in step)."""


class RecordWriter(Protocol):
    """What :func:`run_engine` asks of a live record writer (a
    :class:`lesde.sim.zarr_store.ZarrWriter`)."""

    def append(self, step: int, arrays: Arrays) -> None:
        """After a chunk: take the records complete after ``step`` steps."""

    def close(self, result: Result, arrays: Arrays) -> None:
        """At the end: hold exactly ``result``."""


def _since(start: float) -> float:
    return time.perf_counter() - start


def _checkpoint_on_interrupt(
    cfg: Config,
    sim,
    arrays: Arrays,
    checkpointer: Checkpointing,
    rate: float | None,
    wall_before: float,
    started: float,
) -> None:
    """After Ctrl-C: run on to the next record step and checkpoint there.

    Only a record step is a state the engine can resume from (there the SGD class offsets
    and pending noise are folded into the features; the core refuses any other step), so
    the steps up to the next one are finished first, in chunks, with a notice saying how
    long that takes. A second Ctrl-C stops at once; the checkpoint on disk (if any) stays.
    """
    target = cfg.next_record_step(sim.step)
    seconds = (target - sim.step) / rate if rate else math.inf
    if target > sim.step and seconds >= NOTICE_SECONDS:  # why Ctrl-C has not stopped it yet
        eta = "" if math.isinf(seconds) else f", about {seconds:.2g} s"
        warnings.warn(
            f"interrupted at step {sim.step}: finishing the {target - sim.step} steps to "
            f"record step {target}{eta}, to write checkpoint {checkpointer.path} there; "
            "press Ctrl-C again to stop at once without it",
            RuntimeWarning,
            stacklevel=4,
        )
    try:
        chunk = max(1, int(rate * CHUNK_SECONDS)) if rate else 1
        while sim.step < target:
            sim.advance(min(target, sim.step + chunk))
        checkpointer.write_final(sim.step, arrays, wall_before + _since(started))
    except KeyboardInterrupt:  # the second Ctrl-C: the checkpoint on disk stands
        pass


def _checkpoint_note(checkpointer: Checkpointing | None) -> str:
    if checkpointer is None or checkpointer.path is None:  # none, or chunks kept in step only
        return ""
    if checkpointer.saved_step is None:
        return f"; no checkpoint was written to {checkpointer.path}"
    return (
        f"; checkpoint {checkpointer.path} holds step {checkpointer.saved_step}: "
        f"lesde.resume({str(checkpointer.path)!r}) finishes the run"
    )


def run_engine(
    cfg: Config,
    arrays: Arrays,
    *,
    progress: bool | None,
    on_nonfinite: str,
    checkpointer: Checkpointing | None = None,
    resume_step: int | None = None,
    wall_before: float = 0.0,
    zarr_writer: RecordWriter | None = None,
    engine_setup=None,
) -> Result:
    """Drive the engine over ``arrays`` to the end and collect the Result.

    A fresh run (``resume_step=None``) draws the initial state; otherwise the arrays hold
    the state after ``resume_step`` steps (a record step), as :func:`lesde.resume` loads it.
    A ``checkpointer`` may cut chunks short and writes checkpoints between them; a
    ``zarr_writer`` gets the records complete after each chunk, and the Result at the end.
    ``on_nonfinite`` is that of :func:`lesde.simulate`.

    Ctrl-C ends the run between chunks with a :class:`RunInterruptedWarning` and a Result
    marked ``interrupted``. With a ``checkpointer`` the run first goes on to the next
    record step (the only steps it can be resumed from), saying how long that takes, and
    checkpoints there; a second Ctrl-C skips that. ``result.meta["checkpoint_step"]`` is
    the step of the checkpoint on disk (None if there is none).

    Examples
    --------
    >>> cfg = Config(n_classes=2, n_per_class=10, steps=20, record_every=10)
    >>> run_engine(cfg, allocate(cfg), progress=False, on_nonfinite="raise").times.tolist()
    [0.0, 0.1, 0.2]
    """
    check_on_nonfinite(on_nonfinite)
    check_backend(cfg.backend)
    sim = make_engine(cfg, arrays, engine_setup)
    status = arrays["status"]
    interrupted, drawn = False, False
    bar = Progress(cfg.n_steps, progress, first_step=resume_step or 0)
    started = time.perf_counter()
    rate = None  # steps per second, once a chunk has run
    try:
        if resume_step is None:
            sim.initialize()
        else:
            sim.resume(resume_step)
        drawn = True
        # Start with one step and let the rate set the size: a first chunk of a whole record
        # interval could be the whole run, which Ctrl-C cannot interrupt.
        chunk = 1
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
        bar.close()
        if checkpointer is not None and checkpointer.path is not None and drawn:
            _checkpoint_on_interrupt(cfg, sim, arrays, checkpointer, rate, wall_before, started)
        warnings.warn(
            f"interrupted at step {sim.step} of {cfg.n_steps}: the result holds the records "
            f"up to t = {sim.step * cfg.dt:g}{_checkpoint_note(checkpointer)}",
            RunInterruptedWarning,
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
    diagnostics.warn_resolution(result)
    if checkpointer is not None:
        result.meta["checkpoint_step"] = checkpointer.saved_step
    if zarr_writer is not None:
        zarr_writer.close(result, arrays)
    failed = np.flatnonzero(status != 0)
    if failed.size and on_nonfinite != "ignore":
        r = int(failed[0])
        step = int(arrays["fail_step"][r])
        what, state_finite = diagnostics.what_failed(cfg, arrays, r)
        cause = diagnostics.likely_cause(cfg, state_finite)
        message = (
            f"{failed.size} of {cfg.replicas} replica(s) became non-finite (NaN/Inf); replica "
            f"{r} at step {step} (t = {step * cfg.dt:g}): {what}. Likely cause: "
            f"{cause}. Records up to that point are kept (status "
            f"'{status_names(status)[r]}')."
        )
        if on_nonfinite == "raise":
            raise NonFiniteError(message, result)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return result
