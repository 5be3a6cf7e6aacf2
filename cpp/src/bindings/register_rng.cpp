// The random streams, exposed so tests can check them against independent references.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <array>

#include "lesde/kernels.hpp"
#include "lesde/rng.hpp"
#include "register.hpp"

namespace py = pybind11;

namespace lesde::bindings {

void register_rng(py::module_& m) {
  m.attr("RANDOM_STREAM_VERSION") = kRandomStreamVersion;
  py::enum_<Purpose>(m, "Purpose")
      .value("init", Purpose::Init)
      .value("noise", Purpose::Noise)
      .value("labels", Purpose::Labels)
      .value("batch", Purpose::Batch);

  m.def(
      "philox4x32_10",
      [](std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
        const Philox4x32 r = philox4x32_10(counter.data(), key.data());
        return std::array<uint32_t, 4>{r.v[0], r.v[1], r.v[2], r.v[3]};
      },
      py::arg("counter"), py::arg("key"), "Philox4x32-10 of one counter block (4 words).");

  m.def(
      "normals",
      [](uint64_t seed, Purpose purpose, uint32_t replica, uint32_t step, uint64_t first,
         int64_t count, bool vectorised) {
        py::array_t<double> out(count);
        const Stream s(seed, purpose, replica);
        if (vectorised)
          fill_normals(s, step, first, count, out.mutable_data());
        else
          normals_at(s, step, first, count, out.mutable_data());
        return out;
      },
      py::arg("seed"), py::arg("purpose"), py::arg("replica"), py::arg("step"), py::arg("first"),
      py::arg("count"), py::arg("vectorised") = true,
      "Standard normals number first .. first + count - 1 of one stream at one step.");
}

}  // namespace lesde::bindings
