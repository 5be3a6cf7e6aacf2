// Many numbers of a stream of rng.hpp at once, for the CPU sweeps: the same numbers as the
// one-at-a-time functions there (normals_at, increments_at), produced a few hundred at a time
// so that the loops vectorise. Philox runs over lanes of blocks, with AVX-512 and AVX2
// versions picked at run time where the CPU has them, and writes the words in stream order;
// the transforms (the ziggurat's fast path, the weak noises) then run over the words, the
// ziggurat's again in AVX-512 or AVX2 where the CPU has them. Every path gives the same bits
// (integer arithmetic, and the same IEEE double operations in the same order). On x86-64
// with GCC the loops around them are compiled twice (AVX2 and baseline) and the CPU picks at
// load time, so portable wheels still run at full speed on modern machines.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "rng.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__) && \
    !defined(LESDE_NO_CLONES)
#define LESDE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LESDE_CLONES
#endif

#if defined(__GNUC__) && defined(__x86_64__) && !defined(LESDE_NO_CLONES)
#define LESDE_X86_SIMD 1
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

// Which instruction set the fill runs on: the best this CPU has, or one named (the tests
// check every path the CPU has against the portable one). A path the CPU lacks falls back
// to the next below it.
enum class FillPath : int { Best = 0, Avx512 = 1, Avx2 = 2, Portable = 3 };

inline FillPath best_fill_path() {
#ifdef LESDE_X86_SIMD
  static const FillPath best = __builtin_cpu_supports("avx512f") ? FillPath::Avx512
                               : __builtin_cpu_supports("avx2")  ? FillPath::Avx2
                                                                 : FillPath::Portable;
  return best;
#else
  return FillPath::Portable;
#endif
}

// The path a request runs on: the one asked for, if this CPU has it, else the best below it.
inline FillPath fill_path(FillPath asked) {
  const FillPath best = best_fill_path();
  return asked == FillPath::Best || int(asked) < int(best) ? best : asked;
}

// The words of blocks first .. first + n - 1 of a stream at one step, in stream order:
// words[4 l + j] is word j of block first + l (the counter (block low, block high, step,
// tag) of Stream::draw).
inline void philox_words_portable(const Stream& s, uint32_t step, uint64_t first, int n,
                                  uint32_t* words) {
  for (int l = 0; l < n; ++l) {
    const Philox4x32 r = s.draw(uint32_t(first + l), uint32_t((first + l) >> 32), step);
    for (int j = 0; j < 4; ++j) words[4 * l + j] = r.v[j];
  }
}

