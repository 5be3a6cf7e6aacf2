"""Zarr output (lesde[zarr]): records appended while the run goes, read back as a Result.

- a finished store loads bit-identically to the in-memory Result (features optional)
- a run killed with SIGKILL leaves a store that loads up to ``records_complete``, equal
  to the same records of an uninterrupted run (and it loads while the run is writing)
- a reader trusts ``records_complete``, not the arrays' lengths; Ctrl-C and a run whose
  replicas all fail leave a store matching the returned Result
- ``lesde run --zarr`` writes a store; without zarr the error names the extra
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from processes import child_env

import lesde
from lesde.sim import zarr_store

needs_zarr = pytest.mark.skipif(
    importlib.util.find_spec("zarr") is None, reason="zarr is not installed (lesde[zarr])"
)
RECORDS = ("times", "class_means", "label_means", "sigma_w", "sample_trajectories")
STATE = ("classes", "labels", "sample_indices", "status", "fail_step")
SMALL = dict(
    n_classes=3,
    n_per_class=200,
    steps=120,
    record_every=7,  # 18 records plus the last step
    sigma=0.4,
    label_noise=0.2,
    record_samples=4,
    seed=5,
    threads=1,
)


def _same(x, y, what):
    x, y = np.asarray(x), np.asarray(y)
    assert (x.dtype, x.shape) == (y.dtype, y.shape), f"{what}: dtype or shape differs"
    assert x.tobytes() == y.tobytes(), f"{what} differs"


def assert_records_equal(a, b, n=None, what=""):
    """Records [0, n) (all when n is None), metrics included, and the fixed state."""
    cut = (lambda v: v) if n is None else (lambda v: v[:n] if v.ndim == 1 else v[:, :n])
    for name in RECORDS:
        _same(cut(getattr(a, name)), cut(getattr(b, name)), f"{what} {name}")
    assert sorted(a.metrics) == sorted(b.metrics)
    for name in a.metrics:
        _same(cut(a.metrics[name]), cut(b.metrics[name]), f"{what} metric {name}")
    for name in ("classes", "labels", "sample_indices"):
        _same(getattr(a, name), getattr(b, name), f"{what} {name}")
    assert a.config == b.config


@needs_zarr
@pytest.mark.parametrize(
    "extra",
    [dict(replicas=3), dict(process="sgd", batch_size=4, dtype="float32", replicas=2)],
)
def test_round_trip_equals_in_memory_result(extra, tmp_path):
    path = tmp_path / "run.zarr"
    res = lesde.simulate(progress=False, zarr_store=path, zarr_features=True, **SMALL, **extra)
    back = lesde.load_zarr(path)
    assert_records_equal(back, res)
    for name in ("features", "status", "fail_step"):
        _same(getattr(back, name), getattr(res, name), name)
    assert back.steps_done == res.steps_done and not back.interrupted and back.ok
    assert back.meta == res.meta
    assert back.summary() == res.summary()

    import zarr

    root = zarr.open_group(str(path), mode="r")
    assert root.attrs["records_complete"] == root.attrs["records_planned"] == len(res.times)
    assert root.attrs["random_stream_version"] == res.meta["random_stream_version"]
    assert lesde.Config.from_toml(root.attrs["config_toml_resolved"]).n_steps == 120
    assert 1 <= root["class_means"].chunks[1] <= zarr_store.MAX_CHUNK_RECORDS

    # Without zarr_features the store has no features; everything else is the same.
    lesde.simulate(progress=False, zarr_store=path, overwrite=True, **SMALL, **extra)  # replaced
    again = lesde.load_zarr(path)
    assert again.features.shape == (res.features.shape[0], 0, res.features.shape[2])
    assert_records_equal(again, res)


@needs_zarr
def test_reader_trusts_records_complete_not_array_length(tmp_path):
    import zarr

    path = tmp_path / "run.zarr"
    res = lesde.simulate(progress=False, zarr_store=path, **SMALL)
    root = zarr.open_group(str(path), mode="r+")
    # As if the writer had resized and written more but was killed before counting them.
    root.attrs.update({"records_complete": 5, "finished": False})
    part = lesde.load_zarr(path)
    assert part.times.shape == (5,) and part.interrupted
    assert_records_equal(part, res, n=5)


@needs_zarr
def test_interrupt_and_failure_leave_a_store_matching_the_result(tmp_path, monkeypatch):
    # Every replica overflows near step 50: the run ends early; the store must match.
    cfg = lesde.Config(
        **{**SMALL, "signal": "linear", "alpha": 3e8, "beta": 0.0, "replicas": 2},
    )
    res = lesde.simulate(cfg, progress=False, on_nonfinite="ignore", zarr_store=tmp_path / "f")
    back = lesde.load_zarr(tmp_path / "f")
    assert not np.all(res.status == "ok") and len(res.times) < len(cfg.record_steps)
    assert_records_equal(back, res)
    _same(back.status, res.status, "status")
    _same(back.fail_step, res.fail_step, "fail_step")

    # Ctrl-C in the append after step 30 (one-step chunks): Result and store say so.
    original = zarr_store.ZarrWriter.append

    def append(self, step, arrays):
        original(self, step, arrays)
        if step >= 30:
            raise KeyboardInterrupt

    monkeypatch.setattr(zarr_store.ZarrWriter, "append", append)
    monkeypatch.setattr(importlib.import_module("lesde.sim.engine"), "CHUNK_SECONDS", 0.0)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        part = lesde.simulate(progress=False, zarr_store=tmp_path / "i", **SMALL)
    monkeypatch.undo()
    back = lesde.load_zarr(tmp_path / "i")
    assert part.interrupted and back.interrupted and back.steps_done == part.steps_done
    assert len(back.times) == len(part.times) < len(part.config.record_steps)
    assert_records_equal(back, part)


CHILD = textwrap.dedent("""
    import sys
    import lesde
    cfg = lesde.Config.from_toml(open(sys.argv[1]).read())
    lesde.simulate(cfg, zarr_store=sys.argv[2], progress=False)
