// One register_* function per bound concept; module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace lesde::bindings {
void register_config(pybind11::module_& m);
void register_rng(pybind11::module_& m);
void register_simulation(pybind11::module_& m);
void register_build_info(pybind11::module_& m);
void register_cuda(pybind11::module_& m);
}  // namespace lesde::bindings
