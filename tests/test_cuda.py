"""The CUDA backend (docs/cuda.md) against the CPU engine.

Every test runs on each CUDA-kind backend present (the ``device_backend`` fixture of
conftest.py): the host emulator (the same kernels on host threads; built by default, so these
tests run on every machine) and a real GPU where the build has the backend and a device is
visible. CI requires the emulator (``LESDE_REQUIRE_BACKENDS``), so they never quietly skip.

What must hold, and the tolerances asserted (one table per dtype, below):

* exactly equal: the initial state (labels and features: same streams, same expression),
  and the features whenever the drift is exactly zero (the noise alone: same normals);
  two GPU runs of one config; a resumed GPU run and an uninterrupted one; process "sgd"
  (delegated to the CPU engine);
* equal to rounding otherwise. The per-sample arithmetic is the CPU's (device code built
  with --fmad=false), but the class sums S are added in another order (a warp's shuffle
  tree, not one sample after another), so they differ from the CPU's by a few ulps; the
  drift E S / N inherits that, and each step adds ~1e-16 relative to the state. float64:
  rtol 1e-12 (short runs, rounding stays ~1e-14). float32: the state is rounded to float
  after every update, so a last-bit difference in the drift flips the rounding of a
  value only rarely, by one float ulp (6e-8): rtol 1e-5.
"""

from __future__ import annotations

import mmap
import re
from pathlib import Path

import numpy as np
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import lesde
from lesde import _core
from lesde.sim.engine import allocate, engine_config

from backends import engine_class

# dtype -> (rtol, atol relative to the largest magnitude compared)
TOLERANCE = {"float64": (1e-12, 1e-12), "float32": (1e-5, 1e-5)}
RECORDS = ("class_means", "label_means", "sigma_w", "scalars", "samples")


def run(cfg: lesde.Config, backend: str, until: int | None = None, arrays=None, resume=None):
    """Drives one engine over freshly allocated arrays (or ``arrays``); returns them."""
    arrays = allocate(cfg) if arrays is None else arrays
    sim = engine_class(backend, cfg.dtype)(engine_config(cfg), **arrays)
    if resume is None:
        sim.initialize()
    else:
        sim.resume(resume)
    sim.advance(cfg.n_steps if until is None else until)
    return arrays


def assert_close(gpu: np.ndarray, cpu: np.ndarray, dtype: str, what: str) -> None:
    rtol, atol = TOLERANCE[dtype]
    finite = cpu[np.isfinite(cpu)]
    scale = float(np.abs(finite).max()) if finite.size else 1.0
    np.testing.assert_allclose(gpu, cpu, rtol=rtol, atol=atol * max(scale, 1.0), err_msg=what)


def assert_runs_agree(gpu: dict, cpu: dict, dtype: str) -> None:
    np.testing.assert_array_equal(gpu["labels"], cpu["labels"])
    np.testing.assert_array_equal(gpu["status"], cpu["status"])
    np.testing.assert_array_equal(gpu["fail_step"], cpu["fail_step"])
    assert_close(gpu["features"], cpu["features"], dtype, "features")
    for name in RECORDS:
        np.testing.assert_array_equal(np.isnan(gpu[name]), np.isnan(cpu[name]), err_msg=name)
        assert_close(gpu[name], cpu[name], dtype, name)


def small(**fields) -> lesde.Config:
    base = dict(
        n_classes=3,
        n_per_class=700,
        sigma=0.5,
        alpha=2.0,
        beta=0.5,
        steps=12,
        record_every=4,
        threads=2,
        seed=3,
        record_samples=3,
    )
    if "class_sizes" in fields:
        del base["n_per_class"]
    base.update(fields)
    return lesde.Config(**base)


def test_cuda_device_count_never_raises():
    n = _core.cuda_device_count()
    assert isinstance(n, int) and n >= 0
    if not lesde.build_info()["cuda_built"]:
        assert n == 0 and not hasattr(_core, "CudaSimulation64")
    assert hasattr(_core, "CudaEmulatorSimulation64") == lesde.build_info()["cuda_emulator"]


