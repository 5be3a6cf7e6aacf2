"""Timing harness for the LE-SDE step baselines (and, once wired, lesde itself).

Rows are JSON-serialisable dicts with at least
    backend, signal, N, K, p, dtype, threads, seconds_per_step, sample_dims_per_s
plus seconds_per_step_median, min_traffic_GBps (2 * N * p * itemsize / seconds_per_step: the
bandwidth implied by the unavoidable read + write of X once per step, to compare with
bandwidth.py), status ("ok" / "unavailable" / "error"), notes, versions and load diagnostics.

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
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

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
# lesde itself
# --------------------------------------------------------------------------------------


class LesdeStepper:
    """lesde's engine on a baselines.Problem: the same E, dt, sigma, classes and X0.

    The engine is built as lesde.simulate builds it (NumPy arrays the C++ writes into),
    its initial features are replaced by the problem's X0, and ``resume(0)`` recomputes
    the class sums from them; ``run(n)`` then advances n fused steps (no records in
    between: record_every is the whole horizon), exactly the work a baseline step does.
    """

    def __init__(self, problem, dtype: str, threads: int, horizon: int = 10**8):
        import numpy as np

        import lesde
        from lesde import _core
        from lesde.engine import allocate, engine_config

        K, p = problem.E.shape[0], problem.X0.shape[1]
        self.cfg = lesde.Config(
            n_classes=K,
            dim=p,
            class_sizes=tuple(int(n) for n in problem.counts),
            signal=problem.signal,
            impact=problem.E,
            sigma=problem.sigma,
            dt=problem.dt,
            steps=horizon,
            record_every=horizon,
            threads=threads,
            dtype=dtype,
        )
        self.arrays = allocate(self.cfg)
        cls = _core.Simulation64 if dtype == "float64" else _core.Simulation32
        self.sim = cls(engine_config(self.cfg), **self.arrays)
        self.sim.initialize()
        self.arrays["features"][0] = problem.X0
        self.arrays["labels"][0] = problem.y.astype(np.int32)
        self.sim.resume(0)

    def run(self, n_steps: int) -> None:
        self.sim.advance(self.sim.step + int(n_steps))

    def state(self):
        return self.arrays["features"][0].astype("float64")


def lesde_stepper(
    signal: str, N: int, K: int, p: int, dtype: str = "float64", threads: int = 1, **kwargs
):
    """lesde's fused C++ step on ``baselines.make_problem(signal, N, K, p, **kwargs)``."""
    import baselines

    problem = baselines.make_problem(signal, N, K, p, **kwargs)
    return LesdeStepper(problem, dtype, threads)


# --------------------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------------------


def cpu_busy_fraction(interval: float = 0.25) -> float | None:
    """Fraction of total CPU time that was busy (all CPUs, all processes) over ``interval``
    seconds while this process sleeps. None where /proc/stat is unavailable."""

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
    the machine's CPUs. Returns the last busy fraction seen (None if unknown)."""
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
    of idle OpenMP / BLAS threads)."""
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
    """Time one configuration in this process and return a row."""
    import baselines

    row = _base_row(backend, signal, N, K, p, dtype, threads)
    try:
        if backend == "lesde":
            st = lesde_stepper(signal, N, K, p, dtype, threads, **opts)
            notes = getattr(st, "notes", "")
        else:
            ok, why = baselines.available_backends().get(backend, (False, "unknown backend"))
            if not ok:
                row.update(status="unavailable", notes=why)
                return row
            st = baselines.make_stepper(backend, signal, N, K, p, dtype, threads, **opts)
            notes = st.notes
    except NotImplementedError as e:
        row.update(status="unavailable", notes=str(e))
        return row
    except ImportError as e:
        row.update(status="unavailable", notes=str(e))
        return row
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
        notes=notes,
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
    return env


def _worker(spec: dict) -> dict:
    """Runs in the child: pin, configure, bench, return the row."""
    threads = int(spec["threads"])
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if threads > len(cpus):
            raise RuntimeError(f"asked for {threads} threads, only {len(cpus)} CPUs")
        os.sched_setaffinity(0, cpus[:threads])
    if spec["backend"] == "jax":
        import baselines

        baselines.configure_jax_threads(threads)
    return bench_one(**spec)


def bench_subprocess(spec: dict, timeout: float = 600.0) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
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
    backends=("numpy", "numpy_mt", "torch", "jax"),
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
    """Produce rows for every (size, backend, dtype, thread count).

    sizes: iterable of (N, K, p). ``backend_threads`` overrides ``threads`` per backend
    (e.g. {"numpy": (1,)}). Add "lesde" to ``backends`` to time the hook.
    ``progress``: optional callable(row) called after each row.
    ``wait_idle``: before each configuration wait up to this many seconds for the machine
    to be idle (other processes < 15 % CPU); the row's cpu_busy_other shows what it got.
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
    return rows


def format_table(rows) -> str:
    hdr = (
        f"{'backend':<9} {'signal':<13} {'N':>9} {'K':>3} {'p':>3} {'dtype':<7} {'thr':>3} "
        f"{'ms/step':>9} {'med ms':>9} {'cpu ms':>8} {'Msample-dim/s':>13} {'X r+w GB/s':>10} "
        f"{'busy':>5}  status"
    )
    out = [hdr, "-" * len(hdr)]
    for r in rows:
        ok = r.get("status") == "ok"
        ms = f"{r['seconds_per_step'] * 1e3:9.1f}" if ok else f"{'-':>9}"
        med = f"{r['seconds_per_step_median'] * 1e3:9.1f}" if ok else f"{'-':>9}"
        cpu = f"{r['cpu_seconds_per_step'] * 1e3:8.1f}" if ok else f"{'-':>8}"
        rate = f"{r['sample_dims_per_s'] / 1e6:13.1f}" if ok else f"{'-':>13}"
        bw = f"{r['min_traffic_GBps']:10.2f}" if ok else f"{'-':>10}"
        busy = r.get("cpu_busy_other")
        busy = f"{busy:5.2f}" if isinstance(busy, (int, float)) else f"{'-':>5}"
        st = r.get("status", "?")
        if not ok:
            st += ": " + str(r.get("notes", ""))[:60].replace("\n", " ")
        out.append(
            f"{r['backend']:<9} {r['signal']:<13} {r['N']:>9} {r['K']:>3} {r['p']:>3} "
            f"{r['dtype']:<7} {r['threads']:>3} {ms} {med} {cpu} {rate} {bw} {busy}  {st}"
        )
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        row = _worker(json.loads(sys.argv[2]))
        sys.stdout.write("\n" + json.dumps(row) + "\n")
    else:
        print("use bench/run_bench.py (this module is the harness library)", file=sys.stderr)
        sys.exit(2)


def ratio_table(rows, bandwidth=None) -> str:
    """lesde against every baseline measured in the same run, per problem and dtype.

    Each entry compares best-of-threads times: lesde's fastest configuration against the
    baseline's fastest. With ``bandwidth`` (bandwidth.measure_bandwidth), lesde's
    compulsory traffic (read + write the state once per step) is also given as a fraction
    of the measured copy bandwidth at the same thread count (the roofline).
    """
    ok = [r for r in rows if r.get("status") == "ok"]
    lines = []
    problems = sorted({(r["signal"], r["N"], r["K"], r["p"], r["dtype"]) for r in ok})
    for signal, N, K, p, dtype in problems:
        same = [
            r
            for r in ok
            if (r["signal"], r["N"], r["K"], r["p"], r["dtype"]) == (signal, N, K, p, dtype)
        ]
        best = {}
        for r in same:
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
