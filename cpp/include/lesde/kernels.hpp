// The per-sample work of a step, done a tile of consecutive samples at a time so that
// the transcendental functions run in vectorised loops (structure of arrays) instead of
// one libm call per number. Semantics are those of rng.hpp and signals.hpp; only the
// loop shape differs. On x86-64 with GCC, the two heavy kernels are compiled twice
// (AVX2 and baseline) and the CPU picks at load time, so portable wheels still
// run at full speed on modern machines.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "fastmath.hpp"
#include "rng.hpp"
#include "signals.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__) && \
    !defined(LESDE_NO_CLONES)
#define LESDE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LESDE_CLONES
#endif

namespace lesde {

constexpr int64_t kTile = 128;  // samples per tile: a tile's state and scratch stay in L1/L2

// out[0 .. count) = normals number first .. first + count - 1 (see normals_at).
template <class T>
LESDE_CLONES void fill_normals(const Stream& s, uint32_t step, uint64_t first, int64_t count,
                               T* out) {
  constexpr int kBlocks = 64;
  alignas(64) uint32_t w0[kBlocks], w1[kBlocks], w2[kBlocks], w3[kBlocks];
  alignas(64) T z[4 * kBlocks];
  uint64_t block = first >> 2;
  int64_t skip = int64_t(first & 3), done = 0;
  while (done < count) {
    const int64_t need = count - done + skip;
    const int nb = int(std::min<int64_t>(kBlocks, (need + 3) / 4));
    for (int l = 0; l < nb; ++l) {  // Philox, one block per lane
      const uint64_t b = block + uint64_t(l);
      const uint32_t ctr[4] = {uint32_t(b), uint32_t(b >> 32), step, s.tag};
      const Philox4x32 r = philox4x32_10(ctr, s.key);
      w0[l] = r.v[0], w1[l] = r.v[1], w2[l] = r.v[2], w3[l] = r.v[3];
    }
    for (int l = 0; l < nb; ++l) {  // Box-Muller, as normals4
      const T u0 = uniform<T>(w0[l]), u1 = uniform<T>(w1[l]);
      const T u2 = uniform<T>(w2[l]), u3 = uniform<T>(w3[l]);
      const T r0 = std::sqrt(T(-2) * fastmath::log(u0));
      const T r1 = std::sqrt(T(-2) * fastmath::log(u2));
      T s0, c0, s1, c1;
      fastmath::sincos_2pi(u1, s0, c0);
      fastmath::sincos_2pi(u3, s1, c1);
      z[4 * l] = r0 * c0;
      z[4 * l + 1] = r0 * s0;
      z[4 * l + 2] = r1 * c1;
      z[4 * l + 3] = r1 * s1;
    }
    const int64_t take = std::min<int64_t>(4 * nb - skip, count - done);
    std::copy(z + skip, z + skip + take, out + done);
    done += take;
    skip = 0;
    block += uint64_t(nb);
  }
}

// Adds g(x_i, y_i) = e_y - softmax(x_i) of the cross-entropy signal without a head
// (p == K) to the class sums, for n <= kTile consecutive samples: signal() of a whole tile,
// with the softmax of shifted_exp_rows laid out so that every loop runs over samples and
// vectorises. Samples are class-sorted, so a tile holds one or two runs of equal class.
template <class Real>
LESDE_CLONES void add_cross_entropy_tile(int K, const Real* X, const int32_t* labels,
                                         const int32_t* classes, int64_t n, Real* e,
                                         double* sums) {
  alignas(64) Real top[kTile], inv[kTile];
  shifted_exp_rows<kTile>(K, int(n), X, K, e, top, inv);
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

// Scratch space of one thread for one tile of samples.
template <class Real>
struct TileScratch {
  std::vector<Real> xi, z;
  std::vector<double> g, zd;
  TileScratch(int K, int p) : xi(kTile * p), z(kTile * std::max(K, p)), g(p), zd(K) {}
};

// Adds g(x_i, y_i) of n <= kTile consecutive samples to the class sums (K x p): signal() per
// sample, except where a whole tile at once is faster (the same numbers either way).
template <class Real>
void add_signal_tile(const SignalSpec& spec, const Real* X, const int32_t* labels,
                     const int32_t* classes, int64_t n, TileScratch<Real>& tile, double* sums) {
  const int p = spec.p;
  if (spec.kind == Signal::CrossEntropy && spec.head == nullptr) {
    add_cross_entropy_tile(spec.K, X, labels, classes, n, tile.z.data(), sums);
    return;
  }
  if (spec.kind == Signal::Linear) {  // g = x: no need for a copy
    for (int64_t i = 0; i < n; ++i) {
      double* s = sums + int64_t(classes[i]) * p;
      const Real* x = X + i * p;
      for (int q = 0; q < p; ++q) s[q] += double(x[q]);
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    signal(spec, X + i * p, labels[i], tile.g.data(), tile.z.data(), tile.zd.data());
    double* s = sums + int64_t(classes[i]) * p;
    for (int q = 0; q < p; ++q) s[q] += tile.g[q];
  }
}

}  // namespace lesde
