"""Sweeps: grid grammar, seeds, failure handling, and the phase transitions of docs/model.md 3."""

import math
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import lesde
from lesde.sweep import (
    SweepResult,
    expand_grid,
    label_noise_sweep,
    phase_diagram,
    point_seed,
    sweep,
)

# Small and fast: 3 classes x 30 samples, two records per run (start and end), so the
# per-record post-processing stays cheap.
TINY = lesde.Config(
    n_classes=3,
    n_per_class=30,
    signal="linear",
    alpha=2.0,
    beta=0.5,
    sigma=0.5,
    t_end=0.5,
    dt=0.05,
    record_every=10,
    seed=3,
)


# ---------------------------------------------------------------------------- grid grammar
def test_grid_grammar_lists_linspace_logspace_and_values():
    grid = expand_grid(
        {
            "alpha": [1, 2.5],
            "beta": {"start": 0.0, "stop": 1.0, "num": 3},
            "sigma": {"start": 0.1, "stop": 10.0, "num": 3, "scale": "log"},
            "signal": {"values": ("linear", "projected")},
            "dt": np.array([0.01, 0.02]),
        }
    )
    assert grid["alpha"] == [1, 2.5]
    assert grid["beta"] == [0.0, 0.5, 1.0]
    np.testing.assert_allclose(grid["sigma"], [0.1, 1.0, 10.0])
    assert grid["signal"] == ["linear", "projected"]
    assert grid["dt"] == [0.01, 0.02] and all(type(v) is float for v in grid["dt"])


@pytest.mark.parametrize(
    "grid, error, match",
    [
        ({"alhpa": [1.0]}, ValueError, "did you mean 'alpha'"),
        ({"n_per_clas": [1]}, ValueError, "did you mean 'n_per_class'"),
        ({"zzz": [1]}, ValueError, "unknown Config field 'zzz'"),
        ({"seed": [1, 2]}, ValueError, "derived from base.seed"),
        ({"replicas": [1, 2]}, ValueError, "replicas="),
        ({"threads": [1, 2]}, ValueError, "cannot be swept"),
        ({"alpha": 1.0}, TypeError, r"write \[1.0\]"),
        ({"signal": "linear"}, TypeError, r"write \['linear'\]"),
        ({"alpha": []}, ValueError, "empty"),
        ({"alpha": {"start": 0, "stop": 1}}, ValueError, "'start', 'stop', 'num'"),
        ({"alpha": {"start": 0, "stop": 1, "num": 0}}, ValueError, "num must be"),
        ({"alpha": {"start": 0, "stop": 1, "num": 2, "scale": "log"}}, ValueError, "start > 0"),
        ({"alpha": {"start": "0", "stop": 1, "num": 2}}, TypeError, "start must be a number"),
        ({}, ValueError, "grid is empty"),
        # Counted before anything is built: a grid of 10^8 points never returned.
        ({"alpha": {"start": 0, "stop": 1, "num": 1e8}}, ValueError, r"in \[1, 100000\]"),
        ({"alpha": {"start": 0, "stop": 1, "num": 2.5}}, TypeError, "num must be an integer"),
        (
            {"alpha": {"start": 0, "stop": 1, "num": 400}, "beta": list(range(300))},
            ValueError,
            r"120000 points \(400 alpha x 300 beta\), more than the 100000",
        ),
    ],
)
def test_grid_errors(grid, error, match):
    with pytest.raises(error, match=match):
        expand_grid(grid)
    with pytest.raises(error, match=match):
        sweep(TINY, grid, progress=False)


def test_a_whole_float_num_is_a_count():
    assert expand_grid({"alpha": {"start": 0.0, "stop": 1.0, "num": 3.0}}) == {
        "alpha": [0.0, 0.5, 1.0]
    }
    assert len(expand_grid({"alpha": {"start": 0, "stop": 1, "num": 100_000}})["alpha"]) == 10**5


