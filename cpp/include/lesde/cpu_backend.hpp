// The CPU backend: the sweeps of integrators.hpp over the caller's host arrays, with OpenMP.
//
// A sweep is fused and tiled: each tile of kTile samples is read and written once, its noise
// drawn just before it is used, its signals added to the partial sums of its fixed block
// (reduce.hpp); the block partials are then added by the fixed tree of reduce.hpp. The result
// is therefore the same on any number of threads (and ranks). With many small replicas the driver runs replicas in parallel
// (one thread each) instead of the samples of one replica.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "integrators.hpp"
#include "kernels.hpp"
#include "metrics.hpp"
#include "model.hpp"
#include "reduce.hpp"
#include "rng.hpp"
#include "sample.hpp"
#include "signals.hpp"
#include "state.hpp"

namespace lesde {

template <class Real>
class CpuBackend {
 public:
  // false: every replica advances on its own (the driver runs them one after another, or in
  // parallel when replica_parallel()); a GPU backend instead moves all replicas in one launch.
  static constexpr bool kLockStep = false;

  CpuBackend(const EngineConfig& cfg, StateView<Real> state) : cfg_(cfg), state_(state) {
    const Shard shard = cfg.shard();
    const int64_t N = shard.local_samples();
    // Many small replicas: parallel over replicas; otherwise over samples. (A sharded run
    // exchanges sums collectively, in one order: replicas one by one.)
    replica_parallel_ = cfg.replicas > 1 && !cfg.exchange &&
                        (cfg.process == Process::SGD || N * cfg.p < 200000);
    // Never more threads than blocks: tiny runs stay serial instead of paying for a team.
    sample_threads_ = replica_parallel_ ? 1
                                        : int(std::max<int64_t>(
                                              1, std::min<int64_t>(cfg.threads,
                                                                   shard.last - shard.first)));
  }

  bool replica_parallel() const { return replica_parallel_; }
  int sample_threads() const { return sample_threads_; }  // per replica, for host loops

  // The state is the caller's host arrays: nothing to copy either way.
  void to_host() {}
  void from_host() {}

  // Labels (with label noise) and features at t = 0 of the listed replicas.
  void draw_initial_state(const std::vector<int32_t>& replicas) {
    for (int32_t r : replicas) draw_initial_state(uint32_t(r));
  }

  // Runs `sweep` over the listed replicas and writes each one's class sums of g(x, y) at the
  // new state into *sums[j] (K x p), and with sweep.record its record's pass-1 totals into
  // *first[j] (metrics.hpp).
  void sweep(const Sweep& sweep, const std::vector<int32_t>& replicas,
             const std::vector<std::vector<double>*>& sums,
             const std::vector<std::vector<double>*>& first) {
    const size_t Kp = size_t(cfg_.K) * cfg_.p;
    for (size_t j = 0; j < replicas.size(); ++j)
      sweep_replica(sweep, uint32_t(replicas[j]), sweep.coef.data() + j * Kp, *sums[j],
                    sweep.record ? first[j] : nullptr);
  }

  // A record's pass 2 (metrics.hpp) for the listed replicas: means (K x p) and counts (K) of
  // their labels, one after another in list order; *second[j] gets the totals.
  void second_moments(const std::vector<int32_t>& replicas, const std::vector<double>& means,
                      const std::vector<double>& counts,
                      const std::vector<std::vector<double>*>& second) {
    const size_t Kp = size_t(cfg_.K) * cfg_.p;
    for (size_t j = 0; j < replicas.size(); ++j) {
      const uint32_t r = uint32_t(replicas[j]);
      second[j]->assign(size_t(RecordLayout(cfg_).second_width()), 0.0);
      host_second_moments(cfg_, features(r), labels(r), means.data() + j * Kp,
                          counts.data() + j * cfg_.K, sample_threads_, second[j]->data());
    }
  }

  // The trajectories' rows: features of the listed samples (global indices) of replica r.
  void copy_samples(int32_t r, const std::vector<int64_t>& samples, double* out) const {
    const Real* X = features(uint32_t(r));
    for (size_t s = 0; s < samples.size(); ++s)
      for (int q = 0; q < cfg_.p; ++q) out[s * cfg_.p + q] = double(X[samples[s] * cfg_.p + q]);
  }

 private:
  const EngineConfig& cfg_;
  StateView<Real> state_;
  bool replica_parallel_ = false;
  int sample_threads_ = 1;

