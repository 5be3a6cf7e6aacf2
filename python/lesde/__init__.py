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

``lesde.simulate`` and ``lesde.sweep`` are both a module and its main function: call them
(``lesde.sweep(base, grid)``), or import them (``import lesde.sweep as sw;
sw.phase_diagram``) and take what else they hold.

>>> import lesde.sweep as sw
>>> sw.phase_diagram is lesde.sweep.phase_diagram, callable(lesde.sweep)
(True, True)
"""

import importlib as _importlib
import inspect as _inspect
import types as _types

from . import metrics, plot, sweep
from .analysis import estimate
from .analysis.estimate import replay
from .sim import simulate
from .sim.checkpoint import resume
from .sim.config import Config
from .sim.result import Result, load
from .sim.schedules import Constant, ExponentialDecay, PowerLaw, Tabulated
from .sim.simulate import InsufficientMemoryError, NonFiniteError
from .sim.zarr_store import load_zarr  # zarr itself is imported on use (lesde[zarr])
from .sweep import label_noise_sweep, phase_diagram
from .version import __version__, build_info


class _ModuleAndFunction(_types.ModuleType):
    """A module that is also the function it is named after.

    ``lesde.sweep`` is the module ``lesde/sweep.py`` and calls its function ``sweep``, so
    ``lesde.sweep(...)`` and ``import lesde.sweep as sw; sw.phase_diagram`` both work (a
    function exported under a submodule's name would hide the module from ``import ... as``).
    ``inspect.signature`` gives the function's; it pickles as a reference, as a function does.
    """

    @property
    def _function(self):
        return getattr(self, self.__name__.rpartition(".")[2])

    def __call__(self, *args, **kwargs):
        return self._function(*args, **kwargs)

    @property
    def __signature__(self):
        return _inspect.signature(self._function)

    def __reduce__(self):
        return _importlib.import_module, (self.__name__,)


# Every submodule whose name the package also exports as a function (tests/test_api.py).
for _module in (simulate, sweep):
    _module.__class__ = _ModuleAndFunction
del _module

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
