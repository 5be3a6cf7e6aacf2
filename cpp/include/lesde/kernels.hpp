// The per-sample work of a step, done a tile of consecutive samples at a time so that
// the transcendental functions run in vectorised loops (structure of arrays) instead of
// one call per number. Semantics are those of signals.hpp; only the loop shape differs.
// The heavy kernel is compiled twice on x86-64 with GCC (AVX2 and baseline, LESDE_CLONES).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "fastmath.hpp"
#include "rng.hpp"
#include "rng_fill.hpp"  // LESDE_CLONES
#include "sample.hpp"
#include "signals.hpp"

namespace lesde {

constexpr int64_t kTile = 128;  // samples per tile: a tile's state and scratch stay in L1/L2

// f(width, start) over 0 .. count - 1 cut into chunks of 8, then one of 4, 2 and 1 as needed
// (width a std::integral_constant): loops over a runtime count of independent sums, each
// chunk's sums held in registers side by side.
template <class F>
LESDE_FILL_INLINE void in_register_chunks(int count, F&& f) {
  int start = 0;
  for (; start + 8 <= count; start += 8) f(std::integral_constant<int, 8>{}, start);
  if (start + 4 <= count) f(std::integral_constant<int, 4>{}, start), start += 4;
  if (start + 2 <= count) f(std::integral_constant<int, 2>{}, start), start += 2;
  if (start < count) f(std::integral_constant<int, 1>{}, start);
}

// s[k0 + l] -= sum over samples lo .. hi - 1 of e[k0 + l][i] * inv[i], for l < W: each sum
// in sample order, the W sums side by side (add_cross_entropy_tile).
template <int W, class Real>
LESDE_FILL_INLINE void subtract_softmax_sums(const Real* e, const Real* inv, int64_t lo, int64_t hi,
                                             int k0, double* s) {
  double acc[W];
  for (int l = 0; l < W; ++l) acc[l] = 0.0;
  for (int64_t i = lo; i < hi; ++i)
    for (int l = 0; l < W; ++l) acc[l] += double(e[(k0 + l) * kTile + i] * inv[i]);
  for (int l = 0; l < W; ++l) s[k0 + l] -= acc[l];
}

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
    // s[k] -= sum over the run of softmax_k, each k's sum in sample order. Eight k's at a
    // time: their chains of additions are independent, so they overlap (one k after the
    // other, each addition waited for the previous one: the loop was latency bound).
    in_register_chunks(K, [&](auto width, int k0) LESDE_FILL_LAMBDA {
      subtract_softmax_sums<decltype(width)::value>(e, inv, lo, hi, k0, s);
    });
    // s[label] += 1 per sample, in sample order, the running value kept in a register
    // while the label repeats.
    for (int64_t i = lo; i < hi;) {
      const int32_t label = labels[i];
      double value = s[label];
      for (; i < hi && labels[i] == label; ++i) value += 1.0;
      s[label] = value;
    }
    lo = hi;
  }
}

// s[q0 + l] += x[i * p + q0 + l] over samples lo .. hi - 1 in order, for l < W, the W
// running sums held in registers (add_linear_tile).
template <int W, class Real>
LESDE_FILL_INLINE void add_columns(const Real* x, int p, int64_t lo, int64_t hi, int q0,
                                   double* s) {
  double acc[W];
  for (int l = 0; l < W; ++l) acc[l] = s[q0 + l];
  for (int64_t i = lo; i < hi; ++i)
    for (int l = 0; l < W; ++l) acc[l] += double(x[i * p + q0 + l]);
  for (int l = 0; l < W; ++l) s[q0 + l] = acc[l];
}

// Adds g(x_i) = x_i of the linear signal to the class sums, for n <= kTile consecutive
// samples, each sum in sample order (the order every backend adds in), by runs of one class
// with the running sums in registers (through memory, each sample's additions waited for
// the previous sample's store).
template <class Real>
LESDE_CLONES void add_linear_tile(int p, const Real* X, const int32_t* classes, int64_t n,
                                  double* sums) {
  for (int64_t lo = 0; lo < n;) {
    int64_t hi = lo + 1;
    while (hi < n && classes[hi] == classes[lo]) ++hi;
    double* s = sums + int64_t(classes[lo]) * p;
    in_register_chunks(p, [&](auto width, int q0) LESDE_FILL_LAMBDA {
      add_columns<decltype(width)::value>(X, p, lo, hi, q0, s);
    });
    lo = hi;
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
