// A run: initialisation, stepping in chunks, recording, and per-replica status.
//
// The Python layer owns every array (StateView, RecordView) and drives the run with
// advance(until) in chunks, so it can show progress, honour Ctrl-C and checkpoint
// between chunks. Replicas are independent: with many small replicas they run in
// parallel (one thread each), otherwise one after another with parallel sample loops.
// Either way each number depends only on (seed, indices), never on the layout.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "integrators.hpp"
#include "metrics.hpp"
#include "model.hpp"
#include "rng.hpp"
#include "sample.hpp"
#include "state.hpp"

namespace lesde {

template <class Real>
class Simulation {
 public:
  Simulation(EngineConfig cfg, StateView<Real> state, RecordView records, int32_t* status,
             int64_t* fail_step)
      : cfg_(std::move(cfg)), state_(state), rec_(records), status_(status), fail_step_(fail_step) {
    cfg_.check();
    if (cfg_.process == Process::SGD && state_.noise_var == nullptr)
      throw std::invalid_argument("process sgd needs the noise_var buffer");
    const int R = cfg_.replicas;
    const Shard shard = cfg_.shard();
    const int64_t N = shard.local_samples();  // this process's samples (all, unless sharded)
    // Many small replicas: parallel over replicas; otherwise over samples.
    // (A sharded run exchanges sums collectively, in one order: replicas one by one.)
    replica_parallel_ = R > 1 && !cfg_.exchange &&
                        (cfg_.process == Process::SGD || N * cfg_.p < 200000);
    // Never more threads than blocks: tiny runs stay serial instead of paying for a team.
    const int inner = replica_parallel_ ? 1 : int(std::min<int64_t>(cfg_.threads, shard.last - shard.first));
    for (int r = 0; r < R; ++r) {
      ReplicaContext<Real> ctx;
      ctx.cfg = &cfg_;
      ctx.X = state_.features + int64_t(r) * N * cfg_.p;
      ctx.labels = state_.labels + int64_t(r) * N;
      ctx.classes = state_.classes;
      ctx.noise_var = state_.noise_var ? state_.noise_var + int64_t(r) * N : nullptr;
      ctx.replica = uint32_t(r);
      ctx.threads = inner;
      ctx.sums.assign(size_t(cfg_.K) * cfg_.p, 0.0);
      replicas_.push_back(std::move(ctx));
    }
  }

  const EngineConfig& config() const { return cfg_; }
  int64_t step() const { return step_; }
  int64_t n_steps() const { return cfg_.n_steps; }

  // Draws labels and features at t = 0 and records step 0.
  void initialize() {
    for_each_replica([&](ReplicaContext<Real>& ctx) {
      draw_initial_state(ctx);
      start(ctx, 0);
    });
    step_ = 0;
  }

  // Continues from features/labels already in the buffers, which hold the state after
  // `step` steps; `step` must be a record step (where SGD offsets are folded in).
  void resume(int64_t step) {
    if (cfg_.record_index(step) < 0) throw std::invalid_argument("resume step must be a record step");
    for_each_replica([&](ReplicaContext<Real>& ctx) {
      if (status_[ctx.replica] == kRunning) start(ctx, step);
    });
    step_ = step;
  }

  // Advances every running replica to min(until, n_steps) and returns the new step.
  int64_t advance(int64_t until) {
    until = std::min(until, cfg_.n_steps);
    if (until <= step_) return step_;
    const int64_t from = step_;
    for_each_replica([&](ReplicaContext<Real>& ctx) {
      for (int64_t m = from; m < until && status_[ctx.replica] == kRunning; ++m) {
        if (!one_step(ctx, m)) {
          fail(ctx, m + 1);
          break;
        }
        const int64_t idx = cfg_.record_index(m + 1);
        if (idx >= 0 && !record(ctx, m + 1, idx)) fail(ctx, m + 1);
      }
    });
    step_ = until;
    return step_;
  }

 private:
  EngineConfig cfg_;
  StateView<Real> state_;
  RecordView rec_;
  int32_t* status_;
  int64_t* fail_step_;
  std::vector<ReplicaContext<Real>> replicas_;
  bool replica_parallel_ = false;
  int64_t step_ = 0;

  template <class F>
  void for_each_replica(F&& f) {
    const int R = cfg_.replicas;
    if (replica_parallel_) {
#pragma omp parallel for num_threads(cfg_.threads) schedule(dynamic, 1)
      for (int r = 0; r < R; ++r) f(replicas_[r]);
    } else {
      for (int r = 0; r < R; ++r) f(replicas_[r]);
    }
  }


  void fail(ReplicaContext<Real>& ctx, int64_t step) {
    status_[ctx.replica] = kNonFinite;
    fail_step_[ctx.replica] = step;
  }

  void draw_initial_state(ReplicaContext<Real>& ctx) {
    const int K = cfg_.K, p = cfg_.p;
    const Shard shard = cfg_.shard();
    const Blocks& blocks = shard.blocks;
    const int64_t off = shard.offset();
    const Stream init(cfg_.seed, Purpose::Init, ctx.replica);
    const Stream labels(cfg_.seed, Purpose::Labels, ctx.replica);
    const double* means = cfg_.init_means.empty() ? nullptr : cfg_.init_means.data();
#pragma omp parallel for num_threads(ctx.threads) schedule(static) if (ctx.threads > 1)
    for (int64_t b = shard.first; b < shard.last; ++b) {
      std::vector<double> z(kTile * p);
      for (int64_t i0 = blocks.begin(b); i0 < blocks.end(b); i0 += kTile) {
        const int64_t n = std::min(kTile, blocks.end(b) - i0);
        fill_normals(init, 0u, uint64_t(i0) * p, n * p, z.data());
        for (int64_t i = i0; i < i0 + n; ++i) {  // i global, li local
          const int64_t li = i - off;
          const int c = ctx.classes[li];
          ctx.labels[li] = initial_label(labels, i, c, K, cfg_.label_noise);
          initial_features(p, means, cfg_.init_scale, c, z.data() + (i - i0) * p, ctx.X + li * p);
          if (ctx.noise_var) ctx.noise_var[li] = 0.0;
        }
      }
    }
  }

  // Sets up a replica's running sums for a state at `step` and records it.
  void start(ReplicaContext<Real>& ctx, int64_t step) {
    if (cfg_.process == Process::SDE) {
      compute_sums(ctx);
    } else {
      std::fill(ctx.sums.begin(), ctx.sums.end(), 0.0);
      ctx.applied_var = 0.0;  // the noise variance of steps 0 .. step-1, summed in order
      for (int64_t m = 0; m < step; ++m) {
        const double s = cfg_.sigma(m * cfg_.dt);
        ctx.applied_var += s * s * cfg_.dt;
      }
    }
    if (step == 0 && !record(ctx, 0, 0)) fail(ctx, 0);
    if (cfg_.process == Process::SDE && !all_finite(ctx.sums)) fail(ctx, step);
  }

  bool one_step(ReplicaContext<Real>& ctx, int64_t m) {
    if (cfg_.process == Process::SGD) return sgd_step(ctx, m);
    if (cfg_.scheme == Scheme::Heun) return sde_heun_step(ctx, m);
    return sde_euler_step(ctx, m);
  }

  bool record(ReplicaContext<Real>& ctx, int64_t step, int64_t idx) {
    if (cfg_.process == Process::SGD) sgd_materialize(ctx, step);
    return record_replica(cfg_, rec_, ctx.replica, idx, ctx.X, ctx.labels, ctx.classes,
                          ctx.threads);
  }
};

}  // namespace lesde
