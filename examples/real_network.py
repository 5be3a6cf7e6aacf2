"""A real network against the LE-SDE: measure, fit, replay (the paper's Figs. 4 and 5, small).

A LeNet-style CNN is trained with plain SGD, one sample per step, on the synthetic 3-class
geometric-shapes data (ellipses, rectangles, triangles). While it trains we record:

1. the class-mean logits m_k(t) of all training samples, and train/validation metrics;
2. the impact matrix measured directly (one SGD step at an input, the move of every other
   input's logits along the stepped input's signal direction), with 95% bootstrap intervals:
   alpha_hat (same class) against beta_hat (other classes).

Then the simulator is confronted with the genuine trajectories:

- the "I" (linear model) and "L" (projected model) estimators read A(t), B(t) from the class
  means from the moment they point at their labels, differentiate them into alpha(t),
  beta(t), and the LE-ODE replays them;
- the cross-entropy LE-ODE is driven by the directly measured alpha_hat(t), beta_hat(t) from
  the initial logits, and its loss and accuracy are compared with the network's.

Finally the training is repeated with label corruption p_err on a grid: validation loss and
accuracy, clean training accuracy and the loss tail exponent against p_err (Fig. 4).

Run (``pip install 'lesde[nn]'`` first)::

    python examples/real_network.py --quick --out figures/     # about a minute
    python examples/real_network.py --out figures/             # a few minutes
    python examples/real_network.py --cifar ~/data --classes cat,dog,ship --out figures/
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import lesde
import lesde.data
import lesde.nn
from lesde import plot
from lesde.analysis.estimate import fit, replay_error
from lesde.metrics import loss_tail_exponent

# Where the figures go unless --out says otherwise: a folder of their own, never the
# current folder itself.
DEFAULT_OUT = Path("lesde-examples") / Path(__file__).stem


def settings(quick: bool) -> dict:
    if quick:
        return dict(
            n_per_class=100,
            steps=3000,
            lr=0.02,
            record_every=40,
            impact_every=300,
            impact=dict(inputs_per_class=6, targets_per_class=30, n_boot=500),
            grid=[0.0, 1 / 3, 2 / 3],
            grid_steps=1200,
        )
    return dict(
        n_per_class=400,
        steps=6000,
        lr=0.02,
        record_every=40,
        impact_every=200,
        impact=dict(inputs_per_class=12, targets_per_class=60, n_boot=2000),
        grid=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 2 / 3, 0.7, 0.8],
        grid_steps=6000,
    )


def load_data(args, n_per_class: int):
    if args.cifar:
        classes = args.classes.split(",")
        train = lesde.data.cifar10(args.cifar, classes=classes, n_per_class=n_per_class)
        val = lesde.data.cifar10(
            args.cifar, classes=classes, n_per_class=n_per_class // 3, split="test"
        )
        return train, val
    return lesde.data.geometric_shapes(n_per_class, seed=0).split(0.25, seed=0)


def new_network(train, seed=0):
    mean, std = train.channel_stats()
    return lesde.nn.LeNet(
        n_classes=train.n_classes,
        in_channels=train.channels,
        image_size=train.image_size,
        seed=seed,
        input_mean=mean,
        input_std=std,
    )


def aligned_record(class_means: np.ndarray) -> int:
    """First record from which every class mean points at its own label (argmax m_k = k)."""
    K = class_means.shape[1]
    ok = np.array([np.all(np.argmax(m, axis=1) == np.arange(K)) for m in class_means])
    after = np.flatnonzero([ok[j:].mean() > 0.9 for j in range(len(ok))])
    first = int(after[0]) if after.size else len(ok) // 2
    return min(first, len(ok) - 10)  # leave the estimators something to differentiate


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast version")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"folder for the figures (default: {DEFAULT_OUT})"
    )
    parser.add_argument("--cifar", help="a local CIFAR-10 copy instead of the shapes data")
    parser.add_argument("--classes", default="cat,dog", help="CIFAR-10 classes (with --cifar)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    s = settings(args.quick)

    train, val = load_data(args, s["n_per_class"])
    K = train.n_classes
    print(f"data: {train} / validation {len(val)} images")

    # ---------------------------------------------------------------- 1. train and record
    start = time.perf_counter()
    res = lesde.nn.train_and_record(
        new_network(train),
        train,
        lr=s["lr"],
        steps=s["steps"],
        record_every=s["record_every"],
        validation=val,
        impact_every=s["impact_every"],
        impact_options=s["impact"],
        progress=False,
    )
    print(f"trained {s['steps']} SGD steps (lr = {s['lr']}) in {time.perf_counter() - start:.1f} s")
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "nc1", "etf_distance"):
        print(f"  final {name:<13} {res.final(name)[0]:.4f}")

    imp = res.impact  # one network: replica 0 of every per-network array
    alpha, beta, ratio = imp.alpha_hat[0], imp.beta_hat[0], imp.ratio[0]
    alpha_ci, beta_ci, ratio_ci = imp.alpha_ci[0], imp.beta_ci[0], imp.ratio_ci[0]
    print("directly measured impact (95% bootstrap intervals):")
    print("       t   alpha_hat [CI]              beta_hat [CI]               alpha/beta")
    for j in range(0, len(imp.times), max(1, len(imp.times) // 8)):
        print(
            f"  {imp.times[j]:6.1f}   {alpha[j]:7.2f} [{alpha_ci[j, 0]:7.2f}, "
            f"{alpha_ci[j, 1]:7.2f}]   {beta[j]:7.2f} [{beta_ci[j, 0]:7.2f}, "
            f"{beta_ci[j, 1]:7.2f}]   {ratio[j]:5.2f} [{ratio_ci[j, 0]:.2f}, "
            f"{ratio_ci[j, 1]:.2f}]"
        )
    total = s["impact"]["inputs_per_class"] * K
    print(
        f"  stepped inputs left out for a saturated float32 softmax: up to "
        f"{imp.dropped_inputs.max()} of {total} per measurement "
        f"(mean {imp.dropped_inputs.mean():.1f})"
    )
    late = imp.times >= imp.times[-1] / 2
    print(
        f"  second half of training: mean alpha_hat {alpha[late].mean():.1f}, "
        f"beta_hat {beta[late].mean():.1f}, ratio {ratio[late].mean():.2f}; "
        f"locally elastic (CI of alpha_hat - beta_hat above 0) at "
        f"{np.mean(imp.difference_ci[0, late, 0] > 0):.0%} of them"
    )

    # ---------------------------------------------------------------- 2. fit and replay
    first = aligned_record(res.class_means[0])
    print(f"class means point at their labels from t = {res.times[first]:.1f} on")
    fits, replays, errors = {}, {}, {}
    for model in ("I", "L"):
        est = fit(res, model=model, start=first)
        rep = est.replay(scheme="heun")
        err = est.replay_error(rep)
        fits[model], errors[model] = est, err
        replays[f"{model} estimator, {est.signal} LE-ODE"] = (rep.times + est.times[0], rep)
        print(
            f"  {model} estimator: median alpha_hat {np.nanmedian(est.alpha_hat):.3f}, "
            f"beta_hat {np.nanmedian(est.beta_hat):.3f}; replay error (max-norm, relative) "
            f"mean {np.nanmean(err):.3f}, final {err[-1]:.3f}, max {np.nanmax(err):.3f}"
        )
    # The cross-entropy LE-ODE driven by the directly measured rates, from the initial logits.
    ce = lesde.simulate(
        n_classes=K,
        n_per_class=1,
        signal="cross_entropy",
        alpha=lesde.Tabulated(imp.times, alpha),
        beta=lesde.Tabulated(imp.times, beta),
        sigma=0.0,
        init_scale=0.0,
        init_means=res.class_means[0, 0],
        dt=s["lr"],
        t_end=float(res.times[-1]),
        record_every=s["record_every"],
        scheme="heun",
        progress=False,
    )
    ce_err = replay_error(ce, res.class_means[0])
    print(
        f"  measured rates, cross-entropy LE-ODE: replay error mean {np.nanmean(ce_err):.3f}, "
        f"final {ce_err[-1]:.3f}; loss at t = {res.times[-1]:.0f}: network "
        f"{res.final('loss')[0]:.3f}, LE-ODE {ce.final('loss')[0]:.3f}"
    )
    half = np.flatnonzero(res.metrics["loss"][0] < 0.5 * res.metrics["loss"][0, 0])
    half_ce = np.flatnonzero(ce.metrics["loss"][0] < 0.5 * ce.metrics["loss"][0, 0])
    if half.size and half_ce.size:
        print(
            f"  loss halves at t = {res.times[half[0]]:.1f} (network), "
            f"{ce.times[half_ce[0]]:.1f} (LE-ODE with measured rates)"
        )

    # ---------------------------------------------------------------- 3. label corruption
    grid = s["grid"]
    table = {n: [] for n in ("val_loss", "val_accuracy", "clean_accuracy", "accuracy")}
    table["loss_tail_exponent"] = []
    print("label corruption (Fig. 4):")
    print("  p_err   val_loss  val_acc  clean_acc  train_acc  tail exponent r")
    for p_err in grid:
        run = lesde.nn.train_and_record(
            new_network(train),
            train,
            lr=s["lr"],
            steps=s["grid_steps"],
            record_every=s["record_every"],
            validation=val,
            label_noise=p_err,
            progress=False,
        )
        for name in ("val_loss", "val_accuracy", "clean_accuracy", "accuracy"):
            table[name].append(run.final(name)[0])
        r = loss_tail_exponent(run.times, run.metrics["loss"][0], tail=0.5)
        table["loss_tail_exponent"].append(r)
        print(
            f"  {p_err:5.3f}   {table['val_loss'][-1]:8.3f}  {table['val_accuracy'][-1]:7.3f}"
            f"  {table['clean_accuracy'][-1]:9.3f}  {table['accuracy'][-1]:9.3f}  {r:8.3f}"
        )

    # ---------------------------------------------------------------- figures
    figs = {
        "real_network_training.png": plot.metric_over_time(
            res, names=("loss", "accuracy", "val_accuracy", "nc1", "etf_distance", "nc4")
        ),
        "real_network_impact.png": plot.impact_over_training(imp),
        "real_network_estimates.png": plot.impact_estimates(
            fits["I"].times,
            fits["I"].A_hat,
            fits["I"].B_hat,
            fits["I"].alpha_hat,
            fits["I"].beta_hat,
        ),
        "real_network_replay.png": plot.replay_comparison(
            res.times,
            res.class_means[0],
            {
                **{k: (t, r.class_means[0]) for k, (t, r) in replays.items()},
                "measured rates, cross-entropy LE-ODE": (ce.times, ce.class_means[0]),
            },
            class_names=train.class_names,
            errors={
                f"{m} estimator, {fits[m].signal} LE-ODE": float(np.nanmean(e))
                for m, e in errors.items()
            },
        ),
        "real_network_ce_replay.png": plot.metric_over_time(
            {"network": res, "LE-ODE, measured rates": ce},
            names=("loss", "clean_accuracy"),
        ),
        "real_network_label_noise.png": plot.metrics_against(
            grid, table, xlabel="label corruption p_err", marks={"(K-1)/K": (K - 1) / K}
        ),
    }
    figs["real_network_estimates.png"].suptitle(
        f"I estimator on the network's class means from t = {res.times[first]:.1f}", fontsize=10
    )
    for name, fig in figs.items():
        print(f"wrote {plot.save(fig, out / name)}")


if __name__ == "__main__":
    main()
