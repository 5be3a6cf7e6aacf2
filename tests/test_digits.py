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


# --------------------------------------------------------------------------------------
# K = 10 through the paper's pipeline: a small real ensemble of linear networks
# --------------------------------------------------------------------------------------


def linear_digits(seed):
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 10))
    return model.to(torch.float64)


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    pytest.importorskip("torch")
    from lesde.nn.ensemble import train_ensemble

    folder = tmp_path_factory.mktemp("digits-ensemble")
    train_ensemble(digits(n_per_class=6, size=16), trials=3, lr=0.05, steps=120,
                   record_every=4, workers=1, seed=0, model=linear_digits, folder=folder,
                   progress=False)  # fmt: skip
    return folder


def test_paper_I_is_the_published_code_at_K_10_on_raw_ensemble_logits(digits_folder):
    from paper_code import estimate_AB_I, rows_of

    from lesde.nn.ensemble import load_ensemble
    from lesde.nn.pipeline import average_class_means, paper_pipeline

    ens = load_ensemble(digits_folder)
    _, means = average_class_means(ens)
    assert means.shape[1:] == (10, 10) and np.min(np.abs(means.sum(axis=2))) > 1e-3, "raw"
    run = paper_pipeline(ens, estimator="I", conventions="paper", start=0)
    with np.errstate(all="ignore"):
        A, B = estimate_AB_I(*rows_of(means), 10)
    np.testing.assert_array_equal(run.A_hat, A)
    np.testing.assert_array_equal(run.B_hat, B)
    lesde_L = paper_pipeline(ens, estimator="L", start=0)  # lesde's L takes any K
    assert lesde_L.replayed.shape == means.shape and np.isfinite(lesde_L.mean_error)


def test_paper_L_at_K_10_is_one_line_from_the_command_line(digits_folder, capsys):
    from lesde.cli import main

    code = main(["nn", "paper", str(digits_folder), "--conventions", "paper", "--start", "0"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1, err
    assert "written for K = 3 classes only; got K = 10" in err, err
