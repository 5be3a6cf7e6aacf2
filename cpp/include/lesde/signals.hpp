// The backprop signal g(x, y) of MODEL.md section 1, and the logits and softmax it is built on.
//
// Written once, for one sample (or a tile of samples for the softmax), as LESDE_HD functions:
// the CPU sweeps, the SGD step, the metrics and the CUDA kernels all call these. A new signal
// is one enum value (model.hpp) and one case in signal() below.
#pragma once

#include <cmath>

#include "fastmath.hpp"
#include "model.hpp"

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

// z = H x for n samples side by side (lanes: coordinate q of sample i at x[q * W + i], logit
// k at z[k * W + i]), each logit summed over q in order. W = 1 is one sample (logits below,
// a GPU thread); the record's CPU tiles take W = kTile, so their loops vectorise.
template <int W, class Real>
LESDE_HD void head_logits(const SignalSpec& s, int n, const Real* __restrict__ x,
                          double* __restrict__ z) {
  for (int k = 0; k < s.K; ++k) {
    const double* h = s.head + k * s.p;
    double acc[W];  // in registers for one sample (W = 1)
    for (int i = 0; i < n; ++i) acc[i] = 0.0;
    for (int q = 0; q < s.p; ++q) {
      const double hq = h[q];
      const Real* __restrict__ xq = x + q * W;
      for (int i = 0; i < n; ++i) acc[i] += hq * double(xq[i]);
    }
    for (int i = 0; i < n; ++i) z[k * W + i] = acc[i];
  }
}

// z = H x (or x): the K logits of one sample.
template <class Real>
LESDE_HD void logits(const SignalSpec& s, const Real* x, double* z) {
  if (s.head == nullptr) {
    for (int k = 0; k < s.K; ++k) z[k] = double(x[k]);
    return;
  }
  head_logits<1>(s, 1, x, z);
}

// The softmax, the one definition every caller uses. For n <= W rows of K logits (logit k
// of row i at X[i * row_stride + k * col_stride]), writes the shifted exponentials
// e[k * W + i] = exp(x_ik - top_i), with top_i = max_k x_ik (so exp never overflows), and
// their sums total[i]; softmax(x_i)_k is e[k * W + i] / total[i] and log-sum-exp(x_i) is
// top_i + log(total[i]).
//
// The loops run over rows, so with W = kTile (the CPU tiles) they vectorise across samples;
// with W = 1 (one sample: a GPU thread, the SGD step) it is a plain loop over k. Every caller
// evaluates the same expressions in Real, so the CPU and the GPU agree bit for bit.
template <int W, class Real>
LESDE_HD void shifted_exp_rows(int K, int n, const Real* X, int64_t row_stride,
                               int64_t col_stride, Real* e, Real* top, Real* total) {
  for (int i = 0; i < n; ++i) top[i] = X[i * row_stride];
  for (int k = 1; k < K; ++k)
    for (int i = 0; i < n; ++i) {
      const Real x = X[i * row_stride + k * col_stride];
      top[i] = top[i] < x ? x : top[i];
    }
  for (int k = 0; k < K; ++k)
    for (int i = 0; i < n; ++i)
      e[k * W + i] = fastmath::exp_nonpositive(X[i * row_stride + k * col_stride] - top[i]);
  for (int i = 0; i < n; ++i) total[i] = Real(0);
  for (int k = 0; k < K; ++k)
    for (int i = 0; i < n; ++i) total[i] += e[k * W + i];
}

// log-sum-exp of a row of logits from shifted_exp_rows' top and total (the loss of a record).
template <class T>
LESDE_HD T log_sum_exp(T top, T total) {
  return top + fastmath::log(total);
}

// g = g(x, y) (length p). z: K scratch values of type Real, and K more of type double.
template <class Real>
LESDE_HD void signal(const SignalSpec& s, const Real* x, int y, double* g, Real* z, double* zd) {
  switch (s.kind) {
    case Signal::Linear:  // g = x
      for (int q = 0; q < s.p; ++q) g[q] = double(x[q]);
      return;
    case Signal::Projected: {
      // g = P_y x = v_y (v_y . x) / |v_y|^2 with v_y = e_y - 1/K, |v_y|^2 = (K-1)/K.
      double mean = 0.0;
      for (int q = 0; q < s.p; ++q) mean += double(x[q]);
      mean /= s.K;
      const double coef = (double(x[y]) - mean) * s.K / (s.K - 1.0);
      for (int q = 0; q < s.p; ++q) g[q] = coef * ((q == y ? 1.0 : 0.0) - 1.0 / s.K);
      return;
    }
    case Signal::CrossEntropy: {
      if (s.head == nullptr) {  // g = e_y - softmax(x), in Real as the CPU tiles compute it
        Real top, total;
        shifted_exp_rows<1>(s.K, 1, x, s.K, 1, z, &top, &total);
        const Real inv = Real(1) / total;
        for (int k = 0; k < s.K; ++k) g[k] = (k == y ? 1.0 : 0.0) - double(z[k] * inv);
        return;
      }
      // g = H^T (e_y - softmax(H x)); the logits (hence their softmax) in double.
      logits(s, x, zd);
      double top, total;
      shifted_exp_rows<1>(s.K, 1, zd, s.K, 1, zd, &top, &total);
      const double inv = 1.0 / total;
      for (int q = 0; q < s.p; ++q) g[q] = 0.0;
      for (int k = 0; k < s.K; ++k) {
        const double w = (k == y ? 1.0 : 0.0) - zd[k] * inv;
        const double* h = s.head + k * s.p;
        for (int q = 0; q < s.p; ++q) g[q] += w * h[q];
      }
      return;
    }
  }
}

}  // namespace lesde
