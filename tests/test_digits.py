"""lesde.data.digits: scikit-learn's 8 x 8 digits as a 10-class Dataset for the LeNet."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_digits  # noqa: E402

from lesde.data import digits  # noqa: E402


def test_balanced_ten_classes_in_unit_range():
    ds = digits()
    assert ds.n_classes == 10 and ds.class_names == tuple("0123456789")
    assert ds.class_counts().tolist() == [174] * 10
    assert ds.images.shape == (1740, 1, 16, 16) and ds.images.dtype == np.float32
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0


def test_size_8_is_the_original_and_16_enlarges_it():
    raw = load_digits()
    ds = digits(n_per_class=None, size=8)
    order = np.argsort(raw.target, kind="stable")
    np.testing.assert_array_equal(ds.labels, raw.target[order])
    np.testing.assert_allclose(ds.images[:, 0], raw.images[order] / 16.0, rtol=1e-6)
    big = digits(n_per_class=None, size=16)
    # bilinear enlargement keeps each image's mean brightness within a few percent
    np.testing.assert_allclose(big.images.mean(axis=(1, 2, 3)), ds.images.mean(axis=(1, 2, 3)),
                               rtol=0.1, atol=0.01)  # fmt: skip


def test_seeded_choice():
    a, b, c = digits(20, seed=1), digits(20, seed=1), digits(20, seed=2)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


@pytest.mark.parametrize(
    "kw, words",
    [(dict(n_per_class=175), "at most 174"), (dict(n_per_class=0), "n_per_class"),
     (dict(size=4), "size")],
)  # fmt: skip
def test_bad_input_is_one_line(kw, words):
    with pytest.raises(ValueError, match=words) as err:
        digits(**kw)
    assert "\n" not in str(err.value)