def test_backend_registry_is_what_this_build_has():
    """One registry (_core.backends()) says which backends exist, their engines and whether
    they can run; the engine and tests/backends.py read it."""
    info = lesde.build_info()
    registry = {b["name"]: b for b in _core.backends()}
    assert list(registry)[:2] == ["cpu", "cuda"]
    assert ("cuda_emulator" in registry) == info["cuda_emulator"]  # listed only where built
    for name, b in registry.items():
        built = {"cpu": True, "cuda": info["cuda_built"], "cuda_emulator": True}[name]
        assert b["built"] == built, b
        assert b["test_only"] == (name == "cuda_emulator"), b
        for bits in ("64", "32"):
            assert hasattr(_core, b["engine"] + bits) == built, b
        assert b["available"] == (built and b["devices"] > 0), b
        assert (b["reason"] == "") == b["available"], b
    assert registry["cuda"]["devices"] == (_core.cuda_device_count() if info["cuda_built"] else 0)


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    not (ROOT / "tools" / "wheel-check.sh").is_file(),
    reason="no tools/wheel-check.sh beside the tests (the wheel check copies only the tests' "
    "oracle from tools/)",
)
def test_release_wheels_are_built_without_the_emulator():
    """The emulator is a test-only build (CMake LESDE_CUDA_EMULATOR): ON in dev and CI
    builds, OFF in both release wheel builds, which check that it is absent."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    settings = pyproject["tool"]["cibuildwheel"]["config-settings"]
    assert settings["cmake.define.LESDE_CUDA_EMULATOR"] == "OFF"
    script = (ROOT / "tools" / "wheel-check.sh").read_text()
    assert "-C cmake.define.LESDE_CUDA_EMULATOR=OFF" in script
    assert 'assert "cuda_emulator" not in names' in script
    assert "-DLESDE_CUDA_EMULATOR=ON" in (ROOT / "tools" / "dev-build.sh").read_text()


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda_emulator"])
def test_engine_builds_the_registrys_engine_or_refuses_with_its_reason(name):
    from lesde.sim.engine import make_engine

    entry = {b["name"]: b for b in _core.backends()}.get(name)
    if entry is None:  # a release build: no emulator, and the core does not know the name
        with pytest.raises((ValueError, RuntimeError), match="cuda_emulator.*(no such|avail)"):
            cfg = small(backend=name)
            make_engine(cfg, allocate(cfg))
        return
    cfg = small(backend=name)
    if entry["available"]:
        engine = make_engine(cfg, allocate(cfg))
        assert type(engine).__name__ == entry["engine"] + "64"
    else:
        with pytest.raises(
            RuntimeError, match=re.escape(f"'{name}' cannot run here: {entry['reason']}")
        ):
            make_engine(cfg, allocate(cfg))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("scheme", ["euler_maruyama", "heun"])
@pytest.mark.parametrize("signal", ["cross_entropy", "linear", "projected"])
def test_gpu_agrees_with_cpu(signal, scheme, dtype, device_backend):
    cfg = small(signal=signal, scheme=scheme, dtype=dtype, replicas=2, label_noise=0.1)
    assert_runs_agree(run(cfg, device_backend), run(cfg, "cpu"), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gpu_agrees_with_cpu_with_a_head(dtype, device_backend):
    rng = np.random.default_rng(0)
    cfg = small(
        n_classes=4,
        dim=6,
        head=rng.normal(size=(4, 6)),
        dtype=dtype,
        scheme="heun",
        init_means=rng.normal(size=(4, 6)),
    )
    assert_runs_agree(run(cfg, device_backend), run(cfg, "cpu"), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("sizes", [(1, 37, 2, 3000, 5, 900), (31, 1, 63, 1, 2000, 33)])
def test_class_boundaries_inside_segments_and_blocks(sizes, dtype, device_backend):
    # Tiny and uneven classes: warps whose samples span several classes, classes that
    # start on the first or the last lane of a warp's row of 32 samples, blocks that start
    # mid-class, classes of one sample; three replicas advance in lock step.
    cfg = small(
        n_classes=6,
        class_sizes=sizes,
        dtype=dtype,
        replicas=3,
        label_noise=0.3,
        scheme="heun",
        steps=6,
        record_every=3,
    )
    assert_runs_agree(run(cfg, device_backend), run(cfg, "cpu"), dtype)


def test_gpu_agrees_with_cpu_over_256_blocks(device_backend):
    # 540,000 samples: 264 blocks added by the pairwise tree of reduce.hpp, each class's
    # block partials a run of blocks inside it (the others absent nodes).
    cfg = small(n_per_class=180_000, steps=2, record_every=1, label_noise=0.1)
    assert _core.block_layout(cfg.n_samples)[0] > 256
    assert_runs_agree(run(cfg, device_backend), run(cfg, "cpu"), "float64")


@pytest.mark.parametrize("noise_kind", ["gaussian", "two_point", "three_point"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_initial_state_and_noise_are_bit_identical(dtype, noise_kind, device_backend):
    init = small(dtype=dtype, label_noise=0.2, init_means=np.eye(3), replicas=2)
    gpu, cpu = run(init, device_backend, until=0), run(init, "cpu", until=0)
    np.testing.assert_array_equal(gpu["labels"], cpu["labels"])
    np.testing.assert_array_equal(gpu["features"], cpu["features"])
    # alpha = beta = 0: the drift is exactly zero, so every step adds the same increments
    # (2,100 samples x 3 x 12 steps: about 180 Gaussian ones through the ziggurat's slow path).
    noise = small(dtype=dtype, alpha=0.0, beta=0.0, sigma=1.3, noise=noise_kind)
    np.testing.assert_array_equal(
        run(noise, device_backend)["features"],
        run(noise, "cpu")["features"],
        err_msg=f"{noise_kind} increments differ between the GPU path and the CPU's",
    )


def test_two_gpu_runs_are_identical(device_backend):
    cfg = small(replicas=2, scheme="heun", class_sizes=(5, 1500, 800))
    a, b = run(cfg, device_backend), run(cfg, device_backend)
    for name in ("features", "labels", *RECORDS):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_resume_continues_the_same_run(device_backend):
    cfg = small(steps=12, record_every=4)
    whole = run(cfg, device_backend)
    arrays = run(cfg, device_backend, until=8)
    run(cfg, device_backend, arrays=arrays, resume=8)
    for name in ("features", *RECORDS):
        np.testing.assert_array_equal(arrays[name], whole[name], err_msg=name)


def test_advance_in_chunks_equals_one_advance(device_backend):
    cfg = small(steps=12, record_every=4)
    whole = run(cfg, device_backend)
    arrays = allocate(cfg)
    sim = engine_class(device_backend, "float64")(engine_config(cfg), **arrays)
    sim.initialize()
    for until in (1, 2, 5, 8, 11, 12, 20):
        assert sim.advance(until) == min(until, cfg.n_steps)
        assert sim.step == min(until, cfg.n_steps)
    for name in ("features", *RECORDS):
        np.testing.assert_array_equal(arrays[name], whole[name], err_msg=name)


def test_nonfinite_replica_fails_at_the_same_step(device_backend):
    cfg = small(signal="linear", alpha=1e30, beta=0.0, dt=1.0, steps=30, record_every=5, replicas=2)
    gpu, cpu = run(cfg, device_backend), run(cfg, "cpu")
    assert (cpu["status"] != 0).all()
    np.testing.assert_array_equal(gpu["status"], cpu["status"])
    np.testing.assert_array_equal(gpu["fail_step"], cpu["fail_step"])


def test_sgd_runs_on_the_cpu_engine(device_backend):
    cfg = small(process="sgd", batch_size=4, steps=20, dt=0.05)
    gpu, cpu = run(cfg, device_backend), run(cfg, "cpu")
    for name in ("features", "labels", "noise_var", *RECORDS):
        np.testing.assert_array_equal(gpu[name], cpu[name], err_msg=name)


def test_rejects_dimensions_beyond_the_kernels(device_backend):
    too_wide = small(n_classes=_core.CUDA_MAX_DIM + 1, n_per_class=2)
    with pytest.raises(ValueError, match=str(_core.CUDA_MAX_DIM)):
        engine_class(device_backend, "float64")(engine_config(too_wide), **allocate(too_wide))


def test_checks_buffers_like_the_cpu_engine(device_backend):
    cfg = small(n_per_class=3)
    good = allocate(cfg)
    engine_class(device_backend, "float64")(engine_config(cfg), **good)
    with pytest.raises(ValueError, match="features"):
        engine_class(device_backend, "float64")(
            engine_config(cfg), **{**good, "features": good["features"][:, 1:]}
        )
    with pytest.raises(TypeError, match="labels"):
        engine_class(device_backend, "float64")(
            engine_config(cfg), **{**good, "labels": good["labels"] * 1.0}
        )


def _lazy_zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A writeable array of virtual memory only (pages appear when touched)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
    try:
        buf = mmap.mmap(-1, nbytes, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError as err:
        pytest.skip(f"cannot map {nbytes} bytes of virtual memory: {err}")
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def test_refuses_a_state_larger_than_the_device(device_backend):
    info = getattr(_core, f"{device_backend}_device_info")()
    n, p = 1 << 20, 8
    # The features alone exceed the whole device (not just what is free now: free memory
    # can grow between this query and the engine's, as earlier tests' buffers are released).
    replicas = info["total_memory"] // (n * p * 8) + 1
    cfg = lesde.Config(n_classes=p, n_per_class=n // p, steps=1, replicas=int(replicas))
    arrays = allocate(lesde.Config(n_classes=p, n_per_class=n // p, steps=1))
    R, T = int(replicas), len(cfg.record_steps)
    arrays.update(  # the host side is never touched: the engine refuses before copying
        features=_lazy_zeros((R, n, p), np.float64),
        labels=_lazy_zeros((R, n), np.int32),
        class_means=np.zeros((R, T, p, p)),
        label_means=np.zeros((R, T, p, p)),
        sigma_w=np.zeros((R, T, p, p)),
        scalars=np.zeros((R, T, _core.NUM_SCALARS)),
        samples=np.zeros((R, T, 0, p)),
        status=np.zeros(R, np.int32),
        fail_step=np.zeros(R, np.int64),
    )
    with pytest.raises(RuntimeError, match=r"needs \d+ bytes .* of device memory"):
        engine_class(device_backend, "float64")(engine_config(cfg), **arrays)
