"""Saving and loading results and configs: exact round trip, never pickle, clear refusals,
files that get the mode the user's umask asks for; and what a result's summary leads with."""

import json
import os
import stat

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


def test_unknown_config_field_is_named_with_a_suggestion_and_the_fields():
    with pytest.raises(TypeError) as info:
        lesde.Config(alpah=1.0)
    message = str(info.value)
    assert message.startswith("unknown config field 'alpah'; did you mean 'alpha'?"), message
    assert "fields: n_classes, n_per_class" in message and "\n" not in message, message
    with pytest.raises(ValueError) as info:
        lesde.Config.from_dict({"n_classes": 3, "sigam": 0.1})
    assert "did you mean 'sigma'?" in str(info.value) and "fields: " in str(info.value)
    with pytest.raises(TypeError, match="unknown config field 'zzz' \\(fields: n_classes"):
        lesde.Config(zzz=1)  # nothing close: no guess, the fields


@pytest.mark.parametrize(
    "text, hint",
    [
        ("signal = linear\n", 'strings need quotes: signal = "linear"'),
        ("n_classes = 3\nprocess = sgd   # the SGD imitation\n", 'process = "sgd"'),
        ("n_classes = 3\nalpha = \n", None),  # another mistake: no misleading hint
        ('dtype = "float32"\nsignal = ]\n', None),
    ],
)
def test_unquoted_toml_string_gets_a_hint(text, hint):
    with pytest.raises(ValueError) as info:
        lesde.Config.from_toml(text)
    message = str(info.value)
    assert message.startswith("invalid TOML"), message
    if hint is None:
        assert "quotes" not in message, message
    else:
        assert message.endswith(hint), message


@pytest.fixture(params=[0o022, 0o027, 0o077], ids=lambda m: f"umask-{m:03o}")
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_written_files_get_the_mode_of_the_umask(umask, tmp_path):
    """Results, checkpoints, sweep tables and training records: 0666 less the umask, like
    any new file (atomic writers made them 0600 whatever the umask said)."""
    from lesde.nn.training_result import TrainingResult
    from lesde.sweep import sweep

    expected = 0o666 & ~umask
    res = lesde.simulate(
        n_classes=2, n_per_class=5, t_end=0.1, progress=False, checkpoint=tmp_path / "r.ckpt"
    )
    res.save(tmp_path / "r.npz")
    sweep(res.config, {"alpha": [1.0]}, out_dir=tmp_path / "sweep", progress=False)
    training = TrainingResult(
        times=np.zeros(1),
        steps=np.zeros(1, dtype=np.int64),
        class_means=np.zeros((1, 1, 2, 2)),
        label_means=np.zeros((1, 1, 2, 2)),
        metrics={},
        features=np.zeros((1, 3, 2)),
        classes=np.array([0, 1, 1]),
        labels=np.array([[0, 1, 1]]),
        logits=None,
        impact=None,
        status=np.array(["ok"]),
        fail_step=np.array([-1]),
        steps_done=0,
    )
    training.save(tmp_path / "train.npz")
    written = [tmp_path / n for n in ("r.npz", "r.ckpt", "train.npz")]
    written += [tmp_path / "sweep" / n for n in ("table.csv", "summary.csv")]
    written += list((tmp_path / "sweep" / "points").glob("*.npz"))
    assert len(written) == 6
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == expected, f"{path.name}: mode {mode:03o}, the umask gives {expected:03o}"


@pytest.mark.parametrize(
    "signal, alpha, beta",
    [
        ("linear", 2.0, 0.5),
        ("linear", 0.5, 2.0),
        ("projected", 2.0, 0.5),
        ("cross_entropy", 0.5, 2.0),
    ],
)
def test_summary_leads_with_the_headline_and_separable_ncc_is_the_ncc_certificate(
    signal, alpha, beta
):
    res = lesde.simulate(
        n_classes=3,
        n_per_class=100,
        signal=signal,
        alpha=alpha,
        beta=beta,
        sigma=0.5,
        t_end=15.0,
        replicas=4,
        seed=5,
        progress=False,
    )
    summary = res.summary()
    assert res.headline == lesde.sim.result.HEADLINE_METRICS[signal]
    assert list(summary)[: len(res.headline)] == list(res.headline), list(summary)
    assert set(res.metrics) < set(summary) and list(summary)[-2:] == ["t_end", "replicas_ok"]
    certified = [
        lesde.metrics.separable(res.features[r], res.labels[r], method="ncc").separable
        for r in range(4)
    ]
    np.testing.assert_array_equal(res.final("separable_ncc"), np.array(certified, dtype=float))
    assert summary["separable_ncc"] == pytest.approx(np.mean(certified))
    if signal == "linear":  # the transition itself, in the headline
        assert summary["separable_ncc"] == (1.0 if alpha > beta else 0.0), summary


