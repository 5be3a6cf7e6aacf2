"""Where a command's configuration comes from: defaults < the TOML file < ``--set``
overrides (a dotted key sets a field of a schedule), and the ``[grid]`` table of a sweep. A
Config error names the ``--set`` field it comes from, else the file.

Examples
--------
>>> from lesde.cli.config import load_config
>>> cfg, grid = load_config(None, ["n_classes=3", "alpha.kind=constant", "alpha.value=2"])
>>> cfg.n_classes, grid
(3, None)
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ..io.storage import open_input
from .common import UsageError

__all__ = ["load_config", "parse_set"]


def _parse_value(key: str, text: str) -> Any:
    """A --set value: a TOML value if it parses as one, else the bare string."""
    if "\n" in text or "\r" in text:  # 'alpha=1\nbeta=5' would set alpha and drop beta
        raise UsageError(
            f"--set {key}: the value holds a line break; give each field its own --set"
        )
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except RecursionError:  # tomllib recurses once per level of nesting
        raise UsageError(f"--set {key}: the value is nested too deeply") from None


def parse_set(items: Sequence[str] | None) -> dict[str, Any]:
    """Turn ``["alpha=0.5", "alpha.tau=2"]`` into a (nested) dict of overrides.

    Examples
    --------
    >>> parse_set(["alpha=0.5", "signal=linear", "class_sizes=[10, 20]"])
    {'alpha': 0.5, 'signal': 'linear', 'class_sizes': [10, 20]}
    >>> parse_set(['beta={kind="exponential", a0=1, tau=2}', "beta.tau=3.0"])
    {'beta': {'kind': 'exponential', 'a0': 1, 'tau': 3.0}}
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(c in key for c in "\n\r"):
            raise UsageError(f"--set expects key=value, got {item!r}")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UsageError(f"--set {key}: {part!r} is not a table")
            node = child
        node[leaf] = _parse_value(key, text.strip())
    return out


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overrides win; a nested dict override is merged into a dict value (schedules)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_toml(path: str | os.PathLike) -> dict[str, Any]:
    from ..sim.config import toml_error_message

    p = Path(path)
    if not p.exists():
        raise UsageError(f"config file {str(p)!r} not found")
    if p.is_dir():
        raise UsageError(f"{str(p)!r} is a directory, not a TOML config file")
    try:
        with open_input(p, "TOML config file") as f:  # a FIFO is refused, not waited on
            text = f.read().decode("utf-8")
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"{p}: {toml_error_message(text, err)}") from None
    except RecursionError:  # tomllib recurses once per level of nesting
        raise UsageError(f"{p}: invalid TOML: values nested too deeply") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {p}: {err}") from None
    except ValueError as err:  # open_input: not a regular file
        raise UsageError(str(err)) from None


def _blame(message: str, path: str | os.PathLike | None, overrides: dict[str, Any]) -> str:
    """Where a Config error came from: the ``--set`` fields its message names, else the file.

    >>> _blame("record_samples must be <= 600", "q.toml", {"record_samples": 1000})
    '--set record_samples: record_samples must be <= 600'
    >>> _blame("sigma must be >= 0", "q.toml", {"alpha": 2})
    'q.toml: sigma must be >= 0'
    """
    named = [key for key in overrides if re.search(rf"\b{re.escape(key)}\b", message)]
    if named:
        return f"--set {', '.join(named)}: {message}"
    return f"{path}: {message}" if path is not None else message


def load_config(
    path: str | os.PathLike | None, sets: Sequence[str] | None = None, allow_grid: bool = False
):
    """The Config from defaults < TOML file < ``--set`` overrides, and the ``[grid]`` table.

    Returns ``(config, grid)``; ``grid`` is None when the file has no ``[grid]`` table.

    Examples
    --------
    >>> cfg, grid = load_config(None, ["n_classes=4", "signal=linear"])
    >>> cfg.n_classes, cfg.signal, grid
    (4, 'linear', None)
    """
    from ..sim.config import Config

    data = _read_toml(path) if path is not None else {}
    overrides = parse_set(sets)
    data = _merge(data, overrides)
    grid = data.pop("grid", None)
    if grid is not None and not allow_grid:
        raise UsageError(
            "this config has a [grid] table: run it with `lesde sweep`, or remove the table"
        )
    if grid is not None and not isinstance(grid, dict):
        raise UsageError("grid must be a table: [grid] with one line per swept field")
    try:
        cfg = Config.from_dict(data)
    except (TypeError, ValueError) as err:
        raise UsageError(_blame(str(err), path, overrides)) from None
    _check_backend(cfg.backend, path, overrides)
    return cfg, grid


def _check_backend(backend: str, path, overrides: dict) -> None:
    """A backend this build or machine cannot run is refused here, for every command that
    takes a config (run, validate, sweep, demo), before anything runs."""
    from ..sim.engine import BackendUnavailableError, check_backend

    try:
        check_backend(backend)
    except BackendUnavailableError as err:
        where = "--set backend" if "backend" in overrides else (path or "the config")
        raise UsageError(f"{where}: {err}") from None
