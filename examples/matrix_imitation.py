"""An imitation that imitates: the paper's code exactly, a matrix LE-ODE, prediction, K = 10.

The study behind docs/real_networks.md ("A matrix LE-ODE, out of sample"). Trial
ensembles of LeNets trained with plain SGD, one sample per step (lesde.nn.train_ensemble,
stored per trial in a folder outside the source tree, so a killed run resumes):

1. ``paper``: the paper's published estimators (``conventions="paper"``, start 0) on the
   raw trial-averaged logits they were given, and on the same logits centred per class (what
   their derivation assumes): how much the row sums move its Figure-5 numbers.
2. ``replay``: the scalar LE-ODE against the matrix LE-ODE with the directly measured
   impact matrix (cross-entropy signal, no fit to class means) and with E(t) fitted to
   class means (projected signal), all out of sample (lesde.nn.impact_replay.compare_replays:
   E from one half of an ensemble's trials, scored on the other half), per start record,
   with bands over disjoint ensembles; diagnostics of what the measured matrix misses.
3. ``predict``: the rate form (power law, logistic, rational) chosen by out-of-sample error
   on one half of the pool, then the milestones of the other half predicted from its first
   part of training.
4. ``digits``: K = 10 on scikit-learn's 8 x 8 digits: the pipeline (I for any K; lesde's L
   for any K; the paper's L refuses K != 3), the measured impact ratio after the plateau,
   and the replay comparison.

Run::

    python examples/matrix_imitation.py --quick --out figures/          # seconds
    python examples/matrix_imitation.py --full --store /tmp/lesde-store \\
        --out docs/figures --summary docs/matrix_imitation.json          # hours, resumable
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

import lesde.data
import lesde.nn
from lesde.analysis.predict import EVENTS, milestones, predict_training
from lesde.analysis.rate_forms import select_form
from lesde.nn.ensemble import default_model, load_ensemble
from lesde.nn.impact_replay import (
    compare_replays,
    measured_impact,
    relative_error,
    replay_impact,
    split_halves,
)
from lesde.nn.pipeline import aligned_start, average_class_means, paper_pipeline
from lesde.plot import fits as plot_fits

KINDS = ("scalar", "measured", "fitted")


# ----------------------------------------------------------------------------- settings
class Standardise(torch.nn.Module):
    """Fixed input standardisation ``(x - mean) / std`` (not trained)."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x):  # noqa: D102 - nn.Module protocol
        return (x - self.mean) / self.std


# Where the figures go unless --out says otherwise: a folder of their own, never the
# current folder itself.
DEFAULT_OUT = Path("lesde-examples") / Path(__file__).stem

