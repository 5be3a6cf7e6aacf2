// A host emulator of the little of CUDA that device.cu and kernels.cuh use: with it, the
// CUDA backend compiles as plain C++ (emulator.cpp, CMake LESDE_CUDA_EMULATOR) and is tested
// where there is no GPU: the tests run every backend present (tests/conftest.py). Everything
// here lives in lesde::cuda::emulated, beside the nvcc keywords defined as macros. Not for users.
//
// Kernels run for real: every CTA, one warp after another, the warp's 32 lanes as
// coroutines, with __shfl_down_sync exchanging values between them. A warp whose lanes do
// not all reach the same shuffle (a bug on a GPU too) is reported and aborts. One launch at
// a time per process (a lock): the emulated warp and built-in variables are shared. Device memory is host memory filled
// with 0xFF bytes (NaN for floating point), so a kernel that reads what nobody wrote shows
// it. The emulated device has LESDE_CUDA_EMULATOR_MEMORY bytes (default 2 GiB) free.
#pragma once

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "device.hpp"  // Platform

// ---- what nvcc would provide
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)

namespace lesde::cuda::emulated {

constexpr Platform kPlatform = Platform::Emulator;

struct dim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline dim3 threadIdx, blockIdx, gridDim, blockDim;

// The 32 lanes of the warp being run, as coroutines (ucontext) on the calling thread: the
// scheduler resumes each lane in turn until it reaches a shuffle or ends, so a shuffle is a
// round in which every lane arrives. Deterministic, and cheap enough for the test suite.
struct Warp {
  ucontext_t scheduler{};
  ucontext_t lane[32]{};
  std::vector<char> stack[32];
  bool done[32] = {};
  int current = 0;
  unsigned base = 0;  // threadIdx.x of lane 0
  double value[32] = {};
  std::function<void()> body;

  static Warp& get() {
    static Warp w;
    return w;
  }
  static void entry() {
    Warp& w = get();
    w.body();
    w.done[w.current] = true;  // returning resumes the scheduler (uc_link)
  }
  void yield() { swapcontext(&lane[current], &scheduler); }

  // Runs body on the 32 lanes of the warp whose lane 0 is thread `first` of the CTA.
  void run(unsigned first, std::function<void()> f) {
    body = std::move(f);
    base = first;
    for (int l = 0; l < 32; ++l) {
      if (stack[l].empty()) stack[l].resize(size_t(1) << 20);
      getcontext(&lane[l]);
      lane[l].uc_stack.ss_sp = stack[l].data();
      lane[l].uc_stack.ss_size = stack[l].size();
      lane[l].uc_link = &scheduler;
      makecontext(&lane[l], &Warp::entry, 0);
      done[l] = false;
    }
    for (;;) {
      int waiting = 0;
      for (int l = 0; l < 32; ++l) {
        if (done[l]) continue;
        current = l;
        threadIdx = {base + unsigned(l), 0, 0};
        swapcontext(&scheduler, &lane[l]);
        waiting += done[l] ? 0 : 1;
      }
      if (waiting == 0) return;
      if (waiting != 32) {
        std::fprintf(stderr,
                     "lesde CUDA emulator: a warp's lanes did not all reach the same "
                     "__shfl_down_sync (divergent shuffle)\n");
        std::abort();
      }
    }
  }
};

// A round in which every lane of the warp publishes v and then reads lane `from(lane)`'s.
template <class From>
inline double warp_exchange(unsigned mask, double v, From from, const char* what) {
  if (mask != 0xffffffffu) {
    std::fprintf(stderr, "lesde CUDA emulator: only full-warp %s is emulated\n", what);
    std::abort();
  }
  Warp& w = Warp::get();
  const int lane = w.current;
  w.value[lane] = v;
  w.yield();  // every lane has written
  const int src = from(lane);
  const double out = src >= 0 && src < 32 ? w.value[src] : v;
  w.yield();  // every lane has read
  return out;
}

inline double __shfl_down_sync(unsigned mask, double v, int delta) {
  return warp_exchange(mask, v, [delta](int lane) { return lane + delta; }, "__shfl_down_sync");
}

inline double __shfl_sync(unsigned mask, double v, int src_lane) {
  return warp_exchange(mask, v, [src_lane](int) { return src_lane & 31; }, "__shfl_sync");
}

// Every lane arrives before any goes on (a round of the scheduler).
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  if (mask != 0xffffffffu) {
    std::fprintf(stderr, "lesde CUDA emulator: only full-warp __syncwarp is emulated\n");
    std::abort();
  }
  Warp::get().yield();
}

