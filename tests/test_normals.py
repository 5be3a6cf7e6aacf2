"""Exact Gaussian normals: the ziggurat (rng.hpp ziggurat::normal, rng_fill.hpp).

What is protected: the tables are the correctly rounded values of their definitions; every
path that makes normals (the scalar one a GPU thread runs, the CPU fill on each instruction
set, float32 as the float64 numbers rounded) gives the same bits as the independent NumPy
twin in tests/reference.py; and the numbers are standard normal: moments to the 8th order,
tail probabilities, a Kolmogorov-Smirnov distance on 10^8 draws, and the tail beyond r
(every draw there comes from the slow path) out to 6 sigma and beyond. Statistical checks
use fixed seeds; each states the false-positive rate of its threshold for a true N(0, 1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from lesde import _core

import reference

GAUSSIAN = _core.NoiseKind.gaussian


def test_the_core_tables_are_their_definitions():
    """The header's tables equal tools/ziggurat_tables.py's (60-digit mpmath, rounded once),
    and every layer has the same area v under exp(-x^2/2): the ziggurat is exact only then."""
    core, ref = _core.ziggurat_tables(), reference.ziggurat()
    assert core["r"] == ref["r"], "the base edge r differs from its definition"
    assert core["layer_bits"] == ref["layer_bits"]
    for name in ("width", "accept", "height"):
        assert np.array_equal(np.array(core[name]), ref[name]), f"table {name} differs"
    scale = 2.0 ** (32 - core["layer_bits"])  # width = x / 2^(uniform bits + 1)
    x = np.array(core["width"]) * scale
    f = np.array(core["height"])
    layers = len(x)
    v = x[1:] * (f[2:] - f[1:-1])  # layers 1 .. top: x[i] (f(x[i+1]) - f(x[i]))
    base = x[0] * f[1]  # the base: a box of width x[0] and height f(r)
    np.testing.assert_allclose(v, base, rtol=1e-12, err_msg="the layers' areas differ")
    efficiency = math.sqrt(math.pi / 2) / (layers * base)  # the share of draws accepted
    assert 0.998 < efficiency < 1, f"the layers cover {1 / efficiency:.5f} x the density's area"
    np.testing.assert_allclose(f[1:-1], np.exp(-(x[1:] ** 2) / 2), rtol=1e-13)


def test_the_fast_path_stays_under_the_curve():
    """A word accepted at once lies in its layer's rectangle under the curve: its point is
    below the next layer's edge (else the ziggurat would put mass above the density)."""
    t = _core.ziggurat_tables()
    bits = t["layer_bits"]
    x = np.array(t["width"]) * 2.0 ** (32 - bits)
    accept = np.array(t["accept"], dtype=np.int64)
    inner = np.append(x[1:], 0.0)
    last_fast = (2 * (accept - 1) + 1) * np.array(t["width"])
    ok = accept == 0
    ok |= last_fast < inner
    assert ok.all(), f"layers whose fast path leaves the curve: {np.nonzero(~ok)[0]}"


@pytest.mark.parametrize(
    "seed,purpose,replica,step", [(5, "noise", 3, 7), (2**40 + 9, "init", 0, 0)]
)
def test_the_core_makes_the_numpy_twins_numbers(seed, purpose, replica, step):
    """300,000 normals (about 700 through the slow path) bit for bit as the NumPy twin."""
    first, count = 10**6 + 3, 300_000
    core = _core.normals(seed, getattr(_core.Purpose, purpose), replica, step, first, count)
    ref = reference.normals_of(seed, purpose, replica, step, np.arange(first, first + count))
    bad = np.nonzero(core != ref)[0]
    assert bad.size == 0, f"{bad.size} normals differ, first at {first + bad[0]}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("first,count", [(0, 1), (3, 5), (5, 333), (1, 70_001), (2**34 - 7, 300)])
def test_every_path_makes_the_same_numbers(dtype, first, count):
    """The scalar path (a GPU thread's), and the CPU fill on every instruction set this CPU
    has, at any offset and length (partial rounds, a 2^32-block boundary); float32 normals
    are the float64 ones rounded."""
    ref = _core.increments(GAUSSIAN, 11, 2, 4, first, count, "scalar", dtype)
    for path in _core.fill_paths():
        got = _core.increments(GAUSSIAN, 11, 2, 4, first, count, path, dtype)
        bad = np.nonzero(got != ref)[0]
        assert bad.size == 0, f"{path} differs from the scalar path at {first + bad[0]}"
    if dtype == "float32":
        wide = _core.increments(GAUSSIAN, 11, 2, 4, first, count, "scalar", "float64")
        assert np.array_equal(ref, wide.astype(np.float32)), "float32 is not float64 rounded"


def test_every_path_agrees_on_any_cut_of_the_stream():
    """The CPU engine fills tiles of p normals per sample from any offset: 400 random cuts
    (offsets not a multiple of 4, lengths whose rounds end in a partial SIMD register) give
    the scalar path's numbers. A slow word in a round's last, partial register once took the
    fast path's value (found by the emulator test over 256 blocks)."""
    rng = np.random.default_rng(3)
    for _ in range(400):
        first, count = int(rng.integers(0, 2**22)), int(rng.integers(1, 1200))
        ref = _core.increments(GAUSSIAN, 3, 0, 0, first, count, "scalar")
        for path in _core.fill_paths():
            got = _core.increments(GAUSSIAN, 3, 0, 0, first, count, path)
            bad = np.nonzero(got != ref)[0]
            assert bad.size == 0, f"{path}, cut ({first}, {count}): differs at {first + bad[0]}"


