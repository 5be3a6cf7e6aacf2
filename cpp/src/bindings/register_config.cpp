#include <pybind11/stl.h>

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
      .def("check", &EngineConfig::check);
}

}  // namespace lesde::bindings
