"""One run sharded over MPI ranks equals the single-process run, bit for bit."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import lesde

pytest.importorskip("mpi4py")
pytestmark = pytest.mark.skipif(not shutil.which("mpiexec"), reason="needs mpiexec")

CASES = {
    "euler_cross_entropy": dict(signal="cross_entropy", label_noise=0.1, replicas=2),
    "heun_linear_float32": dict(
        signal="linear", scheme="heun", dtype="float32", alpha=0.3, beta=0.1
    ),
}


def _env():
    import os

    env = dict(os.environ)
    src = str(Path(lesde.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


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
        env=_env(),
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