#ifdef LESDE_X86_SIMD
// The same, eight blocks per 256-bit register, two registers at once (see the AVX-512
// version): Philox's 32 x 32 -> 64-bit products are two vpmuludq (even and odd lanes) per
// multiplier, recombined by blends; then a 4 x 8 transpose puts the words in stream order.
// The compiler does not find this form by itself.
__attribute__((target("avx2"))) inline void philox_words_avx2(const Stream& s, uint32_t step,
                                                              uint64_t first, int n,
                                                              uint32_t* words) {
  constexpr int G = 2;
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_set1_epi64x(0xD2511F53), m1 = _mm256_set1_epi64x(0xCD9E8D57);
  int l = 0;
  for (; l + 8 * G <= n && uint32_t(first + l) <= 0xFFFFFFFFu - 8 * G; l += 8 * G) {
    const uint64_t b = first + uint64_t(l);
    __m256i c0[G], c1[G], c2[G], c3[G];
    for (int g = 0; g < G; ++g) {
      c0[g] = _mm256_add_epi32(_mm256_set1_epi32(int(uint32_t(b) + 8 * g)), lanes);
      c1[g] = _mm256_set1_epi32(int(uint32_t(b >> 32)));
      c2[g] = _mm256_set1_epi32(int(step));
      c3[g] = _mm256_set1_epi32(int(s.tag));
    }
    uint32_t k0 = s.key[0], k1 = s.key[1];
    for (int round = 0; round < 10; ++round) {
      const __m256i key0 = _mm256_set1_epi32(int(k0)), key1 = _mm256_set1_epi32(int(k1));
      for (int g = 0; g < G; ++g) {
        const __m256i even0 = _mm256_mul_epu32(c0[g], m0);
        const __m256i odd0 = _mm256_mul_epu32(_mm256_srli_epi64(c0[g], 32), m0);
        const __m256i even1 = _mm256_mul_epu32(c2[g], m1);
        const __m256i odd1 = _mm256_mul_epu32(_mm256_srli_epi64(c2[g], 32), m1);
        const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(even0, 32), odd0, 0xAA);
        const __m256i lo0 = _mm256_blend_epi32(even0, _mm256_slli_epi64(odd0, 32), 0xAA);
        const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(even1, 32), odd1, 0xAA);
        const __m256i lo1 = _mm256_blend_epi32(even1, _mm256_slli_epi64(odd1, 32), 0xAA);
        c0[g] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[g]), key0);
        c2[g] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[g]), key1);
        c1[g] = lo1;
        c3[g] = lo0;
      }
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    for (int g = 0; g < G; ++g) {
      // Transpose: r_q's 128-bit half h holds block 4h + q's four words.
      const __m256i t01lo = _mm256_unpacklo_epi32(c0[g], c1[g]);
      const __m256i t01hi = _mm256_unpackhi_epi32(c0[g], c1[g]);
      const __m256i t23lo = _mm256_unpacklo_epi32(c2[g], c3[g]);
      const __m256i t23hi = _mm256_unpackhi_epi32(c2[g], c3[g]);
      const __m256i r0 = _mm256_unpacklo_epi64(t01lo, t23lo);
      const __m256i r1 = _mm256_unpackhi_epi64(t01lo, t23lo);
      const __m256i r2 = _mm256_unpacklo_epi64(t01hi, t23hi);
      const __m256i r3 = _mm256_unpackhi_epi64(t01hi, t23hi);
      __m256i* out = reinterpret_cast<__m256i*>(words + 4 * (l + 8 * g));
      _mm256_storeu_si256(out + 0, _mm256_permute2x128_si256(r0, r1, 0x20));
      _mm256_storeu_si256(out + 1, _mm256_permute2x128_si256(r2, r3, 0x20));
      _mm256_storeu_si256(out + 2, _mm256_permute2x128_si256(r0, r1, 0x31));
      _mm256_storeu_si256(out + 3, _mm256_permute2x128_si256(r2, r3, 0x31));
    }
  }
  philox_words_portable(s, step, first + l, n - l, words + 4 * l);
}

