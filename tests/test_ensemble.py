"""Tests of lesde.ensemble (trial ensembles), grouped by what they protect.

- layout: an ensemble is its trials stacked along the replica axis; trial i is exactly
  train_and_record with trial_seed(seed, i), whatever the number of workers
- resuming: a second call trains only the missing trials and leaves the stored ones
  untouched; it refuses other data or settings; load_ensemble reads what is stored
- failures: a killed worker (one-line RuntimeError, the other worker stopped, finished
  trials kept), a killed parent (finished trials are whole, the same call resumes),
  Ctrl-C (finished trials kept and returned, the interrupted one not written)
- bad input: each refusal is one line naming what is wrong

The networks are LeNets on twelve 16 x 16 images trained for a few dozen steps: every
number is deterministic (fixed seeds, one PyTorch thread), so nothing can fail by chance.
Worker processes are started once in this file (starting them costs seconds: each imports
PyTorch), to kill one of them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from interrupting import InterruptOnCall  # noqa: E402
from processes import child_env  # noqa: E402

import lesde  # noqa: E402
from lesde.data import geometric_shapes  # noqa: E402
from lesde.ensemble import (  # noqa: E402
    MANIFEST,
    _torch_threads,
    default_model,
    load_ensemble,
    stored_trials,
    train_ensemble,
    trial_path,
    trial_seed,
)
from lesde.nn import train_and_record  # noqa: E402

SIZE = 16
KILL_STEPS = 150  # a trial of the kill tests: ~0.3 s, so a kill lands mid-ensemble
TINY = dict(lr=0.05, steps=24, record_every=6, impact_every=12,
            impact_options=dict(inputs_per_class=2, targets_per_class=2, n_boot=20))  # fmt: skip


@pytest.fixture(scope="module")
def data():
    return geometric_shapes(4, size=SIZE, seed=3)


@pytest.fixture(scope="module")
def three(data, tmp_path_factory):
    """Three trials trained here (one worker), and their folder."""
    folder = tmp_path_factory.mktemp("three")
    res = train_ensemble(data, trials=3, folder=folder, workers=1, seed=5, progress=False, **TINY)
    return res, folder


def _children(pid: int) -> list[int]:
    """Worker processes of ``pid`` (multiprocessing's spawned children)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            try:
                cmd = Path(f"/proc/{kid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmd:
                out.append(kid)
    return out


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited


def _wait(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# --------------------------------------------------------------------------------------
# layout
# --------------------------------------------------------------------------------------


def test_trials_stack_like_a_result_with_replicas(three, data):
    res, _ = three
    R, T, K, steps = 3, 5, 3, TINY["steps"]
    expected = {
        "class_means": (R, T, K, K),
        "label_means": (R, T, K, K),
        "features": (R, len(data), K),
        "labels": (R, len(data)),
        "status": (R,),
        "stepped_indices": (R, steps),
        "stepped_logits": (R, steps, K),
    }
    for name, shape in expected.items():
        assert getattr(res, name).shape == shape, f"{name}: {getattr(res, name).shape}"
    assert all(v.shape == (R, T) for v in res.metrics.values()), "metrics are (R, T)"
    assert res.impact.alpha_hat.shape == (R, 3) and res.impact.matrices.shape == (R, 3, K, K)
    assert res.logits is None, "an ensemble keeps class means, not every logit"
    assert res.ok and res.replicas == R and res.final("loss").shape == (R,), f"{res!r}"
    assert [m["trial"] for m in res.meta["trials"]] == [0, 1, 2], res.meta["trials"]
    assert res.meta["ensemble"]["seed"] == 5 and res.meta["data_sha256"], res.meta


def test_trial_i_is_train_and_record_with_its_own_seed(three, data):
    """Each trial's numbers depend on (ensemble seed, trial index) and the PyTorch thread
    count only (float32 reductions split over threads round differently), so a trial run
    alone with the workers' one thread reproduces it bit for bit."""
    res, _ = three
    seeds = [trial_seed(5, i) for i in range(3)]
    assert len(set(seeds)) == 3, f"trial seeds collide: {seeds}"
    with _torch_threads(1):  # as in the workers (train_ensemble's default threads=1)
        alone_runs = {
            i: train_and_record(
                default_model(data)(seed=seeds[i]),
                data,
                seed=seeds[i],
                record_stepped=True,
                progress=False,
                **TINY,
            )
            for i in (0, 2)
        }
    for i, alone in alone_runs.items():
        np.testing.assert_array_equal(res.class_means[i], alone.class_means[0], err_msg=f"{i}")
        np.testing.assert_array_equal(
            res.stepped_logits[i], alone.stepped_logits[0], err_msg=f"stepped logits {i}"
        )
        np.testing.assert_array_equal(
            res.impact.alpha_hat[i], alone.impact.alpha_hat[0], err_msg=f"impact {i}"
        )
    assert not np.array_equal(res.class_means[0], res.class_means[1]), "trials are identical"


def test_select_and_save_load_round_trip(three, tmp_path):
    res, _ = three
    sub = res.select([2, 0])
    np.testing.assert_array_equal(sub.class_means, res.class_means[[2, 0]], err_msg="select")
    assert [m["trial"] for m in sub.meta["trials"]] == [2, 0], "meta follows the selection"
    res.save(tmp_path / "ensemble.npz")
    back = lesde.nn.load_training(tmp_path / "ensemble.npz")
    for name in ("class_means", "stepped_indices", "stepped_logits", "labels", "features"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name), err_msg=name)
    np.testing.assert_array_equal(back.impact.ratio_ci, res.impact.ratio_ci, err_msg="impact")
    assert back.meta == json.loads(json.dumps(res.meta)), "meta changed in the file"


# --------------------------------------------------------------------------------------
# resuming and refusals
# --------------------------------------------------------------------------------------


def test_resume_trains_only_the_missing_trials(three, data, tmp_path):
    res, _ = three
    folder = tmp_path / "grow"
    train_ensemble(data, trials=2, folder=folder, workers=1, seed=5, progress=False, **TINY)
    before = {i: trial_path(folder, i).stat().st_mtime_ns for i in range(2)}
    grown = train_ensemble(data, trials=3, folder=folder, workers=1, seed=5, progress=False,
                           **TINY)  # fmt: skip
    assert stored_trials(folder) == [0, 1, 2], stored_trials(folder)
    for i, mtime in before.items():
        assert trial_path(folder, i).stat().st_mtime_ns == mtime, f"trial {i} was rewritten"
    np.testing.assert_array_equal(grown.class_means, res.class_means, err_msg="grown != fresh")
    again = load_ensemble(folder, trials=3)
    np.testing.assert_array_equal(again.class_means, res.class_means, err_msg="load_ensemble")
    assert load_ensemble(folder, trials=[2]).meta["trials"][0]["trial"] == 2, "by index"


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(lr=0.01), "lr = 0.05; this call asks for 0.01"),
        (dict(steps=30), "steps = 24; this call asks for 30"),
        (dict(seed=6), "seed = 5; this call asks for 6"),
        (dict(label_noise=0.2), "label_noise"),
        (dict(data_seed=4), "trained on other data"),
    ],
)
def test_resume_refuses_other_data_or_settings(three, change, words):
    _, folder = three
    change = dict(change)
    data = geometric_shapes(4, size=SIZE, seed=change.pop("data_seed", 3))
    kw = dict(TINY, seed=5) | change
    with pytest.raises(ValueError, match=words) as err:
        train_ensemble(data, trials=4, folder=folder, workers=1, progress=False, **kw)
    assert "\n" not in str(err.value), "not a one-line message"
    assert stored_trials(folder) == [0, 1, 2], "a refused call wrote trials"


