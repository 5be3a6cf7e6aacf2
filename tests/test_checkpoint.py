"""Checkpoint and resume: a killed run finishes bit-identically; damaged files are refused."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from processes import child_env

import lesde
from lesde.sim import checkpoint as ck

RESULT_ARRAYS = (
    "times",
    "class_means",
    "label_means",
    "sigma_w",
    "features",
    "classes",
    "labels",
    "sample_indices",
    "sample_trajectories",
    "status",
    "fail_step",
)


def assert_bit_identical(a, b, what=""):
    """Same dtype, shape and bytes (NaN payloads and signed zeros included) everywhere."""
    for name in RESULT_ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}: {name} dtype/shape differ"
        assert x.tobytes() == y.tobytes(), f"{what}: {name} differs"
    assert sorted(a.metrics) == sorted(b.metrics), f"{what}: metric names differ"
    for name in a.metrics:
        assert a.metrics[name].tobytes() == b.metrics[name].tobytes(), f"{what}: metric {name}"
    assert a.steps_done == b.steps_done and a.config == b.config


# ---------------------------------------------------------------------- kill -9 and resume
# Each run lasts about 1.5 s on an idle core (threads=1: the result does not depend on it,
# and one thread is fastest when cores are shared); the child writes a checkpoint every
# other record and is killed at a seeded random moment, 0-0.3 s after the first appears.
KILL_CASES = {
    "sde-euler": dict(
        process="sde", scheme="euler_maruyama", n_per_class=10_000, steps=700, record_every=5
    ),
    "sde-heun": dict(process="sde", scheme="heun", n_per_class=10_000, steps=450, record_every=5),
    "sgd": dict(process="sgd", batch_size=16, n_per_class=20_000, steps=1500, record_every=10),
}
COMMON = dict(
    n_classes=3,
    signal="cross_entropy",
    alpha=1.0,
    beta=0.3,
    sigma=0.5,
    dt=0.002,
    label_noise=0.1,
    record_samples=5,
    seed=2021,
    threads=1,
)

CHILD = textwrap.dedent("""
    import sys
    import lesde
    cfg = lesde.Config.from_toml(open(sys.argv[1]).read())
    lesde.simulate(cfg, checkpoint=sys.argv[2], checkpoint_every=int(sys.argv[3]),
                   progress=False)
