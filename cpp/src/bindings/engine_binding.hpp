// How an engine (Simulation<Real>, CudaSimulation<Real>: same constructor, same methods)
// is bound: the caller passes NumPy arrays that the C++ side writes into (no copies); the
// wrapper checks them once and keeps them alive for the run. One definition, so every
// backend validates its buffers identically.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>

#include "lesde/model.hpp"
#include "lesde/record.hpp"  // kNumScalars
#include "lesde/state.hpp"

namespace lesde::bindings {

// A pointer into `arr` after checking dtype, layout, writability and size.
template <class T>
T* buffer(pybind11::array& arr, int64_t expected, const char* name) {
  namespace py = pybind11;
  if (!py::isinstance<py::array_t<T>>(arr) || !arr.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": wrong dtype " + std::string(py::str(arr.dtype())));
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": array must be C-contiguous");
  if (!arr.writeable()) throw py::value_error(std::string(name) + ": array must be writeable");
  if (arr.size() != expected)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(expected) +
                          " elements, got " + std::to_string(arr.size()));
  return static_cast<T*>(arr.mutable_data());
}

template <class Engine, class Real>
struct PyEngine {
  pybind11::array features, labels, classes, noise_var, class_means, label_means, sigma_w, scalars,
      samples, status, fail_step;
  std::unique_ptr<Engine> sim;

  PyEngine(const EngineConfig& cfg, pybind11::array features_, pybind11::array labels_,
           pybind11::array classes_, pybind11::object noise_var_, pybind11::array class_means_,
           pybind11::array label_means_, pybind11::array sigma_w_, pybind11::array scalars_,
           pybind11::array samples_, pybind11::array status_, pybind11::array fail_step_)
      : features(features_),
        labels(labels_),
        classes(classes_),
        class_means(class_means_),
        label_means(label_means_),
        sigma_w(sigma_w_),
        scalars(scalars_),
        samples(samples_),
        status(status_),
        fail_step(fail_step_) {
    namespace py = pybind11;
    cfg.check();
    const Shard shard = cfg.shard();  // the samples this process holds (all, unless sharded)
    const int64_t R = cfg.replicas, N = shard.local_samples(), K = cfg.K, p = cfg.p;
    const int64_t off = shard.offset();
    const int64_t T = int64_t(cfg.record_steps.size()), S = int64_t(cfg.record_samples.size());
    StateView<Real> state;
    state.features = buffer<Real>(features, R * N * p, "features");
    state.labels = buffer<int32_t>(labels, R * N, "labels");
    state.classes = buffer<int32_t>(classes, N, "classes");
    for (int64_t i = 0, c = 0, seen = 0; i < off + N; ++i) {  // sorted, matching the sizes
      while (i >= seen + cfg.class_sizes[c]) seen += cfg.class_sizes[c++];
      if (i >= off && state.classes[i - off] != c)
        throw py::value_error("classes must list each sample's class in order");
    }
    if (!noise_var_.is_none()) {
      noise_var = noise_var_.cast<py::array>();
      state.noise_var = buffer<double>(noise_var, R * N, "noise_var");
    }
    RecordView rec;
    rec.class_means = buffer<double>(class_means, R * T * K * p, "class_means");
    rec.label_means = buffer<double>(label_means, R * T * K * p, "label_means");
    rec.sigma_w = buffer<double>(sigma_w, R * T * p * p, "sigma_w");
    rec.scalars = buffer<double>(scalars, R * T * kNumScalars, "scalars");
    rec.samples = buffer<double>(samples, R * T * S * p, "samples");
    sim = std::make_unique<Engine>(cfg, state, rec, buffer<int32_t>(status, R, "status"),
                                   buffer<int64_t>(fail_step, R, "fail_step"));
  }
};

template <class Engine, class Real>
void bind_engine(pybind11::module_& m, const char* name, const char* doc) {
  namespace py = pybind11;
  using W = PyEngine<Engine, Real>;
  py::class_<W>(m, name, doc)
      .def(py::init<const EngineConfig&, py::array, py::array, py::array, py::object, py::array,
                    py::array, py::array, py::array, py::array, py::array, py::array>(),
           py::arg("config"), py::arg("features"), py::arg("labels"), py::arg("classes"),
           py::arg("noise_var"), py::arg("class_means"), py::arg("label_means"), py::arg("sigma_w"),
           py::arg("scalars"), py::arg("samples"), py::arg("status"), py::arg("fail_step"))
      // The GIL is released around the C++ work: it touches only the buffers this object
      // holds references to, never a Python object.
      .def("initialize",
           [](W& w) {
             py::gil_scoped_release release;
             w.sim->initialize();
           })
      .def(
          "resume",
          [](W& w, int64_t step) {
            py::gil_scoped_release release;
            w.sim->resume(step);
          },
          py::arg("step"))
      .def(
          "advance",
          [](W& w, int64_t until) {
            py::gil_scoped_release release;
            return w.sim->advance(until);
          },
          py::arg("until"), "Advance every running replica to step min(until, n_steps).")
      .def_property_readonly("step", [](const W& w) { return w.sim->step(); })
      .def_property_readonly("n_steps", [](const W& w) { return w.sim->n_steps(); });
}

}  // namespace lesde::bindings
