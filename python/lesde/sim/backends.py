"""The backends a run may use: the core's backend registry (``_core.backends()``), the one
check every entry makes (:func:`check_backend`), and which engine a config runs on
(:func:`uses_cuda`).

Examples
--------
>>> from lesde.sim.backends import available_backends, check_backend
>>> "cpu" in available_backends()
True
>>> check_backend("cpu")  # always available: returns None
"""

from __future__ import annotations

from .. import _core, validate
from .config import BACKENDS, Config

__all__ = [
    "AUTO_CUDA_MIN_SIZE",
    "BackendUnavailableError",
    "available_backends",
    "backend_registry",
    "check_backend",
    "uses_cuda",
]

#: ``backend="auto"`` picks CUDA for SDE runs of at least this many numbers (R N p).
AUTO_CUDA_MIN_SIZE = 10**6


class BackendUnavailableError(ValueError, RuntimeError):
    """``Config.backend`` names a backend that this build or this machine cannot run.

    Raised by :func:`check_backend`, before anything is allocated or written.
    """


def backend_registry() -> dict[str, dict]:
    """The backends of this build, as the core declares them (``_core.backends()``): name ->
    its engine class prefix, ``built``, ``devices``, ``available``, ``test_only`` and the
    ``reason`` it cannot run. The one list the engine and the tests read.

    Examples
    --------
    >>> backend_registry()["cpu"]["available"]
    True
    """
    return {entry["name"]: entry for entry in _core.backends()}


def available_backends() -> tuple[str, ...]:
    """The values of ``Config.backend`` that this build can run on this machine.

    ``"cpu"`` and ``"auto"`` always (auto falls back to the CPU); ``"cuda"`` with a CUDA
    build and a visible GPU; the test-only ``"cuda_emulator"`` where it is built in (source
    and CI builds, never a release wheel).

    Examples
    --------
    >>> {"cpu", "auto"} <= set(available_backends())
    True
    """
    registry = backend_registry()
    usable = [name for name, entry in registry.items() if entry["available"]]
    return (
        *(n for n in usable if not registry[n]["test_only"]),
        "auto",
        *(n for n in usable if registry[n]["test_only"]),
    )


def check_backend(backend: str) -> None:
    """Raise :class:`BackendUnavailableError` (one line, naming the backends that can run)
    if ``backend`` cannot run with this build on this machine.

    The one check of every entry: :func:`lesde.simulate`, :func:`lesde.resume`, sweeps and
    each ``lesde`` command that takes a config (run, resume, sweep, validate, demo).

    Examples
    --------
    >>> check_backend("cpu")  # always available: returns None
    """
    validate.choice("backend", backend, BACKENDS)
    if backend == "auto":
        return
    entry = backend_registry().get(backend)
    if entry is not None and entry["available"]:
        return
    why = (
        entry["reason"]
        if entry is not None
        else "this build of lesde does not have it (the CUDA emulator is test-only: CMake "
        "LESDE_CUDA_EMULATOR=ON in source builds)"
    )
    raise BackendUnavailableError(
        f"backend={backend!r} cannot run here: {why}; available backends: "
        f"{', '.join(available_backends())}"
    )


def uses_cuda(cfg: Config) -> bool:
    """Whether ``cfg.backend`` selects the CUDA engine (:func:`check_backend` first).

    ``"auto"`` picks CUDA for SDE runs of at least :data:`AUTO_CUDA_MIN_SIZE` numbers
    that the device kernels support, when a GPU is visible.

    Examples
    --------
    >>> uses_cuda(Config(n_classes=2, backend="cpu"))
    False
    """
    check_backend(cfg.backend)
    if cfg.backend == "cpu":
        return False
    if cfg.backend != "auto":
        return True
    registry = backend_registry()
    limit = getattr(_core, "CUDA_MAX_DIM", 0)
    return (
        registry["cuda"]["available"]
        and cfg.process == "sde"
        and max(cfg.n_classes, cfg.p) <= limit
        and cfg.replicas * cfg.n_samples * cfg.p >= AUTO_CUDA_MIN_SIZE
    )