""")


@pytest.mark.parametrize("case", sorted(KILL_CASES))
def test_sigkill_then_resume_is_bit_identical(case, tmp_path):
    cfg = lesde.Config(**COMMON, **KILL_CASES[case])
    (tmp_path / "cfg.toml").write_text(cfg.to_toml())
    (tmp_path / "child.py").write_text(CHILD)
    path = tmp_path / "run.ckpt"
    every = 2 * cfg.record_interval
    delay = random.Random(f"kill-{case}").uniform(0.0, 0.3)  # seeded: the same every run

    child = subprocess.Popen(
        [
            sys.executable,
            str(tmp_path / "child.py"),
            str(tmp_path / "cfg.toml"),
            str(path),
            str(every),
        ],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert path.exists(), f"no checkpoint appeared; child said: {child.communicate()[0]!r}"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        out = child.communicate()[0]
    assert child.returncode == -signal.SIGKILL, (
        f"the child was not killed mid-run (exit {child.returncode}, output {out!r}); "
        "lengthen the run"
    )

    saved = ck.read_checkpoint(path)
    assert 0 < saved.step < cfg.n_steps
    resumed = lesde.resume(path, progress=False)
    assert resumed.meta["resumed_from_step"] == saved.step
    reference = lesde.simulate(cfg, progress=False)
    assert_bit_identical(resumed, reference, f"{case}, killed after step {saved.step}")
    assert ck.read_checkpoint(path).step == cfg.n_steps  # it kept checkpointing to the end
    assert not list(tmp_path.glob(".run.ckpt.*.tmp")), "a temporary file was left behind"


# ---------------------------------------------------------------------- in-process resume
def _interrupt_after(monkeypatch, n_writes):
    """Make the n-th checkpoint write end the run as a Ctrl-C just after it would."""
    original, count = ck.Checkpointer.write, [0]
    steps = []

    def write(self, step, arrays, wall_seconds):
        original(self, step, arrays, wall_seconds)
        steps.append(step)
        count[0] += 1
        if count[0] == n_writes:
            raise KeyboardInterrupt

    monkeypatch.setattr(ck.Checkpointer, "write", write)
    return steps


SMALL = dict(
    n_classes=3,
    n_per_class=200,
    steps=120,
    record_every=6,
    sigma=0.4,
    label_noise=0.2,
    record_samples=4,
    seed=5,
    threads=1,
)


@pytest.mark.parametrize(
    "extra",
    [
        dict(process="sde", replicas=4, threads=2),  # replica-parallel layout
        dict(process="sde", scheme="heun", dtype="float32"),
        dict(process="sgd", batch_size=4, replicas=3),
        dict(
            process="sde",
            signal="linear",
            alpha=1e4,
            beta=0.0,
            replicas=3,
            n_per_class=None,
            class_sizes=(50, 200, 350),
        ),  # its records overflow at step 90, after the interrupt at 72
    ],
)
def test_interrupted_run_resumes_bit_identically(extra, tmp_path, monkeypatch):
    cfg = lesde.Config(**{**SMALL, **extra})
    reference = lesde.simulate(cfg, progress=False, on_nonfinite="ignore")
    path = tmp_path / "run.ckpt"
    steps = _interrupt_after(monkeypatch, 3)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        part = lesde.simulate(
            cfg, checkpoint=path, checkpoint_every=20, progress=False, on_nonfinite="ignore"
        )
    monkeypatch.undo()
    assert part.interrupted and steps == [24, 48, 72]  # rounded up to record steps
    resumed = lesde.resume(path, progress=False, on_nonfinite="ignore")
    assert not resumed.interrupted
    assert_bit_identical(resumed, reference, str(extra))


def test_resumed_run_raises_nonfinite_like_the_original(tmp_path):
    cfg = lesde.Config(
        n_classes=2,
        n_per_class=20,
        signal="linear",
        alpha=3e8,
        beta=0.0,
        steps=200,
        record_every=5,
        sigma=0.0,
    )
    path = tmp_path / "run.ckpt"
    with pytest.raises(lesde.NonFiniteError) as original:
        lesde.simulate(cfg, checkpoint=path, checkpoint_every=5, progress=False)
    saved = ck.read_checkpoint(path)
    assert saved.step < cfg.n_steps
    with pytest.raises(lesde.NonFiniteError) as resumed:
        lesde.resume(path, progress=False)
    assert str(resumed.value) == str(original.value)
    assert_bit_identical(resumed.value.result, original.value.result)


def test_finished_checkpoint_returns_at_once(tmp_path, monkeypatch):
    cfg = lesde.Config(**SMALL)
    path = tmp_path / "run.ckpt"
    full = lesde.simulate(cfg, checkpoint=path, checkpoint_every=1000, progress=False)
    assert ck.read_checkpoint(path).step == cfg.n_steps  # the final state is written
    writes = _interrupt_after(monkeypatch, 99)
    again = lesde.resume(path, progress=False)
    assert writes == []  # nothing left to do, nothing rewritten
    assert_bit_identical(again, full)


def test_default_checkpoints_by_wall_time(tmp_path, monkeypatch):
    cfg = lesde.Config(**SMALL)
    writes = _interrupt_after(monkeypatch, 10**6)
    lesde.simulate(cfg, checkpoint=tmp_path / "a.ckpt", progress=False)
    assert writes == [cfg.n_steps]  # a short run: only the final checkpoint
    writes.clear()
    monkeypatch.setattr(ck, "CHECKPOINT_SECONDS", 0.0)  # always due: every chunk's end
    lesde.simulate(cfg, checkpoint=tmp_path / "b.ckpt", progress=False)
    assert len(writes) >= 2 and writes[-1] == cfg.n_steps
    assert set(writes) <= set(cfg.record_steps.tolist())


def test_resume_keeps_checkpointing(tmp_path, monkeypatch):
    cfg = lesde.Config(**SMALL)
    path = tmp_path / "run.ckpt"
    _interrupt_after(monkeypatch, 1)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        lesde.simulate(cfg, checkpoint=path, checkpoint_every=30, progress=False)
    steps = _interrupt_after(monkeypatch, 10**6)
    lesde.resume(path, checkpoint_every=30, progress=False)
    assert steps == [60, 90, 120]


def test_stale_temporaries_are_removed_and_old_checkpoint_overwritten(tmp_path):
    path = tmp_path / "run.ckpt"
    lesde.simulate(**{**SMALL, "seed": 9}, checkpoint=path, progress=False)  # an older run
    stale = tmp_path / ".run.ckpt.killed.tmp"
    stale.write_bytes(b"half a checkpoint")
    lesde.simulate(**SMALL, checkpoint=path, overwrite=True, progress=False)
    assert not stale.exists() and ck.read_checkpoint(path).step == SMALL["steps"]
    assert ck.read_checkpoint(path).config == lesde.Config(**SMALL)


def test_checkpoint_holds_no_pickle_and_records_provenance(tmp_path):
    path = tmp_path / "run.ckpt"
    lesde.simulate(**SMALL, process="sgd", checkpoint=path, progress=False)
    with np.load(path, allow_pickle=False) as data:
        files = {name: data[name] for name in data.files}
    assert all(a.dtype != object for a in files.values())
    header = json.loads(str(files["header"]))
    assert header["format_version"] == ck.FORMAT_VERSION and header["step"] == SMALL["steps"]
    assert header["random_stream_version"] == lesde.build_info()["random_stream_version"]
    assert header["lesde_version"] == lesde.__version__
    assert lesde.Config.from_toml(header["config_toml"]) == lesde.Config(**SMALL, process="sgd")
    assert "noise_var" in files and len(str(files["sha256"])) == 64


# ---------------------------------------------------------------------- refusals
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "run.ckpt"
    lesde.simulate(**SMALL, process="sgd", checkpoint=path, progress=False)
    return path


def _rewrite(src, dst, change_header=None, change_arrays=None, rehash=True):
    with np.load(src, allow_pickle=False) as data:
        files = {name: data[name] for name in data.files}
    header = json.loads(str(files.pop("header")))
    digest = str(files.pop("sha256"))
    if change_header:
        change_header(header)
    if change_arrays:
        change_arrays(files)
    text = json.dumps(header, sort_keys=True)
    digest = ck.checkpoint_digest(text, files) if rehash else digest
    files["header"], files["sha256"] = np.array(text), np.array(digest)
    np.savez(dst, **files)
    return dst


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_truncated_checkpoint_is_refused(saved, tmp_path, keep):
    data = saved.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (keep % len(data))
    bad = tmp_path / "cut.ckpt"
    bad.write_bytes(data[:n])
    with pytest.raises(ValueError, match="damaged or truncated"):
        lesde.resume(bad, progress=False)


def _member_data_offset(path, member):
    """Byte offset of the array data of ``member`` (an .npy inside the npz)."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member + ".npy")
    raw = Path(path).read_bytes()
    start = (
        info.header_offset
        + 30
        + int.from_bytes(raw[info.header_offset + 26 : info.header_offset + 28], "little")
    )
    start += int.from_bytes(raw[info.header_offset + 28 : info.header_offset + 30], "little")
    return start + raw[start:].index(b"\n") + 1  # after the .npy header line