def test_save_replaces_only_a_lesde_result(result, tmp_path):
    """Result.save replaced any file at its path (a config, a checkpoint, the user's
    notes). Now it replaces only a result file of lesde (not with overwrite=False), and
    refuses anything else, which stays as it was."""
    notes, ckpt, link = tmp_path / "notes.txt", tmp_path / "run.ckpt", tmp_path / "link.npz"
    notes.write_text("mine")
    lesde.simulate(n_classes=2, n_per_class=5, t_end=0.1, checkpoint=ckpt, progress=False)
    link.symlink_to(notes)
    os.mkfifo(tmp_path / "pipe.npz")
    refusals = {
        notes: "exists and is not a file lesde wrote",
        ckpt: "is a checkpoint, resume it with lesde.resume; lesde would replace only a lesde "
        "result file there",
        link: "is a symbolic link, not a regular file",
        tmp_path / "pipe.npz": "is a FIFO, not a regular file",
        tmp_path: "is a folder, not a regular file",
    }
    kept = {p: p.read_bytes() for p in (notes, ckpt)}
    for path, why in refusals.items():
        with pytest.raises(ValueError, match=why):
            result.save(path)
    assert {p: p.read_bytes() for p in kept} == kept and link.is_symlink()

    path = tmp_path / "run.npz"
    result.save(path, include_features=False)
    with pytest.raises(ValueError, match="holds a lesde result file already"):
        result.save(path, overwrite=False)
    result.save(path)  # replaced: lesde's own result
    assert lesde.load(path).features.shape == result.features.shape


# ---------------------------------------------------------------------------- tables
def test_result_to_dataframe_is_one_tidy_row_per_replica_and_record():
    """A Result had no table export (sweeps had one): to_dataframe gives one row per
    (replica, record) with every metric as a column, the replica's status, and NaN where a
    failed replica stopped."""
    res = lesde.simulate(
        n_classes=3, n_per_class=20, t_end=0.5, replicas=3, record_every=10, progress=False
    )
    res.status = np.array(["ok", "nonfinite", "ok"])  # as a replica that failed is marked
    res.metrics["loss"][1, 3:] = np.nan
    df = res.to_dataframe()
    R, T = res.metrics["loss"].shape
    assert list(df.columns[:4]) == ["replica", "record", "t", "status"]
    assert list(df.columns[4:]) == [*res.metrics, "separable_ncc"]
    assert len(df) == R * T
    assert df["replica"].tolist() == [r for r in range(R) for _ in range(T)]
    assert df["t"].tolist() == res.times.tolist() * R
    for name, values in res.metrics.items():
        np.testing.assert_array_equal(df[name].to_numpy().reshape(R, T), values)
    sep = df.groupby("replica")["separable_ncc"].last().to_numpy()
    np.testing.assert_array_equal(sep, lesde.sim.result.final_values(res.metrics, "separable_ncc"))
    assert set(df.loc[df["replica"] == 1, "status"]) == {"nonfinite"}
    assert df.loc[(df["replica"] == 1) & (df["record"] >= 3), "loss"].isna().all()
    assert lesde.Config.from_toml(df.attrs["config_toml"]) == res.config
    only = res.to_dataframe(metrics="nc1")
    assert only.columns.tolist() == ["replica", "record", "t", "status", "nc1"]
    with pytest.raises(KeyError, match="did you mean 'accuracy'"):
        res.to_dataframe(metrics=["acuracy"])


def _fail_after_some_bytes(monkeypatch):
    """Make every Parquet write put a few bytes out, then fail (a full disk, a kill)."""
    import pandas as pd

    def broken(self, f, *args, **kwargs):
        f.write(b"PAR1 partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)


def test_parquet_tables_are_written_atomically_and_say_how_to_get_an_engine(tmp_path, monkeypatch):
    """Result.to_parquet and SweepResult.to_parquet share one writer
    (lesde.io.storage.atomic_write_parquet): a write that fails leaves the old file whole and
    no temporary file; without a Parquet engine the error names the extra to install."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from lesde.sweep import sweep

    res = lesde.simulate(n_classes=2, n_per_class=10, t_end=0.2, replicas=2, progress=False)
    swept = sweep(res.config, {"alpha": [0.5, 1.0]}, progress=False)
    run_file, sweep_file = tmp_path / "run.parquet", tmp_path / "sweep.parquet"
    res.to_parquet(run_file)
    swept.to_parquet(sweep_file)
    back = pd.read_parquet(run_file)
    pd.testing.assert_frame_equal(back, res.to_dataframe())
    assert lesde.Config.from_toml(back.attrs["config_toml"]) == res.config
    pd.testing.assert_frame_equal(pd.read_parquet(sweep_file), swept.table)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    with monkeypatch.context() as m:
        _fail_after_some_bytes(m)
        for write, path in ((res.to_parquet, run_file), (swept.to_parquet, sweep_file)):
            with pytest.raises(OSError, match="No space left"):
                write(path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("pyarrow", "fastparquet") else real(name, *a),
    )
    for write in (res.to_parquet, swept.to_parquet):
        with pytest.raises(ImportError, match=r"pip install 'lesde\[parquet\]'"):
            write(tmp_path / "new.parquet")
    assert not (tmp_path / "new.parquet").exists()
