// The records of the CUDA backend, computed where the state lives: the two passes of
// metrics.hpp (first moments; then, with the label means known, the centred scatter, the
// nearest-class-centre hits and NC4), so only the totals (about K x p and p x p numbers per
// replica) cross the bus.
//
// Layout: one warp per record segment (consecutive samples inside one fixed block of
// reduce.hpp), in two loops without a shuffle per sample:
// - the per-sample decisions (loss, argmax, nearest mean): each lane takes its own samples
//   and keeps counts, reduced over the warp by the fixed tree of warp_sum at the end;
// - the dense sums (by class, by label, the p x p scatter): each lane owns some entries
//   (coordinates l and l + 32 of every row; entries l, l + 32, ... of the scatter) and adds
//   the segment's samples into them one after another (the sample's values are the same
//   addresses for every lane: broadcast loads).
// Every total is then a fixed-order sum over a segment, over the block's segments (a small
// kernel), over blocks (the host): a record is the same on any GPU. The per-sample rules are
// record.hpp's, the ones the CPU tiles (metrics.hpp) call (the first maximum logit, the first
// nearest mean, empty labels skipped, the distance summed over q in order, the loss), and
// the totals sit where RecordLayout says, so the decisions agree with the CPU's exactly and
// the sums to rounding.
#pragma once

#include <cstdint>
#include <vector>

#include "device.hpp"
#include "kernels.cuh"  // kThreads, kWarps, warp_sum
#include "lesde/fastmath.hpp"
#include "lesde/record.hpp"
#include "lesde/reduce.hpp"
#include "lesde/signals.hpp"
#include "runtime.cuh"

namespace lesde::cuda::LESDE_CUDA_PLATFORM {

constexpr int64_t kRecordSegment = 2048;  // samples per warp in the record passes

// The record segments: each fixed block cut into pieces of at most kRecordSegment samples.
struct RecordSegments {
  std::vector<int64_t> begin, end;  // per segment: samples [begin, end)
  std::vector<int32_t> first;       // per block: its first segment; first[blocks] = count
  explicit RecordSegments(int64_t n_samples) {
    const Blocks blocks(n_samples);
    for (int64_t b = 0; b < blocks.count; ++b) {
      first.push_back(int32_t(begin.size()));
      for (int64_t s = blocks.begin(b); s < blocks.end(b); s += kRecordSegment) {
        begin.push_back(s);
        end.push_back(std::min(s + kRecordSegment, blocks.end(b)));
      }
    }
    first.push_back(int32_t(begin.size()));
  }
  int64_t count() const { return int64_t(begin.size()); }
  int64_t blocks() const { return int64_t(first.size()) - 1; }
};

// ---------------------------------------------------------------- the passes

template <class Real>
struct RecordArgs {
  const Real* X;           // R x N x p
  const int32_t* labels;   // R x N
  const int32_t* classes;  // N
  int64_t N;
  int K, p;
  SignalSpec spec;          // head: a device pointer
  const int32_t* replicas;  // the listed replicas, one slot each
  int64_t n_slots, n_seg;
  const int64_t *seg_begin, *seg_end;
  const double* means;   // pass 2: n_slots x K x p label means
  const double* counts;  // pass 2: n_slots x K label counts
  int64_t width;         // of a segment's totals
  double* partial;       // n_slots x n_seg x width
};

// One sample's logits z (K values), and the first of their maxima (record.hpp first_max).
template <class Real>
__device__ __forceinline__ double sample_argmax(const SignalSpec& s, const Real* x, double* z) {
  logits(s, x, z);  // signals.hpp
  double top, best;
  first_max<1>(s.K, 1, z, &top, &best);
  return best;
}

// Pass 1 (metrics.hpp add_first_moments_tile): per segment, RecordLayout's first pass.
template <class Real>
__global__ void __launch_bounds__(kThreads) record_first_kernel(const RecordArgs<Real> a) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t warp = int64_t(blockIdx.x) * kWarps + int64_t(threadIdx.x >> 5);
  if (warp >= a.n_slots * a.n_seg) return;  // the whole warp leaves together
  const int64_t slot = warp / a.n_seg, seg = warp % a.n_seg;
  const int r = a.replicas[slot];
  const int K = a.K, p = a.p;
  const RecordLayout at(K, p);
  const Real* X = a.X + int64_t(r) * a.N * p;
  const int32_t* labels = a.labels + int64_t(r) * a.N;
  double* out = a.partial + (slot * a.n_seg + seg) * a.width;
  const int64_t begin = a.seg_begin[seg], end = a.seg_end[seg];
  // The lane's samples: loss and accuracies, the softmax of signals.hpp in double.
  double loss = 0.0, correct = 0.0, clean = 0.0;
  if (has_logits(a.spec)) {
    double z[kMaxDim], e[kMaxDim];
    for (int64_t i = begin + lane; i < end; i += 32) {
      const double best = sample_argmax(a.spec, X + i * p, z);
      double top, total, sample;
      shifted_exp_rows<1>(K, 1, z, K, 1, e, &top, &total);
      const int y = labels[i];
      score_first(log_sum_exp(top, total), z[y], best, y, a.classes[i], sample, correct, clean);
      loss += sample;
    }
  }
  loss = warp_sum(loss), correct = warp_sum(correct), clean = warp_sum(clean);
  // The lane's entries: coordinates lane and lane + 32 of every row, and (lane 0) the counts.
  for (int j = 0; j < 2; ++j) {
    const int q = lane + 32 * j;
    if (q >= p) continue;
    for (int k = 0; k < K; ++k) out[at.sum_c() + k * p + q] = out[at.sum_y() + k * p + q] = 0.0;
    for (int64_t i = begin; i < end; ++i) {
      const double x = double(X[i * p + q]);
      out[at.sum_c() + a.classes[i] * p + q] += x;
      out[at.sum_y() + labels[i] * p + q] += x;
    }
  }
  if (lane == 0) {
    for (int k = 0; k < K; ++k) out[at.count_y() + k] = 0.0;
    for (int64_t i = begin; i < end; ++i) out[at.count_y() + labels[i]] += 1.0;
    out[at.loss()] = loss;
    out[at.correct()] = correct;
    out[at.clean_correct()] = clean;
  }
}

