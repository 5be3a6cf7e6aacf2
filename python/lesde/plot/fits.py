"""Figures of estimated and measured impact: alpha(t), beta(t) fits, replays, real networks.

They draw the outputs of :mod:`lesde.analysis.estimate` and :mod:`lesde.nn` (plain arrays or
their result objects). :mod:`lesde.plot` re-exports every function here, so
``lesde.plot.impact_estimates`` is :func:`impact_estimates`. Each returns its Figure and
never calls ``plt.show()``.

Examples
--------
>>> import numpy as np
>>> from lesde.plot.fits import impact_estimates
>>> t = np.linspace(0.0, 1.0, 11)
>>> len(impact_estimates(t, 2.0 * t, 0.5 * t, truth={"A": 2.0 * t}).axes)
1
"""

from __future__ import annotations

import numpy as np

from .style import metric_label, pyplot

__all__ = [
    "impact_estimates",
    "impact_over_training",
    "metrics_against",
    "prediction_timeline",
    "replay_comparison",
    "replay_error_vs_trials",
]


def impact_estimates(times, A_hat, B_hat, alpha_hat=None, beta_hat=None, fig=None, truth=None):
    """Estimated impact integrals A(t), B(t) and, when given, rates alpha(t), beta(t).

    ``truth`` is an optional dict with any of ``"A"``, ``"B"``, ``"alpha"``, ``"beta"``
    (arrays on ``times`` or constants), drawn dashed for comparison. Returns the Figure.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0.0, 1.0, 11)
    >>> fig = impact_estimates(t, 2.0 * t, 0.5 * t, alpha_hat=2.0 + 0 * t, beta_hat=0.5 + 0 * t)
    >>> [ax.get_title() for ax in fig.axes]
    ['impact integrals', 'impact rates (smoothed derivatives)']
    """
    plt = pyplot()
    t = np.asarray(times, dtype=float)
    truth = dict(truth or {})
    rates = alpha_hat is not None or beta_hat is not None
    if fig is None:
        fig = plt.figure(figsize=(10.0 if rates else 5.5, 4.0))
    axes = fig.subplots(1, 2 if rates else 1, squeeze=False).ravel()

    def draw(ax, series):
        for i, (name, values, key) in enumerate(series):
            if values is None:
                continue
            (line,) = ax.plot(
                t,
                np.asarray(values, dtype=float),
                color=f"C{i}",
                lw=1.8,
                label=f"{name} (estimate)",
            )
            if key in truth:
                ref = np.broadcast_to(np.asarray(truth[key], dtype=float), t.shape)
                ax.plot(t, ref, color=line.get_color(), ls="--", lw=1.2, label=f"{name} (true)")
        ax.set_xlabel("time t")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)

    draw(axes[0], [("A(t) = ∫α", A_hat, "A"), ("B(t) = ∫β", B_hat, "B")])
    axes[0].set_title("impact integrals", fontsize=10)
    if rates:
        draw(axes[1], [("α(t)", alpha_hat, "alpha"), ("β(t)", beta_hat, "beta")])
        axes[1].set_title("impact rates (smoothed derivatives)", fontsize=10)
    fig.tight_layout()
    return fig


