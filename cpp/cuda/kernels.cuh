// The kernels of the CUDA backend and the tables they read. Kept apart from the CUDA
// runtime calls (device.cu) so that the same code also compiles for the host, a thread per
// lane, in the emulator (emulator.hpp) that checks it on machines without a GPU. Everything
// here lives in the platform's own namespace (runtime.cuh), so the GPU and the emulator
// builds link into one module without sharing a symbol.
//
// The per-sample physics is not written here: the kernels call the LESDE_HD functions of
// cpp/include/lesde (normals_at, initial_label, initial_features, move_sample, signal), the
// same ones the CPU sweeps use, with the same global indices, so the GPU draws the same
// random numbers and moves every sample by the same expression. device.cu is compiled with
// --fmad=false: nothing is contracted.
//
// Class sums. The samples are cut into the fixed blocks of reduce.hpp, and each block into
// segments of kSegment consecutive samples, one warp each (a segment never straddles a
// block). A warp adds its samples' g(x, y) by a fixed shuffle tree into the segment's
// partial sums; a second kernel adds the segment partials of each block in segment order;
// the host adds the block partials by the fixed tree of reduce.hpp. Every order is fixed
// by N and the class sizes only, so a run is bit-for-bit reproducible on any GPU. Samples
// are class-sorted, so a segment touches one class (or a few at class boundaries): partial
// sums are stored only for the classes a segment or block holds.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "device.hpp"
#include "lesde/reduce.hpp"
#include "lesde/rng.hpp"
#include "lesde/sample.hpp"
#include "lesde/signals.hpp"
#include "runtime.cuh"  // the platform: the CUDA runtime, or the emulator's

namespace lesde::cuda::LESDE_CUDA_PLATFORM {

constexpr int kThreads = 256;                      // threads per CTA of every kernel
constexpr int kWarps = kThreads / 32;              // warps (segments) per CTA of the sweep
constexpr int kRows = 16;                          // samples per lane in a segment
constexpr int64_t kSegment = int64_t(32) * kRows;  // samples per segment (one warp)

// Where the partial class sums live, computed on the host from N and the class sizes
// (classes are sorted, so class k holds samples offset[k] .. offset[k + 1] - 1).
struct Tables {
  // Segments, in order (block by block): samples [begin, end), classes [clo, chi], and the
  // offset of their (chi - clo + 1) x p partial sums among all segment entries.
  std::vector<int32_t> seg_begin, seg_end, seg_clo, seg_chi;
  std::vector<int64_t> seg_off;
  int64_t seg_entries = 0;
  // Block entries, block by block and class by class within a block: the class, the
  // block, and the first and last segment of that block holding it.
  std::vector<int32_t> be_class, be_block, be_first, be_last;

