// The random streams, exposed so tests can check them against independent references.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <array>
#include <map>
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
        // path: "scalar" (increments_at, as a GPU thread), or the CPU's fill on "simd" (the
        // best instruction set this CPU has), "avx512", "avx2" or "portable" (one asked for;
        // fill_paths() lists those this CPU has).
        const std::map<std::string, FillPath> fills{{"simd", FillPath::Best},
                                                    {"avx512", FillPath::Avx512},
                                                    {"avx2", FillPath::Avx2},
                                                    {"portable", FillPath::Portable}};
        if (path != "scalar" && !fills.count(path))
          throw py::value_error("path must be 'scalar', 'simd', 'avx512', 'avx2' or 'portable'");
        const Stream s(seed, noise_purpose(kind), replica);
        auto run = [&](auto* out) {
          if (path == "scalar")
            increments_at(kind, s, step, first, count, out);
          else
            fill_increments(kind, s, step, first, count, out, fills.at(path));
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
  m.def(
      "fill_increments",
      [](NoiseKind kind, uint64_t seed, uint32_t replica, uint32_t step, uint64_t first,
         py::array out) {
        // The CPU fill into an existing array (no allocation, the GIL released): what the
        // benchmarks time.
        if (!(out.flags() & py::array::c_style) || !out.writeable())
          throw py::value_error("out must be a writeable C-contiguous array");
        const Stream s(seed, noise_purpose(kind), replica);
        const int64_t count = int64_t(out.size());
        if (out.dtype().is(py::dtype::of<double>())) {
          double* data = static_cast<double*>(out.mutable_data());
          py::gil_scoped_release release;
          fill_increments(kind, s, step, first, count, data);
        } else if (out.dtype().is(py::dtype::of<float>())) {
          float* data = static_cast<float*>(out.mutable_data());
          py::gil_scoped_release release;
          fill_increments(kind, s, step, first, count, data);
        } else {
          throw py::value_error("out must be float64 or float32");
        }
      },
      py::arg("kind"), py::arg("seed"), py::arg("replica"), py::arg("step"), py::arg("first"),
      py::arg("out"),
      "Fills `out` with increments number first .. first + out.size - 1 of the Noise stream "
      "of `kind` (the CPU's fill on its best instruction set).");
  m.def(
      "fill_paths",
      [] {
        std::vector<std::string> paths;
        const FillPath best = best_fill_path();
        if (best == FillPath::Avx512) paths.push_back("avx512");
        if (int(best) <= int(FillPath::Avx2)) paths.push_back("avx2");
        paths.push_back("portable");
        return paths;
      },
      "The instruction sets the CPU fill of random numbers can run on here, best first.");
  m.def(
      "ziggurat_normals",
      [](uint64_t seed, Purpose purpose, uint32_t replica, uint32_t step,
         py::array_t<uint64_t, py::array::c_style> index,
         py::array_t<uint32_t, py::array::c_style> word) {
        if (index.size() != word.size())
          throw py::value_error("index and word must have the same length");
        const Stream s(seed, purpose, replica);
        py::array_t<double> out(index.size());
        const uint64_t* n = index.data();
        const uint32_t* w = word.data();
        double* z = out.mutable_data();
        for (py::ssize_t i = 0; i < index.size(); ++i) z[i] = ziggurat::normal(s, step, n[i], w[i]);
        return out;
      },
      py::arg("seed"), py::arg("purpose"), py::arg("replica"), py::arg("step"), py::arg("index"),
      py::arg("word"),
      "The ziggurat's normal for given words as normals number `index` of a stream at a step "
      "(the tests choose words that take the wedge or the tail).");
  m.def(
      "ziggurat_tables",
      [] {
        using namespace ziggurat;
        py::dict t;
        t["r"] = kR;
        t["layer_bits"] = kLayerBits;
        t["width"] = std::vector<double>(kWidth, kWidth + kLayers);
        t["accept"] = std::vector<uint32_t>(kAccept, kAccept + kLayers);
        t["height"] = std::vector<double>(kHeight, kHeight + kLayers + 1);
        t["retry_tag"] = kRetryTag;
        return t;
      },
      "The Gaussian ziggurat's tables (tools/ziggurat_tables.py makes them).");
}

}  // namespace lesde::bindings
