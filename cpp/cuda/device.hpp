// The device side of the CUDA backend, seen from plain C++: no CUDA type crosses this
// header, so the host logic (cuda_backend.hpp, compiled with the rest of the module) never
// needs the CUDA headers, and only device.cu is compiled by nvcc.
//
// A DeviceState owns one run's state on a device (features and labels of every replica) and
// does the per-sample work: the initial state, and the fused sweep (move every sample,
// accumulate the class sums of g over the fixed blocks of reduce.hpp). Everything else (the
// drift, the schedules, status, records) stays on the host, in the driver every backend shares
// (simulation.hpp).
//
// The same device.cu is built for two platforms: Platform::Gpu (nvcc, a real GPU) and
// Platform::Emulator (the host C++ compiler against emulator.hpp: the kernels run on host
// threads, so the backend is tested where there is no GPU). Each build defines the
// specialisations below for its own platform.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lesde/model.hpp"
#include "lesde/sample.hpp"

namespace lesde::cuda {

// Largest n_classes and dim the kernels take (per-sample scratch lives in registers and
// local memory of fixed size). Larger models run on the CPU.
constexpr int kMaxDim = 64;

enum class Platform { Gpu, Emulator };

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

// Number of usable devices of a platform; 0 when there is no driver or no device. Never throws.
template <Platform P>
int device_count() noexcept;

// The current device (the one a new DeviceState uses). Throws std::runtime_error.
template <Platform P>
DeviceInfo device_info();

template <class Real>
class DeviceState {
 public:
  virtual ~DeviceState() = default;

  // Page-locks the caller's features buffer (R x N x p) for the life of this object, so
  // the copies at record steps and at the end of every advance run at full PCIe speed.
  // Optional: where it fails (already registered, limits) copies stay pageable.
  virtual void pin_host(Real* features) = 0;

  virtual void upload(const Real* features, const int32_t* labels) = 0;  // R x N x p, R x N
  virtual void download_features(Real* features) const = 0;             // R x N x p
  virtual void download_labels(int32_t* labels) const = 0;               // R x N

  // Labels (with label noise) and features at t = 0 of every replica, from the Init and
  // Labels streams (sample.hpp initial_label / initial_features, one thread per sample).
  virtual void draw_initial_state() = 0;

  // One fused sweep over the replicas listed in `replicas`: moves every sample as `move` says
  // (sample.hpp move_sample; coef: one K x p matrix per listed replica, in list order), then
  // writes the class sums of g(x, y) of the listed replicas into sums (one K x p matrix each,
  // in list order), reduced over the fixed blocks of reduce.hpp and added in block order.
  virtual void sweep(Move move, const std::vector<int32_t>& replicas, uint32_t step,
                     const std::vector<double>& coef, double dt, double noise_scale,
                     std::vector<double>& sums) = 0;

  // A record's two passes over the listed replicas' current state (metrics.hpp), on the
  // device: out gets each replica's totals, one after another (first: RecordLayout's
  // first_width each; second: second_width each, from the label means (K x p) and counts
  // (K) of each listed replica, one after another).
  virtual void first_moments(const std::vector<int32_t>& replicas, std::vector<double>& out) = 0;
  virtual void second_moments(const std::vector<int32_t>& replicas,
                              const std::vector<double>& means, const std::vector<double>& counts,
                              std::vector<double>& out) = 0;

  // Rows `samples` (global indices) of replica r's features, as doubles (S x p).
  virtual void copy_samples(int32_t r, const std::vector<int64_t>& samples, double* out) = 0;
};

// Allocates the state of cfg.replicas replicas on the current device and uploads the
// classes (N, class-sorted). Throws std::invalid_argument for a model the kernels do not
// take (process sgd, n_classes or dim > kMaxDim) and std::runtime_error when there is no
// device or the state does not fit its free memory (the message names the bytes).
template <Platform P, class Real>
std::unique_ptr<DeviceState<Real>> make_device_state(const EngineConfig& cfg,
                                                     const int32_t* classes);

}  // namespace lesde::cuda
