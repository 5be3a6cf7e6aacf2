"""Sweeps beyond one machine: Dask executors, an output folder that resumes, a lost worker.

The Dask tests use a real ``LocalCluster`` (two worker processes) and are skipped when
dask.distributed is not installed; the output-folder tests need only pandas.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from processes import child_env

import lesde
from lesde.sweep import config_hash, sweep

pd = pytest.importorskip("pandas")
try:
    import distributed
except ImportError:  # pragma: no cover - exercised where dask.distributed is missing
    distributed = None
requires_dask = pytest.mark.skipif(distributed is None, reason="needs dask[distributed]")

# Small runs: 3 classes x 20 samples, one thread, two records; each point takes a few
# tenths of a second, long enough for a worker to be killed in the middle of one.
BASE = lesde.Config(
    n_classes=3,
    n_per_class=20,
    signal="linear",
    sigma=0.5,
    dt=0.001,
    steps=20_000,
    record_every=20_000,
    seed=11,
    threads=1,
)
GRID = {"alpha": [0.5, 2.0], "beta": [0.5, 1.0, 1.5]}
REPLICAS = 2
N_POINTS = 6


@pytest.fixture(scope="module")
def local_table():
    """The reference: the same sweep on a local thread pool, in memory."""
    return sweep(BASE, GRID, replicas=REPLICAS, progress=False).table


@pytest.fixture(scope="module")
def client():
    if distributed is None:
        pytest.skip("needs dask[distributed]")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def assert_same_table(got, want):
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


def mtimes(folder):
    return {p: os.stat(os.path.join(folder, p)).st_mtime_ns for p in os.listdir(folder)}


# ---------------------------------------------------------------------------- local, out_dir
def test_out_dir_writes_point_files_and_tables(tmp_path, local_table):
    res = sweep(BASE, GRID, replicas=REPLICAS, progress=False, out_dir=tmp_path)
    assert_same_table(res.table, local_table)
    points = tmp_path / "points"
    names = sorted(os.listdir(points))
    assert len(names) == N_POINTS and all(n.endswith(".npz") and len(n) == 68 for n in names)
    assert res.meta["points_run"] == N_POINTS and res.meta["points_reused"] == 0
    # the file of point i is named by the hash of its config, and holds that run
    for index, path in enumerate(res.meta["point_files"]):
        saved = lesde.load(path)
        assert os.path.basename(path) == config_hash(saved.config) + ".npz"
        assert saved.config.seed == local_table[local_table.point == index].seed.iloc[0]
    table = pd.read_csv(tmp_path / "table.csv")
    assert (tmp_path / "table.csv").read_text() == res.table.to_csv(index=False)
    assert (tmp_path / "summary.csv").read_text() == res.summary().to_csv()
    assert len(table) == N_POINTS * REPLICAS
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_config_hash_is_stable_and_ignores_threads():
    cfg = BASE.replace(alpha=0.5, beta=1.0, replicas=2)
    # a fixed text gives a fixed hash, in any process on any machine
    assert config_hash(cfg) == config_hash(lesde.Config.from_toml(cfg.to_toml()))
    assert config_hash(cfg) == config_hash(cfg.replace(threads=2))
    assert config_hash(cfg) == config_hash(cfg.replace(steps=None, t_end=20.0))  # same run
    assert config_hash(cfg) != config_hash(cfg.replace(replicas=3))
    assert config_hash(cfg) != config_hash(cfg.replace(seed=12))


@pytest.mark.parametrize(
    "field,value",
    [("lesde_version", "0.0.0-another"), ("random_stream_version", 2), ("reduction_order", 1)],
)
def test_files_from_another_run_or_version_are_not_reused(tmp_path, field, value):
    """A point file made by another lesde, random stream or order of sums is run again."""
    one = {"alpha": [0.5, 2.0]}
    first = sweep(BASE, one, replicas=1, progress=False, out_dir=tmp_path)
    stale = lesde.load(first.meta["point_files"][0])
    stale.meta[field] = value
    stale.save(first.meta["point_files"][0])
    again = sweep(BASE, one, replicas=1, progress=False, out_dir=tmp_path)
    assert (again.meta["points_reused"], again.meta["points_run"]) == (1, 1)
    assert_same_table(again.table, first.table)
    # replicas are part of the point's config: another count is another file
    more = sweep(BASE, one, replicas=2, progress=False, out_dir=tmp_path)
    assert more.meta["points_run"] == 2 and len(os.listdir(tmp_path / "points")) == 4


def test_in_memory_sweep_writes_nothing(tmp_path, monkeypatch, local_table):
    monkeypatch.chdir(tmp_path)
    res = sweep(BASE, {"alpha": [0.5]}, replicas=1, progress=False)
    assert os.listdir(tmp_path) == [] and "point_files" not in res.meta


# ---------------------------------------------------------------------------- Dask
@requires_dask
def test_dask_executor_gives_the_local_table(client, local_table):
    res = sweep(BASE, GRID, replicas=REPLICAS, executor=client.get_executor(), progress=False)
    assert_same_table(res.table, local_table)
    assert res.meta["threads"] == 1
    # the Client itself is accepted too
    one = {"alpha": [0.5], "beta": [0.5]}  # point 0 of GRID, and the same seed
    res = sweep(BASE, one, replicas=REPLICAS, executor=client, progress=False)
    assert_same_table(res.table, local_table[local_table.point == 0])


@requires_dask
def test_dask_resume_recomputes_only_missing_points(client, tmp_path, local_table):
    executor = client.get_executor()
    first = sweep(
        BASE, GRID, replicas=REPLICAS, executor=executor, progress=False, out_dir=tmp_path
    )
    assert_same_table(first.table, local_table)
    points = tmp_path / "points"
    before = mtimes(points)
    assert len(before) == N_POINTS
    files = first.meta["point_files"]
    os.unlink(files[1])  # lost
    os.unlink(files[4])
    with open(files[2], "r+b") as f:  # damaged: cut in the middle, so it does not load
        f.truncate(os.path.getsize(files[2]) // 2)
    time.sleep(0.01)  # let the clock move on, so rewritten files get new mtimes

    again = sweep(
        BASE, GRID, replicas=REPLICAS, executor=executor, progress=False, out_dir=tmp_path
    )
    assert_same_table(again.table, local_table)
    assert again.meta["points_reused"] == N_POINTS - 3 and again.meta["points_run"] == 3
    after = mtimes(points)
    assert set(after) == set(before)
    redone = {os.path.basename(files[i]) for i in (1, 2, 4)}
    assert {n for n in after if after[n] != before[n]} == redone
    assert (tmp_path / "table.csv").read_text() == local_table.to_csv(index=False)

    # a finished sweep runs nothing when called again
    third = sweep(
        BASE, GRID, replicas=REPLICAS, executor=executor, progress=False, out_dir=tmp_path
    )
    assert third.meta["points_run"] == 0
    assert_same_table(third.table, local_table)
    assert mtimes(points) == after


@requires_dask
def test_dask_sweep_survives_a_killed_worker(client, tmp_path, local_table):
    client.wait_for_workers(2, timeout=60)
    pids_before = set(client.run(os.getpid).values())
    points = tmp_path / "points"
    with ThreadPoolExecutor(1) as runner:
        job = runner.submit(
            sweep,
            BASE,
            GRID,
            replicas=REPLICAS,
            executor=client.get_executor(),
            progress=False,
            out_dir=tmp_path,
        )
        # after the first point is in, kill (SIGKILL) a worker that is running another one
        deadline = time.monotonic() + 60
        killed = None
        while killed is None and time.monotonic() < deadline and not job.done():
            done = len(os.listdir(points)) if points.exists() else 0
            busy = [w for w, keys in client.processing().items() if keys]
            if done >= 1 and busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed = (pid, done)
            time.sleep(0.005)
        res = job.result(timeout=120)
    assert killed is not None, "the sweep ended before a worker could be killed"
    assert killed[1] < N_POINTS  # mid-sweep
    assert_same_table(res.table, local_table)
    assert (res.table.status == "ok").all()
    assert len(os.listdir(points)) == N_POINTS
    # the worker really died (its nanny started a new process)
    client.wait_for_workers(2, timeout=60)
    pids_after = set(client.run(os.getpid).values())
    assert killed[0] in pids_before and killed[0] not in pids_after


@requires_dask
def test_cli_sweep_on_a_scheduler_resumes(client, tmp_path, capsys):
    from lesde.cli import main

    cfg = tmp_path / "sweep.toml"
    cfg.write_text(
        'n_classes = 3\nn_per_class = 20\nsignal = "linear"\nsteps = 200\n'
        "record_every = 100\nthreads = 1\nseed = 4\n\n[grid]\nalpha = [0.5, 2.0]\n"
    )
    address = client.scheduler.address
    out = tmp_path / "out"
    argv = ["sweep", str(cfg), "--scheduler", address, "--out", str(out), "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["points_run"] == 2 and first["points_reused"] == 0
    assert len(os.listdir(out / "points")) == 2
    os.unlink(out / "points" / sorted(os.listdir(out / "points"))[0])
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["points_run"] == 1 and second["points_reused"] == 1
    assert main(["sweep", str(cfg), "--scheduler", address, "--workers", "2"]) == 1
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert (
            main(
                [
                    "sweep",
                    str(cfg),
                    "--scheduler",
                    "tcp://127.0.0.1:1",
                    "--out",
                    str(tmp_path / "x"),
                    "--quiet",
                ]
            )
            == 1
        )
    assert "cannot connect" in capsys.readouterr().err


# ---------------------------------------------------------------------------- MPI
@pytest.mark.skipif(not shutil.which("mpiexec") or sys.platform == "win32", reason="needs mpiexec")
def test_mpi_pool_executor_gives_the_local_table(tmp_path, local_table):
    pytest.importorskip("mpi4py")

    script = tmp_path / "mpi_sweep.py"
    script.write_text(
        "import lesde\n"
        "from mpi4py.futures import MPIPoolExecutor\n"
        "from lesde.sweep import sweep\n"
        f"base = lesde.Config.from_toml({BASE.to_toml()!r})\n"
        # The worker ranks run this script too: only rank 0 may sweep (docs/distributed.md)
        'if __name__ == "__main__":\n'
        "    with MPIPoolExecutor() as pool:\n"
        f"        res = sweep(base, {GRID!r}, replicas={REPLICAS}, executor=pool,\n"
        f"                    progress=False, out_dir={str(tmp_path / 'out')!r})\n"
    )
    proc = subprocess.run(
        ["mpiexec", "-n", "3", sys.executable, "-m", "mpi4py.futures", str(script)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = pd.read_csv(tmp_path / "out" / "table.csv")
    assert (tmp_path / "out" / "table.csv").read_text() == local_table.to_csv(index=False)
    assert len(table) == N_POINTS * REPLICAS


@requires_dask
def test_dask_tasks_get_retries_unless_the_user_chose(client):
    from lesde.sweep.run import DASK_RETRIES, submit_options

    assert submit_options(client.get_executor()) == {"retries": DASK_RETRIES, "pure": False}
    assert submit_options(client.get_executor(retries=5)) == {"pure": False}
    assert submit_options(ThreadPoolExecutor(1)) == {}
