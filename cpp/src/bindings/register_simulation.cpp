// Binds Simulation<float> and Simulation<double> (buffer checks: engine_binding.hpp).
#include <pybind11/stl.h>

#include "engine_binding.hpp"
#include "lesde/record.hpp"
#include "lesde/simulation.hpp"
#include "register.hpp"

namespace py = pybind11;

namespace lesde::bindings {

void register_simulation(py::module_& m) {
  m.attr("NUM_SCALARS") = int(kNumScalars);
  m.def(
      "scalar_metrics",
      [] {
        py::list out;
        for (const ScalarInfo& s : kScalars) {
          py::dict d;
          d["name"] = s.name;
          d["index"] = int(s.index);  // its column of the records' scalars array
          d["pass"] = s.pass;
          d["needs"] = s.needs;
          out.append(d);
        }
        return out;
      },
      "The scalar metrics a record holds, in column order (record.hpp kScalars): name, index, "
      "the record pass that adds it up, and what it needs ('logits': NaN without them).");
  bind_engine<Simulation<double>, double>(m, "Simulation64", "The CPU engine, float64 state.");
  bind_engine<Simulation<float>, float>(m, "Simulation32", "The CPU engine, float32 state.");
}

}  // namespace lesde::bindings
