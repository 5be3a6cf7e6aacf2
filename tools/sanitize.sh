#!/usr/bin/env bash
# Build the compiled core with AddressSanitizer + UndefinedBehaviorSanitizer and run the
# test suite against it, in one command:
#
#     tools/sanitize.sh                  # all of tests/
#     tools/sanitize.sh tests/test_checkpoint.py -k sigkill   # any pytest arguments
#
# How: the core is built with -DLESDE_SANITIZE=ON in build/asan (override with
# LESDE_ASAN_BUILD); a temporary copy of python/lesde gets that _core; Python itself is not
# instrumented, so the ASan runtime (and libstdc++) is preloaded before anything else. Leak
# detection is off (CPython keeps objects alive at exit on purpose); any ASan or UBSan
# report aborts the process, so it cannot scroll past inside a passing test.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${LESDE_ASAN_BUILD:-$root/build/asan}
python=${PYTHON:-python3}

"$python" -c 'import pybind11' 2>/dev/null || { echo "sanitize.sh: needs pybind11 (pip install pybind11)" >&2; exit 2; }
cmake -S "$root" -B "$build" -G Ninja -DLESDE_CUDA=OFF \
  -DLESDE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPython_EXECUTABLE="$(command -v "$python")" \
  -Dpybind11_DIR="$("$python" -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
cmake --build "$build"

so=$(ls "$build"/_core*.so)
libasan=$(ldd "$so" | awk '/libasan/ {print $3; exit}')
[ -n "$libasan" ] || { echo "sanitize.sh: $so is not linked against libasan" >&2; exit 2; }
# libstdc++ too: ASan's __cxa_throw interceptor must find the real one at start-up, or the
# first C++ exception thrown by any extension (matplotlib's, ours) aborts with a CHECK.
libstdcxx=$(ldd "$so" | awk '/libstdc\+\+/ {print $3; exit}')

pkg=$(mktemp -d "${TMPDIR:-/tmp}/lesde-asan.XXXXXX")
trap 'rm -rf "$pkg"' EXIT
mkdir "$pkg/lesde"
find "$root/python/lesde" -maxdepth 1 -type f \( -name '*.py' -o -name '*.pyi' -o -name py.typed \) \
  -exec cp {} "$pkg/lesde/" \;
cp "$so" "$pkg/lesde/"

export LD_PRELOAD="$libasan${libstdcxx:+:$libstdcxx}${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
export PYTHONPATH="$pkg${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1

cd "$root"
"$python" - "$pkg" <<'PY'
import sys, lesde
assert lesde._core.__file__.startswith(sys.argv[1]), lesde._core.__file__
print("sanitize.sh: testing", lesde._core.__file__, "built", lesde.build_info()["build_type"])
PY
if [ $# -eq 0 ]; then set -- tests; fi
"$python" -m pytest -p no:cacheprovider "$@"