def linear_model(seed, pixels=256, classes=3, mean=0.0, std=1.0):
    """The quick mode's network: standardised inputs, ``Flatten + Linear``, float64 (it
    leaves its plateau in a few hundred steps, where a LeNet needs thousands)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [Standardise(mean, std), torch.nn.Flatten(), torch.nn.Linear(pixels, classes)]
        model = torch.nn.Sequential(*layers)
    return model.to(torch.float64)


def settings(full: bool) -> dict:
    if full:
        return {
            "shapes": dict(
                data=dict(n_per_class=300, seed=0),
                train=dict(
                    lr=0.005,
                    steps=10_000,
                    record_every=50,
                    impact_every=250,
                    impact_options=dict(inputs_per_class=6, targets_per_class=30, n_boot=200),
                ),  # fmt: skip
                trials=48,
                ensembles=(8, 24),
            ),
            "digits": dict(
                data=dict(size=16),
                train=dict(
                    lr=0.01,
                    steps=4000,
                    record_every=20,
                    impact_every=100,
                    impact_options=dict(inputs_per_class=3, targets_per_class=10, n_boot=200),
                ),  # fmt: skip
                trials=16,
                ensembles=(4, 8),
            ),
            "diagnose": dict(
                times=(2.5, 10.0, 15.0, 20.0, 30.0, 45.0), per_class=20, targets=30, seed=7
            ),  # fmt: skip
            "fractions": (0.2, 0.25, 0.3, 0.35, 0.4),
            "scale_grid": tuple(np.geomspace(1 / 16, 256.0, 17)),
            "n_boot": 20,
            "model_trials": 16,
            "quick": False,
        }
    return {
        "shapes": dict(
            data=dict(n_per_class=20, size=16, seed=0),
            train=dict(
                lr=0.01,
                steps=400,
                record_every=5,
                impact_every=25,
                impact_options=dict(inputs_per_class=2, targets_per_class=4, n_boot=20),
                model=partial(linear_model, mean=0.091, std=0.231),
                workers=1,
            ),  # fmt: skip
            trials=8,
            ensembles=(4,),
        ),
        "digits": dict(
            data=dict(n_per_class=4, size=16),
            train=dict(
                lr=0.05,
                steps=200,
                record_every=4,
                impact_every=20,
                impact_options=dict(inputs_per_class=1, targets_per_class=2, n_boot=20),
                model=partial(linear_model, classes=10),
                workers=1,
            ),  # fmt: skip
            trials=4,
            ensembles=(2,),
        ),
        "diagnose": dict(times=(0.5, 1.5), per_class=3, targets=4, seed=7),
        "fractions": (0.3, 0.6),
        "scale_grid": (0.5, 2.0),
        "n_boot": 2,
        "model_trials": 2,
        "quick": True,
    }


def dataset(name: str, s: dict):
    if name == "shapes":
        return lesde.data.geometric_shapes(**s[name]["data"])
    return lesde.data.digits(**s[name]["data"])


def train(name: str, s: dict, store: Path, workers: int | None, trials: int | None = None):
    opts = dict(s[name]["train"])
    opts.setdefault("workers", workers)
    return lesde.nn.train_ensemble(dataset(name, s), trials=trials or s[name]["trials"],
                                   folder=store / name, seed=0, progress=False, **opts)  # fmt: skip


# ----------------------------------------------------------------------------- helpers
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


def band(values) -> dict:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not v.size:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
            "n": int(v.size)}  # fmt: skip


def centred(m):
    """Class means with each class's logits centred (a shift softmax ignores)."""
    return m - m.mean(axis=-1, keepdims=True)


def starts_of(pool) -> dict:
    """The study's two start records: where the trial-averaged class means of the whole
    pool first point at their labels, and where the trial-averaged loss has halved."""
    _, averaged = average_class_means(pool)
    try:
        start = aligned_start(averaged)
    except ValueError:
        start = pool.times.size // 3
    loss = np.nanmean(pool.metrics["loss"], axis=0)
    halved = np.flatnonzero(loss <= loss[0] / 2)
    late = max(start, int(halved[0])) if halved.size else start
    late = min(late, pool.times.size - 22)
    return {"class means aligned": start, "loss halved": late}


# ----------------------------------------------------------------------------- 1. paper
def paper_phase(pool) -> dict:
    """The paper's code on raw and on centred trial-averaged logits (start 0)."""
    times, raw = average_class_means(pool)
    out = {"row_sum_over_scale": float(np.abs(raw.sum(axis=2)).max() / np.abs(raw).max())}
    print(f"  row sums of the averaged logits: up to {out['row_sum_over_scale']:.2f} of the "
          "largest logit")  # fmt: skip
    for est in ("L", "I"):
        runs = {}
        for label, means in (("raw", raw), ("centred", centred(raw))):
            try:
                run = paper_pipeline(means, times=times, estimator=est, conventions="paper",
                                     start=0)  # fmt: skip
                runs[label] = run
                out[f"{est}, {label}"] = {"mean_error": run.mean_error,
                                          "final_error": run.final_error,
                                          "A_hat_end": float(run.A_hat[-1]),
                                          "B_hat_end": float(run.B_hat[-1])}  # fmt: skip
            except ValueError as err:
                out[f"{est}, {label}"] = {"error": str(err)}
        if len(runs) == 2:
            with np.errstate(all="ignore"):
                moved = {
                    name: float(np.nanmax(np.abs(getattr(runs["raw"], name)
                                                 - getattr(runs["centred"], name)))
                                / np.nanmax(np.abs(getattr(runs["centred"], name))))
                    for name in ("A_hat", "B_hat", "alpha_hat", "beta_hat")
                }  # fmt: skip
            out[f"{est}, raw against centred"] = moved
            r, c = out[f"{est}, raw"], out[f"{est}, centred"]
            print(f"  {est} (the paper's code, start 0): replay error raw {r['mean_error']:.3f} "
                  f"/ {r['final_error']:.3f} (mean / final), centred {c['mean_error']:.3f} / "
                  f"{c['final_error']:.3f}; raw moves A_hat {moved['A_hat']:.0%}, B_hat "
                  f"{moved['B_hat']:.0%}, rates {moved['alpha_hat']:.0%} / "
                  f"{moved['beta_hat']:.0%}")  # fmt: skip
    return out