// The CTA's dynamic shared memory: one buffer, as CTAs run one after another. Filled with
// 0xFF bytes at each launch, so a kernel that reads what nobody wrote shows it.
inline std::vector<unsigned char>& shared_buffer() {
  static std::vector<unsigned char> buffer;
  return buffer;
}
inline unsigned char* shared_bytes() { return shared_buffer().data(); }

// ---- the runtime API, as far as device.cu uses it
enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
enum cudaDeviceAttr {
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrMemoryClockRate = 36,
  cudaDevAttrGlobalMemoryBusWidth = 37,
  cudaDevAttrMaxThreadsPerMultiProcessor = 39,
};
constexpr unsigned cudaStreamNonBlocking = 1;
using cudaStream_t = void*;
struct cudaFuncAttributes {
  size_t localSizeBytes = 0;
};
struct cudaDeviceProp {
  char name[256] = "lesde CUDA emulator (host threads)";
  int major = 0, minor = 0, multiProcessorCount = 1;
};

inline const char* cudaGetErrorName(cudaError_t e) {
  return e == cudaSuccess ? "cudaSuccess" : "cudaErrorMemoryAllocation";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "out of memory";
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
  *prop = cudaDeviceProp{};
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int) {
  *value = attr == cudaDevAttrMultiProcessorCount           ? 1
           : attr == cudaDevAttrMaxThreadsPerMultiProcessor ? 2048
                                                            : 0;
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  const char* env = std::getenv("LESDE_CUDA_EMULATOR_MEMORY");
  *total_bytes = env ? size_t(std::strtoull(env, nullptr, 10)) : (size_t(2) << 30);
  *free_bytes = *total_bytes;
  return cudaSuccess;
}
template <class F>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, F) {
  *attr = cudaFuncAttributes{};
  return cudaSuccess;
}
// Device allocations (start -> bytes): copies are checked against them, so a copy in the
// wrong direction or past the end of an allocation aborts as it would fault on a GPU.
inline std::map<const char*, size_t>& allocations() {
  static std::map<const char*, size_t> a;
  return a;
}
inline bool on_device(const void* ptr, size_t bytes) {
  const char* p = static_cast<const char*>(ptr);
  auto it = allocations().upper_bound(p);
  if (it == allocations().begin()) return false;
  --it;
  return p >= it->first && p + bytes <= it->first + it->second;
}

inline cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  *ptr = std::malloc(bytes);
  if (*ptr == nullptr) return cudaErrorMemoryAllocation;
  std::memset(*ptr, 0xFF, bytes);  // NaN: what nobody wrote must not be read
  allocations()[static_cast<const char*>(*ptr)] = bytes;
  return cudaSuccess;
}
inline cudaError_t cudaFree(void* ptr) {
  allocations().erase(static_cast<const char*>(ptr));
  std::free(ptr);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t) {
  const bool ok = kind == cudaMemcpyHostToDevice ? on_device(dst, bytes) && !on_device(src, 1)
                                                 : on_device(src, bytes) && !on_device(dst, 1);
  if (!ok) {
    std::fprintf(stderr,
                 "lesde CUDA emulator: cudaMemcpyAsync of %zu bytes: wrong direction "
                 "or past the end of a device allocation\n",
                 bytes);
    std::abort();
  }
  if (bytes) std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
constexpr unsigned cudaHostRegisterDefault = 0;
inline cudaError_t cudaHostRegister(void*, size_t, unsigned) { return cudaSuccess; }
inline cudaError_t cudaHostUnregister(void*) { return cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = nullptr;
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

// kernel<<<grid, block>>>(args): every warp of every CTA in turn, its lanes as coroutines.
// One launch at a time in the process (the warp and the built-in variables are shared).
template <class Args>
void launch(void (*kernel)(Args), unsigned grid, unsigned block, cudaStream_t, const Args& args,
            size_t shared = 0) {
  static std::mutex one_at_a_time;
  const std::lock_guard<std::mutex> lock(one_at_a_time);
  shared_buffer().assign(shared + 16, 0xFF);
  gridDim = {grid, 1, 1};
  blockDim = {block, 1, 1};
  for (unsigned b = 0; b < grid; ++b) {
    blockIdx = {b, 0, 0};
    for (unsigned w = 0; w < block / 32; ++w) Warp::get().run(w * 32, [&] { kernel(args); });
  }
}

}  // namespace lesde::cuda::emulated
