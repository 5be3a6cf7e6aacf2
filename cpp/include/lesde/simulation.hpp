// A run: initialisation, stepping in chunks, recording, and per-replica status. One driver
// for every backend (Engine<Real, Backend>); the backend only runs sweeps over the samples.
//
// The Python layer owns every array (StateView, RecordView) and drives the run with
// advance(until) in chunks, so it can show progress, honour Ctrl-C and checkpoint between
// chunks. Replicas are independent: the CPU backend advances them one at a time (in parallel
// when they are many and small), a GPU backend all together in lock step. Either way each
// number depends only on (seed, indices), never on the layout.
//
// One SDE step (integrators.hpp): the host computes each replica's drift b = E(t) S / N from
// the class sums S of the previous sweep, the backend sweeps (moves every sample, returns the
// new class sums), and the host checks them; a scheme of several sweeps (Heun: a corrector)
// runs them in order. One record: the
// last sweep of the step also adds up the record's first moments, the backend makes a second
// pass with the label means known, and finish_first/finish_second (metrics.hpp) write it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "cpu_backend.hpp"
#include "integrators.hpp"
#include "metrics.hpp"
#include "model.hpp"
#include "state.hpp"

namespace lesde {

template <class Real, class Backend>
class Engine {
 public:
  Engine(EngineConfig cfg, StateView<Real> state, RecordView records, int32_t* status,
         int64_t* fail_step)
      : cfg_(checked(std::move(cfg))),
        state_(state),
        rec_(records),
        status_(status),
        fail_step_(fail_step),
        backend_(cfg_, state_) {
    if (cfg_.process == Process::SGD && state_.noise_var == nullptr)
      throw std::invalid_argument("process sgd needs the noise_var buffer");
    sums_.assign(size_t(cfg_.replicas), std::vector<double>(size_t(cfg_.K) * cfg_.p, 0.0));
    first_.resize(size_t(cfg_.replicas));
    applied_var_.assign(size_t(cfg_.replicas), 0.0);
  }

  const EngineConfig& config() const { return cfg_; }
  int64_t step() const { return step_; }
  int64_t n_steps() const { return cfg_.n_steps; }

  // Draws labels and features at t = 0 and records step 0.
  void initialize() {
    for_each_group(all_replicas(), [&](const std::vector<int32_t>& group) {
      backend_.draw_initial_state(group);
      start(group, 0);
    });
    backend_.to_host();
    step_ = 0;
  }

  // Continues from features/labels already in the buffers, which hold the state after
  // `step` steps; `step` must be a record step (where SGD offsets are folded in).
  void resume(int64_t step) {
    if (cfg_.record_index(step) < 0) throw std::invalid_argument("resume step must be a record step");
    backend_.from_host();
    for_each_group(running(all_replicas()),
                   [&](const std::vector<int32_t>& group) { start(group, step); });
    step_ = step;
  }

  // Advances every running replica to min(until, n_steps) and returns the new step.
  int64_t advance(int64_t until) {
    until = std::min(until, cfg_.n_steps);
    if (until <= step_) return step_;
    const int64_t from = step_;
    for_each_group(running(all_replicas()), [&](const std::vector<int32_t>& group) {
      for (int64_t m = from; m < until; ++m) {
        const std::vector<int32_t> live = running(group);
        if (live.empty()) break;
        one_step(live, m);
        const int64_t idx = cfg_.record_index(m + 1);
        if (idx >= 0) record(running(live), m + 1, idx);
      }
    });
    backend_.to_host();
    step_ = until;
    return step_;
  }

 private:
  EngineConfig cfg_;
  StateView<Real> state_;
  RecordView rec_;
  int32_t* status_;
  int64_t* fail_step_;
  Backend backend_;
  std::vector<std::vector<double>> sums_;  // per replica, K x p: SDE class sums of g; SGD offsets
  std::vector<std::vector<double>> first_;  // per replica: the pass-1 totals of the next record
  std::vector<double> applied_var_;         // per replica: SGD noise variance added so far
  int64_t step_ = 0;

  static EngineConfig checked(EngineConfig cfg) {
    cfg.check();
    return cfg;
  }

