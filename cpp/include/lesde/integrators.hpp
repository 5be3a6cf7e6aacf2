// One step of each dynamics for one replica (MODEL.md section 2).
//
// SDE (2b): the N coupled equations interact only through the K x p class sums
// S_k = sum_{c_j = k} g(x_j, y_j), so a step reads as two phases: the drift
// b = E(t) S / N from the sums of the previous sweep (K x K x p work), then one fused
// sweep that moves every sample and accumulates the next step's sums.
//
// SGD (2a): every sample of a class receives the same update, so a step touches only
// the batch: class offsets carry the shared drift, and each sample's Gaussian noise is
// added lazily (one draw for all the variance accumulated since the sample was last
// read), so a step costs O(K p B) whatever N is.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "model.hpp"
#include "reduce.hpp"
#include "rng.hpp"
#include "kernels.hpp"
#include "sample.hpp"
#include "signals.hpp"

namespace lesde {

// Everything one replica's steps read and write.
template <class Real>
struct ReplicaContext {
  const EngineConfig* cfg;
  Real* X;                  // N x p
  int32_t* labels;          // N  (written once, at initialisation)
  const int32_t* classes;   // N
  double* noise_var;        // N (SGD only)
  uint32_t replica;
  int threads;              // threads for the sample loops of this replica
  std::vector<double> sums;     // K x p: SDE class signal sums; SGD class offsets
  double applied_var = 0.0;     // SGD: noise variance every sample has accumulated so far
};

// Scratch space of one thread for one tile of samples.
template <class Real>
struct TileScratch {
  std::vector<Real> xi, z;
  std::vector<double> g;
  TileScratch(int K, int p) : xi(kTile * p), z(kTile * std::max(K, p)), g(p + K) {}
};

// Moves every sample with update(c, x, xi) (xi: its p standard normals of this step) and
// returns the class sums of g(x_new, y) in ctx.sums. The sweep is fused and tiled: each
// tile of samples is read and written once, its noise drawn just before it is used.
template <class Real, class Update>
void update_and_reduce(ReplicaContext<Real>& ctx, uint32_t step, Update&& update) {
  const EngineConfig& cfg = *ctx.cfg;
  const int K = cfg.K, p = cfg.p;
  const Shard shard = cfg.shard();
  const Blocks& blocks = shard.blocks;
  const int64_t off = shard.offset();  // arrays are local: sample i sits at i - off
  const SignalSpec spec = SignalSpec::from(cfg);
  const Stream noise(cfg.noise_seed, Purpose::Noise, ctx.replica);
  std::vector<double> partial((shard.last - shard.first) * K * p, 0.0);
#pragma omp parallel for num_threads(ctx.threads) schedule(static) if (ctx.threads > 1)
  for (int64_t b = shard.first; b < shard.last; ++b) {
    TileScratch<Real> tile(K, p);
    for (int64_t i0 = blocks.begin(b); i0 < blocks.end(b); i0 += kTile) {
      const int64_t n = std::min(kTile, blocks.end(b) - i0), li = i0 - off;
      Real* X = ctx.X + li * p;
      fill_normals(noise, step, uint64_t(i0) * p, n * p, tile.xi.data());
      for (int64_t i = 0; i < n; ++i) update(ctx.classes[li + i], X + i * p, tile.xi.data() + i * p);
      add_signal_tile(spec, X, ctx.labels + li, ctx.classes + li, n, tile.z.data(),
                      tile.g.data(), partial.data() + (b - shard.first) * K * p);
    }
  }
  combine_blocks(shard, cfg.exchange, partial, int64_t(K) * p, ctx.sums.data());
}

// Class sums of g at the current state (no move): starts the SDE, and resumes it.
template <class Real>
void compute_sums(ReplicaContext<Real>& ctx) {
  const EngineConfig& cfg = *ctx.cfg;
  const int K = cfg.K, p = cfg.p;
  const Shard shard = cfg.shard();
  const Blocks& blocks = shard.blocks;
  const int64_t off = shard.offset();
  const SignalSpec spec = SignalSpec::from(cfg);
  std::vector<double> partial((shard.last - shard.first) * K * p, 0.0);
#pragma omp parallel for num_threads(ctx.threads) schedule(static) if (ctx.threads > 1)
  for (int64_t b = shard.first; b < shard.last; ++b) {
    TileScratch<Real> tile(K, p);
    for (int64_t i0 = blocks.begin(b); i0 < blocks.end(b); i0 += kTile) {
      const int64_t n = std::min(kTile, blocks.end(b) - i0), li = i0 - off;
      add_signal_tile(spec, ctx.X + li * p, ctx.labels + li, ctx.classes + li, n,
                      tile.z.data(), tile.g.data(), partial.data() + (b - shard.first) * K * p);
    }
  }
  combine_blocks(shard, cfg.exchange, partial, int64_t(K) * p, ctx.sums.data());
}

// b = E(t) S / N, i.e. b_k = sum_k' pi_k' E[k, k'] Gbar_k'.
inline std::vector<double> drift(const EngineConfig& cfg, double t, const std::vector<double>& S) {
  const int K = cfg.K, p = cfg.p;
  std::vector<double> E(K * K), b(K * p, 0.0);
  impact_matrix(cfg, t, E.data());
  const double inv_n = 1.0 / double(cfg.n_samples());
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < K; ++l) {
      const double e = E[k * K + l] * inv_n;
      for (int q = 0; q < p; ++q) b[k * p + q] += e * S[l * p + q];
    }
  return b;
}