def replay_comparison(times, genuine, replayed, fig=None, class_names=None, errors=None):
    """Genuine class-mean trajectories against replays of estimated rates (paper, Fig. 5).

    One panel per class k, showing the p coordinates of ``m_k(t)`` (one colour each): the
    genuine ones as thick solid lines, each replay thin, one line style per replay. With
    ``class_names`` (K names, e.g. ``Dataset.class_names``) the panels and logits are named
    by class; ``errors`` (replay label -> mean relative max-norm error) go in the title.

    Parameters
    ----------
    times : (T,) array
        Times of the genuine records.
    genuine : (T, K, p) array
    replayed : dict label -> (times, (T', K, p) array) or label -> Result
        A :class:`lesde.Result` from :func:`lesde.analysis.estimate.replay` starts at time 0 and is
        shifted to ``times[0]``.

    Returns the Figure.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.linspace(0, 1, 5); m = np.ones((5, 3, 3)) * t[:, None, None]
    >>> fig = replay_comparison(t, m, {"copy": (t, m)}, class_names=("a", "b", "c"),
    ...                         errors={"copy": 0.0})
    >>> len(fig.axes), fig.axes[1].get_title(), fig.texts[0].get_text()
    (3, 'class b: mean logits', 'replay error (mean relative max-norm): copy 0.000')
    """
    plt = pyplot()
    t = np.asarray(times, dtype=float)
    g = np.asarray(genuine, dtype=float)
    if g.ndim != 3 or g.shape[0] != t.size:
        raise ValueError(f"genuine must have shape (T={t.size}, K, p); got {g.shape}")
    K, p = g.shape[1:]
    names = [str(k) for k in range(K)] if class_names is None else [str(c) for c in class_names]
    if len(names) != K:
        raise ValueError(f"class_names must name the K = {K} classes, got {len(names)}")
    rows = 1 if K <= 5 else 2
    cols = -(-K // rows)
    if fig is None:
        fig = plt.figure(figsize=(3.6 * cols, 3.3 * rows + (0.4 if errors else 0.0)))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[K:]:
        ax.set_visible(False)
    axes = axes[:K]
    styles = ["--", ":", "-."]
    for k, ax in enumerate(axes):
        for j in range(p):
            ax.plot(t, g[:, k, j], color=f"C{j}", lw=2.4, alpha=0.45)
        for i, rep in enumerate(replayed.values()):
            if hasattr(rep, "class_means"):
                rt, rm = np.asarray(rep.times) + t[0], np.asarray(rep.class_means[0])
            else:
                rt, rm = (np.asarray(a, dtype=float) for a in rep)
            for j in range(p):
                ax.plot(rt, rm[:, k, j], color=f"C{j}", ls=styles[i % 3], lw=1.2)
        ax.set_title(
            f"class {names[k]}: mean logits" if class_names is not None
            else f"class {k}: mean logits m_{k}(t)",
            fontsize=10,
        )  # fmt: skip
        ax.set_xlabel("time t = step × lr")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=f"C{j}", lw=2) for j in range(p)]
    logit = (lambda j: f"logit {names[j]}") if p == K and class_names is not None else (
        lambda j: f"logit {j}")  # fmt: skip
    labels = [f"{logit(j)} (genuine)" for j in range(p)]
    for i, label in enumerate(replayed):
        handles.append(plt.Line2D([], [], color="k", ls=styles[i % 3], lw=1.1))
        labels.append(str(label))
    axes[0].legend(handles, labels, fontsize=7, loc="best")
    if errors:
        shown = ", ".join(f"{label} {float(e):.3f}" for label, e in errors.items())
        fig.suptitle(f"replay error (mean relative max-norm): {shown}", fontsize=10)
    fig.tight_layout()
    return fig


