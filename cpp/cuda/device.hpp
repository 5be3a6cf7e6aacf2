// The device side of the CUDA backend, seen from plain C++: no CUDA type crosses this
// header, so the host logic (cuda_simulation.hpp, compiled with the rest of the module)
// never needs the CUDA headers, and only device.cu is compiled by nvcc.
//
// DeviceState owns one run's state on the GPU (features and labels of every replica) and
// does the per-sample work: the initial state, and the fused SDE sweep (move every sample,
// accumulate the class sums of g over the fixed blocks of reduce.hpp). Everything else (the
// drift, the schedules, status, records) stays on the host, in the CPU's own code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lesde/model.hpp"

namespace lesde::cuda {

// Largest n_classes and dim the kernels take (per-sample scratch lives in registers and
// local memory of fixed size). Larger models run on the CPU.
constexpr int kMaxDim = 64;

// Number of usable CUDA devices; 0 when there is no driver or no device. Never throws.
int device_count() noexcept;

struct DeviceInfo {
  int index = 0;
  std::string name;
  int compute_major = 0, compute_minor = 0;
  int multiprocessors = 0;
  std::size_t total_memory = 0, free_memory = 0;
  double memory_clock_khz = 0.0;  // as reported by the driver
  int bus_width_bits = 0;
  double peak_bandwidth = 0.0;  // bytes / s: 2 (double data rate) * clock * bus width / 8
};

// The current device (the one a new DeviceState uses). Throws std::runtime_error.
DeviceInfo device_info();

// What a sweep does to each sample before its signal is added to the class sums.
enum class Move : int {
  None = 0,   // nothing: the class sums of the current state
  Drift = 1,  // x <- x + coef_c dt + noise_scale xi, xi the normals of (noise_seed, step)
  Shift = 2,  // x <- x + coef_c (Heun corrector)
};

template <class Real>
class DeviceState {
 public:
  // Allocates the state of cfg.replicas replicas on the current device and uploads the
  // classes (N, class-sorted). Throws std::invalid_argument for a model the kernels do not
  // take (process sgd, n_classes or dim > kMaxDim) and std::runtime_error when there is no
  // device or the state does not fit its free memory (the message names the bytes).
  DeviceState(const EngineConfig& cfg, const int32_t* classes);
  ~DeviceState();
  DeviceState(const DeviceState&) = delete;
  DeviceState& operator=(const DeviceState&) = delete;

  // Device memory the run needs, in bytes (state, tables, partial sums, local memory).
  static std::size_t bytes_needed(const EngineConfig& cfg);

  // Page-locks the caller's features buffer (R x N x p) for the life of this object, so
  // the copies at record steps and at the end of every advance run at full PCIe speed.
  // Optional: where it fails (already registered, limits) copies stay pageable.
  void pin_host(Real* features);

  void upload(const Real* features, const int32_t* labels);  // R x N x p, R x N
  void download_features(Real* features) const;              // R x N x p
  void download_labels(int32_t* labels) const;               // R x N

  // Labels (with label noise) and features at t = 0 of every replica, from the Init and
  // Labels streams (simulation.hpp draw_initial_state, one thread per sample).
  void draw_initial_state();

  // One fused sweep over the replicas listed in `replicas`: moves every sample as `move`
  // says (coef: one K x p matrix per listed replica, in list order), then writes the class
  // sums of g(x, y) of the listed replicas into sums (one K x p matrix each, in list order),
  // reduced over the fixed blocks of reduce.hpp and added in block order.
  void sweep(Move move, const std::vector<int32_t>& replicas, uint32_t step,
             const std::vector<double>& coef, double dt, double noise_scale,
             std::vector<double>& sums);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

extern template class DeviceState<float>;
extern template class DeviceState<double>;

}  // namespace lesde::cuda
