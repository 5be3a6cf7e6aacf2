"""Tests of lesde.data, grouped by what they protect.

- geometric_shapes: the array contract, determinism, that the three classes are balanced in
  count *and* brightness yet distinguishable, that each option does what it says (rotation,
  blur, noise, size), and argument validation
- Dataset: validation and conversion, subset, stratified split, repr
- corrupt_labels: the corruption model of docs/model.md section 3 (never the true label, uniform
  over the other K-1 classes, rate p_err), no mutation, validation
- cifar10: a tiny fake copy in the real pickle format (folder, parent folder, archive),
  pixel layout, class selection and remapping, n_per_class, split, errors, and that a
  malicious pickle is refused without running

Every randomised check uses fixed seeds, so it is deterministic: it cannot fail by chance.
Where a statistical bound is used, its false-positive rate for a *random* seed is stated to
show the margin is not tuned to the seed.
"""

from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np
import pytest
from scipy import stats

from lesde.data import Dataset, cifar10, corrupt_labels, geometric_shapes

SHAPES = ("ellipse", "rectangle", "triangle")
CIFAR_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


RADIAL_BINS = np.linspace(0.0, 3.2, 17)


@pytest.fixture(scope="module")
def shapes():
    """Default shapes data set, 100 per class (shared by the read-only checks)."""
    return geometric_shapes(100, seed=0)


# --------------------------------------------------------------------------------------
# geometric_shapes: feature helpers (NumPy only)
# --------------------------------------------------------------------------------------


def moments(images):
    """Per image: mass, centroid (x, y), central second moments (xx, yy, xy), third (yyy)."""
    img = images[:, 0].astype(np.float64)
    H, W = img.shape[1:]
    y, x = np.mgrid[0:H, 0:W] + 0.5
    m = img.sum(axis=(1, 2))
    mx = (img * x).sum(axis=(1, 2)) / m
    my = (img * y).sum(axis=(1, 2)) / m
    dx = x - mx[:, None, None]
    dy = y - my[:, None, None]
    c = {
        "xx": (img * dx * dx).sum(axis=(1, 2)) / m,
        "yy": (img * dy * dy).sum(axis=(1, 2)) / m,
        "xy": (img * dx * dy).sum(axis=(1, 2)) / m,
        "yyy": (img * dy**3).sum(axis=(1, 2)) / m,
    }
    return img, m, dx, dy, c


def affine_radial_profile(images, bins=RADIAL_BINS):
    """Brightness histogram of the Mahalanobis radius about the centroid, per image.

    Invariant to rotation, shift, scale and stretch (whitening by the second moments maps
    every ellipse to a disc, every rectangle to a square, every triangle of the family to
    one triangle), so it sees the shape class only.
    """
    img, m, dx, dy, c = moments(images)
    det = c["xx"] * c["yy"] - c["xy"] ** 2
    r2 = (
        c["yy"][:, None, None] * dx * dx
        - 2.0 * c["xy"][:, None, None] * dx * dy
        + c["xx"][:, None, None] * dy * dy
    ) / det[:, None, None]
    which = np.clip(np.digitize(np.sqrt(r2), bins) - 1, 0, bins.size - 2)
    return np.stack([(img * (which == b)).sum(axis=(1, 2)) / m for b in range(bins.size - 1)], 1)


def nearest_centroid_accuracy(F_train, y_train, F_test, y_test, K=3):
    """Accuracy of the nearest-class-mean rule on standardised features."""
    mu, sd = F_train.mean(axis=0), F_train.std(axis=0) + 1e-12
    A, B = (F_train - mu) / sd, (F_test - mu) / sd
    centres = np.stack([A[y_train == k].mean(axis=0) for k in range(K)])
    pred = np.argmin(((B[:, None, :] - centres[None]) ** 2).sum(axis=-1), axis=1)
    return float(np.mean(pred == y_test))


# --------------------------------------------------------------------------------------
# geometric_shapes: contract
# --------------------------------------------------------------------------------------