""")
# About 1.5 s on an idle core; appends come about every 0.25 s (one per run-loop chunk).
KILL = dict(
    n_classes=3,
    alpha=1.0,
    beta=0.3,
    sigma=0.5,
    dt=0.002,
    label_noise=0.1,
    n_per_class=5_000,
    replicas=2,
    steps=700,
    record_every=5,
    record_samples=40,
    seed=2021,
    threads=1,
)


def _records_complete(path: Path) -> int:
    import zarr

    try:
        return int(zarr.open_group(str(path), mode="r").attrs.get("records_complete", 0))
    except Exception:  # not created yet
        return 0


@needs_zarr
def test_sigkill_leaves_a_readable_partial_store(tmp_path):
    cfg = lesde.Config(**KILL)
    (tmp_path / "cfg.toml").write_text(cfg.to_toml())
    (tmp_path / "child.py").write_text(CHILD)
    path = tmp_path / "run.zarr"
    child = subprocess.Popen(
        [sys.executable, str(tmp_path / "child.py"), str(tmp_path / "cfg.toml"), str(path)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while _records_complete(path) == 0 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        live = lesde.load_zarr(path)  # read while the child is still appending
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        out = child.communicate()[0]
    assert child.returncode == -signal.SIGKILL, (
        f"the child was not killed mid-run (exit {child.returncode}, output {out!r}); "
        "lengthen the run"
    )

    part = lesde.load_zarr(path)
    n = len(part.times)
    assert 0 < len(live.times) <= n < len(cfg.record_steps)
    assert part.interrupted and live.interrupted
    assert part.steps_done >= cfg.record_steps[n - 1]
    reference = lesde.simulate(cfg, progress=False)
    assert_records_equal(part, reference, n=n, what=f"killed after {n} records")
    assert_records_equal(live, reference, n=len(live.times), what="read while running")
    assert part.features.shape == (cfg.replicas, 0, cfg.p)


@needs_zarr
def test_cli_run_zarr_writes_a_store(tmp_path):
    from lesde.cli import main

    store, out = tmp_path / "cli.zarr", tmp_path / "cli.npz"
    sets = [f"{k}={v}" for k, v in SMALL.items() if k != "record_samples"]
    argv = ["run", "--quiet", "--out", str(out), "--zarr", str(store)]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    assert_records_equal(lesde.load_zarr(store), lesde.load(out))


def test_bad_paths_and_missing_zarr_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="zarr_features needs"):
        lesde.simulate(progress=False, zarr_features=True, **SMALL)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="not a Zarr store"):
        lesde.simulate(progress=False, zarr_store=tmp_path / "data", **SMALL)
    assert (tmp_path / "data" / "keep.txt").read_text() == "precious"
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        lesde.simulate(progress=False, zarr_store=tmp_path / "file", **SMALL)

    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr now raises ImportError
    with pytest.raises(ImportError, match=r"lesde\[zarr\]"):
        lesde.simulate(progress=False, zarr_store=tmp_path / "new.zarr", **SMALL)
    with pytest.raises(ImportError, match=r"lesde\[zarr\]"):
        lesde.load_zarr(tmp_path / "new.zarr")


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``, by relative name."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if not p.is_fifo()
    }


@needs_zarr
def test_only_a_lesde_store_is_replaced_and_nothing_else_in_its_folder(tmp_path, capsys):
    """`--zarr PATH` deleted any folder holding a zarr.json: a store of another program,
    and the user's files beside it. Now only a lesde store (its kind attribute) is
    replaced, only when asked (overwrite=True, --force), and only when every file and
    folder in it is one of the store's own; anything else is refused and left as it was."""
    import zarr

    from lesde.cli import main
    from lesde.io.storage import NotReplacedError

    small = {**SMALL, "steps": 14}
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").attrs["kind"] = "someone-else"
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_group("class_means")  # no kind at all
    (plain / "notes.txt").write_text("mine")
    store = tmp_path / "run.zarr"
    lesde.simulate(progress=False, zarr_store=store, **small)
    cases = {foreign: "lesde did not write (kind 'someone-else')", plain: "(no kind)"}
    extras = {  # a file of the user's -> what the refusal names
        "notes.txt": "notes.txt",  # beside the store's own files
        "metrics/notes.txt": "metrics/notes.txt",  # in its metrics group
        "class_means/c/notes.txt": "class_means/c/notes.txt",  # among an array's chunks
        "sigma_w/backup/0": "sigma_w/backup/",  # in a folder that holds no chunks
    }
    for name, named in extras.items():
        folder = tmp_path / f"with-{name.replace('/', '-')}"
        lesde.simulate(progress=False, zarr_store=folder, **small)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("mine")
        cases[folder] = f"a lesde Zarr store and other files ({named})"
    fifo = tmp_path / "with-fifo"
    lesde.simulate(progress=False, zarr_store=fifo, **small)
    os.mkfifo(fifo / "pipe")
    cases[fifo] = "other files (pipe)"
    before = {path: _tree(path) for path in cases}
    for path, why in cases.items():
        with pytest.raises(NotReplacedError, match=re.escape(why)):
            lesde.simulate(progress=False, zarr_store=path, overwrite=True, **small)
        argv = ["run", "--quiet", "--force", "--out", str(tmp_path / "r.npz"), "--zarr", str(path)]
        assert main(argv) == 1, path
        err = capsys.readouterr().err
        assert err.startswith(f"lesde: error: --zarr '{path}'") and err.count("\n") == 1, err
        assert why in err
        assert _tree(path) == before[path], f"{path} was changed"
    assert not (tmp_path / ".foreign.zarr.lock").exists(), "a refusal left a lock file"

    # lesde's own store: replaced only when asked, and then wholly (the old chunks go)
    with pytest.raises(NotReplacedError, match="holds a lesde Zarr store already; pass overwrite"):
        lesde.simulate(progress=False, zarr_store=store, **small)
    assert main(["run", "--quiet", "--out", str(tmp_path / "q.npz"), "--zarr", str(store)]) == 1
    assert "store already; give --force to replace it" in capsys.readouterr().err
    (store / "class_means" / "zarr.1234abcd1234abcd1234abcd1234abcd.partial").write_bytes(b"x")
    res = lesde.simulate(progress=False, zarr_store=store, overwrite=True, **{**small, "steps": 7})
    assert_records_equal(lesde.load_zarr(store), res)
    assert not list(store.rglob("*.partial")) and len(res.times) == 2


