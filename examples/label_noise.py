"""Label corruption: with alpha > beta the clean accuracy crosses chance at p_err = (K-1)/K.

docs/model.md section 3: if each training label is replaced, with probability p_err, by one of
the other K-1 classes, the net push of a class toward its own label direction is
proportional to (alpha - beta) [(1 - p_err) - p_err / (K-1)] (cross-entropy signal, near
initialisation). It changes sign at p_err = (K-1)/K (2/3 for K = 3): below it the model
still learns the true classes (clean accuracy above chance 1/K), above it every class is
pushed away from its own label (clean accuracy below chance).

This script sweeps p_err, prints the final clean accuracy (argmax of the logits against the
true class) and training accuracy (against the corrupted labels), locates where the clean
accuracy crosses 1/K, and draws both against p_err.

Run::

    python examples/label_noise.py --quick --out figures/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lesde
from lesde import plot
from lesde.sweep import label_noise_sweep

# Where the figures go unless --out says otherwise: a folder of their own, never the
# current folder itself.
DEFAULT_OUT = Path("lesde-examples") / Path(__file__).stem


def crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """First x where the piecewise-linear curve y(x) falls through ``level`` (NaN if none)."""
    for i in range(len(x) - 1):
        if y[i] >= level > y[i + 1]:
            return float(x[i] + (level - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i]))
    return float("nan")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast version")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"folder for the figure (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)

    K = 3
    if args.quick:
        n_per_class, replicas, p_errs, t_end = 30, 6, [0.0, 0.3, 0.5, 0.6, 0.75, 0.9], 4.0
    else:
        n_per_class, replicas, t_end = 200, 20, 10.0
        p_errs = {"start": 0.0, "stop": 0.95, "num": 20}
    base = lesde.Config(
        n_classes=K,
        n_per_class=n_per_class,
        signal="cross_entropy",
        alpha=4.0,
        beta=0.5,
        sigma=0.5,
        dt=0.02,
        t_end=t_end,
        record_every=10_000,  # only the final state matters here
        seed=2021,
    )
    result = label_noise_sweep(base, p_errs, replicas=replicas)
    summary = result.summary(metrics=["clean_accuracy", "accuracy", "loss"])
    cols = [
        "label_noise",
        "clean_accuracy_mean",
        "clean_accuracy_sem",
        "clean_accuracy_q05",
        "clean_accuracy_q95",
        "accuracy_mean",
        "loss_mean",
    ]
    print(summary[cols].to_string(index=False, float_format="%.3f"))
    x = summary["label_noise"].to_numpy(dtype=float)
    y = summary["clean_accuracy_mean"].to_numpy(dtype=float)
    print(
        f"clean accuracy crosses chance 1/K = {1 / K:.3f} at p_err ~ "
        f"{crossing(x, y, 1 / K):.3f} (theory: (K-1)/K = {(K - 1) / K:.3f})"
    )

    ax = plot.label_noise(result)
    path = plot.save(ax, Path(args.out) / "label_noise.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
