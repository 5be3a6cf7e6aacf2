"""Figures of single runs: metrics over time, class means in 3-D, the features' projection.

They take a :class:`lesde.Result` (or several, by name), or anything with the same
``times``, ``metrics`` and ``class_means`` (a trained network's record).

Examples
--------
>>> import lesde
>>> from lesde.plot.runs import metric_over_time
>>> res = lesde.simulate(n_classes=3, n_per_class=20, t_end=0.5, replicas=2, progress=False)
>>> len(metric_over_time(res, names=("loss",)).axes)
1
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import numpy as np

from .common import LOG_METRICS, describe_run, format_value, impact_text, new_axes
from .style import metric_label, pyplot

__all__ = ["DEFAULT_OVER_TIME", "class_means_3d", "metric_over_time", "projection_over_time"]


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
            describe_run(r) + (f": median over {R} replicas, {q} band" if R > 1 else ""),
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
    ax.set_title(f"class means, {describe_run(result)} (o start, * end)", fontsize=10)
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
    ax = new_axes(ax)
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
        f"{cfg.signal}, {impact_text(cfg)}, σ = {format_value(cfg.sigma)} "
        "(dots: samples, lines: class means)",
        fontsize=9,
    )
    leg = ax.legend(fontsize=8, markerscale=4, loc="best")
    for h in leg.legend_handles:
        h.set_alpha(1.0)
    return ax