def test_shapes_array_contract(shapes):
    ds = shapes
    assert isinstance(ds, Dataset), f"expected a Dataset, got {type(ds)}"
    assert ds.images.shape == (300, 1, 32, 32), f"images shape {ds.images.shape}"
    assert ds.images.dtype == np.float32, f"images dtype {ds.images.dtype}, want float32"
    assert ds.images.flags.c_contiguous, "images must be C-contiguous"
    assert ds.labels.shape == (300,) and ds.labels.dtype == np.int64, (
        f"labels shape/dtype {ds.labels.shape}/{ds.labels.dtype}, want (300,)/int64"
    )
    assert ds.class_names == SHAPES, f"class_names {ds.class_names}, want {SHAPES}"
    assert np.isfinite(ds.images).all(), "images contain non-finite values"
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0, (
        f"values outside [0, 1]: min {ds.images.min()}, max {ds.images.max()}"
    )
    assert (ds.channels, ds.image_size, ds.n_classes) == (1, 32, 3), "wrong C / size / K"


def test_shapes_balanced_and_shuffled(shapes):
    counts = shapes.class_counts().tolist()
    assert counts == [100, 100, 100], f"classes not balanced: {counts}"
    first = shapes.labels[:30]
    assert np.unique(first).size == 3, f"samples come in class blocks, first 30: {first}"
    n_runs = 1 + np.count_nonzero(np.diff(shapes.labels))
    assert n_runs > 100, f"order looks unshuffled: only {n_runs} runs of equal labels"


@pytest.mark.parametrize("size", [8, 17, 48])
def test_shapes_other_sizes(size):
    ds = geometric_shapes(2, size=size, seed=3)
    assert ds.images.shape == (6, 1, size, size), f"size={size}: shape {ds.images.shape}"
    assert ds.images.max() > 0.5, f"size={size}: blank images"


def test_shapes_deterministic():
    kw = dict(angles=(10.0, 200.0), size_jitter=0.1, shift=1.5, blur=0.5, noise=0.05)
    a = geometric_shapes(40, size=24, seed=7, **kw)
    b = geometric_shapes(40, size=24, seed=7, **kw)
    c = geometric_shapes(40, size=24, seed=8, **kw)
    assert np.array_equal(a.images, b.images), "same seed and options gave different images"
    assert np.array_equal(a.labels, b.labels), "same seed and options gave different labels"
    assert a.images.tobytes() == b.images.tobytes(), "same seed not bit-identical"
    assert not np.array_equal(a.images, c.images), "different seeds gave identical images"
    assert not np.array_equal(a.labels, c.labels), "different seeds gave the same order"


def test_shapes_noise_drawn_after_shape_parameters():
    """Noise is the last draw: adding it leaves the shapes (and their order) unchanged."""
    clean = geometric_shapes(30, seed=5)
    noisy = geometric_shapes(30, seed=5, noise=0.1)
    assert np.array_equal(clean.labels, noisy.labels), "noise changed the sample order"
    diff = noisy.images - clean.images
    assert 0.05 < float(diff.std()) < 0.1, f"noise std {diff.std():.3f}, want ~0.1 (clipped)"
    corr = np.corrcoef(clean.images.ravel(), noisy.images.ravel())[0, 1]
    assert corr > 0.9, f"noisy images not the clean ones plus noise (corr {corr:.3f})"
    assert noisy.images.min() >= 0.0 and noisy.images.max() <= 1.0, "noise not clipped"


# --------------------------------------------------------------------------------------
# geometric_shapes: image content
# --------------------------------------------------------------------------------------


def test_shapes_not_blank_not_saturated_inside(shapes):
    x = shapes.images[:, 0]
    peak = x.max(axis=(1, 2))
    assert peak.min() > 0.9, f"some image has no solid shape: min peak {peak.min():.3f}"
    lit = (x > 0.5).mean(axis=(1, 2))
    assert lit.min() > 0.02, f"some shape is tiny: {lit.min():.3f} of the pixels lit"
    assert lit.max() < 0.3, f"some image is mostly white: {lit.max():.3f} of pixels lit"
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
    assert border.max() < 0.01, f"a shape touches the border (max border {border.max():.3g})"


def test_shapes_brightness_comparable_across_classes(shapes):
    total = shapes.images.sum(axis=(1, 2, 3))
    means = np.array([total[shapes.labels == k].mean() for k in range(3)])
    assert means.max() / means.min() < 1.25, f"class mean brightness differs: {means}"
    # stronger: by design the areas agree on average to ~ their standard error (~3 %)
    assert means.max() / means.min() < 1.1, f"class mean areas differ by >10 %: {means}"