def test_load_more_trials_than_stored_is_refused(three):
    _, folder = three
    with pytest.raises(ValueError, match="5 trials asked for, 3 stored .trials 0-2.") as err:
        load_ensemble(folder, trials=5)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"trials \[7\] are not stored"):
        load_ensemble(folder, trials=[0, 7])


@pytest.mark.parametrize(
    "kw, exc, words",
    [
        (dict(trials=0), ValueError, "trials"),
        (dict(trials=-2), ValueError, "trials"),
        (dict(trials=1.5), TypeError, "trials"),
        (dict(workers=0), ValueError, "workers"),
        (dict(threads=0), ValueError, "threads"),
        (dict(workers=64, threads=64), ValueError, "exceeds the .* cores"),
        (dict(batch_size=2), ValueError, "record_stepped needs batch_size = 1"),
        (dict(model="LeNet"), TypeError, "model must be a callable"),
        (dict(lr=0.0), ValueError, "lr"),
    ],
)
def test_bad_input_is_refused(data, tmp_path, kw, exc, words):
    args = dict(TINY, trials=2, folder=tmp_path / "x", workers=1, progress=False) | kw
    with pytest.raises(exc, match=words):
        train_ensemble(data, **args)
    assert not stored_trials(tmp_path / "x") if (tmp_path / "x").exists() else True


