// The per-sample work of a step, done a tile of consecutive samples at a time so that
// the transcendental functions run in vectorised loops (structure of arrays) instead of
// one call per number. Semantics are those of signals.hpp; only the loop shape differs.
// The heavy kernel is compiled twice on x86-64 with GCC (AVX2 and baseline, LESDE_CLONES).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fastmath.hpp"
#include "rng.hpp"
#include "rng_fill.hpp"  // LESDE_CLONES
#include "sample.hpp"
#include "signals.hpp"

namespace lesde {

constexpr int64_t kTile = 128;  // samples per tile: a tile's state and scratch stay in L1/L2

// Adds g(x_i, y_i) = e_y - softmax(x_i) of the cross-entropy signal without a head
// (p == K) to the class sums, for n <= kTile consecutive samples: signal() of a whole tile,
// with the softmax of shifted_exp_rows laid out so that every loop runs over samples and
// vectorises. Samples are class-sorted, so a tile holds one or two runs of equal class.
// lse, if not nullptr, gets each sample's log-sum-exp (a record's loss needs it).
template <class Real>
LESDE_CLONES void add_cross_entropy_tile(int K, const Real* X, const int32_t* labels,
                                         const int32_t* classes, int64_t n, Real* e, double* sums,
                                         double* lse) {
  alignas(64) Real top[kTile], inv[kTile];
  shifted_exp_rows<kTile>(K, int(n), X, K, 1, e, top, inv);
  if (lse != nullptr)
    for (int64_t i = 0; i < n; ++i) lse[i] = double(log_sum_exp(top[i], inv[i]));
  for (int64_t i = 0; i < n; ++i) inv[i] = Real(1) / inv[i];
  for (int64_t lo = 0; lo < n;) {  // one run of samples of the same class
    int64_t hi = lo + 1;
    while (hi < n && classes[hi] == classes[lo]) ++hi;
    double* s = sums + int64_t(classes[lo]) * K;
    for (int k = 0; k < K; ++k) {
      const Real* ek = e + k * kTile;
      double acc = 0.0;
      for (int64_t i = lo; i < hi; ++i) acc += double(ek[i] * inv[i]);
      s[k] -= acc;
    }
    for (int64_t i = lo; i < hi; ++i) s[labels[i]] += 1.0;
    lo = hi;
  }
}

// Adds g(x_i) = x_i of the linear signal to the class sums, for n <= kTile consecutive
// samples, in sample order (the order every backend adds in). Cloned like the other tile
// kernels, so the conversions and adds run in AVX2 registers where the CPU has them.
template <class Real>
LESDE_CLONES void add_linear_tile(int p, const Real* X, const int32_t* classes, int64_t n,
                                  double* sums) {
  for (int64_t i = 0; i < n; ++i) {
    double* s = sums + int64_t(classes[i]) * p;
    const Real* x = X + i * p;
    for (int q = 0; q < p; ++q) s[q] += double(x[q]);
  }
}

// Scratch space of one thread for one tile of samples.
template <class Real>
struct TileScratch {
  std::vector<Real> xi, z;
  std::vector<double> g, zd, lse;
  // move_tile's steps of one class, repeated kTile times, kept while the class stays the same
  // (samples are class-sorted; a TileScratch lives for one block of one sweep).
  std::vector<double> steps;
  int steps_class = -1;
  TileScratch(int K, int p)
      : xi(kTile * p), z(kTile * std::max(K, p)), g(p), zd(K), lse(kTile), steps(kTile * p) {}
};

// Moves n <= kTile consecutive samples as move_sample moves each, by runs of one class: the
// run's values are contiguous and its steps repeat with period p, so with the steps laid out
// once per class the loop runs flat over the run's values and vectorises.
template <class Real>
LESDE_CLONES void move_tile(Move move, int p, const double* coef, const int32_t* classes, int64_t n,
                            double dt, double noise_scale, const Real* xi, Real* X,
                            TileScratch<Real>& tile) {
  if (move == Move::None) return;
  const bool noisy = move == Move::Drift && xi != nullptr;
  for (int64_t lo = 0; lo < n;) {
    int64_t hi = lo + 1;
    while (hi < n && classes[hi] == classes[lo]) ++hi;
    const double* coef_c = coef + int64_t(classes[lo]) * p;
    if (tile.steps_class != classes[lo]) {
      for (int q = 0; q < p; ++q) tile.steps[q] = coordinate_step(move, coef_c[q], dt);
      for (int64_t e = p; e < kTile * p; ++e) tile.steps[e] = tile.steps[e - p];
      tile.steps_class = classes[lo];
    }
    const double* __restrict step = tile.steps.data();
    Real* __restrict x = X + lo * p;
    const int64_t count = (hi - lo) * p;
    if (noisy) {
      const Real* __restrict z = xi + lo * p;
      for (int64_t e = 0; e < count; ++e) x[e] = moved(x[e], step[e], noise_scale, z[e]);
    } else {
      for (int64_t e = 0; e < count; ++e) x[e] = moved(x[e], step[e]);
    }
    lo = hi;
  }
}

// Adds g(x_i, y_i) of n <= kTile consecutive samples to the class sums (K x p): signal() per
// sample, except where a whole tile at once is faster (the same numbers either way).
// Returns each sample's log-sum-exp of its logits (in tile.lse) where it computed them in
// double on the way (the cross-entropy signal of a float64 state), else nullptr.
template <class Real>
const double* add_signal_tile(const SignalSpec& spec, const Real* X, const int32_t* labels,
                              const int32_t* classes, int64_t n, TileScratch<Real>& tile,
                              double* sums) {
  const int p = spec.p;
  if (spec.kind == Signal::CrossEntropy && spec.head == nullptr) {
    constexpr bool exact = sizeof(Real) == sizeof(double);
    add_cross_entropy_tile(spec.K, X, labels, classes, n, tile.z.data(), sums,
                           exact ? tile.lse.data() : nullptr);
    return exact ? tile.lse.data() : nullptr;
  }
  if (spec.kind == Signal::Linear) {  // g = x: no need for a copy
    add_linear_tile(p, X, classes, n, sums);
    return nullptr;
  }
  for (int64_t i = 0; i < n; ++i) {
    signal(spec, X + i * p, labels[i], tile.g.data(), tile.z.data(), tile.zd.data());
    double* s = sums + int64_t(classes[i]) * p;
    for (int q = 0; q < p; ++q) s[q] += tile.g[q];
  }
  return nullptr;
}

}  // namespace lesde