// Sixteen blocks per 512-bit register, two registers at once (their rounds interleave, so
// one's multiplications run while the other's wait: a round's chain of dependent operations
// is longer than the time its operations take). AVX-512 recombines each product's halves
// with one masked shuffle (not a shift and a blend) and xors three values at once
// (vpternlogd).
template <int G = 2>  // registers of 16 blocks in flight
__attribute__((target("avx512f"))) inline void philox_words_avx512(const Stream& s, uint32_t step,
                                                                   uint64_t first, int n,
                                                                   uint32_t* words) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i m0 = _mm512_set1_epi64(0xD2511F53), m1 = _mm512_set1_epi64(0xCD9E8D57);
  int l = 0;
  // The blocks of one iteration share the counter's high word unless its low word wraps:
  // those (at most once per 2^32 blocks) go to the portable loop below.
  for (; l + 16 * G <= n && uint32_t(first + l) <= 0xFFFFFFFFu - 16 * G; l += 16 * G) {
    const uint64_t b = first + uint64_t(l);
    __m512i c0[G], c1[G], c2[G], c3[G];
    for (int g = 0; g < G; ++g) {
      c0[g] = _mm512_add_epi32(_mm512_set1_epi32(int(uint32_t(b) + 16 * g)), lanes);
      c1[g] = _mm512_set1_epi32(int(uint32_t(b >> 32)));
      c2[g] = _mm512_set1_epi32(int(step));
      c3[g] = _mm512_set1_epi32(int(s.tag));
    }
    uint32_t k0 = s.key[0], k1 = s.key[1];
    for (int round = 0; round < 10; ++round) {
      const __m512i key0 = _mm512_set1_epi32(int(k0)), key1 = _mm512_set1_epi32(int(k1));
      for (int g = 0; g < G; ++g) {
        const __m512i even0 = _mm512_mul_epu32(c0[g], m0);
        const __m512i odd0 = _mm512_mul_epu32(_mm512_srli_epi64(c0[g], 32), m0);
        const __m512i even1 = _mm512_mul_epu32(c2[g], m1);
        const __m512i odd1 = _mm512_mul_epu32(_mm512_srli_epi64(c2[g], 32), m1);
        // hi: even lanes take the high half of the even product (its word 2i + 1, swapped
        // down), odd lanes the odd product's high half in place; lo the other way round.
        const __m512i hi0 = _mm512_mask_shuffle_epi32(odd0, 0x5555, even0, _MM_PERM_CDAB);
        const __m512i lo0 = _mm512_mask_shuffle_epi32(even0, 0xAAAA, odd0, _MM_PERM_CDAB);
        const __m512i hi1 = _mm512_mask_shuffle_epi32(odd1, 0x5555, even1, _MM_PERM_CDAB);
        const __m512i lo1 = _mm512_mask_shuffle_epi32(even1, 0xAAAA, odd1, _MM_PERM_CDAB);
        c0[g] = _mm512_ternarylogic_epi32(hi1, c1[g], key0, 0x96);  // a ^ b ^ c
        c2[g] = _mm512_ternarylogic_epi32(hi0, c3[g], key1, 0x96);
        c1[g] = lo1;
        c3[g] = lo0;
      }
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    for (int g = 0; g < G; ++g) {
      // Transpose: r_q's 128-bit quarter h holds block 4h + q's four words.
      const __m512i t01lo = _mm512_unpacklo_epi32(c0[g], c1[g]);
      const __m512i t01hi = _mm512_unpackhi_epi32(c0[g], c1[g]);
      const __m512i t23lo = _mm512_unpacklo_epi32(c2[g], c3[g]);
      const __m512i t23hi = _mm512_unpackhi_epi32(c2[g], c3[g]);
      const __m512i r0 = _mm512_unpacklo_epi64(t01lo, t23lo);
      const __m512i r1 = _mm512_unpackhi_epi64(t01lo, t23lo);
      const __m512i r2 = _mm512_unpacklo_epi64(t01hi, t23hi);
      const __m512i r3 = _mm512_unpackhi_epi64(t01hi, t23hi);
      const __m512i a01 = _mm512_shuffle_i32x4(r0, r1, 0x44),
                    c01 = _mm512_shuffle_i32x4(r0, r1, 0xEE);
      const __m512i a23 = _mm512_shuffle_i32x4(r2, r3, 0x44),
                    c23 = _mm512_shuffle_i32x4(r2, r3, 0xEE);
      uint32_t* out = words + 4 * (l + 16 * g);
      _mm512_storeu_si512(out + 0, _mm512_shuffle_i32x4(a01, a23, 0x88));
      _mm512_storeu_si512(out + 16, _mm512_shuffle_i32x4(a01, a23, 0xDD));
      _mm512_storeu_si512(out + 32, _mm512_shuffle_i32x4(c01, c23, 0x88));
      _mm512_storeu_si512(out + 48, _mm512_shuffle_i32x4(c01, c23, 0xDD));
    }
  }
  philox_words_portable(s, step, first + l, n - l, words + 4 * l);
}
#endif