  Real* features(uint32_t r) const {
    return state_.features + int64_t(r) * cfg_.shard().local_samples() * cfg_.p;
  }
  int32_t* labels(uint32_t r) const {
    return state_.labels + int64_t(r) * cfg_.shard().local_samples();
  }

  void draw_initial_state(uint32_t r) {
    const int K = cfg_.K, p = cfg_.p;
    const Shard shard = cfg_.shard();
    const Blocks& blocks = shard.blocks;
    const int64_t off = shard.offset();  // arrays are local: sample i sits at i - off
    const Stream init(cfg_.seed, Purpose::Init, r);
    const Stream label_stream(cfg_.seed, Purpose::Labels, r);
    const double* means = cfg_.init_means.empty() ? nullptr : cfg_.init_means.data();
    Real* X = features(r);
    int32_t* y = labels(r);
    double* noise_var = state_.noise_var ? state_.noise_var + int64_t(r) * shard.local_samples()
                                         : nullptr;
#pragma omp parallel for num_threads(sample_threads_) schedule(static) if (sample_threads_ > 1)
    for (int64_t b = shard.first; b < shard.last; ++b) {
      std::vector<double> z(kTile * p);
      for (int64_t i0 = blocks.begin(b); i0 < blocks.end(b); i0 += kTile) {
        const int64_t n = std::min(kTile, blocks.end(b) - i0);
        fill_normals(init, 0u, uint64_t(i0) * p, n * p, z.data());
        for (int64_t i = i0; i < i0 + n; ++i) {  // i global, li local
          const int64_t li = i - off;
          const int c = state_.classes[li];
          y[li] = initial_label(label_stream, i, c, K, cfg_.label_noise);
          initial_features(p, means, cfg_.init_scale, c, z.data() + (i - i0) * p, X + li * p);
          if (noise_var) noise_var[li] = 0.0;
        }
      }
    }
  }

  void sweep_replica(const Sweep& sweep, uint32_t r, const double* coef, std::vector<double>& sums,
                     std::vector<double>* first) {
    const int K = cfg_.K, p = cfg_.p;
    const Shard shard = cfg_.shard();
    const Blocks& blocks = shard.blocks;
    const int64_t off = shard.offset();
    const SignalSpec spec = SignalSpec::from(cfg_);
    const Stream noise(cfg_.noise_seed, noise_purpose(cfg_.noise), r);
    // No noise is drawn where its scale is zero (sigma(t) = 0: the LE-ODE, fitted replays).
    const bool draws = sweep.move == Move::Drift && sweep.noise_scale != 0.0;
    Real* X = features(r);
    const int32_t* y = labels(r);
    const int32_t* classes = state_.classes;
    const int64_t Kp = int64_t(K) * p;
    const int64_t rec_width = first ? RecordLayout(cfg_).first_width() : 0;
    // One reduction for both: the class sums, then the record's pass-1 totals.
    std::vector<double> total(size_t(Kp + rec_width));
    reduce_blocks(shard, cfg_.exchange, Kp + rec_width, sample_threads_, total.data(), [&] {
      return [&, tile = TileScratch<Real>(K, p),
              rec = first ? std::make_unique<RecordScratch>(K, p) : nullptr](
                 int64_t b, double* acc) mutable {
        for (int64_t i0 = blocks.begin(b); i0 < blocks.end(b); i0 += kTile) {
          const int64_t n = std::min(kTile, blocks.end(b) - i0), li = i0 - off;
          Real* Xt = X + li * p;
          if (draws)
            fill_increments(cfg_.noise, noise, sweep.step, uint64_t(i0) * p, n * p,
                            tile.xi.data());
          move_tile(sweep.move, p, coef, classes + li, n, sweep.dt, sweep.noise_scale,
                    draws ? tile.xi.data() : nullptr, Xt, tile);
          const double* lse = add_signal_tile(spec, Xt, y + li, classes + li, n, tile, acc);
          if (rec)  // the tile is in cache: its record costs no memory traffic
            add_first_moments_tile(spec, Xt, y + li, classes + li, n, lse, *rec, acc + Kp);
        }
      };
    });
    std::copy(total.begin(), total.begin() + Kp, sums.begin());
    if (first) first->assign(total.begin() + Kp, total.end());
  }
};

}  // namespace lesde
