// The compiled core of lesde. Bindings only convert and forward; the physics lives in
// cpp/include/lesde and the validation in python/lesde/config.py.
#include "register.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() = "lesde compiled core (C++17, Eigen, OpenMP)";
  lesde::bindings::register_config(m);
  lesde::bindings::register_rng(m);
  lesde::bindings::register_simulation(m);
  lesde::bindings::register_build_info(m);
  lesde::bindings::register_cuda(m);
}
