// Binds Simulation<float> and Simulation<double> (buffer checks: engine_binding.hpp).
#include "engine_binding.hpp"
#include "lesde/simulation.hpp"
#include "register.hpp"

namespace py = pybind11;

namespace lesde::bindings {

void register_simulation(py::module_& m) {
  m.attr("NUM_SCALARS") = int(kNumScalars);
  bind_engine<Simulation<double>, double>(m, "Simulation64", "The CPU engine, float64 state.");
  bind_engine<Simulation<float>, float>(m, "Simulation32", "The CPU engine, float32 state.");
}

}  // namespace lesde::bindings
