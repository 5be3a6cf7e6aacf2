// Streamed metrics at record steps (MODEL.md section 4), without storing trajectories.
//
// A record is two passes over a replica's samples, over the fixed blocks of reduce.hpp (so
// the totals do not depend on threads):
// 1. the first moments: sums by true class and by label, label counts, loss, accuracies.
//    They need only the sample itself, so a backend accumulates them inside the sweep that
//    makes the recorded state (Sweep::record): no extra pass over memory.
// 2. with the label means known: the centred within-class scatter (never E[xx^T] - mm^T,
//    which cancels catastrophically), the nearest-class-centre decisions and NC4, in one
//    read-only pass.
// The tile functions below do both for kTile samples at a time, with the loops over samples
// innermost so they vectorise. finish_first/finish_second turn the totals into a record.
// NC1 and NC2 need only the small K x p / p x p results and are finished in Python
// (lesde.neural_collapse), with the same code that serves user arrays.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "dense.hpp"
#include "fastmath.hpp"
#include "kernels.hpp"  // kTile
#include "model.hpp"
#include "record.hpp"
#include "reduce.hpp"
#include "signals.hpp"
#include "state.hpp"

namespace lesde {

// Scratch of one thread for one tile of samples; "t" arrays are transposed (structure of
// arrays: entry q of sample i at [q * kTile + i]), so the loops over samples vectorise.
// Class indices are kept as doubles (best, nearest), so the select loops over samples run
// in one vector width.
struct RecordScratch {
  std::vector<double> buffer;
  double *xt, *zt, *ct, *e, *top, *total, *lse, *best_z, *best, *d2, *best_d, *nearest;
  RecordScratch(int K, int p) : buffer(kTile * (3 * size_t(p) + 2 * size_t(K) + 9)) {
    double* next = buffer.data();
    auto take = [&next](size_t count) { double* at = next; next += count * kTile; return at; };
    xt = take(p), ct = take(p), zt = take(K), e = take(K);
    top = take(1), total = take(1), lse = take(1), best_z = take(1), best = take(1);
    d2 = take(1), best_d = take(1), nearest = take(1);
  }
  RecordScratch(const RecordScratch&) = delete;
  RecordScratch& operator=(const RecordScratch&) = delete;
};

// Helpers of the tile functions below, inlined into them so that they are compiled for the
// same instruction set (the tile functions are LESDE_CLONES). Their arrays are distinct
// (__restrict), so the compiler vectorises without run-time overlap checks. The per-sample
// rules they apply are record.hpp's, over whole tiles (kTile lanes, a constant: fully
// vectorised, no remainder); lanes past a short last tile hold finite leftovers and are never
// added up.
#if defined(__GNUC__)
#define LESDE_INLINE inline __attribute__((always_inline))
#else
#define LESDE_INLINE inline
#endif

// The tile's logits, transposed (K x n), and each sample's first maximum logit (s.best: the
// argmax). Without a head (p == K) the logits are the features: xt itself, which the caller
// filled.
LESDE_INLINE const double* logits_and_argmax(const SignalSpec& spec, RecordScratch& s) {
  const double* zt = s.xt;
  if (spec.head != nullptr) {
    head_logits<kTile>(spec, kTile, s.xt, s.zt);
    zt = s.zt;
  }
  first_max<kTile>(spec.K, kTile, zt, s.best_z, s.best);
  return zt;
}

// xt = the tile's features, transposed.
template <class Real>
LESDE_INLINE void transpose_features(int p, const Real* __restrict X, int64_t n,
                                     double* __restrict xt) {
  for (int64_t i = 0; i < n; ++i)
    for (int q = 0; q < p; ++q) xt[q * kTile + i] = double(X[i * p + q]);
}

// sum_i x[i] y[i] (dot8) and sum_i x[i] (sum8) over n values, in eight interleaved partial
// sums added in a fixed order: they vectorise, and every instruction set adds the same
// numbers in the same order.
LESDE_INLINE double add_lanes(const double lane[8]) {
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}
LESDE_INLINE double dot8(const double* __restrict x, const double* __restrict y, int64_t n) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += x[i + j] * y[i + j];
  double sum = add_lanes(lane);
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}
LESDE_INLINE double sum8(const double* __restrict x, int64_t n) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += x[i + j];
  double sum = add_lanes(lane);
  for (; i < n; ++i) sum += x[i];
  return sum;
}

