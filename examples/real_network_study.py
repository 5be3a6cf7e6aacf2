"""Real networks as the paper ran them: trial ensembles, the paper's pipeline, prediction.

The study behind docs/real_networks.md ("The study: 192 networks, the paper's protocol").
Every network is a LeNet trained with plain SGD, one sample per step, on the synthetic
3-class shapes data; trials are stored per trial in a folder outside the source tree, so a
killed study resumes where it stopped.

Phases (``--phase``; default: all, in this order):

- ``pool``: a pool of independently seeded trials (paper settings: lr = 0.005, 10,000
  steps; class means of all training samples every 50 steps, the stepped input's logits at
  every step, the impact matrix every 250 steps).
- ``noise``: label corruption p_err on a grid, ``--seeds`` trials per point, trained long
  enough for the clean training accuracy to settle.
- ``analyse``: reads the trials and writes the summary JSON and the figures:
  1. replay error of the paper's pipeline against the number of trials R (ensembles of R
     drawn as disjoint subsets of the pool, several per R);
  2. the directly measured alpha_hat / beta_hat over training with bands across trials;
  3. prediction: rates fitted on the first part of training, extrapolated by a power law,
     fed to the LE-SDE; predicted against measured loss-halving and separability times;
  4. clean training accuracy against p_err, against the LE-SDE's chance line.

Run::

    python examples/real_network_study.py --quick --out figures/        # < 3 min, 2 cores
    python examples/real_network_study.py --full --store /work/nn-study \\
        --out docs/figures --summary docs/real_network_study.json        # hours, resumable
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import lesde
import lesde.data
import lesde.nn
from lesde.analysis.predict import EVENTS, predict_training
from lesde.nn.ensemble import load_ensemble
from lesde.nn.pipeline import aligned_start, average_class_means, paper_pipeline
from lesde.plot import fits as plot_fits

# Where the figures go unless --out says otherwise: a folder of their own, never the
# current folder itself.
DEFAULT_OUT = Path("lesde-examples") / Path(__file__).stem

P_GRID = (0.0, 0.2, 0.4, 0.6, 2 / 3, 0.7, 0.8, 0.9, 1.0)
DIVERGED = 10.0  # a replay error above 1000% means the replay blew up


def settings(full: bool) -> dict:
    if full:
        return dict(
            pool=dict(
                n_per_class=300,
                trials=192,
                lr=0.005,
                steps=10_000,
                record_every=50,
                impact_every=250,
                impact_options=dict(inputs_per_class=6, targets_per_class=30, n_boot=200),
            ),
            sizes=(1, 4, 16, 64),
            ensembles_per_size=3,
            fractions=(0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5),
            n_boot=20,
            model_trials=32,
            noise=dict(n_per_class=400, lr=0.02, steps=30_000, record_every=300, seeds=4),
            grid=P_GRID,
        )
    # quick: few images and steps (enough to leave the plateau); the label-noise trials run
    # in this process (starting worker processes costs seconds)
    return dict(
        pool=dict(
            n_per_class=30,
            trials=8,
            lr=0.05,
            steps=1500,
            record_every=25,
            impact_every=150,
            impact_options=dict(inputs_per_class=3, targets_per_class=6, n_boot=50),
        ),
        sizes=(1, 2, 4),
        ensembles_per_size=2,
        fractions=(0.3, 0.6),
        n_boot=4,
        model_trials=4,
        noise=dict(n_per_class=40, lr=0.05, steps=1500, record_every=50, seeds=2, workers=1),
        grid=(0.0, 2 / 3, 0.9),
    )


def pool_data(s: dict):
    return lesde.data.geometric_shapes(s["pool"]["n_per_class"], seed=0)


def noise_data(s: dict):
    return lesde.data.geometric_shapes(s["noise"]["n_per_class"], seed=0).split(0.25, seed=0)


def train_pool(s: dict, store: Path, workers: int | None, trials: int | None = None):
    p = s["pool"]
    return lesde.nn.train_ensemble(
        pool_data(s),
        trials=trials or p["trials"],
        lr=p["lr"],
        steps=p["steps"],
        record_every=p["record_every"],
        impact_every=p["impact_every"],
        impact_options=p["impact_options"],
        folder=store / "pool",
        workers=workers,
        seed=0,
    )


def noise_folder(store: Path, p_err: float) -> Path:
    return store / f"noise-p{p_err:.3f}"


def train_noise(s: dict, store: Path, workers: int | None) -> dict:
    n = s["noise"]
    train, val = noise_data(s)
    out = {}
    for p_err in s["grid"]:
        out[p_err] = lesde.nn.train_ensemble(
            train,
            trials=n["seeds"],
            lr=n["lr"],
            steps=n["steps"],
            record_every=n["record_every"],
            validation=val,
            label_noise=p_err,
            record_stepped=False,
            folder=noise_folder(store, p_err),
            workers=n.get("workers", workers),
            seed=1,
        )
    return out


# ----------------------------------------------------------------------------- analysis
def initial_spread(s: dict, trials: int = 8) -> float:
    """RMS distance of the initial logits from their class means, over the first trials'
    freshly initialised networks (the LE-SDE's init_scale)."""
    import torch

    from lesde.nn.ensemble import default_model, trial_seed
    from lesde.nn.network import as_tensor, eval_logits

    data = pool_data(s)
    X = as_tensor(data.images, torch.float32)
    spreads = []
    for r in range(trials):
        f = eval_logits(default_model(data)(seed=trial_seed(0, r)), X)
        means = np.stack([f[data.labels == k].mean(axis=0) for k in range(data.n_classes)])
        spreads.append(np.sqrt(np.mean(np.sum((f - means[data.labels]) ** 2, axis=1) / f.shape[1])))
    return float(np.mean(spreads))


def floor_fit(sizes, medians) -> tuple[float, float]:
    """Least squares of err^2 = floor^2 + c^2 / R (both >= 0) over the medians per R."""
    R = np.asarray(sizes, dtype=float)
    e2 = np.asarray(medians, dtype=float) ** 2
    ok = np.isfinite(e2)
    design = np.c_[np.ones(ok.sum()), 1.0 / R[ok]]
    coef, *_ = np.linalg.lstsq(design, e2[ok], rcond=None)
    floor2, c2 = max(coef[0], 0.0), max(coef[1], 0.0)
    return float(np.sqrt(floor2)), float(np.sqrt(c2))


def replay_vs_trials(s: dict, pool, starts: dict) -> dict:
    """Replay error of the paper's pipeline for ensembles of R trials (disjoint subsets of
    the pool), from each start record in ``starts`` (name -> record index)."""
    out: dict = {}
    for start_name, start in starts.items():
        step0 = int(pool.steps[start])
        cases = {
            "L, records": dict(estimator="L", data="records", start=start),
            "I, records": dict(estimator="I", data="records", start=start),
            "L, stepped": dict(estimator="L", data="stepped", start=step0),
        }
        block: dict = {"start_record": start, "t_start": float(pool.times[start]), "cases": {}}
        print(f"  from t = {pool.times[start]:g} ({start_name}):")
        for label, kw in cases.items():
            per_size = {}
            for R in s["sizes"]:
                errors = []
                for e in range(min(s["ensembles_per_size"], pool.replicas // R)):
                    try:
                        run = paper_pipeline(pool, trials=list(range(e * R, (e + 1) * R)), **kw)
                        errors.append(run.mean_error)
                    except ValueError as err:  # e.g. stepped inputs missing a class at a step
                        print(f"    {label}, R = {R}, ensemble {e}: not run ({err})")
                per_size[R] = errors
            # a replay whose error passes DIVERGED blew up (rates from noise): counted, but
            # left out of the medians and of the floor fit
            kept = {R: [e for e in v if e <= DIVERGED] for R, v in per_size.items()}
            diverged = {R: len(v) - len(kept[R]) for R, v in per_size.items()}
            medians = [float(np.median(v)) if v else np.nan for v in kept.values()]
            floor, c = (floor_fit(s["sizes"], medians) if np.isfinite(medians).sum() >= 2
                        else (np.nan, np.nan))  # fmt: skip
            block["cases"][label] = {
                "errors": {str(R): v for R, v in per_size.items()},
                "diverged": {str(R): n for R, n in diverged.items()},
                "median": dict(zip(map(str, s["sizes"]), medians, strict=True)),
                "floor": floor,
                "c": c,
            }
            shown = ", ".join(
                f"R={R}: {m:.3f}" + (f" ({diverged[R]} diverged)" if diverged[R] else "")
                for R, m in zip(s["sizes"], medians, strict=True)
            )
            print(f"    replay error {label}: {shown}; fitted floor {floor:.3f}, c {c:.3f}")
        out[start_name] = block
    return out


def impact_structure(pool, windows=((0.0, 0.1), (0.2, 0.4), (0.5, 1.0))) -> dict:
    """The measured impact matrix, mean over trials and a time window, over its mean
    diagonal: how far it is from the scalar alpha/beta form."""
    imp = pool.impact
    t_end = float(imp.times[-1])
    out = {}
    for lo, hi in windows:
        sel = (imp.times >= lo * t_end) & (imp.times <= hi * t_end)
        E = np.nanmean(imp.matrices[:, sel], axis=(0, 1))
        E = E / np.mean(np.diag(E))
        out[f"t in [{lo * t_end:g}, {hi * t_end:g}]"] = E.tolist()
        print(f"  E / mean diagonal, t in [{lo * t_end:g}, {hi * t_end:g}]: "
              f"{np.round(E, 2).tolist()}")  # fmt: skip
    return out


def departures(pool, start: int) -> dict:
    """The full pool through the pipeline with the paper's choices, one at a time."""
    print(f"  the full pool, from t = {pool.times[start]:g}:")
    variants = {
        "lesde defaults (L, aligned start, rate_offset 1)": dict(start=start),
        "rate_offset 0 (lesde.analysis.estimate.replay's table index)": dict(
            start=start, rate_offset=0
        ),
        "paper conventions, same start": dict(start=start, conventions="paper"),
        "paper conventions, start 0 (the paper's code)": dict(start=0, conventions="paper"),
        "I estimator, paper conventions, start 0": dict(
            start=0, conventions="paper", estimator="I"
        ),
    }
    out = {}
    for label, kw in variants.items():
        try:
            run = paper_pipeline(pool, **kw)
            out[label] = {"mean_error": run.mean_error, "final_error": run.final_error}
            print(f"  {label}: mean error {run.mean_error:.3f}, final {run.final_error:.3f}")
        except ValueError as err:
            out[label] = {"error": str(err)}
            print(f"  {label}: not run ({err})")
    return out


def impact_bands(pool) -> dict:
    imp = pool.impact
    with np.errstate(all="ignore"):
        q = {name: np.nanquantile(getattr(imp, name), [0.1, 0.5, 0.9], axis=0)
             for name in ("alpha_hat", "beta_hat", "ratio")}  # fmt: skip
    rows = np.unique(np.linspace(0, imp.times.size - 1, 9).round().astype(int))
    print("  directly measured impact over training (median [10%, 90%] over trials):")
    for j in rows:
        print(
            f"    t = {imp.times[j]:5.1f}: alpha_hat {q['alpha_hat'][1, j]:8.2f} "
            f"[{q['alpha_hat'][0, j]:.2f}, {q['alpha_hat'][2, j]:.2f}], ratio "
            f"{q['ratio'][1, j]:.3f} [{q['ratio'][0, j]:.3f}, {q['ratio'][2, j]:.3f}]"
        )
    return {
        "times": imp.times.tolist(),
        **{f"{name}_q10_q50_q90": q[name].tolist() for name in q},
        "trials": int(imp.replicas),
    }


def predictions(s: dict, pool, spread: float) -> list:
    out = []
    for f in s["fractions"]:
        p = predict_training(pool, f, n_boot=s["n_boot"], model_trials=s["model_trials"],
                             init_scale=spread)  # fmt: skip
        summary = p.summary()
        out.append(summary)
        for name in EVENTS:
            e = summary[name]
            lo, hi = (when(x) for x in e["interval"])
            q10, q90 = (when(x) for x in e["trials_10_90"])
            print(
                f"  observe {f:.0%} (t <= {p.t_fit:.1f}): {name} predicted at "
                f"{when(e['predicted'])} [{lo}, {hi}]; networks: median "
                f"{when(e['trials_median'])}, 10-90% [{q10}, {q90}]"
            )
    return out


def when(t) -> str:
    """A milestone time for printing: None means not reached within the run."""
    return "never" if t is None else f"{t:.2f}"


def label_noise_table(s: dict, store: Path) -> dict:
    """Final clean training / validation accuracy per p_err over the seeds, whether the
    clean training accuracy is below chance by more than two standard errors, and how much
    it still moved over the last 30% of training (mean of the last tenth of the records
    minus the mean of the tenth ending at 70%)."""
    table = {}
    for p_err in s["grid"]:
        folder = noise_folder(store, p_err)
        if not folder.exists():
            continue
        ens = load_ensemble(folder)
        clean = ens.metrics["clean_accuracy"]
        T = clean.shape[1]
        drift = np.nanmean(clean[:, int(0.9 * T) :], axis=1) - np.nanmean(
            clean[:, int(0.6 * T) : int(0.7 * T)], axis=1
        )
        c, v = ens.final("clean_accuracy"), ens.final("val_accuracy")
        se = c.std(ddof=1) / np.sqrt(c.size) if c.size > 1 else np.nan
        table[f"{p_err:.4f}"] = {
            "p_err": p_err,
            "seeds": ens.replicas,
            "steps": int(ens.steps[-1]),
            **{
                name: ens.final(name).tolist()
                for name in ("clean_accuracy", "accuracy", "val_accuracy", "loss")
            },  # fmt: skip
            "clean_accuracy_mean": float(c.mean()),
            "clean_accuracy_se": float(se),
            "below_chance_by_2se": bool(c.mean() + 2 * se < 1 / 3),
            "clean_accuracy_drift_last_30pct": drift.tolist(),
        }
        print(
            f"  p_err {p_err:.3f}: clean training accuracy {c.mean():.3f} +- {se:.3f} "
            f"(seeds {np.round(c, 3).tolist()}), validation {v.mean():.3f}; below chance by "
            f"2 SE: {'yes' if c.mean() + 2 * se < 1 / 3 else 'no'}; moved "
            f"{np.abs(drift).max():.3f} at most over the last 30% of training"
        )
    return table


def le_sde_label_noise(grid) -> list:
    """The LE-SDE's clean accuracy against p_err (cross-entropy signal, alpha > beta)."""
    out = []
    for p_err in grid:
        res = lesde.simulate(n_classes=3, n_per_class=200, signal="cross_entropy", alpha=4.0,
                             beta=0.5, sigma=0.5, dt=0.02, t_end=10.0, label_noise=p_err,
                             replicas=4, record_every=10_000, progress=False)  # fmt: skip
        out.append(float(res.final("clean_accuracy").mean()))
    return out


def analyse(s: dict, store: Path, out: Path, summary_path: Path | None) -> dict:
    from lesde import plot

    start_time = time.perf_counter()
    pool = load_ensemble(store / "pool")
    print(f"pool: {pool.replicas} trials, {pool.steps[-1]} steps each, lr {pool.meta['lr']}")
    _, averaged = average_class_means(pool)
    try:
        start = aligned_start(averaged)
    except ValueError as err:
        start = pool.times.size // 2
        print(f"  {err}: starting at record {start} instead")
    loss = np.nanmean(pool.metrics["loss"], axis=0)
    halved = np.flatnonzero(loss <= loss[0] / 2)
    late = max(start, int(halved[0])) if halved.size else start
    late = min(late, pool.times.size - 22)  # leave the window its records
    summary: dict = {"settings": s, "pool_trials": pool.replicas}
    print("1. replay error of the paper's pipeline against the number of trials R")
    starts = {"class means aligned": start, "trial-averaged loss halved": late}
    summary["replay_vs_trials"] = replay_vs_trials(s, pool, starts)
    summary["departures_full_pool"] = {name: departures(pool, at) for name, at in starts.items()}
    print("2. impact matrix, measured directly")
    summary["impact"] = impact_bands(pool)
    summary["impact_structure"] = impact_structure(pool)
    print("3. prediction from the first part of training")
    spread = initial_spread(s)
    summary["initial_spread"] = spread
    summary["prediction"] = predictions(s, pool, spread)
    print("4. label noise")
    summary["label_noise"] = label_noise_table(s, store)
    grid = [v["p_err"] for v in summary["label_noise"].values()]
    summary["le_sde_label_noise"] = dict(zip(map(str, grid), le_sde_label_noise(grid),
                                             strict=True))  # fmt: skip

    full = paper_pipeline(pool, start=start)
    blocks = summary["replay_vs_trials"]
    panels = plot.pyplot().figure(figsize=(5.4 * len(blocks), 4.4)).subplots(1, len(blocks))
    for ax, (start_name, block) in zip(np.atleast_1d(panels), blocks.items(), strict=True):
        cases = block["cases"]
        plot_fits.replay_error_vs_trials(
            s["sizes"],
            {label: [v["errors"][str(R)] for R in s["sizes"]] for label, v in cases.items()},
            floors={
                label: (v["floor"], v["c"]) for label, v in cases.items() if np.isfinite(v["floor"])
            },  # fmt: skip
            ax=ax,
            title=f"from t = {block['t_start']:g} ({start_name})",
            diverged=DIVERGED,  # the figure leaves out what the medians above left out
        )
    figs = {
        "real_network_replay_vs_trials.png": np.atleast_1d(panels)[0].figure,
        "real_network_ensemble_replay.png": plot.replay_comparison(
            full.times,
            full.class_means,
            {f"L estimator, {pool.replicas} trials": full.replay},
            class_names=pool_data(s).class_names,
            errors={f"L estimator, {pool.replicas} trials": full.mean_error},
        ),
        "real_network_impact_bands.png": plot.impact_over_training(pool.impact),
        "real_network_prediction.png": plot_fits.prediction_timeline(
            s["fractions"],
            {n: [p[n]["predicted"] or np.inf for p in summary["prediction"]] for n in EVENTS},
            {
                n: [
                    [x if x is not None else np.inf for x in p[n]["interval"]]
                    for p in summary["prediction"]
                ]
                for n in EVENTS
            },  # fmt: skip
            predict_training(pool, s["fractions"][0], n_boot=0, model_trials=1).observed,
            t_end=float(pool.times[-1]),
        ),
    }
    if summary["label_noise"]:
        rows = summary["label_noise"].values()
        series = {name: np.array([v[name] for v in rows]).T
                  for name in ("clean_accuracy", "val_accuracy", "accuracy")}  # fmt: skip
        series["LE-SDE clean_accuracy"] = np.array(list(summary["le_sde_label_noise"].values()))
        figs["real_network_label_noise_seeds.png"] = plot_fits.metrics_against(
            grid, series, xlabel="label corruption p_err",
            marks={"(K-1)/K": 2 / 3}, levels={"chance 1/K": 1 / 3},
        )  # fmt: skip
    for name, fig in figs.items():
        print(f"wrote {plot.save(fig, out / name)}")
    summary["analysis_seconds"] = time.perf_counter() - start_time
    if summary_path is not None:
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(plain(summary), indent=1) + "\n")
        print(f"wrote {summary_path}")
    return summary


def plain(value):
    """JSON-ready: NumPy numbers and arrays as lists, NaN and inf as None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a small version (the default)")
    size.add_argument("--full", action="store_true", help="the study of docs/real_networks.md")
    parser.add_argument("--phase", choices=("pool", "noise", "analyse", "all"), default="all")
    parser.add_argument("--store", help="folder for the trials (default: <out>/trials)")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"folder for the figures (default: {DEFAULT_OUT})"
    )
    parser.add_argument("--summary", help="where to write the summary JSON")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    parser.add_argument("--pool-trials", type=int, help="train only the first N pool trials")
    args = parser.parse_args(argv)
    s = settings(args.full)
    store = Path(args.store) if args.store else Path(args.out) / "trials"
    start = time.perf_counter()
    if args.phase in ("pool", "all"):
        pool = train_pool(s, store, args.workers, args.pool_trials)
        print(f"pool: {pool.replicas} trials ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.phase in ("noise", "all"):
        runs = train_noise(s, store, args.workers)
        print(f"label noise: {len(runs)} points ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.phase in ("analyse", "all"):
        summary = Path(args.summary) if args.summary else None
        analyse(s, store, Path(args.out), summary)
        print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
