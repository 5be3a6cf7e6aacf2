// Deterministic reductions over samples.
//
// Samples are cut into fixed blocks of about kMinBlock samples whose boundaries depend only
// on N. A block accumulates its own partial sums in sample order, and the block partials
// are combined by one fixed binary tree over block indices, also a function of N alone:
// every addition the tree makes (which two numbers, left + right) is fixed. Whoever computes
// a node -- a thread, an MPI rank, the host after a GPU -- computes the same bits, so any
// split of the blocks over threads and ranks gives the sums of one process.
//
// Why this tree. Up to kLinearBlocks blocks it adds them left to right, (((b0 + b1) + b2)
// + ...): the only order lesde had while the block count was capped at 256, so runs of up
// to 256 x 2048 samples keep their bits (and their checkpoints). Beyond, it is pairwise:
// the node of blocks [j 2^l, (j + 1) 2^l), cut at the block count, is its two halves
// added. A contiguous range of blocks is then held as at most 2 log2(blocks) whole nodes,
// so a thread keeps, and a rank sends, O(log blocks) partial sums instead of one per
// block, whatever N; a left-to-right order would make every rank send each of its blocks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <vector>

namespace lesde {

// Version of the summation order: 1 added at most 256 blocks left to right (blocks grew
// with N); 2 is the tree above. Both give the same bits up to 256 x 2048 samples.
constexpr int kReductionOrderVersion = 2;

struct Blocks {
  static constexpr int64_t kMinBlock = 2048;     // samples: keeps per-block overhead small
  static constexpr int64_t kLinearBlocks = 256;  // up to this many blocks: left to right

  int64_t n = 0, size = 1, count = 0;

  explicit Blocks(int64_t n_samples) : n(n_samples) {
    count = std::max<int64_t>(1, (n + kMinBlock - 1) / kMinBlock);
    size = std::max<int64_t>(1, (n + count - 1) / count);
    count = std::max<int64_t>(1, (n + size - 1) / size);
  }
  int64_t begin(int64_t b) const { return std::min(n, b * size); }
  int64_t end(int64_t b) const { return std::min(n, (b + 1) * size); }

  bool linear() const { return count <= kLinearBlocks; }

  // The end of the largest tree node that starts at block lo and ends at or before hi.
  int64_t node_end(int64_t lo, int64_t hi) const {
    if (linear()) return lo == 0 ? hi : lo + 1;
    int64_t s = 1;
    if (lo == 0)
      while (s < count) s <<= 1;
    else
      s = lo & -lo;
    while (std::min(lo + s, count) > hi) s >>= 1;
    return std::min(lo + s, count);
  }
  // Whether the nodes [lo, mid) and [mid, hi) are the two halves of the node [lo, hi).
  bool siblings(int64_t lo, int64_t mid, int64_t hi) const {
    if (linear()) return lo == 0 && hi == mid + 1;
    const int64_t s = mid - lo;
    return s > 0 && (s & (s - 1)) == 0 && lo % (2 * s) == 0 && hi == std::min(count, mid + s);
  }
  // How many whole nodes the blocks [lo, hi) make (what a rank owning them sends).
  int64_t nodes(int64_t lo, int64_t hi) const {
    int64_t k = 0;
    for (; lo < hi; lo = node_end(lo, hi)) ++k;
    return k;
  }
};

// Part of the tree: whole nodes in block order, each `width` sums, no two of them siblings
// (those are added, left + right, as soon as both are there). A node may be absent (no
// summed term lies in it, e.g. a class outside a GPU block): the tree then takes the other
// half as it is, which is what adding +0 would give, since no node is ever -0 (leaves are
// stored as 0 + v, as the blocks' left-to-right sum from 0 did).
class TreeSum {
 public:
  TreeSum(const Blocks& blocks, int64_t width) : blocks_(blocks), width_(width) {}

  // The block b's sums.
  void push_leaf(int64_t b, const double* v) {
    double* dst = open(b, b + 1, true);
    for (int64_t j = 0; j < width_; ++j) dst[j] = 0.0 + v[j];
    settle();
  }
  // A whole node [lo, hi) computed elsewhere (v: its sums; nullptr: absent).
  void push(int64_t lo, int64_t hi, const double* v) {
    double* dst = open(lo, hi, v != nullptr);
    if (v) std::copy(v, v + width_, dst);
    settle();
  }
  // The blocks [lo, hi), none of whose terms exist.
  void push_absent(int64_t lo, int64_t hi) {
    for (int64_t mid; lo < hi; lo = mid) push(lo, mid = blocks_.node_end(lo, hi), nullptr);
  }
  // Another part's nodes, which follow this part's blocks.
  void append(const TreeSum& other) {
    for (size_t i = 0; i < other.lo_.size(); ++i)
      push(other.lo_[i], other.hi_[i], other.present_[i] ? other.node(i) : nullptr);
  }

  int64_t size() const { return int64_t(lo_.size()); }
  int64_t width() const { return width_; }
  int64_t begin() const { return lo_.empty() ? 0 : lo_.front(); }
  int64_t end() const { return hi_.empty() ? 0 : hi_.back(); }
  // The nodes' sums, node after node (absent ones hold zeros).
  const double* values() const { return values_.data(); }