  std::vector<int32_t> all_replicas() const {
    std::vector<int32_t> all(size_t(cfg_.replicas));
    for (int32_t r = 0; r < cfg_.replicas; ++r) all[r] = r;
    return all;
  }

  std::vector<int32_t> running(const std::vector<int32_t>& list) const {
    std::vector<int32_t> out;
    for (int32_t r : list)
      if (status_[r] == kRunning) out.push_back(r);
    return out;
  }

  // Runs f on groups of replicas that advance together: all of them on a lock-step backend;
  // otherwise one replica per group, in parallel when the backend says so.
  template <class F>
  void for_each_group(const std::vector<int32_t>& list, F&& f) {
    if constexpr (Backend::kLockStep) {
      if (!list.empty()) f(list);
      return;
    }
    const int64_t n = int64_t(list.size());
    if (backend_.replica_parallel()) {
#pragma omp parallel for num_threads(cfg_.threads) schedule(dynamic, 1)
      for (int64_t j = 0; j < n; ++j) f(std::vector<int32_t>{list[j]});
    } else {
      for (int64_t j = 0; j < n; ++j) f(std::vector<int32_t>{list[j]});
    }
  }

  void fail(int32_t r, int64_t step) {
    status_[r] = kNonFinite;
    fail_step_[r] = step;
  }

  static std::vector<std::vector<double>*> rows(std::vector<std::vector<double>>& per_replica,
                                                 const std::vector<int32_t>& list) {
    std::vector<std::vector<double>*> out;
    for (int32_t r : list) out.push_back(&per_replica[r]);
    return out;
  }

  // The backend sweeps the listed replicas; those whose new class sums are not finite fail
  // at step `fail_at`.
  void sweep(const Sweep& s, const std::vector<int32_t>& list, int64_t fail_at) {
    backend_.sweep(s, list, rows(sums_, list), rows(first_, list));
    for (int32_t r : list)
      if (!all_finite(sums_[r])) fail(r, fail_at);
  }

  HostReplica<Real> host(int32_t r) {
    const int64_t N = cfg_.shard().local_samples();
    return HostReplica<Real>{state_.features + int64_t(r) * N * cfg_.p,
                             state_.labels + int64_t(r) * N,
                             state_.classes,
                             state_.noise_var ? state_.noise_var + int64_t(r) * N : nullptr,
                             uint32_t(r),
                             backend_.sample_threads(),
                             &sums_[r],
                             &applied_var_[r]};
  }

  // Sets up the listed replicas' running sums for a state at `step`, and records step 0.
  void start(const std::vector<int32_t>& list, int64_t step) {
    if (cfg_.process == Process::SDE) {
      Sweep none;  // Move::None: the class sums of the current state
      none.step = uint32_t(step);
      none.record = step == 0;
      backend_.sweep(none, list, rows(sums_, list), rows(first_, list));
    } else {
      for (int32_t r : list) {
        std::fill(sums_[r].begin(), sums_[r].end(), 0.0);
        applied_var_[r] = sgd_variance_until(cfg_, step);
      }
    }
    if (step == 0) record(list, 0, 0);
    if (cfg_.process == Process::SDE)
      for (int32_t r : list)
        if (!all_finite(sums_[r])) fail(r, step);
  }

  void one_step(const std::vector<int32_t>& list, int64_t m) {
    if (cfg_.process == Process::SGD) {
      for (int32_t r : list) {
        HostReplica<Real> h = host(r);
        if (!sgd_step(cfg_, h, m)) fail(r, m + 1);
      }
      return;
    }
    // The scheme's sweeps in order (integrators.hpp), each over the replicas still running;
    // the step's last sweep also adds up the record's first moments when the step is recorded.
    const SchemeInfo& scheme = scheme_info(cfg_.scheme);
    const bool recorded = cfg_.record_index(m + 1) >= 0;
    const size_t Kp = size_t(cfg_.K) * cfg_.p;
    std::vector<int32_t> moved;  // the replicas the previous sweep moved, in its order
    Sweep earlier;
    for (int j = 0; j < scheme.sweeps; ++j) {
      const std::vector<int32_t>& from = j == 0 ? list : moved;
      std::vector<int32_t> moving;
      SweepInputs in;
      for (size_t i = 0; i < from.size(); ++i) {
        const int32_t r = from[i];
        if (status_[r] != kRunning) continue;
        moving.push_back(r);
        in.push_back({&sums_[r], j == 0 ? nullptr : earlier.coef.data() + i * Kp});
      }
      if (moving.empty()) return;
      Sweep s = scheme_sweep(cfg_, j, m, in);
      s.record = recorded && j + 1 == scheme.sweeps;
      sweep(s, moving, m + 1);
      earlier = std::move(s);
      moved = std::move(moving);
    }
  }

