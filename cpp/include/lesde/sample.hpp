// What happens to one sample: its initial state, and its move in a sweep.
// Written once: the CPU sweeps (cpu_backend.hpp) and the CUDA kernels (cpp/cuda) call these,
// so both backends evaluate the same expressions in the same order.
#pragma once

#include <cstdint>

#include "rng.hpp"

namespace lesde {

// The training label y_i of sample i of true class c: with probability label_noise one of
// the other K - 1 classes, uniformly (MODEL.md section 3), from the Labels stream.
LESDE_HD int initial_label(const Stream& labels, int64_t i, int c, int K, double label_noise) {
  int y = c;
  if (label_noise > 0) {
    const Philox4x32 r = labels.draw(0u, uint32_t(i), 0u);
    if (uniform_open(r.v[0]) < label_noise) {
      const int other = int(uniform_index(r.v[1], r.v[2], uint64_t(K - 1)));
      y = other < c ? other : other + 1;
    }
  }
  return y;
}

// x = mu_c + init_scale * z for one sample of class c (means: K x p, or nullptr for zeros).
template <class Real>
LESDE_HD void initial_features(int p, const double* means, double init_scale, int c,
                               const double* z, Real* x) {
  for (int q = 0; q < p; ++q) {
    const double mu = means == nullptr ? 0.0 : means[c * p + q];
    x[q] = Real(mu + init_scale * z[q]);
  }
}

// What a sweep does to each sample before its signal joins the class sums.
enum class Move : int {
  None = 0,   // nothing: the class sums of the current state
  Drift = 1,  // x <- x + coef_c dt + noise_scale xi (Euler-Maruyama, Heun predictor)
  Shift = 2,  // x <- x + coef_c (Heun corrector)
};

// The move of one coordinate, the one expression every backend evaluates: x + step (+ the
// scaled increment), in double, rounded to the state's type. step is coef * dt for a drift,
// coef itself for Heun's shift.
template <class Real>
LESDE_HD Real moved(Real x, double step) {
  return Real(double(x) + step);
}
template <class Real, class Noise>
LESDE_HD Real moved(Real x, double step, double noise_scale, Noise xi) {
  return Real(double(x) + step + noise_scale * xi);
}

// The step of one coordinate of a class: coef * dt for Move::Drift, coef for Move::Shift.
LESDE_HD double coordinate_step(Move move, double coef, double dt) {
  return move == Move::Drift ? coef * dt : coef;
}

// Moves one sample of class c: coef_c is its class's row of the sweep's K x p coefficients,
// xi its p noise increments of this step (read only by Move::Drift; nullptr where the noise
// scale is zero: then none were drawn).
template <class Real, class Noise>
LESDE_HD void move_sample(Move move, int p, const double* coef_c, double dt, double noise_scale,
                          const Noise* xi, Real* x) {
  if (move == Move::None) return;
  const bool noisy = move == Move::Drift && xi != nullptr;
  for (int q = 0; q < p; ++q) {
    const double step = coordinate_step(move, coef_c[q], dt);
    x[q] = noisy ? moved(x[q], step, noise_scale, xi[q]) : moved(x[q], step);
  }
}

}  // namespace lesde