// philox_words_portable, on the path asked for. A SIMD path makes whole registers of blocks:
// the few blocks left over (a two-point round needs 2 to 16) are made as a whole register
// into a scratch buffer, still several times faster than one block at a time.
inline void philox_words(const Stream& s, uint32_t step, uint64_t first, int n, uint32_t* words,
                         FillPath path = FillPath::Best) {
#ifdef LESDE_X86_SIMD
  const FillPath chosen = fill_path(path);
  if (chosen != FillPath::Portable) {
    const bool wide = chosen == FillPath::Avx512;
    const int group = wide ? 32 : 16;  // blocks per iteration
    const int whole = n / group * group;
    if (whole) {
      if (wide)
        philox_words_avx512(s, step, first, whole, words);
      else
        philox_words_avx2(s, step, first, whole, words);
    }
    if (n > whole) {  // one register (AVX-512: 16 blocks) or two (AVX2) into scratch
      alignas(64) uint32_t scratch[4 * 32];
      const int part = n - whole <= 16 && wide ? 16 : group;
      if (part == 16)
        philox_words_avx512<1>(s, step, first + uint64_t(whole), 16, scratch);
      else if (wide)
        philox_words_avx512(s, step, first + uint64_t(whole), part, scratch);
      else
        philox_words_avx2(s, step, first + uint64_t(whole), part, scratch);
      std::memcpy(words + 4 * whole, scratch, sizeof(uint32_t) * 4 * size_t(n - whole));
    }
    return;
  }
#endif
  philox_words_portable(s, step, first, n, words);
}

// ---------------------------------------------------------------- the ziggurat's fast path

// z[m] = the fast path's normal of words[m] for from <= m < count, and bit m % 32 of slow[m / 32]
// set where the word may need the slow path. A flagged word whose ziggurat::fast is true
// keeps its z[m]: the SIMD paths flag more words than need it (below), and gaussian_round
// decides each flagged word with ziggurat::fast, so every path makes the same numbers.
template <class T>
LESDE_FILL_INLINE void ziggurat_fast_portable(const uint32_t* words, int from, int count, T* z,
                                              uint32_t* slow) {
  for (int m = from; m < count; ++m) {
    const uint32_t word = words[m];
    z[m] = T(ziggurat::with_sign(word, ziggurat::point(word)));
    if (!ziggurat::fast(word)) slow[m / 32] |= 1u << (m % 32);
  }
}

#ifdef LESDE_X86_SIMD
// A gather costs about a cycle per element on the CPUs measured (AMD Zen 4), as much as
// Philox's share of a normal, so the SIMD paths gather only each layer's width and decide
// "surely fast" by a table that fits in registers: for each group of consecutive layers, the
// least kAccept of its layers (the top layer, whose kAccept is 0, left out and always
// flagged). With 64 groups (AVX-512) 0.61% of words are flagged instead of 0.23%, with 32
// (AVX2) 1.06%; gaussian_round settles those with ziggurat::fast, and only the 0.23% run
// the slow path.
template <int Groups>
struct GroupAccept {
  static constexpr int kGroups = Groups, kPerGroup = ziggurat::kLayers / kGroups;
  uint32_t least[kGroups];
  constexpr GroupAccept() : least{} {
    for (int g = 0; g < kGroups; ++g) {
      uint32_t m = 0xFFFFFFFFu;
      for (int i = g * kPerGroup; i < (g + 1) * kPerGroup && i < ziggurat::kLayers - 1; ++i)
        m = ziggurat::kAccept[i] < m ? ziggurat::kAccept[i] : m;
      least[g] = m;
    }
  }
};
inline constexpr GroupAccept<32> kGroupAccept32{};
inline constexpr GroupAccept<64> kGroupAccept64{};
static_assert(ziggurat::kLayers % 64 == 0);

