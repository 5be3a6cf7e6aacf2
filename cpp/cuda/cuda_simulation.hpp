// CudaSimulation<Real>: Simulation<Real> (simulation.hpp) with the SDE sweeps on a GPU.
//
// Same constructor, same methods, same buffers: the caller's host arrays (NumPy) hold the
// state and receive the records. The state goes to the device at initialize()/resume()
// and stays there while advancing; the features come back at every record step and at the
// end of every advance(), so the caller always sees the same arrays the CPU engine fills.
//
// What runs where:
//   GPU   initial state (labels, features), and each sweep: the Euler / Heun moves with the
//         same normals, the signal g(x, y), the class sums over the fixed blocks.
//   host  the drift b = E(t) S / N (integrators.hpp drift()), the schedules, status and
//         fail_step, the records (metrics.hpp record_metrics on the copied-back state:
//         the CPU's own code), and process "sgd", which is delegated to Simulation<Real>
//         as a whole (O(K p B) per step, nothing for a GPU to gain).
// Replicas advance in lock step: one launch moves every running replica.
//
// Host-only C++: the CUDA runtime is behind device.hpp, so this header compiles without it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "device.hpp"
#include "lesde/integrators.hpp"
#include "lesde/metrics.hpp"
#include "lesde/model.hpp"
#include "lesde/simulation.hpp"
#include "lesde/state.hpp"

namespace lesde {

template <class Real>
class CudaSimulation {
 public:
  CudaSimulation(EngineConfig cfg, StateView<Real> state, RecordView records, int32_t* status,
                 int64_t* fail_step)
      : cfg_(std::move(cfg)), state_(state), rec_(records), status_(status), fail_step_(fail_step) {
    cfg_.check();
    if (cfg_.process == Process::SGD) {  // the whole run on the CPU engine
      cpu_ = std::make_unique<Simulation<Real>>(cfg_, state, records, status, fail_step);
      return;
    }
    device_ = std::make_unique<cuda::DeviceState<Real>>(cfg_, state_.classes);
    device_->pin_host(state_.features);
    sums_.assign(size_t(cfg_.replicas), std::vector<double>(size_t(cfg_.K) * cfg_.p, 0.0));
    record_threads_ = int(std::min<int64_t>(cfg_.threads, Blocks(cfg_.n_samples()).count));
  }

  const EngineConfig& config() const { return cfg_; }
  int64_t step() const { return cpu_ ? cpu_->step() : step_; }
  int64_t n_steps() const { return cfg_.n_steps; }

  // Draws labels and features at t = 0 (on the device) and records step 0.
  void initialize() {
    if (cpu_) return cpu_->initialize();
    const int64_t R = cfg_.replicas, N = cfg_.n_samples();
    device_->draw_initial_state();
    device_->download_labels(state_.labels);
    device_->download_features(state_.features);
    if (state_.noise_var) std::fill(state_.noise_var, state_.noise_var + R * N, 0.0);
    std::vector<int32_t> all(size_t(cfg_.replicas));
    for (int32_t r = 0; r < cfg_.replicas; ++r) all[r] = r;
    start(all, 0);
    step_ = 0;
  }

  // Continues from the features/labels in the host buffers, the state after `step` steps;
  // `step` must be a record step.
  void resume(int64_t step) {
    if (cpu_) return cpu_->resume(step);
    if (cfg_.record_index(step) < 0) throw std::invalid_argument("resume step must be a record step");
    device_->upload(state_.features, state_.labels);
    start(running(), step);
    step_ = step;
  }

  // Advances every running replica to min(until, n_steps) and returns the new step.
  int64_t advance(int64_t until) {
    if (cpu_) return cpu_->advance(until);
    until = std::min(until, cfg_.n_steps);
    if (until <= step_) return step_;
    for (int64_t m = step_; m < until; ++m) {
      const std::vector<int32_t> live = running();
      if (live.empty()) break;
      one_step(live, m);
      const int64_t idx = cfg_.record_index(m + 1);
      if (idx < 0) continue;
      const std::vector<int32_t> still = running();
      if (still.empty()) continue;
      device_->download_features(state_.features);
      host_current_ = true;
      for (int32_t r : still)
        if (!record(r, idx)) fail(r, m + 1);
    }
    if (!host_current_) device_->download_features(state_.features);
    host_current_ = true;
    step_ = until;
    return step_;
  }

