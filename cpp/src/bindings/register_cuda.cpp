// The optional CUDA backend (cpp/cuda, docs/cuda.md). Built with LESDE_WITH_CUDA it binds
// CudaSimulation64/32 (the Simulation64/32 signature) and the device queries; otherwise
// only cuda_device_count(), which is 0. Importing never needs a GPU or a CUDA driver: the
// runtime is linked statically and loads the driver at the first device call.
#include "register.hpp"

#ifdef LESDE_WITH_CUDA
#include "cuda_simulation.hpp"
#include "engine_binding.hpp"
#endif

namespace py = pybind11;

namespace lesde::bindings {

void register_cuda(py::module_& m) {
#ifdef LESDE_WITH_CUDA
  m.def(
      "cuda_device_count", [] { return cuda::device_count(); },
      "Number of usable CUDA devices (0 without a driver or a device). Never raises.");
  m.def(
      "cuda_device_info",
      [] {
        const cuda::DeviceInfo d = cuda::device_info();
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
      "The current CUDA device: name, memory (bytes), peak memory bandwidth (bytes/s).");
  m.attr("CUDA_MAX_DIM") = cuda::kMaxDim;
  bind_engine<CudaSimulation<double>, double>(
      m, "CudaSimulation64", "The engine with its SDE sweeps on the GPU, float64 state.");
  bind_engine<CudaSimulation<float>, float>(
      m, "CudaSimulation32", "The engine with its SDE sweeps on the GPU, float32 state.");
#else
  m.def(
      "cuda_device_count", [] { return 0; },
      "Number of usable CUDA devices: always 0 (this build has no CUDA backend).");
#endif
}

}  // namespace lesde::bindings