// Eight words at a time: the group's least kAccept by four vpermd, the width by a gather,
// the sign an xor of the top bit.
template <class T>
__attribute__((target("avx2"))) inline void ziggurat_fast_avx2(const uint32_t* words, int count,
                                                               T* z, uint32_t* slow) {
  using namespace ziggurat;
  constexpr int kGroupShift = kLayerBits - 5;  // 32 groups
  const __m256i layer_mask = _mm256_set1_epi32(kLayers - 1), one = _mm256_set1_epi32(1);
  const __m256i top = _mm256_set1_epi32(kLayers - 1);
  const __m256i sign_bit = _mm256_set1_epi64x(int64_t(0x8000000000000000ull));
  const uint32_t* least = kGroupAccept32.least;
  const __m256i t0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(least));
  const __m256i t1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(least + 8));
  const __m256i t2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(least + 16));
  const __m256i t3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(least + 24));
  int m = 0;
  for (; m + 8 <= count; m += 8) {
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(words + m));
    const __m256i layer = _mm256_and_si256(w, layer_mask);
    const __m256i u = _mm256_srli_epi32(w, kLayerBits + 1);
    const __m256i odd = _mm256_or_si256(_mm256_slli_epi32(u, 1), one);
    const __m256i group = _mm256_srli_epi32(layer, kGroupShift);  // 0 .. 31
    // vpermd reads the low 3 bits of the index; bits 3 and 4 pick the table.
    const __m256i sel3 = _mm256_slli_epi32(group, 28), sel4 = _mm256_slli_epi32(group, 27);
    const __m256i lo = _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(t0, group)),
        _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(t1, group)), _mm256_castsi256_ps(sel3)));
    const __m256i hi = _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(t2, group)),
        _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(t3, group)), _mm256_castsi256_ps(sel3)));
    const __m256i accept = _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi), _mm256_castsi256_ps(sel4)));
    // Surely fast: u below the group's least kAccept (both below 2^31), and not the top layer.
    const __m256i fast =
        _mm256_andnot_si256(_mm256_cmpeq_epi32(layer, top), _mm256_cmpgt_epi32(accept, u));
    const uint32_t bits = ~uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(fast))) & 0xFFu;
    slow[m / 32] |= bits << (m % 32);
    for (int h = 0; h < 2; ++h) {
      const __m128i lay = h ? _mm256_extracti128_si256(layer, 1) : _mm256_castsi256_si128(layer);
      const __m128i o = h ? _mm256_extracti128_si256(odd, 1) : _mm256_castsi256_si128(odd);
      const __m128i wh = h ? _mm256_extracti128_si256(w, 1) : _mm256_castsi256_si128(w);
      const __m256d width = _mm256_i32gather_pd(kWidth, lay, 8);
      const __m256d point = _mm256_mul_pd(_mm256_cvtepi32_pd(o), width);
      // The word's sign bit (kLayerBits) moved to the double's sign bit.
      const __m256i sign =
          _mm256_and_si256(_mm256_slli_epi64(_mm256_cvtepu32_epi64(wh), 63 - kLayerBits), sign_bit);
      const __m256d signed_point = _mm256_xor_pd(point, _mm256_castsi256_pd(sign));
      if constexpr (sizeof(T) == 8) {
        _mm256_storeu_pd(reinterpret_cast<double*>(z + m + 4 * h), signed_point);
      } else {
        _mm_storeu_ps(reinterpret_cast<float*>(z + m + 4 * h), _mm256_cvtpd_ps(signed_point));
      }
    }
  }
  ziggurat_fast_portable(words, m, count, z, slow);  // the last few words
}

