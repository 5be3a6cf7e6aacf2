// The CUDA runtime as device.cu sees it: the real one (nvcc), or, with LESDE_CUDA_EMULATOR,
// the host emulator of emulator.hpp, so that the same device.cu and kernels.cuh can be
// built and tested with a plain C++ compiler on machines without a GPU.
//
// LESDE_CUDA_PLATFORM names the namespace each build puts its kernels and its DeviceState
// in (lesde::cuda::gpu or lesde::cuda::emulated): both builds link into one module, and
// distinct names keep every symbol of one away from the other's.
#pragma once

#ifndef LESDE_CUDA_EMULATOR

#include <cuda_runtime.h>

#define LESDE_CUDA_PLATFORM gpu

namespace lesde::cuda::gpu {

constexpr Platform kPlatform = Platform::Gpu;

// kernel<<<grid, block, 0, stream>>>(args); the caller checks cudaGetLastError().
template <class Args>
void launch(void (*kernel)(Args), unsigned grid, unsigned block, cudaStream_t stream,
            const Args& args) {
  kernel<<<grid, block, 0, stream>>>(args);
}

}  // namespace lesde::cuda::gpu

#else

#define LESDE_CUDA_PLATFORM emulated

#include "emulator.hpp"

#endif