def test_shapes_distinguishable_but_not_by_brightness():
    """Nearest-centroid on a shape feature beats chance; on total brightness it does not.

    Held-out data: train seed 1, test seed 2, 100 per class. Deterministic (fixed seeds),
    so no false-positive rate; the margins are wide (observed ~0.86 and ~0.33).
    """
    train, test = geometric_shapes(100, seed=1), geometric_shapes(100, seed=2)
    acc = nearest_centroid_accuracy(
        affine_radial_profile(train.images),
        train.labels,
        affine_radial_profile(test.images),
        test.labels,
    )
    assert acc > 0.6, f"classes not distinguishable: nearest-centroid accuracy {acc:.3f}"
    bright = lambda d: d.images.sum(axis=(1, 2, 3))[:, None]  # noqa: E731
    acc_b = nearest_centroid_accuracy(bright(train), train.labels, bright(test), test.labels)
    assert acc_b < 0.45, f"total brightness alone gives the class away: accuracy {acc_b:.3f}"


def test_shapes_area_scales_with_size():
    a = geometric_shapes(60, size=32, seed=4).images.sum(axis=(1, 2, 3)).mean()
    b = geometric_shapes(60, size=64, seed=4).images.sum(axis=(1, 2, 3)).mean()
    assert abs(b / a - 4.0) < 0.2, f"area at size 64 / size 32 = {b / a:.3f}, want ~4"


# --------------------------------------------------------------------------------------
# geometric_shapes: options
# --------------------------------------------------------------------------------------


def test_shapes_rotation_range_reduces_variation():
    fixed = geometric_shapes(150, seed=3, angles=(0.0, 0.0))
    full = geometric_shapes(150, seed=3)
    spread = [
        np.mean([d.images[d.labels == k].std(axis=0).mean() for k in range(3)])
        for d in (fixed, full)
    ]
    assert spread[0] < spread[1], f"angles=(0,0) varies as much as the full range: {spread}"


def test_shapes_orientation_follows_angle():
    """Angle 0: long axes horizontal, triangle apex up; 90: vertical; 180: apex down."""
    for angle, long_axis in ((0.0, "xx"), (90.0, "yy")):
        ds = geometric_shapes(30, seed=6, angles=(angle, angle), blur=0.0)
        _, _, _, _, c = moments(ds.images)
        short_axis = "yy" if long_axis == "xx" else "xx"
        for k in (0, 1):  # aspect <= 1: the shape's u axis is its long one
            sel = ds.labels == k
            ok = c[long_axis][sel] >= c[short_axis][sel] * (1.0 - 1e-3)
            assert ok.all(), f"{SHAPES[k]} at {angle} deg: long axis not along {long_axis}"
            tilt = np.abs(c["xy"][sel]) / (c["xx"][sel] + c["yy"][sel])
            assert tilt.max() < 0.02, f"{SHAPES[k]} at {angle} deg is tilted ({tilt.max()})"
    for angle, sign in ((0.0, -1.0), (180.0, 1.0)):
        ds = geometric_shapes(30, seed=6, angles=(angle, angle), blur=0.0)
        _, _, _, _, c = moments(ds.images)
        skew = c["yyy"][ds.labels == 2]
        # apex up = tail toward row 0 = negative third moment of the row coordinate
        assert (sign * skew > 0).all(), f"triangle at {angle} deg: row skew signs {skew}"


def test_shapes_blur_softens_edges():
    sharp = geometric_shapes(50, seed=2, blur=0.0).images
    soft = geometric_shapes(50, seed=2, blur=1.5).images
    mid = [float(((x > 0.05) & (x < 0.95)).mean()) for x in (sharp, soft)]
    assert mid[0] < mid[1] / 2, f"blur=0 not sharper than blur=1.5: grey fractions {mid}"
    extreme = [float(np.abs(2.0 * x - 1.0).mean()) for x in (sharp, soft)]
    assert extreme[0] > extreme[1], f"blur=0 pixels not more extreme: {extreme}"
    # antialiasing: even unblurred edges have partial coverage
    assert ((sharp > 0.0) & (sharp < 1.0)).any(), "blur=0 images have no antialiased edges"


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(n_per_class=0), ValueError, "n_per_class"),
        (dict(n_per_class=2.5), TypeError, "n_per_class"),
        (dict(n_per_class=True), TypeError, "n_per_class"),
        (dict(size=7), ValueError, "size"),
        # lesde.validate: 32.0 is the integer 32 (as in lesde.Config); 32.5 is no integer.
        (dict(size=32.5), TypeError, "size"),
        (dict(angles=(10.0, 0.0)), ValueError, "angles"),
        (dict(angles=(0.0, 10.0, 20.0)), TypeError, "angles"),
        (dict(angles=5.0), TypeError, "angles"),
        (dict(angles=(0.0, float("nan"))), ValueError, "angles"),
        (dict(size_jitter=1.0), ValueError, "size_jitter"),
        (dict(size_jitter=-0.1), ValueError, "size_jitter"),
        (dict(shift=-1.0), ValueError, "shift"),
        (dict(blur=-0.5), ValueError, "blur"),
        (dict(noise=-0.1), ValueError, "noise"),
        (dict(noise="big"), TypeError, "noise"),
    ],
)
def test_shapes_invalid_arguments(kwargs, exc, words):
    kw = dict(n_per_class=2) | kwargs
    with pytest.raises(exc, match=words):
        geometric_shapes(**kw)


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------


