"""Figures of runs and sweeps (matplotlib, imported only when a function is called).

Every function draws into the ``ax`` (or ``fig``) it is given, or into a new one, and
returns it; none calls ``plt.show()``. Without a display (Linux, no ``DISPLAY``) the Agg
backend is selected (:func:`pyplot`). :func:`save` writes PNG, PDF or SVG by the file's
extension. The figures of alpha/beta estimates, replays and real networks
(:func:`impact_estimates`, :func:`replay_comparison`, :func:`impact_over_training`,
:func:`metrics_against`) are defined in :mod:`lesde.plot.fits` and re-exported here.

Examples
--------
>>> import lesde, lesde.plot
>>> res = lesde.simulate(n_classes=3, n_per_class=20, t_end=0.5, replicas=2, progress=False)
>>> fig = lesde.plot.metric_over_time(res, names=("loss", "accuracy"))
>>> len(fig.axes)
2
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np

# Re-exported: the figures of alpha/beta estimates and real networks live in plot_fits.
from .fits import impact_estimates, impact_over_training, metrics_against, replay_comparison
from .style import metric_label, pyplot

__all__ = [
    "class_means_3d",
    "drawn_by_lesde",
    "impact_estimates",
    "impact_over_training",
    "label_noise",
    "metric_over_time",
    "metrics_against",
    "phase_diagram",
    "phase_diagrams",
    "projection_over_time",
    "pyplot",
    "replay_comparison",
    "save",
]

# Metrics drawn on a log scale (when all their values are positive).
LOG_METRICS = ("loss", "nc1", "etf_distance", "equinorm", "equiangularity", "coherence")


def _axes(ax, **subplot_kw):
    if ax is not None:
        return ax
    fig = pyplot().figure(figsize=(5.5, 4.5))
    return fig.add_subplot(1, 1, 1, **subplot_kw)


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres (half-way between neighbours)."""
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        half = 0.5 * abs(v[0]) if v[0] != 0 else 0.5
        return np.array([v[0] - half, v[0] + half])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _fraction(x: float) -> str:
    f = Fraction(x).limit_denominator(20)
    return f"{f.numerator}/{f.denominator}" if f.denominator != 1 else f"{f.numerator}"


def _select(sweep_result, where, keep: tuple[str, ...]):
    """The rows of a sweep with the grid fields in ``where`` fixed; check nothing else varies."""
    where = dict(where or {})
    for name in where:
        if name not in sweep_result.grid:
            raise ValueError(f"where names {name!r}, which the sweep does not vary")
    if where:
        table = sweep_result.table
        mask = np.ones(len(table), dtype=bool)
        for name, value in where.items():
            column = table[name]
            if isinstance(value, float):
                mask &= np.isclose(column.to_numpy(dtype=float), value, rtol=1e-12, atol=0.0)
            else:
                mask &= (column == value).to_numpy()
        if not mask.any():
            raise ValueError(
                f"no sweep rows have {where}; values: "
                + ", ".join(f"{k}: {sweep_result.grid[k]}" for k in where)
            )
        grid = {k: ([where[k]] if k in where else v) for k, v in sweep_result.grid.items()}
        sweep_result = type(sweep_result)(
            table[mask].reset_index(drop=True), sweep_result.base, grid, sweep_result.meta
        )
    extra = {k: v for k, v in sweep_result.grid.items() if k not in keep and len(v) > 1}
    if extra:
        names = ", ".join(f"{k} ({len(v)} values)" for k, v in extra.items())
        raise ValueError(
            f"the sweep also varies {names}; averaging over them would mix different models: "
            "pick one value of each with where={...}"
        )
    return sweep_result