  // Whether every value of a written record is finite, except those its definition leaves
  // NaN: the mean of a label no sample holds (count_y[k] == 0), and the loss, accuracies and
  // NC4 of a signal without logits. A finite state can still give a non-finite record (a
  // squared deviation beyond ~1e154 overflows in Sigma_W); such a record fails its replica
  // like a non-finite state does, so no replica reports "ok" with an infinite record.
  bool record_finite(const RecordOutput& out, const double* count_y) const {
    const int K = cfg_.K, p = cfg_.p;
    bool ok = true;
    for (int k = 0; k < K; ++k)
      for (int q = 0; q < p; ++q)
        ok = ok && std::isfinite(out.class_means[k * p + q]) &&
             (count_y[k] == 0 || std::isfinite(out.label_means[k * p + q]));
    for (int64_t j = 0; j < int64_t(p) * p; ++j) ok = ok && std::isfinite(out.sigma_w[j]);
    const bool scored = has_logits(SignalSpec::from(cfg_));
    for (int s = 0; s < kNumScalars; ++s)
      ok = ok && (std::isfinite(out.scalars[s]) || (!scored && s != kNccAccuracy));
    return ok;
  }

  // Writes record `idx` (at `step`) of the listed replicas from the pass-1 totals their last
  // sweep made and a pass 2 over their samples; a non-finite state, or a non-finite record
  // (record_finite), fails them at `step`.
  void record(const std::vector<int32_t>& list, int64_t step, int64_t idx) {
    if (list.empty()) return;
    if (cfg_.process == Process::SGD) {  // fold the offsets in, then a sweep that only records
      Sweep none;
      none.step = uint32_t(step);
      none.record = true;
      std::vector<std::vector<double>> unused(1, std::vector<double>(size_t(cfg_.K) * cfg_.p));
      for (int32_t r : list) {
        HostReplica<Real> h = host(r);
        sgd_materialize(cfg_, h, step);
        backend_.sweep(none, {r}, {&unused[0]}, {&first_[r]});
      }
    }
    const int K = cfg_.K, p = cfg_.p;
    const RecordLayout at(cfg_);
    std::vector<int32_t> finite;
    std::vector<double> means, counts;
    for (int32_t r : list) {
      const RecordOutput out = record_slot(cfg_, rec_, r, idx);
      if (!finish_first(cfg_, first_[r].data(), out)) {
        fail(r, step);
        continue;
      }
      finite.push_back(r);
      means.insert(means.end(), out.label_means, out.label_means + K * p);
      counts.insert(counts.end(), first_[r].begin() + at.count_y(),
                    first_[r].begin() + at.count_y() + K);
    }
    std::vector<std::vector<double>> second(finite.size());
    std::vector<std::vector<double>*> second_rows;
    for (auto& v : second) second_rows.push_back(&v);
    backend_.second_moments(finite, means, counts, second_rows);
    for (size_t j = 0; j < finite.size(); ++j) {
      const RecordOutput out = record_slot(cfg_, rec_, finite[j], idx);
      finish_second(cfg_, second[j].data(), out);
      if (!record_finite(out, counts.data() + j * K)) fail(finite[j], step);
    }
    const int64_t S = int64_t(cfg_.record_samples.size());
    if (S == 0) return;
    for (int32_t r : list) {  // the trajectories, also of a state that just failed
      const int64_t slot = int64_t(r) * int64_t(cfg_.record_steps.size()) + idx;
      backend_.copy_samples(r, cfg_.record_samples, rec_.samples + slot * S * p);
    }
  }
};

// The CPU engine (bound as Simulation64 / Simulation32).
template <class Real>
using Simulation = Engine<Real, CpuBackend<Real>>;

}  // namespace lesde