 private:
  EngineConfig cfg_;
  StateView<Real> state_;
  RecordView rec_;
  int32_t* status_;
  int64_t* fail_step_;
  std::unique_ptr<Simulation<Real>> cpu_;            // process sgd
  std::unique_ptr<cuda::DeviceState<Real>> device_;  // process sde
  std::vector<std::vector<double>> sums_;            // per replica: K x p class sums of g
  bool host_current_ = true;                         // the host features equal the device's
  int record_threads_ = 1;
  int64_t step_ = 0;

  std::vector<int32_t> running() const {
    std::vector<int32_t> out;
    for (int32_t r = 0; r < cfg_.replicas; ++r)
      if (status_[r] == kRunning) out.push_back(r);
    return out;
  }


  void fail(int32_t r, int64_t step) {
    status_[r] = kNonFinite;
    fail_step_[r] = step;
  }

  // Runs a sweep of the listed replicas and stores their class sums.
  void sweep(cuda::Move move, const std::vector<int32_t>& list, int64_t step,
             const std::vector<double>& coef, double dt, double noise_scale) {
    std::vector<double> out;
    device_->sweep(move, list, uint32_t(step), coef, dt, noise_scale, out);
    const size_t Kp = size_t(cfg_.K) * cfg_.p;
    for (size_t j = 0; j < list.size(); ++j)
      std::copy(out.begin() + j * Kp, out.begin() + (j + 1) * Kp, sums_[list[j]].begin());
    if (move != cuda::Move::None) host_current_ = false;
  }

  // Simulation::start for the listed replicas: class sums, then the record of step 0.
  void start(const std::vector<int32_t>& list, int64_t step) {
    sweep(cuda::Move::None, list, step, {}, 0.0, 0.0);
    for (int32_t r : list) {
      if (step == 0 && !record(r, 0)) fail(r, 0);
      if (!all_finite(sums_[r])) fail(r, step);
    }
  }

  // One SDE step of the listed replicas: sde_euler_step / sde_heun_step of integrators.hpp,
  // the drift and every host-side number computed by the same expressions.
  void one_step(const std::vector<int32_t>& list, int64_t step) {
    const double t = step * cfg_.dt, dt = cfg_.dt;
    const size_t Kp = size_t(cfg_.K) * cfg_.p;
    std::vector<double> coef(list.size() * Kp);
    std::vector<std::vector<double>> b0(list.size());
    for (size_t j = 0; j < list.size(); ++j) {
      b0[j] = drift(cfg_, t, sums_[list[j]]);
      std::copy(b0[j].begin(), b0[j].end(), coef.begin() + j * Kp);
    }
    if (cfg_.scheme == Scheme::EulerMaruyama) {
      const double noise_scale = cfg_.sigma(t) * std::sqrt(dt);
      sweep(cuda::Move::Drift, list, step, coef, dt, noise_scale);
      for (int32_t r : list)
        if (!all_finite(sums_[r])) fail(r, step + 1);
      return;
    }
    // Heun: predictor with b(x, t), then the per-class corrector shift.
    const double noise_scale = 0.5 * (cfg_.sigma(t) + cfg_.sigma(t + dt)) * std::sqrt(dt);
    sweep(cuda::Move::Drift, list, step, coef, dt, noise_scale);
    std::vector<int32_t> next;
    std::vector<double> shifts;
    for (size_t j = 0; j < list.size(); ++j) {
      const int32_t r = list[j];
      if (!all_finite(sums_[r])) {
        fail(r, step + 1);
        continue;
      }
      std::vector<double> shift = drift(cfg_, t + dt, sums_[r]);
      for (size_t k = 0; k < shift.size(); ++k) shift[k] = 0.5 * dt * (shift[k] - b0[j][k]);
      next.push_back(r);
      shifts.insert(shifts.end(), shift.begin(), shift.end());
    }
    if (next.empty()) return;
    sweep(cuda::Move::Shift, next, step, shifts, dt, 0.0);
    for (int32_t r : next)
      if (!all_finite(sums_[r])) fail(r, step + 1);
  }

  // Simulation::record (process sde) on the host copy of replica r.
  bool record(int32_t r, int64_t idx) {
    const int64_t N = cfg_.n_samples();
    return record_replica(cfg_, rec_, r, idx, state_.features + int64_t(r) * N * cfg_.p,
                          state_.labels + int64_t(r) * N, state_.classes, record_threads_);
  }
};

}  // namespace lesde
