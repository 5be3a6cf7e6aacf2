#!/usr/bin/env bash
# GPU check of the CUDA backend (docs/cuda.md), in one command on a machine with an NVIDIA
# GPU, nvcc, CMake and Python (pybind11, numpy, scipy, pandas, matplotlib, tqdm, pytest;
# PyTorch for the PyTorch rows); no network needed:
#
#     bench/gpu_check.sh
#
# 1. builds the core from this tree with LESDE_CUDA=ON (a direct CMake build in
#    build/gpu-check, for this GPU's architecture) into a scratch copy of the package;
# 2. runs tests/test_cuda.py and the physics tests (closed form, statistics, determinism,
#    the NumPy reference, the noise laws) on the real GPU (the cuda backend);
# 3. bench/gpu_bench.py: the step at N * p = 1e8 (N = 1e7, K = p = 10), float32 and float64,
#    cross-entropy and linear, Gaussian and two-point noise, against the device's measured
#    copy bandwidth, PyTorch on the same GPU and the CPU engine; the cost of a record step;
# 4. bench/weak_order.py on the GPU: the weak order of every scheme x noise with ~1e8 samples.
#
# Environment: PYTHON (default python3); EIGEN3_INCLUDE_DIR (a folder holding Eigen/Dense,
# when neither cmeel-eigen nor a system Eigen is installed; build/eigen3 is used if
# present); LESDE_CUDA_ARCHITECTURES (default: this GPU's, from nvidia-smi);
# LESDE_BENCH_N (default 10000000); LESDE_BENCH_SKIP_CPU=1 skips the CPU timings;
# LESDE_WEAK_SAMPLES (default 1.5e8; 0 skips the weak-order study); LESDE_GPU_SKIP_TESTS=1
# skips step 2; OUT (a folder for the
# JSON results and logs; default build/gpu-out). Missing Python packages are installed from
# ./.whl/ (wheels carried in) when it exists. Takes about five minutes on an H200.
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

cmake_args=(-DCMAKE_BUILD_TYPE=Release -DLESDE_CUDA=ON -DLESDE_OPENMP=ON -DLESDE_CUDA_EMULATOR=OFF
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
cp -r python/lesde "$pkg/lesde"  # the whole package, subpackages included
rm -f "$pkg"/lesde/_core*.so
cp "$build"/_core*.so "$pkg/lesde/"
out=${OUT:-$root/build/gpu-out}
mkdir -p "$out"
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

if [ "${LESDE_GPU_SKIP_TESTS:-0}" != 1 ]; then
  step "tests on the GPU: tests/test_cuda.py and the physics tests, backend cuda"
  # A failing test is reported, and the benchmarks still run (their numbers are still news).
  LESDE_REQUIRE_BACKENDS=cuda LESDE_BACKENDS=cuda "$py" -m pytest -p no:cacheprovider \
    -o addopts="" -q -rs tests/test_closed_form.py tests/test_statistics.py \
    tests/test_determinism.py tests/test_reference_run.py tests/test_cuda.py \
    >"$out/gpu_tests.log" 2>&1 \
    && echo "GPU tests: all passed" || echo "gpu_check: GPU TESTS FAILED (log: gpu_tests.log)"
  tail -n 25 "$out/gpu_tests.log"
fi

step "benchmark: bench/gpu_bench.py, N = ${LESDE_BENCH_N:-10000000}, K = p = 10"
skip_cpu=()
[ "${LESDE_BENCH_SKIP_CPU:-0}" = 1 ] && skip_cpu=(--skip-cpu)
"$py" bench/gpu_bench.py --N "${LESDE_BENCH_N:-1e7}" "${skip_cpu[@]}" --out "$out/gpu_bench.json"

weak=${LESDE_WEAK_SAMPLES:-1.5e8}
if [ "$weak" != 0 ]; then
  step "weak order on the GPU: bench/weak_order.py, $weak samples"
  "$py" bench/weak_order.py --backend cuda --samples "$weak" --out "$out/weak_order_gpu.json"
fi

step "gpu_check: OK in $((SECONDS - start)) s"
