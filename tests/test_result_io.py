"""Saving and loading results: exact round trip, never pickle, clear refusals."""

import json

import numpy as np
import pytest

import lesde


@pytest.fixture(scope="module")
def result():
    return lesde.simulate(
        n_classes=3,
        n_per_class=30,
        t_end=0.5,
        replicas=2,
        sigma=0.2,
        alpha=lesde.PowerLaw(a0=1.0, tau=1.0, gamma=0.5),
        record_samples=4,
        progress=False,
    )


def test_round_trip_is_exact(result, tmp_path):
    path = tmp_path / "run.npz"
    result.save(path)
    back = lesde.load(path)
    assert back.config == result.config
    for name in (
        "times",
        "class_means",
        "label_means",
        "sigma_w",
        "features",
        "labels",
        "classes",
        "sample_indices",
        "sample_trajectories",
        "fail_step",
    ):
        np.testing.assert_array_equal(getattr(back, name), getattr(result, name), err_msg=name)
    assert list(back.status) == list(result.status)
    for name, values in result.metrics.items():
        np.testing.assert_array_equal(back.metrics[name], values, err_msg=name)
    assert back.meta["random_stream_version"] == lesde.build_info()["random_stream_version"]


def test_file_is_loadable_without_pickle(result, tmp_path):
    path = tmp_path / "run.npz"
    result.save(path)
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
    assert "config_toml" in header and header["meta"]["seed"] == 0


def test_incompatible_or_damaged_files_are_refused(result, tmp_path):
    path = tmp_path / "run.npz"
    result.save(path)
    with np.load(path) as data:
        payload = dict(data)
    header = json.loads(str(payload["header"]))
    header["format_version"] = 999
    payload["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "future.npz", **payload)
    with pytest.raises(ValueError, match="format version 999"):
        lesde.load(tmp_path / "future.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable"):
        lesde.load(tmp_path / "junk.npz")


def test_config_toml_round_trip():
    cfg = lesde.Config(
        n_classes=4,
        class_sizes=(3, 4, 5, 6),
        signal="linear",
        alpha=lesde.Tabulated([0.0, 1.0], [1.0, 0.5]),
        beta=0.1,
        sigma=lesde.ExponentialDecay(a0=0.3, tau=2.0),
        dt=0.02,
        steps=50,
        record_samples=(1, 2),
        init_means=np.arange(16.0).reshape(4, 4) / 7,
    )
    assert lesde.Config.from_toml(cfg.to_toml()) == cfg
    assert lesde.Config.from_dict(cfg.to_dict()) == cfg
    resolved = lesde.Config.from_toml(cfg.to_toml(resolved=True))
    assert resolved.n_steps == cfg.n_steps and resolved.record_interval == cfg.record_interval


def _resaved(result, tmp_path, change_header=None, change_arrays=None):
    """The saved result, rewritten with its header and arrays changed."""
    path = tmp_path / "run.npz"
    result.save(path)
    with np.load(path) as data:
        payload = dict(data)
    header = json.loads(str(payload.pop("header")))
    if change_header:
        change_header(header)
    if change_arrays:
        change_arrays(payload)
    np.savez(tmp_path / "changed.npz", header=np.array(json.dumps(header)), **payload)
    return tmp_path / "changed.npz"


def test_records_must_be_those_of_the_header(result, tmp_path):
    """The record count follows from the config and steps_done, the record times from the
    config: a file whose records disagree is refused (the count before anything is read)."""
    cases = {
        "holds 51 records, but 26 for steps_done = 25": lambda h: h.update(steps_done=25),
        r"steps_done 60 outside \[0, 50\]": lambda h: h.update(steps_done=60),
    }
    for message, change in cases.items():
        with pytest.raises(ValueError, match=message):
            lesde.load(_resaved(result, tmp_path, change_header=change))

    def shifted(arrays):
        arrays["times"] = arrays["times"] + 1e-3

    with pytest.raises(ValueError, match="record times are not those of its config"):
        lesde.load(_resaved(result, tmp_path, change_arrays=shifted))


def test_every_array_is_checked_against_the_config_before_reading(result, tmp_path):
    def extra_metric(arrays):
        arrays["metric__extra"] = np.zeros((2, 7))

    with pytest.raises(ValueError, match=r"'metric__extra' should be float \(2, 51\)"):
        lesde.load(_resaved(result, tmp_path, change_arrays=extra_metric))
