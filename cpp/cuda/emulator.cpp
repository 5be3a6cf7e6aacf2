// The CUDA backend built for the host (CMake -DLESDE_CUDA_EMULATOR=ON): the very same
// device.cu and kernels.cuh, compiled by the C++ compiler against emulator.hpp. Test-only.
#ifndef LESDE_CUDA_EMULATOR
#error "emulator.cpp is built only with LESDE_CUDA_EMULATOR"
#endif
#include "device.cu"