def test_a_sweep_folder_has_one_writer_at_a_time(tmp_path):
    """Two sweeps on one folder deleted each other's temporary files and overwrote each
    other's table.csv. The second now stops at once; the lock goes with the first."""
    import threading

    from lesde.sweep import LOCK_NAME, SweepFolderInUse, sweep_lock

    held, release = threading.Event(), threading.Event()

    def first_sweep():  # holds the folder as a running sweep does
        with sweep_lock(tmp_path):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=first_sweep)
    thread.start()
    try:
        assert held.wait(60)
        with pytest.raises(SweepFolderInUse, match="in use by another sweep of this process"):
            sweep(TINY, {"alpha": [1.0]}, out_dir=tmp_path, progress=False)
        assert not (tmp_path / "table.csv").exists()
        assert (tmp_path / LOCK_NAME).read_text().startswith("pid ")
    finally:
        release.set()
        thread.join()
    res = sweep(TINY, {"alpha": [1.0]}, out_dir=tmp_path, progress=False)
    assert (res.table["status"] == "ok").all() and (tmp_path / "table.csv").exists()
    with sweep_lock(tmp_path), sweep_lock(tmp_path):  # reentrant in its own thread
        sweep(TINY, {"alpha": [1.0]}, out_dir=tmp_path, progress=False)


def test_invalid_point_raises_before_running_and_names_the_point():
    with pytest.raises(ValueError, match=r"grid point 1 \(dt=-0.1\)"):
        sweep(TINY, {"dt": [0.05, -0.1]}, progress=False)


def test_bad_separability_method():
    with pytest.raises(ValueError, match="did you mean 'ncc'"):
        sweep(TINY, {"alpha": [1.0]}, separability=("nc",), progress=False)


# ---------------------------------------------------------------------------- the table
def test_table_layout_order_and_summary():
    res = sweep(
        TINY,
        {"alpha": [2.0, 0.5], "sigma": [0.1, 0.2, 0.3]},
        replicas=2,
        separability=("ncc", "argmax", "lp"),
        progress=False,
    )
    assert isinstance(res, SweepResult) and res.base == TINY
    t = res.table
    assert len(t) == 6 * 2
    # Cartesian product, last key fastest; rows sorted by point then replica.
    assert t["alpha"].tolist() == [2.0] * 6 + [0.5] * 6
    assert t["sigma"].tolist() == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3] * 2
    assert t["point"].tolist() == [i // 2 for i in range(12)]
    assert t["replica"].tolist() == [0, 1] * 6
    assert list(t.columns[:9]) == [
        "point",
        "replica",
        "alpha",
        "sigma",
        "seed",
        "noise_seed",
        "status",
        "message",
        "t_end",
    ]
    for col in (
        "loss",
        "accuracy",
        "clean_accuracy",
        "ncc_accuracy",
        "nc1",
        "nc4",
        "equinorm",
        "equiangularity",
        "etf_distance",
        "separable_ncc",
        "separable_argmax",
        "separable_lp",
        "lp_subsampled",
        "loss_tail_exponent",
    ):
        assert col in t.columns, col
    assert (t["status"] == "ok").all() and (t["message"] == "").all()
    assert np.allclose(t["t_end"], 0.5)
    assert set(t["separable_ncc"].unique()) <= {0.0, 1.0}
    assert (t["lp_subsampled"] == 0.0).all()
    # an error-free NCC rule certifies separability, so the exact LP must agree
    assert (t.loc[t["separable_ncc"] == 1.0, "separable_lp"] == 1.0).all()
    assert [point_seed(TINY.seed, i) for i in range(6)] == t["seed"].iloc[::2].tolist()
    assert t["seed"].nunique() == 6

    s = res.summary()
    assert list(s.index) == list(range(6))
    assert s[["alpha", "sigma"]].values.tolist() == res.points().values.tolist()
    assert (s["replicas"] == 2).all() and (s["replicas_ok"] == 2).all()
    for stat in ("mean", "sem", "median", "q05", "q95", "count"):
        assert f"loss_{stat}" in s.columns
    loss = t.loc[t["point"] == 4, "loss"].to_numpy()
    assert s.loc[4, "loss_mean"] == pytest.approx(loss.mean())
    assert s.loc[4, "loss_sem"] == pytest.approx(loss.std(ddof=1) / math.sqrt(2))
    assert s.loc[4, "loss_q95"] == pytest.approx(np.quantile(loss, 0.95))
    assert (s["loss_count"] == 2).all()
    assert "SweepResult(points=6" in repr(res)


def test_csv_and_parquet(tmp_path):
    res = sweep(TINY, {"alpha": [1.0, 2.0]}, replicas=2, progress=False)
    res.to_csv(tmp_path / "s.csv")
    back = pd.read_csv(tmp_path / "s.csv", keep_default_na=False, na_values=["NaN", ""])
    assert back["seed"].tolist() == res.table["seed"].tolist()
    np.testing.assert_allclose(back["loss"], res.table["loss"])
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install pyarrow"):
            res.to_parquet(tmp_path / "s.parquet")
    else:
        res.to_parquet(tmp_path / "s.parquet")
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), res.table)


