"""What finishing the records costs: the two targets of the record-finishing issue.

1. The N = 300 / K = 3 / 20 replicas / 1000-step cross-entropy run with the default records
   (about 100) against the same run with 2 records: the ratio of their wall times.
2. 65,536 replicas x 2 records: the wall time of :func:`lesde.sim.result.finish_metrics` on the
   engine's record arrays, and of the whole run.

Every time is the median of ``--repeats`` runs in this process, alternating the variants so
that a busy machine slows them alike.

    PYTHONPATH=python python bench/records_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import lesde
from lesde.sim.engine import allocate, run_engine
from lesde.sim.result import finish_metrics


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(cfg):
    return lesde.simulate(cfg, progress=False)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

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
