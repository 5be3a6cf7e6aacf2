"""Figures of runs and sweeps (matplotlib, imported only when a function is called).

Every function draws into the ``ax`` (or ``fig``) it is given, or into a new one, and
returns it; none calls ``plt.show()``. Without a display (Linux, no ``DISPLAY``) the Agg
backend is selected (:func:`pyplot`). :func:`save` writes PNG, PDF or SVG by the file's
extension. The figures of alpha/beta estimates, replays and real networks
(:func:`impact_estimates`, :func:`replay_comparison`, :func:`impact_over_training`,
:func:`metrics_against`) are defined in :mod:`lesde.plot.fits` and re-exported here.

The figures live by subject and are all re-exported here: :mod:`lesde.plot.sweeps` (phase
diagram, label noise), :mod:`lesde.plot.runs` (metrics over time, class means, projection),
:mod:`lesde.plot.fits` (estimates, replays, real networks), :mod:`lesde.plot.files`
(:func:`save`, :func:`drawn_by_lesde`); :mod:`lesde.plot.style` and :mod:`lesde.plot.common`
hold what they share.

Examples
--------
>>> import lesde, lesde.plot
>>> res = lesde.simulate(n_classes=3, n_per_class=20, t_end=0.5, replicas=2, progress=False)
>>> fig = lesde.plot.metric_over_time(res, names=("loss", "accuracy"))
>>> len(fig.axes)
2
"""

from __future__ import annotations

from .files import drawn_by_lesde, save
from .fits import impact_estimates, impact_over_training, metrics_against, replay_comparison
from .runs import class_means_3d, metric_over_time, projection_over_time
from .style import pyplot
from .sweeps import label_noise, phase_diagram, phase_diagrams

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