def small_dataset(n_per_class=(5, 4, 3)):
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)[::-1].copy()
    images = np.linspace(0.0, 1.0, labels.size * 16).reshape(labels.size, 1, 4, 4)
    return Dataset(images, labels, tuple("abcde"[: len(n_per_class)]))


def test_dataset_converts_inputs():
    images = np.asfortranarray(np.full((3, 2, 4, 4), 0.5, dtype=np.float64))
    ds = Dataset(images, np.array([0, 1, 1], dtype=np.int32), ["x", "y"])
    assert ds.images.dtype == np.float32 and ds.images.flags.c_contiguous, (
        f"images not converted: {ds.images.dtype}, C-contiguous {ds.images.flags.c_contiguous}"
    )
    assert ds.labels.dtype == np.int64 and ds.labels.flags.c_contiguous, "labels not int64"
    assert ds.class_names == ("x", "y"), f"class_names not a tuple: {ds.class_names!r}"
    assert len(ds) == 3 and ds.channels == 2 and ds.image_size == 4, "wrong len/C/size"
    assert ds.class_counts().tolist() == [1, 2], f"class_counts {ds.class_counts()}"
    with pytest.raises(AttributeError):
        ds.labels = np.zeros(3, dtype=np.int64)  # frozen


@pytest.mark.parametrize(
    "images, labels, names, exc, words",
    [
        (np.zeros((2, 4, 4)), [0, 1], ("a", "b"), ValueError, "images"),
        (np.zeros((0, 1, 4, 4)), [], ("a", "b"), ValueError, "images"),
        (np.zeros((2, 1, 4, 5)), [0, 1], ("a", "b"), ValueError, "square"),
        (np.full((2, 1, 4, 4), 1.5), [0, 1], ("a", "b"), ValueError, r"images.*\[0, 1\]"),
        (np.full((2, 1, 4, 4), np.nan), [0, 1], ("a", "b"), ValueError, "images"),
        (np.zeros((2, 1, 4, 4), dtype=complex), [0, 1], ("a", "b"), TypeError, "images"),
        (np.zeros((2, 1, 4, 4)), [0, 1, 1], ("a", "b"), ValueError, "labels"),
        (np.zeros((2, 1, 4, 4)), [0.0, 1.0], ("a", "b"), TypeError, "labels"),
        (np.zeros((2, 1, 4, 4)), [0, 2], ("a", "b"), ValueError, "labels"),
        (np.zeros((2, 1, 4, 4)), [-1, 0], ("a", "b"), ValueError, "labels"),
        (np.zeros((2, 1, 4, 4)), [0, 0], ("a",), ValueError, "class_names"),
        (np.zeros((2, 1, 4, 4)), [0, 0], ("a", "a"), ValueError, "class_names"),
        (np.zeros((2, 1, 4, 4)), [0, 0], "ab", TypeError, "class_names"),
        (np.zeros((2, 1, 4, 4)), [0, 0], ("a", 2), TypeError, "class_names"),
    ],
)
def test_dataset_validation(images, labels, names, exc, words):
    with pytest.raises(exc, match=words):
        Dataset(images, np.asarray(labels), names)


def test_dataset_repr():
    ds = small_dataset()
    assert repr(ds) == "Dataset(N=12, K=3, images=(1, 4, 4), classes=('a', 'b', 'c'))", repr(ds)


