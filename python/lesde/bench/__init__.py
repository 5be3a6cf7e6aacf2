"""lesde's benchmark suite: its LE-SDE step against NumPy, threaded NumPy, PyTorch and JAX
baselines of the same problem, plus a memory-bandwidth probe (``lesde bench``).

- :mod:`lesde.bench.problem`: the problem every backend integrates and its float64 reference;
- :mod:`lesde.bench.baselines`: the backends (lesde's engine and the baselines) behind one
  interface, and the check of each against the reference;
- :mod:`lesde.bench.harness`: timing, one pinned subprocess per configuration, rows with
  the speed-up over NumPy of the same run;
- :mod:`lesde.bench.bandwidth`: STREAM-like copy and triad bandwidth;
- :mod:`lesde.bench.cli`: the command line (``lesde bench --quick``, ``--smoke``, ...).

PyTorch and JAX are imported only when their baselines run; without them those rows say
``unavailable`` (``pip install 'lesde[bench]'`` brings both).

Examples
--------
>>> from lesde.bench import make_stepper
>>> make_stepper("numpy", "linear", N=100, K=2, p=2).state().shape
(100, 2)
"""

from .baselines import BACKENDS, available_backends, check_against_reference, make_stepper
from .cli import main
from .problem import make_problem, reference_run

__all__ = [
    "BACKENDS",
    "available_backends",
    "check_against_reference",
    "main",
    "make_problem",
    "make_stepper",
    "reference_run",
]
