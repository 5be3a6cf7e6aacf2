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

// kernel<<<grid, block, shared, stream>>>(args); the caller checks cudaGetLastError().
template <class Args>
void launch(void (*kernel)(Args), unsigned grid, unsigned block, cudaStream_t stream,
            const Args& args, size_t shared = 0) {
  if (shared > 48 * 1024)  // above the default limit: opt in, once per size
    (void)cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared));
  kernel<<<grid, block, shared, stream>>>(args);
}

// The CTA's dynamic shared memory (the `shared` bytes of launch).
__device__ __forceinline__ unsigned char* shared_bytes() {
  extern __shared__ __align__(16) unsigned char lesde_shared[];
  return lesde_shared;
}

}  // namespace lesde::cuda::gpu

#else

#define LESDE_CUDA_PLATFORM emulated

#include "emulator.hpp"

#endif
