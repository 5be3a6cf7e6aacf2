#include <pybind11/stl.h>

#include <Eigen/Core>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "register.hpp"

namespace py = pybind11;

namespace lesde::bindings {

static std::string compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "gcc " __VERSION__;
#else
  return "unknown";
#endif
}

static std::vector<std::string> simd_flags() {
  std::vector<std::string> flags;
#ifdef __SSE2__
  flags.push_back("sse2");
#endif
#ifdef __AVX__
  flags.push_back("avx");
#endif
#ifdef __AVX2__
  flags.push_back("avx2");
#endif
#ifdef __FMA__
  flags.push_back("fma");
#endif
#ifdef __AVX512F__
  flags.push_back("avx512f");
#endif
#ifdef __ARM_NEON
  flags.push_back("neon");
#endif
  return flags;
}

void register_build_info(py::module_& m) {
  m.def("build_info", []() {
    py::dict info;
    info["compiler"] = compiler();
    info["cxx_standard"] = long(__cplusplus);
#ifdef _OPENMP
    info["openmp"] = true;
    info["openmp_version"] = int(_OPENMP);
    info["max_threads"] = omp_get_max_threads();
#else
    info["openmp"] = false;
    info["openmp_version"] = 0;
    info["max_threads"] = 1;
#endif
    info["simd"] = simd_flags();  // what the whole module was compiled for
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__) && \
    !defined(LESDE_NO_CLONES)
    // The hot kernels also carry an AVX2 version chosen at load time (kernels.hpp).
    info["simd_dispatch"] = __builtin_cpu_supports("avx2") ? "avx2" : "baseline";
#else
    info["simd_dispatch"] = "none";
#endif
    info["eigen_version"] = std::to_string(EIGEN_WORLD_VERSION) + "." +
                            std::to_string(EIGEN_MAJOR_VERSION) + "." +
                            std::to_string(EIGEN_MINOR_VERSION);
#ifdef LESDE_WITH_CUDA
    info["cuda_built"] = true;
#else
    info["cuda_built"] = false;
#endif
#ifdef LESDE_WITH_CUDA_EMULATOR
    info["cuda_emulator"] = true;  // the CUDA kernels on host threads, for the tests
#else
    info["cuda_emulator"] = false;
#endif
#ifdef LESDE_BUILD_TYPE
    info["build_type"] = LESDE_BUILD_TYPE;
#endif
#ifdef NDEBUG
    info["assertions"] = false;
#else
    info["assertions"] = true;
#endif
    return info;
  });
}

}  // namespace lesde::bindings