inline bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// Euler-Maruyama: x <- x + b(t) dt + sigma(t) sqrt(dt) xi.
template <class Real>
bool sde_euler_step(ReplicaContext<Real>& ctx, int64_t step) {
  const EngineConfig& cfg = *ctx.cfg;
  const int p = cfg.p;
  const double t = step * cfg.dt, dt = cfg.dt;
  const std::vector<double> b = drift(cfg, t, ctx.sums);
  const double noise_scale = cfg.sigma(t) * std::sqrt(dt);
  update_and_reduce(ctx, uint32_t(step), [&](int c, Real* x, const Real* xi) {
    drift_move(p, b.data() + c * p, dt, noise_scale, xi, x);
  });
  return all_finite(ctx.sums);
}

// Stochastic Heun (predictor-corrector) with the same Brownian increment in both
// stages. The drift is constant within a class, so the corrector is a per-class shift
// of the predictor: x = x_pred + (b(x_pred, t + dt) - b(x, t)) dt / 2. Two sweeps, no
// extra storage.
template <class Real>
bool sde_heun_step(ReplicaContext<Real>& ctx, int64_t step) {
  const EngineConfig& cfg = *ctx.cfg;
  const int p = cfg.p;
  const double t = step * cfg.dt, dt = cfg.dt;
  const std::vector<double> b0 = drift(cfg, t, ctx.sums);
  const double noise_scale = 0.5 * (cfg.sigma(t) + cfg.sigma(t + dt)) * std::sqrt(dt);
  update_and_reduce(ctx, uint32_t(step), [&](int c, Real* x, const Real* xi) {
    drift_move(p, b0.data() + c * p, dt, noise_scale, xi, x);
  });
  if (!all_finite(ctx.sums)) return false;
  std::vector<double> shift = drift(cfg, t + dt, ctx.sums);
  for (size_t j = 0; j < shift.size(); ++j) shift[j] = 0.5 * dt * (shift[j] - b0[j]);
  update_and_reduce(ctx, uint32_t(step), [&](int c, Real* x, const Real*) {
    shift_move(p, shift.data() + c * p, x);
  });
  return all_finite(ctx.sums);
}

// SGD: adds to sample i the noise variance accumulated since it was last read, drawn
// once with the counter of the current step. Each (sample, step) draws at most once.
template <class Real>
void sgd_catch_up_noise(ReplicaContext<Real>& ctx, int64_t i, uint32_t step, double* xi) {
  const double missing = ctx.applied_var - ctx.noise_var[i];
  if (!(missing > 0.0)) return;
  const Stream noise(ctx.cfg->noise_seed, Purpose::Noise, ctx.replica);
  const int p = ctx.cfg->p;
  normals_at(noise, step, uint64_t(i) * p, p, xi);
  const double scale = std::sqrt(missing);
  Real* x = ctx.X + i * p;
  for (int q = 0; q < p; ++q) x[q] = Real(double(x[q]) + scale * xi[q]);
  ctx.noise_var[i] = ctx.applied_var;
}

