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

#include "fastmath.hpp"

namespace lesde {

// Version of the mapping (seed, indices) -> numbers. Bump it whenever that mapping
// changes, so saved results say which stream produced them.
// 2: Box-Muller's polynomials evaluated by Estrin's scheme (last-bit changes); the
//    two-point and three-point noise streams.
constexpr int kRandomStreamVersion = 2;

// What a random draw is for. Part of the counter, so streams never overlap.
enum class Purpose : uint32_t {
  Init = 1,
  Noise = 2,  // the Gaussian increments of the SDE (and of SGD's sample noise)
  Labels = 3,
  Batch = 4,
  NoiseTwoPoint = 5,
  NoiseThreePoint = 6,
};

// The law of the SDE's Brownian increments, dW = sqrt(dt) xi (Config.noise).
enum class NoiseKind : int {
  Gaussian = 0,    // xi ~ N(0, 1): exact, strong order 1
  TwoPoint = 1,    // xi = +-1, each with probability 1/2: one random bit; weak order 1
  ThreePoint = 2,  // xi = +-sqrt(3) w.p. 1/6 each, 0 w.p. 2/3: moments to the 5th; weak order 2
};

// What each noise law is, for the tests and the docs (kNoiseKinds below). weak_order: the
// highest weak order a scheme can reach with these increments (their moments match the
// Gaussian's up to the (2 w + 1)-th); the effective order is the smaller of this and the
// scheme's (integrators.hpp kSchemes). 0 stands for "no limit" (exact Gaussian).
struct NoiseInfo {
  NoiseKind kind;
  const char* name;
  double weak_order;
};

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
  for (int round = 0; round < 10; ++round) {  // no branch: vectorisable across lanes
    philox_round(ctr, key);
    key[0] += W0;
    key[1] += W1;
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

// The uniform a Box-Muller draw uses: 32 bits for double, the top 24 for float (exact).
template <class T>
LESDE_HD T uniform(uint32_t word) {
  if constexpr (sizeof(T) == 8) {
    return (T(word) + T(0.5)) * T(0x1p-32);
  } else {
    return (T(int32_t(word >> 8)) + T(0.5)) * T(0x1p-24);
  }
}

// Four standard normals from one Philox block by Box-Muller. The 32-bit uniforms bound
// |z| below 6.7 (a tail of probability 2e-11), far beyond any statistic we test.
template <class T>
LESDE_HD void normals4(const Philox4x32& r, T z[4]) {
  const T u0 = uniform<T>(r.v[0]), u1 = uniform<T>(r.v[1]);
  const T u2 = uniform<T>(r.v[2]), u3 = uniform<T>(r.v[3]);
  const T r0 = std::sqrt(T(-2) * fastmath::log(u0));
  const T r1 = std::sqrt(T(-2) * fastmath::log(u2));
  T s0, c0, s1, c1;
  fastmath::sincos_2pi(u1, s0, c0);
  fastmath::sincos_2pi(u3, s1, c1);
  z[0] = r0 * c0;
  z[1] = r0 * s0;
  z[2] = r1 * c1;
  z[3] = r1 * s1;
}

// An integer uniform on [0, n) from two random words (multiply-shift, bias < n / 2^64).
LESDE_HD uint64_t uniform_index(uint32_t hi, uint32_t lo, uint64_t n) {
  const uint64_t r = (uint64_t(hi) << 32) | lo;
  return uint64_t((static_cast<unsigned __int128>(r) * n) >> 64);
}

// The weak noises, one increment from its random bits. Two-point: increment n is bit n % 32
// of word (n / 32) % 4 of block n / 128 (one Philox block serves 128 increments).
// Three-point: word n % 4 of block n / 4; (word * 6) >> 32 picks one of six equally likely
// outcomes (to 2^-32): +sqrt(3), -sqrt(3), or 0 for the other four.
template <class T>
LESDE_HD T two_point(uint32_t word, uint64_t n) {
  return ((word >> (n & 31)) & 1u) ? T(1) : T(-1);
}
template <class T>
LESDE_HD T three_point(uint32_t word) {
  constexpr double kSqrt3 = 1.73205080756887729353;
  const uint32_t outcome = uint32_t((uint64_t(word) * 6u) >> 32);
  return outcome == 0 ? T(kSqrt3) : outcome == 1 ? T(-kSqrt3) : T(0);
}

// ---------------------------------------------------------------- the noise laws

// A noise law, one type each: its stream's purpose tag, how many increments one Philox block
// makes (kPerBlock: increment n of a stream at a step comes from block n / kPerBlock, whose
// counter is (block low, block high, step)), and values(), the transform of a block's words
// into its increments (Words: anything whose [j] is word j of the block). The scalar path
// (increments_at below: a GPU thread, SGD's lazy noise) and the CPU's vectorised fill (rng_fill.hpp
// fill_increments) both call values(), and with_noise_law is the one place that maps a NoiseKind to
// its law, so the two agree bit for bit. A new law: a type here, a NoiseKind value, a case in
// with_noise_law, a row of kNoiseKinds (and its purpose tag in Purpose).
struct GaussianNoise {  // xi ~ N(0, 1), by Box-Muller: exact, strong order 1
  static constexpr NoiseInfo kInfo{NoiseKind::Gaussian, "gaussian", 0.0};
  static constexpr Purpose kPurpose = Purpose::Noise;
  static constexpr int kPerBlock = 4;
  // Increments from .. from + count - 1 (<= kPerBlock) of the block whose words are w[0..3].
  template <class T, class Words>
  LESDE_HD static void values(const Words& w, int from, int count, T* out) {
    T z[4];
    normals4(Philox4x32{{w[0], w[1], w[2], w[3]}}, z);
    for (int j = 0; j < count; ++j) out[j] = z[from + j];
  }
};
struct TwoPointNoise {  // xi = +-1, each with probability 1/2: one random bit; weak order 1
  static constexpr NoiseInfo kInfo{NoiseKind::TwoPoint, "two_point", 1.0};
  static constexpr Purpose kPurpose = Purpose::NoiseTwoPoint;
  static constexpr int kPerBlock = 128;
  template <class T, class Words>
  LESDE_HD static void values(const Words& w, int from, int count, T* out) {
    for (int j = 0; j < 4; ++j) {  // word j: increments 32 j .. 32 j + 31, in bit order
      const int lo = from > 32 * j ? from : 32 * j;
      const int hi = from + count < 32 * j + 32 ? from + count : 32 * j + 32;
      const uint32_t word = w[j];
      for (int n = lo; n < hi; ++n) out[n - from] = two_point<T>(word, uint64_t(n));
    }
  }
};
struct ThreePointNoise {  // xi = +-sqrt(3) w.p. 1/6 each, 0 w.p. 2/3: weak order 2
  static constexpr NoiseInfo kInfo{NoiseKind::ThreePoint, "three_point", 2.0};
  static constexpr Purpose kPurpose = Purpose::NoiseThreePoint;
  static constexpr int kPerBlock = 4;
  template <class T, class Words>
  LESDE_HD static void values(const Words& w, int from, int count, T* out) {
    for (int j = 0; j < count; ++j) out[j] = three_point<T>(w[from + j]);
  }
};

// f(Law{}) for the law of `kind`: the one dispatch on the noise kind.
template <class F>
constexpr LESDE_HD auto with_noise_law(NoiseKind kind, F&& f) {
  switch (kind) {
    case NoiseKind::TwoPoint:
      return f(TwoPointNoise{});
    case NoiseKind::ThreePoint:
      return f(ThreePointNoise{});
    case NoiseKind::Gaussian:
      break;
  }
  return f(GaussianNoise{});
}

// Each noise kind and its weak order (the tests read the orders from here).
inline constexpr NoiseInfo kNoiseKinds[] = {GaussianNoise::kInfo, TwoPointNoise::kInfo,
                                            ThreePointNoise::kInfo};

// Row i of kNoiseKinds is NoiseKind i, and with_noise_law gives it the law that says so (a
// case forgotten there falls to the Gaussian law and fails here, at compile time).
constexpr bool noise_laws_agree() {
  for (int i = 0; i < int(sizeof(kNoiseKinds) / sizeof(kNoiseKinds[0])); ++i) {
    const NoiseKind kind = kNoiseKinds[i].kind;
    if (kind != NoiseKind(i)) return false;
    if (with_noise_law(kind, [](auto law) { return decltype(law)::kInfo.kind; }) != kind)
      return false;
  }
  return true;
}
static_assert(noise_laws_agree(), "kNoiseKinds and with_noise_law must list every law once");

// The purpose tag of the stream of a noise kind's increments.
LESDE_HD Purpose noise_purpose(NoiseKind kind) {
  return with_noise_law(kind, [](auto law) { return decltype(law)::kPurpose; });
}

// Increments number first .. first + count - 1 of a Law's stream at one step, a block at a
// time. One sample's p increments are consecutive, so they share a block or two.
template <class Law, class T>
LESDE_HD void law_increments_at(const Stream& s, uint32_t step, uint64_t first, int64_t count,
                                T* out) {
  for (int64_t j = 0; j < count;) {
    const uint64_t n = first + uint64_t(j), block = n / uint64_t(Law::kPerBlock);
    const int from = int(n % uint64_t(Law::kPerBlock));
    const int64_t left = count - j;
    const int take = left < Law::kPerBlock - from ? int(left) : Law::kPerBlock - from;
    const Philox4x32 r = s.draw(uint32_t(block), uint32_t(block >> 32), step);
    Law::values(r.v, from, take, out + j);
    j += take;
  }
}

// Standard normals number first .. first + count - 1 of a stream at one step: normal n is
// entry n % 4 of the Box-Muller block n / 4. Sample i with p coordinates owns normals
// i*p .. i*p + p - 1, so the numbers depend on global indices only. (The CPU sweeps use the
// vectorised fill_increments of rng_fill.hpp, which makes the same numbers.)
template <class T>
LESDE_HD void normals_at(const Stream& s, uint32_t step, uint64_t first, int64_t count, T* out) {
  law_increments_at<GaussianNoise>(s, step, first, count, out);
}

// Increments number first .. first + count - 1 of the noise stream of `kind` at one step.
template <class T>
LESDE_HD void increments_at(NoiseKind kind, const Stream& s, uint32_t step, uint64_t first,
                            int64_t count, T* out) {
  with_noise_law(kind,
                 [&](auto law) { law_increments_at<decltype(law)>(s, step, first, count, out); });
}

}  // namespace lesde