@pytest.mark.parametrize("member", ["features", "labels", "noise_var", "scalars", "header"])
def test_flipped_byte_in_any_array_is_refused(saved, tmp_path, member):
    raw = bytearray(saved.read_bytes())
    raw[_member_data_offset(saved, member) + 3] ^= 0x10
    bad = tmp_path / "flip.ckpt"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="damaged or truncated"):
        lesde.resume(bad, progress=False)


def test_random_byte_flips_are_refused_or_harmless(saved, tmp_path):
    """A flip anywhere is refused, or hit zip metadata that does not change the state."""
    good = ck.read_checkpoint(saved)
    raw = saved.read_bytes()
    rng = random.Random(7)
    bad = tmp_path / "flip.ckpt"
    refused = 0
    for position in rng.sample(range(len(raw)), 150):
        flipped = bytearray(raw)
        flipped[position] ^= 1 << rng.randrange(8)
        bad.write_bytes(bytes(flipped))
        try:
            back = ck.read_checkpoint(bad)
        except ValueError:
            refused += 1
            continue
        assert back.step == good.step and back.config == good.config, position
        for name, value in good.arrays.items():
            if value is not None:
                assert value.tobytes() == back.arrays[name].tobytes(), (position, name)
    assert refused > 100


def test_valid_zip_with_wrong_checksum_is_refused(saved, tmp_path):
    def nudge(files):
        files["features"] = files["features"].copy()
        files["features"].flat[0] += 1e-12

    bad = _rewrite(saved, tmp_path / "edit.npz", change_arrays=nudge, rehash=False)
    with pytest.raises(ValueError, match="SHA-256 checksum mismatch"):
        lesde.resume(bad, progress=False)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("format_version", 999, "checkpoint format version 999"),
        ("random_stream_version", 12345, "random-stream version 12345"),
        ("kind", "something-else", "not a lesde checkpoint"),
        ("step", 7, "not a record step"),
        ("dtype", "float32", "disagrees with the config"),
    ],
)
def test_incompatible_checkpoint_is_refused(saved, tmp_path, field, value, message):
    bad = _rewrite(saved, tmp_path / "old.npz", change_header=lambda h: h.__setitem__(field, value))
    with pytest.raises(ValueError, match=message):
        lesde.resume(bad, progress=False)


