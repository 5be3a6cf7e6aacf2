"""One run sharded over MPI ranks equals the single-process run, bit for bit."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from processes import child_env

import lesde
from lesde.sharded_checkpoint import sharded_part_names

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
    from lesde.mpi import check_shardable, shard_blocks

    with pytest.raises(ValueError, match="sde"):
        check_shardable(lesde.Config(process="sgd"))
    with pytest.raises(ValueError, match="record_samples"):
        check_shardable(lesde.Config(record_samples=3))
    with pytest.raises(ValueError, match="one block per rank"):
        shard_blocks(3000, 0, 4)
    assert shard_blocks(9000, 1, 2) == (2, 5, 3600, 9000)


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
        import lesde.mpi
        res = lesde.mpi.resume_sharded({str(ckpt)!r}, MPI.COMM_WORLD, progress=False)
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
        import lesde, lesde.engine
        comm = MPI.COMM_WORLD
        lesde.engine.CHUNK_SECONDS = 0.25 if comm.rank == 0 else 1e-5
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
    a damaged part makes every rank exit 1 (none waits for the others)."""
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
    assert proc.returncode != 0, "resuming from a damaged part succeeded"
    assert proc.stderr.count(f"{parts[1]}: ") == 2, proc.stderr  # both ranks name the part

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
        import lesde, lesde.storage
        comm = MPI.COMM_WORLD
        write, parts = lesde.storage.write_npz, []

        def failing(path, arrays, header):  # rank 1 cannot write its second part
            if comm.rank == 1 and header["kind"] == "lesde-checkpoint-shard":
                parts.append(path)
                if len(parts) == 2:
                    raise OSError("No space left on device (simulated)")
            return write(path, arrays, header)

        lesde.storage.write_npz = failing
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