// Sixteen words at a time: the group's least kAccept by two two-table permutes (vpermi2d),
// bit 5 of the group picking one.
template <class T>
__attribute__((target("avx512f"))) inline void ziggurat_fast_avx512(const uint32_t* words,
                                                                    int count, T* z,
                                                                    uint32_t* slow) {
  using namespace ziggurat;
  constexpr int kGroupShift = kLayerBits - 6;  // 64 groups
  const __m512i layer_mask = _mm512_set1_epi32(kLayers - 1), one = _mm512_set1_epi32(1);
  const __m512i top = _mm512_set1_epi32(kLayers - 1);
  const __m512i sign_bit = _mm512_set1_epi64(int64_t(0x8000000000000000ull));
  const __m512i t0 = _mm512_loadu_si512(kGroupAccept64.least);
  const __m512i t1 = _mm512_loadu_si512(kGroupAccept64.least + 16);
  const __m512i t2 = _mm512_loadu_si512(kGroupAccept64.least + 32);
  const __m512i t3 = _mm512_loadu_si512(kGroupAccept64.least + 48);
  const __m512i bit5 = _mm512_set1_epi32(32);
  int m = 0;
  for (; m + 16 <= count; m += 16) {
    const __m512i w = _mm512_loadu_si512(words + m);
    const __m512i layer = _mm512_and_si512(w, layer_mask);
    const __m512i u = _mm512_srli_epi32(w, kLayerBits + 1);
    const __m512i odd = _mm512_or_si512(_mm512_slli_epi32(u, 1), one);
    const __m512i group = _mm512_srli_epi32(layer, kGroupShift);
    const __m512i accept = _mm512_mask_blend_epi32(_mm512_test_epi32_mask(group, bit5),
                                                   _mm512_permutex2var_epi32(t0, group, t1),
                                                   _mm512_permutex2var_epi32(t2, group, t3));
    const __mmask16 fast =
        _mm512_cmplt_epu32_mask(u, accept) & _mm512_cmpneq_epi32_mask(layer, top);
    slow[m / 32] |= uint32_t(uint16_t(~fast)) << (m % 32);
    for (int h = 0; h < 2; ++h) {
      const __m256i lay = h ? _mm512_extracti64x4_epi64(layer, 1) : _mm512_castsi512_si256(layer);
      const __m256i o = h ? _mm512_extracti64x4_epi64(odd, 1) : _mm512_castsi512_si256(odd);
      const __m256i wh = h ? _mm512_extracti64x4_epi64(w, 1) : _mm512_castsi512_si256(w);
      const __m512d width = _mm512_i32gather_pd(lay, kWidth, 8);
      const __m512d point = _mm512_mul_pd(_mm512_cvtepi32_pd(o), width);
      const __m512i sign =
          _mm512_and_si512(_mm512_slli_epi64(_mm512_cvtepu32_epi64(wh), 63 - kLayerBits), sign_bit);
      const __m512d signed_point =
          _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(point), sign));
      if constexpr (sizeof(T) == 8) {
        _mm512_storeu_pd(reinterpret_cast<double*>(z + m + 8 * h), signed_point);
      } else {
        _mm256_storeu_ps(reinterpret_cast<float*>(z + m + 8 * h), _mm512_cvtpd_ps(signed_point));
      }
    }
  }
  ziggurat_fast_portable(words, m, count, z, slow);  // the last few words
}
#endif