# ---------------------------------------------------------------------------- sweeps
def phase_diagram(sweep_result, metric: str | None = None, ax=None, annotate=None, where=None):
    """Heatmap of the mean of ``metric`` over replicas on the alpha x beta grid.

    ``metric`` defaults to the first of the sweep's headline metrics
    (:attr:`lesde.sweep.SweepResult.headline`, what ``lesde run`` leads with for its
    signal): ``separable_ncc`` for the linear and projected signals, ``loss`` for
    cross-entropy (on a log colour scale when all its means are positive).
    The theoretical boundary alpha = beta (docs/model.md section 3) is drawn and labelled.
    ``annotate`` writes the value in every cell (default: when there are at most 100).
    ``where`` fixes the other swept fields, e.g. ``where={"t_end": 10.0}``.
    Returns the Axes.

    Examples
    --------
    >>> import lesde
    >>> base = lesde.Config(n_classes=3, n_per_class=10, signal="linear", t_end=0.2)
    >>> res = lesde.phase_diagram(base, [0.5, 2.0], [0.5, 2.0], progress=False)
    >>> phase_diagram(res).get_xlabel()
    'α (intra-class impact)'
    """
    for name in ("alpha", "beta"):
        if name not in sweep_result.grid:
            raise ValueError(
                f"phase_diagram needs a sweep over alpha and beta (lesde.sweep.phase_diagram); "
                f"this one varies {', '.join(sweep_result.grid)}"
            )
    sweep_result = _select(sweep_result, where, ("alpha", "beta"))
    if metric is None:
        metric = _headline_metric(sweep_result)
    summary = sweep_result.summary(metrics=[metric])
    alphas = np.array(sorted(set(summary["alpha"])), dtype=float)
    betas = np.array(sorted(set(summary["beta"])), dtype=float)
    grid = np.full((betas.size, alphas.size), np.nan)
    for _, row in summary.iterrows():
        i = np.searchsorted(betas, row["beta"])
        j = np.searchsorted(alphas, row["alpha"])
        grid[i, j] = row[f"{metric}_mean"]

    ax = _axes(ax)
    fig = ax.figure
    fraction = metric.startswith("separable_") or "accuracy" in metric or metric == "nc4"
    kw = dict(vmin=0.0, vmax=1.0) if fraction else {}
    finite = grid[np.isfinite(grid)]
    logscale = metric in LOG_METRICS and finite.size > 0 and bool(np.all(finite > 0))
    if logscale:
        import matplotlib.colors

        kw = dict(norm=matplotlib.colors.LogNorm(vmin=finite.min(), vmax=finite.max()))
    mesh = ax.pcolormesh(
        _edges(alphas),
        _edges(betas),
        np.ma.masked_invalid(grid),
        cmap="viridis",
        shading="flat",
        **kw,
    )
    cbar = fig.colorbar(mesh, ax=ax)
    cbar.set_label(
        f"mean over replicas: {metric_label(metric)}" if not fraction else metric_label(metric)
    )
    if annotate is None:
        annotate = grid.size <= 100
    if annotate:
        _annotate_cells(ax, alphas, betas, grid, mesh.norm)
    lo = min(_edges(alphas)[0], _edges(betas)[0])
    hi = max(_edges(alphas)[-1], _edges(betas)[-1])
    line = np.linspace(lo, hi, 2)
    ax.plot(line, line, color="tab:red", lw=2, ls="--", label="theory: α = β", gid="boundary")
    ax.set_xlim(_edges(alphas)[0], _edges(alphas)[-1])
    ax.set_ylim(_edges(betas)[0], _edges(betas)[-1])
    ax.set_xlabel("α (intra-class impact)")
    ax.set_ylabel("β (inter-class impact)")
    ax.set_title(
        f"{_param(sweep_result, 'signal')} signal, K = "
        f"{_param(sweep_result, 'n_classes')}, σ = {_param(sweep_result, 'sigma')}, "
        f"t = {_t_end(sweep_result):g}",
        fontsize=10,
    )
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9)
    return ax


