// The CUDA backend (cpp/cuda, docs/cuda.md), for each platform built in:
// - LESDE_WITH_CUDA: a real GPU. CudaSimulation64/32 (the Simulation64/32 signature) and the
//   device queries. Importing never needs a GPU or a CUDA driver: the runtime is linked
//   statically and loads the driver at the first device call.
// - LESDE_WITH_CUDA_EMULATOR: the same kernels on host threads (test-only, slow):
//   CudaEmulatorSimulation64/32, so the backend is tested on machines without a GPU.
#include "register.hpp"

#if defined(LESDE_WITH_CUDA) || defined(LESDE_WITH_CUDA_EMULATOR)
#include "cuda_backend.hpp"
#include "engine_binding.hpp"
#endif

namespace py = pybind11;

namespace lesde::bindings {

#if defined(LESDE_WITH_CUDA) || defined(LESDE_WITH_CUDA_EMULATOR)
template <cuda::Platform P>
static void bind_platform(py::module_& m, const std::string& prefix, const char* what) {
  m.def(
      (prefix + "_device_count").c_str(), [] { return cuda::device_count<P>(); },
      (std::string("Number of usable devices of the ") + what + " (0 without one). Never raises.")
          .c_str());
  m.def(
      (prefix + "_device_info").c_str(),
      [] {
        const cuda::DeviceInfo d = cuda::device_info<P>();
        py::dict info;
        info["index"] = d.index;
        info["name"] = d.name;
        info["compute_capability"] =
            std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor);
        info["multiprocessors"] = d.multiprocessors;
        info["total_memory"] = d.total_memory;
        info["free_memory"] = d.free_memory;
        info["memory_clock_khz"] = d.memory_clock_khz;
        info["bus_width_bits"] = d.bus_width_bits;
        info["peak_bandwidth"] = d.peak_bandwidth;
        return info;
      },
      "The current device: name, memory (bytes), peak memory bandwidth (bytes/s).");
}
#endif

// The backend registry: every backend this build has, its engine classes' prefix
// (<engine>64 / <engine>32 in this module), whether it can run here and, if not, why. The one
// list the Python layer (lesde.engine) and the tests (tests/backends.py) read. The emulator is
// listed only where it is built (CMake LESDE_CUDA_EMULATOR: the dev and CI builds, never a
// release wheel), marked test_only.
static py::list backends() {
  py::list out;
  auto add = [&out](const char* name, const char* engine, bool built, int devices, bool test_only,
                    const char* reason) {
    py::dict d;
    d["name"] = name;
    d["engine"] = engine;
    d["built"] = built;
    d["devices"] = devices;
    d["available"] = built && devices > 0;
    d["test_only"] = test_only;
    d["reason"] = built && devices > 0 ? "" : reason;  // why it cannot run here
    out.append(d);
  };
  add("cpu", "Simulation", true, 1, false, "");
#ifdef LESDE_WITH_CUDA
  add("cuda", "CudaSimulation", true, cuda::device_count<cuda::Platform::Gpu>(), false,
      "a GPU is not visible");
#else
  add("cuda", "CudaSimulation", false, 0, false,
      "this lesde was built without CUDA (see docs/cuda.md)");
#endif
#ifdef LESDE_WITH_CUDA_EMULATOR
  add("cuda_emulator", "CudaEmulatorSimulation", true,
      cuda::device_count<cuda::Platform::Emulator>(), true, "");
#endif
  return out;
}

void register_cuda(py::module_& m) {
  m.def("backends", &backends,
        "The backends of this build (name, engine class prefix, built, devices, available, "
        "test_only, reason: why it cannot run here). The CUDA emulator only where built.");
  m.attr("CUDA_MAX_DIM") = 64;
#ifdef LESDE_WITH_CUDA
  static_assert(cuda::kMaxDim == 64, "CUDA_MAX_DIM above");
  bind_platform<cuda::Platform::Gpu>(m, "cuda", "CUDA backend (GPUs)");
  bind_engine<CudaSimulation<double, cuda::Platform::Gpu>, double>(
      m, "CudaSimulation64", "The engine with its SDE sweeps on the GPU, float64 state.");
  bind_engine<CudaSimulation<float, cuda::Platform::Gpu>, float>(
      m, "CudaSimulation32", "The engine with its SDE sweeps on the GPU, float32 state.");
#else
  m.def(
      "cuda_device_count", [] { return 0; },
      "Number of usable CUDA devices: always 0 (this build has no CUDA backend).");
#endif
#ifdef LESDE_WITH_CUDA_EMULATOR
  bind_platform<cuda::Platform::Emulator>(m, "cuda_emulator", "CUDA emulator (host threads)");
  bind_engine<CudaSimulation<double, cuda::Platform::Emulator>, double>(
      m, "CudaEmulatorSimulation64",
      "Test-only: the CUDA backend's kernels emulated on the host, float64 state (slow).");
  bind_engine<CudaSimulation<float, cuda::Platform::Emulator>, float>(
      m, "CudaEmulatorSimulation32",
      "Test-only: the CUDA backend's kernels emulated on the host, float32 state (slow).");
#endif
}

}  // namespace lesde::bindings
