// Branch-free log and exp written so that the compiler vectorises loops that
// call them (glibc's scalar libm calls cannot be vectorised portably, and they were 60%
// of a step). Each uses a short exact range reduction and a Taylor polynomial truncated
// below the precision of T, so results agree with libm to a few ulps; tests compare the
// generated noise against an independent NumPy implementation.
#pragma once

#include <cstdint>
#include <cstring>

// The per-sample functions every backend calls: host and device code under nvcc. On the
// host they are always inlined into their callers, so the loops calling them vectorise and
// are compiled for the callers' instruction set (the CPU's tile functions are compiled for
// AVX2 and for the baseline: LESDE_CLONES).
#if defined(__CUDACC__)
#define LESDE_HD __host__ __device__ inline
#elif defined(__GNUC__)
#define LESDE_HD inline __attribute__((always_inline))
#else
#define LESDE_HD inline
#endif

namespace lesde::fastmath {

template <class To, class From>
LESDE_HD To bits(From x) {
  static_assert(sizeof(To) == sizeof(From));
  To y;
  std::memcpy(&y, &x, sizeof(To));
  return y;
}

template <class T>
struct Traits;

template <>
struct Traits<double> {
  using Int = uint64_t;
  static constexpr int mantissa = 52;
  static constexpr Int exponent_bias = 1023;
  static constexpr Int mantissa_mask = (Int(1) << 52) - 1;
  static constexpr double round_magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double exp_min = -708.0;
  static constexpr double ln2_hi = 0.693147180369123816490;     // ln 2 split so that k * ln2_hi
  static constexpr double ln2_lo = 1.90821492927058770002e-10;  // is exact for |k| < 2^20
};

template <>
struct Traits<float> {
  using Int = uint32_t;
  static constexpr int mantissa = 23;
  static constexpr Int exponent_bias = 127;
  static constexpr Int mantissa_mask = (Int(1) << 23) - 1;
  static constexpr float round_magic = 12582912.0f;  // 1.5 * 2^23
  static constexpr float exp_min = -87.0f;
  static constexpr float ln2_hi = 0.693145751953125f;
  static constexpr float ln2_lo = 1.428606765330187045e-06f;
};

constexpr double kSqrt2 = 1.41421356237309504880;

// Natural log of a positive normal number u.
template <class T>
LESDE_HD T log(T u) {
  using Tr = Traits<T>;
  using I = typename Tr::Int;
  const I b = bits<I>(u);
  I e_raw = b >> Tr::mantissa;  // biased exponent (u > 0, so no sign bit)
  T m = bits<T>((b & Tr::mantissa_mask) | (Tr::exponent_bias << Tr::mantissa));  // [1, 2)
  const bool big = m > T(kSqrt2);
  m = big ? m * T(0.5) : m;
  e_raw = big ? e_raw + 1 : e_raw;
  // Exponent as a float without an int64 -> double conversion (absent from AVX2).
  const T e = bits<T>(e_raw | bits<I>(T(1) * (I(1) << Tr::mantissa))) - T(I(1) << Tr::mantissa) -
              T(Tr::exponent_bias);
  const T f = (m - T(1)) / (m + T(1));  // |f| <= 0.1716
  const T s = f * f;
  // 2 atanh(f) = 2 f sum s^k / (2k + 3) (k >= 0), to s^10 (double) or s^3 (float), by
  // Estrin's scheme: pairs of terms, then powers s^2, s^4, s^8, so the dependency chains are
  // a few operations long instead of one Horner step per term (the loops calling this are
  // latency bound).
  T poly;
  if constexpr (sizeof(T) == 8) {
    const T s2 = s * s, s4 = s2 * s2, s8 = s4 * s4;
    const T p01 = T(1.0 / 3) + T(1.0 / 5) * s, p23 = T(1.0 / 7) + T(1.0 / 9) * s;
    const T p45 = T(1.0 / 11) + T(1.0 / 13) * s, p67 = T(1.0 / 15) + T(1.0 / 17) * s;
    const T p89 = T(1.0 / 19) + T(1.0 / 21) * s, p10 = T(1.0 / 23);
    poly = ((p01 + p23 * s2) + (p45 + p67 * s2) * s4) + (p89 + p10 * s2) * s8;
  } else {
    poly = (T(1.0 / 3) + T(1.0 / 5) * s) + (T(1.0 / 7) + T(1.0 / 9) * s) * (s * s);
  }
  const T log_m = T(2) * f + T(2) * f * s * poly;
  return e * Tr::ln2_hi + (e * Tr::ln2_lo + log_m);
}

// exp(x) for x <= 0 (softmax after subtracting the maximum); 0 below the normal range.
template <class T>
LESDE_HD T exp_nonpositive(T x) {
  using Tr = Traits<T>;
  using I = typename Tr::Int;
  const bool tiny = x < Tr::exp_min;
  x = tiny ? T(Tr::exp_min) : x;
  const T shifted = x * T(1.44269504088896340736) + Tr::round_magic;  // x / ln 2
  const T k = shifted - Tr::round_magic;
  const I k_bits = bits<I>(shifted) - bits<I>(T(Tr::round_magic));  // k as an integer
  const T r = (x - k * Tr::ln2_hi) - k * Tr::ln2_lo;                // |r| <= ln2 / 2
  // exp(r) = sum r^k / k!, to 1/13! (double) or 1/8! (float), by Estrin's scheme (see log).
  T p;
  const T r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const T e01 = T(1) + r, e23 = T(0.5) + T(1.0 / 6.0) * r;
  const T e45 = T(1.0 / 24.0) + T(1.0 / 120.0) * r, e67 = T(1.0 / 720.0) + T(1.0 / 5040.0) * r;
  const T low = (e01 + e23 * r2) + (e45 + e67 * r2) * r4;
  if constexpr (sizeof(T) == 8) {
    const T e89 = T(1.0 / 40320.0) + T(1.0 / 362880.0) * r;
    const T e1011 = T(1.0 / 3628800.0) + T(1.0 / 39916800.0) * r;
    const T e1213 = T(1.0 / 479001600.0) + T(1.0 / 6227020800.0) * r;
    p = low + ((e89 + e1011 * r2) + e1213 * r4) * r8;
  } else {
    p = low + T(1.0 / 40320.0) * r8;
  }
  const T scale = bits<T>((k_bits + Tr::exponent_bias) << Tr::mantissa);  // 2^k
  return tiny ? T(0) : p * scale;
}

}  // namespace lesde::fastmath
