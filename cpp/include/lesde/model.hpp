// The model description: classes, signal, impact matrix, noise, and how a run proceeds.
// A plain struct filled by the Python layer (which validates it first); check() repeats
// the checks that protect memory safety, so the core never trusts its caller blindly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "reduce.hpp"
#include "rng.hpp"  // NoiseKind
#include "schedule.hpp"

namespace lesde {

enum class Signal { Linear = 0, Projected = 1, CrossEntropy = 2 };
enum class Process { SDE = 0, SGD = 1 };
enum class Scheme { EulerMaruyama = 0, Heun = 1 };

struct EngineConfig {
  // --- the model (MODEL.md section 1)
  int K = 3;                         // classes
  int p = 3;                         // feature dimension
  std::vector<int64_t> class_sizes;  // n_k; samples are stored class by class
  Signal signal = Signal::CrossEntropy;
  std::vector<double> head;          // K x p row-major, empty: logits = x
  bool full_impact = false;          // true: impact (K x K, constant); false: alpha/beta
  std::vector<double> impact;
  Schedule alpha = Schedule::constant(1.0), beta = Schedule::constant(0.2);
  Schedule sigma = Schedule::constant(0.0);
  NoiseKind noise = NoiseKind::Gaussian;  // the law of the SDE's increments
  double label_noise = 0.0;
  double init_scale = 1.0;
  std::vector<double> init_means;    // K x p, empty: zeros

  // --- the run
  Process process = Process::SDE;
  Scheme scheme = Scheme::EulerMaruyama;
  double dt = 0.01;                  // SGD: learning rate eta
  int64_t n_steps = 1000;
  int64_t batch_size = 1;
  int replicas = 1;
  uint64_t seed = 0, noise_seed = 0;
  int threads = 1;
  std::vector<int64_t> record_steps;     // increasing, first 0, last n_steps
  std::vector<int64_t> record_samples;   // sample indices whose trajectories are kept

  // --- sharding one run over MPI ranks: this rank owns blocks [first_block, last_block)
  int64_t first_block = 0, last_block = -1;  // -1: all blocks
  std::vector<int64_t> rank_blocks;           // every rank's first block, then the count
  Exchange exchange;                          // gathers the ranks' tree nodes (reduce.hpp)

  int64_t n_samples() const {
    int64_t n = 0;
    for (auto s : class_sizes) n += s;
    return n;
  }
  bool has_head() const { return !head.empty(); }

  // Index of `step` among record_steps, or -1 when no record falls on it.
  int64_t record_index(int64_t step) const {
    const auto it = std::lower_bound(record_steps.begin(), record_steps.end(), step);
    return (it != record_steps.end() && *it == step) ? int64_t(it - record_steps.begin()) : -1;
  }

  Shard shard() const {
    Shard s{Blocks(n_samples())};
    s.first = first_block;
    s.last = last_block < 0 ? s.blocks.count : last_block;
    if (!rank_blocks.empty()) s.ranks = &rank_blocks;
    return s;
  }

  void check() const {
    auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
    if (K < 2) fail("n_classes must be >= 2");
    if (p < 1) fail("dim must be >= 1");
    if (int(class_sizes.size()) != K) fail("class_sizes must have n_classes entries");
    for (auto s : class_sizes)
      if (s < 1) fail("every class size must be >= 1");
    if (n_samples() >= (int64_t(1) << 31)) fail("total samples must be < 2^31");
    if (!head.empty() && head.size() != size_t(K) * p) fail("head must be K x p");
    if (signal == Signal::Projected && p != K) fail("projected signal needs dim == n_classes");
    if (signal == Signal::CrossEntropy && p != K && head.empty())
      fail("cross_entropy with dim != n_classes needs a head");
    if (full_impact && impact.size() != size_t(K) * K) fail("impact must be K x K");
    if (!init_means.empty() && init_means.size() != size_t(K) * p) fail("init_means must be K x p");
    if (!(dt > 0)) fail("dt must be > 0");
    if (n_steps < 1 || n_steps >= (int64_t(1) << 31)) fail("steps must be in [1, 2^31)");
    if (batch_size < 1) fail("batch_size must be >= 1");
    if (replicas < 1 || replicas >= (1 << 24)) fail("replicas must be in [1, 2^24)");
    if (threads < 1) fail("threads must be >= 1");
    if (!(label_noise >= 0 && label_noise <= 1)) fail("label_noise must be in [0, 1]");
    if (process == Process::SGD && noise != NoiseKind::Gaussian)
      fail("process 'sgd' draws Gaussian sample noise; noise must be 'gaussian'");
    if (record_steps.empty() || record_steps.front() != 0 || record_steps.back() != n_steps)
      fail("record_steps must start at 0 and end at n_steps");
    for (size_t i = 1; i < record_steps.size(); ++i)
      if (record_steps[i] <= record_steps[i - 1]) fail("record_steps must increase");
    for (auto i : record_samples)
      if (i < 0 || i >= n_samples()) fail("record_samples out of range");
    const Shard s = shard();
    if (s.first < 0 || s.last > s.blocks.count || s.first > s.last)
      fail("the block range of a shard must be within the run");
    if (exchange || !rank_blocks.empty()) {
      bool ok = rank_blocks.size() >= 2 && rank_blocks.front() == 0 &&
                rank_blocks.back() == s.blocks.count;
      bool mine = false;
      for (size_t r = 0; ok && r + 1 < rank_blocks.size(); ++r) {
        ok = rank_blocks[r] <= rank_blocks[r + 1];
        mine = mine || (rank_blocks[r] == s.first && rank_blocks[r + 1] == s.last);
      }
      if (!ok || !mine || !exchange)
        fail("a sharded run needs exchange and rank_blocks that split the blocks, its own "
             "range among them");
    } else if (!s.whole()) {
      fail("a run that owns part of the blocks needs exchange and rank_blocks");
    }
    if (!s.whole() && (process == Process::SGD || !record_samples.empty()))
      fail("a sharded run supports process sde without record_samples");
    alpha.check("alpha");
    beta.check("beta");
    sigma.check("sigma");
  }
};

// E(t), K x K row-major: the full matrix, or alpha(t) on the diagonal and beta(t) off it.
inline void impact_matrix(const EngineConfig& cfg, double t, double* E) {
  const int K = cfg.K;
  if (cfg.full_impact) {
    for (int i = 0; i < K * K; ++i) E[i] = cfg.impact[i];
    return;
  }
  const double a = cfg.alpha(t), b = cfg.beta(t);
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < K; ++l) E[k * K + l] = (k == l) ? a : b;
}

}  // namespace lesde