  // The root: the sums over every block (zeros if no term exists).
  void total(double* out) const {
    if (lo_.size() != 1 || lo_[0] != 0 || hi_[0] != blocks_.count)
      throw std::logic_error("lesde: a reduction was finished before it held every block");
    if (present_[0])
      std::copy(node(0), node(0) + width_, out);
    else
      std::fill(out, out + width_, 0.0);
  }

 private:
  Blocks blocks_;
  int64_t width_;
  std::vector<int64_t> lo_, hi_;
  std::vector<char> present_;
  std::vector<double> values_;

  const double* node(size_t i) const { return values_.data() + i * width_; }
  double* open(int64_t lo, int64_t hi, bool present) {
    if (!lo_.empty() && lo != hi_.back())
      throw std::logic_error("lesde: reduction nodes pushed out of block order");
    lo_.push_back(lo);
    hi_.push_back(hi);
    present_.push_back(present);
    values_.resize(lo_.size() * width_, 0.0);
    return values_.data() + (lo_.size() - 1) * width_;
  }
  void settle() {
    while (lo_.size() >= 2) {
      const size_t r = lo_.size() - 1, l = r - 1;
      if (!blocks_.siblings(lo_[l], lo_[r], hi_[r])) return;
      double* left = values_.data() + l * width_;
      const double* right = left + width_;
      if (present_[l] && present_[r])
        for (int64_t j = 0; j < width_; ++j) left[j] = left[j] + right[j];
      else if (present_[r])
        std::copy(right, right + width_, left);
      present_[l] = present_[l] || present_[r];
      hi_[l] = hi_[r];
      lo_.pop_back();
      hi_.pop_back();
      present_.pop_back();
      values_.resize(lo_.size() * width_);
    }
  }
};

// The blocks this process owns: all of them, or a contiguous range [first, last) when one
// run is sharded over MPI ranks (then `ranks` holds every rank's first block, and the block
// count last). A rank may own no block. Local arrays start at global sample offset().
struct Shard {
  Blocks blocks;
  int64_t first = 0, last = 0;
  const std::vector<int64_t>* ranks = nullptr;

  int64_t offset() const { return blocks.begin(first); }
  int64_t local_samples() const { return blocks.begin(last) - offset(); }
  bool whole() const { return first == 0 && last == blocks.count; }
};

// Sharded runs: fills `global` with every rank's `local` nodes, rank after rank (rank r
// sends counts[r] numbers), e.g. with an MPI all-gather. Empty for a run in one process.
using Exchange = std::function<void(const double* local, int64_t local_len, double* global,
                                    const std::vector<int64_t>& counts)>;

// out = the tree's root from this process's part: the ranks' parts, exchanged, are added
// into the one tree in rank (= block) order, so a sharded run makes exactly the additions
// of a single process. Every rank calls it, also one that owns no block.
inline void combine_blocks(const Shard& shard, const Exchange& exchange, const TreeSum& local,
                           double* out) {
  if (!exchange) {
    local.total(out);
    return;
  }
  const Blocks& b = shard.blocks;
  const std::vector<int64_t>& ranks = *shard.ranks;
  const int64_t width = local.width();
  if (local.size() != b.nodes(shard.first, shard.last))
    throw std::logic_error("lesde: this rank's reduction nodes are not its blocks' own");
  std::vector<int64_t> counts(ranks.size() - 1);
  int64_t total = 0;
  for (size_t r = 0; r + 1 < ranks.size(); ++r)
    total += counts[r] = b.nodes(ranks[r], ranks[r + 1]) * width;
  std::vector<double> global(size_t(std::max<int64_t>(total, 1)));
  exchange(local.values(), local.size() * width, global.data(), counts);
  TreeSum all(b, width);
  const double* v = global.data();
  for (size_t r = 0; r + 1 < ranks.size(); ++r)
    for (int64_t lo = ranks[r], hi; lo < ranks[r + 1]; lo = hi, v += width)
      all.push(lo, hi = b.node_end(lo, ranks[r + 1]), v);
  all.total(out);
}

// Sums over this process's samples into out (width numbers): work(b, acc) adds block b's
// terms into acc (zeroed) for each block the process owns. Threads take contiguous runs of
// blocks, each with its own worker from make_worker() and its own part of the tree; the
// parts are then joined in block order and combined across ranks (combine_blocks).
template <class MakeWorker>
void reduce_blocks(const Shard& shard, const Exchange& exchange, int64_t width, int threads,
                   double* out, MakeWorker make_worker) {
  const int64_t owned = shard.last - shard.first;
  const int64_t T = std::max<int64_t>(1, std::min<int64_t>(threads, owned));
  std::vector<TreeSum> parts(size_t(T), TreeSum(shard.blocks, width));
#pragma omp parallel for num_threads(int(T)) schedule(static, 1) if (T > 1)
  for (int64_t t = 0; t < T; ++t) {
    auto work = make_worker();
    std::vector<double> acc(static_cast<size_t>(width));
    for (int64_t b = shard.first + t * owned / T; b < shard.first + (t + 1) * owned / T; ++b) {
      std::fill(acc.begin(), acc.end(), 0.0);
      work(b, acc.data());
      parts[size_t(t)].push_leaf(b, acc.data());
    }
  }
  for (int64_t t = 1; t < T; ++t) parts[0].append(parts[size_t(t)]);
  combine_blocks(shard, exchange, parts[0], out);
}

}  // namespace lesde