def test_subset_copies_and_selects():
    ds = small_dataset()
    sub = ds.subset([3, 0, -1])
    assert sub.labels.tolist() == [ds.labels[3], ds.labels[0], ds.labels[-1]], "wrong rows"
    assert np.array_equal(sub.images[1], ds.images[0]), "images not taken with their labels"
    assert sub.class_names == ds.class_names, "subset changed class_names"
    sub.images[...] = 0.0
    assert ds.images.max() > 0.0, "subset shares memory with the original"
    mask = ds.labels == 1
    assert ds.subset(mask).class_counts().tolist() == [0, 4, 0], "boolean mask not honoured"
    with pytest.raises(IndexError, match="indices"):
        ds.subset([12])
    with pytest.raises(ValueError, match="indices"):
        ds.subset(np.ones(5, dtype=bool))
    with pytest.raises(TypeError, match="indices"):
        ds.subset([0.5])


def test_split_stratified_fraction_and_int():
    ds = geometric_shapes(20, size=8, seed=1)
    train, val = ds.split(0.25, seed=0)
    assert val.class_counts().tolist() == [5, 5, 5], f"val counts {val.class_counts()}"
    assert train.class_counts().tolist() == [15, 15, 15], f"train counts {train.class_counts()}"
    train, val = ds.split(4, seed=0)
    assert val.class_counts().tolist() == [4, 4, 4], f"int split val {val.class_counts()}"
    # the two parts partition the data: every image exactly once
    key = lambda d: sorted(map(bytes, d.images.reshape(len(d), -1)))  # noqa: E731
    assert sorted(key(train) + key(val)) == key(ds), "train and val do not partition the data"


def test_split_unbalanced_classes_rounding():
    ds = small_dataset((5, 4, 3))
    train, val = ds.split(0.3, seed=0)  # 1.5 -> 2, 1.2 -> 1, 0.9 -> 1
    assert val.class_counts().tolist() == [2, 1, 1], f"val counts {val.class_counts()}"
    assert train.class_counts().tolist() == [3, 3, 2], f"train counts {train.class_counts()}"


def test_split_deterministic():
    ds = geometric_shapes(20, size=8, seed=1)
    a, b, c = ds.split(0.3, seed=5), ds.split(0.3, seed=5), ds.split(0.3, seed=6)
    assert np.array_equal(a[1].images, b[1].images), "same seed gave different splits"
    assert not np.array_equal(a[1].images, c[1].images), "different seeds gave one split"


@pytest.mark.parametrize(
    "validation, exc, words",
    [
        (0.0, ValueError, r"\(0, 1\)"),
        (1.0, ValueError, r"\(0, 1\)"),
        (0, ValueError, ">= 1"),
        (3, ValueError, "no image on one side"),  # class 'c' has 3 images
        (0.01, ValueError, "no image on one side"),  # rounds to 0 validation images
        (0.99, ValueError, "no image on one side"),  # leaves no training image
        (True, TypeError, "validation"),
        ("half", TypeError, "validation"),
    ],
)
def test_split_rejects(validation, exc, words):
    with pytest.raises(exc, match=words):
        small_dataset((5, 4, 3)).split(validation)


def test_split_rejects_empty_class():
    ds = Dataset(np.zeros((4, 1, 2, 2)), [0, 0, 1, 1], ("a", "b", "c"))
    with pytest.raises(ValueError, match="'c' \\(0 images"):
        ds.split(1)


# --------------------------------------------------------------------------------------
# corrupt_labels
# --------------------------------------------------------------------------------------


def test_corrupt_zero_is_copy():
    y = np.arange(50) % 4
    z = corrupt_labels(y, 0.0, 4, seed=3)
    assert np.array_equal(z, y), "p_err=0 changed labels"
    assert z.dtype == np.int64, f"dtype {z.dtype}, want int64"
    assert not np.shares_memory(z, y), "p_err=0 returned the input itself, not a copy"