// Pass 1 for n <= kTile consecutive samples: adds their first moments to acc. lse: each
// sample's log-sum-exp of its logits where the caller already has it (the cross-entropy
// sweep of a float64 state computes exactly these numbers), else nullptr.
template <class Real>
LESDE_CLONES void add_first_moments_tile(const SignalSpec& spec, const Real* X,
                                         const int32_t* labels, const int32_t* classes,
                                         int64_t n, const double* lse, RecordScratch& s,
                                         double* acc) {
  const int K = spec.K, p = spec.p;
  const RecordLayout at{K, p};
  transpose_features(p, X, n, s.xt);
  // Sums by class, over each run of one class (samples are class-sorted: one run or two per
  // tile); by label the same numbers where the run's labels are its class (no label noise),
  // else sample by sample.
  for (int64_t lo = 0; lo < n;) {
    int64_t hi = lo + 1;
    bool clean = labels[lo] == classes[lo];
    while (hi < n && classes[hi] == classes[lo]) clean = clean && labels[hi] == classes[hi], ++hi;
    const int c = classes[lo];
    for (int q = 0; q < p; ++q) {
      const double sum = sum8(s.xt + q * kTile + lo, hi - lo);
      acc[at.sum_c() + c * p + q] += sum;
      if (clean) acc[at.sum_y() + c * p + q] += sum;
    }
    if (clean) {
      acc[at.count_y() + c] += double(hi - lo);
    } else {
      for (int64_t i = lo; i < hi; ++i) {
        double* sy = acc + at.sum_y() + int64_t(labels[i]) * p;
        for (int q = 0; q < p; ++q) sy[q] += s.xt[q * kTile + i];
        acc[at.count_y() + labels[i]] += 1.0;
      }
    }
    lo = hi;
  }
  if (!has_logits(spec)) return;
  const double* zt = logits_and_argmax(spec, s);
  if (lse == nullptr) {  // the softmax of signals.hpp
    shifted_exp_rows<kTile>(K, int(n), zt, 1, kTile, s.e, s.top, s.total);
    for (int64_t i = 0; i < n; ++i) s.lse[i] = log_sum_exp(s.top[i], s.total[i]);
    lse = s.lse;
  }
  // Integers: exact in any order. s.e: each sample's loss.
  int64_t correct = 0, clean_correct = 0;
  for (int64_t i = 0; i < n; ++i)
    score_first(lse[i], zt[labels[i] * kTile + i], s.best[i], labels[i], classes[i], s.e[i],
                correct, clean_correct);
  acc[at.loss()] += sum8(s.e, n);
  acc[at.correct()] += double(correct);
  acc[at.clean_correct()] += double(clean_correct);
}

// Pass 2 for n <= kTile consecutive samples: adds their centred scatter, nearest-centre
// hits and NC4 agreements to acc. means: label means (K x p); count: label counts (K).
template <class Real>
LESDE_CLONES void add_second_moments_tile(const SignalSpec& spec, const Real* X, const int32_t* labels,
                             int64_t n, const double* means, const double* count,
                             RecordScratch& s, double* acc) {
  const int K = spec.K, p = spec.p;
  const RecordLayout at{K, p};
  transpose_features(p, X, n, s.xt);
  // Scatter of x - mu_y: its lower triangle by dot products over the tile, mirrored.
  for (int64_t lo = 0; lo < n;) {  // runs of one label: subtract one mean, vectorised
    int64_t hi = lo + 1;
    while (hi < n && labels[hi] == labels[lo]) ++hi;
    for (int q = 0; q < p; ++q) {
      const double mu = means[labels[lo] * p + q];
      const double* __restrict xq = s.xt + q * kTile;
      double* __restrict cq = s.ct + q * kTile;
      for (int64_t i = lo; i < hi; ++i) cq[i] = centred(xq[i], mu);
    }
    lo = hi;
  }
  double* scatter = acc + at.scatter();
  for (int a = 0; a < p; ++a)
    for (int b = 0; b <= a; ++b) {
      const double v = dot8(s.ct + a * kTile, s.ct + b * kTile, n);
      scatter[a * p + b] += v;
      if (b != a) scatter[b * p + a] += v;
    }
  nearest_mean<kTile>(K, p, kTile, s.xt, means, count, s.d2, s.best_d, s.nearest);
  // Counts in integers: exact in any order, so the compiler may vectorise the sums.
  int64_t hits = 0, agree = 0;
  for (int64_t i = 0; i < n; ++i) hits += ncc_hit(s.nearest[i], labels[i]);
  acc[at.ncc_hits()] += double(hits);
  if (!has_logits(spec)) return;
  logits_and_argmax(spec, s);
  for (int64_t i = 0; i < n; ++i) agree += nc4_agrees(s.nearest[i], s.best[i]);
  acc[at.nc4_agree()] += double(agree);
}

