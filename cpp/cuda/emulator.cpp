// The CUDA backend built for the host (CMake LESDE_CUDA_EMULATOR, on by default): the very
// same device.cu and kernels.cuh, compiled by the C++ compiler against emulator.hpp, in the
// namespace lesde::cuda::emulated. Test-only.
#ifndef LESDE_CUDA_EMULATOR
#error "emulator.cpp is built only with LESDE_CUDA_EMULATOR"
#endif
#include "device.cu"