def test_corrupt_one_changes_all_uniformly():
    """p_err=1: every label changes, to each other class with probability 1/(K-1).

    Chi-square over the K(K-1) (true, new) cells, 2000 labels per true class. Fixed seed,
    so deterministic; for a random seed a correct implementation fails with probability
    1e-6 (the p-value threshold).
    """
    K = 5
    y = np.repeat(np.arange(K), 2000)
    z = corrupt_labels(y, 1.0, K, seed=11)
    assert np.all(z != y), "p_err=1 left some label unchanged"
    table = np.zeros((K, K), dtype=np.int64)
    np.add.at(table, (y, z), 1)
    assert np.all(np.diag(table) == 0), "a corrupted label equals the true one"
    off = table[~np.eye(K, dtype=bool)]
    p = stats.chisquare(off, np.full(off.size, 2000 / (K - 1))).pvalue
    assert p > 1e-6, f"new labels not uniform over the other classes (p = {p:.2e}):\n{table}"


@pytest.mark.parametrize("p_err", [0.1, 2 / 3, 0.8])
def test_corrupt_rate_and_never_true(p_err):
    """Changed fraction within 5 binomial sd of p_err (random-seed false-positive < 1e-6)."""
    K, N = 3, 20000
    y = np.arange(N) % K
    z = corrupt_labels(y, p_err, K, seed=2)
    frac = float(np.mean(z != y))
    bound = 5.0 * np.sqrt(p_err * (1 - p_err) / N)
    assert abs(frac - p_err) < bound, f"changed fraction {frac:.4f}, want {p_err:.4f} +- {bound}"
    assert z.min() >= 0 and z.max() < K, f"labels out of range: {z.min()}..{z.max()}"


def test_corrupt_deterministic_and_coupled():
    y = np.arange(3000) % 3
    a, b = corrupt_labels(y, 0.3, 3, seed=4), corrupt_labels(y, 0.3, 3, seed=4)
    assert np.array_equal(a, b), "same seed gave different corruption"
    assert not np.array_equal(a, corrupt_labels(y, 0.3, 3, seed=5)), "seed ignored"
    hi = corrupt_labels(y, 0.6, 3, seed=4)
    assert np.all(hi[a != y] == a[a != y]), "corruption at 0.3 not contained in that at 0.6"


def test_corrupt_does_not_mutate():
    y = np.arange(100, dtype=np.int32) % 4
    keep = y.copy()
    y.setflags(write=False)
    z = corrupt_labels(y, 0.5, 4, seed=0)
    assert np.array_equal(y, keep), "input labels were modified"
    assert z.dtype == np.int64 and z.flags.writeable, "result not a fresh int64 array"
    assert corrupt_labels([0, 1, 2], 0.0, 3).tolist() == [0, 1, 2], "a list input not accepted"


@pytest.mark.parametrize(
    "args, exc, words",
    [
        (([0, 1], -0.1, 2), ValueError, "p_err"),
        (([0, 1], 1.1, 2), ValueError, "p_err"),
        (([0, 1], float("nan"), 2), ValueError, "p_err"),
        (([0, 1], "0.5", 2), TypeError, "p_err"),
        (([0, 1], 0.5, 1), ValueError, "n_classes"),
        (([0, 1], 0.5, 2.5), TypeError, "n_classes"),  # 2.0 is the integer 2 (lesde.validate)
        (([0, 2], 0.5, 2), ValueError, "labels"),
        (([0.0, 1.0], 0.5, 2), TypeError, "labels"),
        (([[0, 1]], 0.5, 2), ValueError, "labels"),
    ],
)
def test_corrupt_invalid(args, exc, words):
    with pytest.raises(exc, match=words):
        corrupt_labels(*args)


# --------------------------------------------------------------------------------------
# cifar10 on a fake copy in the real format
# --------------------------------------------------------------------------------------

ROWS = 20  # images per fake batch


def fake_batch(batch_no, rows=ROWS):
    """A batch whose image i has R(0,0) = id, plus a known pattern elsewhere.

    id = 20 * batch_no + i identifies the image (file order); labels cycle so that each
    class has 2 images per batch, shifted per batch.
    """
    data = np.zeros((rows, 3072), dtype=np.uint8)
    c, y, x = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    pattern = ((c * 80 + y * 7 + x * 3) % 256).astype(np.uint8).ravel()
    data[:] = pattern
    data[:, 0] = ROWS * batch_no + np.arange(rows)
    labels = [(i + batch_no) % 10 for i in range(rows)]
    return {b"batch_label": b"fake", b"data": data, b"labels": labels}


def pattern_value(c, y, x):
    return (c * 80 + y * 7 + x * 3) % 256