@pytest.fixture(scope="module")
def hundred_million():
    """Moments 1..8, tail counts and a fine histogram of 10^8 normals (10 steps of 10^7)."""
    edges = np.linspace(-7.0, 7.0, 2**20 + 1)
    counts = np.zeros(edges.size + 1, dtype=np.int64)
    sums = np.zeros(9)
    tails = {t: 0 for t in (1, 2, 3, 4, 5)}
    n = 0
    for step in range(10):
        z = _core.increments(GAUSSIAN, 2024, 0, step, 0, 10**7)
        n += z.size
        power = np.ones_like(z)
        for k in range(1, 9):
            power *= z
            sums[k] += power.sum()
        a = np.abs(z)
        for t in tails:
            tails[t] += int(np.count_nonzero(a > t))
        # Bin k + 1 holds edges[k] < z <= edges[k + 1] (to rounding): searchsorted, faster.
        bins = np.clip(np.ceil((z - edges[0]) / (edges[1] - edges[0])), 0, edges.size)
        counts += np.bincount(bins.astype(np.int64), minlength=counts.size)
    return n, sums / n, tails, edges, counts


def test_moments_to_the_eighth_order(hundred_million):
    """E z^k for k = 1..8 (0, 1, 0, 3, 0, 15, 0, 105), each within 6 standard errors of its
    sample mean (false-positive rate 2e-9 each)."""
    n, moments, _, _, _ = hundred_million
    for k in range(1, 9):
        exact = 0 if k % 2 else math.prod(range(1, k, 2))
        sd = math.sqrt(math.prod(range(1, 2 * k, 2)) - exact**2)  # sd of z^k
        err = (moments[k] - exact) / (sd / math.sqrt(n))
        assert abs(err) < 6, f"E z^{k} = {moments[k]:.6g}, not {exact}: {err:.1f} standard errors"


def test_tail_probabilities(hundred_million):
    """P(|z| > t) for t = 1..5 (5 sigma: 57 draws expected), within 6 binomial standard
    errors (false-positive rate 2e-9 each)."""
    n, _, tails, _, _ = hundred_million
    for t, count in tails.items():
        p = special.erfc(t / math.sqrt(2))
        err = (count - n * p) / math.sqrt(n * p * (1 - p))
        assert abs(err) < 6, f"P(|z| > {t}): {count} of {n}, expected {n * p:.1f} ({err:.1f} sd)"


def test_kolmogorov_smirnov_on_a_hundred_million(hundred_million):
    """The empirical CDF at 2^20 + 1 points of [-7, 7] is within the Kolmogorov-Smirnov bound
    of level 1e-6 of Phi (the sup over these points is at most the KS distance D; the bins,
    1.3e-5 wide, hold at most 6e-6 of the mass, far below the bound)."""
    n, _, _, edges, counts = hundred_million
    empirical = np.cumsum(counts)[:-1] / n  # P(z <= edge)
    distance = np.abs(empirical - special.ndtr(edges)).max()
    bound = stats.kstwobign.isf(1e-6) / math.sqrt(n)
    assert distance < bound, f"KS distance {distance:.3g} over the 1e-6 bound {bound:.3g}"


def _tail_words(rng, count, layer_bits):
    """Words of the base layer whose position is beyond r: each takes the tail path."""
    t = _core.ziggurat_tables()
    accept0 = int(t["accept"][0])
    u = rng.integers(accept0, 2 ** (31 - layer_bits), size=count, dtype=np.uint64)
    sign = rng.integers(0, 2, size=count, dtype=np.uint64)
    return ((u << np.uint64(layer_bits + 1)) | (sign << np.uint64(layer_bits))).astype(np.uint32)


def test_the_tail_to_six_sigma_and_beyond():
    """Beyond r (4.22) every normal comes from Marsaglia's tail method in the slow path: 10^6
    of them follow N(0, 1) conditioned on |z| > r (KS at level 1e-6), and their counts beyond
    5, 6 and 7 sigma (expected 23,000, 79 and 0.1) agree with the conditional law within 6
    Poisson standard errors."""
    t = _core.ziggurat_tables()
    rng = np.random.default_rng(7)
    count = 10**6
    words = _tail_words(rng, count, t["layer_bits"])
    index = rng.choice(2**36, size=count, replace=False).astype(np.uint64)
    z = _core.ziggurat_normals(3, _core.Purpose.noise, 0, 1, index, words)
    r = t["r"]
    a = np.abs(z)
    assert a.min() >= r, f"a tail draw {a.min()} lies inside r = {r}"
    assert abs(np.mean(z > 0) - 0.5) < 6 * 0.5 / math.sqrt(count), "the tail's sign is biased"
    q_r = special.erfc(r / math.sqrt(2))
    conditional = stats.kstest(a, lambda x: 1 - special.erfc(x / math.sqrt(2)) / q_r)
    assert conditional.pvalue > 1e-6, f"tail law off: KS p = {conditional.pvalue:.2g}"
    for sigma in (5, 6, 7):
        expected = count * special.erfc(sigma / math.sqrt(2)) / q_r
        seen = int(np.count_nonzero(a > sigma))
        assert abs(seen - expected) < 6 * math.sqrt(expected) + 1, (
            f"{seen} tail draws beyond {sigma} sigma, expected {expected:.2f}"
        )
    twin = [
        reference._ziggurat_slow(3, "noise", 0, 1, int(n), int(w))
        for n, w in zip(index[:200], words[:200], strict=True)
    ]
    np.testing.assert_allclose(z[:200], twin, rtol=1e-15, err_msg="the tail differs from the twin")
