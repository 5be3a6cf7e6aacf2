"""One run sharded over MPI ranks equals the single-process run, bit for bit."""

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from processes import child_env

import lesde
from lesde.sim.sharded_checkpoint import sharded_part_names

pytest.importorskip("mpi4py")
pytestmark = pytest.mark.skipif(not shutil.which("mpiexec"), reason="needs mpiexec")

CASES = {
    "euler_cross_entropy": dict(signal="cross_entropy", label_noise=0.1, replicas=2),
    "heun_linear_float32": dict(
        signal="linear", scheme="heun", dtype="float32", alpha=0.3, beta=0.1
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_two_ranks_give_the_single_process_result(case, tmp_path):
    fields = dict(
        n_classes=3,
        n_per_class=3000,
        sigma=0.5,
        steps=20,
        record_every=5,
        threads=1,
        seed=11,
        **CASES[case],
    )  # 9000 samples: 5 blocks over 2 ranks
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        from mpi4py import MPI
        import lesde
        res = lesde.simulate(lesde.Config(**{fields!r}), comm=MPI.COMM_WORLD, progress=False)
        if MPI.COMM_WORLD.rank == 0:
            res.save({str(tmp_path / "mpi.npz")!r})
    """)
    )
    proc = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, str(script)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    sharded = lesde.load(tmp_path / "mpi.npz")
    single = lesde.simulate(lesde.Config(**fields), progress=False)
    assert sharded.meta["mpi_ranks"] == 2
    for name in ("features", "labels", "class_means", "label_means", "sigma_w"):
        np.testing.assert_array_equal(
            getattr(sharded, name),
            getattr(single, name),
            err_msg=f"{case}: {name} differs between 1 and 2 ranks",
        )
    for name, values in single.metrics.items():
        np.testing.assert_array_equal(sharded.metrics[name], values, err_msg=name)


def test_sharding_rejects_what_it_does_not_support():
    from lesde.sim.mpi import check_shardable, shard_blocks

    with pytest.raises(ValueError, match="sde"):
        check_shardable(lesde.Config(process="sgd"))
    with pytest.raises(ValueError, match="record_samples"):
        check_shardable(lesde.Config(record_samples=3))
    assert shard_blocks(9000, 1, 2) == (2, 5, 3600, 9000)


def test_more_ranks_than_blocks_is_no_refusal():
    """3000 samples make 2 blocks: over 4 ranks, two own none; together they own all."""
    from lesde.sim.mpi import shard_blocks

    layout = [shard_blocks(3000, r, 4) for r in range(4)]
    assert [hi - lo for _, _, lo, hi in layout] == [0, 1500, 0, 1500]
    assert [b for r in range(1000) for b in shard_blocks(10**6, r, 1000)[:2]][-1] == 489


THREE_RANKS = {
    # 540,000 samples: 264 blocks, added by the pairwise tree (over 256 blocks)
    "tree_two_point": dict(
        n_classes=3, n_per_class=180_000, noise="two_point", signal="cross_entropy"
    ),
    # 4,000 samples: 2 blocks over 3 ranks, rank 0 owns none
    "empty_rank_three_point_heun": dict(
        n_classes=2, n_per_class=2000, noise="three_point", scheme="heun", label_noise=0.1
    ),
}


def test_three_ranks_give_the_single_process_result(tmp_path):
    """mpiexec -n 3, once: a run over 256 blocks (the tree order) and one where a rank owns
    no sample, each equal bit for bit to one process on 2 threads."""
    common = dict(sigma=0.5, steps=4, record_every=2, seed=7, replicas=2, threads=1)
    cases = {name: {**common, **fields} for name, fields in THREE_RANKS.items()}
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        from mpi4py import MPI
        import lesde
        for name, fields in {cases!r}.items():
            res = lesde.simulate(lesde.Config(**fields), comm=MPI.COMM_WORLD, progress=False)
            if MPI.COMM_WORLD.rank == 0:
                res.save({str(tmp_path)!r} + "/" + name + ".npz")
    """)
    )
    proc = subprocess.run(
        ["mpiexec", "-n", "3", sys.executable, str(script)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name, fields in cases.items():
        sharded = lesde.load(tmp_path / f"{name}.npz")
        single = lesde.simulate(lesde.Config(**{**fields, "threads": 2}), progress=False)
        assert sharded.meta["mpi_ranks"] == 3
        for field in ("features", "labels", "class_means", "label_means", "sigma_w"):
            assert getattr(sharded, field).tobytes() == getattr(single, field).tobytes(), (
                f"{name}: {field} differs between 1 process and 3 ranks"
            )
        for metric, values in single.metrics.items():
            assert sharded.metrics[metric].tobytes() == values.tobytes(), (name, metric)


def test_a_rank_allocates_and_checks_only_its_own_samples(monkeypatch):
    """Each rank holds its samples' state (not the run's) and checks that much memory; rank
    0 also the features it gathers at the end."""
    from lesde.io import storage
    from lesde.sim import mpi
    from lesde.sim.engine import InsufficientMemoryError

    cfg = lesde.Config(
        n_classes=2, n_per_class=200_000, dim=8, signal="linear", steps=2, record_every=1
    )
    records = cfg.record_bytes()
    per_rank = cfg.state_bytes() // 4 + records
    for rank in range(4):
        _, _, lo, hi = mpi.shard_blocks(cfg.n_samples, rank, 4)
        samples, arrays, _ = mpi._shard(cfg, _RankOf(rank, 4))
        assert samples == (lo, hi)
        assert arrays["features"].shape == (1, hi - lo, 8)
        assert arrays["labels"].shape == (1, hi - lo) and arrays["classes"].shape == (hi - lo,)
        assert arrays["classes"].tolist() == [int(lo + i >= 200_000) for i in range(hi - lo)]
    # Memory for a quarter of the state and more, not for all of it: ranks 1-3 fit, rank
    # 0 (which gathers the whole features at the end) is refused.
    monkeypatch.setattr(storage, "memory_limits", lambda: {"MemAvailable": 2 * per_rank})
    for rank in (1, 2, 3):
        mpi._shard(cfg, _RankOf(rank, 4))
    with pytest.raises(InsufficientMemoryError, match="GiB"):
        mpi._shard(cfg, _RankOf(0, 4))


# ---------------------------------------------------------------------- sharded checkpoints
KILLED = dict(
    n_classes=3,
    n_per_class=1400,  # 4200 samples: 3 blocks over 2 ranks
    signal="cross_entropy",
    label_noise=0.1,
    sigma=0.5,
    replicas=2,
    steps=800,
    record_every=10,
    threads=1,
    seed=7,
)


def _mpiexec(args, **kwargs):
    return subprocess.run(
        ["mpiexec", "-n", "2", *args], env=child_env(), capture_output=True, text=True, **kwargs
    )


def _manifest_step(path):
    with np.load(path) as data:
        return json.loads(str(data["header"]))["step"]


def test_a_rank_killed_after_a_checkpoint_resumes_bit_identically(tmp_path):
    """Each rank writes its part of every checkpoint, rank 0 the manifest last. Rank 1 is
    killed (SIGKILL) once the first checkpoint exists; resumed on two ranks, the run
    equals the uninterrupted single-process run bit for bit."""
    ckpt, out = tmp_path / "run.ckpt", tmp_path / "resumed.npz"
    run = tmp_path / "run.py"
    run.write_text(
        textwrap.dedent(f"""
        import os
        from mpi4py import MPI
        import lesde
        comm = MPI.COMM_WORLD
        open({str(tmp_path)!r} + f"/pid{{comm.rank}}", "w").write(str(os.getpid()))
        lesde.simulate(lesde.Config(**{KILLED!r}), comm=comm, progress=False,
                       checkpoint={str(ckpt)!r}, checkpoint_every=50)
    """)
    )
    child = subprocess.Popen(
        ["mpiexec", "-n", "2", sys.executable, str(run)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not ckpt.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(int((tmp_path / "pid1").read_text()), signal.SIGKILL)
        output = child.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        child.kill()
    step = _manifest_step(ckpt)
    assert child.returncode != 0 and step < KILLED["steps"], (
        f"the run was not killed mid-run (exit {child.returncode}, checkpoint at step {step}); "
        f"lengthen it. Output: {output[-2000:]}"
    )

    resume = tmp_path / "resume.py"
    resume.write_text(
        textwrap.dedent(f"""
        from mpi4py import MPI
        import lesde.sim.mpi
        res = lesde.sim.mpi.resume_sharded({str(ckpt)!r}, MPI.COMM_WORLD, progress=False)
        if MPI.COMM_WORLD.rank == 0:
            res.save({str(out)!r})
    """)
    )
    proc = _mpiexec([sys.executable, str(resume)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = lesde.load(out)
    single = lesde.simulate(lesde.Config(**KILLED), progress=False)
    assert resumed.meta["resumed_from_step"] == step
    for name in ("features", "labels", "class_means", "label_means", "sigma_w", "fail_step"):
        assert np.array_equal(getattr(resumed, name), getattr(single, name)), (
            f"{name} of the run resumed from step {step} differs from the uninterrupted run"
        )
    for name, values in single.metrics.items():
        assert resumed.metrics[name].tobytes() == values.tobytes(), f"metric {name} differs"
    # The last checkpoint holds the finished run, and only its parts are left.
    assert _manifest_step(ckpt) == KILLED["steps"]
    records, parts = sharded_part_names(ckpt, KILLED["steps"], 2)
    left = sorted(p.name for p in tmp_path.glob("run.ckpt.*"))
    assert left == sorted([records, *parts]), f"stale parts left: {left}"


def test_ranks_cut_their_chunks_at_the_same_step(tmp_path):
    """The run loop sizes its chunks from each rank's own timing. The engine runs replica
    after replica within a chunk, so ranks that cut chunks at different steps paired one
    replica's exchanges with another's ("Message truncated"). Here the ranks aim at
    chunks of very different lengths; the run must still equal the single-process one."""
    fields = {**KILLED, "steps": 120, "record_every": 7}
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        from mpi4py import MPI
        import lesde, lesde.sim.engine
        comm = MPI.COMM_WORLD
        lesde.sim.engine.CHUNK_SECONDS = 0.25 if comm.rank == 0 else 1e-5
        res = lesde.simulate(lesde.Config(**{fields!r}), comm=comm, progress=False)
        if comm.rank == 0:
            res.save({str(tmp_path / "mpi.npz")!r})
    """)
    )
    proc = _mpiexec([sys.executable, str(script)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = lesde.load(tmp_path / "mpi.npz")
    single = lesde.simulate(lesde.Config(**fields), progress=False)
    for name in ("features", "class_means", "sigma_w"):
        assert np.array_equal(getattr(sharded, name), getattr(single, name)), name


def test_cli_runs_and_resumes_sharded_and_refuses_a_damaged_part(tmp_path):
    """`mpiexec -n 2 lesde run cfg.toml --mpi --checkpoint ...` and `lesde resume --mpi`;
    a damaged part makes every rank exit 1 (none waits for the others), with one line that
    rank 0 prints for rank 1."""
    cfg = lesde.Config(**{**KILLED, "steps": 60})
    (tmp_path / "cfg.toml").write_text(cfg.to_toml())
    ckpt, out, again = tmp_path / "run.ckpt", tmp_path / "run.npz", tmp_path / "again.npz"
    lesde_cli = [sys.executable, "-m", "lesde"]
    run = [*lesde_cli, "run", str(tmp_path / "cfg.toml"), "--mpi", "--quiet"]
    proc = _mpiexec([*run, "--out", str(out), "--checkpoint", str(ckpt)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded, single = lesde.load(out), lesde.simulate(cfg, progress=False)
    assert sharded.meta["mpi_ranks"] == 2
    assert np.array_equal(sharded.features, single.features)
    assert _manifest_step(ckpt) == cfg.n_steps

    resume = [*lesde_cli, "resume", str(ckpt), "--mpi", "--quiet", "--out", str(again)]
    proc = _mpiexec(resume, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.array_equal(lesde.load(again).features, single.features)

    _, parts = sharded_part_names(ckpt, cfg.n_steps, 2)
    damaged = bytearray((tmp_path / parts[1]).read_bytes())
    damaged[len(damaged) // 3] ^= 0xFF
    (tmp_path / parts[1]).write_bytes(bytes(damaged))
    proc = _mpiexec(resume, timeout=120)
    assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stderr.count(f"{parts[1]}: ") == 1, proc.stderr  # one line, for both ranks
    assert "lesde: error: rank 1: " in proc.stderr, proc.stderr

    single_process = subprocess.run(
        [*lesde_cli, "resume", str(ckpt)], env=child_env(), capture_output=True, text=True
    )
    assert single_process.returncode == 1
    assert "sharded over MPI ranks" in single_process.stderr and "--mpi" in single_process.stderr


def test_a_part_that_cannot_be_written_fails_every_rank_and_keeps_the_last_checkpoint(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        from mpi4py import MPI
        import lesde, lesde.io.storage
        comm = MPI.COMM_WORLD
        write, parts = lesde.io.storage.write_npz, []

        def failing(path, arrays, header):  # rank 1 cannot write its second part
            if comm.rank == 1 and header["kind"] == "lesde-checkpoint-shard":
                parts.append(path)
                if len(parts) == 2:
                    raise OSError("No space left on device (simulated)")
            return write(path, arrays, header)

        lesde.io.storage.write_npz = failing
        try:
            lesde.simulate(lesde.Config(**{KILLED!r}), comm=comm, progress=False,
                           checkpoint={str(ckpt)!r}, checkpoint_every=50)
        except OSError as err:  # one file per rank: mpiexec may splice the ranks' stdout lines
            with open({str(tmp_path)!r} + f"/rank{{comm.rank}}.err", "w") as out:
                out.write(str(err))
    """)
    )
    proc = _mpiexec([sys.executable, str(script)], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    caught = {p.name: p.read_text() for p in sorted(tmp_path.glob("rank*.err"))}
    assert sorted(caught) == ["rank0.err", "rank1.err"], f"ranks that raised OSError: {caught}"
    assert caught["rank0.err"] == caught["rank1.err"], f"ranks disagree: {caught}"
    assert "No space left" in caught["rank0.err"], caught
    assert _manifest_step(ckpt) == 50, "the first checkpoint must be kept whole"


# ---------------------------------------------------------------------- Ctrl-C on every rank
INTERRUPTED = dict(
    n_classes=3,
    n_per_class=700,  # 2100 samples: 2 blocks, one per rank
    signal="cross_entropy",
    label_noise=0.1,
    sigma=0.5,
    steps=30000,  # about 2 s on two ranks: Ctrl-C lands in the run on a quiet machine too
    record_every=1500,
    threads=1,
    seed=5,
)
# Each rank runs the `lesde` command through this, which says when it is running (its pid
# file) and how it ended (its exit status), since mpiexec reports one status for all.
RANK_WRAPPER = """
import os, sys
from mpi4py import MPI
import lesde.cli
rank = MPI.COMM_WORLD.rank
folder = sys.argv[1]
open(os.path.join(folder, f"pid{rank}"), "w").write(str(os.getpid()))
code = lesde.cli.main(sys.argv[2:])
open(os.path.join(folder, f"exit{rank}"), "w").write(str(code))
sys.exit(code)
"""


def _same_run(result, reference, what):
    for name in ("features", "labels", "class_means", "label_means", "sigma_w", "fail_step"):
        assert np.array_equal(getattr(result, name), getattr(reference, name)), (
            f"{what}: {name} differs from the uninterrupted run"
        )
    for name, values in reference.metrics.items():
        assert result.metrics[name].tobytes() == values.tobytes(), f"{what}: metric {name}"


@pytest.fixture(scope="module")
def uninterrupted():
    return lesde.simulate(lesde.Config(**INTERRUPTED), progress=False)


@pytest.mark.parametrize(
    "how, seed",
    [("to rank 1", 1), ("to mpiexec, which forwards it to every rank", 2), ("twice", 3)],
)
def test_ctrl_c_stops_every_rank_at_one_step_and_resumes_bit_identically(
    how, seed, tmp_path, uninterrupted
):
    """Ctrl-C reached the ranks at different chunk boundaries, their collectives no longer
    paired up and they hung (10 of 14 tries). Now every rank sees it at the same boundary,
    the run goes on to the next record step, writes the checkpoint there and every rank
    exits 130; a second Ctrl-C stops them all without it. Resumed, the run equals the
    uninterrupted one bit for bit."""
    (tmp_path / "cfg.toml").write_text(lesde.Config(**INTERRUPTED).to_toml())
    (tmp_path / "rank.py").write_text(RANK_WRAPPER)
    ckpt, out = tmp_path / "run.ckpt", tmp_path / "run.npz"
    lesde_cmd = [sys.executable, str(tmp_path / "rank.py"), str(tmp_path)]
    run = [*lesde_cmd, "run", str(tmp_path / "cfg.toml"), "--mpi", "--quiet"]
    run += ["--out", str(out), "--checkpoint", str(ckpt), "--checkpoint-every", "1500"]
    child = subprocess.Popen(
        ["mpiexec", "-n", "2", *run],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids = [tmp_path / "pid0", tmp_path / "pid1"]
    try:
        deadline = time.monotonic() + 60
        while not all(p.exists() for p in pids) and time.monotonic() < deadline:
            time.sleep(0.005)
        while not ckpt.exists() and time.monotonic() < deadline:  # the run is stepping
            time.sleep(0.005)
        time.sleep(random.Random(seed).uniform(0.0, 0.3))  # into the run, at a seeded moment
        rank0, rank1 = (int(p.read_text()) for p in pids)
        if how == "to rank 1":
            os.kill(rank1, signal.SIGINT)
        elif how == "twice":  # apart by more than a chunk: two Ctrl-C, not one
            while not ckpt.exists() and time.monotonic() < deadline:  # after a checkpoint
                time.sleep(0.005)
            os.kill(rank0, signal.SIGINT)
            time.sleep(0.4)
            with contextlib.suppress(ProcessLookupError):
                os.kill(rank0, signal.SIGINT)
        else:
            child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=60)  # a hang fails here
    finally:
        child.kill()
        child.communicate()
    exits = [
        (tmp_path / f"exit{r}").read_text() for r in range(2) if (tmp_path / f"exit{r}").exists()
    ]
    assert exits == ["130", "130"], f"exit statuses {exits} (mpiexec {child.returncode}): {stderr}"
    step = _manifest_step(ckpt)
    assert 0 < step < INTERRUPTED["steps"], f"checkpoint at step {step}; lengthen the run"
    assert f"continue from step {step} with: mpiexec -n 2 lesde resume" in stderr, stderr
    assert stderr.count("lesde: interrupted") == 1, stderr  # one line, from rank 0
    if how != "twice":  # the checkpoint is of the step the run stopped at
        assert lesde.load(out).steps_done == step

    resume = [*lesde_cmd, "resume", str(ckpt), "--mpi", "--quiet", "--out", str(out)]
    proc = _mpiexec(resume, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = lesde.load(out)
    assert (
        resumed.meta["resumed_from_step"] == step and resumed.steps_done == resumed.config.n_steps
    )
    _same_run(resumed, uninterrupted, f"Ctrl-C {how}, resumed from step {step}")


def test_the_ranks_agree_on_ctrl_c_and_a_second_one(tmp_path):
    """The decisions of the lock-step, on one rank (deterministic): Ctrl-C during a chunk
    runs on to the next record step and checkpoints there; a second one, at a later chunk
    boundary, stops at once and leaves the checkpoint on disk as it was."""
    from mpi4py import MPI

    import lesde.sim.engine
    import lesde.sim.mpi
    from lesde.sim.sharded_checkpoint import ShardedCheckpointer

    cfg = lesde.Config(**{**INTERRUPTED, "steps": 600, "record_every": 100})
    full = lesde.simulate(cfg, progress=False)
    propose = ShardedCheckpointer.proposal
    # (chunk boundaries where Ctrl-C is pressed, step it stops at (None: the last press's
    # boundary), checkpoint left on disk)
    for presses, stopped, kept in [((3,), 100, 100), ((3, 4), None, None), ((150, 152), None, 100)]:
        boundaries = []

        def proposal(self, step, presses=presses, boundaries=boundaries):  # at each boundary
            boundaries.append(step)
            if len(boundaries) in presses:
                os.kill(os.getpid(), signal.SIGINT)
            return propose(self, step)

        path = tmp_path / f"run{len(presses)}-{presses[0]}.ckpt"
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ShardedCheckpointer, "proposal", proposal)
            patch.setattr(lesde.sim.engine, "CHUNK_SECONDS", 1e-9)  # chunks of one step
            with pytest.warns(lesde.sim.engine.RunInterruptedWarning):
                res = lesde.sim.mpi.simulate_sharded(
                    cfg,
                    MPI.COMM_SELF,
                    progress=False,
                    on_nonfinite="raise",
                    checkpoint=path,
                    checkpoint_every=100,
                )
        stopped = boundaries[presses[-1] - 1] if stopped is None else stopped
        assert res.interrupted and res.steps_done == stopped, (presses, res.steps_done)
        assert res.meta["checkpoint_step"] == kept, (presses, res.meta)
        if kept is not None:
            _same_run(
                lesde.sim.mpi.resume_sharded(path, MPI.COMM_SELF, progress=False), full, presses
            )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------------- agreed checks
EVEN = dict(KILLED, n_per_class=1200, steps=60)  # 3600 samples: 2 blocks of 1800, one per rank


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    """Two sharded checkpoints (2 ranks, step 60) of runs that differ by their seed."""
    folder = tmp_path_factory.mktemp("sharded")
    script = folder / "write.py"
    script.write_text(
        textwrap.dedent(f"""
        from mpi4py import MPI
        import lesde
        for seed in (7, 8):
            cfg = lesde.Config(**{{**{EVEN!r}, "seed": seed}})
            lesde.simulate(cfg, comm=MPI.COMM_WORLD, progress=False,
                           checkpoint={str(folder)!r} + f"/seed{{seed}}/run.ckpt")
    """)
    )
    proc = _mpiexec([sys.executable, str(script)], timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


@pytest.fixture
def checkpoint(two_checkpoints, tmp_path):
    """A copy of the seed-7 checkpoint (its manifest), with the seed-8 one beside it."""
    for seed in (7, 8):
        shutil.copytree(two_checkpoints / f"seed{seed}", tmp_path / f"seed{seed}")
    return tmp_path / "seed7" / "run.ckpt"


def _rank_wrapper(folder):
    wrapper = folder / "rank.py"
    wrapper.write_text(
        "import os\n"
        "if os.environ.get('LESDE_TEST_NO_MEMORY'):\n"
        "    import lesde.sim.engine\n"
        "    def check_memory(cfg):\n"
        "        raise lesde.sim.engine.InsufficientMemoryError('no memory on this rank')\n"
        "    lesde.sim.engine.check_memory = check_memory\n"
        "if os.environ.get('LESDE_TEST_CTRL_C_AT_START'):\n"
        "    import signal, lesde.cli.run\n"
        "    start = lesde.cli.run.mpi_comm\n"
        "    def mpi_comm(mpi):  # Ctrl-C while MPI starts\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        return start(mpi)\n"
        "    lesde.cli.run.mpi_comm = mpi_comm\n" + RANK_WRAPPER
    )
    return [sys.executable, str(wrapper), str(folder)]


def _ranks(folder, *args, rank1=None, env1=()):
    """mpiexec -n 2 of the `lesde` command ``args``; rank 1 runs in folder ``rank1`` (a file
    system that differs from rank 0's, as on two nodes) with ``env1``."""
    lesde_cmd = _rank_wrapper(folder)
    one = ["-n", "1", "-wdir", str(folder), *lesde_cmd, *args]
    other = ["-n", "1", "-wdir", str(rank1 or folder)]
    for name in env1:
        other += ["-env", name, "1"]
    return subprocess.run(
        ["mpiexec", *one, ":", *other, *lesde_cmd, *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,  # a rank left waiting for the others fails here
    )


def test_a_check_that_fails_on_one_rank_fails_on_every_rank(checkpoint, tmp_path):
    """Rank 0 alone checked `lesde resume --mpi --out`, printed the error and left; rank 1
    waited for it for ever. Now every check that can fail on one rank (arguments, outputs,
    the config file, memory, the checkpoint's parts) is agreed by every rank before any
    collective: each exits with the same status, and rank 0 prints the one line (naming the
    rank that failed, when it is not rank 0). So is a Ctrl-C on one rank while MPI starts."""
    (tmp_path / "cfg.toml").write_text(lesde.Config(**EVEN).to_toml())
    elsewhere = tmp_path / "node2"  # what rank 1 sees instead
    elsewhere.mkdir()
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("not a folder")
    ckpt = str(checkpoint)
    resume = ["resume", ckpt, "--mpi", "--quiet"]
    run = ["run", "cfg.toml", "--mpi", "--quiet", "--out", "run.npz"]
    _, parts = sharded_part_names(checkpoint, EVEN["steps"], 2)
    fifo_part = checkpoint.parent / parts[1]
    cases = [  # (args, rank 1's folder, rank 1's environment, exit status, message)
        ([*resume, "--out", "a_folder"], None, (), 1, "lesde: error: --out 'a_folder' is a folder"),
        ([*resume, "--out", "a_file/run.npz"], None, (), 1, "'a_file' is not a folder"),
        (run, elsewhere, (), 1, "lesde: error: rank 1: config file 'cfg.toml' not found"),
        (run, None, ("LESDE_TEST_NO_MEMORY",), 2, "lesde: error: rank 1: no memory on this rank"),
        (run, None, ("LESDE_TEST_CTRL_C_AT_START",), 130, "lesde: interrupted"),
        (
            [*resume, "--out", "resumed.npz"],
            None,
            (),
            1,
            f"lesde: error: rank 1: {fifo_part}: a FIFO",
        ),
    ]
    for args, rank1, env1, status, message in cases:
        if "a FIFO" in message:
            fifo_part.unlink()
            os.mkfifo(fifo_part)
        for name in ("exit0", "exit1"):
            (tmp_path / name).unlink(missing_ok=True)
        proc = _ranks(tmp_path, *args, rank1=rank1, env1=env1)
        exits = [(tmp_path / f"exit{r}").read_text() for r in range(2)]
        assert exits == [str(status)] * 2, f"{args}: exit statuses {exits}: {proc.stderr}"
        head = "lesde: interrupted" if status == 130 else "lesde: error:"
        assert proc.stderr.count(head) == 1 and message in proc.stderr, f"{args}: {proc.stderr}"
    # --out a folder on rank 1's file system only
    (elsewhere / "cfg.toml").write_text(lesde.Config(**EVEN).to_toml())
    (elsewhere / "run.npz").mkdir()
    proc = _ranks(tmp_path, *run, rank1=elsewhere)
    assert proc.returncode == 1 and "lesde: error: rank 1: --out 'run.npz' is a folder" in (
        proc.stderr
    ), proc.stderr
    assert not (tmp_path / "run.npz").exists()  # nothing ran


def test_an_error_on_one_rank_mid_run_aborts_every_rank(tmp_path):
    """An error that reaches one rank in the middle of the run, while the others wait for
    it in a collective, aborts them all (MPI_Abort) with one line naming the rank."""
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(f"""
        from mpi4py import MPI
        import lesde
        from lesde.sim.sharded_checkpoint import ShardedCheckpointer
        comm, chunks, write = MPI.COMM_WORLD, [], ShardedCheckpointer.maybe_write

        def maybe_write(self, step, arrays, wall_seconds):  # rank 1 fails after 5 chunks
            chunks.append(step)
            if comm.rank == 1 and len(chunks) == 5:
                raise RuntimeError("a failure of rank 1 alone (simulated)")
            return write(self, step, arrays, wall_seconds)

        ShardedCheckpointer.maybe_write = maybe_write
        lesde.simulate(lesde.Config(**{EVEN!r}), comm=comm, progress=False,
                       checkpoint={str(tmp_path / "run.ckpt")!r})
    """)
    )
    proc = _mpiexec([sys.executable, str(script)], timeout=60)
    assert proc.returncode != 0
    assert "lesde: error: rank 1 of 2 failed in the middle of a sharded run" in proc.stderr
    assert "a failure of rank 1 alone" in proc.stderr, proc.stderr


def test_a_numerical_failure_saves_the_whole_partial_result(tmp_path):
    """A replica that becomes non-finite fails on every rank alike (the records are the
    same on all); the partial result that rank 0 saves holds every rank's samples."""
    cfg = lesde.Config(**{**EVEN, "signal": "linear", "alpha": 1e300, "init_scale": 1e300})
    (tmp_path / "cfg.toml").write_text(cfg.to_toml())
    run = ["run", "cfg.toml", "--mpi", "--quiet", "--out", "partial.npz"]
    proc = _ranks(tmp_path, *run)
    exits = [(tmp_path / f"exit{r}").read_text() for r in range(2)]
    assert exits == ["2", "2"] and "numerical failure" in proc.stderr, (exits, proc.stderr)
    partial = lesde.load(tmp_path / "partial.npz")
    assert partial.features.shape[1] == cfg.n_samples and not partial.ok


# ---------------------------------------------------------------------- bound to their run
class _RankOf:
    """Rank ``rank`` of ``size``, in one process: enough to read a part of a sharded
    checkpoint (reading only agrees; every rank here sees what this one sees)."""

    def __init__(self, rank, size=2):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def allgather(self, value):
        return [value] * self.size


def _read(path, rank):
    from lesde.sim.mpi import shard_blocks
    from lesde.sim.sharded_checkpoint import read_sharded_checkpoint

    layout = lambda cfg: shard_blocks(cfg.n_samples, rank, 2)[2:]  # noqa: E731
    return read_sharded_checkpoint(path, _RankOf(rank), layout)


def _rewrite(path, edit, seal=True):
    """Rewrite the npz ``path`` with its header edited by ``edit``; with ``seal`` as a
    forger who knows the format would: the manifest's digest recomputed (if it has one)."""
    from lesde.io import storage
    from lesde.sim.checkpoint import checkpoint_digest

    with np.load(path) as data:
        header = json.loads(str(data["header"]))
        arrays = {name: data[name] for name in data.files if name != "header"}
    edit(header)
    if seal and "sha256" in arrays and len(arrays) == 1:  # a manifest: digest of its header
        arrays["sha256"] = np.array(checkpoint_digest(storage.header_text(header), {}))
    storage.write_npz(path, arrays, header)


@pytest.mark.parametrize("field, value", [("seed", 8), ("alpha", 2.0), ("steps", 120)])
def test_an_edited_manifest_is_refused(checkpoint, field, value):
    """The manifest had no digest: an edited config (seed, alpha, steps) resumed into
    another run. It now carries a SHA-256 digest of its header, as a single-file checkpoint."""
    assert _read(checkpoint, 0).config.seed == 7

    def edit(header):
        cfg = lesde.Config.from_toml(header["config_toml"])
        header["config_toml"] = cfg.replace(**{field: value}).to_toml()

    _rewrite(checkpoint, edit, seal=False)
    for rank in (0, 1):
        with pytest.raises(ValueError, match="edited sharded checkpoint manifest"):
            _read(checkpoint, rank)


@pytest.mark.parametrize("order", [None, 1, 3])
def test_a_manifest_of_another_reduction_order_is_refused_where_it_matters(checkpoint, order):
    """A run resumed must not mix summation orders. Orders 1 (before the reduction tree:
    no field) and 2 add the same way up to 256 blocks (this run's 3 blocks): resumed; an
    order this lesde does not know is refused on every rank."""
    _rewrite(
        checkpoint,
        lambda h: h.pop("reduction_order") if order is None else h.update(reduction_order=order),
    )
    for rank in (0, 1):
        if order == 3:
            with pytest.raises(ValueError, match="reduction order 3, this lesde in order 2"):
                _read(checkpoint, rank)
        else:
            assert _read(checkpoint, rank).config.seed == 7


def test_a_manifest_of_another_random_stream_is_refused(checkpoint):
    """A sharded checkpoint drawn with another random stream (here Box-Muller's, version 2)
    cannot be continued identically: every rank refuses it, naming both versions."""
    _rewrite(checkpoint, lambda h: h.update(random_stream_version=2))
    for rank in (0, 1):
        with pytest.raises(ValueError, match="random-stream version 2, this lesde draws version"):
            _read(checkpoint, rank)


def _entry(header, rank):
    return header["shards"][rank]


def test_a_part_of_another_run_or_rank_is_refused(checkpoint):
    """Each part carries the identity of its run (config, step, ranks) and its rank: a
    part of another run, or a part under another rank's name, is refused even when the
    manifest was re-sealed to name it (its digest recomputed)."""
    from lesde.sim.checkpoint import checkpoint_digest

    _, parts = sharded_part_names(checkpoint, EVEN["steps"], 2)
    folder, other = checkpoint.parent, checkpoint.parent.parent / "seed8"

    def digest_of(file):
        with np.load(file) as data:
            arrays = {n: data[n] for n in data.files if n not in ("header", "sha256")}
            return checkpoint_digest(str(data["header"]), arrays)

    # rank 1's part of the seed-8 run, in place of this run's
    shutil.copyfile(other / parts[1], folder / parts[1])
    _rewrite(checkpoint, lambda h: _entry(h, 1).update(sha256=digest_of(folder / parts[1])))
    with pytest.raises(ValueError, match=r"rank1-of-2: not the rank 1's part .* another run"):
        _read(checkpoint, 1)

    # the parts of rank 0 and rank 1 swapped (renamed), the manifest re-sealed to match
    shutil.copytree(other, folder, dirs_exist_ok=True)
    checkpoint = folder / "run.ckpt"
    os.rename(folder / parts[0], folder / "swap")
    os.rename(folder / parts[1], folder / parts[0])
    os.rename(folder / "swap", folder / parts[1])

    def swap(header):
        _entry(header, 0)["sha256"], _entry(header, 1)["sha256"] = (
            _entry(header, 1)["sha256"],
            _entry(header, 0)["sha256"],
        )

    _rewrite(checkpoint, swap)
    for rank in (0, 1):
        with pytest.raises(ValueError, match=f"it is the part of rank {1 - rank}"):
            _read(checkpoint, rank)


def test_a_sharded_checkpoint_of_an_older_format_is_refused_by_version(checkpoint):
    _rewrite(checkpoint, lambda header: header.update(format_version=1))
    with pytest.raises(ValueError, match="format version 1 cannot be read .* reads version 2"):
        _read(checkpoint, 0)


def test_fifos_are_refused_as_parts_manifests_and_checkpoint_paths(checkpoint, tmp_path):
    """A FIFO where a part, the records or the manifest should be is refused without
    blocking; so is a FIFO at the checkpoint path of a new run (writing would replace it)."""
    from mpi4py import MPI

    records, parts = sharded_part_names(checkpoint, EVEN["steps"], 2)
    outcome = {}

    def read(path, rank):
        try:
            _read(path, rank)
        except ValueError as err:
            outcome[path, rank] = str(err)

    for name, rank in [(parts[1], 1), (records, 0), (checkpoint.name, 0)]:
        fifo = checkpoint.parent / name
        fifo.unlink()
        os.mkfifo(fifo)
        reader = threading.Thread(target=read, args=(checkpoint, rank), daemon=True)
        reader.start()
        reader.join(timeout=20)
        assert not reader.is_alive(), f"reading a FIFO as {name} blocks"
        assert "a FIFO, not a regular file" in outcome.pop((checkpoint, rank)), name

    from lesde.sim.mpi import simulate_sharded

    fifo = tmp_path / "new.ckpt"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="new.ckpt' is a FIFO"):
        simulate_sharded(
            lesde.Config(**EVEN),
            MPI.COMM_SELF,
            progress=False,
            on_nonfinite="raise",
            checkpoint=fifo,
        )
    assert fifo.exists() and not fifo.is_file()
