"""Files, by one name: every public name of the file modules of :mod:`lesde.io`.

lesde writes its files atomically (:mod:`lesde.io.atomic`), reads its ``.npz`` files back
only after every check that can be made first, never unpickling (:mod:`lesde.io.npz`),
takes only regular files as inputs (:mod:`lesde.io.inputs`), gives one writer at a time
(:mod:`lesde.io.locks`), never replaces what it may not (:mod:`lesde.io.replace`) and
reads nothing that would not fit in memory (:mod:`lesde.io.memory`). This module names
them all, so ``storage.read_npz`` and ``from lesde.io.storage import read_npz`` keep
working; each name is looked up in its module when used, so a test that replaces
``lesde.io.memory.available_memory`` replaces it for every reader.

Examples
--------
>>> import os, tempfile, numpy as np
>>> from lesde.io import storage
>>> path = os.path.join(tempfile.mkdtemp(), "demo.npz")
>>> storage.write_npz(path, {"x": np.arange(3.0)}, {"kind": "demo", "format_version": 1})
>>> storage.read_npz(path, what="demo file", kind="demo", format_version=1,
...                  required=["x"]).arrays
{'x': array([0., 1., 2.])}
"""

from __future__ import annotations

from typing import Any

from . import atomic, inputs, locks, memory, npz, replace

_MODULES = (atomic, npz, locks, replace, inputs, memory)
#: Each public name and the module that defines it.
_HOME = {name: module for module in _MODULES for name in module.__all__}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """A public name of a file module, looked up there now (replacing it there replaces it
    here)."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