def impact_over_training(track, fig=None, quantiles=(0.1, 0.9)):
    """Directly measured alpha_hat, beta_hat and their ratio over training.

    ``track`` is a :class:`lesde.nn.ImpactTrack` (``TrainingResult.impact``). For one
    network the bands are its bootstrap confidence intervals; for an ensemble of trials the
    lines are medians over trials and the bands their ``quantiles`` (the trial-to-trial
    spread). Returns the Figure: left alpha_hat and beta_hat, right alpha_hat / beta_hat
    with the line 1 (local elasticity above it).

    Examples
    --------
    >>> import types
    >>> import numpy as np
    >>> t = np.array([0.0, 1.0]); ci = np.array([[[0.5, 1.5], [1.0, 3.0]]])
    >>> track = types.SimpleNamespace(  # any object with the fields of an ImpactTrack
    ...     times=t, alpha_hat=[[1.0, 2.0]], beta_hat=[[0.5, 0.5]], ratio=[[2.0, 4.0]],
    ...     alpha_ci=ci, beta_ci=ci / 2, ratio_ci=2 * ci, confidence=0.95)
    >>> len(impact_over_training(track).axes)
    2
    """
    plt = pyplot()
    if track is None or len(track.times) == 0:
        raise ValueError("no impact measurements: train with train_and_record(impact_every=...)")
    t = np.asarray(track.times, dtype=float)
    alpha = np.atleast_2d(np.asarray(track.alpha_hat, dtype=float))
    beta = np.atleast_2d(np.asarray(track.beta_hat, dtype=float))
    ratio = np.atleast_2d(np.asarray(track.ratio, dtype=float))
    R = alpha.shape[0]
    if R == 1:  # one network: its bootstrap intervals

        def line_and_band(values, ci_name):
            ci = np.asarray(getattr(track, ci_name), dtype=float).reshape(-1, 2)
            return values[0], ci[:, 0], ci[:, 1]

        what = f"{100 * track.confidence:g}% CI"
    else:  # trials: median and spread across them

        def line_and_band(values, ci_name):
            with np.errstate(all="ignore"):
                lo, hi = np.nanquantile(values, quantiles, axis=0)
                return np.nanmedian(values, axis=0), lo, hi

        what = f"median over {R} trials, {100 * quantiles[0]:g}-{100 * quantiles[1]:g}% band"
    if fig is None:
        fig = plt.figure(figsize=(10.0, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    for i, (name, values, ci_name) in enumerate(
        (("α̂ (same class)", alpha, "alpha_ci"), ("β̂ (other classes)", beta, "beta_ci"))
    ):
        mid, lo, hi = line_and_band(values, ci_name)
        ax1.plot(t, mid, "o-", color=f"C{i}", ms=3, label=name)
        ax1.fill_between(t, lo, hi, color=f"C{i}", alpha=0.25, lw=0)
    ax1.axhline(0.0, color="k", lw=0.6)
    ax1.set_title(f"measured impact (one SGD step), {what}", fontsize=9)
    ax1.legend(fontsize=8)
    mid, lo, hi = line_and_band(ratio, "ratio_ci")
    ax2.plot(t, mid, "o-", color="C2", ms=3, label="α̂ / β̂")
    ax2.fill_between(t, lo, hi, color="C2", alpha=0.25, lw=0)
    ax2.axhline(1.0, color="k", ls="--", lw=1.0, label="α = β")
    ax2.set_title("local elasticity ratio", fontsize=10)
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.set_xlabel("time t = step × lr")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def replay_error_vs_trials(sizes, errors, floors=None, ax=None, title=None, diverged=10.0):
    """Replay error against the number of trials R, log-log, one marker per ensemble.

    ``errors`` maps a label (e.g. "L estimator") to a sequence, one entry per size in
    ``sizes``, of the errors of the ensembles of that size. Each label gets its median line
    and, dotted, the reference ``c / sqrt(R)`` through its first median; ``floors`` (label ->
    (floor, c)) adds the fitted ``sqrt(floor^2 + c^2 / R)``. An error above ``diverged``
    (a replay that blew up) is left out of the medians and drawn as a triangle at the top,
    with the count in the legend. Draws into ``ax`` (a new figure without one) and returns
    its Figure.

    Examples
    --------
    >>> fig = replay_error_vs_trials([1, 4, 16], {"L": [[0.8, 0.9], [0.45], [0.3, 0.28]]},
    ...                              floors={"L": (0.2, 0.8)})
    >>> fig.axes[0].get_xscale(), fig.axes[0].get_yscale()
    ('log', 'log')
    """
    plt = pyplot()
    R = np.asarray(sizes, dtype=float)
    if ax is None:
        ax = plt.figure(figsize=(5.6, 4.2)).subplots()
    fig = ax.figure
    medians, blown = {}, {}
    for label, per_size in errors.items():
        if len(per_size) != R.size:
            raise ValueError(f"{label}: {len(per_size)} entries for {R.size} sizes")
        kept = [[e for e in v if np.isfinite(e) and e <= diverged] for v in per_size]
        blown[label] = sum(len(v) - len(k) for v, k in zip(per_size, kept, strict=True))
        with np.errstate(all="ignore"):
            medians[label] = np.array([np.median(v) if v else np.nan for v in kept])
    shown = np.concatenate([np.asarray(v, dtype=float) for p in errors.values() for v in p])
    shown = shown[np.isfinite(shown) & (shown > 0) & (shown <= diverged)]
    top = 1.5 * shown.max() if shown.size else 1.0
    for i, (label, per_size) in enumerate(errors.items()):
        color = f"C{i}"
        med = medians[label]
        for r, values in zip(R, per_size, strict=True):
            v = np.asarray(values, dtype=float)
            out = ~(v <= diverged)  # NaN (no replay) counts as blown up too
            ax.plot(np.full(v.size, r), np.where(out, np.nan, v), "o", color=color,
                    alpha=0.45, ms=4)  # fmt: skip
            if np.any(out):
                ax.plot([r], [top], "^", color=color, ms=7)
        shown_as = f"{label}, {blown[label]} blew up (▲)" if blown[label] else label
        ax.plot(R, med, "-", color=color, lw=1.8, label=f"{shown_as} (median)")
        first = np.flatnonzero(np.isfinite(med))
        if first.size:
            j = first[0]
            ax.plot(R, med[j] * np.sqrt(R[j] / R), ":", color=color, lw=1.0, label="∝ 1/√R")
        if floors and label in floors:
            floor, c = floors[label]
            grid = np.geomspace(R.min(), R.max(), 100)
            ax.plot(grid, np.sqrt(floor**2 + c**2 / grid), "--", color=color, lw=1.0,
                    label=f"√(floor² + c²/R), floor = {floor:.3g}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    if shown.size:
        ax.set_ylim(shown.min() / 2.0, 1.2 * top)
    ax.set_xlabel("trials averaged, R")
    ax.set_ylabel("replay error (relative max-norm, mean over records)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def prediction_timeline(fractions, predicted, intervals, observed, t_end, fig=None):
    """Predicted milestone times against the fraction of training observed.

    ``predicted[name]`` (one value per fraction), ``intervals[name]`` ((lo, hi) per
    fraction) and ``observed[name]`` (the trials' milestone times) for each milestone; the
    trials' median and 10-90% range are drawn as a horizontal line and band, the end of
    the observed part (``fraction * t_end``) as a diagonal. A prediction that the milestone
    is not reached within the run (inf) is drawn as "never": a triangle above the run's
    end, not joined to the other predictions by a line; an interval that reaches "never"
    is drawn up to the run's end with an arrow. Returns the Figure.

    Examples
    --------
    >>> fig = prediction_timeline([0.1, 0.3], {"loss_halves": [30.0, 18.0]},
    ...                           {"loss_halves": [(20, 40), (16, 20)]},
    ...                           {"loss_halves": [17.0, 18.0, 19.0]}, t_end=50.0)
    >>> len(fig.axes)
    1
    """
    plt = pyplot()
    f = np.asarray(fractions, dtype=float)
    n = len(predicted)
    if fig is None:
        fig = plt.figure(figsize=(4.8 * n, 3.8))
    axes = fig.subplots(1, n, squeeze=False).ravel()
    for ax, name in zip(axes, predicted, strict=True):
        seen = np.asarray(observed[name], dtype=float)
        seen = seen[np.isfinite(seen)]
        if seen.size:
            lo, med, hi = np.quantile(seen, [0.1, 0.5, 0.9])
            ax.axhspan(lo, hi, color="C1", alpha=0.2, lw=0, label="networks, 10-90%")
            ax.axhline(med, color="C1", lw=1.5, label=f"networks, median ({seen.size} trials)")
        pred = np.asarray(predicted[name], dtype=float)
        band = np.asarray(intervals[name], dtype=float).reshape(-1, 2)
        shown = np.minimum(pred, t_end)  # never reached: drawn at the end of training
        lower = np.minimum(band[:, 0], t_end)
        upper = np.minimum(band[:, 1], t_end)
        never = ~np.isfinite(pred)
        reached = np.where(never, np.nan, shown)  # a line only between finite predictions
        ax.plot(f, reached, "-", color="C0", lw=1.2)
        ok = ~never
        # the median of the runs may lie outside the bootstrap interval of it: the bar then
        # covers the interval only
        below = np.clip(shown[ok] - lower[ok], 0.0, None)
        above = np.clip(upper[ok] - shown[ok], 0.0, None)
        ax.errorbar(f[ok], shown[ok], yerr=[below, above], fmt="o", color="C0", capsize=3,
                    label="LE-SDE prediction")  # fmt: skip
        outside = ok & ((shown < lower) | (shown > upper))
        if outside.any():
            ax.vlines(f[outside], lower[outside], upper[outside], color="C0", lw=1.0)
        open_top = ok & ~np.isfinite(band[:, 1])
        for x, y in zip(f[open_top], upper[open_top], strict=True):
            ax.annotate("", xy=(x, 1.08 * t_end), xytext=(x, y),
                        arrowprops=dict(arrowstyle="->", color="C0", lw=1.0))  # fmt: skip
        if never.any():
            ax.plot(f[never], np.full(never.sum(), 1.08 * t_end), "^", color="C3", ms=9,
                    label="predicted: never (not within the run)")  # fmt: skip
            for x in f[never]:
                ax.annotate("never", (x, 1.08 * t_end), textcoords="offset points",
                            xytext=(0, -14), ha="center", fontsize=8, color="C3")  # fmt: skip
        ax.plot(f, f * t_end, ":", color="k", lw=1.0, label="end of the observed part")
        ax.axhline(t_end, color="0.6", lw=0.8)
        ax.set_ylim(0.0, 1.15 * t_end)
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_xlabel("fraction of training observed")
        ax.set_ylabel("time t = step × lr")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def metrics_against(x, series, xlabel="p_err", fig=None, marks=None, levels=None):
    """Metrics against a parameter, one panel each (e.g. the paper's Fig. 4 against p_err).

    ``series`` maps a name to values: shape (n,) for one run per ``x``, or (runs, n) for
    several seeds (drawn as mean with a ±1 standard-error band and the single runs as dots).
    ``marks`` maps a label to an x value drawn as a vertical line (e.g. the theory's
    transition); ``levels`` maps a label to a y value drawn as a horizontal line (e.g.
    chance, 1/K). Returns the Figure.

    Examples
    --------
    >>> fig = metrics_against([0.0, 0.5], {"val_accuracy": [0.9, 0.6]}, marks={"2/3": 2 / 3})
    >>> len(fig.axes)
    1
    """
    plt = pyplot()
    x = np.asarray(x, dtype=float)
    order = np.argsort(x)
    n = len(series)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    if fig is None:
        fig = plt.figure(figsize=(3.8 * ncols, 3.1 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax, (name, values) in zip(axes, series.items(), strict=False):
        v = np.atleast_2d(np.asarray(values, dtype=float))
        if v.shape[1] != x.size:
            raise ValueError(f"{name} has {v.shape[1]} values per run for {x.size} x values")
        with np.errstate(all="ignore"):
            mean = np.nanmean(v, axis=0)
        ax.plot(x[order], mean[order], "o-", color="C0", ms=4)
        if v.shape[0] > 1:
            with np.errstate(all="ignore"):
                n_ok = np.sum(np.isfinite(v), axis=0)
                sem = np.nanstd(v, axis=0, ddof=1) / np.sqrt(n_ok)
            ax.fill_between(x[order], (mean - sem)[order], (mean + sem)[order], alpha=0.25, lw=0)
            for row in v:
                ax.plot(x, row, ".", color="C0", alpha=0.35, ms=3)
        for i, (label, where) in enumerate((marks or {}).items()):
            ax.axvline(where, color=f"C{i + 1}", ls="--", lw=1.0, label=label)
        for label, level in (levels or {}).items():
            ax.axhline(level, color="0.4", ls=":", lw=1.0, label=label)
        if marks or levels:
            ax.legend(fontsize=8)
        ax.set_title(metric_label(name), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
