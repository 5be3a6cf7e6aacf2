// The CUDA backend of the run driver (simulation.hpp): the sweeps on a device, for either
// platform of device.hpp (a real GPU, or the host emulator that tests the same kernels).
//
// The caller's host arrays (NumPy) stay the run's arrays: the state goes to the device at
// initialize()/resume() and stays there while advancing; records are computed on the device
// (record_kernels.cuh: only their totals cross the bus), and the features come back at the
// end of every advance(), so the caller always sees what the CPU backend would have written.
// Replicas advance in lock step: one launch moves every running replica.
//
// Host-only C++: the CUDA runtime is behind device.hpp, so this header compiles without it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "device.hpp"
#include "lesde/integrators.hpp"
#include "lesde/model.hpp"
#include "lesde/record.hpp"
#include "lesde/reduce.hpp"
#include "lesde/simulation.hpp"
#include "lesde/state.hpp"

namespace lesde {

template <class Real, cuda::Platform P>
class CudaBackend {
 public:
  static constexpr bool kLockStep = true;

  CudaBackend(const EngineConfig& cfg, StateView<Real> state)
      : cfg_(cfg), state_(state), device_(cuda::make_device_state<P, Real>(cfg, state.classes)) {
    device_->pin_host(state_.features);
    host_threads_ = int(std::min<int64_t>(cfg.threads, Blocks(cfg.n_samples()).count));
  }

  bool replica_parallel() const { return false; }
  int sample_threads() const { return host_threads_; }  // for the records, on the host

  // The host features are stale after a sweep that moved samples: copy them back.
  void to_host() {
    if (!host_current_) device_->download_features(state_.features);
    host_current_ = true;
  }
  void from_host() { device_->upload(state_.features, state_.labels); }

  // The initial state of every replica (one launch; the driver lists them all).
  void draw_initial_state(const std::vector<int32_t>&) {
    device_->draw_initial_state();
    device_->download_labels(state_.labels);
    host_current_ = false;
  }

  void sweep(const Sweep& s, const std::vector<int32_t>& replicas,
             const std::vector<std::vector<double>*>& sums,
             const std::vector<std::vector<double>*>& first) {
    device_->sweep(s.move, replicas, s.step, s.coef, s.dt, s.noise_scale, out_);
    const size_t Kp = size_t(cfg_.K) * cfg_.p;
    for (size_t j = 0; j < replicas.size(); ++j)
      std::copy(out_.begin() + j * Kp, out_.begin() + (j + 1) * Kp, sums[j]->begin());
    if (s.move != Move::None) host_current_ = false;
    if (!s.record) return;
    device_->first_moments(replicas, out_);  // on the device: only the totals come back
    const size_t width = size_t(RecordLayout(cfg_).first_width());
    for (size_t j = 0; j < replicas.size(); ++j)
      first[j]->assign(out_.begin() + j * width, out_.begin() + (j + 1) * width);
  }

  void second_moments(const std::vector<int32_t>& replicas, const std::vector<double>& means,
                      const std::vector<double>& counts,
                      const std::vector<std::vector<double>*>& second) {
    device_->second_moments(replicas, means, counts, out_);
    const size_t width = size_t(RecordLayout(cfg_).second_width());
    for (size_t j = 0; j < replicas.size(); ++j)
      second[j]->assign(out_.begin() + j * width, out_.begin() + (j + 1) * width);
  }

  void copy_samples(int32_t r, const std::vector<int64_t>& samples, double* out) {
    device_->copy_samples(r, samples, out);
  }

 private:
  const EngineConfig& cfg_;
  StateView<Real> state_;
  std::unique_ptr<cuda::DeviceState<Real>> device_;
  std::vector<double> out_;
  bool host_current_ = true;
  int host_threads_ = 1;
};

// The engine bound as CudaSimulation64/32 (and CudaEmulatorSimulation64/32): the SDE on the
// device; process "sgd" on the CPU engine, whole (O(K p B) per step: nothing for a GPU to gain).
template <class Real, cuda::Platform P>
class CudaSimulation {
 public:
  CudaSimulation(EngineConfig cfg, StateView<Real> state, RecordView records, int32_t* status,
                 int64_t* fail_step) {
    if (cfg.process == Process::SGD)
      cpu_ = std::make_unique<Simulation<Real>>(std::move(cfg), state, records, status, fail_step);
    else
      device_ = std::make_unique<Engine<Real, CudaBackend<Real, P>>>(std::move(cfg), state,
                                                                     records, status, fail_step);
  }

  void initialize() { cpu_ ? cpu_->initialize() : device_->initialize(); }
  void resume(int64_t step) { cpu_ ? cpu_->resume(step) : device_->resume(step); }
  int64_t advance(int64_t until) { return cpu_ ? cpu_->advance(until) : device_->advance(until); }
  int64_t step() const { return cpu_ ? cpu_->step() : device_->step(); }
  int64_t n_steps() const { return cpu_ ? cpu_->n_steps() : device_->n_steps(); }

 private:
  std::unique_ptr<Simulation<Real>> cpu_;
  std::unique_ptr<Engine<Real, CudaBackend<Real, P>>> device_;
};

}  // namespace lesde