// One SGD step (MODEL.md 2a): a batch of B inputs drawn uniformly with replacement,
// every class offset moves by (eta / B) sum_j E[k, c_j] g(x_j, y_j).
template <class Real>
bool sgd_step(ReplicaContext<Real>& ctx, int64_t step) {
  const EngineConfig& cfg = *ctx.cfg;
  const int K = cfg.K, p = cfg.p;
  const int64_t N = cfg.n_samples();
  const double t = step * cfg.dt, eta = cfg.dt;
  std::vector<double> E(K * K), delta(K * p, 0.0), x(p), g(p), scratch(K), xi(p);
  impact_matrix(cfg, t, E.data());
  const Stream batch(cfg.noise_seed, Purpose::Batch, ctx.replica);
  for (int64_t slot = 0; slot < cfg.batch_size; ++slot) {
    const Philox4x32 r = batch.draw(uint32_t(slot / 2), uint32_t(step), 0u);
    const int64_t j = int64_t(slot % 2 == 0 ? uniform_index(r.v[0], r.v[1], N)
                                            : uniform_index(r.v[2], r.v[3], N));
    sgd_catch_up_noise(ctx, j, uint32_t(step), xi.data());
    const int cj = ctx.classes[j];
    for (int q = 0; q < p; ++q) x[q] = double(ctx.X[j * p + q]) + ctx.sums[cj * p + q];
    signal(SignalSpec::from(cfg), x.data(), ctx.labels[j], g.data(), scratch.data());
    for (int k = 0; k < K; ++k) {
      const double e = E[k * K + cj];
      for (int q = 0; q < p; ++q) delta[k * p + q] += e * g[q];
    }
  }
  const double scale = eta / double(cfg.batch_size);
  for (int j = 0; j < K * p; ++j) ctx.sums[j] += scale * delta[j];
  const double s = cfg.sigma(t);
  ctx.applied_var += s * s * eta;
  return all_finite(ctx.sums);
}

// SGD: folds the class offsets and all pending noise into the stored features, so they
// hold x_i exactly (done at record steps and at the end).
template <class Real>
void sgd_materialize(ReplicaContext<Real>& ctx, int64_t step) {
  const EngineConfig& cfg = *ctx.cfg;
  const int p = cfg.p;
  const Blocks blocks(cfg.n_samples());
  const Stream noise(cfg.noise_seed, Purpose::Noise, ctx.replica);
#pragma omp parallel for num_threads(ctx.threads) schedule(static) if (ctx.threads > 1)
  for (int64_t b = 0; b < blocks.count; ++b) {
    std::vector<double> xi(kTile * p);
    for (int64_t i0 = blocks.begin(b); i0 < blocks.end(b); i0 += kTile) {
      const int64_t n = std::min(kTile, blocks.end(b) - i0);
      // The same numbers sgd_catch_up_noise would draw, a tile at a time.
      fill_normals(noise, uint32_t(step), uint64_t(i0) * p, n * p, xi.data());
      for (int64_t i = i0; i < i0 + n; ++i) {
        const double missing = ctx.applied_var - ctx.noise_var[i];
        const double scale = missing > 0.0 ? std::sqrt(missing) : 0.0;
        const double* o = ctx.sums.data() + ctx.classes[i] * p;
        const double* z = xi.data() + (i - i0) * p;
        Real* x = ctx.X + i * p;
        for (int q = 0; q < p; ++q) x[q] = Real(double(x[q]) + scale * z[q] + o[q]);
        ctx.noise_var[i] = ctx.applied_var;
      }
    }
  }
  std::fill(ctx.sums.begin(), ctx.sums.end(), 0.0);
}

}  // namespace lesde