def write_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def make_fake_cifar(parent, batches=None):
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    write_pickle(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR_NAMES]})
    batches = batches or {f"data_batch_{i}": fake_batch(i - 1) for i in range(1, 6)}
    batches.setdefault("test_batch", fake_batch(10))
    for name, obj in batches.items():
        write_pickle(folder / name, obj)
    return folder


def image_ids(ds):
    return np.rint(ds.images[:, 0, 0, 0] * 255).astype(int).tolist()


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory):
    return make_fake_cifar(tmp_path_factory.mktemp("cifar"))


def test_cifar_folder_and_parent_load(fake_cifar):
    a = cifar10(fake_cifar)
    b = cifar10(fake_cifar.parent)
    assert a.images.shape == (100, 3, 32, 32), f"shape {a.images.shape}, want (100, 3, 32, 32)"
    assert a.images.dtype == np.float32, f"dtype {a.images.dtype}"
    assert a.class_names == CIFAR_NAMES, f"class_names {a.class_names}"
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels), (
        "the folder and its parent load different data"
    )
    assert image_ids(a) == list(range(100)), "batches not concatenated in order 1..5"
    want = [(i + b) % 10 for b in range(5) for i in range(ROWS)]
    assert a.labels.tolist() == want, "labels not read in file order"


def test_cifar_pixel_layout(fake_cifar):
    ds = cifar10(fake_cifar)
    img = np.rint(ds.images[7] * 255).astype(int)
    for c, y, x in [(0, 0, 1), (0, 5, 9), (1, 0, 0), (1, 31, 2), (2, 17, 30), (2, 31, 31)]:
        assert img[c, y, x] == pattern_value(c, y, x), (
            f"pixel (c={c}, y={y}, x={x}) decoded as {img[c, y, x]}, "
            f"want {pattern_value(c, y, x)}: R/G/B planes or row-major order wrong"
        )
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0, "values not scaled to [0, 1]"