def test_inconsistent_arrays_are_refused(saved, tmp_path):
    cases = {
        "should be": lambda f: f.__setitem__("features", f["features"][:, :-1]),
        "labels outside": lambda f: f.__setitem__("labels", f["labels"] + 5),
        "unknown status": lambda f: f.__setitem__("status", f["status"] + 7),
        "unexpected arrays": lambda f: f.__setitem__("extra", np.zeros(3)),
    }
    for message, change in cases.items():
        bad = _rewrite(saved, tmp_path / "bad.npz", change_arrays=change)
        with pytest.raises(ValueError, match=message):
            lesde.resume(bad, progress=False)


def test_other_files_are_refused(saved, tmp_path):
    with pytest.raises(FileNotFoundError):
        lesde.resume(tmp_path / "missing.ckpt")
    result = tmp_path / "result.npz"
    lesde.simulate(**SMALL, progress=False).save(result)
    with pytest.raises(ValueError, match="not a lesde checkpoint"):
        lesde.resume(result)
    (tmp_path / "junk").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="damaged or truncated"):
        lesde.resume(tmp_path / "junk")


def test_newer_lesde_version_warns(saved, tmp_path):
    other = _rewrite(
        saved, tmp_path / "v.npz", change_header=lambda h: h.__setitem__("lesde_version", "0.0.1")
    )
    with pytest.warns(RuntimeWarning, match="written by lesde 0.0.1"):
        lesde.resume(other, progress=False)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(checkpoint_every=10), ValueError),  # no path
        (dict(checkpoint="x.ckpt", checkpoint_every=0), ValueError),
        (dict(checkpoint="x.ckpt", checkpoint_every=2.5), TypeError),
        (dict(checkpoint="x.ckpt", checkpoint_every=True), TypeError),
        (dict(checkpoint=123), TypeError),
        (dict(checkpoint=""), ValueError),
        (dict(checkpoint="."), ValueError),  # a directory
    ],
)
def test_bad_checkpoint_arguments(kwargs, error, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error):
        lesde.simulate(**SMALL, progress=False, **kwargs)
    assert not (tmp_path / "x.ckpt").exists()


# ---------------------------------------------------------------------- Ctrl-C between records
def _ctrl_c_at_chunk(monkeypatch, n):
    """One step per chunk, and a Ctrl-C after the n-th chunk (as the loop sees a real one:
    between chunks). Returns the list of steps the chunks ended at."""
    from lesde.sim import engine

    monkeypatch.setattr(engine, "CHUNK_SECONDS", 0.0)  # chunks of one step
    ends, original = [], engine.Progress.update

    def update(self, step):
        original(self, step)
        ends.append(step)
        if len(ends) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine.Progress, "update", update)
    return ends


@pytest.mark.parametrize("process", ["sde", "sgd"])
def test_ctrl_c_between_records_checkpoints_at_the_next_record(process, tmp_path, monkeypatch):
    """The reported bug: Ctrl-C before the first timed checkpoint left no checkpoint at all.
    Now the run goes on to the next record step (SGD folds its lazy noise there) and
    checkpoints it, and resuming gives the uninterrupted run's bytes."""
    cfg = lesde.Config(**SMALL, process=process)
    reference = lesde.simulate(cfg, progress=False)
    path = tmp_path / "run.ckpt"
    ends = _ctrl_c_at_chunk(monkeypatch, 8)  # Ctrl-C at step 8, between records 6 and 12
    with pytest.warns(RuntimeWarning, match=r"interrupted at step 12 .* holds step 12"):
        part = lesde.simulate(cfg, checkpoint=path, progress=False)  # default: by wall time
    monkeypatch.undo()
    assert ends[-1] == 8 and cfg.record_index(8) == -1, "Ctrl-C must fall between records"
    assert part.interrupted and part.steps_done == 12 and part.meta["checkpoint_step"] == 12
    assert ck.read_checkpoint(path).step == 12
    assert_bit_identical(lesde.resume(path, progress=False), reference, process)


