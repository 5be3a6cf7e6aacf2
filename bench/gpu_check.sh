#!/usr/bin/env bash
# GPU check of the CUDA backend (docs/cuda.md), in one command on a machine with an NVIDIA
# GPU, nvcc, CMake and Python (pybind11, numpy, pytest); no network needed:
#
#     bench/gpu_check.sh
#
# 1. builds the core from this tree with LESDE_CUDA=ON (a direct CMake build in
#    build/gpu-check, for this GPU's architecture) into a scratch copy of the package;
# 2. runs tests/test_cuda.py against it (GPU vs CPU, determinism, refusals);
# 3. times the fused SDE step at N * p = 1e8 (N = 1e7, K = p = 10) on the GPU, float32 and
#    float64, and the CPU engine on the same config, and prints a table: ms/step, effective
#    bandwidth (the state read and written once per sweep) and its fraction of the device's
#    peak, and the GPU/CPU speed-up.
#
# Environment: PYTHON (default python3); EIGEN3_INCLUDE_DIR (a folder holding Eigen/Dense,
# when neither cmeel-eigen nor a system Eigen is installed; build/eigen3 is used if
# present); LESDE_CUDA_ARCHITECTURES (default: this GPU's, from nvidia-smi);
# LESDE_BENCH_N (default 10000000); LESDE_BENCH_SKIP_CPU=1 skips the CPU timings.
# Missing Python packages are installed from ./.whl/ (wheels carried in) when it exists.
# Takes a few minutes on an H100; everything goes to stdout.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
py=${PYTHON:-python3}
start=$SECONDS
step() { printf '\n== %s  [%ds]\n' "$*" "$((SECONDS - start))"; }
die() { echo "gpu_check: FAIL: $*"; exit 1; }  # stdout too: the caller reads one stream