# ---------------------------------------------------------------------- crafted stores
@needs_zarr
def test_a_store_claiming_2_to_the_31_records_is_read_without_building_its_grid(
    tmp_path, monkeypatch
):
    """The Zarr form of the crafted result: attributes claiming steps = 2**31 - 1 with
    record_every = 1. The record grid (16 GiB of step numbers) is never built: the store
    is refused when finished, since its records cannot be those of its steps_done."""
    import zarr

    path = tmp_path / "run.zarr"
    lesde.simulate(progress=False, zarr_store=path, **SMALL)
    root = zarr.open_group(str(path), mode="r+")
    huge = lesde.Config.from_toml(root.attrs["config_toml"]).replace(
        steps=2**31 - 1, record_every=1
    )
    root.attrs.update({"config_toml": huge.to_toml()})

    def built(self):
        raise AssertionError("load_zarr built the record grid of the store's config")

    monkeypatch.setattr(lesde.Config, "record_steps", property(built))
    with pytest.raises(ValueError, match="records_complete 19 disagrees with steps_done 120"):
        lesde.load_zarr(path)


@needs_zarr
def test_array_metadata_are_checked_before_any_chunk_is_read(tmp_path, monkeypatch):
    """A record array whose chunk would decode to 9 GiB, or a state array of the wrong
    shape, is refused in one line before anything is read."""
    import json as json_module

    import zarr

    path = tmp_path / "run.zarr"
    lesde.simulate(progress=False, zarr_store=path, **SMALL)
    meta_path = path / "sigma_w" / "zarr.json"
    meta = json_module.loads(meta_path.read_text())
    meta["chunk_grid"]["configuration"]["chunk_shape"] = [1, 2**27, 3, 3]
    meta_path.write_text(json_module.dumps(meta))
    reads = []
    original = zarr.Array.__getitem__
    monkeypatch.setattr(
        zarr.Array, "__getitem__", lambda self, key: reads.append(self.path) or original(self, key)
    )
    monkeypatch.setattr(lesde.io.memory, "available_memory", lambda: 8 * 2**30)
    with pytest.raises(ValueError, match=r"chunks declare 9\.00 GiB") as refused:
        lesde.load_zarr(path)
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)
    assert reads == [], f"read {reads} before refusing the store"

    lesde.simulate(progress=False, zarr_store=path, overwrite=True, **SMALL)
    zarr.open_group(str(path), mode="r+")["labels"].resize((1, 599))
    with pytest.raises(ValueError, match=r"'labels' is int32 \(1, 599\), expected \(1, 600\)"):
        lesde.load_zarr(path)
    assert reads == [], f"read {reads} before refusing the store"


