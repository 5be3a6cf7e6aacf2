"""What every lesde figure shares: matplotlib set up for files, and the metrics' axis labels.

:mod:`lesde.plot` and :mod:`lesde.plot.fits` draw with these; :func:`pyplot` is also
re-exported as ``lesde.plot.pyplot`` for scripts that build their own figures.

Examples
--------
>>> from lesde.plot.style import metric_label
>>> metric_label("nc4"), metric_label("my_metric")
('NC4  (NCC = argmax)', 'my metric')
"""

from __future__ import annotations

import os
import sys

__all__ = ["LABELS", "metric_label", "pyplot"]

#: Axis labels of the metrics lesde records (any other name is shown with spaces for "_").
LABELS = {
    "loss": "loss",
    "accuracy": "accuracy (training labels)",
    "clean_accuracy": "clean accuracy (true classes)",
    "ncc_accuracy": "NCC accuracy",
    "nc1": "NC1  tr(Σ_W Σ_B⁺)/K",
    "nc4": "NC4  (NCC = argmax)",
    "equinorm": "equinorm (CV of |M_k|)",
    "equiangularity": "equiangularity (std cos)",
    "etf_distance": "distance to simplex ETF",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    "loss_tail_exponent": "loss tail exponent r (loss ~ t^-r)",
    "separable_ncc": "fraction separable (NCC certificate)",
    "separable_argmax": "fraction with argmax = label",
    "separable_lp": "fraction separable (exact LP)",
}


def pyplot():
    """``matplotlib.pyplot``, with the Agg backend where there is no display.

    matplotlib is imported on the first call, not with lesde (it takes a while). On Linux
    without ``DISPLAY`` or ``WAYLAND_DISPLAY`` the file-only Agg backend is chosen, unless
    ``MPLBACKEND`` says otherwise or pyplot is already imported.

    Examples
    --------
    >>> plt = pyplot()
    >>> fig = plt.figure()
    >>> plt.close(fig)
    """
    import matplotlib

    headless = sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if headless and "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_label(name: str) -> str:
    """The axis label of a metric (:data:`LABELS`, else the name with spaces).

    Examples
    --------
    >>> metric_label("ncc_accuracy")
    'NCC accuracy'
    """
    return LABELS.get(name, name.replace("_", " "))