def test_folder_without_manifest_is_refused(data, tmp_path):
    with pytest.raises(ValueError, match="not a lesde ensemble folder"):
        load_ensemble(tmp_path)
    (tmp_path / "trial-00000.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=f"holds trial files but no {MANIFEST}"):
        train_ensemble(data, trials=1, folder=tmp_path, workers=1, progress=False, **TINY)


# --------------------------------------------------------------------------------------
# failures: Ctrl-C, a killed worker, a killed parent
# --------------------------------------------------------------------------------------


def test_ctrl_c_keeps_finished_trials_and_resumes(three, data, tmp_path):
    res, _ = three
    lenet = default_model(data)
    interrupt_at = trial_seed(5, 1)  # trial 1 is interrupted in its 10th step

    def model(seed):
        net = lenet(seed=seed)
        return InterruptOnCall(net, 10) if seed == interrupt_at else net

    folder = tmp_path / "ctrl-c"
    part = train_ensemble(data, trials=3, folder=folder, model=model, workers=1, seed=5,
                          progress=False, **TINY)  # fmt: skip
    assert part.interrupted and part.replicas == 1, f"{part!r}"
    assert stored_trials(folder) == [0], "the interrupted trial (or a later one) was written"
    with pytest.raises(ValueError, match="model = "):  # another factory: refused
        train_ensemble(data, trials=3, folder=folder, workers=1, seed=5, progress=False, **TINY)


def _script(folder: Path, trials: int, workers: int) -> str:
    return textwrap.dedent(
        f"""
        from lesde.data import geometric_shapes
        from lesde.ensemble import train_ensemble
        if __name__ == "__main__":
            train_ensemble(geometric_shapes(4, size={SIZE}, seed=3), trials={trials},
                           lr=0.05, steps={KILL_STEPS}, record_every=50, folder={str(folder)!r},
                           workers={workers}, seed=5, progress=False)
        """
    )


def _start(tmp_path: Path, folder: Path, trials: int, workers: int):
    script = tmp_path / "train.py"
    script.write_text(_script(folder, trials, workers))
    return subprocess.Popen([sys.executable, str(script)], env=child_env(OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_killed_worker_reports_and_the_same_call_resumes(data, tmp_path):
    folder = tmp_path / "killed-worker"
    proc = _start(tmp_path, folder, trials=6, workers=2)
    try:
        assert _wait(lambda: len(stored_trials(folder)) >= 1, 120), "no trial finished"
        workers = _children(proc.pid)
        assert len(workers) == 2, f"expected 2 worker processes, found {workers}"
        os.kill(workers[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, "the parent did not notice its dead worker"
    last = err.strip().splitlines()[-1]
    assert "RuntimeError: a worker (pid" in last and "the same call resumes" in last, err
    assert _wait(lambda: not _alive(workers[1]), 15), "the other worker was left running"
    kept = stored_trials(folder)
    assert 1 <= len(kept) < 6, f"stored trials after the kill: {kept}"
    mtimes = {i: trial_path(folder, i).stat().st_mtime_ns for i in kept}
    res = train_ensemble(data, trials=6, lr=0.05, steps=KILL_STEPS, record_every=50,
                         folder=folder, workers=1, seed=5, progress=False)  # fmt: skip
    assert res.ok and res.replicas == 6 and stored_trials(folder) == list(range(6))
    assert all(trial_path(folder, i).stat().st_mtime_ns == m for i, m in mtimes.items())
    # the resumed trials are the ones an uninterrupted ensemble has
    seed = trial_seed(5, 5)
    alone = train_and_record(default_model(data)(seed=seed), data, lr=0.05, steps=KILL_STEPS,
                             record_every=50, seed=seed, progress=False)  # fmt: skip
    np.testing.assert_array_equal(res.class_means[5], alone.class_means[0], err_msg="trial 5")


def test_killed_parent_leaves_whole_trials_and_the_same_call_resumes(data, tmp_path):
    """The parent trains in-process here (no worker start to pay for): SIGKILL it after a
    trial is written; every stored trial loads, stale temporary files are cleaned up on
    resume, and the resumed ensemble is complete."""
    folder = tmp_path / "killed-parent"
    proc = _start(tmp_path, folder, trials=5, workers=1)
    try:
        assert _wait(lambda: len(stored_trials(folder)) >= 1, 120), "no trial finished"
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = stored_trials(folder)
    assert 1 <= len(kept) < 5, f"stored trials after the kill: {kept}"
    for i in kept:  # every stored trial is whole: written atomically
        assert lesde.nn.load_training(trial_path(folder, i)).ok, f"trial {i} is damaged"
    (folder / f".{trial_path(folder, 4).name}.killed.tmp").write_bytes(b"half a file")
    res = train_ensemble(data, trials=5, lr=0.05, steps=KILL_STEPS, record_every=50,
                         folder=folder, workers=1, seed=5, progress=False)  # fmt: skip
    assert res.ok and res.replicas == 5, f"{res!r}"
    assert not list(folder.glob(".*.tmp")), "temporary files left behind"


def test_plots_and_estimators_take_an_ensemble(three):
    """As for a simulation with replicas: metric_over_time draws the median and a band over
    trials, impact_over_training bands across trials, fit takes one replica."""
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    from lesde import plot
    from lesde.estimate import fit

    res, _ = three
    try:
        fig = plot.metric_over_time(res, names=("loss", "accuracy"))
        assert "median over 3 replicas" in fig.get_suptitle(), fig.get_suptitle()
        fig = plot.impact_over_training(res.impact)
        assert "median over 3 trials" in fig.axes[0].get_title(), fig.axes[0].get_title()
        np.testing.assert_allclose(
            fig.axes[0].get_lines()[0].get_ydata(), np.median(res.impact.alpha_hat, axis=0)
        )
    finally:
        plt.close("all")
    est = fit(res, replica=2, model="I")
    np.testing.assert_array_equal(est.class_means, res.class_means[2], err_msg="replica 2")