step "environment"
command -v "$py" >/dev/null || die "no $py (set PYTHON)"
command -v cmake >/dev/null || die "cmake is not on PATH"
nvcc_bin=$(command -v nvcc || true)
[ -z "$nvcc_bin" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc_bin=/usr/local/cuda/bin/nvcc
[ -n "$nvcc_bin" ] || die "nvcc not found (put the CUDA toolkit's bin/ on PATH)"
echo "nvcc:   $("$nvcc_bin" --version | tail -n 2 | head -n 1)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader \
    || die "nvidia-smi cannot talk to the driver"
else
  echo "nvidia-smi: not found (continuing; the tests will say whether a device is usable)"
fi
echo "python: $("$py" --version 2>&1) at $(command -v "$py")"
echo "cmake:  $(cmake --version | head -n 1)"

missing=()
for mod in pybind11 numpy pytest; do
  "$py" -c "import $mod" 2>/dev/null || missing+=("$mod")
done
if [ ${#missing[@]} -gt 0 ] && [ -d .whl ]; then
  echo "installing ${missing[*]} from .whl/ (offline)"
  "$py" -m pip install --no-index --find-links .whl "${missing[@]}" >/dev/null \
    || die "could not install ${missing[*]} from .whl/"
  missing=()
  for mod in pybind11 numpy pytest; do
    "$py" -c "import $mod" 2>/dev/null || missing+=("$mod")
  done
fi
[ ${#missing[@]} -eq 0 ] || die "Python packages missing: ${missing[*]} (pip install, or carry wheels in .whl/)"

cmake_args=(-DCMAKE_BUILD_TYPE=Release -DLESDE_CUDA=ON -DLESDE_OPENMP=ON
            "-DPython_EXECUTABLE=$(command -v "$py")"
            "-Dpybind11_DIR=$("$py" -c 'import pybind11; print(pybind11.get_cmake_dir())')"
            "-DCMAKE_CUDA_COMPILER=$nvcc_bin")
eigen=${EIGEN3_INCLUDE_DIR:-}
[ -z "$eigen" ] && [ -f build/eigen3/Eigen/Dense ] && eigen=$root/build/eigen3
if [ -n "$eigen" ]; then
  [ -f "$eigen/Eigen/Dense" ] || die "EIGEN3_INCLUDE_DIR=$eigen holds no Eigen/Dense"
  cmake_args+=("-DEIGEN3_INCLUDE_DIR=$eigen")
  echo "eigen:  $eigen"
elif "$py" -c 'import cmeel' 2>/dev/null; then
  echo "eigen:  from cmeel-eigen"
elif [ -f /usr/include/eigen3/Eigen/Dense ]; then
  echo "eigen:  /usr/include/eigen3"
else
  die "no Eigen 3.4: pip install cmeel-eigen, or copy Eigen's headers to build/eigen3 (or set EIGEN3_INCLUDE_DIR)"
fi
arch=${LESDE_CUDA_ARCHITECTURES:-}
if [ -z "$arch" ] && command -v nvidia-smi >/dev/null; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .' || true)
  [[ "$cap" =~ ^[0-9]+$ ]] && arch=$cap
fi
arch=${arch:-80-real;90}
cmake_args+=("-DLESDE_CUDA_ARCHITECTURES=$arch")
if command -v ninja >/dev/null; then cmake_args+=(-G Ninja); fi

step "build with LESDE_CUDA=ON for CUDA architecture(s) $arch (build/gpu-check)"
build=$root/build/gpu-check
rm -rf "$build"
mkdir -p "$root/build"
t0=$SECONDS
cmake -S . -B "$build" "${cmake_args[@]}" >"$build.configure.log" 2>&1 \
  || { tail -n 40 "$build.configure.log"; die "CMake configure failed (log: $build.configure.log)"; }
grep -E "^-- lesde:" "$build.configure.log" || true
cmake --build "$build" -j "$(nproc)" >"$build.build.log" 2>&1 \
  || { tail -n 60 "$build.build.log"; die "build failed (log: $build.build.log)"; }
echo "built in $((SECONDS - t0)) s"

pkg=$(mktemp -d "${TMPDIR:-/tmp}/lesde-gpu.XXXXXX")
trap 'rm -rf "$pkg"' EXIT
mkdir "$pkg/lesde"
find python/lesde -maxdepth 1 -type f \( -name '*.py' -o -name '*.pyi' -o -name py.typed \) \
  -exec cp {} "$pkg/lesde/" \;
cp "$build"/_core*.so "$pkg/lesde/"
export PYTHONPATH="$pkg" PYTHONDONTWRITEBYTECODE=1
"$py" - "$pkg" <<'EOF'
import sys
import lesde
from lesde import _core
assert lesde._core.__file__.startswith(sys.argv[1]), lesde._core.__file__
info = lesde.build_info()
assert info["cuda_built"], "the module was built without the CUDA backend"
n = _core.cuda_device_count()
print(f"core: {lesde._core.__file__}\ncuda_built: {info['cuda_built']}, devices: {n}")
if n < 1:
    sys.exit("gpu_check: FAIL: the CUDA build sees no device (driver? CUDA_VISIBLE_DEVICES?)")
d = _core.cuda_device_info()
print(f"device {d['index']}: {d['name']} (sm {d['compute_capability']}, {d['multiprocessors']} SMs), "
      f"{d['total_memory'] / 2**30:.1f} GiB, peak {d['peak_bandwidth'] / 1e9:.0f} GB/s "
      f"({d['memory_clock_khz'] / 1e3:.0f} MHz x {d['bus_width_bits']} bit x 2)")
EOF

step "tests/test_cuda.py"
"$py" -m pytest -p no:cacheprovider -o addopts="" -q -rs tests/test_cuda.py

step "benchmark: fused SDE step, N = ${LESDE_BENCH_N:-10000000}, K = p = 10"
"$py" - <<'EOF'
import os
import time

import numpy as np

import lesde
from lesde import _core
from lesde.engine import allocate, engine_config

N = int(float(os.environ.get("LESDE_BENCH_N", "1e7")))
skip_cpu = os.environ.get("LESDE_BENCH_SKIP_CPU") == "1"
K = 10
cores = os.cpu_count() or 1
peak = _core.cuda_device_info()["peak_bandwidth"]


def per_step(sim, short: int, long: int, repeats: int) -> float:
    """Seconds per step: two advances of different lengths, so the copy of the state back
    to the host at the end of each advance cancels; the best of `repeats`."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        sim.advance(sim.step + short)
        t1 = time.perf_counter()
        sim.advance(sim.step + long)
        t2 = time.perf_counter()
        best = min(best, ((t2 - t1) - (t1 - t0)) / (long - short))
    return best


def engine(cfg, backend):
    bits = "64" if cfg.dtype == "float64" else "32"
    cls = getattr(_core, ("CudaSimulation" if backend == "cuda" else "Simulation") + bits)
    arrays = allocate(cfg)
    sim = cls(engine_config(cfg), **arrays)
    t0 = time.perf_counter()
    sim.initialize()
    return sim, arrays, time.perf_counter() - t0


rows = []
for signal, scheme in [("cross_entropy", "euler_maruyama"), ("linear", "euler_maruyama"),
                       ("cross_entropy", "heun")]:
    for dtype in ("float32", "float64"):
        cfg = lesde.Config(n_classes=K, n_per_class=N // K, signal=signal, scheme=scheme,
                           dtype=dtype, alpha=1.0, beta=0.2, sigma=0.5, dt=1e-3, steps=100_000,
                           record_every=100_000, threads=cores, seed=1)
        itemsize = 4 if dtype == "float32" else 8
        sweeps = 2 if scheme == "heun" else 1
        traffic = 2 * sweeps * cfg.n_samples * cfg.p * itemsize  # bytes per step
        sim, arrays, t_init = engine(cfg, "cuda")
        sim.advance(3)  # warm-up
        gpu = per_step(sim, 10, 110, 2)
        assert (arrays["status"] == 0).all(), "the GPU run became non-finite"
        del sim, arrays
        cpu = float("nan")
        if not skip_cpu and scheme == "euler_maruyama":
            csim, carrays, _ = engine(cfg, "cpu")
            csim.advance(1)
            cpu = per_step(csim, 1, 4, 2)
            del csim, carrays
        bandwidth = traffic / gpu if gpu > 0 else float("nan")
        rows.append((f"{signal}/{scheme}", dtype, gpu * 1e3, bandwidth / 1e9,
                     bandwidth / peak if peak > 0 else float("nan"), cpu * 1e3, cpu / gpu,
                     t_init))
        print(f"  done {signal} {scheme} {dtype}", flush=True)

print()
print(f"N = {N:.3g}, K = p = {K} (N * p = {N * K:.3g}); CPU: {cores} threads; "
      f"peak {peak / 1e9:.0f} GB/s; traffic = state read + written once per sweep")
head = f"{'signal/scheme':<28} {'dtype':<8} {'GPU ms/step':>11} {'GB/s':>7} {'of peak':>8} " \
       f"{'CPU ms/step':>11} {'speed-up':>9} {'GPU init s':>10}"
print(head)
print("-" * len(head))
for name, dtype, g, bw, frac, c, ratio, t_init in rows:
    cpu_txt = f"{c:11.1f}" if np.isfinite(c) else f"{'-':>11}"
    ratio_txt = f"{ratio:8.1f}x" if np.isfinite(ratio) else f"{'-':>9}"
    print(f"{name:<28} {dtype:<8} {g:11.3f} {bw:7.0f} {frac:8.1%} {cpu_txt} {ratio_txt} "
          f"{t_init:10.2f}")
print("(GB/s = bytes that must move per step / time per step; 'of peak' divides by "
      "2 x memory clock x bus width, as the driver reports them)")
EOF

step "gpu_check: OK in $((SECONDS - start)) s"
