// The host's small dense algebra, with Eigen: the per-step drift b = E S / N and Heun's shift
// (K x K times K x p, integrators.hpp), SGD's class offsets, a record's means and Sigma_W
// (metrics.hpp finish_first / finish_second). Host only: the per-sample loops (kernels.hpp,
// metrics.hpp's tiles, the CUDA kernels) are not Eigen, see add_product below and
// ARCHITECTURE.md.
//
// Matrices are the row-major K x p, K x K and p x p arrays the engine already holds (std::vector
// or the caller's record arrays), viewed in place.
#pragma once

#include <Eigen/Core>

namespace lesde::dense {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using View = Eigen::Map<Matrix>;
using ConstView = Eigen::Map<const Matrix>;

inline View view(double* data, Eigen::Index rows, Eigen::Index cols) {
  return View(data, rows, cols);
}
inline ConstView view(const double* data, Eigen::Index rows, Eigen::Index cols) {
  return ConstView(data, rows, cols);
}

// out += (scale A) B, as an ordered sum of outer products: term l = 0, 1, ... of every entry,
// out(i, j) += (scale A(i, l)) B(l, j), is added in increasing l, each a product and a sum
// (no fused multiply-add). Not out += scale * A * B: Eigen's product kernels add the terms in
// an order of their own and use FMA where the compiler targets it, so the drift (and every
// trajectory after it) would change with the build and the machine; a seed must give the same
// numbers everywhere (the CPU, the GPU, every x86-64 CPU; tests/test_determinism.py).
template <class Out, class A, class B>
void add_product(Out&& out, double scale, const A& a, const B& b) {
  for (Eigen::Index l = 0; l < a.cols(); ++l)
    for (Eigen::Index i = 0; i < a.rows(); ++i) out.row(i) += (scale * a(i, l)) * b.row(l);
}

}  // namespace lesde::dense
