"""Fixtures shared by the tests.

``backend``: every engine this build can run on this machine, so the physics tests (closed
form, statistics, determinism, the reference run) hold on each of them:

* ``cpu``: the OpenMP engine, always;
* ``cuda_emulator``: the CUDA backend's kernels run on host threads (built by default; slow,
  so tests size their runs with :func:`small_for`);
* ``cuda``: the CUDA backend on a real GPU, where the build has it and a device is visible.

``device_backend``: the CUDA-kind backends only (tests/test_cuda.py compares them with cpu).

CI sets ``LESDE_REQUIRE_BACKENDS=cuda_emulator`` so that a build without the emulator fails
loudly instead of quietly skipping its tests; on a GPU machine ``cuda_emulator,cuda``.
``LESDE_BACKENDS=cuda`` (a comma-separated list) runs the backend tests on those backends
only (bench/gpu_check.sh: the real GPU, not again the CPU and the emulator).
"""

from __future__ import annotations

import os

import pytest

import lesde
from lesde import _core

# backend name -> prefix of its engine classes in lesde._core (Simulation64, ...)
ENGINE_CLASSES = {
    "cpu": "Simulation",
    "cuda_emulator": "CudaEmulatorSimulation",
    "cuda": "CudaSimulation",
}


def available_backends() -> list[str]:
    found = ["cpu"]
    if lesde.build_info().get("cuda_emulator"):
        found.append("cuda_emulator")
    if _core.cuda_device_count() > 0:
        found.append("cuda")
    return found


BACKENDS = available_backends()
if os.environ.get("LESDE_BACKENDS"):
    BACKENDS = [b for b in BACKENDS if b in os.environ["LESDE_BACKENDS"].split(",")]
DEVICE_BACKENDS = [b for b in BACKENDS if b != "cpu"]


def pytest_configure(config):
    required = [b for b in os.environ.get("LESDE_REQUIRE_BACKENDS", "").split(",") if b]
    missing = [b for b in required if b not in available_backends()]
    if missing:
        raise pytest.UsageError(
            f"LESDE_REQUIRE_BACKENDS asks for {missing}, but this build and machine offer only "
            f"{BACKENDS} (cuda_emulator: CMake LESDE_CUDA_EMULATOR=ON; cuda: a CUDA build and "
            f"a visible GPU)"
        )


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The name of a backend to run on (a value of ``lesde.Config.backend``)."""
    return request.param


@pytest.fixture(
    params=DEVICE_BACKENDS
    or [
        pytest.param(
            None,
            marks=pytest.mark.skip(
                reason="no CUDA-kind backend: neither the emulator nor a GPU is built in"
            ),
        )
    ]
)
def device_backend(request) -> str:
    """A CUDA-kind backend (the emulator, or a real GPU)."""
    return request.param


def engine_class(backend: str, dtype: str):
    """The compiled engine class of ``backend`` for ``dtype`` (float64 or float32)."""
    bits = "64" if dtype == "float64" else "32"
    return getattr(_core, ENGINE_CLASSES[backend] + bits)


def small_for(backend: str, cpu_size: int, emulator_size: int) -> int:
    """A run size: the emulator executes each warp's 32 lanes as coroutines, about 1000 times
    slower than the CPU engine, so tests that only need the physics to hold on it shrink."""
    return emulator_size if backend == "cuda_emulator" else cpu_size