# ---------------------------------------------------------------------------- executors
def test_seeds_do_not_depend_on_the_executor():
    grid = {"alpha": [2.0, 0.5], "beta": [0.5, 1.0]}
    tables = []
    for workers in (1, 2):
        with ThreadPoolExecutor(max_workers=workers) as pool:
            tables.append(sweep(TINY, grid, replicas=3, executor=pool, progress=False).table)
    # the default pool (workers x threads <= cores) and a max_workers=1 run agree too
    tables.append(sweep(TINY, grid, replicas=3, progress=False).table)
    tables.append(sweep(TINY, grid, replicas=3, max_workers=1, progress=False).table)
    for other in tables[1:]:
        pd.testing.assert_frame_equal(tables[0], other)


def test_process_pool_runs_plain_data_tasks():
    ctx = multiprocessing.get_context("spawn")
    grid = {"alpha": [2.0, 0.5]}
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        remote = sweep(TINY, grid, replicas=2, executor=pool, progress=False).table
    local = sweep(TINY, grid, replicas=2, progress=False).table
    pd.testing.assert_frame_equal(remote, local)


# ---------------------------------------------------------------------------- failures
def test_overflowing_point_is_marked_and_the_sweep_goes_on():
    # Linear signal: the common mode grows like exp((alpha + (K-1) beta) t / K); with
    # alpha = 300 each Euler step multiplies it by 1 + 100 dt = 6, so it overflows after
    # about 400 steps, well before t_end = 30 (600 steps).
    base = TINY.replace(beta=0.0, t_end=30.0, dt=0.05, record_every=100)
    res = sweep(base, {"alpha": [1.0, 300.0, 0.5]}, replicas=2, progress=False)
    t = res.table
    assert t["status"].tolist() == ["ok", "ok", "nonfinite", "nonfinite", "ok", "ok"]
    bad = t[t["alpha"] == 300.0]
    assert bad["message"].str.contains("non-finite").all()
    assert (bad["t_fail"] < 30.0).all()
    assert bad[["loss", "accuracy", "nc1", "separable_ncc"]].isna().all().all()
    good = t[t["alpha"] != 300.0]
    assert good[["loss", "separable_ncc"]].notna().all().all()
    s = res.summary()
    assert s["replicas_ok"].tolist() == [2, 0, 2]
    assert s.loc[1, "loss_count"] == 0 and math.isnan(s.loc[1, "loss_mean"])


def test_a_point_that_raises_is_kept_as_error(monkeypatch):
    module = sys.modules["lesde.sim.engine"]  # a point runs as lesde.simulate runs it
    real = module.run_engine

    def flaky(cfg, *args, **kwargs):
        if cfg.alpha == 13.0:
            raise RuntimeError("engine refused")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(module, "run_engine", flaky)
    res = sweep(TINY, {"alpha": [1.0, 13.0, 2.0]}, replicas=2, progress=False)
    t = res.table
    assert t["status"].tolist() == ["ok", "ok", "error", "error", "ok", "ok"]
    assert (t.loc[t["status"] == "error", "message"] == "RuntimeError: engine refused").all()
    assert t.loc[t["status"] == "error", "loss"].isna().all()
    assert t.loc[t["status"] == "ok", "loss"].notna().all()


# ---------------------------------------------------------------------------- the physics
def test_phase_transition_in_separability_linear_signal():
    """alpha > beta: separable in nearly all replicas; alpha < beta: in nearly none.

    Linear signal, K = 3, 40 samples per class, zero initial class means, init_scale = 1,
    sigma = 0.5 (docs/model.md section 3). The class contrasts start at about
    init_scale / sqrt(40) ~ 0.16 per coordinate and grow like exp((alpha - beta) t / K);
    the within-class spread is sqrt(init_scale^2 + sigma^2 t), no drift.
    At t_end = 6:
      alpha = 4, beta = 0.5: contrasts grow by exp(3.5 * 6 / 3) = exp(7) ~ 1100, to a few
        hundred, against a spread of sqrt(1 + 1.5) ~ 1.6; a nearest-class-centre error
        would need two of the three random 3-D initial contrasts to lie within ~1% of
        each other, a chance of order 1e-6 per replica.
      alpha = 0.5, beta = 4: contrasts shrink by exp(-7) and are held by the noise fed to
        the class means at about sigma / sqrt(40 * 2 * 3.5 / 3) ~ 0.05, while the spread is
        ~1.6: the three clouds sit on top of each other, so no linear rule can separate
        120 points (the exact LP agrees).
    """
    base = lesde.Config(
        n_classes=3,
        n_per_class=40,
        signal="linear",
        sigma=0.5,
        init_scale=1.0,
        t_end=6.0,
        dt=0.02,
        record_every=300,
        seed=2021,
    )
    res = phase_diagram(
        base, [4.0, 0.5], [0.5, 4.0], replicas=20, progress=False, separability=("ncc", "lp")
    )
    s = res.summary().set_index(["alpha", "beta"])
    assert (s["replicas_ok"] == 20).all()
    above, below = s.loc[(4.0, 0.5)], s.loc[(0.5, 4.0)]
    assert above["separable_ncc_mean"] >= 0.9, above
    assert below["separable_ncc_mean"] <= 0.1, below
    assert above["separable_lp_mean"] >= 0.9 and below["separable_lp_mean"] <= 0.1


