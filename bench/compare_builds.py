"""Two builds of lesde, step for step, in the same run: the ms per step of each and their ratio.

    python bench/compare_builds.py NEW_PACKAGE_PARENT OLD_PACKAGE_PARENT --rounds 3

Each argument is a folder holding a `lesde` package (an installed site-packages, or a
source checkout's python/ with a built _core). The two alternate round by round, each in a
fresh subprocess, so a drift of the machine's speed shows in both; for every case the table
gives both medians, the ratio of medians and the range of the pairwise ratios. The engine
is timed directly (`advance` over a few steps, records off), N = 10^6, K = p = 10 unless
the case says otherwise, on all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CASES = {  # name -> (Config fields, steps per timing)
    "ce64": (dict(signal="cross_entropy", dtype="float64"), 8),
    "ce32": (dict(signal="cross_entropy", dtype="float32"), 8),
    "lin64": (dict(signal="linear", dtype="float64"), 8),
    "heun64": (dict(signal="cross_entropy", dtype="float64", scheme="heun"), 4),
    "small": (dict(signal="cross_entropy", n_classes=3, n_per_class=100, replicas=20), 2000),
}

CHILD = """
import json, sys, time
import lesde
from lesde import _core
try:
    from lesde.sim.engine import allocate, engine_config
except ImportError:  # builds from before lesde.sim.engine
    from lesde.sim.simulate import allocate, engine_config
fields, steps = json.loads(sys.argv[1])
base = dict(n_classes=10, n_per_class=10**5, alpha=1.0, beta=0.2, sigma=0.3, dt=1e-3,
            steps=100000, record_every=100000, seed=1)
cfg = lesde.Config(**{**base, **fields})
arrays = allocate(cfg)
bits = "64" if cfg.dtype == "float64" else "32"
sim = getattr(_core, "Simulation" + bits)(engine_config(cfg), **arrays)
sim.initialize()
sim.advance(2)
best = 1e9
for _ in range(3):
    t0 = time.perf_counter(); s0 = sim.step; sim.advance(s0 + steps)
    best = min(best, (time.perf_counter() - t0) / steps)
print(best * 1e3)
"""


def time_case(package_parent: str, case: str) -> float:
    env = dict(os.environ, PYTHONPATH=package_parent)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(CASES[case])],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("new")
    ap.add_argument("old")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = ap.parse_args(argv)
    times = {which: {case: [] for case in args.cases} for which in ("new", "old")}
    for _ in range(args.rounds):
        for which in ("new", "old"):
            for case in args.cases:
                times[which][case].append(time_case(getattr(args, which), case))
    for case in args.cases:
        new, old = times["new"][case], times["old"][case]
        pairs = [a / b for a, b in zip(new, old, strict=True)]
        print(
            f"{case:8s} new {statistics.median(new):8.3f} ms  old {statistics.median(old):8.3f}"
            f" ms  ratio of medians {statistics.median(new) / statistics.median(old):.3f}"
            f"  pairwise {min(pairs):.3f}..{max(pairs):.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
