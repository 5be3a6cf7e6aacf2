"""What the figures of runs and sweeps share: a new Axes, the metrics drawn on a log scale,
and the words that name a run's model in a title.

Examples
--------
>>> import types, lesde
>>> from lesde.plot.common import describe_run
>>> run = types.SimpleNamespace(config=lesde.Config(signal="linear", alpha=2.0, beta=0.5))
>>> describe_run(run)
'linear signal, α = 2, β = 0.5'
"""

from __future__ import annotations

from .style import pyplot

__all__ = ["LOG_METRICS", "describe_run", "format_value", "impact_text", "new_axes"]

# Metrics drawn on a log scale (when all their values are positive).
LOG_METRICS = ("loss", "nc1", "etf_distance", "equinorm", "equiangularity", "coherence")


def new_axes(ax, **subplot_kw):
    """``ax`` itself, or the Axes of a new Figure (``subplot_kw`` as for ``add_subplot``).

    Examples
    --------
    >>> ax = new_axes(None)
    >>> new_axes(ax) is ax
    True
    """
    if ax is not None:
        return ax
    fig = pyplot().figure(figsize=(5.5, 4.5))
    return fig.add_subplot(1, 1, 1, **subplot_kw)


def format_value(value) -> str:
    """A Config value as a title shows it: floats short, a schedule by its kind.

    Examples
    --------
    >>> format_value(0.5), format_value(3)
    ('0.5', '3')
    """
    return f"{value:g}" if isinstance(value, float) else str(getattr(value, "kind", value))


def impact_text(cfg) -> str:
    """The impact of a Config in words: its alpha and beta, or "impact matrix E".

    Examples
    --------
    >>> import lesde
    >>> impact_text(lesde.Config(alpha=1.0, beta=0.25))
    'α = 1, β = 0.25'
    """
    if cfg.impact is not None:
        return "impact matrix E"
    return f"α = {format_value(cfg.alpha)}, β = {format_value(cfg.beta)}"


def describe_run(result) -> str:
    """One line naming a run: its signal and impact for a simulation, or the
    result's own ``title`` (a trained network's :class:`lesde.nn.TrainingResult`).

    Examples
    --------
    >>> class Trained:
    ...     title = "ResNet-18 on CIFAR-10"
    >>> describe_run(Trained())
    'ResNet-18 on CIFAR-10'
    """
    cfg = getattr(result, "config", None)
    if cfg is None:
        return str(getattr(result, "title", "run"))
    return f"{cfg.signal} signal, {impact_text(cfg)}"
