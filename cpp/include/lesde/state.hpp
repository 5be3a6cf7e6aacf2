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

// What is recorded at each of the T record steps (all preset to NaN by the caller).
struct RecordView {
  double* class_means = nullptr;  // R x T x K x p   means by true class c
  double* label_means = nullptr;  // R x T x K x p   means by training label y
  double* sigma_w = nullptr;      // R x T x p x p   within-class covariance (by y)
  double* scalars = nullptr;      // R x T x kNumScalars (record.hpp kScalars)
  double* samples = nullptr;      // R x T x S x p   trajectories of record_samples
};

// One record's entries in the caller's arrays (RecordView).
struct RecordOutput {
  double* class_means;  // K x p
  double* label_means;  // K x p
  double* sigma_w;      // p x p
  double* scalars;      // kNumScalars
};

// Per-replica outcome.
enum Status : int32_t { kRunning = 0, kNonFinite = 1 };

}  // namespace lesde
