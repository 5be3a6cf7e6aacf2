// Branch-free log, sin/cos and exp written so that the compiler vectorises loops that
// call them (glibc's scalar libm calls cannot be vectorised portably, and they were 60%
// of a step). Each uses a short exact range reduction and a Taylor polynomial truncated
// below the precision of T, so results agree with libm to a few ulps; tests compare the
// generated noise against an independent NumPy implementation.
#pragma once

#include <cstdint>
#include <cstring>


#if defined(__CUDACC__)
#define LESDE_HD __host__ __device__ inline
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
  static constexpr double ln2_hi = 0.693147180369123816490;  // ln 2 split so that k * ln2_hi
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
constexpr double kHalfPi = 1.57079632679489661923;

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
  const T e = bits<T>(e_raw | bits<I>(T(1) * (I(1) << Tr::mantissa))) -
              T(I(1) << Tr::mantissa) - T(Tr::exponent_bias);
  const T f = (m - T(1)) / (m + T(1));  // |f| <= 0.1716
  const T s = f * f;
  T poly;
  if constexpr (sizeof(T) == 8) {  // 2 atanh(f) = 2 f sum s^k / (2k + 1), to s^11
    poly = T(1.0 / 23);
    poly = poly * s + T(1.0 / 21);
    poly = poly * s + T(1.0 / 19);
    poly = poly * s + T(1.0 / 17);
    poly = poly * s + T(1.0 / 15);
    poly = poly * s + T(1.0 / 13);
    poly = poly * s + T(1.0 / 11);
    poly = poly * s + T(1.0 / 9);
  } else {
    poly = T(1.0 / 9);
  }
  poly = poly * s + T(1.0 / 7);
  poly = poly * s + T(1.0 / 5);
  poly = poly * s + T(1.0 / 3);
  const T log_m = T(2) * f + T(2) * f * s * poly;
  return e * Tr::ln2_hi + (e * Tr::ln2_lo + log_m);
}

// sin(2 pi u) and cos(2 pi u) for u in [0, 1]. Reduction: 4u = k + v with k the nearest
// integer (exact in floating point), so 2 pi u = k pi/2 + v pi/2 with |v pi/2| <= pi/4.
template <class T>
LESDE_HD void sincos_2pi(T u, T& s, T& c) {
  using Tr = Traits<T>;
  using I = typename Tr::Int;
  const T shifted = T(4) * u + Tr::round_magic;
  const I k = bits<I>(shifted);  // low bits hold round(4u)
  const T r = (T(4) * u - (shifted - Tr::round_magic)) * T(kHalfPi);
  const T r2 = r * r;
  T ps, pc;  // Taylor series of sin and cos on [-pi/4, pi/4], Horner in r^2
  if constexpr (sizeof(T) == 8) {
    ps = T(1.0 / 355687428096000.0);              // 1/17!
    ps = ps * r2 - T(1.0 / 1307674368000.0);      // 1/15!
    ps = ps * r2 + T(1.0 / 6227020800.0);         // 1/13!
    ps = ps * r2 - T(1.0 / 39916800.0);           // 1/11!
    ps = ps * r2 + T(1.0 / 362880.0);             // 1/9!
    pc = T(1.0 / 20922789888000.0);               // 1/16!
    pc = pc * r2 - T(1.0 / 87178291200.0);        // 1/14!
    pc = pc * r2 + T(1.0 / 479001600.0);          // 1/12!
    pc = pc * r2 - T(1.0 / 3628800.0);            // 1/10!
    pc = pc * r2 + T(1.0 / 40320.0);              // 1/8!
  } else {
    ps = T(1.0 / 362880.0);
    pc = T(-1.0 / 3628800.0) * r2 + T(1.0 / 40320.0);
  }
  ps = ps * r2 - T(1.0 / 5040.0);
  ps = ps * r2 + T(1.0 / 120.0);
  ps = ps * r2 - T(1.0 / 6.0);
  const T sin_r = r + r * r2 * ps;
  pc = pc * r2 - T(1.0 / 720.0);
  pc = pc * r2 + T(1.0 / 24.0);
  pc = pc * r2 - T(0.5);
  const T cos_r = T(1) + r2 * pc;
  const I q = k & I(3);
  const T a = (q & I(1)) ? cos_r : sin_r;
  const T b = (q & I(1)) ? sin_r : cos_r;
  s = (q & I(2)) ? -a : a;
  c = ((q + I(1)) & I(2)) ? -b : b;
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
  const T r = (x - k * Tr::ln2_hi) - k * Tr::ln2_lo;  // |r| <= ln2 / 2
  T p;
  if constexpr (sizeof(T) == 8) {
    p = T(1.0 / 6227020800.0);                        // 1/13!
    p = p * r + T(1.0 / 479001600.0);
    p = p * r + T(1.0 / 39916800.0);
    p = p * r + T(1.0 / 3628800.0);
    p = p * r + T(1.0 / 362880.0);
    p = p * r + T(1.0 / 40320.0);
  } else {
    p = T(1.0 / 40320.0);
  }
  p = p * r + T(1.0 / 5040.0);
  p = p * r + T(1.0 / 720.0);
  p = p * r + T(1.0 / 120.0);
  p = p * r + T(1.0 / 24.0);
  p = p * r + T(1.0 / 6.0);
  p = p * r + T(0.5);
  p = p * r + T(1);
  p = p * r + T(1);
  const T scale = bits<T>((k_bits + Tr::exponent_bias) << Tr::mantissa);  // 2^k
  return tiny ? T(0) : p * scale;
}

}  // namespace lesde::fastmath
