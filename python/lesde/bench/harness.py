"""The timing harness: every backend of :mod:`lesde.bench.baselines` on the same problem,
each checked against the float64 reference before it is timed, each configuration in its
own pinned subprocess, and every row compared with the NumPy baseline of the same run.

Rows are JSON-serialisable dicts with at least
    backend, signal, N, K, p, dtype, threads, seconds_per_step, sample_dims_per_s
plus seconds_per_step_median, min_traffic_GBps (2 * N * p * itemsize / seconds_per_step: the
bandwidth implied by the unavoidable read + write of X once per step, to compare with
:mod:`lesde.bench.bandwidth`), ``check_error`` / ``check_tolerance`` (the backend against
the float64 reference with sigma = 0, on a small problem, before timing), status ("ok",
"unavailable": torch or jax missing, "wrong": the check failed, nothing timed, "error"),
notes, versions and load diagnostics; :func:`add_speedups` adds ``speedup_vs_numpy``.

Verification. A benchmark of a wrong implementation measures something else, so
:func:`bench_one` first runs :func:`~lesde.bench.baselines.check_against_reference` for the
row's backend, dtype and thread count (N = 997, 5 steps, a random E, unbalanced classes,
corrupted labels) and times only a backend that passes it.

Timing: one warm-up ``run(n_steps)`` (JAX compiles here; it also faults pages in), then
``repeats`` timed ``run(n_steps)`` calls with ``time.perf_counter``; seconds_per_step is the
best (minimum) over repeats divided by n_steps, the median is reported too. Every
``run`` blocks until the work is finished (JAX: ``block_until_ready``).

Thread control (honest limits). By default every configuration runs in a fresh subprocess
that, before importing NumPy / torch / JAX:
  * pins itself to ``threads`` CPUs with ``os.sched_setaffinity`` (a hard limit that every
    library respects: OpenMP, OpenBLAS, MKL and XLA size their pools from the mask);
  * sets OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS = threads;
  * for torch calls ``torch.set_num_threads(threads)``;
  * for JAX sets ``--xla_cpu_multi_thread_eigen=false`` when threads == 1 (XLA has no flag
    for its CPU thread-pool size; the affinity mask is what limits it).
OPENBLAS_CORETYPE and other inherited variables are passed through untouched.
NumPy's element-wise ufuncs and its random generators are single-threaded whatever these
settings say; ``numpy_mt`` is the explicitly threaded NumPy baseline.
In-process mode (``subprocess=False``) cannot change JAX's thread setting after the first
import and leaves affinity alone; use it for quick experiments only.

Noise from other processes: this machine is shared; each row records ``cpu_busy_other``,
the fraction of all CPUs busy during a 0.25 s idle probe just before timing, and the
1-minute load average. Treat wall times of rows with cpu_busy_other > 0.1 with suspicion;
``cpu_seconds_per_step`` (process CPU time, best over repeats) is then the better figure
for threads == 1 (for threads > 1 it is the sum over threads, not a wall time).

Examples
--------
>>> row = bench_one("numpy", "linear", 2000, 4, 3, n_steps=1, repeats=1)
>>> row["status"], row["check_error"] < row["check_tolerance"]
('ok', True)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .baselines import (
    available_backends,
    check_against_reference,
    configure_jax_threads,
    make_stepper,
)

__all__ = [
    "ROW_KEYS",
    "add_speedups",
    "bench_one",
    "bench_subprocess",
    "cpu_busy_fraction",
    "format_table",
    "ratio_table",
    "run_baselines",
    "time_stepper",
    "wait_for_idle",
    "worker",
]

# The folder that holds the lesde package: the subprocesses import this same lesde.
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])

ROW_KEYS = (
    "backend",
    "signal",
    "N",
    "K",
    "p",
    "dtype",
    "threads",
    "seconds_per_step",
    "sample_dims_per_s",
)


# --------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------


def cpu_busy_fraction(interval: float = 0.25) -> float | None:
    """Fraction of total CPU time that was busy (all CPUs, all processes) over ``interval``
    seconds while this process sleeps. None where /proc/stat is unavailable.

    >>> busy = cpu_busy_fraction(0.05)
    >>> busy is None or 0.0 <= busy <= 1.0
    True
    """

    def snap():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return idle, sum(vals)

    try:
        i0, t0 = snap()
        time.sleep(interval)
        i1, t1 = snap()
    except OSError:
        return None
    dt = t1 - t0
    return None if dt <= 0 else round(1.0 - (i1 - i0) / dt, 3)


def wait_for_idle(max_wait: float = 0.0, threshold: float = 0.15, probe: float = 0.5):
    """Wait up to ``max_wait`` seconds until other processes use less than ``threshold`` of
    the machine's CPUs. Returns the last busy fraction seen (None if unknown).

    >>> busy = wait_for_idle(0.0, probe=0.05)  # one probe, no waiting
    """
    t_end = time.time() + max_wait
    busy = cpu_busy_fraction(probe)
    while busy is not None and busy > threshold and time.time() < t_end:
        time.sleep(1.0)
        busy = cpu_busy_fraction(probe)
    return busy


def time_stepper(stepper, n_steps: int = 5, repeats: int = 3, warmup: bool = True) -> dict:
    """Best / median wall seconds per step of ``stepper.run(n_steps)`` over ``repeats``
    calls, plus the process CPU seconds per step (``time.process_time``, all threads of
    this process) of each call. On a machine shared with other jobs the CPU time of a
    single-threaded configuration is a contention-robust stand-in for its idle wall time
    (it still suffers from shared caches / memory bandwidth, and it counts spin-waiting
    of idle OpenMP / BLAS threads).

    >>> t = time_stepper(make_stepper("numpy", "linear", N=100, K=2, p=2), 1, repeats=2)
    >>> len(t["all"]), t["best"] <= t["median"]
    (2, True)
    """
    if warmup:
        stepper.run(n_steps)
    times, cpus = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        stepper.run(n_steps)
        times.append((time.perf_counter() - t0) / n_steps)
        cpus.append((time.process_time() - c0) / n_steps)
    return {
        "best": min(times),
        "median": statistics.median(times),
        "all": times,
        "cpu_best": min(cpus),
        "cpu_all": cpus,
    }


def _versions(backend: str) -> dict:
    import numpy as np

    v = {"python": platform.python_version(), "numpy": np.__version__}
    if backend == "torch" and "torch" in sys.modules:
        v["torch"] = sys.modules["torch"].__version__
    if backend == "jax" and "jax" in sys.modules:
        v["jax"] = sys.modules["jax"].__version__
        import jaxlib

        v["jaxlib"] = jaxlib.__version__
    return v


def _base_row(backend, signal, N, K, p, dtype, threads):
    return dict(
        backend=backend,
        signal=signal,
        N=int(N),
        K=int(K),
        p=int(p),
        dtype=dtype,
        threads=int(threads),
        seconds_per_step=None,
        sample_dims_per_s=None,
    )


def bench_one(
    backend: str,
    signal: str,
    N: int,
    K: int,
    p: int,
    dtype: str = "float64",
    threads: int = 1,
    n_steps: int = 5,
    repeats: int = 3,
    **opts,
) -> dict:
    """Check one configuration against the reference, time it in this process; its row.

    >>> bench_one("numpy", "linear", 500, 2, 2, "float64", 1, n_steps=1, repeats=1)["status"]
    'ok'
    """
    row = _base_row(backend, signal, N, K, p, dtype, threads)
    ok, why = available_backends().get(backend, (False, f"unknown backend {backend!r}"))
    if not ok:
        row.update(status="unavailable", notes=why)
        return row
    try:
        err, tol = check_against_reference(backend, signal, dtype, threads=threads)
    except ImportError as e:  # found, but it does not import
        row.update(status="unavailable", notes=f"{type(e).__name__}: {e}")
        return row
    row.update(check_error=err, check_tolerance=tol)
    if not err < tol:
        row.update(
            status="wrong",
            notes=f"differs from the float64 reference by {err:.3g} (tolerance {tol:g}); not timed",
        )
        return row
    st = make_stepper(backend, signal, N, K, p, dtype, threads, **opts)
    busy = cpu_busy_fraction()
    t = time_stepper(st, n_steps, repeats)
    itemsize = 8 if dtype == "float64" else 4
    row.update(
        seconds_per_step=t["best"],
        seconds_per_step_median=t["median"],
        seconds_per_step_all=t["all"],
        cpu_seconds_per_step=t["cpu_best"],
        cpu_seconds_per_step_all=t["cpu_all"],
        sample_dims_per_s=N * p / t["best"],
        min_traffic_GBps=2 * N * p * itemsize / t["best"] / 1e9,
        n_steps=n_steps,
        repeats=repeats,
        status="ok",
        notes=st.notes,
        versions=_versions(backend),
        cpu_busy_other=busy,
        loadavg1=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    )
    return row


# --------------------------------------------------------------------------------------
# Subprocess isolation
# --------------------------------------------------------------------------------------


def _child_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return env


def worker(spec_json: str, pin: bool = True) -> str:
    """In the child of :func:`bench_subprocess`: pin the process to the row's CPUs (not with
    ``pin=False``), configure JAX's threads before it is imported, run :func:`bench_one`;
    the row as one line of JSON.

    >>> import json
    >>> spec = dict(backend="numpy", signal="linear", N=100, K=2, p=2, threads=1, n_steps=1,
    ...             repeats=1)
    >>> json.loads(worker(json.dumps(spec), pin=False))["status"]
    'ok'
    """
    spec = json.loads(spec_json)
    threads = int(spec["threads"])
    if pin and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if threads > len(cpus):
            raise RuntimeError(f"asked for {threads} threads, only {len(cpus)} CPUs")
        os.sched_setaffinity(0, cpus[:threads])
    if spec["backend"] == "jax":
        configure_jax_threads(threads)
    return json.dumps(bench_one(**spec))


def bench_subprocess(spec: dict, timeout: float = 600.0) -> dict:
    """:func:`bench_one` of ``spec`` in a fresh Python pinned to ``spec["threads"]`` CPUs.

    The child runs :func:`worker` in a fresh ``python`` with this lesde first on its path
    and prints its row as the last line of its output.

    >>> spec = dict(backend="numpy", signal="linear", N=500, K=2, p=2, dtype="float64",
    ...             threads=1, n_steps=1, repeats=1)
    >>> bench_subprocess(spec)["status"]
    'ok'
    """
    code = "import sys\nfrom lesde.bench.harness import worker\nprint('\\n' + worker(sys.argv[1]))"
    cmd = [sys.executable, "-c", code, json.dumps(spec)]
    row = _base_row(
        spec["backend"],
        spec["signal"],
        spec["N"],
        spec["K"],
        spec["p"],
        spec["dtype"],
        spec["threads"],
    )
    try:
        r = subprocess.run(
            cmd,
            env=_child_env(int(spec["threads"])),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        row.update(status="error", notes=f"timeout after {timeout} s")
        return row
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    row.update(status="error", notes=(r.stderr or r.stdout)[-2000:])
    return row


def run_baselines(
    sizes,
    backends=("lesde", "numpy", "numpy_mt", "torch", "jax"),
    dtypes=("float64", "float32"),
    threads=(1,),
    signal="cross_entropy",
    n_steps: int = 5,
    repeats: int = 3,
    subprocess_isolation: bool = True,
    backend_threads: dict | None = None,
    progress=None,
    wait_idle: float = 0.0,
    **opts,
) -> list:
    """Rows for every (size, backend, dtype, thread count), with :func:`add_speedups`.

    sizes: iterable of (N, K, p). ``backend_threads`` overrides ``threads`` per backend
    (e.g. {"numpy": (1,)}). ``progress``: optional callable(row) called after each row.
    ``wait_idle``: before each configuration wait up to this many seconds for the machine
    to be idle (other processes < 15 % CPU); the row's cpu_busy_other shows what it got.

    >>> rows = run_baselines([(1000, 2, 2)], backends=("lesde", "numpy"), dtypes=("float64",),
    ...                      n_steps=1, repeats=1, subprocess_isolation=False)
    >>> [(r["backend"], r["status"], r["speedup_vs_numpy"] > 0) for r in rows]
    [('lesde', 'ok', True), ('numpy', 'ok', True)]
    """
    rows = []
    for N, K, p in sizes:
        for backend in backends:
            ths = (backend_threads or {}).get(backend, threads)
            for dtype in dtypes:
                for th in ths:
                    spec = dict(
                        backend=backend,
                        signal=signal,
                        N=int(N),
                        K=int(K),
                        p=int(p),
                        dtype=dtype,
                        threads=int(th),
                        n_steps=int(n_steps),
                        repeats=int(repeats),
                        **opts,
                    )
                    if wait_idle > 0:
                        wait_for_idle(wait_idle)
                    if subprocess_isolation:
                        row = bench_subprocess(spec)
                    else:
                        try:
                            row = bench_one(**spec)
                        except Exception as e:  # noqa: BLE001 - report and go on
                            row = _base_row(backend, signal, N, K, p, dtype, th)
                            row.update(status="error", notes=repr(e))
                    rows.append(row)
                    if progress is not None:
                        progress(row)
    return add_speedups(rows)


def add_speedups(rows: list[dict]) -> list[dict]:
    """Give every timed row ``speedup_vs_numpy``: the time per step of the NumPy baseline
    (single-threaded, the same problem and dtype, measured in the same run) over the row's.
    NaN where that NumPy row is missing or was not timed. Returns ``rows``.

    >>> rows = [dict(backend="numpy", signal="linear", N=10, K=2, p=2, dtype="float64",
    ...              threads=1, status="ok", seconds_per_step=0.3),
    ...         dict(backend="lesde", signal="linear", N=10, K=2, p=2, dtype="float64",
    ...              threads=2, status="ok", seconds_per_step=0.1)]
    >>> [round(r["speedup_vs_numpy"], 3) for r in add_speedups(rows)]
    [1.0, 3.0]
    """
    numpy_rows = {
        _problem_key(r): r["seconds_per_step"]
        for r in rows
        if r["backend"] == "numpy" and r.get("status") == "ok" and r["threads"] == 1
    }
    for r in rows:
        reference = numpy_rows.get(_problem_key(r))
        timed = r.get("status") == "ok" and reference is not None
        r["speedup_vs_numpy"] = reference / r["seconds_per_step"] if timed else float("nan")
    return rows


def _problem_key(row: dict) -> tuple:
    return (row["signal"], row["N"], row["K"], row["p"], row["dtype"])


def format_table(rows) -> str:
    """The rows as a fixed-width table, with the speed-up over NumPy of the same run.

    >>> print(format_table([]).splitlines()[0].split()[:3])
    ['backend', 'signal', 'N']
    """
    hdr = (
        f"{'backend':<9} {'signal':<13} {'N':>9} {'K':>3} {'p':>3} {'dtype':<7} {'thr':>3} "
        f"{'ms/step':>9} {'med ms':>9} {'cpu ms':>8} {'x numpy':>8} {'Msample-dim/s':>13} "
        f"{'X r+w GB/s':>10} {'busy':>5}  status"
    )
    out = [hdr, "-" * len(hdr)]
    for r in rows:
        ok = r.get("status") == "ok"
        ms = f"{r['seconds_per_step'] * 1e3:9.1f}" if ok else f"{'-':>9}"
        med = f"{r['seconds_per_step_median'] * 1e3:9.1f}" if ok else f"{'-':>9}"
        cpu = f"{r['cpu_seconds_per_step'] * 1e3:8.1f}" if ok else f"{'-':>8}"
        speedup = r.get("speedup_vs_numpy", float("nan"))
        vs = f"{speedup:8.2f}" if ok and speedup == speedup else f"{'-':>8}"
        rate = f"{r['sample_dims_per_s'] / 1e6:13.1f}" if ok else f"{'-':>13}"
        bw = f"{r['min_traffic_GBps']:10.2f}" if ok else f"{'-':>10}"
        busy = r.get("cpu_busy_other")
        busy = f"{busy:5.2f}" if isinstance(busy, (int, float)) else f"{'-':>5}"
        st = r.get("status", "?")
        if not ok:
            st += ": " + str(r.get("notes", ""))[:70].replace("\n", " ")
        out.append(
            f"{r['backend']:<9} {r['signal']:<13} {r['N']:>9} {r['K']:>3} {r['p']:>3} "
            f"{r['dtype']:<7} {r['threads']:>3} {ms} {med} {cpu} {vs} {rate} {bw} {busy}  {st}"
        )
    return "\n".join(out)


def ratio_table(rows, bandwidth=None) -> str:
    """lesde against every baseline measured in the same run, per problem and dtype.

    Each entry compares best-of-threads times: lesde's fastest configuration against the
    baseline's fastest. With ``bandwidth`` (:func:`lesde.bench.bandwidth.measure_bandwidth`),
    lesde's compulsory traffic (read + write the state once per step) is also given as a
    fraction of the measured copy bandwidth at the same thread count (the roofline).

    >>> rows = [dict(backend=b, signal="linear", N=10, K=2, p=2, dtype="float64", threads=1,
    ...              status="ok", seconds_per_step=t, min_traffic_GBps=1.0)
    ...         for b, t in (("numpy", 0.3), ("lesde", 0.1))]
    >>> ratio_table(rows)
    'linear N=10 K=2 p=2 float64: lesde 100.0 ms/step; speed-up vs numpy x3.00'
    """
    ok = [r for r in rows if r.get("status") == "ok"]
    lines = []
    for key in sorted({_problem_key(r) for r in ok}):
        signal, N, K, p, dtype = key
        best = {}
        for r in (r for r in ok if _problem_key(r) == key):
            if (
                r["backend"] not in best
                or r["seconds_per_step"] < best[r["backend"]]["seconds_per_step"]
            ):
                best[r["backend"]] = r
        if "lesde" not in best:
            continue
        ours = best["lesde"]
        ms = ours["seconds_per_step"] * 1e3
        head = f"{signal} N={N} K={K} p={p} {dtype}: lesde {ms:.1f} ms/step"
        parts = [
            f"{b} x{r['seconds_per_step'] / ours['seconds_per_step']:.2f}"
            for b, r in sorted(best.items())
            if b != "lesde"
        ]
        line = head + ("; speed-up vs " + ", ".join(parts) if parts else "")
        if bandwidth:
            res = bandwidth["results"].get(ours["threads"]) or bandwidth["results"].get(
                str(ours["threads"])
            )
            if res:
                line += (
                    f"; roofline {ours['min_traffic_GBps'] / res['copy_GBps']:.1%} of "
                    f"{res['copy_GBps']:.1f} GB/s copy at {ours['threads']} thread(s)"
                )
        lines.append(line)
    return "\n".join(lines)