# ----------------------------------------------------------------------------- 2. replay
def scaled_measured(pool, first, second, start, grid) -> tuple[float, float]:
    """Diagnostic: the measured E times one factor c, c chosen on the first half (replayed
    against its own averages), then scored on the second: is the measured matrix only off
    in scale?"""
    times, a = average_class_means(pool, trials=first)
    _, b = average_class_means(pool, trials=second)
    t, a, b = times[start:], a[start:], b[start:]
    it, E = measured_impact(pool, trials=first)
    best = (np.inf, 1.0)
    for c in grid:
        run = replay_impact(t, c * E, a[0], impact_times=it, signal="cross_entropy",
                            steps_per_interval=2)  # fmt: skip
        err = float(np.nanmean(relative_error(run, a)))
        best = min(best, (err, float(c)))
    run = replay_impact(t, best[1] * E, b[0], impact_times=it, signal="cross_entropy",
                        steps_per_interval=2)  # fmt: skip
    return best[1], float(np.nanmean(relative_error(run, b)))


def softmax_weight(pool, start) -> dict:
    """Diagnostic of the softmax weighting: the class-mean LE-ODE pushes class k with
    g = e_k - softmax(m_k); the network with the average of e_y - softmax(x_i) over its
    samples, whose own-label part 1 - p_y averages at least (1 - accuracy) / 2 (a
    misclassified sample has p_y < 1/2) and at most 1 - exp(-loss) (Jensen)."""
    _, m = average_class_means(pool)
    z = np.exp(m - m.max(axis=2, keepdims=True))
    p_own = np.einsum("tkk->tk", z / z.sum(axis=2, keepdims=True)).mean(axis=1)
    acc = np.nanmean(pool.metrics["accuracy"], axis=0)
    loss = np.nanmean(pool.metrics["loss"], axis=0)
    rows = np.unique(np.linspace(start, pool.times.size - 1, 5).round().astype(int))
    return {
        "times": pool.times[rows].tolist(),
        "class_mean_push": (1.0 - p_own[rows]).tolist(),
        "network_push_at_least": ((1.0 - acc[rows]) / 2).tolist(),
        "network_push_at_most": (1.0 - np.exp(-loss[rows])).tolist(),
    }


def one_ensemble(pool, idx, seed, start, grid) -> dict:
    """Every replay error of one ensemble (trial indices ``idx``) split in halves."""
    a, b = split_halves(len(idx), seed=seed)
    first, second = idx[a], idx[b]
    res = compare_replays(pool, start=start, halves=(first, second))
    row = {k: r.mean_error for k, r in res.items()}
    row.update({f"{k}, centred": float(np.nanmean(relative_error(centred(r.replayed),
                                                                 centred(r.genuine))))
                for k, r in res.items()})  # fmt: skip
    t = res["fitted"].times
    _, A = average_class_means(pool, trials=first)
    A = A[start:]
    E = res["fitted"].impact
    row["fitted, in sample"] = float(np.nanmean(relative_error(replay_impact(t, E, A[0]), A)))
    B = res["fitted"].genuine
    # no model at all: the first half's own trajectory, moved to the second half's start
    row["halves differ"] = float(np.nanmean(relative_error(A - A[0] + B[0], B)))
    try:
        row["scalar, in sample"] = paper_pipeline(pool, trials=idx, start=start).mean_error
    except ValueError:
        row["scalar, in sample"] = float("nan")
    row["measured scale c"], row["measured x c"] = scaled_measured(pool, first, second, start,
                                                                    grid)  # fmt: skip
    return row


ROWS = ("scalar", "measured", "fitted", "scalar, in sample", "fitted, in sample",
        "halves differ", "measured x c")  # fmt: skip


