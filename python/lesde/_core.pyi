"""Type stubs of the compiled core (cpp/src/bindings). Use the Python layer instead."""

from typing import Any

import numpy as np
import numpy.typing as npt

RANDOM_STREAM_VERSION: int
NUM_SCALARS: int

def scalar_metrics() -> list[dict[str, Any]]: ...
def backends() -> list[dict[str, Any]]: ...

class ScheduleKind:
    constant: ScheduleKind
    power_law: ScheduleKind
    exponential: ScheduleKind
    tabulated: ScheduleKind

class Signal:
    linear: Signal
    projected: Signal
    cross_entropy: Signal

class Process:
    sde: Process
    sgd: Process

class Scheme:
    euler_maruyama: Scheme
    heun: Scheme

class NoiseKind:
    gaussian: NoiseKind
    two_point: NoiseKind
    three_point: NoiseKind

class Purpose:
    init: Purpose
    noise: Purpose
    labels: Purpose
    batch: Purpose
    noise_two_point: Purpose
    noise_three_point: Purpose

class Schedule:
    kind: ScheduleKind
    a0: float
    tau: float
    gamma: float
    times: list[float]
    values: list[float]
    def __init__(self) -> None: ...
    def __call__(self, t: float) -> float: ...

class EngineConfig:
    K: int
    p: int
    class_sizes: list[int]
    signal: Signal
    head: list[float]
    full_impact: bool
    impact: list[float]
    alpha: Schedule
    beta: Schedule
    sigma: Schedule
    noise: NoiseKind
    label_noise: float
    init_scale: float
    init_means: list[float]
    process: Process
    scheme: Scheme
    dt: float
    n_steps: int
    batch_size: int
    replicas: int
    seed: int
    noise_seed: int
    threads: int
    record_steps: list[int]
    record_samples: list[int]
    def __init__(self) -> None: ...
    def check(self) -> None: ...

class _Simulation:
    def __init__(
        self,
        config: EngineConfig,
        features: npt.NDArray[Any],
        labels: npt.NDArray[np.int32],
        classes: npt.NDArray[np.int32],
        noise_var: npt.NDArray[np.float64] | None,
        class_means: npt.NDArray[np.float64],
        label_means: npt.NDArray[np.float64],
        sigma_w: npt.NDArray[np.float64],
        scalars: npt.NDArray[np.float64],
        samples: npt.NDArray[np.float64],
        status: npt.NDArray[np.int32],
        fail_step: npt.NDArray[np.int64],
    ) -> None: ...
    def initialize(self) -> None: ...
    def resume(self, step: int) -> None: ...
    def advance(self, until: int) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def n_steps(self) -> int: ...

class Simulation64(_Simulation): ...
class Simulation32(_Simulation): ...
class CudaSimulation64(_Simulation): ...  # CUDA builds only
class CudaSimulation32(_Simulation): ...  # CUDA builds only
class CudaEmulatorSimulation64(_Simulation): ...  # builds with the CUDA emulator (default)
class CudaEmulatorSimulation32(_Simulation): ...  # builds with the CUDA emulator (default)

CUDA_MAX_DIM: int

def cuda_device_count() -> int: ...
def cuda_device_info() -> dict[str, Any]: ...  # CUDA builds only
def cuda_emulator_device_count() -> int: ...  # builds with the CUDA emulator
def cuda_emulator_device_info() -> dict[str, Any]: ...  # builds with the CUDA emulator
def schemes() -> list[dict[str, Any]]: ...
def noise_kinds() -> list[dict[str, Any]]: ...
def block_layout(n_samples: int) -> tuple[int, int]: ...
def philox4x32_10(counter: list[int], key: list[int]) -> list[int]: ...
def normals(
    seed: int,
    purpose: Purpose,
    replica: int,
    step: int,
    first: int,
    count: int,
    vectorised: bool = True,
) -> npt.NDArray[np.float64]: ...
def increments(
    kind: NoiseKind,
    seed: int,
    replica: int,
    step: int,
    first: int,
    count: int,
    path: str = "simd",
    dtype: str = "float64",
) -> npt.NDArray[Any]: ...
def build_info() -> dict[str, Any]: ...
