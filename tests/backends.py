"""Which backends this build and machine offer, for the tests (conftest.py makes fixtures).

See conftest.py for the fixtures and the environment variables that steer them.
"""

from __future__ import annotations

import os

from lesde import _core

# The core's backend registry: name -> its entry (engine class prefix, available, ...).
REGISTRY = {b["name"]: b for b in _core.backends()}


def available_backends() -> list[str]:
    return [name for name, b in REGISTRY.items() if b["available"]]


BACKENDS = available_backends()
if os.environ.get("LESDE_BACKENDS"):
    BACKENDS = [b for b in BACKENDS if b in os.environ["LESDE_BACKENDS"].split(",")]
DEVICE_BACKENDS = [b for b in BACKENDS if b != "cpu"]


def engine_class(backend: str, dtype: str):
    """The compiled engine class of ``backend`` for ``dtype`` (float64 or float32)."""
    bits = "64" if dtype == "float64" else "32"
    return getattr(_core, REGISTRY[backend]["engine"] + bits)


def small_for(backend: str, cpu_size: int, emulator_size: int) -> int:
    """A run size: the emulator executes each warp's 32 lanes as coroutines, about 1000 times
    slower than the CPU engine, so tests that only need the physics to hold on it shrink."""
    return emulator_size if backend == "cuda_emulator" else cpu_size
