"""What finishing the records costs: the two targets of the record-finishing issue.

1. The N = 300 / K = 3 / 20 replicas / 1000-step cross-entropy run with the default records
   (about 100) against the same run with 2 records: the ratio of their wall times.
2. 65,536 replicas x 2 records: the wall time of :func:`lesde.sim.result.finish_metrics` on the
   engine's record arrays, and of the whole run.

``--record-step`` measures instead what one record step costs against a plain step (issue
22's target: at most 1.3x): N = 10^6, K = p = 10, cross-entropy float64, ``--threads`` threads
(default 2). Two engines in this process, one recording every step (``record_every=1``), one
recording at the ends only; their steps are timed one by one, alternating, and the ratio is
of the best (and of the median) step times.

    PYTHONPATH=python python bench/records_overhead.py --record-step

Every time is the median of ``--repeats`` runs in this process, alternating the variants so
that a busy machine slows them alike.

    PYTHONPATH=python python bench/records_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import lesde
from lesde.sim.engine import allocate, make_engine, run_engine
from lesde.sim.result import finish_metrics


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(cfg):
    return lesde.simulate(cfg, progress=False)


def record_step(steps: int, threads: int, n_per_class: int) -> None:
    """Step times of an engine recording every step against one recording at the ends."""
    base = lesde.Config(
        n_classes=10,
        n_per_class=n_per_class,
        signal="cross_entropy",
        dtype="float64",
        steps=steps + 1,
        threads=threads,
        seed=1,
    )
    engines = {}
    for name, cfg in (
        ("record", base.replace(record_every=1)),
        ("plain", base.replace(record_every=steps + 1)),
    ):
        sim = make_engine(cfg, allocate(cfg))
        sim.initialize()
        engines[name] = sim
    times = {name: [] for name in engines}
    for m in range(1, steps + 1):  # steps 1 .. steps: the plain engine records none of them
        for name, sim in engines.items():
            times[name].append(timed(lambda sim=sim, m=m: sim.advance(m)))
    rec, plain = times["record"], times["plain"]
    best = min(rec) / min(plain)
    med = statistics.median(rec) / statistics.median(plain)
    print(
        f"N={10 * n_per_class} K=p=10 cross-entropy float64, {threads} threads, {steps} steps: "
        f"record step {min(rec) * 1e3:.1f} ms (median {statistics.median(rec) * 1e3:.1f}), "
        f"plain step {min(plain) * 1e3:.1f} ms (median {statistics.median(plain) * 1e3:.1f}); "
        f"ratio {best:.2f} best, {med:.2f} median (target <= 1.3)"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--record-step",
        action="store_true",
        help="a record step against a plain step at N = 10^6, K = p = 10",
    )
    parser.add_argument("--steps", type=int, default=20, help="steps timed (--record-step)")
    parser.add_argument("--threads", type=int, default=2, help="threads (--record-step)")
    parser.add_argument("--n-per-class", type=int, default=100_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.record_step:
        record_step(args.steps, args.threads, args.n_per_class)
        return

    base = lesde.Config(
        n_classes=3, n_per_class=100, signal="cross_entropy", steps=1000, replicas=20, seed=1
    )
    default, two = base, base.replace(record_every=1000)
    run(default), run(two)  # warm up
    t_default, t_two = [], []
    for _ in range(args.repeats):
        t_default.append(timed(lambda: run(default)))
        t_two.append(timed(lambda: run(two)))
    a, b = statistics.median(t_default), statistics.median(t_two)
    print(
        f"N=300 K=3 R=20 1000 steps: {len(default.record_steps)} records {a * 1e3:.1f} ms, "
        f"2 records {b * 1e3:.1f} ms, ratio {a / b:.2f} (target <= 1.5)"
    )

    many = lesde.Config(
        n_classes=3,
        n_per_class=10,
        signal="cross_entropy",
        steps=10,
        record_every=10,
        replicas=65_536,
        seed=1,
    )
    arrays = allocate(many)
    total = [timed(lambda: run_engine(many, arrays, progress=False, on_nonfinite="raise"))]
    finish = []
    for _ in range(args.repeats):
        finish.append(
            timed(
                lambda: finish_metrics(arrays["scalars"], arrays["sigma_w"], arrays["label_means"])
            )
        )
    print(
        f"65,536 replicas x 2 records: finish_metrics {statistics.median(finish):.3f} s "
        f"(target < 2 s); the whole run {total[0]:.2f} s"
    )


if __name__ == "__main__":
    main()
