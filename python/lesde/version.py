"""Which lesde this is: the package version and how its compiled core was built.

Kept in a module of its own, at the bottom of the package, so that the modules recording
provenance (results, checkpoints, Zarr stores) need not import the package itself.

Examples
--------
>>> isinstance(__version__, str)
True
"""

from importlib import metadata

from . import _core

try:
    __version__ = metadata.version("lesde")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "build_info"]


def build_info() -> dict:
    """How the compiled core was built: version, compiler, OpenMP, SIMD flags, CUDA.

    Examples
    --------
    >>> info = build_info()
    >>> isinstance(info["openmp"], bool)
    True
    """
    info = dict(_core.build_info())
    info["version"] = __version__
    info["random_stream_version"] = int(_core.RANDOM_STREAM_VERSION)
    info["reduction_order"] = int(_core.REDUCTION_ORDER_VERSION)
    return info
