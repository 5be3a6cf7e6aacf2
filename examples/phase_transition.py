"""The phase transition of the linear LE-SDE: separable iff alpha > beta.

docs/model.md section 3: with the linear signal g(x, y) = x the within-class deviations get no
drift and only diffuse (spread ~ sqrt(init_scale^2 + sigma^2 t)), while the class contrasts
m_k - mbar grow like exp((alpha - beta) t / K). With alpha > beta the point clouds become
linearly separable with probability -> 1; with alpha <= beta they never do.

At a finite horizon t the contrasts (starting at ~ init_scale / sqrt(n) from a zero-mean
start) must outgrow the spread by a few times, so the separable region is roughly
alpha - beta > K log(C sqrt(n)) / t: it approaches the theoretical boundary alpha = beta
as t grows. This script sweeps the alpha x beta plane at two horizons and draws the
fraction of replicas whose nearest-class-centre rule has zero training error (a
certificate of linear separability), with the line alpha = beta. A third panel shows the
mean nearest-class-centre accuracy at the later horizon: it leaves chance (1/K) right at
alpha = beta, while full separability of every sample needs the margin above.

Run::

    python examples/phase_transition.py --quick --out figures/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lesde
from lesde import plot
from lesde.sweep import sweep

# Where the figures go unless --out says otherwise: a folder of their own, never the
# current folder itself.
DEFAULT_OUT = Path("lesde-examples") / Path(__file__).stem


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast version")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"folder for the figure (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)

    if args.quick:
        n_per_class, replicas, num, horizons = 30, 4, 4, [4.0, 8.0]
    else:
        n_per_class, replicas, num, horizons = 100, 20, 9, [5.0, 10.0]
    # Rates up to 3 and t <= 10 keep the common mode (growing like
    # exp((alpha + (K-1) beta) t / K)) below ~1e12, so float64 still resolves the
    # within-class spread of order 1.
    rates = {"start": 0.25, "stop": 3.0, "num": num}
    base = lesde.Config(
        n_classes=3,
        n_per_class=n_per_class,
        signal="linear",
        sigma=0.5,
        init_scale=1.0,
        dt=0.02,
        t_end=horizons[0],
        record_every=10_000,  # only the final state matters here
        seed=2021,
    )
    # One sweep over the horizon and the alpha x beta plane (the horizon varies slowest).
    result = sweep(base, {"t_end": horizons, "alpha": rates, "beta": rates}, replicas=replicas)

    cols = ["alpha", "beta", "t_end", "replicas_ok", "separable_ncc_mean", "separable_argmax_mean"]
    summary = result.summary(metrics=["separable_ncc", "separable_argmax", "ncc_accuracy"])
    print(summary[cols + ["ncc_accuracy_mean"]].to_string(index=False, float_format="%.3f"))
    for t in horizons:
        s = summary[summary["t_end"] == t]
        above = s[s["alpha"] > s["beta"]]["separable_ncc_mean"].mean()
        below = s[s["alpha"] <= s["beta"]]["separable_ncc_mean"].mean()
        print(
            f"t = {t:g}: mean fraction separable, alpha > beta: {above:.3f}; "
            f"alpha <= beta: {below:.3f}"
        )

    plt = plot.pyplot()
    fig, axes = plt.subplots(1, len(horizons) + 1, figsize=(5.6 * (len(horizons) + 1), 4.6))
    for ax, t in zip(axes, horizons, strict=False):
        plot.phase_diagram(result, ax=ax, where={"t_end": t})
    plot.phase_diagram(result, metric="ncc_accuracy", ax=axes[-1], where={"t_end": horizons[-1]})
    fig.tight_layout()
    path = plot.save(fig, Path(args.out) / "phase_transition.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