def test_label_noise_transition_at_k_minus_1_over_k():
    """Cross-entropy, alpha > beta, K = 3: the class push is proportional to
    (alpha - beta) [(1 - p_err) - p_err / 2], positive below p_err = 2/3 and negative above
    (docs/model.md section 3), so the clean accuracy ends above chance (1/3) at p_err = 0.3 and
    below it at p_err = 0.9. t_end = 5 leaves time for the class means to move ~1-2 units
    along (or against) their label directions, against a spread of about 1.5.
    Observed with these seeds: about 0.68 and 0.14 (standard errors ~0.01).
    """
    base = lesde.Config(
        n_classes=3,
        n_per_class=40,
        signal="cross_entropy",
        alpha=4.0,
        beta=0.5,
        sigma=0.5,
        t_end=5.0,
        dt=0.02,
        record_every=250,
        seed=2021,
    )
    res = label_noise_sweep(base, [0.3, 0.9], replicas=20, progress=False)
    s = res.summary().set_index("label_noise")
    chance = 1.0 / 3.0
    assert s.loc[0.3, "clean_accuracy_mean"] > chance + 0.1, s.loc[0.3]
    assert s.loc[0.9, "clean_accuracy_mean"] < chance - 0.1, s.loc[0.9]


# ---------------------------------------------------------------------------- Ctrl-C
def test_a_point_runs_as_lesde_simulate_runs_it(tmp_path):
    """A point runs through the engine's chunked loop directly (so that a sweep can stop it
    between chunks): its saved result equals lesde.simulate's of the same config, bit for
    bit."""
    res = sweep(TINY, {"alpha": [1.5]}, replicas=2, out_dir=tmp_path, progress=False)
    saved = lesde.load(res.meta["point_files"][0])
    direct = lesde.simulate(saved.config, progress=False)
    assert saved.features.tobytes() == direct.features.tobytes()
    for name, values in direct.metrics.items():
        assert saved.metrics[name].tobytes() == values.tobytes(), name


def test_a_stopped_point_ends_after_its_chunk_and_saves_nothing(tmp_path):
    """The sweep's second Ctrl-C sets the stop event of its points: a running point ends
    after its current chunk of steps (about lesde.sim.engine.CHUNK_SECONDS), returns None and
    leaves no file; a point not yet started does not start."""
    import threading
    import time

    from lesde.sweep.point import run_point

    long_run = TINY.replace(n_per_class=20000, t_end=500.0, record_every=100, threads=1)
    stop = threading.Event()
    out = tmp_path / "point.npz"
    answer = []
    args = (long_run.to_dict(), ("ncc",), 100, str(out), stop)
    worker = threading.Thread(target=lambda: answer.append(run_point(*args)))
    worker.start()
    time.sleep(0.5)
    stop.set()
    stopped = time.perf_counter()
    worker.join(timeout=30)
    assert not worker.is_alive() and answer == [None]
    assert time.perf_counter() - stopped < 5.0  # the whole run takes over a minute
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert run_point(TINY.to_dict(), ("ncc",), 100, str(out), stop) is None
    assert not out.exists()


def test_sweep_interrupted_says_what_is_kept(tmp_path):
    from lesde.sweep import SweepInterrupted

    err = SweepInterrupted(3, 8, tmp_path)
    assert isinstance(err, KeyboardInterrupt)
    assert f"3 of 8 points are kept in '{tmp_path / 'points'}'" in str(err)
    assert "runs the other 5" in str(err)
