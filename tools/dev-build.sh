#!/usr/bin/env bash
# Developer build: compile the core into build/dev and drop it into python/lesde, so that
# `PYTHONPATH=python pytest` runs the source tree. The copy is atomic (a running Python
# never sees a half-written module). Users and CI install with pip instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/dev/build.ninja ]; then
  cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DLESDE_CUDA=OFF \
    -DLESDE_CUDA_EMULATOR=ON \
    -Dpybind11_DIR="$(python3 -c 'import pybind11; print(pybind11.get_cmake_dir())')"
fi
cmake --build build/dev
so=$(ls build/dev/_core*.so)
cp "$so" "python/lesde/.$(basename "$so").tmp"
mv -f "python/lesde/.$(basename "$so").tmp" "python/lesde/$(basename "$so")"
