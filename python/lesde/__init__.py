"""lesde: a fast simulator of locally elastic stochastic differential equations.

The LE-SDE (Zhang, Wang & Su, NeurIPS 2021) imitates the training dynamics of a deep
network by the features of its N training samples, coupled through a K x K impact matrix.

Examples
--------
>>> import lesde
>>> res = lesde.simulate(n_classes=3, n_per_class=100, alpha=1.0, beta=0.2, t_end=1.0,
...                      progress=False)
>>> res.metrics["accuracy"].shape
(1, 101)
"""

from . import estimate, metrics, plot
from .checkpoint import resume
from .config import Config
from .estimate import replay
from .result import Result, load
from .schedules import Constant, ExponentialDecay, PowerLaw, Tabulated
from .simulate import InsufficientMemoryError, NonFiniteError, simulate
from .sweep import label_noise_sweep, phase_diagram, sweep  # the function; module: lesde.sweep
from .version import __version__, build_info
from .zarr_store import load_zarr  # zarr itself is imported on use (lesde[zarr])

__all__ = [
    "Config",
    "Constant",
    "ExponentialDecay",
    "InsufficientMemoryError",
    "NonFiniteError",
    "PowerLaw",
    "Result",
    "Tabulated",
    "__version__",
    "build_info",
    "estimate",
    "label_noise_sweep",
    "load",
    "load_zarr",
    "metrics",
    "phase_diagram",
    "plot",
    "replay",
    "resume",
    "simulate",
    "sweep",
]
