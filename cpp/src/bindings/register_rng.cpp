// The random streams, exposed so tests can check them against independent references.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <array>
#include <string>

#include "lesde/rng.hpp"
#include "lesde/rng_fill.hpp"
#include "register.hpp"

namespace py = pybind11;

namespace lesde::bindings {

void register_rng(py::module_& m) {
  m.attr("RANDOM_STREAM_VERSION") = kRandomStreamVersion;
  py::enum_<Purpose>(m, "Purpose")
      .value("init", Purpose::Init)
      .value("noise", Purpose::Noise)
      .value("labels", Purpose::Labels)
      .value("batch", Purpose::Batch)
      .value("noise_two_point", Purpose::NoiseTwoPoint)
      .value("noise_three_point", Purpose::NoiseThreePoint);

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
  m.def(
      "increments",
      [](NoiseKind kind, uint64_t seed, uint32_t replica, uint32_t step, uint64_t first,
         int64_t count, const std::string& path, const std::string& dtype) {
        // path: "scalar" (increments_at, as a GPU thread), "simd" (the CPU's fill, on the
        // fastest Philox this CPU has), "portable" (the fill on the portable Philox).
        if (path != "scalar" && path != "simd" && path != "portable")
          throw py::value_error("path must be 'scalar', 'simd' or 'portable'");
        const Stream s(seed, noise_purpose(kind), replica);
        auto run = [&](auto* out) {
          if (path == "scalar")
            increments_at(kind, s, step, first, count, out);
          else
            fill_increments(kind, s, step, first, count, out, path == "simd");
        };
        if (dtype == "float32") {
          py::array_t<float> out(count);
          run(out.mutable_data());
          return py::array(out);
        }
        if (dtype != "float64") throw py::value_error("dtype must be 'float64' or 'float32'");
        py::array_t<double> out(count);
        run(out.mutable_data());
        return py::array(out);
      },
      py::arg("kind"), py::arg("seed"), py::arg("replica"), py::arg("step"), py::arg("first"),
      py::arg("count"), py::arg("path") = "simd", py::arg("dtype") = "float64",
      "Noise increments number first .. first + count - 1 of the Noise stream of `kind`.");
}

}  // namespace lesde::bindings
