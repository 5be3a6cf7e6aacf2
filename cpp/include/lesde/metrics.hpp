// Streamed metrics at record steps (MODEL.md section 4), without storing trajectories.
//
// Two passes over one replica's state: the first gathers class sums, loss and
// accuracies; the second, with the class means known, the centred within-class scatter
// (never E[xx^T] - mm^T, which cancels catastrophically) and the nearest-class-centre
// decisions. Both use the fixed blocks of reduce.hpp, so they are deterministic.
// NC1 and NC2 need only the small K x p / p x p results and are finished in Python
// (lesde.metrics), with the same code that serves user arrays.
#pragma once

#include <Eigen/Dense>
#include <cmath>
#include <limits>
#include <vector>

#include "model.hpp"
#include "reduce.hpp"
#include "signals.hpp"
#include "state.hpp"

namespace lesde {

struct RecordOutput {
  double* class_means;  // K x p
  double* label_means;  // K x p
  double* sigma_w;      // p x p
  double* scalars;      // kNumScalars
};

// Returns false when the state holds a NaN or an infinity.
template <class Real>
bool record_metrics(const EngineConfig& cfg, const Real* X, const int32_t* labels,
                    const int32_t* classes, int threads, RecordOutput out) {
  const int K = cfg.K, p = cfg.p;
  const int64_t N = cfg.n_samples();
  const Shard shard = cfg.shard();  // X, labels, classes are this rank's samples
  const Blocks& blocks = shard.blocks;
  const int64_t off = shard.offset(), nb = shard.last - shard.first;
  const SignalSpec spec = SignalSpec::from(cfg);
  const bool has_logits = cfg.has_head() || p == K;
  const double nan = std::numeric_limits<double>::quiet_NaN();

  // Pass 1: sums by true class and by label, label counts, loss, accuracies.
  const int64_t w1 = 2 * K * p + K + 3;  // [sum_c | sum_y | count_y | loss, acc, clean]
  std::vector<double> part1(nb * w1, 0.0);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t b = shard.first; b < shard.last; ++b) {
    double* acc = part1.data() + (b - shard.first) * w1;
    double* sum_c = acc;
    double* sum_y = acc + K * p;
    double* count_y = acc + 2 * K * p;
    double* tail = count_y + K;
    std::vector<double> z(K);
    for (int64_t i = blocks.begin(b) - off; i < blocks.end(b) - off; ++i) {
      const Real* x = X + i * p;
      const int c = classes[i], y = labels[i];
      for (int q = 0; q < p; ++q) {
        sum_c[c * p + q] += double(x[q]);
        sum_y[y * p + q] += double(x[q]);
      }
      count_y[y] += 1.0;
      if (has_logits) {
        logits(spec, x, z.data());
        int best = 0;
        for (int k = 1; k < K; ++k) best = z[k] > z[best] ? k : best;
        const double zy = z[y];
        double top, total;  // -log softmax(z)_y = log-sum-exp(z) - z_y
        shifted_exp_rows<1>(K, 1, z.data(), K, z.data(), &top, &total);
        tail[0] += top + std::log(total) - zy;
        tail[1] += (best == y);
        tail[2] += (best == c);
      }
    }
  }
  std::vector<double> tot1(w1);
  combine_blocks(shard, cfg.exchange, part1, w1, tot1.data());
  const double* count_y = tot1.data() + 2 * K * p;
  for (int k = 0; k < K; ++k) {
    const double nc = double(cfg.class_sizes[k]);
    for (int q = 0; q < p; ++q) {
      out.class_means[k * p + q] = tot1[k * p + q] / nc;
      out.label_means[k * p + q] =
          count_y[k] > 0 ? tot1[K * p + k * p + q] / count_y[k] : nan;
    }
  }
  const double* tail = count_y + K;
  out.scalars[kLoss] = has_logits ? tail[0] / N : nan;
  out.scalars[kAccuracy] = has_logits ? tail[1] / N : nan;
  out.scalars[kCleanAccuracy] = has_logits ? tail[2] / N : nan;
  bool finite = std::isfinite(tail[0]);
  for (int j = 0; j < K * p; ++j) finite = finite && std::isfinite(tot1[j]);
  if (!finite) return false;

  // Pass 2: centred within-class scatter by label, NCC accuracy and NC4 agreement.
  const int64_t w2 = int64_t(p) * p + 2;
  std::vector<double> part2(nb * w2, 0.0);
  const double* mu = out.label_means;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t b = shard.first; b < shard.last; ++b) {
    const int64_t lo = blocks.begin(b) - off, rows = blocks.end(b) - blocks.begin(b);
    Eigen::MatrixXd centred(rows, p);
    std::vector<double> z(K);
    double ncc_correct = 0.0, agree = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      const Real* x = X + (lo + r) * p;
      const int y = labels[lo + r];
      for (int q = 0; q < p; ++q) centred(r, q) = double(x[q]) - mu[y * p + q];
      int nearest = -1;
      double best = std::numeric_limits<double>::infinity();
      for (int k = 0; k < K; ++k) {
        if (count_y[k] == 0) continue;
        double d2 = 0.0;
        for (int q = 0; q < p; ++q) {
          const double d = double(x[q]) - mu[k * p + q];
          d2 += d * d;
        }
        if (d2 < best) best = d2, nearest = k;
      }
      ncc_correct += (nearest == y);
      if (has_logits) {
        logits(spec, x, z.data());
        int top = 0;
        for (int k = 1; k < K; ++k) top = z[k] > z[top] ? k : top;
        agree += (nearest == top);
      }
    }
    double* acc = part2.data() + (b - shard.first) * w2;
    Eigen::Map<Eigen::MatrixXd>(acc, p, p).noalias() = centred.transpose() * centred;
    acc[p * p] = ncc_correct;
    acc[p * p + 1] = agree;
  }
  std::vector<double> tot2(w2);
  combine_blocks(shard, cfg.exchange, part2, w2, tot2.data());
  for (int64_t j = 0; j < int64_t(p) * p; ++j) out.sigma_w[j] = tot2[j] / N;
  out.scalars[kNccAccuracy] = tot2[p * p] / N;
  out.scalars[kNc4] = has_logits ? tot2[p * p + 1] / N : nan;
  return true;
}

// Writes record `idx` of `replica` from its state X (local samples, with their labels and
// classes): the metrics above and the trajectories of record_samples. Shared by the CPU
// and CUDA engines. Returns false when the state is not finite.
template <class Real>
bool record_replica(const EngineConfig& cfg, const RecordView& rec, int64_t replica,
                    int64_t idx, const Real* X, const int32_t* labels, const int32_t* classes,
                    int threads) {
  const int K = cfg.K, p = cfg.p;
  const int64_t slot = replica * int64_t(cfg.record_steps.size()) + idx;
  RecordOutput out{rec.class_means + slot * K * p, rec.label_means + slot * K * p,
                   rec.sigma_w + slot * p * p, rec.scalars + slot * kNumScalars};
  const bool ok = record_metrics(cfg, X, labels, classes, threads, out);
  const int64_t S = int64_t(cfg.record_samples.size());
  for (int64_t s = 0; s < S; ++s) {
    const Real* x = X + cfg.record_samples[s] * p;
    double* dst = rec.samples + (slot * S + s) * p;
    for (int q = 0; q < p; ++q) dst[q] = double(x[q]);
  }
  return ok;
}

}  // namespace lesde