def test_cifar_archive_and_folder_holding_it(fake_cifar, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ["test_batch", "data_batch_3", "batches.meta", "data_batch_1"] + [
            "data_batch_2",
            "data_batch_5",
            "data_batch_4",
        ]:  # scrambled member order, like the real archive
            tar.add(fake_cifar / name, arcname=f"cifar-10-batches-py/{name}")
    ref = cifar10(fake_cifar, classes=["ship", 0], n_per_class=5)
    for root in (archive, tmp_path):
        ds = cifar10(root, classes=["ship", 0], n_per_class=5)
        assert np.array_equal(ds.images, ref.images), f"{root}: images differ from the folder"
        assert np.array_equal(ds.labels, ref.labels), f"{root}: labels differ from the folder"
    assert len(cifar10(archive, split="test")) == ROWS, "test split not read from the archive"


def test_cifar_classes_by_name_and_index(fake_cifar):
    full = cifar10(fake_cifar)
    ds = cifar10(fake_cifar, classes=["dog", 1, "airplane"])
    assert ds.class_names == ("dog", "automobile", "airplane"), f"names {ds.class_names}"
    orig = full.labels[np.isin(full.labels, [5, 1, 0])]
    want = np.select([orig == 5, orig == 1, orig == 0], [0, 1, 2])
    assert ds.labels.tolist() == want.tolist(), "labels not remapped in the order given"
    assert ds.class_counts().tolist() == [10, 10, 10], f"counts {ds.class_counts()}"
    np_idx = cifar10(fake_cifar, classes=np.array([3, 5]))
    assert np_idx.class_names == ("cat", "dog"), "numpy integer indices not accepted"


def test_cifar_n_per_class_first_in_file_order(fake_cifar):
    ds = cifar10(fake_cifar, classes=["cat", "dog"], n_per_class=3)
    full = cifar10(fake_cifar)
    ids = np.arange(100)
    want = np.sort(np.concatenate([ids[full.labels == 3][:3], ids[full.labels == 5][:3]])).tolist()
    assert image_ids(ds) == want, f"images {image_ids(ds)}, want the first ones {want}"
    assert ds.class_counts().tolist() == [3, 3], f"counts {ds.class_counts()}"
    with pytest.raises(ValueError, match="'cat' has only 10"):
        cifar10(fake_cifar, classes=["cat", "dog"], n_per_class=11)


def test_cifar_test_split(fake_cifar):
    ds = cifar10(fake_cifar, split="test")
    assert image_ids(ds) == list(range(200, 220)), "test split is not test_batch"
    with pytest.raises(ValueError, match="split"):
        cifar10(fake_cifar, split="validation")


def test_cifar_data_as_list(tmp_path):
    batch = fake_batch(0)
    batch[b"data"] = batch[b"data"].tolist()
    folder = make_fake_cifar(
        tmp_path,
        {"data_batch_1": batch} | {f"data_batch_{i}": fake_batch(i - 1) for i in range(2, 6)},
    )
    ds = cifar10(folder)
    assert image_ids(ds)[:ROWS] == list(range(ROWS)), "data given as a list not decoded"


def test_cifar_missing_copy_mentions_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        cifar10(tmp_path / "nowhere")
    msg = str(info.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in msg, msg
    assert "nowhere" in msg, f"the paths tried are not named: {msg}"


def test_cifar_not_found_says_where_it_looked_and_what_to_pass(tmp_path):
    """One sentence per case, naming the paths; never a list of paths to decode."""
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    what_to_pass = "pass that archive, the folder holding it, the cifar-10-batches-py folder"
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "notes.txt"
    other.write_text("not an archive")
    expected = {
        tmp_path / "nowhere": [f"CIFAR-10 path {tmp_path / 'nowhere'} does not exist."],
        empty: [
            f"not found in {empty}: neither {empty} nor {empty / 'cifar-10-batches-py'} holds "
            f"batches.meta, and there is no {empty / 'cifar-10-python.tar.gz'}."
        ],
        other: [f"CIFAR-10 file {other} is not a tar archive."],
    }
    for root, words in expected.items():
        with pytest.raises(FileNotFoundError) as info:
            cifar10(root)
        msg = str(info.value)
        assert "\n" not in msg, msg
        for part in [*words, url, what_to_pass]:
            assert part in msg, f"{part!r} not in: {msg}"


def test_cifar_missing_batch_file(tmp_path):
    folder = make_fake_cifar(tmp_path)
    os.remove(folder / "data_batch_4")
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        cifar10(folder)
    assert len(cifar10(folder, split="test")) == ROWS, "test split needs no training batch"


@pytest.mark.parametrize(
    "classes, exc, words",
    [
        (["cat", "unicorn"], ValueError, r"unicorn.*valid names.*airplane.*truck"),
        (["cat"], ValueError, "at least 2"),
        (["cat", 3], ValueError, "repeat"),
        ([0, 10], ValueError, "out of range"),
        ("cat", TypeError, "classes"),
        ([0, 1.5], TypeError, "classes"),
    ],
)
def test_cifar_bad_classes(fake_cifar, classes, exc, words):
    with pytest.raises(exc, match=words):
        cifar10(fake_cifar, classes=classes)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda b: b.update({b"data": b[b"data"][:, :3000]}), "3072"),
        (lambda b: b.update({b"labels": b[b"labels"][:-1]}), "labels"),
        (lambda b: b.pop(b"labels"), "labels"),
        (lambda b: b.update({b"labels": [12] * ROWS}), "labels"),
    ],
)
def test_cifar_malformed_batch_names_file(tmp_path, change, words):
    bad = fake_batch(2)
    change(bad)
    folder = make_fake_cifar(
        tmp_path,
        {"data_batch_3": bad} | {f"data_batch_{i}": fake_batch(i - 1) for i in (1, 2, 4, 5)},
    )
    with pytest.raises(ValueError, match=words) as info:
        cifar10(folder)
    assert "data_batch_3" in str(info.value), f"error does not name the file: {info.value}"


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("target", ["data_batch_1", "batches.meta"])
def test_cifar_malicious_pickle_refused(tmp_path, target):
    marker = tmp_path / "pwned"
    folder = make_fake_cifar(tmp_path / "data")
    payload = {b"data": _Evil(marker), b"labels": [], b"label_names": _Evil(marker)}
    write_pickle(folder / target, payload)
    with pytest.raises(pickle.UnpicklingError, match=target):
        cifar10(folder)
    assert not marker.exists(), "the malicious pickle was executed"


def test_cifar_other_globals_refused(tmp_path):
    folder = make_fake_cifar(tmp_path)
    write_pickle(folder / "data_batch_2", {b"data": eval, b"labels": []})  # __builtin__.eval
    with pytest.raises(pickle.UnpicklingError, match="eval"):
        cifar10(folder)