def phase_diagrams(sweep_result, metrics=None, fig=None, annotate=None, where=None):
    """One :func:`phase_diagram` panel per metric: by default the sweep's headline metrics
    (:attr:`lesde.sweep.SweepResult.headline`; ``lesde sweep`` draws this figure).
    Returns the Figure.

    Examples
    --------
    >>> import lesde
    >>> base = lesde.Config(n_classes=3, n_per_class=10, signal="linear", t_end=0.2)
    >>> res = lesde.phase_diagram(base, [0.5, 2.0], [0.5, 2.0], progress=False)
    >>> fig = phase_diagrams(res)  # the linear signal's headline; also a colour bar each
    >>> [ax.get_label() for ax in fig.axes if not ax.get_label().startswith("<")]
    ['separable_ncc', 'ncc_accuracy', 'nc1']
    """
    if metrics is None:
        metrics = getattr(sweep_result, "headline", ()) or (_headline_metric(sweep_result),)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    ncols = min(len(metrics), 3)
    nrows = -(-len(metrics) // ncols)
    if fig is None:
        fig = pyplot().figure(figsize=(5.5 * ncols, 4.5 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        phase_diagram(sweep_result, metric=metric, ax=ax, annotate=annotate, where=where)
        ax.set_label(metric)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def _headline_metric(sweep_result) -> str:
    """The first headline metric of a sweep, for the figures that draw one metric."""
    headline = getattr(sweep_result, "headline", ())
    if not headline:
        raise ValueError(
            "this sweep has no signal to choose a metric by (no base config): pass metric=..."
        )
    return headline[0]


def _annotate_cells(ax, alphas, betas, grid, norm) -> None:
    """Write each finite cell's value on the heatmap, dark on light cells and vice versa
    (``norm``: the heatmap's map from values to the colour scale's [0, 1])."""
    for i, b in enumerate(betas):
        for j, a in enumerate(alphas):
            v = grid[i, j]
            if not np.isfinite(v):
                continue
            light = float(norm(v)) > 0.6
            ax.text(
                a,
                b,
                f"{v:.2g}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if light else "white",
            )


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(getattr(value, "kind", value))


def _impact(cfg) -> str:
    if cfg.impact is not None:
        return "impact matrix E"
    return f"α = {_fmt(cfg.alpha)}, β = {_fmt(cfg.beta)}"


def _describe(result) -> str:
    """One line naming a run: its signal and impact for a simulation, or the result's own
    ``title`` (a trained network's :class:`lesde.nn.TrainingResult`)."""
    cfg = getattr(result, "config", None)
    if cfg is None:
        return str(getattr(result, "title", "run"))
    return f"{cfg.signal} signal, {_impact(cfg)}"


def _param(sweep_result, name: str):
    """A field's value for a selected sweep: its single grid value, else the base's."""
    if name in sweep_result.grid and len(sweep_result.grid[name]) == 1:
        return sweep_result.grid[name][0]
    return _fmt(getattr(sweep_result.base, name))


def _t_end(sweep_result) -> float:
    t = sweep_result.table
    return float(t["t_end"].iloc[0]) if "t_end" in t.columns and len(t) else float("nan")


def label_noise(sweep_result, metrics=("clean_accuracy", "accuracy"), ax=None, where=None):
    """Mean (line) and 5-95% quantile ribbon of ``metrics`` against p_err.

    Marks p_err = (K-1)/K, where theory puts the transition of the clean accuracy
    (docs/model.md section 3), and the chance level 1/K. ``where`` fixes the other swept
    fields. Returns the Axes.

    Examples
    --------
    >>> import lesde
    >>> base = lesde.Config(n_classes=3, n_per_class=10, alpha=2.0, t_end=0.2)
    >>> res = lesde.label_noise_sweep(base, [0.0, 0.5], progress=False)
    >>> label_noise(res).get_xlabel()
    'label corruption p_err'
    """
    if "label_noise" not in sweep_result.grid:
        raise ValueError(
            "label_noise needs a sweep over label_noise (lesde.sweep.label_noise_sweep); "
            f"this one varies {', '.join(sweep_result.grid)}"
        )
    sweep_result = _select(sweep_result, where, ("label_noise",))
    if isinstance(metrics, str):
        metrics = (metrics,)
    summary = sweep_result.summary(metrics=list(metrics)).sort_values("label_noise")
    K = int(_param(sweep_result, "n_classes"))
    ax = _axes(ax)
    x = summary["label_noise"].to_numpy(dtype=float)
    for name in metrics:
        (line,) = ax.plot(x, summary[f"{name}_mean"], marker="o", ms=4, label=metric_label(name))
        ax.fill_between(
            x,
            summary[f"{name}_q05"],
            summary[f"{name}_q95"],
            color=line.get_color(),
            alpha=0.2,
            lw=0,
        )
    crit = (K - 1) / K
    ax.axvline(
        crit,
        color="tab:red",
        ls="--",
        lw=1.5,
        label=f"theory: p_err = (K-1)/K = {_fraction(crit)}",
        gid="transition",
    )
    ax.axhline(
        1.0 / K,
        color="gray",
        ls=":",
        lw=1.5,
        label=f"chance 1/K = {_fraction(1 / K)}",
        gid="chance",
    )
    ax.set_xlabel("label corruption p_err")
    ax.set_ylabel("final value (mean, 5-95% band)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        f"{_param(sweep_result, 'signal')} signal, K = {K}, "
        f"α = {_param(sweep_result, 'alpha')}, β = {_param(sweep_result, 'beta')}, "
        f"t = {_t_end(sweep_result):g}",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    return ax


# ---------------------------------------------------------------------------- single runs
def _median_band(values: np.ndarray, quantiles) -> tuple[np.ndarray, ...]:
    """Median and quantiles over replicas (rows) at each record; NaN where none is finite."""
    T = values.shape[1]
    med, lo, hi = np.full(T, np.nan), np.full(T, np.nan), np.full(T, np.nan)
    ok = np.any(np.isfinite(values), axis=0)
    if ok.any():
        with np.errstate(all="ignore"):
            med[ok] = np.nanmedian(values[:, ok], axis=0)
            lo[ok], hi[ok] = np.nanquantile(values[:, ok], quantiles, axis=0)
    return med, lo, hi


# What metric_over_time draws of records that name no headline (a real network's).
DEFAULT_OVER_TIME = ("loss", "accuracy", "nc1", "etf_distance")


def _headline_series(runs: dict) -> tuple[str, ...]:
    """The recorded metrics among the runs' headlines (:attr:`lesde.Result.headline`, the
    metrics their signal drives; ``separable_ncc`` is a final certificate, not a series),
    or :data:`DEFAULT_OVER_TIME` for records without a headline."""
    if not all(hasattr(res, "headline") for res in runs.values()):
        return DEFAULT_OVER_TIME
    names = dict.fromkeys(m for res in runs.values() for m in res.headline if m in res.metrics)
    return tuple(names) or DEFAULT_OVER_TIME


def metric_over_time(result, names=None, fig=None, quantiles=(0.1, 0.9)):
    """Each metric against time: median over replicas and a 10-90% quantile ribbon.

    ``result`` is a :class:`~lesde.Result` or a dict ``label -> Result`` (drawn in
    different colours, for comparisons). ``names`` defaults to the recorded metrics of the
    runs' headline (:attr:`lesde.Result.headline`: NCC accuracy and NC1 for the linear
    signal; loss, accuracy, NCC accuracy, NC1 and the distance to a simplex ETF for
    cross-entropy), or to loss, accuracy, NC1 and ETF distance for a real network's
    records. Loss, NC1 and the NC2 metrics use a log scale when
    all their values are positive. Returns the Figure.

    Examples
    --------
    >>> import lesde
    >>> runs = {b: lesde.simulate(n_classes=3, n_per_class=10, beta=b, t_end=0.2,
    ...                           progress=False) for b in (0.2, 2.0)}
    >>> len(metric_over_time(runs, names=("loss", "nc1", "accuracy")).axes)
    3
    """
    plt = pyplot()
    runs = dict(result) if isinstance(result, Mapping) else {None: result}
    if names is None:
        names = _headline_series(runs)
    if isinstance(names, str):
        names = (names,)
    for label, res in runs.items():
        for name in names:
            if name not in res.metrics:
                hint = difflib.get_close_matches(name, list(res.metrics), n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                what = "" if label is None else f" of {label!r}"
                raise KeyError(f"no metric {name!r} in the result{what}{extra}")
    ncols = min(len(names), 2 if len(names) == 4 else 3)
    nrows = -(-len(names) // ncols)
    if fig is None:
        fig = plt.figure(figsize=(4.6 * ncols, 3.4 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        positive = True
        for i, (label, res) in enumerate(runs.items()):
            values = np.asarray(res.metrics[name], dtype=float)
            t = res.times
            finite = np.where(np.isfinite(values), values, np.nan)
            med, lo, hi = _median_band(finite, quantiles)
            color = f"C{i}"
            ax.plot(t, med, color=color, lw=1.8, label=label if label is not None else "median")
            if values.shape[0] > 1:
                ax.fill_between(t, lo, hi, color=color, alpha=0.25, lw=0)
            positive &= bool(np.all(finite[np.isfinite(finite)] > 0))
        if name in LOG_METRICS and positive:
            ax.set_yscale("log")
        ax.set_title(metric_label(name), fontsize=10)
        ax.set_xlabel("time t")
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    q = f"{int(100 * quantiles[0])}-{int(100 * quantiles[1])}%"
    handles, labels = axes[0].get_legend_handles_labels()
    if len(runs) > 1:
        fig.legend(
            handles,
            labels,
            loc="upper center",
            ncols=len(runs),
            fontsize=9,
            title=f"median over replicas, {q} band",
            title_fontsize=9,
            bbox_to_anchor=(0.5, 1.0),
        )
        fig.tight_layout(rect=(0, 0, 1, 0.9))
    else:
        r = next(iter(runs.values()))
        R = r.metrics[names[0]].shape[0]
        fig.suptitle(
            _describe(r) + (f": median over {R} replicas, {q} band" if R > 1 else ""),
            fontsize=10,
        )
        fig.tight_layout()
    return fig


def _check_replica(result, replica: int) -> int:
    R = result.class_means.shape[0]
    if not -R <= replica < R:
        raise IndexError(f"replica {replica} out of range for {R} replicas")
    return replica % R


def class_means_3d(result, replica: int = 0, ax=None, view=(20.0, 30.0)):
    """Class-mean trajectories in 3-D (K = 3 logits) with the plane x1 + x2 + x3 = 0.

    The plane through the origin holds the label directions v_k = e_k - 1/3; movement off
    it is the common mode (all logits up together), which does not change any decision.
    ``view`` is the camera's (elevation, azimuth) in degrees (None keeps the Axes' own).
    Returns the (3-D) Axes. Raises ValueError unless the features are 3-dimensional.

    Examples
    --------
    >>> import lesde
    >>> res = lesde.simulate(n_classes=3, n_per_class=10, t_end=0.2, progress=False)
    >>> class_means_3d(res).name
    '3d'
    """
    plt = pyplot()
    means = np.asarray(result.class_means)
    p = means.shape[-1]
    if p != 3:
        raise ValueError(f"class_means_3d draws 3-D features (K = 3 logits); this run has p = {p}")
    replica = _check_replica(result, replica)
    m = means[replica]  # (T, K, 3)
    if ax is None:
        fig = plt.figure(figsize=(6.0, 5.5))
        ax = fig.add_subplot(1, 1, 1, projection="3d")
    elif not hasattr(ax, "zaxis"):
        raise ValueError("class_means_3d needs a 3-D Axes (projection='3d')")
    finite = m[np.all(np.isfinite(m), axis=-1)]
    extent = float(np.max(np.abs(finite))) if finite.size else 1.0
    extent = extent or 1.0
    # the plane x1 + x2 + x3 = 0, spanned by two orthonormal vectors of 1^perp
    u = np.array([1.0, -1.0, 0.0]) / np.sqrt(2.0)
    w = np.array([1.0, 1.0, -2.0]) / np.sqrt(6.0)
    s = np.linspace(-extent, extent, 2)
    S, T = np.meshgrid(s, s)
    P = S[..., None] * u + T[..., None] * w
    ax.plot_surface(
        P[..., 0], P[..., 1], P[..., 2], color="gray", alpha=0.15, lw=0, gid="simplex_plane"
    )
    for k in range(m.shape[1]):
        (line,) = ax.plot(m[:, k, 0], m[:, k, 1], m[:, k, 2], lw=2, label=f"class {k}")
        ax.scatter(*m[0, k], color=line.get_color(), marker="o", s=20)
        last = np.flatnonzero(np.all(np.isfinite(m[:, k]), axis=-1))
        if last.size:
            ax.scatter(*m[last[-1], k], color=line.get_color(), marker="*", s=90)
        v = np.eye(3)[k] - 1.0 / 3.0
        v *= 0.8 * extent / np.linalg.norm(v)
        ax.plot([0, v[0]], [0, v[1]], [0, v[2]], color=line.get_color(), ls=":", lw=1)
    ax.plot([], [], color="gray", lw=6, alpha=0.3, label="plane x₁+x₂+x₃ = 0")
    ax.plot([], [], color="k", ls=":", lw=1, label="label directions v_k")
    ax.set_xlabel("logit 1")
    ax.set_ylabel("logit 2")
    ax.set_zlabel("logit 3")
    ax.set_title(f"class means, {_describe(result)} (o start, * end)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    if view is not None:
        ax.view_init(elev=view[0], azim=view[1])
    return ax


def projection_over_time(result, direction=None, ax=None, replica: int = 0):
    """Recorded sample features projected on one direction, against time (the paper's Fig. 1).

    ``direction`` (length p) defaults to the unit difference of the final class means of
    classes 1 and 0. Needs sample trajectories: run with ``record_samples`` set (for
    example ``record_samples=200``). One colour per true class; the class-mean projections
    are drawn as lines. Returns the Axes.

    Examples
    --------
    >>> import lesde
    >>> res = lesde.simulate(n_classes=3, n_per_class=10, t_end=0.2, record_samples=6,
    ...                      progress=False)
    >>> projection_over_time(res).get_xlabel()
    'time t'
    """
    traj = np.asarray(result.sample_trajectories)
    if traj.ndim != 4 or traj.shape[2] == 0:
        raise ValueError(
            "projection_over_time needs sample trajectories: run with record_samples set "
            "(e.g. lesde.Config(..., record_samples=200))"
        )
    replica = _check_replica(result, replica)
    means = np.asarray(result.class_means[replica])  # (T, K, p)
    if direction is None:
        rows = np.flatnonzero(np.all(np.isfinite(means[:, :2]), axis=(1, 2)))
        if rows.size == 0:
            raise ValueError("no finite record of the class means to take a direction from")
        d = means[rows[-1], 1] - means[rows[-1], 0]
        what = "unit(m₁ - m₀) at the end"
    else:
        d = np.asarray(direction, dtype=float).reshape(-1)
        if d.shape != (traj.shape[-1],):
            raise ValueError(f"direction must have length p = {traj.shape[-1]}, got {d.shape}")
        what = "the given direction"
    norm = np.linalg.norm(d)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("the projection direction is zero or not finite")
    d = d / norm
    z = traj[replica] @ d  # (T, S)
    t = np.asarray(result.times)
    cls = np.asarray(result.classes)[np.asarray(result.sample_indices)]
    ax = _axes(ax)
    ax.figure.set_size_inches(6.5, 4.5)
    for k in np.unique(cls):
        cols = cls == k
        tt = np.repeat(t, cols.sum())
        ax.scatter(tt, z[:, cols].ravel(), s=3, alpha=0.35, color=f"C{k}", lw=0, label=f"class {k}")
        ax.plot(t, means[:, k] @ d, color=f"C{k}", lw=1.5)
    ax.set_xlabel("time t")
    ax.set_ylabel(f"projection on {what}")
    cfg = result.config
    ax.set_title(
        f"{cfg.signal}, {_impact(cfg)}, σ = {_fmt(cfg.sigma)} (dots: samples, lines: class means)",
        fontsize=9,
    )
    leg = ax.legend(fontsize=8, markerscale=4, loc="best")
    for h in leg.legend_handles:
        h.set_alpha(1.0)
    return ax


# ---------------------------------------------------------------------------- files
def save(fig, path) -> Path:
    """Write a Figure (or the Figure of an Axes) to ``path``: PNG, PDF or SVG by extension.

    Parent folders are created; the bounding box is tight. Returns the path.

    Examples
    --------
    >>> import os, tempfile
    >>> fig = pyplot().figure()
    >>> path = save(fig, os.path.join(tempfile.mkdtemp(), "figs", "empty.svg"))
    >>> path.name, path.exists()
    ('empty.svg', True)
    """
    figure = getattr(fig, "figure", None) if not hasattr(fig, "savefig") else fig
    if figure is None or not hasattr(figure, "savefig"):
        raise TypeError(f"save needs a matplotlib Figure or Axes, got {type(fig).__name__}")
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in ("png", "pdf", "svg"):
        raise ValueError(f"save writes .png, .pdf or .svg files, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A PNG says it was drawn by lesde (drawn_by_lesde), so that `lesde plot` replaces
    # its own figures and never a picture of the user's.
    metadata = {"Software": _SOFTWARE} if ext == "png" else None
    figure.savefig(path, format=ext, bbox_inches="tight", dpi=150, metadata=metadata)
    return path


_SOFTWARE = "lesde (matplotlib)"  # the PNG tEXt "Software" of lesde's figures
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def drawn_by_lesde(path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` is a PNG figure that :func:`save` wrote (its
    ``Software`` text chunk says so). Only the chunks before the image data are read, and
    anything but a regular file (a FIFO) is not opened for a blocking read.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "empty.png")
    >>> _ = save(pyplot().figure(), path)
    >>> drawn_by_lesde(path), drawn_by_lesde(os.path.dirname(path))
    (True, False)
    """
    from ..io.storage import open_input

    try:
        with open_input(path, "figure") as f:
            if f.read(8) != _PNG_SIGNATURE:
                return False
            for _ in range(64):  # the text chunks come before the image data
                head = f.read(8)
                if len(head) < 8:
                    return False
                size, kind = int.from_bytes(head[:4], "big"), head[4:]
                if kind in (b"IDAT", b"IEND") or size > 2**20:
                    return False
                data = f.read(size)
                f.read(4)  # CRC
                if kind == b"tEXt" and data == b"Software\0" + _SOFTWARE.encode():
                    return True
    except (OSError, ValueError):
        return False
    return False
