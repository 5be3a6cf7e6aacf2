"""Estimate alpha(t), beta(t) from class-mean trajectories and replay them (paper, Fig. 5).

The paper records the class-mean logits m_k(t) of a real network, reads off the impact
integrals A(t), B(t) with the "I" estimator (docs/model.md section 5), differentiates them
(Savitzky-Golay) into alpha_hat(t), beta_hat(t), then feeds those back into the LE-ODE and
compares the replayed class means with the genuine ones. Here the "genuine" trajectories
come from the simulator itself, the LE-SDE with a known, time-varying alpha(t) (a power-law
decay, as a learning-rate schedule would give) and noise, so the estimate can be checked
against the truth: the noise of a finite sample shows up in the estimates, and the replay
shows how well the mean-field LE-ODE reproduces the noisy system.

Run::

    python examples/estimate_and_replay.py --quick --out figures/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lesde
from lesde import plot
from lesde.analysis.estimate import impact_integrals, impact_rates, replay, replay_error

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

    n_per_class = 300 if args.quick else 3000
    alpha = lesde.PowerLaw(a0=2.0, tau=1.0, gamma=0.5)
    beta = 0.4
    m0 = np.array([[1.0, 0.2, -0.1], [-0.2, 0.8, 0.3], [0.1, -0.3, 1.2]])
    genuine = lesde.simulate(
        n_classes=3,
        n_per_class=n_per_class,
        signal="linear",
        alpha=alpha,
        beta=beta,
        sigma=0.3,
        init_scale=0.5,
        init_means=m0,
        dt=0.005,
        t_end=3.0,
        record_every=20,
        scheme="heun",
        seed=7,
        progress=False,
    )
    times = genuine.times
    logits = genuine.class_means[0]  # (T, K, K): what one would record from a network
    A_hat, B_hat = impact_integrals(logits, model="I")
    alpha_hat, beta_hat = impact_rates(times, A_hat, B_hat, window=11, polyorder=2)
    replayed = replay(times, alpha_hat, beta_hat, logits[0], scheme="heun")
    error = replay_error(replayed, logits)

    inner = slice(5, -5)  # Savitzky-Golay edges are one-sided
    a_err = np.nanmax(np.abs(alpha_hat[inner] - alpha(times[inner])))
    b_err = np.nanmax(np.abs(beta_hat[inner] - beta))
    print(f"max |alpha_hat - alpha| away from the edges: {a_err:.3f}")
    print(f"max |beta_hat - beta|   away from the edges: {b_err:.3f}")
    print(f"replayed class means, max relative error over time: {np.nanmax(error):.4f}")

    A_true = 2.0 * 2.0 * (np.sqrt(1.0 + times) - 1.0)  # int_0^t 2 (1 + s)^-1/2 ds
    fig = plot.impact_estimates(
        times,
        A_hat,
        B_hat,
        alpha_hat,
        beta_hat,
        truth={"A": A_true, "B": beta * times, "alpha": alpha(times), "beta": beta},
    )
    fig.suptitle(
        f"LE-SDE (N = {3 * n_per_class}, sigma = 0.3): estimates vs truth; "
        f"replay error {np.nanmax(error):.2%}",
        fontsize=10,
    )
    fig.tight_layout()
    path = plot.save(fig, Path(args.out) / "estimate_and_replay.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