  explicit Tables(const EngineConfig& cfg) {
    const int64_t N = cfg.n_samples();
    std::vector<int64_t> offset(cfg.K + 1, 0);
    for (int k = 0; k < cfg.K; ++k) offset[k + 1] = offset[k] + cfg.class_sizes[k];
    auto class_of = [&](int64_t i) {
      return int32_t(std::upper_bound(offset.begin(), offset.end(), i) - offset.begin() - 1);
    };
    const Blocks blocks(N);
    for (int64_t b = 0; b < blocks.count; ++b) {
      const int32_t first_seg = int32_t(seg_begin.size());
      for (int64_t s0 = blocks.begin(b); s0 < blocks.end(b); s0 += kSegment) {
        const int64_t s1 = std::min(s0 + kSegment, blocks.end(b));
        seg_begin.push_back(int32_t(s0));
        seg_end.push_back(int32_t(s1));
        seg_clo.push_back(class_of(s0));
        seg_chi.push_back(class_of(s1 - 1));
        seg_off.push_back(seg_entries);
        seg_entries += seg_chi.back() - seg_clo.back() + 1;
      }
      // Every class between the block's first and last is in it (sizes are >= 1), and the
      // segments' class ranges advance monotonically: one pass finds each class's run.
      const int32_t last_seg = int32_t(seg_begin.size()) - 1;
      const int32_t clo = seg_clo[first_seg], chi = seg_chi[last_seg];
      const size_t e0 = be_class.size();
      for (int32_t k = clo; k <= chi; ++k) {
        be_class.push_back(k);
        be_block.push_back(int32_t(b));
        be_first.push_back(-1);
        be_last.push_back(-1);
      }
      for (int32_t s = first_seg; s <= last_seg; ++s) {
        for (int32_t k = seg_clo[s]; k <= seg_chi[s]; ++k) {
          const size_t e = e0 + size_t(k - clo);
          if (be_first[e] < 0) be_first[e] = s;
          be_last[e] = s;
        }
      }
    }
  }
  int64_t segments() const { return int64_t(seg_begin.size()); }
  int64_t block_entries() const { return int64_t(be_class.size()); }
  size_t table_bytes() const {
    return seg_begin.size() * (4 * sizeof(int32_t) + sizeof(int64_t)) +
           be_class.size() * 4 * sizeof(int32_t);
  }
};

// ---------------------------------------------------------------- kernels

// What a sweep reads: one small struct, passed by value.
template <class Real>
struct SweepArgs {
  Real* X;                 // R x N x p
  const int32_t* labels;   // R x N
  const int32_t* classes;  // N
  int64_t N;
  int K, p;
  SignalSpec spec;          // head: a device pointer
  const int32_t* replicas;  // the listed replicas, one slot each
  int64_t n_slots;
  const double* coef;      // n_slots x K x p
  double dt, noise_scale;  // the law of the increments: the kernel's Law (rng.hpp)
  uint64_t noise_seed;
  uint32_t step;
  int64_t n_seg;
  const int32_t *seg_begin, *seg_end, *seg_clo, *seg_chi;
  const int64_t* seg_off;
  int64_t seg_entries;
  double* seg_partial;  // n_slots x seg_entries x p
};

__device__ __forceinline__ double warp_sum(double v) {  // lane 0 gets the sum, fixed tree
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Moves sample i of one replica (kMove; Move::Drift draws its increments from the noise law
// Law, rng.hpp) in place (x: its row of the warp's staging tile) and writes g(x_new, y_i) to g.
template <class Real, Move kMove, class Law>
__device__ void move_and_signal(const SweepArgs<Real>& a, Real* x, const int32_t* labels,
                                const Stream& noise, const double* coef, int64_t i, int c,
                                Real* tmp, double* g, double* scratch) {
  const int p = a.p;
  if constexpr (kMove != Move::None) {
    // Increments i*p .. i*p+p-1 of the step, none where the noise scale is zero (as the CPU).
    const bool draws = kMove == Move::Drift && a.noise_scale != 0.0;
    if (draws) law_increments_at<Law>(noise, a.step, uint64_t(i) * uint64_t(p), p, tmp);
    move_sample(kMove, p, coef + c * p, a.dt, a.noise_scale, draws ? tmp : nullptr, x);
  }
  signal(a.spec, x, labels[i], g, tmp, scratch);
}

// The state goes through a staging tile in shared memory, 32 samples (one row) at a time:
// read and written by the warp with coalesced transfers (consecutive lanes, consecutive
// addresses), where each lane striding through its own sample (p values, p * sizeof(Real)
// bytes from its neighbour's) kept the load units busy and the warps waiting.
template <class Real>
__device__ __forceinline__ void load_row(const Real* src, int64_t count, Real* tile, int lane) {
  for (int64_t e = lane; e < count; e += 32) tile[e] = src[e];
  __syncwarp();
}
template <class Real>
__device__ __forceinline__ void store_row(const Real* tile, int64_t count, Real* dst, int lane) {
  __syncwarp();
  for (int64_t e = lane; e < count; e += 32) dst[e] = tile[e];
  __syncwarp();
}

// Dynamic shared memory a sweep needs: one staging row per warp of the CTA.
template <class Real>
inline size_t sweep_shared_bytes(int p) {
  return size_t(kWarps) * 32 * size_t(p) * sizeof(Real);
}

// One warp per (listed replica, segment): move the segment's samples and write its partial
// class sums. Lane l takes samples begin + l, begin + l + 32, ... (one per row).
// At least three CTAs per SM (at most 85 registers a thread): the warps in flight hide the
// memory latency better than registers spare the local memory (ptxas reported 118).
template <class Real, Move kMove, class Law>
__global__ void __launch_bounds__(kThreads, 3) sweep_kernel(const SweepArgs<Real> a) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t warp = int64_t(blockIdx.x) * kWarps + int64_t(threadIdx.x >> 5);
  if (warp >= a.n_slots * a.n_seg) return;  // the whole warp leaves together
  const int64_t slot = warp / a.n_seg, s = warp % a.n_seg;
  const int r = a.replicas[slot];
  const int K = a.K, p = a.p;
  Real* X = a.X + int64_t(r) * a.N * p;
  const int32_t* labels = a.labels + int64_t(r) * a.N;
  const double* coef = a.coef + slot * K * p;
  const Stream noise(a.noise_seed, Law::kPurpose, uint32_t(r));
  const int64_t begin = a.seg_begin[s], end = a.seg_end[s];
  const int clo = a.seg_clo[s], chi = a.seg_chi[s];
  double* out = a.seg_partial + (slot * a.seg_entries + a.seg_off[s]) * p;
  Real* tile = reinterpret_cast<Real*>(shared_bytes()) + (threadIdx.x >> 5) * 32 * p;
  Real* x = tile + lane * p;  // this lane's sample in the tile

  Real tmp[kMaxDim];
  double g[kMaxDim], scratch[kMaxDim];
  if (clo == chi) {  // one class (the usual case): each lane sums its samples, then the warp
    double acc[kMaxDim];
    for (int q = 0; q < p; ++q) acc[q] = 0.0;
    for (int64_t row = begin; row < end; row += 32) {
      const int64_t n = end - row < 32 ? end - row : 32;
      load_row(X + row * p, n * p, tile, lane);
      if (lane < n) {
        move_and_signal<Real, kMove, Law>(a, x, labels, noise, coef, row + lane, clo, tmp, g,
                                          scratch);
        for (int q = 0; q < p; ++q) acc[q] += g[q];
      }
      if constexpr (kMove != Move::None) {
        store_row(tile, n * p, X + row * p, lane);
      } else {
        __syncwarp();  // the tile is read before the next row overwrites it
      }
    }
    for (int q = 0; q < p; ++q) {
      const double v = warp_sum(acc[q]);
      if (lane == 0) out[q] = v;
    }
    return;
  }
  // A class boundary: row by row (32 samples), one warp sum per class present in the row.
  if (lane == 0) {
    for (int j = 0; j < (chi - clo + 1) * p; ++j) out[j] = 0.0;
  }
  for (int64_t row = begin; row < end; row += 32) {
    const int64_t n = end - row < 32 ? end - row : 32;
    load_row(X + row * p, n * p, tile, lane);
    int c = -1;
    if (lane < n) {
      c = a.classes[row + lane];
      move_and_signal<Real, kMove, Law>(a, x, labels, noise, coef, row + lane, c, tmp, g, scratch);
    }
    if constexpr (kMove != Move::None) {
      store_row(tile, n * p, X + row * p, lane);
    } else {
      __syncwarp();
    }
    const int c_first = a.classes[row];
    const int c_last = a.classes[row + n - 1];
    for (int k = c_first; k <= c_last; ++k) {
      for (int q = 0; q < p; ++q) {
        const double v = warp_sum(c == k ? g[q] : 0.0);
        if (lane == 0) out[(k - clo) * p + q] += v;  // only lane 0 touches out: in order
      }
    }
  }
}

// f(sweep_kernel<Real, move, Law>) for a sweep's move and the run's noise law: the kernel
// is compiled once per law (with_noise_law, rng.hpp), so no sample branches on the law.
// Moves that draw nothing take the Gaussian law's instance.
template <class Real, class F>
void with_sweep_kernel(Move move, NoiseKind noise, F&& f) {
  switch (move) {
    case Move::None:
      return f(sweep_kernel<Real, Move::None, GaussianNoise>);
    case Move::Shift:
      return f(sweep_kernel<Real, Move::Shift, GaussianNoise>);
    case Move::Drift:
      break;
  }
  with_noise_law(noise, [&](auto law) { f(sweep_kernel<Real, Move::Drift, decltype(law)>); });
}

struct BlockArgs {
  int64_t n_slots, entries, seg_entries;
  int p;
  const int32_t *be_class, *be_first, *be_last, *seg_clo;
  const int64_t* seg_off;
  const double* seg_partial;  // n_slots x seg_entries x p
  double* block_partial;      // n_slots x entries x p
};

// One thread per (slot, block entry, coordinate): the block's partial sum of that class,
// its segments added in order.
__global__ void __launch_bounds__(kThreads) block_sums_kernel(const BlockArgs a) {
  const int64_t t = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= a.n_slots * a.entries * a.p) return;
  const int q = int(t % a.p);
  const int64_t e = (t / a.p) % a.entries, slot = t / (int64_t(a.p) * a.entries);
  const int k = a.be_class[e];
  const double* part = a.seg_partial + slot * a.seg_entries * a.p;
  double acc = 0.0;
  for (int64_t s = a.be_first[e]; s <= a.be_last[e]; ++s)
    acc += part[(a.seg_off[s] + (k - a.seg_clo[s])) * a.p + q];
  a.block_partial[(slot * a.entries + e) * a.p + q] = acc;
}

template <class Real>
struct InitArgs {
  Real* X;
  int32_t* labels;
  const int32_t* classes;
  int64_t N, total;  // total = R x N
  int K, p;
  uint64_t seed;
  double label_noise, init_scale;
  const double* means;  // K x p or nullptr
};

// One thread per (replica, sample): its label and features at t = 0.
template <class Real>
__global__ void __launch_bounds__(kThreads) init_kernel(const InitArgs<Real> a) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  for (int64_t t = int64_t(blockIdx.x) * kThreads + threadIdx.x; t < a.total; t += stride) {
    const uint32_t r = uint32_t(t / a.N);
    const int64_t i = t % a.N;
    const int c = a.classes[i];
    const Stream init(a.seed, Purpose::Init, r), labels(a.seed, Purpose::Labels, r);
    a.labels[t] = initial_label(labels, i, c, a.K, a.label_noise);
    double z[kMaxDim];
    normals_at(init, 0u, uint64_t(i) * uint64_t(a.p), a.p, z);  // as fill_normals<double>
    initial_features(a.p, a.means, a.init_scale, c, z, a.X + t * a.p);
  }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// CTAs of kThreads threads for `threads` threads (at least one).
inline unsigned grid_size(int64_t threads) {
  const int64_t ctas = ceil_div(threads, kThreads);
  if (ctas > int64_t(std::numeric_limits<int32_t>::max()))
    throw std::invalid_argument("CUDA backend: the run is too large for one kernel launch");
  return unsigned(std::max<int64_t>(ctas, 1));
}

// The host's last step: sums (n_slots x K x p) = the block partials (n_slots x block
// entries x p) added by the tree of reduce.hpp, class by class; a block without the class
// is an absent node (entries come block by block, so each class meets its blocks in order).
inline void add_block_partials(const Tables& t, int K, int p, int64_t n_slots,
                               const double* partial, std::vector<double>& sums) {
  const int64_t Kp = int64_t(K) * p, entries = t.block_entries();
  const Blocks blocks(t.seg_end.empty() ? 0 : int64_t(t.seg_end.back()));
  sums.assign(size_t(n_slots * Kp), 0.0);
  for (int64_t slot = 0; slot < n_slots; ++slot) {
    const double* part = partial + slot * entries * p;
    std::vector<TreeSum> trees(size_t(K), TreeSum(blocks, p));
    for (int64_t e = 0; e < entries; ++e) {
      TreeSum& tree = trees[size_t(t.be_class[e])];
      tree.push_absent(tree.end(), t.be_block[e]);
      tree.push_leaf(t.be_block[e], part + e * p);
    }
    for (int k = 0; k < K; ++k) {
      trees[size_t(k)].push_absent(trees[size_t(k)].end(), blocks.count);
      trees[size_t(k)].total(sums.data() + slot * Kp + int64_t(k) * p);
    }
  }
}

}  // namespace lesde::cuda::LESDE_CUDA_PLATFORM