// Pass 2 (metrics.hpp add_second_moments_tile): per segment, RecordLayout's second pass.
template <class Real>
__global__ void __launch_bounds__(kThreads) record_second_kernel(const RecordArgs<Real> a) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t warp = int64_t(blockIdx.x) * kWarps + int64_t(threadIdx.x >> 5);
  if (warp >= a.n_slots * a.n_seg) return;
  const int64_t slot = warp / a.n_seg, seg = warp % a.n_seg;
  const int r = a.replicas[slot];
  const int K = a.K, p = a.p;
  const RecordLayout at(K, p);
  const Real* X = a.X + int64_t(r) * a.N * p;
  const int32_t* labels = a.labels + int64_t(r) * a.N;
  const double* means = a.means + slot * int64_t(K) * p;
  const double* counts = a.counts + slot * int64_t(K);
  double* out = a.partial + (slot * a.n_seg + seg) * a.width;
  const int64_t entries = int64_t(p) * p, begin = a.seg_begin[seg], end = a.seg_end[seg];
  const bool scored = has_logits(a.spec);
  // The lane's samples: the nearest label mean against the label and the argmax.
  double hits = 0.0, agree = 0.0;
  double z[kMaxDim];
  for (int64_t i = begin + lane; i < end; i += 32) {
    const Real* x = X + i * p;
    double d2, best, nearest;
    nearest_mean<1>(K, p, 1, x, means, counts, &d2, &best, &nearest);
    hits += ncc_hit(nearest, labels[i]);
    if (scored) agree += nc4_agrees(nearest, sample_argmax(a.spec, x, z));
  }
  hits = warp_sum(hits), agree = warp_sum(agree);
  // The lane's scatter entries e = a p + b (e = lane, lane + 32, ...), sample by sample.
  for (int64_t e = lane; e < entries; e += 32) {
    const int ea = int(e / p), eb = int(e % p);
    double acc = 0.0;
    for (int64_t i = begin; i < end; ++i) {
      const int y = labels[i];
      acc += centred(double(X[i * p + ea]), means[y * p + ea]) *
             centred(double(X[i * p + eb]), means[y * p + eb]);
    }
    out[at.scatter() + e] = acc;
  }
  if (lane == 0) {
    out[at.ncc_hits()] = hits;
    out[at.nc4_agree()] = agree;
  }
}

struct SegmentSumArgs {
  int64_t n_slots, n_seg, n_blocks, width;
  const int32_t* first;   // per block: its first segment (n_blocks + 1 entries)
  const double* partial;  // n_slots x n_seg x width
  double* blocks;         // n_slots x n_blocks x width
};

// One thread per (slot, block, entry): the block's total, its segments added in order.
__global__ void __launch_bounds__(kThreads) record_block_sums_kernel(const SegmentSumArgs a) {
  const int64_t t = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= a.n_slots * a.n_blocks * a.width) return;
  const int64_t j = t % a.width, b = (t / a.width) % a.n_blocks, slot = t / (a.width * a.n_blocks);
  const double* part = a.partial + slot * a.n_seg * a.width;
  double acc = 0.0;
  for (int64_t s = a.first[b]; s < a.first[b + 1]; ++s) acc += part[s * a.width + j];
  a.blocks[(slot * a.n_blocks + b) * a.width + j] = acc;
}

template <class Real>
struct GatherArgs {
  const Real* X;  // R x N x p
  int64_t N;
  int p;
  int32_t replica;
  const int64_t* samples;  // S sample indices
  int64_t S;
  double* out;  // S x p
};

// The trajectories' rows of one replica: thread per (sample, coordinate).
template <class Real>
__global__ void __launch_bounds__(kThreads) gather_kernel(const GatherArgs<Real> a) {
  const int64_t t = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= a.S * a.p) return;
  const int64_t s = t / a.p, q = t % a.p;
  a.out[t] = double(a.X[(int64_t(a.replica) * a.N + a.samples[s]) * a.p + q]);
}

}  // namespace lesde::cuda::LESDE_CUDA_PLATFORM