def test_the_first_chunk_is_one_step_whatever_the_record_interval(monkeypatch):
    """The first chunk used to be a whole record interval: with records at the start and
    the end only, the whole run was one call that Ctrl-C could not interrupt."""
    from lesde.sim import engine

    cfg = lesde.Config(**{**SMALL, "record_every": SMALL["steps"]})
    ends, original = [], engine.Progress.update

    def ctrl_c_after_the_first_chunk(self, step):
        original(self, step)
        ends.append(step)
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.Progress, "update", ctrl_c_after_the_first_chunk)
    with pytest.warns(RuntimeWarning, match="interrupted at step 1 of 120"):
        part = lesde.simulate(cfg, progress=False)
    assert ends == [1] and part.interrupted and part.steps_done == 1


def test_second_ctrl_c_stops_at_once_and_keeps_the_checkpoint_on_disk(tmp_path, monkeypatch):
    from lesde.sim import engine

    cfg = lesde.Config(**{**SMALL, "record_every": 60})  # records at 0, 60, 120
    path = tmp_path / "run.ckpt"
    lesde.simulate(cfg, checkpoint=path, progress=False)  # a checkpoint from an earlier run
    before = path.read_bytes()
    _ctrl_c_at_chunk(monkeypatch, 62)  # at step 62, far from record step 120...
    monkeypatch.setattr(engine, "NOTICE_SECONDS", 0.0)  # ...so the notice always shows
    original = engine.make_engine

    class SecondCtrlC:  # the engine, with a Ctrl-C while it finishes the steps to 120
        def __init__(self, sim):
            self.sim = sim

        def __getattr__(self, name):
            return getattr(self.sim, name)

        def advance(self, until):
            if self.sim.step >= 62:
                raise KeyboardInterrupt
            return self.sim.advance(until)

    monkeypatch.setattr(engine, "make_engine", lambda *args: SecondCtrlC(original(*args)))
    with pytest.warns(RuntimeWarning) as caught:
        part = lesde.simulate(cfg, checkpoint=path, overwrite=True, progress=False)
    notice, final = (str(w.message) for w in caught)
    assert "interrupted at step 62: finishing the 58 steps to record step 120" in notice
    assert "Ctrl-C again" in notice
    assert "interrupted at step 62 of 120" in final and "no checkpoint was written" in final
    assert part.interrupted and part.steps_done == 62 and part.meta["checkpoint_step"] is None
    assert path.read_bytes() == before, "the checkpoint on disk must be left alone"


# ---------------------------------------------------------------------- what resume keeps
def test_resume_keeps_the_runs_checkpoint_every_and_meta(tmp_path, monkeypatch):
    """lesde resume used to fall back to wall-time checkpoints (and the CLI to run.npz)."""
    cfg = lesde.Config(**SMALL)
    path = tmp_path / "run.ckpt"
    _interrupt_after(monkeypatch, 1)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        lesde.simulate(cfg, checkpoint=path, checkpoint_every=30, checkpoint_meta={"out": "a.npz"})
    saved = ck.read_checkpoint(path)
    assert (saved.step, saved.every, saved.meta) == (30, 30, {"out": "a.npz"})
    steps = _interrupt_after(monkeypatch, 10**6)
    lesde.resume(path, progress=False)  # no checkpoint_every: the run's own 30
    assert steps == [60, 90, 120]
    assert ck.read_checkpoint(path).meta == {"out": "a.npz"}, "resume must keep the meta"


