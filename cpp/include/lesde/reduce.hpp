// Deterministic reductions over samples.
//
// Samples are cut into fixed blocks whose boundaries depend only on N (never on the
// thread count). Each block accumulates its own partial sums in sample order; the
// partials are then added in block order. Any thread layout therefore produces
// bit-identical sums, and the MPI/GPU paths can reproduce them by keeping the blocks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace lesde {

struct Blocks {
  static constexpr int64_t kMinBlock = 2048;  // samples: keeps per-block overhead small
  static constexpr int64_t kMaxBlocks = 256;  // bounds partial-sum memory to 256 x K x p

  int64_t n = 0, size = 1, count = 0;

  explicit Blocks(int64_t n_samples) : n(n_samples) {
    count = std::max<int64_t>(1, std::min(kMaxBlocks, (n + kMinBlock - 1) / kMinBlock));
    size = (n + count - 1) / count;
    count = (n + size - 1) / size;
  }
  int64_t begin(int64_t b) const { return b * size; }
  int64_t end(int64_t b) const { return std::min(n, (b + 1) * size); }
};

// out[j] = sum over blocks b (in order) of partial[b * width + j].
inline void sum_blocks(const std::vector<double>& partial, int64_t count, int64_t width,
                       double* out) {
  std::fill(out, out + width, 0.0);
  for (int64_t b = 0; b < count; ++b) {
    const double* src = partial.data() + b * width;
    for (int64_t j = 0; j < width; ++j) out[j] += src[j];
  }
}

// The blocks this process owns: all of them, or a contiguous range [first, last) when one
// run is sharded over MPI ranks. Local arrays then start at global sample offset().
struct Shard {
  Blocks blocks;
  int64_t first = 0, last = 0;

  int64_t offset() const { return blocks.begin(first); }
  int64_t local_samples() const { return first < last ? blocks.end(last - 1) - offset() : 0; }
  bool whole() const { return first == 0 && last == blocks.count; }
};

// Sharded runs: fills `global` (every block's partials, in block order) from this rank's
// `local` ones, e.g. with an MPI all-gather. Empty for a run in one process.
using Exchange = std::function<void(const double* local, int64_t local_len, double* global,
                                    int64_t global_len)>;

// out = the block partials of all ranks summed in global block order, so a sharded run
// adds exactly the same numbers in the same order as a single process.
inline void combine_blocks(const Shard& shard, const Exchange& exchange,
                           const std::vector<double>& local, int64_t width, double* out) {
  if (!exchange) {
    sum_blocks(local, shard.last - shard.first, width, out);
    return;
  }
  std::vector<double> global(shard.blocks.count * width);
  exchange(local.data(), int64_t(local.size()), global.data(), int64_t(global.size()));
  sum_blocks(global, shard.blocks.count, width, out);
}

}  // namespace lesde