@needs_zarr
def test_every_metadata_state_a_reader_can_see_is_consistent(tmp_path, monkeypatch):
    """Each write of the group's attributes holds records_complete and the steps_done that
    counts them together (zarr 3's attrs.update wrote one key at a time: a reader saw two
    new records beside the old steps_done 0, and refused the store)."""
    import json as json_module

    import zarr

    store_class = getattr(zarr.storage, "LocalStore", None)
    if store_class is None:
        pytest.skip("zarr 2 writes a group's attributes in one .zattrs file")
    states = []
    write = store_class.set

    async def spy(self, key, value, *args, **kwargs):
        if key == "zarr.json":
            attributes = json_module.loads(value.to_bytes()).get("attributes", {})
            if "records_complete" in attributes:
                states.append((attributes["records_complete"], attributes.get("steps_done")))
        return await write(self, key, value, *args, **kwargs)

    monkeypatch.setattr(store_class, "set", spy)
    monkeypatch.setattr(zarr_store, "APPEND_WAIT_RATIO", 0.0)  # append after every chunk
    cfg = lesde.Config(**{**SMALL, "n_per_class": 2000, "steps": 300, "record_every": 3})
    lesde.simulate(cfg, progress=False, zarr_store=tmp_path / "run.zarr")
    from lesde.sim.result import record_count

    assert states[0] == (0, 0) and len(states) > 2, states  # created: nothing counted yet
    for complete, steps_done in states[1:]:
        assert complete == record_count(cfg, steps_done), f"a reader could see {states}"