# ---------------------------------------------------------------------- writing fails
def test_a_failing_checkpoint_write_warns_once_and_the_run_goes_on(tmp_path, monkeypatch):
    """A full disk at a checkpoint must not cost the run (or its result): one warning, the
    checkpoint on disk stays as it was, and later due checkpoints try again."""
    import errno

    cfg = lesde.Config(**SMALL)
    path = tmp_path / "run.ckpt"
    original, tries = ck.write_checkpoint, []

    def disk_full_after_the_first(path, cfg, step, arrays, wall_seconds=0.0, **kwargs):
        tries.append(step)
        if len(tries) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(path, cfg, step, arrays, wall_seconds, **kwargs)

    monkeypatch.setattr(ck, "write_checkpoint", disk_full_after_the_first)
    with pytest.warns(RuntimeWarning) as caught:
        res = lesde.simulate(cfg, checkpoint=path, checkpoint_every=30, progress=False)
    assert [str(w.message) for w in caught] == [
        f"cannot write checkpoint {path} at step 60: No space left on device; the run goes "
        "on and the checkpoint on disk still holds step 30"
    ]
    assert tries == [30, 60, 90, 120] and res.ok and res.steps_done == cfg.n_steps
    assert res.meta["checkpoint_step"] == 30 and ck.read_checkpoint(path).step == 30


@pytest.mark.parametrize("kind", ["symlink", "fifo", "device", "folder"])
def test_a_checkpoint_path_that_is_not_a_regular_file_is_refused(kind, tmp_path):
    """Writing the checkpoint would have replaced a link, a FIFO or /dev/null with a file."""
    from filesystems import device_node

    target = tmp_path / "run.ckpt"
    if kind == "symlink":
        (tmp_path / "elsewhere.ckpt").write_bytes(b"x")
        target.symlink_to(tmp_path / "elsewhere.ckpt")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        target = device_node(tmp_path)
    else:
        target.mkdir()
    before = os.lstat(target)
    with pytest.raises(ValueError, match="not a regular file"):
        lesde.simulate(**SMALL, checkpoint=target, progress=False)
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)


def test_an_unwritable_checkpoint_folder_is_refused_before_the_run(tmp_path, monkeypatch):
    from filesystems import read_only_folder

    ran = []
    simulate_module = sys.modules["lesde.sim.simulate"]  # the module (callable as the function)
    monkeypatch.setattr(simulate_module, "run_engine", lambda *a, **k: ran.append(1))
    with read_only_folder(tmp_path) as folder:
        with pytest.raises(OSError, match="cannot write a checkpoint") as info:
            lesde.simulate(**SMALL, checkpoint=folder / "run.ckpt", progress=False)
    assert info.value.filename == str(folder / "run.ckpt")
    assert not ran, "the run started before the checkpoint was found unwritable"


def test_a_checkpoint_replaces_only_a_lesde_checkpoint_and_only_when_asked(tmp_path):
    """simulate(checkpoint=PATH) replaced whatever was at PATH: the checkpoint of a killed
    run (its progress lost by starting the script again), a result, the user's file. Now
    a lesde checkpoint is replaced only with overwrite=True (the refusal says how to
    resume it), and nothing else ever; every refused file is left as it was."""
    path = tmp_path / "run.ckpt"
    lesde.simulate(**SMALL, checkpoint=path, checkpoint_every=60, progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    lesde.simulate(**SMALL, progress=False).save(tmp_path / "r.npz")
    kept = {p: p.read_bytes() for p in (path, tmp_path / "notes.txt", tmp_path / "r.npz")}
    with pytest.raises(
        ValueError,
        match=r"holds a lesde checkpoint already \(step 120\); "
        r"resume it with lesde\.resume\(.*run\.ckpt'\), or pass overwrite=True",
    ):
        lesde.simulate(**SMALL, checkpoint=path, progress=False)
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="notes.txt' exists and is not a file lesde"):
            lesde.simulate(
                **SMALL, checkpoint=tmp_path / "notes.txt", overwrite=overwrite, progress=False
            )
        with pytest.raises(ValueError, match="r.npz' is a result file"):
            lesde.simulate(
                **SMALL, checkpoint=tmp_path / "r.npz", overwrite=overwrite, progress=False
            )
    assert {p: p.read_bytes() for p in kept} == kept
    assert [p.name for p in tmp_path.glob(".*.lock")] == [], "a lock file was left"
    with pytest.raises(ValueError, match="is a result file"):
        lesde.resume(tmp_path / "r.npz", progress=False)
    assert not (tmp_path / ".r.npz.lock").exists()
    assert lesde.resume(path, progress=False).ok  # resuming replaces it, as it goes
    other = lesde.simulate(**{**SMALL, "seed": 8}, checkpoint=path, overwrite=True, progress=False)
    assert ck.read_checkpoint(path).config == other.config