// A round of Gaussian increments: normals number 4 block .. 4 (block + nb) - 1 of a stream
// at a step, from their words (words[m] is normal 4 block + m's): the ziggurat's fast path
// over every word at once, then the exact slow path (rng.hpp) for the 0.23% it leaves. The
// same numbers as ziggurat::normal, word by word.
template <class T>
LESDE_FILL_INLINE void gaussian_round(const Stream& s, uint32_t step, uint64_t block, int nb,
                                      const uint32_t* words, T* z, FillPath path) {
  const int count = 4 * nb;
  uint32_t slow[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // one bit per word: 256 words at most
  switch (fill_path(path)) {
#ifdef LESDE_X86_SIMD
    case FillPath::Avx512:
      ziggurat_fast_avx512(words, count, z, slow);
      break;
    case FillPath::Avx2:
      ziggurat_fast_avx2(words, count, z, slow);
      break;
#endif
    default:
      ziggurat_fast_portable(words, 0, count, z, slow);
  }
  for (int q = 0; q < (count + 31) / 32; ++q) {
    for (uint32_t bits = slow[q]; bits; bits &= bits - 1) {
      const int m = 32 * q + __builtin_ctz(bits);
      if (!ziggurat::fast(words[m]))
        z[m] = T(ziggurat::slow_path(s, step, 4 * block + uint64_t(m), words[m]));
    }
  }
}

// A round of two-point increments (TwoPointNoise::values over whole blocks): increment
// 32 q + k is bit k of words[q], +1 or -1. The inner loop has a fixed length, so it
// vectorises as a broadcast of the word, a shift by each lane's bit, and a conversion.
template <class T>
LESDE_FILL_INLINE void two_point_round(const uint32_t* words, int nwords, T* z) {
  for (int q = 0; q < nwords; ++q) {
    const uint32_t word = words[q];
    for (int k = 0; k < 32; ++k) z[32 * q + k] = T(int32_t((word >> k) & 1u) * 2 - 1);
  }
}

// fill_increments for one noise law (rng.hpp), inlined into it so that it is compiled for
// the same instruction set (LESDE_CLONES): Philox over a round's blocks, then the law's
// transform (Law::values, or the Gaussian's vectorised round) over their words.
template <class Law, class T>
LESDE_FILL_INLINE void fill_law_increments(const Stream& s, uint32_t step, uint64_t first,
                                           int64_t count, T* out, FillPath path) {
  // Blocks per round: 64 (256 increments) for the laws of a word per increment; 16 (2,048
  // increments, one AVX-512 register of blocks) for two-point's 128 per block.
  constexpr int kPerBlock = Law::kPerBlock, round_blocks = kPerBlock == 4 ? 64 : 16;
  alignas(64) uint32_t words[4 * 64];
  alignas(64) T z[kPerBlock * round_blocks];
  uint64_t block = first / uint64_t(kPerBlock);
  int64_t skip = int64_t(first % uint64_t(kPerBlock)), done = 0;
  while (done < count) {
    const int64_t need = count - done + skip;
    const int nb = int(std::min<int64_t>(round_blocks, (need + kPerBlock - 1) / kPerBlock));
    philox_words(s, step, block, nb, words, path);
    const int64_t take = std::min<int64_t>(int64_t(kPerBlock) * nb - skip, count - done);
    // A whole round goes straight to out; a partial one (the ends) through z.
    T* dest = skip == 0 && take == int64_t(kPerBlock) * nb ? out + done : z;
    if constexpr (std::is_same_v<Law, GaussianNoise>) {
      gaussian_round(s, step, block, nb, words, dest, path);
    } else if constexpr (std::is_same_v<Law, TwoPointNoise>) {
      two_point_round(words, 4 * nb, dest);
    } else {
      for (int l = 0; l < nb; ++l)
        Law::values(s, step, block + uint64_t(l), words + 4 * l, 0, kPerBlock,
                    dest + kPerBlock * l);
    }
    if (dest == z) std::memcpy(out + done, z + skip, size_t(take) * sizeof(T));
    done += take;
    skip = 0;
    block += uint64_t(nb);
  }
}

// out[0 .. count) = increments number first .. first + count - 1 of the noise stream of
// `kind` at one step: the numbers of increments_at (rng.hpp), many at once.
template <class T>
LESDE_CLONES void fill_increments(NoiseKind kind, const Stream& s, uint32_t step, uint64_t first,
                                  int64_t count, T* out, FillPath path = FillPath::Best) {
  with_noise_law(kind, [&](auto law) LESDE_FILL_LAMBDA {
    fill_law_increments<decltype(law)>(s, step, first, count, out, path);
  });
}

// The Gaussian increments (normals_at), as the initial state and SGD's lazy noise draw them.
template <class T>
void fill_normals(const Stream& s, uint32_t step, uint64_t first, int64_t count, T* out,
                  FillPath path = FillPath::Best) {
  fill_increments(NoiseKind::Gaussian, s, step, first, count, out, path);
}

}  // namespace lesde
