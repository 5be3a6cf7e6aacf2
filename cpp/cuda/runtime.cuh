// The CUDA runtime as device.cu sees it: the real one (nvcc), or, with LESDE_CUDA_EMULATOR,
// the host emulator of emulator.hpp, so that the same device.cu and kernels.cuh can be
// built and tested with a plain C++ compiler on machines without a GPU.
#pragma once

#ifndef LESDE_CUDA_EMULATOR

#include <cuda_runtime.h>

namespace lesde::cuda::detail {

// kernel<<<grid, block, 0, stream>>>(args); the caller checks cudaGetLastError().
template <class Args>
void launch(void (*kernel)(Args), unsigned grid, unsigned block, cudaStream_t stream,
            const Args& args) {
  kernel<<<grid, block, 0, stream>>>(args);
}

}  // namespace lesde::cuda::detail

#else

#include "emulator.hpp"

#endif
