"""Which backends this build and machine offer, for the tests (conftest.py makes fixtures).

See conftest.py for the fixtures and the environment variables that steer them.
"""

from __future__ import annotations

import os

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


def engine_class(backend: str, dtype: str):
    """The compiled engine class of ``backend`` for ``dtype`` (float64 or float32)."""
    bits = "64" if dtype == "float64" else "32"
    return getattr(_core, ENGINE_CLASSES[backend] + bits)


def small_for(backend: str, cpu_size: int, emulator_size: int) -> int:
    """A run size: the emulator executes each warp's 32 lanes as coroutines, about 1000 times
    slower than the CPU engine, so tests that only need the physics to hold on it shrink."""
    return emulator_size if backend == "cuda_emulator" else cpu_size
