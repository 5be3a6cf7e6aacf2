"""Tests of lesde.ensemble (trial ensembles), grouped by what they protect.

- layout: an ensemble is its trials stacked along the replica axis; trial i is exactly
  train_and_record with trial_seed(seed, i), whatever the number of workers
- resuming: a second call trains only the missing trials and leaves the stored ones
  untouched; it refuses other data or settings; load_ensemble reads what is stored
- a folder is one ensemble: every trial file is bound to it (a trial of another ensemble, a
  copied or renamed trial, a second name for a trial are refused), its manifest is
  authenticated (edited, damaged or old manifests are refused, and written anew only for
  the call of the stored trials), FIFOs are refused without blocking, one training writes
  a folder at a time; the start-up lists the folder once, whatever the number of trials
- memory: an ensemble that cannot fit is refused before anything is trained or written
- failures: a worker that dies at any moment ends the call in one line naming the cause
  (a script without a main guard, a trial's exit or full disk, a killed worker under
  ``lesde nn train``: one ``lesde: error:`` line, exit 2), the other workers are stopped,
  finished trials are kept; a killed parent (finished trials are whole, the same call
  resumes); Ctrl-C (finished trials kept and returned, the interrupted one not written)
- bad input: each refusal is one line naming what is wrong

The networks are LeNets on twelve 16 x 16 images trained for a few dozen steps: every
number is deterministic (fixed seeds, one PyTorch thread), so nothing can fail by chance.
Worker processes are started only where a worker's own fate is under test (starting them
costs seconds: each imports PyTorch). A call that could hang runs with a timeout that turns
the hang into a failure.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from faulty_models import faulty_model  # noqa: E402
from interrupting import InterruptOnCall  # noqa: E402
from processes import child_env  # noqa: E402

import lesde  # noqa: E402
from lesde.cli import main  # noqa: E402
from lesde.data import geometric_shapes  # noqa: E402
from lesde.nn import train_and_record  # noqa: E402
from lesde.nn.ensemble import (  # noqa: E402
    LOCK_NAME,
    MANIFEST,
    EnsembleFolderInUse,
    WorkerError,
    _torch_threads,
    default_model,
    load_ensemble,
    read_manifest,
    stored_trials,
    train_ensemble,
    trial_path,
    trial_seed,
)
from lesde.nn.ensemble_manifest import manifest_digest  # noqa: E402
from lesde.sim.engine import InsufficientMemoryError  # noqa: E402

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


def _within(seconds: float, call):
    """``call()``, run in a thread: its result or its exception, or a failure when it has
    not returned after ``seconds`` (a hang becomes a failure, not a stuck test run)."""
    box: dict = {}

    def target():
        try:
            box["value"] = call()
        except BaseException as err:  # handed to the test
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _copy(folder: Path, tmp_path: Path) -> Path:
    """A copy of a stored ensemble to spoil."""
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def _one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text, f"not one line: {text}"
    return text


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
# a folder is one ensemble: bound trials, an authenticated manifest, one writer
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def others(data, tmp_path_factory):
    """Two-trial ensembles that differ from `three` in one thing each."""
    made = {}
    for name, change in [("lr", dict(lr=0.02)), ("seed", dict(seed=6)), ("data", {})]:
        folder = tmp_path_factory.mktemp(f"other-{name}")
        train = geometric_shapes(4, size=SIZE, seed=4) if name == "data" else data
        kw = dict(TINY, seed=5) | change
        train_ensemble(train, trials=2, folder=folder, workers=1, progress=False, **kw)
        made[name] = folder
    return made


def _resume(data, folder, trials=4):
    return train_ensemble(data, trials=trials, folder=folder, workers=1, seed=5,
                          progress=False, **TINY)  # fmt: skip


@pytest.mark.parametrize(
    "other, words",
    [
        ("lr", r"a trial of another ensemble \(its lr = 0.02, the ensemble's is 0.05\)"),
        ("seed", r"a trial of another ensemble \(its seed = 6, the ensemble's is 5\)"),
        ("data", "a trial trained on other data"),
    ],
)
def test_a_trial_of_another_ensemble_is_refused(three, others, data, tmp_path, other, words):
    """Each trial file carries the digest of its ensemble's settings and data: one put in
    the place of trial 1 is refused by load_ensemble (and so by `lesde nn paper`) and by a
    resume, which then trains nothing."""
    folder = _copy(three[1], tmp_path)
    shutil.copyfile(trial_path(others[other], 1), trial_path(folder, 1))
    for call in (lambda: load_ensemble(folder), lambda: _resume(data, folder)):
        with pytest.raises(ValueError, match=words) as err:
            call()
        assert "trial-00001.npz" in _one_line(err) and "move it out of" in str(err.value)
    assert stored_trials(folder) == [0, 1, 2], "a refused resume trained trials"


@pytest.mark.parametrize("move", [shutil.copyfile, os.replace], ids=["copied", "renamed"])
def test_a_copied_or_renamed_trial_does_not_count_twice(three, data, tmp_path, move):
    """The trial index is read from inside the file, and the name must agree."""
    folder = _copy(three[1], tmp_path)
    move(trial_path(folder, 1), trial_path(folder, 3))
    words = "trial-00003.npz: holds trial 1 but its name says trial 3"
    calls = [lambda: load_ensemble(folder), lambda: load_ensemble(folder, trials=[0, 3])]
    for call in [*calls, lambda: _resume(data, folder)]:
        with pytest.raises(ValueError, match=words) as err:
            call()
        _one_line(err)
    assert stored_trials(folder) == ([0, 1, 2, 3] if move is shutil.copyfile else [0, 2, 3])


def test_a_second_name_for_a_trial_is_refused(three, tmp_path):
    folder = _copy(three[1], tmp_path)
    shutil.copyfile(trial_path(folder, 1), folder / "trial-000001.npz")
    for call in (lambda: stored_trials(folder), lambda: load_ensemble(folder)):
        with pytest.raises(ValueError, match="trial-000001.npz: not a name lesde gives"):
            call()
    _, folder = three
    with pytest.raises(ValueError, match=r"trials \[0\] are asked for more than once"):
        load_ensemble(folder, trials=[0, 2, 0])


def _edit(folder: Path, change, digest: bool = False) -> None:
    """Change ensemble.json with ``change(manifest)``; ``digest``: and recompute its sha256,
    as a forger would (then the field checks must catch what is wrong)."""
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    change(manifest)
    if digest and isinstance(manifest, dict):
        manifest["sha256"] = manifest_digest({k: v for k, v in manifest.items() if k != "sha256"})
    path.write_text(json.dumps(manifest))


def test_an_edited_manifest_is_refused_until_written_anew(three, data, tmp_path):
    """ensemble.json holds a SHA-256 over its contents: an edit (here lr, to resume with
    other settings) is refused everywhere. The way out the message names: remove it and run
    the call of the stored trials, which writes it anew; another call cannot."""
    folder = _copy(three[1], tmp_path)
    original = (folder / MANIFEST).read_text()
    _edit(folder, lambda m: m["settings"].update(lr=0.01))
    edited = dict(TINY, lr=0.01)
    calls = [lambda: read_manifest(folder), lambda: load_ensemble(folder)]
    calls.append(lambda: train_ensemble(data, trials=4, folder=folder, workers=1, seed=5,
                                        progress=False, **edited))  # fmt: skip
    for call in calls:
        with pytest.raises(ValueError, match="changed after lesde wrote it") as err:
            call()
        assert "remove it and run the training call again" in _one_line(err)
    (folder / MANIFEST).unlink()
    with pytest.raises(ValueError, match="holds trial files but no ensemble.json") as err:
        train_ensemble(data, trials=3, folder=folder, workers=1, seed=5, progress=False,
                       **edited)  # fmt: skip
    assert "its lr = 0.05, the ensemble's is 0.01" in _one_line(err)
    assert not (folder / MANIFEST).exists(), "a manifest was written for foreign trials"
    mtimes = {i: trial_path(folder, i).stat().st_mtime_ns for i in range(3)}
    res = _resume(data, folder, trials=3)
    assert res.replicas == 3 and (folder / MANIFEST).read_text() == original
    assert {i: trial_path(folder, i).stat().st_mtime_ns for i in range(3)} == mtimes


@pytest.mark.parametrize(
    "spoil, words",
    [
        (lambda p: p.write_text('{"kind": "lesde.nn.Ensemble", '), "not JSON"),
        (lambda p: p.write_text("[1, 2]"), r"not a lesde ensemble manifest \(a JSON list\)"),
        (lambda p: p.write_bytes(b"\xff\xfe{}"), "not JSON"),
        (lambda p: _edit(p.parent, lambda m: m.pop("settings")), "missing settings"),
        (lambda p: _edit(p.parent, lambda m: m.update(settings=5), digest=True),
         r"settings should hold \['batch_size'"),
        (lambda p: _edit(p.parent, lambda m: m["settings"].update(steps="24"), digest=True),
         "settings.steps should be int, got '24'"),
        (lambda p: _edit(p.parent, lambda m: m["data"].update(samples=True), digest=True),
         "data.samples should be int, got True"),
        (lambda p: _edit(p.parent, lambda m: m.update(validation=[]), digest=True),
         "validation should hold"),
        (lambda p: _edit(p.parent, lambda m: m.update(format_version=1)),
         "format version 1 cannot be read by this lesde .it reads version 2"),
        (lambda p: _edit(p.parent, lambda m: m.update(kind="other")), "kind 'other'"),
    ],
)  # fmt: skip
def test_a_damaged_manifest_is_one_line_everywhere(three, tmp_path, capsys, spoil, words):
    """Bad JSON, wrong types, missing keys, an old format: one ValueError line from the API,
    one `lesde: error:` line and exit 1 from `lesde nn paper` and `lesde nn train`."""
    folder = _copy(three[1], tmp_path)
    spoil(folder / MANIFEST)
    with pytest.raises(ValueError, match=words) as err:
        read_manifest(folder)
    _one_line(err)
    train = ["--trials", "3", "--steps", "24", "--n-per-class", "3", "--workers", "1", "--quiet"]
    for argv in (["nn", "paper", str(folder)], ["nn", "train", str(folder), *train]):
        assert main(argv) == 1, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lesde: error: "), (argv, lines)
        assert MANIFEST in lines[0], lines


@pytest.mark.parametrize("name", [MANIFEST, "trial-00001.npz"])
def test_fifo_inputs_are_refused_without_blocking(three, data, tmp_path, name):
    folder = _copy(three[1], tmp_path)
    (folder / name).unlink()
    os.mkfifo(folder / name)
    for call in (lambda: load_ensemble(folder), lambda: _resume(data, folder, trials=3)):
        with pytest.raises(ValueError, match=f"{name}: a FIFO, not a regular file") as err:
            _within(30, call)
        _one_line(err)


def test_one_training_writes_a_folder_at_a_time(three, data, tmp_path, capsys):
    """Another process holds the folder: a second training is refused at once, naming the
    holder, from the API and from `lesde nn train`; once the holder is gone it trains."""
    folder = _copy(three[1], tmp_path)
    hold = "import sys, time\nfrom lesde.nn.ensemble import ensemble_lock\n"
    hold += "with ensemble_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(folder)], env=child_env(),
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        words = rf"in use by another lesde training \(pid {holder.pid} on "
        with pytest.raises(EnsembleFolderInUse, match=words) as err:
            _resume(data, folder)
        _one_line(err)
        argv = ["nn", "train", str(folder), "--trials", "4", "--n-per-class", "3", "--quiet"]
        assert main(argv) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and f"pid {holder.pid}" in lines[0], lines
        assert stored_trials(folder) == [0, 1, 2], "a refused training wrote trials"
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert _resume(data, folder).replicas == 4
    assert not (folder / LOCK_NAME).exists() and stored_trials(folder) == [0, 1, 2, 3]


def test_start_up_lists_the_folder_once_whatever_the_trials(three, data, tmp_path,
                                                            monkeypatch):  # fmt: skip
    """A resume listed (globbed) the folder once per trial to clean up temporary files:
    O(trials^2), 79 s for 10,000 trials. Now one listing at the start, one at the end."""
    folder = _copy(three[1], tmp_path)
    (folder / f".{trial_path(folder, 2).name}.killed.tmp").write_bytes(b"half a file")
    listed = []
    scandir = os.scandir

    def counting(path="."):
        if os.path.realpath(path) == os.path.realpath(folder):
            listed.append(path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counting)
    assert _resume(data, folder, trials=3).replicas == 3
    assert len(listed) <= 2, f"{len(listed)} listings of a folder of 3 trials"
    assert not list(folder.glob(".*.tmp")), "the temporary file was left behind"


def _never(seed):
    raise AssertionError("a trial was trained: the refusal came too late")


def test_an_ensemble_that_cannot_fit_is_refused_before_anything(data, tmp_path, monkeypatch,
                                                                capsys):  # fmt: skip
    """Counted from the settings: the workers' records while training, the trials stacked at
    the end; refused before the folder is touched (InsufficientMemoryError; `lesde nn
    train`: one line, exit 2, as `lesde run` does). `lesde nn paper` refuses to stack more
    trials than fit."""
    monkeypatch.setattr(lesde.io.memory, "available_memory", lambda: 2**30)
    folder = tmp_path / "big"
    kw = dict(TINY, folder=folder, model=_never, workers=1, progress=False)
    with pytest.raises(InsufficientMemoryError, match="100 trials of 0.07 GiB") as err:
        train_ensemble(data, trials=100, **(kw | dict(steps=10**6)))  # each fits, not all
    assert "GiB of memory is available" in _one_line(err)
    with pytest.raises(InsufficientMemoryError, match="1 trial of .* GiB of records") as err:
        train_ensemble(data, trials=1, **(kw | dict(steps=10**10)))
    assert "record_stepped=False" in _one_line(err)
    assert not folder.exists(), "a refused ensemble touched its folder"
    argv = ["nn", "train", str(folder), "--trials", "2", "--steps", str(10**10)]
    assert main([*argv, "--n-per-class", "3", "--workers", "1", "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "lesde: error: this training needs about" in lines[0], lines


def test_loading_more_trials_than_fit_is_refused(three, monkeypatch, capsys):
    _, folder = three
    one_file = max(trial_path(folder, i).stat().st_size for i in range(3))
    monkeypatch.setattr(lesde.io.memory, "available_memory", lambda: one_file)  # each one fits
    with pytest.raises(InsufficientMemoryError, match="3 trials read back and stacked"):
        load_ensemble(folder)
    assert main(["nn", "paper", str(folder)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "3 trials read back and stacked" in lines[0], lines


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
        from lesde.nn.ensemble import train_ensemble
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


def test_killed_worker_ends_nn_train_in_one_line_and_the_same_command_resumes(tmp_path):
    """SIGKILL a worker of `lesde nn train` mid-ensemble: one `lesde: error:` line naming
    the worker, its signal and its trial, exit 2 (the training failed), the other worker
    stopped, finished trials kept; the same command resumes with the trials an
    uninterrupted ensemble has."""
    folder = tmp_path / "killed-worker"
    argv = ["nn", "train", str(folder), "--trials", "6", "--steps", str(KILL_STEPS)]
    argv += ["--lr", "0.05", "--record-every", "50", "--n-per-class", "4", "--seed", "5"]
    argv += ["--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "lesde", *argv, "--workers", "2"],
                            env=child_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert _wait(lambda: len(stored_trials(folder)) >= 1, 120), "no trial finished"
        workers = _children(proc.pid)
        assert len(workers) == 2, f"expected 2 worker processes, found {workers}"
        os.kill(workers[0], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"lesde: error: a worker (pid {workers[0]}) was killed by SIGKILL while training " \
        "trial" in lines[0] and "the same call resumes" in lines[0], lines  # fmt: skip
    assert _wait(lambda: not _alive(workers[1]), 15), "the other worker was left running"
    kept = stored_trials(folder)
    assert 1 <= len(kept) < 6, f"stored trials after the kill: {kept}"
    mtimes = {i: trial_path(folder, i).stat().st_mtime_ns for i in kept}
    assert main([*argv, "--workers", "1"]) == 0
    res = load_ensemble(folder, trials=6)
    assert res.ok and stored_trials(folder) == list(range(6))
    assert all(trial_path(folder, i).stat().st_mtime_ns == m for i, m in mtimes.items())
    # the resumed trials are the ones an uninterrupted ensemble has
    data, seed = geometric_shapes(4, seed=0), trial_seed(5, 5)
    with _torch_threads(1):  # as in the workers
        alone = train_and_record(default_model(data)(seed=seed), data, lr=0.05,
                                 steps=KILL_STEPS, record_every=50, seed=seed,
                                 progress=False)  # fmt: skip
    np.testing.assert_array_equal(res.class_means[5], alone.class_means[0], err_msg="trial 5")


def test_a_script_without_main_guard_stops_with_one_line(tmp_path):
    """Each spawned worker imports the main script; without `if __name__ == "__main__":`
    it called train_ensemble again and died, while the parent blocked for ever writing a
    few MB of data to its pipe. Now the workers stop at once and the call says why."""
    folder = tmp_path / "no-guard"
    script = tmp_path / "no_guard.py"
    script.write_text(textwrap.dedent(f"""
        from lesde.data import geometric_shapes
        from lesde.nn.ensemble import train_ensemble
        data = geometric_shapes(30, size=32, seed=3)  # 368 KB: more than a pipe holds
        train_ensemble(data, trials=2, lr=0.05, steps=4, folder={str(folder)!r}, workers=2,
                       progress=False)
        """))  # fmt: skip
    try:
        proc = subprocess.run([sys.executable, str(script)], env=child_env(OMP_NUM_THREADS="1"),
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("train_ensemble without a main guard hung")
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("lesde.nn.ensemble.WorkerError: the ensemble's worker processes stopped"
                           f" at start-up: {script} calls train_ensemble"), last  # fmt: skip
    assert 'put that call under `if __name__ == "__main__":`' in last, last
    assert proc.stderr.count("Traceback") == 1, "the workers printed tracebacks too"
    assert stored_trials(folder) == []


@pytest.mark.parametrize(
    "fault, exc, words",
    [
        ("exit", WorkerError, r"a worker \(pid \d+\) exited with code 0 while training trial 1"),
        ("memory", WorkerError, r"trial 1 failed in its worker \(MemoryError: \(no message\)\)"),
        ("enospc", OSError, r"No space left on device"),
    ],
)
def test_a_worker_that_fails_mid_trial_ends_the_call_in_one_line(data, tmp_path, fault, exc,
                                                                 words):  # fmt: skip
    """Trial 1 exits silently (code 0), runs out of memory, or finds the disk full when it
    writes its file, in its worker: the call ends at once with one line (a full disk as the
    OSError it is, naming the trial file), the other worker is stopped, nothing hangs."""
    folder = tmp_path / fault
    model = functools.partial(faulty_model, lenet=default_model(data), fault=fault,
                              at_seed=trial_seed(5, 1), step=1)  # fmt: skip
    with pytest.raises(exc, match=words) as err:
        _within(120, lambda: train_ensemble(data, trials=2, lr=0.05, steps=8, folder=folder,
                                            model=model, workers=2, seed=5,
                                            progress=False))  # fmt: skip
    text = _one_line(err)
    if fault == "enospc":
        assert err.value.errno == errno.ENOSPC and err.value.filename == str(trial_path(folder, 1))
    else:
        assert "the same call resumes" in text, text
    assert 1 not in stored_trials(folder)
    assert not _children(os.getpid()), "a worker was left running"


def test_a_full_disk_ends_nn_train_in_one_line(tmp_path, monkeypatch, capsys):
    """`lesde nn train` on a full disk (a writer that fails as one does): one line naming
    the trial file, exit 1 (a file error), no temporary file left."""
    from faulty_models import _no_space

    monkeypatch.setattr(lesde.io.atomic, "atomic_savez", _no_space)
    folder = tmp_path / "full"
    argv = ["nn", "train", str(folder), "--trials", "2", "--steps", "8", "--n-per-class", "3"]
    assert main([*argv, "--workers", "1", "--quiet"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    expected = f"lesde: error: {trial_path(folder, 0)}: No space left on device"
    assert lines == [expected], lines
    assert stored_trials(folder) == [] and not list(folder.glob(".*.tmp"))
    # full from the start: the manifest is the file that does not fit
    monkeypatch.setattr(lesde.io.atomic, "atomic_write_bytes", _no_space)
    assert main([*argv[:2], str(tmp_path / "empty"), *argv[3:], "--workers", "1"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"lesde: error: {tmp_path / 'empty' / MANIFEST}: No space left on device"]


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
    from lesde.analysis.estimate import fit

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
