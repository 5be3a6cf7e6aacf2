#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>

#include "lesde/integrators.hpp"
#include "lesde/model.hpp"
#include "register.hpp"

namespace py = pybind11;

namespace lesde::bindings {

void register_config(py::module_& m) {
  py::enum_<ScheduleKind>(m, "ScheduleKind")
      .value("constant", ScheduleKind::Constant)
      .value("power_law", ScheduleKind::PowerLaw)
      .value("exponential", ScheduleKind::Exponential)
      .value("tabulated", ScheduleKind::Tabulated);
  py::enum_<Signal>(m, "Signal")
      .value("linear", Signal::Linear)
      .value("projected", Signal::Projected)
      .value("cross_entropy", Signal::CrossEntropy);
  py::enum_<Process>(m, "Process").value("sde", Process::SDE).value("sgd", Process::SGD);
  py::enum_<NoiseKind>(m, "NoiseKind")
      .value("gaussian", NoiseKind::Gaussian)
      .value("two_point", NoiseKind::TwoPoint)
      .value("three_point", NoiseKind::ThreePoint);
  py::enum_<Scheme>(m, "Scheme")
      .value("euler_maruyama", Scheme::EulerMaruyama)
      .value("heun", Scheme::Heun);

  py::class_<Schedule>(m, "Schedule")
      .def(py::init<>())
      .def_readwrite("kind", &Schedule::kind)
      .def_readwrite("a0", &Schedule::a0)
      .def_readwrite("tau", &Schedule::tau)
      .def_readwrite("gamma", &Schedule::gamma)
      .def_readwrite("times", &Schedule::times)
      .def_readwrite("values", &Schedule::values)
      .def("__call__", &Schedule::operator(), py::arg("t"));

  py::class_<EngineConfig>(m, "EngineConfig")
      .def(py::init<>())
      .def_readwrite("K", &EngineConfig::K)
      .def_readwrite("p", &EngineConfig::p)
      .def_readwrite("class_sizes", &EngineConfig::class_sizes)
      .def_readwrite("signal", &EngineConfig::signal)
      .def_readwrite("head", &EngineConfig::head)
      .def_readwrite("full_impact", &EngineConfig::full_impact)
      .def_readwrite("impact", &EngineConfig::impact)
      .def_readwrite("alpha", &EngineConfig::alpha)
      .def_readwrite("beta", &EngineConfig::beta)
      .def_readwrite("sigma", &EngineConfig::sigma)
      .def_readwrite("noise", &EngineConfig::noise)
      .def_readwrite("label_noise", &EngineConfig::label_noise)
      .def_readwrite("init_scale", &EngineConfig::init_scale)
      .def_readwrite("init_means", &EngineConfig::init_means)
      .def_readwrite("process", &EngineConfig::process)
      .def_readwrite("scheme", &EngineConfig::scheme)
      .def_readwrite("dt", &EngineConfig::dt)
      .def_readwrite("n_steps", &EngineConfig::n_steps)
      .def_readwrite("batch_size", &EngineConfig::batch_size)
      .def_readwrite("replicas", &EngineConfig::replicas)
      .def_readwrite("seed", &EngineConfig::seed)
      .def_readwrite("noise_seed", &EngineConfig::noise_seed)
      .def_readwrite("threads", &EngineConfig::threads)
      .def_readwrite("record_steps", &EngineConfig::record_steps)
      .def_readwrite("record_samples", &EngineConfig::record_samples)
      .def_readwrite("first_block", &EngineConfig::first_block)
      .def_readwrite("last_block", &EngineConfig::last_block)
      // exchange(local, global): a Python callable that fills `global` (all blocks' partial
      // sums in block order) from this rank's `local` ones, e.g. with MPI Allgatherv. It
      // is called with the GIL taken back, on NumPy views of the C++ buffers (no copy).
      .def_property(
          "exchange", [](const EngineConfig& c) { return bool(c.exchange); },
          [](EngineConfig& c, py::object fn) {
            if (fn.is_none()) {
              c.exchange = nullptr;
              return;
            }
            // Shared ownership of the callable; it is released with the GIL held.
            auto holder = std::shared_ptr<py::object>(new py::object(fn), [](py::object* o) {
              py::gil_scoped_acquire gil;
              delete o;
            });
            c.exchange = [holder](const double* local, int64_t nl, double* global, int64_t ng) {
              py::gil_scoped_acquire gil;
              py::array_t<double> lv(nl, local, py::none());
              py::array_t<double> gv(ng, global, py::none());
              (*holder)(lv, gv);
            };
          })
      .def("check", &EngineConfig::check);
  m.def(
      "schemes",
      [] {
        py::list out;
        for (const SchemeInfo& s : kSchemes) {
          py::dict d;
          d["name"] = s.name;
          d["sweeps"] = s.sweeps;
          d["ode_order"] = s.ode_order;
          d["strong_order"] = s.strong_order;
          d["weak_order"] = s.weak_order;
          out.append(d);
        }
        return out;
      },
      "Each SDE scheme and its declared orders (integrators.hpp kSchemes): the tests check them.");
  m.def(
      "noise_kinds",
      [] {
        py::list out;
        for (const NoiseInfo& n : kNoiseKinds) {
          py::dict d;
          d["name"] = n.name;
          d["weak_order"] = n.weak_order;  // 0: no limit
          out.append(d);
        }
        return out;
      },
      "Each noise kind and the weak order its increments allow (rng.hpp kNoiseKinds).");
  m.def(
      "block_layout",
      [](int64_t n_samples) {
        const Blocks b(n_samples);
        return py::make_tuple(b.count, b.size);
      },
      py::arg("n_samples"), "(count, size) of the fixed reduction blocks of a run of N samples.");
}

}  // namespace lesde::bindings