// Runs add_tile(li, n, scratch, acc) over this process's samples (li: the tile's first
// local sample, n <= kTile), in parallel over the fixed blocks, each block into its own
// `width` partial sums, then adds the blocks by the fixed tree (reduce.hpp), so the totals
// do not depend on threads or ranks.
template <class AddTile>
void host_pass(const EngineConfig& cfg, int64_t width, int threads, double* tot,
               AddTile add_tile) {
  const Shard shard = cfg.shard();
  const int64_t off = shard.offset();
  reduce_blocks(shard, cfg.exchange, width, threads, tot, [&] {
    return [&, scratch = RecordScratch(cfg.K, cfg.p)](int64_t b, double* acc) mutable {
      for (int64_t i0 = shard.blocks.begin(b); i0 < shard.blocks.end(b); i0 += kTile)
        add_tile(i0 - off, std::min(kTile, shard.blocks.end(b) - i0), scratch, acc);
    };
  });
}

// Both passes over a replica's samples on the host (a backend whose sweeps do not
// accumulate pass 1 themselves calls the first; the CPU's second pass is the second).
// X, labels, classes: this process's samples (all, unless sharded).
template <class Real>
void host_first_moments(const EngineConfig& cfg, const Real* X, const int32_t* labels,
                        const int32_t* classes, int threads, double* tot) {
  const SignalSpec spec = SignalSpec::from(cfg);
  host_pass(cfg, RecordLayout(cfg).first_width(), threads, tot,
            [&](int64_t li, int64_t n, RecordScratch& scratch, double* acc) {
              add_first_moments_tile(spec, X + li * cfg.p, labels + li, classes + li, n,
                                     nullptr, scratch, acc);
            });
}

template <class Real>
void host_second_moments(const EngineConfig& cfg, const Real* X, const int32_t* labels,
                         const double* means, const double* count, int threads, double* tot) {
  const SignalSpec spec = SignalSpec::from(cfg);
  host_pass(cfg, RecordLayout(cfg).second_width(), threads, tot,
            [&](int64_t li, int64_t n, RecordScratch& scratch, double* acc) {
              add_second_moments_tile(spec, X + li * cfg.p, labels + li, n, means, count,
                                      scratch, acc);
            });
}

// Record entries from the pass-1 totals: class and label means, loss, accuracies. Returns
// false when the state holds a NaN or an infinity.
inline bool finish_first(const EngineConfig& cfg, const double* tot, RecordOutput out) {
  const RecordLayout at(cfg);
  const int K = cfg.K, p = cfg.p;
  const double N = double(cfg.n_samples()), nan = std::numeric_limits<double>::quiet_NaN();
  const bool scored = has_logits(SignalSpec::from(cfg));
  const double* count_y = tot + at.count_y();
  const dense::ConstView sum_c = dense::view(tot + at.sum_c(), K, p);
  const dense::ConstView sum_y = dense::view(tot + at.sum_y(), K, p);
  dense::View class_means = dense::view(out.class_means, K, p);
  dense::View label_means = dense::view(out.label_means, K, p);
  for (int k = 0; k < K; ++k) {
    class_means.row(k) = sum_c.row(k) / double(cfg.class_sizes[k]);
    if (count_y[k] > 0)
      label_means.row(k) = sum_y.row(k) / count_y[k];
    else
      label_means.row(k).setConstant(nan);  // no sample holds this label
  }
  out.scalars[kLoss] = scored ? tot[at.loss()] / N : nan;
  out.scalars[kAccuracy] = scored ? tot[at.correct()] / N : nan;
  out.scalars[kCleanAccuracy] = scored ? tot[at.clean_correct()] / N : nan;
  return std::isfinite(tot[at.loss()]) && sum_c.allFinite();
}

// Record entries from the pass-2 totals: Sigma_W, NCC accuracy, NC4.
inline void finish_second(const EngineConfig& cfg, const double* tot, RecordOutput out) {
  const RecordLayout at(cfg);
  const int p = cfg.p;
  const double N = double(cfg.n_samples()), nan = std::numeric_limits<double>::quiet_NaN();
  dense::view(out.sigma_w, p, p) = dense::view(tot + at.scatter(), p, p) / N;
  out.scalars[kNccAccuracy] = tot[at.ncc_hits()] / N;
  out.scalars[kNc4] = has_logits(SignalSpec::from(cfg)) ? tot[at.nc4_agree()] / N : nan;
}

// Where record `idx` of `replica` goes in the caller's record arrays.
inline RecordOutput record_slot(const EngineConfig& cfg, const RecordView& rec, int64_t replica,
                                int64_t idx) {
  const int K = cfg.K, p = cfg.p;
  const int64_t slot = replica * int64_t(cfg.record_steps.size()) + idx;
  return RecordOutput{rec.class_means + slot * K * p, rec.label_means + slot * K * p,
                      rec.sigma_w + slot * p * p, rec.scalars + slot * kNumScalars};
}

}  // namespace lesde
