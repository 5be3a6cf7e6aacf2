// The schemes (MODEL.md section 2): what one step of each dynamics computes, independent of
// where the samples live. Written once; the run driver (simulation.hpp) calls these for every
// backend.
//
// SDE (2b): the N coupled equations interact only through the K x p class sums
// S_k = sum_{c_j = k} g(x_j, y_j), so a step is a few per-step numbers computed on the host
// (the drift b = E(t) S / N, the noise scale, Heun's shift: K x p each) and one or two
// sweeps over the samples, which a backend runs (cpu_backend.hpp, cpp/cuda): move every
// sample, then add up the class sums of g for the next step.
//
// SGD (2a): every sample of a class receives the same update, so a step touches only the
// batch: class offsets carry the shared drift, and each sample's Gaussian noise is added
// lazily (one draw for all the variance accumulated since the sample was last read), so a
// step costs O(K p B) whatever N is. It runs on the host, whatever the backend.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dense.hpp"
#include "kernels.hpp"
#include "model.hpp"
#include "reduce.hpp"
#include "rng.hpp"
#include "sample.hpp"
#include "signals.hpp"

namespace lesde {

// ---------------------------------------------------------------- the SDE schemes

// What each scheme is: the tests read the orders from here (via Python, _core.schemes()) and
// check them, the docs quote them, and the driver runs `sweeps` sweeps per step. Orders are
// for this model's additive noise: the drift's order without noise (the LE-ODE), the strong
// (pathwise) and the weak order (laws).
struct SchemeInfo {
  Scheme scheme;
  const char* name;
  int sweeps;           // passes over the samples per step
  double ode_order;     // sigma = 0
  double strong_order;  // additive noise: Euler-Maruyama is already order 1
  double weak_order;    // with Gaussian increments
};

// One sweep as a backend runs it: how every sample of the listed replicas moves (sample.hpp
// move_sample), with one K x p coefficient matrix per listed replica, in list order.
struct Sweep {
  Move move = Move::None;
  uint32_t step = 0;  // the step whose increments Move::Drift draws (the noise stream's counter)
  double dt = 0.0, noise_scale = 0.0;
  std::vector<double> coef;
  bool record = false;  // the new state is recorded: also add up its first moments (metrics.hpp)
};

// What sweep j of a step knows of a replica it moves: its class sums now (after sweep j - 1,
// or at the start of the step), and its row (K x p) of sweep j - 1's coefficients (nullptr
// for j = 0). SweepInputs: one per moved replica, in list order.
struct SweepInput {
  const std::vector<double>* sums;
  const double* earlier;
};
using SweepInputs = std::vector<SweepInput>;

// b = E(t) S / N, i.e. b_k = sum_k' pi_k' E[k, k'] Gbar_k' (K x p).
inline std::vector<double> drift(const EngineConfig& cfg, double t, const std::vector<double>& S) {
  const int K = cfg.K, p = cfg.p;
  std::vector<double> E(K * K), b(K * p, 0.0);
  impact_matrix(cfg, t, E.data());
  dense::add_product(dense::view(b.data(), K, p), 1.0 / double(cfg.n_samples()),
                     dense::view(E.data(), K, K), dense::view(S.data(), K, p));
  return b;
}

// A Drift sweep of step `step`: x <- x + b(t) dt + sigma sqrt(dt) xi, with b from each
// listed replica's class sums at the start of the step.
inline Sweep drift_sweep(const EngineConfig& cfg, int64_t step, double sigma,
                         const SweepInputs& in) {
  const double t = step * cfg.dt, dt = cfg.dt;
  Sweep s;
  s.move = Move::Drift;
  s.step = uint32_t(step);
  s.dt = dt;
  s.noise_scale = sigma * std::sqrt(dt);
  for (const SweepInput& r : in) {
    const std::vector<double> b = drift(cfg, t, *r.sums);
    s.coef.insert(s.coef.end(), b.begin(), b.end());
  }
  return s;
}

// The schemes, one type each: kInfo, and sweep(cfg, j, step, in), the j-th of the
// kInfo.sweeps sweeps of one step. The driver (simulation.hpp Engine::one_step) runs them in
// order for every backend; with_scheme is the one dispatch on the scheme. A new scheme: a
// type here, a Scheme value (model.hpp), a case in with_scheme and a row of kSchemes.

// Euler-Maruyama: one Drift sweep, x <- x + b(t) dt + sigma(t) sqrt(dt) xi.
struct EulerMaruyamaScheme {
  static constexpr SchemeInfo kInfo{Scheme::EulerMaruyama, "euler_maruyama", 1, 1.0, 1.0, 1.0};
  static Sweep sweep(const EngineConfig& cfg, int, int64_t step, const SweepInputs& in) {
    return drift_sweep(cfg, step, cfg.sigma(step * cfg.dt), in);
  }
};

// Heun (the trapezoid rule): the predictor is a Drift sweep with the trapezoid noise scale
// (sigma(t) + sigma(t + dt)) / 2 sqrt(dt); the corrector x <- x_pred + (b(x_pred, t + dt) -
// b(x, t)) dt / 2 is a per-class shift (the drift is constant within a class): a Move::Shift
// sweep of the replicas still running, from their sums after the predictor.
struct HeunScheme {
  static constexpr SchemeInfo kInfo{Scheme::Heun, "heun", 2, 2.0, 1.0, 2.0};
  static Sweep sweep(const EngineConfig& cfg, int j, int64_t step, const SweepInputs& in) {
    const double t = step * cfg.dt, dt = cfg.dt;
    if (j == 0) return drift_sweep(cfg, step, 0.5 * (cfg.sigma(t) + cfg.sigma(t + dt)), in);
    Sweep s;
    s.move = Move::Shift;
    s.step = uint32_t(step);
    for (const SweepInput& r : in) {
      const std::vector<double> shift = heun_shift(cfg, step, r.earlier, *r.sums);
      s.coef.insert(s.coef.end(), shift.begin(), shift.end());
    }
    return s;
  }
  // The corrector's coefficients for one replica. b0: its row of the predictor's coef; sums:
  // its class sums after the predictor.
  static std::vector<double> heun_shift(const EngineConfig& cfg, int64_t step, const double* b0,
                                        const std::vector<double>& sums) {
    const double dt = cfg.dt;
    std::vector<double> shift = drift(cfg, step * dt + dt, sums);  // t + dt, as the predictor's t
    dense::View b1 = dense::view(shift.data(), cfg.K, cfg.p);
    b1 = (0.5 * dt) * (b1 - dense::view(b0, cfg.K, cfg.p));
    return shift;
  }
};

// f(SchemeType{}) for a Scheme: the one dispatch on the scheme.
template <class F>
constexpr decltype(auto) with_scheme(Scheme scheme, F&& f) {
  switch (scheme) {
    case Scheme::Heun:
      return f(HeunScheme{});
    case Scheme::EulerMaruyama:
      break;
  }
  return f(EulerMaruyamaScheme{});
}

inline constexpr SchemeInfo kSchemes[] = {EulerMaruyamaScheme::kInfo, HeunScheme::kInfo};

// Row i of kSchemes is Scheme i, and with_scheme gives it the type that says so.
constexpr bool schemes_agree() {
  for (int i = 0; i < int(sizeof(kSchemes) / sizeof(kSchemes[0])); ++i) {
    const Scheme scheme = kSchemes[i].scheme;
    if (scheme != Scheme(i) || kSchemes[i].sweeps < 1) return false;
    if (with_scheme(scheme, [](auto s) { return decltype(s)::kInfo.scheme; }) != scheme)
      return false;
  }
  return true;
}
static_assert(schemes_agree(), "kSchemes and with_scheme must list every scheme once");

inline const SchemeInfo& scheme_info(Scheme scheme) {
  return with_scheme(scheme, [](auto s) -> const SchemeInfo& { return decltype(s)::kInfo; });
}

// Sweep j of step `step` of the run's scheme.
inline Sweep scheme_sweep(const EngineConfig& cfg, int j, int64_t step, const SweepInputs& in) {
  return with_scheme(cfg.scheme, [&](auto s) { return decltype(s)::sweep(cfg, j, step, in); });
}

inline bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// ---------------------------------------------------------------- the SGD process (host)

// One replica's per-sample arrays on the host, and its SGD bookkeeping.
template <class Real>
struct HostReplica {
  Real* X;                  // N x p: the features minus the class offsets
  int32_t* labels;          // N
  const int32_t* classes;   // N
  double* noise_var;        // N: noise variance already added to each sample
  uint32_t replica;
  int threads;              // threads for loops over this replica's samples
  std::vector<double>* offsets;  // K x p: the drift shared by each class, not yet in X
  double* applied_var;           // noise variance every sample should have received so far
};

// Adds to sample i the noise variance accumulated since it was last read, drawn once with
// the counter of the current step. Each (sample, step) draws at most once.
template <class Real>
void sgd_catch_up_noise(const EngineConfig& cfg, HostReplica<Real>& h, int64_t i, uint32_t step,
                        double* xi) {
  const double missing = *h.applied_var - h.noise_var[i];
  if (!(missing > 0.0)) return;
  const Stream noise(cfg.noise_seed, Purpose::Noise, h.replica);
  const int p = cfg.p;
  normals_at(noise, step, uint64_t(i) * p, p, xi);
  const double scale = std::sqrt(missing);
  Real* x = h.X + i * p;
  for (int q = 0; q < p; ++q) x[q] = Real(double(x[q]) + scale * xi[q]);
  h.noise_var[i] = *h.applied_var;
}

// One SGD step (MODEL.md 2a): a batch of B inputs drawn uniformly with replacement,
// every class offset moves by (eta / B) sum_j E[k, c_j] g(x_j, y_j).
template <class Real>
bool sgd_step(const EngineConfig& cfg, HostReplica<Real>& h, int64_t step) {
  const int K = cfg.K, p = cfg.p;
  const int64_t N = cfg.n_samples();
  const double t = step * cfg.dt, eta = cfg.dt;
  std::vector<double> E(K * K), delta(K * p, 0.0), x(p), g(p), z(K), zd(K), xi(p);
  std::vector<double>& offsets = *h.offsets;
  impact_matrix(cfg, t, E.data());
  const SignalSpec spec = SignalSpec::from(cfg);
  const Stream batch(cfg.noise_seed, Purpose::Batch, h.replica);
  for (int64_t slot = 0; slot < cfg.batch_size; ++slot) {
    const Philox4x32 r = batch.draw(uint32_t(slot / 2), uint32_t(step), 0u);
    const int64_t j = int64_t(slot % 2 == 0 ? uniform_index(r.v[0], r.v[1], N)
                                            : uniform_index(r.v[2], r.v[3], N));
    sgd_catch_up_noise(cfg, h, j, uint32_t(step), xi.data());
    const int cj = h.classes[j];
    for (int q = 0; q < p; ++q) x[q] = double(h.X[j * p + q]) + offsets[cj * p + q];
    signal(spec, x.data(), h.labels[j], g.data(), z.data(), zd.data());
    // delta += E[:, c_j] g^T
    dense::view(delta.data(), K, p).noalias() +=
        dense::view(E.data(), K, K).col(cj) * dense::view(g.data(), 1, p);
  }
  const double scale = eta / double(cfg.batch_size);
  dense::view(offsets.data(), K, p) += scale * dense::view(delta.data(), K, p);
  const double s = cfg.sigma(t);
  *h.applied_var += s * s * eta;
  return all_finite(offsets);
}

// The noise variance of SGD steps 0 .. step - 1, summed in step order (as sgd_step adds it).
inline double sgd_variance_until(const EngineConfig& cfg, int64_t step) {
  double v = 0.0;
  for (int64_t m = 0; m < step; ++m) {
    const double s = cfg.sigma(m * cfg.dt);
    v += s * s * cfg.dt;
  }
  return v;
}

// Folds the class offsets and all pending noise into the stored features, so they hold x_i
// exactly (done at record steps and at the end).
template <class Real>
void sgd_materialize(const EngineConfig& cfg, HostReplica<Real>& h, int64_t step) {
  const int p = cfg.p;
  const Blocks blocks(cfg.n_samples());
  const Stream noise(cfg.noise_seed, Purpose::Noise, h.replica);
  const std::vector<double>& offsets = *h.offsets;
  const double applied = *h.applied_var;
#pragma omp parallel for num_threads(h.threads) schedule(static) if (h.threads > 1)
  for (int64_t b = 0; b < blocks.count; ++b) {
    std::vector<double> xi(kTile * p);
    for (int64_t i0 = blocks.begin(b); i0 < blocks.end(b); i0 += kTile) {
      const int64_t n = std::min(kTile, blocks.end(b) - i0);
      // The same numbers sgd_catch_up_noise would draw, a tile at a time.
      fill_normals(noise, uint32_t(step), uint64_t(i0) * p, n * p, xi.data());
      for (int64_t i = i0; i < i0 + n; ++i) {
        const double missing = applied - h.noise_var[i];
        const double scale = missing > 0.0 ? std::sqrt(missing) : 0.0;
        const double* o = offsets.data() + h.classes[i] * p;
        const double* z = xi.data() + (i - i0) * p;
        Real* x = h.X + i * p;
        for (int q = 0; q < p; ++q) x[q] = Real(double(x[q]) + scale * z[q] + o[q]);
        h.noise_var[i] = applied;
      }
    }
  }
  std::fill(h.offsets->begin(), h.offsets->end(), 0.0);
}

}  // namespace lesde
