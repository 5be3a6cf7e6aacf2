// One record, described once for every backend (docs/model.md section 4): the scalars it holds,
// where each total sits in a pass's accumulator, and the per-sample rules that decide and
// score a sample. The CPU tiles (metrics.hpp) and the CUDA record kernels
// (cpp/cuda/record_kernels.cuh) call these LESDE_HD functions, so every backend evaluates the
// same expressions; only the loops around them (a tile's lanes, a warp's samples) differ.
//
// Lanes: the functions taking <W> work on n samples side by side, value k of sample i at
// v[k * W + i]. The CPU calls them with W = kTile (loops over samples innermost: they
// vectorise), a GPU thread with W = n = 1 (one sample: plain loops over k and q).
#pragma once

#include <cmath>  // HUGE_VAL
#include <cstdint>

#include "fastmath.hpp"  // LESDE_HD, fastmath::log
#include "signals.hpp"   // SignalSpec

namespace lesde {

// ---------------------------------------------------------------- the recorded scalars

// The scalar metrics recorded at each record step, in this order (RecordView::scalars).
enum Scalar : int { kLoss = 0, kAccuracy, kCleanAccuracy, kNccAccuracy, kNc4, kNumScalars };

// What each scalar is, in one place: Python reads the names (and their order) from here
// (_core.scalar_metrics(), lesde.result.SCALAR_METRICS), so the file formats, the Zarr
// store and the docs' metric table follow this table.
//
// pass: the record pass that adds it up (1: first moments, in the step's last sweep; 2: with
// the label means known). needs: "logits" (NaN for a model without logits: no head and
// p != K, has_logits below) or "features".
//
// Rule: changing this table (a name, the order, a new scalar) changes the files that hold
// records. Bump lesde.result.FORMAT_VERSION, lesde.checkpoint.FORMAT_VERSION and
// lesde.zarr_store.FORMAT_VERSION with it and add the new table to the history in
// tests/test_record_table.py, which fails until both are done; files of the old version
// are then refused with a message naming their version.
struct ScalarInfo {
  Scalar index;
  const char* name;
  int pass;
  const char* needs;
};
inline constexpr ScalarInfo kScalars[] = {
    {kLoss, "loss", 1, "logits"},
    {kAccuracy, "accuracy", 1, "logits"},
    {kCleanAccuracy, "clean_accuracy", 1, "logits"},
    {kNccAccuracy, "ncc_accuracy", 2, "features"},
    {kNc4, "nc4", 2, "logits"},
};
static_assert(sizeof(kScalars) / sizeof(kScalars[0]) == kNumScalars, "one kScalars row per Scalar");

// ---------------------------------------------------------------- the accumulators

// Where each total sits in a pass's accumulator (per block, per GPU segment, and summed).
struct RecordLayout {
  int K, p;
  LESDE_HD RecordLayout(int K_, int p_) : K(K_), p(p_) {}
  template <class Config>  // EngineConfig (model.hpp)
  explicit RecordLayout(const Config& cfg) : K(cfg.K), p(cfg.p) {}
  // pass 1: [sum by class c (K x p) | sum by label y (K x p) | count by label (K) |
  //          loss, correct, clean correct]
  LESDE_HD int64_t sum_c() const { return 0; }
  LESDE_HD int64_t sum_y() const { return int64_t(K) * p; }
  LESDE_HD int64_t count_y() const { return 2 * int64_t(K) * p; }
  LESDE_HD int64_t loss() const { return 2 * int64_t(K) * p + K; }
  LESDE_HD int64_t correct() const { return loss() + 1; }
  LESDE_HD int64_t clean_correct() const { return loss() + 2; }
  LESDE_HD int64_t first_width() const { return loss() + 3; }
  // pass 2: [scatter of x - mu_y (p x p) | nearest-centre correct | nearest centre == argmax]
  LESDE_HD int64_t scatter() const { return 0; }
  LESDE_HD int64_t ncc_hits() const { return int64_t(p) * p; }
  LESDE_HD int64_t nc4_agree() const { return ncc_hits() + 1; }
  LESDE_HD int64_t second_width() const { return nc4_agree() + 1; }
};

// ---------------------------------------------------------------- the per-sample rules

// Whether a model has logits to score: a head, or features that are logits (p == K).
LESDE_HD bool has_logits(const SignalSpec& spec) {
  return spec.head != nullptr || spec.p == spec.K;
}

// For each of n lanes, the first index of the largest of K values: arg[i], and the value,
// top[i]. Ties: the first (the argmax of logits). Written as arithmetic, not as "if above,
// store": compilers turn that into masked stores, which are microcoded and slow on some CPUs
// (2-5x on this loop on Zen 3). Indices are doubles, so the CPU's selects run in one width.
template <int W>
LESDE_HD void first_max(int K, int n, const double* __restrict__ v, double* __restrict__ top,
                        double* __restrict__ arg) {
  for (int i = 0; i < n; ++i) arg[i] = 0.0, top[i] = v[i];
  for (int k = 1; k < K; ++k) {
    const double* __restrict__ vk = v + k * W;
    for (int i = 0; i < n; ++i) {
      const double x = vk[i], t = top[i], a = arg[i];
      const double above = x > t ? 1.0 : 0.0;
      top[i] = t < x ? x : t;  // std::max(t, x): the first of equal values stays
      arg[i] = a + above * (double(k) - a);
    }
  }
}

// A sample's cross-entropy loss, -log softmax(z)_y = log-sum-exp(z) - z_y.
LESDE_HD double sample_loss(double lse, double z_y) { return lse - z_y; }

// A coordinate of a sample centred on its label's mean (the scatter of pass 2).
LESDE_HD double centred(double x, double mu) { return x - mu; }

// For each of n lanes (coordinate q of lane i at x[q * W + i]), the nearest label mean
// (means: K x p; Euclidean, the squared distance summed over q in order; ties: the first;
// labels with no sample, count 0, are never nearest; -1 when none is): nearest[i], and its
// squared distance best[i]. d2: n values of scratch.
template <int W, class X>
LESDE_HD void nearest_mean(int K, int p, int n, const X* __restrict__ x,
                           const double* __restrict__ means, const double* __restrict__ counts,
                           double* __restrict__ d2, double* __restrict__ best,
                           double* __restrict__ nearest) {
  for (int i = 0; i < n; ++i) best[i] = HUGE_VAL;  // +infinity, in device code too
  for (int i = 0; i < n; ++i) nearest[i] = -1.0;
  for (int k = 0; k < K; ++k) {
    if (counts[k] == 0) continue;
    for (int i = 0; i < n; ++i) d2[i] = 0.0;
    for (int q = 0; q < p; ++q) {
      const double mu = means[k * p + q];
      const X* __restrict__ xq = x + q * W;
      for (int i = 0; i < n; ++i) {
        const double d = centred(double(xq[i]), mu);
        d2[i] += d * d;
      }
    }
    for (int i = 0; i < n; ++i) {  // arithmetic selects, as in first_max
      const double d = d2[i], b = best[i], arg = nearest[i];
      const double closer = d < b ? 1.0 : 0.0;
      best[i] = d < b ? d : b;  // std::min(b, d): the first of equal ones stays
      nearest[i] = arg + closer * (double(k) - arg);
    }
  }
}

// A sample's scores as pass 1 adds them up: its loss, and whether the argmax of its logits
// (first_max) is its label y (accuracy) and its true class c (clean accuracy). Counts are
// integers where the caller likes (exact in any order).
template <class Count>
LESDE_HD void score_first(double lse, double z_y, double argmax, int y, int c, double& loss,
                          Count& correct, Count& clean) {
  loss = sample_loss(lse, z_y);
  correct += Count(argmax == double(y));
  clean += Count(argmax == double(c));
}

// Pass 2: whether the nearest label mean (nearest_mean) is the sample's label (NCC accuracy),
// and whether it is the argmax of the logits (NC4).
LESDE_HD bool ncc_hit(double nearest, int y) { return nearest == double(y); }
LESDE_HD bool nc4_agrees(double nearest, double argmax) { return nearest == argmax; }

}  // namespace lesde
