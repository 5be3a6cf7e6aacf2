// The backprop signal g(x, y) of MODEL.md section 1, and the logits it is built on.
// Written once for one sample; the CPU loops (and any other backend) call these.
#pragma once

#include <cmath>

#include "model.hpp"
#include "rng.hpp"  // LESDE_HD

namespace lesde {

// What a per-sample kernel needs to know about the signal: small and trivially copyable.
struct SignalSpec {
  Signal kind;
  int K, p;
  const double* head;  // K x p row-major, or nullptr: logits are x itself (p == K)

  static SignalSpec from(const EngineConfig& cfg) {
    return SignalSpec{cfg.signal, cfg.K, cfg.p, cfg.has_head() ? cfg.head.data() : nullptr};
  }
};

// z = H x (or x): the K logits of one sample.
template <class Real>
LESDE_HD void logits(const SignalSpec& s, const Real* x, double* z) {
  if (s.head == nullptr) {
    for (int k = 0; k < s.K; ++k) z[k] = double(x[k]);
    return;
  }
  for (int k = 0; k < s.K; ++k) {
    double acc = 0.0;
    const double* h = s.head + k * s.p;
    for (int q = 0; q < s.p; ++q) acc += h[q] * double(x[q]);
    z[k] = acc;
  }
}

// Turns z into softmax(z) in place and returns log-sum-exp(z) (shifted by the max,
// so large logits never overflow).
LESDE_HD double softmax_inplace(int K, double* z) {
  double zmax = z[0];
  for (int k = 1; k < K; ++k) zmax = z[k] > zmax ? z[k] : zmax;
  double total = 0.0;
  for (int k = 0; k < K; ++k) {
    z[k] = std::exp(z[k] - zmax);
    total += z[k];
  }
  const double inv = 1.0 / total;
  for (int k = 0; k < K; ++k) z[k] *= inv;
  return zmax + std::log(total);
}

// g = g(x, y) (length p). scratch holds K doubles.
template <class Real>
LESDE_HD void signal(const SignalSpec& s, const Real* x, int y, double* g, double* scratch) {
  switch (s.kind) {
    case Signal::Linear:
      for (int q = 0; q < s.p; ++q) g[q] = double(x[q]);
      return;
    case Signal::Projected: {
      // P_y x = v_y (v_y . x) / |v_y|^2 with v_y = e_y - 1/K, |v_y|^2 = (K-1)/K.
      double mean = 0.0;
      for (int q = 0; q < s.p; ++q) mean += double(x[q]);
      mean /= s.K;
      const double coef = (double(x[y]) - mean) * s.K / (s.K - 1.0);
      for (int q = 0; q < s.p; ++q) g[q] = coef * ((q == y ? 1.0 : 0.0) - 1.0 / s.K);
      return;
    }
    case Signal::CrossEntropy: {
      logits(s, x, scratch);
      softmax_inplace(s.K, scratch);
      for (int k = 0; k < s.K; ++k) scratch[k] = (k == y ? 1.0 : 0.0) - scratch[k];
      if (s.head == nullptr) {
        for (int q = 0; q < s.p; ++q) g[q] = scratch[q];
      } else {  // g = H^T (e_y - softmax(H x))
        for (int q = 0; q < s.p; ++q) g[q] = 0.0;
        for (int k = 0; k < s.K; ++k) {
          const double* h = s.head + k * s.p;
          for (int q = 0; q < s.p; ++q) g[q] += scratch[k] * h[q];
        }
      }
      return;
    }
  }
}

// g(x, y) = e_y - softmax(x) of the cross-entropy signal without a head (p == K), with the
// arithmetic of the CPU's tiled kernel (add_cross_entropy_tile in kernels.hpp): softmax in
// Real with fastmath::exp_nonpositive, shifted by the maximum. signal() evaluates the same
// g in double with libm; a backend that works one sample at a time (CUDA) calls this so
// that its class sums agree with the CPU's to rounding. z: K scratch values.
template <class Real>
LESDE_HD void cross_entropy_signal_fast(int K, const Real* x, int y, Real* z, double* g) {
  Real top = x[0];
  for (int k = 1; k < K; ++k) top = top < x[k] ? x[k] : top;  // std::max(top, x[k])
  Real total = 0;
  for (int k = 0; k < K; ++k) {
    z[k] = fastmath::exp_nonpositive(x[k] - top);
    total += z[k];
  }
  const Real inv = Real(1) / total;
  for (int k = 0; k < K; ++k) g[k] = (k == y ? 1.0 : 0.0) - double(z[k] * inv);
}

}  // namespace lesde
