// Many numbers of a stream of rng.hpp at once, for the CPU sweeps: the same numbers as the
// one-at-a-time functions there (normals_at, increments_at), produced a few hundred at a time
// so that the loops vectorise. Philox runs over lanes of blocks (structure of arrays), with
// an AVX2 version picked at run time where the CPU has it; the transforms (Box-Muller, the
// weak noises) then run over the lanes. On x86-64 with GCC the transform loops are compiled
// twice (AVX2 and baseline) and the CPU picks at load time, so portable wheels still run at
// full speed on modern machines.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "rng.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__) && \
    !defined(LESDE_NO_CLONES)
#define LESDE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LESDE_CLONES
#endif

#if defined(__GNUC__) && defined(__x86_64__) && !defined(LESDE_NO_CLONES)
#define LESDE_PHILOX_AVX2 1
#include <immintrin.h>
#endif

namespace lesde {

// Inlined into the LESDE_CLONES function that calls it, and so compiled for its instruction
// set (a lambda too: LESDE_FILL_LAMBDA after its parameters).
#if defined(__GNUC__)
#define LESDE_FILL_INLINE inline __attribute__((always_inline))
#define LESDE_FILL_LAMBDA __attribute__((always_inline))
#else
#define LESDE_FILL_INLINE inline
#define LESDE_FILL_LAMBDA
#endif

// Blocks first .. first + n - 1 of a stream at one step, one per lane: w_j[l] is word j of
// block first + l (the counter (block low, block high, step, tag) of Stream::draw).
inline void philox_blocks_portable(const Stream& s, uint32_t step, uint64_t first, int n,
                                   uint32_t* w0, uint32_t* w1, uint32_t* w2, uint32_t* w3) {
  for (int l = 0; l < n; ++l) {
    const Philox4x32 r = s.draw(uint32_t(first + l), uint32_t((first + l) >> 32), step);
    w0[l] = r.v[0], w1[l] = r.v[1], w2[l] = r.v[2], w3[l] = r.v[3];
  }
}

#ifdef LESDE_PHILOX_AVX2
// The same, eight blocks per 256-bit register: Philox's 32 x 32 -> 64-bit products are two
// vpmuludq (even and odd lanes) per multiplier, recombined by blends. 2.8x the portable loop
// (measured, 1 thread): the compiler does not find this form by itself.
__attribute__((target("avx2"))) inline void philox_blocks_avx2(const Stream& s, uint32_t step,
                                                                uint64_t first, int n,
                                                                uint32_t* w0, uint32_t* w1,
                                                                uint32_t* w2, uint32_t* w3) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53), m1 = _mm256_set1_epi64x(0xCD9E8D57);
  const __m256i ctr2 = _mm256_set1_epi32(int(step)), ctr3 = _mm256_set1_epi32(int(s.tag));
  int l = 0;
  // Eight consecutive blocks share the counter's high word unless its low word wraps: those
  // (at most once per 2^32 blocks) go to the portable loop below.
  for (; l + 8 <= n && uint32_t(first + l) <= 0xFFFFFFF8u; l += 8) {
    const uint64_t b = first + uint64_t(l);
    __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(int(uint32_t(b))), lanes);
    __m256i c1 = _mm256_set1_epi32(int(uint32_t(b >> 32))), c2 = ctr2, c3 = ctr3;
    uint32_t k0 = s.key[0], k1 = s.key[1];
    for (int round = 0; round < 10; ++round) {
      const __m256i even0 = _mm256_mul_epu32(c0, m0);
      const __m256i odd0 = _mm256_mul_epu32(_mm256_srli_epi64(c0, 32), m0);
      const __m256i even1 = _mm256_mul_epu32(c2, m1);
      const __m256i odd1 = _mm256_mul_epu32(_mm256_srli_epi64(c2, 32), m1);
      const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(even0, 32), odd0, 0xAA);
      const __m256i lo0 = _mm256_blend_epi32(even0, _mm256_slli_epi64(odd0, 32), 0xAA);
      const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(even1, 32), odd1, 0xAA);
      const __m256i lo1 = _mm256_blend_epi32(even1, _mm256_slli_epi64(odd1, 32), 0xAA);
      c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(int(k0)));
      c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(int(k1)));
      c1 = lo1;
      c3 = lo0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w0 + l), c0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w1 + l), c1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w2 + l), c2);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w3 + l), c3);
  }
  philox_blocks_portable(s, step, first + l, n - l, w0 + l, w1 + l, w2 + l, w3 + l);
}
#endif

