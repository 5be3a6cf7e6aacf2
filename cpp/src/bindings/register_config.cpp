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
      .def_readwrite("rank_blocks", &EngineConfig::rank_blocks)
      // exchange(local, global, counts): a Python callable that fills `global` with every
      // rank's reduction nodes, rank after rank (rank r sends counts[r] numbers), from this
      // rank's `local` ones, e.g. with MPI Allgatherv. It is called with the GIL taken back,
      // on NumPy views of the C++ buffers (no copy).
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
            c.exchange = [holder](const double* local, int64_t nl, double* global,
                                  const std::vector<int64_t>& counts) {
              py::gil_scoped_acquire gil;
              int64_t ng = 0;
              for (int64_t n : counts) ng += n;
              py::array_t<double> lv(nl, local, py::none());
              py::array_t<double> gv(ng, global, py::none());
              (*holder)(lv, gv, py::cast(counts));
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
  m.attr("REDUCTION_ORDER_VERSION") = kReductionOrderVersion;
  m.attr("REDUCTION_LINEAR_BLOCKS") = Blocks::kLinearBlocks;  // orders 1 and 2 agree up to it
  m.def(
      "reduction_nodes",
      [](int64_t n_samples, int64_t first, int64_t last) {
        const Blocks b(n_samples);
        if (first < 0 || first > last || last > b.count)
          throw py::value_error("reduction_nodes: the blocks must be a range within the run");
        return b.nodes(first, last);
      },
      py::arg("n_samples"), py::arg("first"), py::arg("last"),
      "How many reduction-tree nodes (partial sums per number summed) a rank owning blocks "
      "[first, last) sends in each exchange of a sharded run.");
  m.def(
      "reduce_partials",
      [](int64_t n_samples, py::array_t<double, py::array::c_style | py::array::forcecast> blocks,
         std::vector<int64_t> rank_blocks, int threads) {
        // The sums of a sharded run made in one process: each rank's part of the tree from
        // its blocks' partials, the parts "exchanged" by concatenation, and combine_blocks.
        const Blocks b(n_samples);
        if (blocks.ndim() != 2 || blocks.shape(0) != b.count)
          throw py::value_error("reduce_partials: blocks must be (block count, width)");
        if (rank_blocks.empty()) rank_blocks = {0, b.count};
        if (rank_blocks.size() < 2 || rank_blocks.front() != 0 || rank_blocks.back() != b.count ||
            !std::is_sorted(rank_blocks.begin(), rank_blocks.end()) || threads < 1)
          throw py::value_error("reduce_partials: rank_blocks must split [0, block count)");
        const int64_t width = blocks.shape(1);
        const double* data = blocks.data();
        const size_t ranks = rank_blocks.size() - 1;
        std::vector<std::vector<double>> sent(ranks);
        auto exchange = [&](const double* local, int64_t nl, double* global,
                            const std::vector<int64_t>& counts) {
          for (size_t r = 0; r < ranks; ++r) {
            if (int64_t(sent[r].size()) != counts[r])
              throw std::logic_error("reduce_partials: a rank sent other than its count");
            std::copy(sent[r].begin(), sent[r].end(), global);
            global += counts[r];
          }
          (void)local, (void)nl;
        };
        py::array_t<double> out(std::vector<py::ssize_t>{py::ssize_t(ranks), py::ssize_t(width)});
        double* o = out.mutable_data();
        py::gil_scoped_release release;
        std::vector<TreeSum> parts;
        for (size_t r = 0; r < ranks; ++r) {  // each rank's part, as reduce_blocks makes it
          const int64_t first = rank_blocks[r], owned = rank_blocks[r + 1] - first;
          const int64_t T = std::max<int64_t>(1, std::min<int64_t>(threads, owned));
          parts.emplace_back(b, width);
          for (int64_t t = 0; t < T; ++t) {
            TreeSum piece(b, width);
            for (int64_t k = first + t * owned / T; k < first + (t + 1) * owned / T; ++k)
              piece.push_leaf(k, data + k * width);
            parts[r].append(piece);
          }
          sent[r].assign(parts[r].values(), parts[r].values() + parts[r].size() * width);
        }
        for (size_t r = 0; r < ranks; ++r) {  // every rank combines what all sent
          const Shard s{b, rank_blocks[r], rank_blocks[r + 1], &rank_blocks};
          combine_blocks(s, ranks > 1 ? Exchange(exchange) : Exchange(), parts[r], o + r * width);
        }
        return out;
      },
      py::arg("n_samples"), py::arg("blocks"), py::arg("rank_blocks") = std::vector<int64_t>{},
      py::arg("threads") = 1,
      "Test aid: the totals of per-block partial sums (block count x width) as a run sharded "
      "over ranks owning blocks rank_blocks[r]..rank_blocks[r + 1] combines them, one row per "
      "rank; the exchange is in-process (threads: each rank's thread count).");
}

}  // namespace lesde::bindings
