"""Independent NumPy re-implementations used as test oracles.

Philox4x32-10 and the core's counter layout are rebuilt here from their published
definitions (Salmon et al. 2011; cpp/include/lesde/rng.hpp documents the layout), so a
tiny run can be reproduced outside the C++ code. NumPy's own ``numpy.random.Philox`` is
the 4x64 variant and cannot serve directly.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

_TOOLS = Path(__file__).resolve().parents[1] / "tools"

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = np.uint64(0xFFFFFFFF)
PURPOSE = {"init": 1, "noise": 2, "labels": 3, "batch": 4}


def philox4x32_10(counter, key):
    """Vectorised Philox4x32-10: counter (..., 4) and key (2,) of uint32 -> (..., 4)."""
    c = [np.asarray(counter, dtype=np.uint64)[..., i] for i in range(4)]
    k0, k1 = int(key[0]), int(key[1])
    for rnd in range(10):
        if rnd:
            k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [
            (p1 >> np.uint64(32)) ^ c[1] ^ np.uint64(k0),
            p1 & MASK,
            (p0 >> np.uint64(32)) ^ c[3] ^ np.uint64(k1),
            p0 & MASK,
        ]
    return np.stack(c, axis=-1).astype(np.uint32)


def stream_words(seed, purpose, replica, a, b, c):
    """The four words the core draws for counter (a, b, c, purpose << 24 | replica)."""
    a, b, c = np.broadcast_arrays(np.asarray(a), np.asarray(b), np.asarray(c))
    tag = np.full(a.shape, (PURPOSE[purpose] << 24) | replica, dtype=np.uint64)
    ctr = np.stack([a.astype(np.uint64), b.astype(np.uint64), c.astype(np.uint64), tag], -1)
    return philox4x32_10(ctr, (seed & 0xFFFFFFFF, seed >> 32))


def uniform_open(words):
    return (words.astype(np.float64) + 0.5) * 2.0**-32


@functools.cache
def ziggurat():
    """The ziggurat's tables as NumPy arrays, computed from their definitions (mpmath, 60
    digits) by tools/ziggurat_tables.py, independently of the core's copy."""
    spec = importlib.util.spec_from_file_location("ziggurat_tables", _TOOLS / "ziggurat_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    t = module.tables()
    return {
        "r": t["r"],
        "layer_bits": module.LAYER_BITS,
        "width": np.array(t["width"]),
        "accept": np.array(t["accept"], dtype=np.uint64),
        "height": np.array(t["f"]),
    }


def uniform53(hi, lo):
    """(k + 1/2) / 2^53 for the top 53 bits k of the 64-bit word (hi, lo)."""
    k = ((int(hi) << 32) | int(lo)) >> 11
    return (float(k) + 0.5) * 2.0**-53


def _ziggurat_slow(seed, purpose, replica, step, n, word):
    """The normal of a word the fast path leaves (rng.hpp ziggurat::slow_path), one at a
    time in plain Python floats: the wedge test or the tail, more random numbers drawn from
    the retry stream (n low, n high | k << 8, step, tag | 2^31)."""
    t = ziggurat()
    bits, layers = t["layer_bits"], (1 << t["layer_bits"]) - 1
    tag = ((PURPOSE[purpose] << 24) | replica) | 0x80000000
    key = (seed & 0xFFFFFFFF, seed >> 32)

    def retry(k):
        ctr = np.array([[n & 0xFFFFFFFF, (n >> 32) | (k << 8), step, tag]], dtype=np.uint64)
        return [int(v) for v in philox4x32_10(ctr, key)[0]]

    def signed(x):
        return -x if word & (1 << bits) else x

    k = 0
    while True:
        layer, u = word & layers, word >> (bits + 1)
        x = float(2 * u + 1) * float(t["width"][layer])
        if u < int(t["accept"][layer]):
            return signed(x)
        if layer == 0:  # the tail beyond r
            while True:
                w = retry(k)
                k += 1
                a = -float(np.log(uniform53(w[0], w[1]))) / t["r"]
                e = -float(np.log(uniform53(w[2], w[3])))
                if e + e > a * a:
                    return signed(t["r"] + a)
        w = retry(k)
        k += 1
        lo, hi = float(t["height"][layer]), float(t["height"][layer + 1])
        y = lo + uniform53(w[0], w[1]) * (hi - lo)
        if y < float(np.exp(-0.5 * x * x)):
            return signed(x)
        word = w[2]


def normals_of(seed, purpose, replica, step, n):
    """Standard normals number n (an integer array) of a stream at one step, as the core
    draws them: normal n is made from word n % 4 of block n // 4 by the ziggurat."""
    n = np.asarray(n, dtype=np.uint64)
    block = n >> np.uint64(2)
    words = stream_words(seed, purpose, replica, block & MASK, block >> np.uint64(32), step)
    w = np.take_along_axis(words, (n & np.uint64(3)).astype(np.int64)[..., None], -1)[..., 0]
    w = w.astype(np.uint64)
    t = ziggurat()
    bits = np.uint64(t["layer_bits"])
    layer = (w & np.uint64((1 << t["layer_bits"]) - 1)).astype(np.int64)
    u = w >> (bits + np.uint64(1))
    x = (np.uint64(2) * u + np.uint64(1)).astype(np.float64) * t["width"][layer]
    z = np.where((w >> bits) & np.uint64(1), -x, x)
    slow = u >= t["accept"][layer]
    for index in zip(*np.nonzero(slow), strict=True):
        z[index] = _ziggurat_slow(seed, purpose, replica, step, int(n[index]), int(w[index]))
    return z


def normals(seed, purpose, replica, step, samples, p):
    """(len(samples), p) standard normals, exactly as the core draws them.

    Sample i owns normals number i*p .. i*p + p - 1 of the stream at ``step`` (normals_of).
    """
    n = np.asarray(samples)[:, None] * p + np.arange(p)[None, :]
    return normals_of(seed, purpose, replica, step, n.astype(np.uint64))


def uniform_index(hi, lo, n):
    r = (hi.astype(np.uint64) << np.uint64(32)) | lo.astype(np.uint64)
    # (r * n) >> 64 without 128-bit integers: exact via Python ints.
    return np.array([(int(v) * int(n)) >> 64 for v in np.atleast_1d(r)], dtype=np.int64)


def training_labels(seed, replica, classes, K, p_err):
    classes = np.asarray(classes)
    if p_err == 0:
        return classes.copy()
    w = stream_words(seed, "labels", replica, 0, np.arange(len(classes)), 0)
    flip = uniform_open(w[:, 0]) < p_err
    other = uniform_index(w[:, 1], w[:, 2], K - 1)
    moved = np.where(other < classes, other, other + 1)
    return np.where(flip, moved, classes)


def signal(kind, X, y, K):
    if kind == "linear":
        return X.copy()
    if kind == "projected":
        coef = (X[np.arange(len(y)), y] - X.mean(axis=1)) * K / (K - 1)
        v = np.eye(K)[y] - 1.0 / K
        return coef[:, None] * v
    z = X - X.max(axis=1, keepdims=True)
    s = np.exp(z)
    s /= s.sum(axis=1, keepdims=True)
    return np.eye(K)[y] - s


def sde_euler(cfg, replica=0):
    """A plain NumPy Euler-Maruyama run of docs/model.md 2(b) with the core's random numbers.

    Constant alpha/beta/sigma, p = K, no head. Returns (features, labels).
    """
    K, p, sizes = cfg.n_classes, cfg.p, cfg.class_sizes_resolved
    N = sum(sizes)
    classes = np.repeat(np.arange(K), sizes)
    y = training_labels(cfg.seed, replica, classes, K, cfg.label_noise)
    mu = np.zeros((K, p)) if cfg.init_means is None else np.asarray(cfg.init_means)
    X = mu[classes] + cfg.init_scale * normals(cfg.seed, "init", replica, 0, np.arange(N), p)
    E = cfg.impact_matrix(0.0)
    noise_seed = cfg.effective_noise_seed
    for m in range(cfg.n_steps):
        g = signal(cfg.signal, X, y, K)
        S = np.zeros((K, p))
        np.add.at(S, classes, g)
        b = E @ S / N
        xi = normals(noise_seed, "noise", replica, m, np.arange(N), p)
        X = X + b[classes] * cfg.dt + cfg.sigma * np.sqrt(cfg.dt) * xi
    return X, y


# ------------------------------------------------------------------ the reduction order


def reduction_blocks(n_samples):
    """(count, size) of the fixed reduction blocks: about 2048 samples each (reduce.hpp)."""
    count = max(1, -(-n_samples // 2048))
    size = max(1, -(-n_samples // count))
    return max(1, -(-n_samples // size)), size


def tree_sum(partials):
    """The sum over blocks of per-block partial sums (count x width) in the engine's fixed
    order: up to 256 blocks left to right; beyond, pairwise over aligned halves (the node of
    blocks [j 2^l, (j + 1) 2^l), cut at the count, adds its two halves)."""
    leaves = 0.0 + np.asarray(partials, dtype=np.float64)
    count = len(leaves)
    if count <= 256:
        out = leaves[0].copy()
        for b in range(1, count):
            out = out + leaves[b]
        return out

    def node(lo, size):
        if size == 1:
            return leaves[lo]
        half = size // 2
        if lo + half >= count:  # no right half: the node is its left half
            return node(lo, half)
        return node(lo, half) + node(lo + half, half)

    size = 1
    while size < count:
        size *= 2
    return node(0, size)