// philox_blocks_portable, on the fastest path this CPU has (simd = false forces the portable
// one, for the tests that check both give the same words).
LESDE_FILL_INLINE void philox_blocks(const Stream& s, uint32_t step, uint64_t first, int n,
                                     uint32_t* w0, uint32_t* w1, uint32_t* w2, uint32_t* w3,
                                     bool simd = true) {
#ifdef LESDE_PHILOX_AVX2
  static const bool has_avx2 = __builtin_cpu_supports("avx2");
  if (simd && has_avx2) return philox_blocks_avx2(s, step, first, n, w0, w1, w2, w3);
#endif
  philox_blocks_portable(s, step, first, n, w0, w1, w2, w3);
}

// Word j of lane l's block, read in place from philox_blocks' arrays (w[j][l]).
struct LaneWords {
  const uint32_t (*w)[64];
  int l;
  LESDE_FILL_INLINE uint32_t operator[](int j) const { return w[j][l]; }
};

// fill_increments for one noise law (rng.hpp), inlined into it so that it is compiled for
// the same instruction set (LESDE_CLONES): Philox over the lanes of a round's blocks, then
// the law's transform (Law::values) block by block over the lanes.
template <class Law, class T>
LESDE_FILL_INLINE void fill_law_increments(const Stream& s, uint32_t step, uint64_t first,
                                           int64_t count, T* out, bool simd) {
  constexpr int kRound = 256;  // increments made per round: 64 blocks, or 2 for two-point
  constexpr int kPerBlock = Law::kPerBlock, round_blocks = kRound / kPerBlock;
  alignas(64) uint32_t w[4][64];  // kRound / 4 blocks at most
  alignas(64) T z[kRound];
  uint64_t block = first / uint64_t(kPerBlock);
  int64_t skip = int64_t(first % uint64_t(kPerBlock)), done = 0;
  while (done < count) {
    const int64_t need = count - done + skip;
    const int nb = int(std::min<int64_t>(round_blocks, (need + kPerBlock - 1) / kPerBlock));
    philox_blocks(s, step, block, nb, w[0], w[1], w[2], w[3], simd);
    for (int l = 0; l < nb; ++l) Law::values(LaneWords{w, l}, 0, kPerBlock, z + kPerBlock * l);
    const int64_t take = std::min<int64_t>(int64_t(kPerBlock) * nb - skip, count - done);
    std::memcpy(out + done, z + skip, size_t(take) * sizeof(T));  // libc's copy, not a loop
    done += take;
    skip = 0;
    block += uint64_t(nb);
  }
}

// out[0 .. count) = increments number first .. first + count - 1 of the noise stream of
// `kind` at one step: the numbers of increments_at (rng.hpp), many at once.
template <class T>
LESDE_CLONES void fill_increments(NoiseKind kind, const Stream& s, uint32_t step, uint64_t first,
                                  int64_t count, T* out, bool simd = true) {
  with_noise_law(kind, [&](auto law) LESDE_FILL_LAMBDA {
    fill_law_increments<decltype(law)>(s, step, first, count, out, simd);
  });
}

// The Gaussian increments (normals_at), as the initial state and SGD's lazy noise draw them.
template <class T>
void fill_normals(const Stream& s, uint32_t step, uint64_t first, int64_t count, T* out,
                  bool simd = true) {
  fill_increments(NoiseKind::Gaussian, s, step, first, count, out, simd);
}

}  // namespace lesde
