// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11).
//
// Every random number in lesde is a pure function of (seed, purpose, global indices).
// The key is the 64-bit seed; the 128-bit counter holds the purpose and the global
// indices (replica, step, sample, block of coordinates). Nothing depends on threads,
// chunks, ranks or devices, so a seed gives the same numbers on every layout, and a
// checkpoint only needs the step number to continue the stream.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LESDE_HD __host__ __device__ inline
#else
#define LESDE_HD inline
#endif

namespace lesde {

// Version of the mapping (seed, indices) -> numbers. Bump it whenever that mapping
// changes, so saved results say which stream produced them.
constexpr int kRandomStreamVersion = 1;

// What a random draw is for. Part of the counter, so streams never overlap.
enum class Purpose : uint32_t { Init = 1, Noise = 2, Labels = 3, Batch = 4 };

struct Philox4x32 {
  uint32_t v[4];
};

LESDE_HD void philox_round(uint32_t ctr[4], const uint32_t key[2]) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  const uint64_t p0 = uint64_t(M0) * ctr[0];
  const uint64_t p1 = uint64_t(M1) * ctr[2];
  const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
  const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
  const uint32_t c1 = ctr[1], c3 = ctr[3];
  ctr[0] = hi1 ^ c1 ^ key[0];
  ctr[1] = lo1;
  ctr[2] = hi0 ^ c3 ^ key[1];
  ctr[3] = lo0;
}

// Philox4x32 with 10 rounds: the published known-answer vectors hold for this function.
LESDE_HD Philox4x32 philox4x32_10(const uint32_t counter[4], const uint32_t key_in[2]) {
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  uint32_t ctr[4] = {counter[0], counter[1], counter[2], counter[3]};
  uint32_t key[2] = {key_in[0], key_in[1]};
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += W0;
      key[1] += W1;
    }
    philox_round(ctr, key);
  }
  return Philox4x32{{ctr[0], ctr[1], ctr[2], ctr[3]}};
}

// A stream for one (seed, purpose, replica): draw(a, b, c) gives 4 random words for the
// counter (a, b, c, purpose << 24 | replica). Callers pass global indices only.
struct Stream {
  uint32_t key[2];
  uint32_t tag;  // purpose and replica, the fourth counter word

  LESDE_HD Stream(uint64_t seed, Purpose purpose, uint32_t replica)
      : key{uint32_t(seed), uint32_t(seed >> 32)},
        tag((uint32_t(purpose) << 24) | (replica & 0xFFFFFFu)) {}

  LESDE_HD Philox4x32 draw(uint32_t a, uint32_t b, uint32_t c) const {
    const uint32_t ctr[4] = {a, b, c, tag};
    return philox4x32_10(ctr, key);
  }
};

// Uniform on the open interval (0, 1): (k + 1/2) / 2^32, so log() is always finite.
LESDE_HD double uniform_open(uint32_t word) { return (double(word) + 0.5) * 0x1p-32; }

// Four standard normals from one Philox block by Box-Muller. The 32-bit uniforms bound
// |z| below 6.7 (a tail of probability 2e-11), far beyond any statistic we test.
LESDE_HD void normals4(const Philox4x32& r, double z[4]) {
  constexpr double two_pi = 6.283185307179586476925286766559;
  const double r0 = std::sqrt(-2.0 * std::log(uniform_open(r.v[0])));
  const double r1 = std::sqrt(-2.0 * std::log(uniform_open(r.v[2])));
  const double a0 = two_pi * uniform_open(r.v[1]);
  const double a1 = two_pi * uniform_open(r.v[3]);
  z[0] = r0 * std::cos(a0);
  z[1] = r0 * std::sin(a0);
  z[2] = r1 * std::cos(a1);
  z[3] = r1 * std::sin(a1);
}

// z[0..p) ~ N(0, I) for one sample at one step: coordinate block j uses counter
// (j, sample, step). The same numbers whatever thread computes them.
template <class Real>
LESDE_HD void sample_normals(const Stream& s, uint32_t step, uint32_t sample, int p, Real* z) {
  double tmp[4];
  for (int j = 0; 4 * j < p; ++j) {
    normals4(s.draw(uint32_t(j), sample, step), tmp);
    const int m = (p - 4 * j < 4) ? p - 4 * j : 4;
    for (int q = 0; q < m; ++q) z[4 * j + q] = Real(tmp[q]);
  }
}

// An integer uniform on [0, n) from two random words (multiply-shift, bias < n / 2^64).
LESDE_HD uint64_t uniform_index(uint32_t hi, uint32_t lo, uint64_t n) {
  const uint64_t r = (uint64_t(hi) << 32) | lo;
  return uint64_t((static_cast<unsigned __int128>(r) * n) >> 64);
}

}  // namespace lesde