def replay_phase(name, s, pool, class_names) -> tuple[dict, object]:
    R = pool.replicas
    starts = starts_of(pool)
    out: dict = {"trials": R, "sizes": {}}
    for n in s[name]["ensembles"]:
        groups = [np.arange(e * n, (e + 1) * n) for e in range(R // n)]
        if not groups:
            continue
        block_n: dict = {"ensembles": len(groups), "starts": {}}
        done: dict = {}
        for start_name, start in starts.items():
            if start in done:
                block_n["starts"][start_name] = block_n["starts"][done[start]]
                continue
            done[start] = start_name
            rows = [one_ensemble(pool, idx, e, start, s["scale_grid"])
                    for e, idx in enumerate(groups)]  # fmt: skip
            errors = {k: [r[k] for r in rows] for k in rows[0]}
            block = {"start_record": start, "t_start": float(pool.times[start]),
                     "errors": errors, "bands": {k: band(v) for k, v in errors.items()},
                     "softmax_weighting": softmax_weight(pool, start)}  # fmt: skip
            block_n["starts"][start_name] = block
            shown = ", ".join(f"{k} {block['bands'][k]['median']:.3f} "
                              f"[{block['bands'][k]['min']:.3f}, {block['bands'][k]['max']:.3f}]"
                              for k in ROWS if block["bands"][k]["n"])  # fmt: skip
            print(f"  from t = {pool.times[start]:g} ({start_name}), {len(groups)} ensembles of "
                  f"{n} (halves of {n // 2}): replay error median [min, max]: {shown}")  # fmt: skip
            print("    on logits centred per class: " + ", ".join(
                f"{k} {block['bands'][k + ', centred']['median']:.3f}" for k in KINDS))  # fmt: skip
            c = np.median(errors["measured scale c"])
            print(f"    measured E needs a factor c = {c:.3g} (median) to fit its first half")
            sw = block["softmax_weighting"]
            print("    push on a class (1 - p_own): class-mean softmax vs the network's bounds: "
                  + ", ".join(f"t={t:g}: {c:.2g} vs [{lo:.2g}, {hi:.2g}]" for t, c, lo, hi in
                              zip(sw["times"], sw["class_mean_push"], sw["network_push_at_least"],
                                  sw["network_push_at_most"], strict=True)))  # fmt: skip
        out["sizes"][str(n)] = block_n
    start = starts["loss halved"]
    a, b = split_halves(R, seed=0)
    res = compare_replays(pool, start=start, halves=(a, b))
    label = lambda k: "scalar" if k == "scalar" else f"{k} E"  # noqa: E731
    figure = plot_fits.replay_comparison(
        res["scalar"].times, res["scalar"].genuine,
        {label(k): (r.times, r.replayed) for k, r in res.items()},
        class_names=class_names,
        errors={label(k): r.mean_error for k, r in res.items()},
    )  # fmt: skip
    out["whole_pool_halves"] = {"t_start": float(pool.times[start]),
                                **{k: r.summary() for k, r in res.items()}}  # fmt: skip
    print(f"  the whole pool in two halves of {len(a)} and {len(b)}, from t = "
          f"{pool.times[start]:g}: " + ", ".join(f"{k} {r.mean_error:.3f}"
                                                  for k, r in res.items()))  # fmt: skip
    return out, figure


def error_figure(results: dict):
    from lesde.plot.style import pyplot

    plt = pyplot()
    blocks = []
    for data, r in results.items():
        names = list(next(iter(r["sizes"].values()))["starts"]) if r["sizes"] else []
        for start in names:
            blocks.append((data, start, {n: b["starts"][start] for n, b in r["sizes"].items()}))
    fig, axes = plt.subplots(1, len(blocks), figsize=(4.2 * len(blocks), 4.0), squeeze=False)
    kinds = ("scalar", "measured", "fitted", "scalar, in sample", "halves differ")
    for ax, (data, start, per_size) in zip(axes.ravel(), blocks, strict=True):
        for j, (n, b) in enumerate(per_size.items()):
            for i, k in enumerate(kinds):
                v = b["bands"][k]
                if not v["n"]:
                    continue
                x = i + 0.25 * (j - (len(per_size) - 1) / 2)
                ax.errorbar([x], [v["median"]], yerr=[[v["median"] - v["min"]],
                                                      [v["max"] - v["median"]]],
                            fmt="os"[j % 2], color=f"C{i}", capsize=3,
                            label=f"ensembles of {n}" if i == 0 else None)  # fmt: skip
        t0 = next(iter(per_size.values()))["t_start"]
        ax.set_xticks(range(len(kinds)), [k.replace(", ", "\n") for k in kinds], fontsize=8)
        ax.set_title(f"{data}, from t = {t0:g} ({start})", fontsize=9)
        ax.set_ylabel("replay error, out of sample (mean relative max-norm)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- 2b. why
def drift_decomposition(model, data, lr, per_class, targets, seed) -> dict:
    """One network, one moment: the class-mean drift that one SGD step at a random input
    causes on average (exact to first order in lr, over ``per_class`` stepped inputs and
    ``targets`` watched inputs per class), against what the LE-SDE makes of it:

    - ``isotropic``: each step moves every logit vector along its own signal g_j, by the
      measured impact of that input (``E_ij = Δf_i.g_j / (lr |g_j|^2)``): what is lost
      is the part of Δf_i across g_j (the signal's form);
    - ``class E``: the impact averaged per class pair (the measured matrix), each class's
      signals averaged over its inputs (the LE-SDE with the network's own softmaxes);
    - ``class-mean softmax``: as ``class E`` but the signal of each class computed from
      its mean logits, as the class-mean LE-ODE does (the softmax weighting).

    Each is compared with the genuine drift on the zero-sum part of the logits: cosine
    and norm ratio (model / genuine).
    """
    from torch.func import functional_call

    from lesde.nn.network import as_tensor, eval_logits, model_dtype

    K = data.n_classes
    rng = np.random.default_rng(seed)
    dtype = model_dtype(model)
    logits = eval_logits(model, as_tensor(data.images, dtype))
    stepped, watched = [], []
    for k in range(K):
        members = rng.permutation(np.flatnonzero(data.labels == k))
        stepped.append(members[:per_class])
        watched.append(members[per_class : per_class + targets])
    stepped, watched = np.concatenate(stepped), np.concatenate(watched)
    X_tg = as_tensor(data.images[watched], dtype)
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    model.eval()
    with torch.no_grad():
        f_tg = functional_call(model, (params, buffers), (X_tg,))
    moves = np.empty((stepped.size, watched.size, K))
    for s_, j in enumerate(stepped):
        live = {n: p.clone().requires_grad_(True) for n, p in params.items()}
        x = as_tensor(data.images[j : j + 1], dtype)
        out = functional_call(model, (live, buffers), (x,))
        y = torch.tensor([int(data.labels[j])])
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), list(live.values()))
        with torch.no_grad():
            new = {n: p - lr * g for (n, p), g in zip(params.items(), grads, strict=True)}
            moves[s_] = ((functional_call(model, (new, buffers), (X_tg,)) - f_tg) / lr).numpy()
    model.train()
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    g_all = np.eye(K)[data.labels] - z / z.sum(axis=1, keepdims=True)
    g = g_all[stepped]  # (S, K)
    in_cls, tg_cls = data.labels[stepped], data.labels[watched]
    E_pair = np.einsum("smk,sk->sm", moves, g) / np.sum(g * g, axis=1)[:, None]  # (S, M)
    genuine = np.zeros((K, K))
    isotropic = np.zeros((K, K))
    E = np.zeros((K, K))
    for k in range(K):
        for kp in range(K):
            rows, cols = in_cls == kp, tg_cls == k
            genuine[k] += moves[np.ix_(rows, cols)].mean(axis=(0, 1)) / K
            isotropic[k] += (E_pair[np.ix_(rows, cols)].mean(axis=1)[:, None] * g[rows]).mean(0) / K
            E[k, kp] = E_pair[np.ix_(rows, cols)].mean()
    g_class = np.stack([g[in_cls == k].mean(axis=0) for k in range(K)])
    means = np.stack([logits[data.labels == k].mean(axis=0) for k in range(K)])
    zm = np.exp(means - means.max(axis=1, keepdims=True))
    g_mean = np.eye(K) - zm / zm.sum(axis=1, keepdims=True)
    models = {"isotropic": isotropic, "class E": E @ g_class / K,
              "class-mean softmax": E @ g_mean / K}  # fmt: skip
    P = np.eye(K) - 1.0 / K
    ref = (genuine @ P).ravel()
    out = {"genuine_norm": float(np.linalg.norm(ref))}
    for name, drift in models.items():
        d = (drift @ P).ravel()
        out[name] = {"cosine": float(d @ ref / (np.linalg.norm(d) * np.linalg.norm(ref))),
                     "norm_ratio": float(np.linalg.norm(d) / np.linalg.norm(ref))}  # fmt: skip
    p_own = np.einsum("kk->k", zm / zm.sum(axis=1, keepdims=True))
    out["own_push_mean_softmax"] = float(np.mean(1.0 - p_own))
    out["own_push_network"] = float(np.mean(g_all[np.arange(len(data)), data.labels]))
    return out


def diagnose_phase(s) -> dict:
    """Train one network of the shapes protocol and decompose its one-step drift at a few
    moments (:func:`drift_decomposition`)."""
    d = s["diagnose"]
    data = dataset("shapes", s)
    opts = s["shapes"]["train"]
    model = (opts.get("model") or default_model(data))(seed=d["seed"])
    lr, done, out = opts["lr"], 0, {}
    # one PyTorch thread, as in the ensembles' workers: float32 sums in another order send
    # one network down another path within a few thousand steps
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _diagnose(model, data, lr, d, out, done)
    finally:
        torch.set_num_threads(threads)


def _diagnose(model, data, lr, d, out, done) -> dict:
    for when in d["times"]:
        steps = int(round(when / lr)) - done
        if steps > 0:
            lesde.nn.train_and_record(model, data, lr, steps, record_every=steps,
                                      seed=d["seed"] + done, progress=False)  # fmt: skip
            done += steps
        row = drift_decomposition(model, data, lr, d["per_class"], d["targets"], seed=done)
        out[f"{done * lr:g}"] = row
        print(f"  t = {done * lr:g}: genuine drift {row['genuine_norm']:.3g}; " + ", ".join(
            f"{k}: cos {row[k]['cosine']:+.2f}, ratio {row[k]['norm_ratio']:.2f}"
            for k in ("isotropic", "class E", "class-mean softmax")) + f"; push 1 - p_own: "
            f"network {row['own_push_network']:.3g}, class-mean softmax "
            f"{row['own_push_mean_softmax']:.3g}")  # fmt: skip
    return out


# ----------------------------------------------------------------------------- 3. predict
def predict_phase(s, pool) -> tuple[dict, object]:
    R = pool.replicas
    select, evaluate = np.arange(R // 2), np.arange(R // 2, R)
    n = max(2, s["shapes"]["ensembles"][0] // 2)
    imp = pool.impact
    t_split = 0.3 * float(pool.times[-1])
    series = []
    for e in range(len(select) // n):
        rows = select[e * n : (e + 1) * n]
        for name in ("alpha_hat", "beta_hat"):
            series.append((imp.times, np.nanmean(getattr(imp, name)[rows], axis=0)))
    best, errors = select_form(series, t_split)
    shown = ", ".join(f"{f} {e:.3f}" for f, e in errors.items())
    print(f"  rate forms, out-of-sample RMS log error after t = {t_split:g} on {len(series)} "
          f"curves of the selection half: {shown}; chosen: {best}")  # fmt: skip
    held = pool.select(evaluate)
    out = {"selection_errors": errors, "form": best, "select_trials": select.tolist(),
           "evaluate_trials": evaluate.tolist(), "runs": {}}  # fmt: skip
    seen = milestones(held)
    loss = np.nanmean(held.metrics["loss"], axis=0)
    from lesde.analysis.predict import event_time

    out["observed"] = {k: band(v) for k, v in seen.items()}
    out["averaged_loss_halves"] = event_time(held.times, loss, loss[0] / 2)
    for form in dict.fromkeys((best, "power_law")):
        rows = []
        for f in s["fractions"]:
            p = predict_training(held, f, n_boot=s["n_boot"], form=form, confidence=0.8,
                                 model_trials=min(s["model_trials"], held.replicas))  # fmt: skip
            rows.append(p.summary())
            e = rows[-1]["loss_halves"]
            fmt = lambda x: "never" if x is None else f"{x:.2f}"  # noqa: E731
            print(f"  {form}, observe {f:.0%}: loss halves at {fmt(e['predicted'])} "
                  f"[{fmt(e['interval'][0])}, {fmt(e['interval'][1])}] against the networks' "
                  f"{fmt(e['trials_median'])} ({fmt(e['relative_error'])} relative)")  # fmt: skip
        out["runs"][form] = rows
    # per network: each trial's own measured rates, its own prediction, its own milestone
    per = {k: [] for k in EVENTS}
    for r in range(held.replicas):
        try:
            p = predict_training(held.select([r]), 0.3, n_boot=0, model_trials=1, form=best)
        except ValueError:
            continue
        for k in EVENTS:
            per[k].append((p.predicted[k], float(seen[k][r])))
    out["per_network_30pct"] = {}
    for k, pairs in per.items():
        pred, true = np.array(pairs, dtype=float).reshape(-1, 2).T
        ok = np.isfinite(pred) & np.isfinite(true)
        rel = np.abs(pred[ok] - true[ok]) / true[ok]
        out["per_network_30pct"][k] = {
            "predicted": pred.tolist(), "observed": true.tolist(),
            "never_predicted": int(np.sum(~np.isfinite(pred))),
            "median_abs_relative_error": float(np.median(rel)) if rel.size else None,
            "correlation": float(np.corrcoef(pred[ok], true[ok])[0, 1]) if ok.sum() > 2 else None,
        }  # fmt: skip
        v = out["per_network_30pct"][k]
        if v["median_abs_relative_error"] is not None:
            print(f"  per network, observe 30%, {k}: median |relative error| "
                  f"{v['median_abs_relative_error']:.0%} over {int(ok.sum())} networks, "
                  f"{v['never_predicted']} predicted never")  # fmt: skip
    # no extrapolation at all: the rates measured over the whole run drive the LE-SDE; what
    # is left is the LE-SDE's own error, which no rate form can remove
    p = predict_training(held, 1.0, n_boot=s["n_boot"], confidence=0.8,
                         model_trials=min(s["model_trials"], held.replicas))  # fmt: skip
    out["all_rates_measured"] = p.summary()
    e = out["all_rates_measured"]["loss_halves"]
    fmt = lambda x: "never" if x is None else f"{x:.2f}"  # noqa: E731
    print(
        f"  every rate measured (no extrapolation): loss halves at {fmt(e['predicted'])} "
        f"against the networks' {fmt(e['trials_median'])}"
    )
    rows = out["runs"][best]
    fig = plot_fits.prediction_timeline(
        s["fractions"],
        {k: [r[k]["predicted"] if r[k]["predicted"] is not None else np.inf for r in rows]
         for k in EVENTS},
        {k: [[x if x is not None else np.inf for x in r[k]["interval"]] for r in rows]
         for k in EVENTS},
        seen,
        t_end=float(held.times[-1]),
    )  # fmt: skip
    return out, fig


# ----------------------------------------------------------------------------- 4. digits
def digits_phase(pool) -> dict:
    out: dict = {"trials": pool.replicas, "K": int(pool.class_means.shape[2])}
    for label, kw in {
        "I, lesde, aligned": dict(estimator="I"),
        "L, lesde, aligned": dict(estimator="L"),
        "I, paper's code, start 0": dict(estimator="I", conventions="paper", start=0),
        "L, paper's code, start 0": dict(estimator="L", conventions="paper", start=0),
    }.items():
        try:
            run = paper_pipeline(pool, **kw)
            out[label] = run.summary()
            a, b = np.nanmedian(run.alpha_hat), np.nanmedian(run.beta_hat)
            print(f"  {label}: replay error {run.mean_error:.3f}, median alpha_hat {a:.3g}, "
                  f"beta_hat {b:.3g}")  # fmt: skip
        except ValueError as err:
            out[label] = {"error": str(err)}
            print(f"  {label}: {err}")
    imp = pool.impact
    loss = np.nanmean(pool.metrics["loss"], axis=0)
    halved = np.flatnonzero(loss <= loss[0] / 2)
    t_half = float(pool.times[halved[0]]) if halved.size else float(pool.times[-1])
    with np.errstate(all="ignore"):
        q = np.nanquantile(imp.ratio, [0.1, 0.5, 0.9], axis=0)
    after = imp.times >= t_half
    out["loss_halved_at"] = t_half
    out["ratio_times"] = imp.times.tolist()
    out["ratio_q10_q50_q90"] = q.tolist()
    out["ratio_after_plateau"] = band(np.nanmedian(imp.ratio[:, after], axis=0))
    out["share_of_trial_measurements_above_1_after_plateau"] = float(
        np.nanmean(imp.ratio[:, after] > 1.0))  # fmt: skip
    print(f"  measured alpha_hat / beta_hat after the plateau (t >= {t_half:g}): median over "
          f"trials {out['ratio_after_plateau']['median']:.3f} (range of the medians over time "
          f"{out['ratio_after_plateau']['min']:.3f}-{out['ratio_after_plateau']['max']:.3f}); "
          f"{out['share_of_trial_measurements_above_1_after_plateau']:.0%} of the trials' "
          "measurements above 1")  # fmt: skip
    return out


def compact(path: Path, limit: int = 500_000) -> Path:
    """A PNG over ``limit`` bytes (the K = 10 replay: a hundred lines per figure) is stored
    with a palette of 128 colours, a quarter of the size and no visible change."""
    if path.stat().st_size > limit:
        from PIL import Image

        with Image.open(path) as im:
            small = im.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)
    return path


# ----------------------------------------------------------------------------- main
def analyse(s, store: Path, out: Path, summary_path: Path | None, phases) -> dict:
    from lesde import plot

    summary: dict = {"settings": {k: v for k, v in s.items() if k not in ("shapes", "digits")}}
    figs = {}
    replays = {}
    pools = {}
    for name in ("shapes", "digits"):
        if (store / name).exists():
            pools[name] = load_ensemble(store / name)
            train_s = {k: v for k, v in s[name]["train"].items() if k not in ("model", "workers")}
            summary[f"{name}_protocol"] = {"data": s[name]["data"], **train_s,
                                           "trials": pools[name].replicas}  # fmt: skip
    if "shapes" in pools and "paper" in phases:
        print(f"1. the paper's code on {pools['shapes'].replicas} shapes trials")
        summary["paper"] = paper_phase(pools["shapes"])
    if "replay" in phases:
        for name, pool in pools.items():
            print(f"2. replay, {name} ({pool.replicas} trials)")
            names = dataset(name, s).class_names
            replays[name], fig = replay_phase(name, s, pool, names)
            figs[f"matrix_replay_{name}.png"] = fig
        summary["replay"] = replays
        figs["matrix_replay_errors.png"] = error_figure(replays)
    if "diagnose" in phases:
        print("2b. why: one network's one-step drift against the LE-SDE's")
        summary["diagnose"] = diagnose_phase(s)
    if "shapes" in pools and "predict" in phases:
        print("3. prediction")
        summary["prediction"], figs["matrix_prediction.png"] = predict_phase(s, pools["shapes"])
    if "digits" in pools and "digits" in phases:
        print(f"4. K = 10, digits ({pools['digits'].replicas} trials)")
        summary["digits"] = digits_phase(pools["digits"])
    for name, fig in figs.items():
        if fig is not None:
            print(f"wrote {compact(plot.save(fig, out / name))}")
    if summary_path is not None:
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        summary_path.write_text(json.dumps(plain(summary), indent=1) + "\n")
        print(f"wrote {summary_path}")
    return summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a small version (the default)")
    size.add_argument("--full", action="store_true", help="the study of docs/real_networks.md")
    phases = ("train", "paper", "replay", "diagnose", "predict", "digits")
    parser.add_argument("--phase", nargs="+", default=list(phases), choices=phases)
    parser.add_argument("--store", help="folder for the trials (default: <out>/trials)")
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help=f"folder for the figures (default: {DEFAULT_OUT})"
    )
    parser.add_argument("--summary", help="where to write the summary JSON")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    parser.add_argument("--trials", type=int, help="train only the first N trials of each pool")
    args = parser.parse_args(argv)
    s = settings(args.full)
    store = Path(args.store) if args.store else Path(args.out) / "trials"
    start = time.perf_counter()
    if "train" in args.phase:
        for name in ("shapes", "digits"):
            pool = train(name, s, store, args.workers, args.trials)
            print(f"{name}: {pool.replicas} trials ({time.perf_counter() - start:.0f} s)",
                  flush=True)  # fmt: skip
    summary = Path(args.summary) if args.summary else None
    analyse(s, store, Path(args.out), summary, args.phase)
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
