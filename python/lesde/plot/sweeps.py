"""Figures of sweeps: the alpha x beta phase diagram and the label-noise curve.

Both take a :class:`lesde.sweep.SweepResult`; a sweep that varies more than the figure's
axes is refused unless ``where={...}`` picks one value of each other field.

Examples
--------
>>> import lesde
>>> from lesde.plot.sweeps import phase_diagram
>>> base = lesde.Config(n_classes=3, n_per_class=10, signal="linear", t_end=0.2)
>>> res = lesde.sweep.phase_diagram(base, [0.5, 2.0], [0.5, 2.0], progress=False)
>>> phase_diagram(res, "separable_ncc").get_xlabel()
'α (intra-class impact)'
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from .common import LOG_METRICS, format_value, new_axes
from .style import metric_label, pyplot

__all__ = ["label_noise", "phase_diagram", "phase_diagrams"]


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

    ax = new_axes(ax)
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


def _param(sweep_result, name: str):
    """A field's value for a selected sweep: its single grid value, else the base's."""
    if name in sweep_result.grid and len(sweep_result.grid[name]) == 1:
        return sweep_result.grid[name][0]
    return format_value(getattr(sweep_result.base, name))


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
    ax = new_axes(ax)
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
