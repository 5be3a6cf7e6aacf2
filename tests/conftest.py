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

from backends import BACKENDS, DEVICE_BACKENDS, available_backends


def pytest_configure(config):
    required = [b for b in os.environ.get("LESDE_REQUIRE_BACKENDS", "").split(",") if b]
    missing = [b for b in required if b not in available_backends()]
    if missing:
        raise pytest.UsageError(
            f"LESDE_REQUIRE_BACKENDS asks for {missing}, but this build and machine offer only "
            f"{available_backends()} (cuda_emulator: CMake LESDE_CUDA_EMULATOR=ON; cuda: a CUDA "
            f"build and a visible GPU)"
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
