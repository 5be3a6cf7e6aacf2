"""Neural collapse under local elasticity: cross-entropy versus projected signal.

docs/model.md section 3, with alpha > beta:

- ``cross_entropy``: the push on class k starts along its label direction v_k = e_k - 1/K,
  so the centred class means approach a simplex equiangular tight frame aligned with the
  labels (etf_distance -> 0, equal norms), NC1 decreases, the loss goes to 0 and the
  accuracy to 1.
- ``projected``: the coordinates a_k of the class means along v_k grow, so the clouds
  separate and NC1 -> 0 (exponentially fast), but the modes of (a_1..a_K) that sum to zero
  grow at rate (alpha + beta/(K-1))/K, faster than the common mode (alpha - beta)/K that
  pushes every class toward its own label. The final shape is set by the random initial
  class means, and some classes end up pushed away from their labels: the loss grows and
  the accuracy stays far from 1.

  For K >= 4 the shape is not a simplex (etf_distance stays large and varies between
  replicas). For K = 3 it is one, but rotated against the labels: with a zero-sum a the
  centred means are M_k ~ a_k v_k - mean_j a_j v_j, which for K = 3 are always three equal
  vectors at 120 degrees (e.g. a = (2, -1, -1) gives M = (v_1, v_3, v_2)). So for K = 3 the
  two signals differ in the accuracy and NC4, not in etf_distance.

The script runs both signals with the same seeds for K = 4 (metrics over time, and a table
of the final values: median and 10-90% range over replicas) and for K = 3 (the same table,
and the class-mean trajectories of one replica in 3-D logit space).

Run::

    python examples/neural_collapse.py --quick --out figures/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lesde
from lesde import plot

# Where the figures go unless --out says otherwise: a folder of their own, never the
# current folder itself.
DEFAULT_OUT = Path("lesde-examples") / Path(__file__).stem

NAMES = ("loss", "accuracy", "nc1", "etf_distance", "equinorm", "nc4")


def final_table(runs: dict, title: str) -> None:
    """Print median [10%, 90%] over replicas of the final value of each metric."""
    print(title)
    print(f"{'metric':>14}  " + "  ".join(f"{s:>30}" for s in runs))
    for name in NAMES:
        cells = []
        for res in runs.values():
            q10, q50, q90 = np.nanquantile(res.final(name), [0.1, 0.5, 0.9])
            cells.append(f"{q50:10.3g} [{q10:8.3g}, {q90:8.3g}]")
        print(f"{name:>14}  " + "  ".join(f"{c:>30}" for c in cells))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast version")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"folder for the figures (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)

    if args.quick:
        n_per_class, replicas, t_end = 30, 4, 8.0
    else:
        n_per_class, replicas, t_end = 200, 16, 20.0
    base = lesde.Config(
        n_per_class=n_per_class,
        alpha=4.0,
        beta=0.5,
        sigma=0.3,
        init_scale=1.0,
        dt=0.02,
        t_end=t_end,
        replicas=replicas,
        record_every=10,
        seed=2021,
    )
    runs = {
        K: {
            signal: lesde.simulate(base.replace(n_classes=K, signal=signal), progress=False)
            for signal in ("cross_entropy", "projected")
        }
        for K in (4, 3)
    }
    for K, pair in runs.items():
        final_table(
            pair,
            f"K = {K}, final values at t = {t_end:g}: median [10%, 90%] over {replicas} replicas",
        )

    out = Path(args.out)
    fig = plot.metric_over_time(runs[4], names=NAMES)
    fig.suptitle("K = 4", x=0.02, y=0.98, ha="left", fontsize=11)
    print(f"wrote {plot.save(fig, out / 'neural_collapse_metrics.png')}")

    plt = plot.pyplot()
    fig = plt.figure(figsize=(12.0, 5.5))
    for i, (signal, res) in enumerate(runs[3].items()):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        plot.class_means_3d(res, replica=0, ax=ax)
        ax.set_title(f"K = 3, {signal}: class means of replica 0 (o start, * end)", fontsize=10)
    fig.tight_layout()
    print(f"wrote {plot.save(fig, out / 'neural_collapse_class_means.png')}")


if __name__ == "__main__":
    main()
