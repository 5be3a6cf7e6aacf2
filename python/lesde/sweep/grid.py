"""The points of a sweep: the grid grammar, the order of the points, their seeds and names.

A *grid* maps Config field names to the values to sweep. Grammar (explicit; strings are
never evaluated)::

    {"alpha": [0.5, 1.0, 2.0],                       # a list (or tuple, or 1-D array)
     "beta": {"start": 0.0, "stop": 2.0, "num": 5},  # numpy.linspace(start, stop, num)
     "sigma": {"start": 0.1, "stop": 10, "num": 3, "scale": "log"},  # numpy.geomspace
     "signal": {"values": ["linear", "projected"]}}   # same as a list

Points are numbered in the order of :func:`itertools.product` over the grid's keys in
insertion order: the *last* key varies fastest. Point ``i`` runs with the seed
``point_seed(base.seed, i)``, whatever executor or worker runs it, so a sweep gives the same
table on one thread, many threads, a process pool or a cluster. (A ``noise_seed`` set on
the base config is kept at every point: all points then share their Brownian increments.)
A point's result file is named by :func:`config_hash`.

:mod:`lesde.sweep` runs the points and re-exports :func:`expand_grid`, :func:`point_seed`
and :func:`config_hash`.

Examples
--------
>>> from lesde.sweep.grid import expand_grid
>>> expand_grid({"alpha": [2.0, 0.5], "beta": {"start": 0.0, "stop": 1.0, "num": 2}})
{'alpha': [2.0, 0.5], 'beta': [0.0, 1.0]}
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..sim.config import Config
from ..sim.engine import check_backend
from ..validate import integer

__all__ = ["MAX_GRID_POINTS", "config_hash", "expand_grid", "point_seed", "table_cell"]

#: Most points a grid may have (each is a run and a Config built before any runs).
MAX_GRID_POINTS = 100_000

# Fields a grid may not name, and why.
_NOT_SWEEPABLE = {
    "seed": "each point's seed is derived from base.seed and the point index",
    "noise_seed": "set it on the base config (shared by all points) or leave it to the seed",
    "replicas": "pass replicas=... to the sweep",
    "threads": "the sweep sets threads from the cores available and the number of workers",
}


def point_seed(seed: int, index: int) -> int:
    """The seed of grid point ``index`` of a sweep whose base config has ``seed``.

    It depends on these two numbers only (never on the worker that runs the point).

    Examples
    --------
    >>> point_seed(0, 3) == point_seed(0, 3) != point_seed(0, 4)
    True
    """
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)
    return int(state[0])


def _plain_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _grid_values(name: str, spec: Any) -> list:
    where = f"grid[{name!r}]"
    if isinstance(spec, Mapping):
        keys = set(spec)
        if keys == {"values"}:
            return _grid_values(name, spec["values"])
        if {"start", "stop", "num"} <= keys <= {"start", "stop", "num", "scale"}:
            start, stop = spec["start"], spec["stop"]
            for key, v in (("start", start), ("stop", stop)):
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                    raise TypeError(f"{where}: {key} must be a number, got {v!r}")
                if not math.isfinite(float(v)):
                    raise ValueError(f"{where}: {key} must be finite, got {v!r}")
            num = integer(f"{where}: num", spec["num"], at_least=1, at_most=MAX_GRID_POINTS)
            scale = spec.get("scale", "linear")
            if scale == "linear":
                values = np.linspace(float(start), float(stop), int(num))
            elif scale == "log":
                if float(start) <= 0 or float(stop) <= 0:
                    raise ValueError(f"{where}: scale 'log' needs start > 0 and stop > 0")
                values = np.geomspace(float(start), float(stop), int(num))
            else:
                raise ValueError(f"{where}: scale must be 'linear' or 'log', got {scale!r}")
            return [float(v) for v in values]
        raise ValueError(
            f"{where}: a dict must have the keys {{'start', 'stop', 'num'}} (and optionally "
            f"'scale': 'linear' or 'log'), or the single key 'values'; got {sorted(keys)}"
        )
    if isinstance(spec, (str, bytes)) or not hasattr(spec, "__iter__"):
        raise TypeError(
            f"{where} must be a list of values or a dict ({{'start', 'stop', 'num'}} or "
            f"{{'values': [...]}}); for a single value write [{spec!r}]"
        )
    values = [_plain_value(v) for v in spec]
    if not values:
        raise ValueError(f"{where} is empty: give at least one value")
    return values


def expand_grid(grid: Mapping[str, Any]) -> dict[str, list]:
    """Check a grid and expand every entry to its list of values.

    Raises ValueError for an unknown Config field (with a did-you-mean hint), a field
    that a sweep sets itself (seed, noise_seed, replicas, threads), a backend that cannot
    run here (:func:`lesde.sim.engine.check_backend`), or a grid of more than
    :data:`MAX_GRID_POINTS` points (counted before any list of values is built).

    Examples
    --------
    >>> expand_grid({"alpha": {"start": 0.0, "stop": 1.0, "num": 3}, "signal": ["linear"]})
    {'alpha': [0.0, 0.5, 1.0], 'signal': ['linear']}
    >>> expand_grid({"alhpa": [1.0]})
    Traceback (most recent call last):
    ...
    ValueError: unknown Config field 'alhpa' in the grid; did you mean 'alpha'?
    """
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a dict of Config field name -> values, got {grid!r}")
    if not grid:
        raise ValueError("grid is empty: name at least one Config field to vary")
    fields = [f.name for f in dataclasses.fields(Config)]
    out = {}
    for name, spec in grid.items():
        if name not in fields:
            hint = difflib.get_close_matches(str(name), fields, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else f"; fields: {', '.join(fields)}"
            raise ValueError(f"unknown Config field {name!r} in the grid{extra}")
        if name in _NOT_SWEEPABLE:
            raise ValueError(f"{name!r} cannot be swept: {_NOT_SWEEPABLE[name]}")
        out[name] = _grid_values(name, spec)
    for backend in out.get("backend", []):  # one this build or machine cannot run: now
        if isinstance(backend, str):  # (any other value: the point's Config says why)
            check_backend(backend)
    points = math.prod(len(v) for v in out.values())  # counted, never built
    if points > MAX_GRID_POINTS:
        sizes = " x ".join(f"{len(v)} {k}" for k, v in out.items())
        raise ValueError(
            f"the grid has {points} points ({sizes}), more than the {MAX_GRID_POINTS} a sweep "
            "may have; split it into several sweeps"
        )
    return out


def table_cell(value: Any) -> Any:
    """A grid value as a table cell: numbers and strings as they are, anything else as text.

    >>> table_cell(0.5), table_cell((1, 2))
    (0.5, '(1, 2)')
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def config_hash(cfg: Config) -> str:
    """The SHA-256 (hex) of a point's resolved config: the name of its file in a sweep folder.

    It hashes the TOML text of the resolved config (every default filled in, fields in
    their declaration order, ``threads`` set to 1): every field that decides the result
    (seed and replicas included) counts, the thread count does not (results do not depend
    on it, and its default depends on the machine), and two spellings of one run
    (``t_end`` or ``steps``, ``n_per_class`` or ``class_sizes``) hash alike. The text is the
    same in every process on every machine, so is the hash.

    Examples
    --------
    >>> a = Config(n_classes=2, alpha=2.0, seed=5)
    >>> config_hash(a) == config_hash(a.replace(threads=4)) != config_hash(a.replace(seed=6))
    True
    >>> len(config_hash(a))
    64
    """
    resolved = Config.from_dict(cfg.replace(threads=1).to_dict(resolved=True))
    text = resolved.to_toml()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
