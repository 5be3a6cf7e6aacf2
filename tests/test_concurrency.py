"""Simulations in several Python threads at once: identical results, GIL released.

``simulate`` releases the GIL inside every chunk of C++ work (the engine touches only the
buffers it was given), so runs in a ThreadPoolExecutor proceed in parallel. These tests
assert correctness only (bit-identical to sequential runs) and, for the GIL, an ordering
that is impossible unless the GIL is released; they never assert a duration.
"""

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from processes import child_env

import lesde
from lesde import _core
from lesde.sim.engine import allocate, engine_config

BASE = dict(
    n_classes=3,
    n_per_class=1000,
    steps=60,
    record_every=5,
    sigma=0.5,
    label_noise=0.1,
    record_samples=3,
)
CONFIGS = [
    lesde.Config(**BASE, seed=1),
    lesde.Config(**BASE, seed=2, scheme="heun", threads=2),
    lesde.Config(**BASE, seed=3, process="sgd", batch_size=8),
    lesde.Config(**BASE, seed=4, dtype="float32", threads=1),
    lesde.Config(**BASE, seed=5, replicas=4, threads=2),  # replica-parallel layout
    lesde.Config(**BASE, seed=6, signal="linear", alpha=1.5, beta=0.5, process="sgd", replicas=3),
    lesde.Config(**BASE, seed=1),  # the same run twice
]


def same(a, b):
    arrays = (
        "features",
        "labels",
        "class_means",
        "label_means",
        "sigma_w",
        "sample_trajectories",
        "fail_step",
        "status",
    )
    return (
        all(getattr(a, n).tobytes() == getattr(b, n).tobytes() for n in arrays)
        and a.metrics.keys() == b.metrics.keys()
        and all(a.metrics[k].tobytes() == b.metrics[k].tobytes() for k in a.metrics)
    )


def run(cfg):
    return lesde.simulate(cfg, progress=False)


def test_threads_give_the_results_of_sequential_runs():
    sequential = [run(cfg) for cfg in CONFIGS]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(run, CONFIGS))
    for cfg, a, b in zip(CONFIGS, sequential, threaded, strict=True):
        assert same(a, b), f"threaded run differs from the sequential one: {cfg.to_dict()}"
    assert same(threaded[0], threaded[-1])


def test_threads_checkpointing_to_their_own_files(tmp_path):
    def job(i):
        path = tmp_path / f"run{i}.ckpt"
        res = lesde.simulate(CONFIGS[i], checkpoint=path, checkpoint_every=10, progress=False)
        return res, lesde.resume(path, progress=False)  # resumes the finished state

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(job, range(3)))
    for i, (res, again) in enumerate(results):
        assert same(res, again) and same(res, run(CONFIGS[i]))


def test_metrics_in_threads_match_sequential():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 2000)
    data = [np.eye(3)[y] * s + rng.normal(size=(y.size, 3)) for s in (0.5, 1.0, 2.0, 4.0)]
    sequential = [lesde.metrics.summary(X, y) for X in data]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda X: lesde.metrics.summary(X, y), data))
    assert threaded == sequential


def _partial_progress_seen(cfg):
    arrays = allocate(cfg)
    sim = _core.Simulation64(engine_config(cfg), **arrays)
    sim.initialize()
    recorded = arrays["scalars"][0, :, 0]  # NaN until the engine writes that record
    done, seen = threading.Event(), []

    def watch():
        while not done.is_set():
            written = int(np.count_nonzero(~np.isnan(recorded)))  # this needs the GIL
            if 1 < written < recorded.size:  # after the first record, before the last
                seen.append(written)
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    sim.advance(cfg.n_steps)  # one C++ call over all steps
    done.set()
    watcher.join()
    assert sim.step == cfg.n_steps and not np.isnan(recorded).any()
    return bool(seen)


def test_advance_releases_the_gil():
    """Another Python thread sees records being written while advance() has not returned.

    advance() writes the records in order and returns after the last one; with the GIL
    held for the whole call no Python thread could run in between, so a partial view
    (more than the initial record, fewer than all) proves the GIL was released. A watcher
    that never got a CPU during the call proves nothing either way, so it gets three tries.
    """
    cfg = lesde.Config(n_classes=3, n_per_class=5000, steps=200, record_every=2, threads=1)
    assert any(_partial_progress_seen(cfg) for _ in range(3)), (
        "no partial progress was visible while advance() ran: is the GIL released?"
    )


def test_a_lock_file_lives_only_while_its_writer_holds_it(tmp_path):
    """Every run left a `.NAME.lock` beside its outputs. The holder now removes it as it
    lets go; one that was killed leaves it unlocked, and the next writer takes it over; a
    writer that locked a file its holder had just removed takes the new one instead, so two
    writers never hold one path."""
    from lesde.io.storage import InUseError, exclusive_lock

    lock = tmp_path / ".run.npz.lock"
    with exclusive_lock(lock, what="--out 'run.npz'"):
        assert lock.read_text().startswith("pid ")
    assert not lock.exists(), "the lock file outlived its writer"

    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(lock)], stdout=subprocess.PIPE, env=child_env()
    )
    assert holder.stdout.readline() == b"held\n"
    with pytest.raises(InUseError, match=rf"in use by another lesde run \(pid {holder.pid} "):
        with exclusive_lock(lock, what="--out 'run.npz'"):
            pass
    holder.kill()
    holder.wait()
    assert lock.exists()  # killed: left behind, unlocked
    with exclusive_lock(lock, what="--out 'run.npz'"):
        pass
    assert not lock.exists()

    # The race: a writer opened the old lock file just before its holder removed it.
    stale = os.open(lock, os.O_RDWR | os.O_CREAT)
    os.unlink(lock)
    real_open = os.open
    opened = []

    def open_stale_first(path, *args, **kwargs):
        if not opened and str(path) == str(lock):
            opened.append(path)
            return os.dup(stale)
        return real_open(path, *args, **kwargs)

    import lesde.io.storage

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lesde.io.locks.os, "open", open_stale_first)
        with exclusive_lock(lock, what="--out 'run.npz'"):
            assert opened and lock.exists(), "it kept the lock of a removed file"
    os.close(stale)


LOCK_HOLDER = """
import sys, time
from lesde.io.storage import exclusive_lock
with exclusive_lock(sys.argv[1], what="x"):
    print("held", flush=True)
    time.sleep(60)
"""
