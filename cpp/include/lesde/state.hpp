// Where a run keeps its data: non-owning views of arrays the caller owns (NumPy arrays
// from Python), so results cross the language boundary without copies and survive an
// exception or an interrupted run.
#pragma once

#include <cstdint>

namespace lesde {

// Per-sample state of all replicas.
template <class Real>
struct StateView {
  Real* features = nullptr;         // R x N x p   (SGD: the part not yet in class offsets)
  int32_t* labels = nullptr;        // R x N       training labels y_i
  const int32_t* classes = nullptr; // N           true classes c_i (class-sorted)
  double* noise_var = nullptr;      // R x N       SGD only: noise variance already applied
};

// Scalar metrics recorded at each record step, in this order.
enum Scalar : int { kLoss = 0, kAccuracy, kCleanAccuracy, kNccAccuracy, kNc4, kNumScalars };

// What is recorded at each of the T record steps (all preset to NaN by the caller).
struct RecordView {
  double* class_means = nullptr;  // R x T x K x p   means by true class c
  double* label_means = nullptr;  // R x T x K x p   means by training label y
  double* sigma_w = nullptr;      // R x T x p x p   within-class covariance (by y)
  double* scalars = nullptr;      // R x T x kNumScalars
  double* samples = nullptr;      // R x T x S x p   trajectories of record_samples
};

// One record's entries in the caller's arrays (state.hpp RecordView).
struct RecordOutput {
  double* class_means;  // K x p
  double* label_means;  // K x p
  double* sigma_w;      // p x p
  double* scalars;      // kNumScalars
};

// Where each total sits in a pass's accumulator.
struct RecordLayout {
  int K, p;
  RecordLayout(int K_, int p_) : K(K_), p(p_) {}
  template <class Config>  // EngineConfig (model.hpp); a template keeps this header light
  explicit RecordLayout(const Config& cfg) : K(cfg.K), p(cfg.p) {}
  // pass 1: [sum by class c (K x p) | sum by label y (K x p) | count by label (K) |
  //          loss, correct, clean correct]
  int64_t sum_c() const { return 0; }
  int64_t sum_y() const { return int64_t(K) * p; }
  int64_t count_y() const { return 2 * int64_t(K) * p; }
  int64_t tail() const { return 2 * int64_t(K) * p + K; }
  int64_t first_width() const { return tail() + 3; }
  // pass 2: [scatter (p x p) | nearest-centre correct | nearest centre == argmax logits]
  int64_t second_width() const { return int64_t(p) * p + 2; }
};

// Per-replica outcome.
enum Status : int32_t { kRunning = 0, kNonFinite = 1 };

}  // namespace lesde
