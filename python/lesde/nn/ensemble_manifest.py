"""An ensemble folder's manifest: what every trial shares, checked on resume and on reading.

``ensemble.json`` in an ensemble folder (:mod:`lesde.nn.ensemble`) holds the ensemble's
settings (:class:`EnsembleSettings`), the SHA-256 of its data and validation data
(:func:`dataset_digest`), the ``ensemble_sha256`` that binds every trial file to it, and a
SHA-256 over its own contents. It is written once (:func:`build_manifest`) and read back
checked (:func:`read_manifest`): an edited, damaged or older manifest is refused in one line,
and so is a resume with other data or settings (:func:`check_resume`). No PyTorch needed.

Examples
--------
>>> from lesde.data import geometric_shapes
>>> settings = EnsembleSettings(lr=0.01, steps=100, batch_size=1, label_noise=0.0,
...     record_every=10, dtype=None, impact_every=None, impact_options=None,
...     record_stepped=True, seed=0, model="lesde.nn.network.LeNet")
>>> manifest = build_manifest(settings, geometric_shapes(4, size=16), None)
>>> manifest["kind"], manifest["settings"]["steps"], manifest["data"]["samples"]
('lesde.nn.Ensemble', 100, 12)
>>> sorted(trial_binding(manifest))  # what each trial file carries in its meta
['data_sha256', 'ensemble', 'ensemble_sha256']
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..io import storage
from ..version import __version__

__all__ = [
    "manifest_digest",
    "MANIFEST",
    "MANIFEST_KIND",
    "MANIFEST_VERSION",
    "EnsembleSettings",
    "build_manifest",
    "check_resume",
    "dataset_digest",
    "describe_data",
    "describe_model",
    "read_manifest",
    "trial_binding",
]

MANIFEST = "ensemble.json"
MANIFEST_KIND = "lesde.nn.Ensemble"
#: 2: the manifest holds a SHA-256 over its own contents, and every trial file is bound to
#: it (version 1 folders are refused: their trials cannot be told from another ensemble's).
MANIFEST_VERSION = 2
_MANIFEST_MAX_BYTES = 2**20


# ----------------------------------------------------------------------------- identities
def dataset_digest(data: Dataset | None) -> str | None:
    """SHA-256 of a data set's images, true classes and class names (None for None).

    What an ensemble folder stores to refuse a resume on other data.

    Examples
    --------
    >>> from lesde.data import geometric_shapes
    >>> a, b = geometric_shapes(2, size=16, seed=0), geometric_shapes(2, size=16, seed=1)
    >>> dataset_digest(a) == dataset_digest(geometric_shapes(2, size=16, seed=0))
    True
    >>> dataset_digest(a) == dataset_digest(b)
    False
    """
    if data is None:
        return None
    h = hashlib.sha256()
    h.update(repr(tuple(data.images.shape)).encode())
    h.update(np.ascontiguousarray(data.images, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(data.labels, dtype=np.int64).tobytes())
    h.update("\0".join(data.class_names).encode())
    return h.hexdigest()


def describe_model(factory: Callable) -> str:
    """A stable text naming a model factory (what the manifest compares on resume).

    Examples
    --------
    >>> from lesde.nn.network import LeNet
    >>> describe_model(functools.partial(LeNet, n_classes=3))
    'lesde.nn.network.LeNet(n_classes=3)'
    """
    if isinstance(factory, functools.partial):
        args = [repr(a) for a in factory.args]
        args += [f"{k}={v!r}" for k, v in sorted(factory.keywords.items())]
        return f"{describe_model(factory.func)}({', '.join(args)})"
    name = getattr(factory, "__qualname__", type(factory).__qualname__)
    module = getattr(factory, "__module__", type(factory).__module__)
    return f"{module}.{name}"


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class EnsembleSettings:
    """What every trial of an ensemble shares; stored in the folder's manifest and compared
    field by field when an ensemble is resumed."""

    lr: float
    steps: int
    batch_size: int
    label_noise: float
    record_every: int
    dtype: str | None
    impact_every: int | None
    impact_options: dict | None
    record_stepped: bool
    seed: int
    model: str

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# ----------------------------------------------------------------------------- writing
def manifest_digest(value: Any) -> str:
    """SHA-256 of a JSON value's canonical text (sorted keys, no spaces): what
    ``ensemble.json`` stores of its own contents, and the settings digest a trial carries.

    Examples
    --------
    >>> manifest_digest({"b": 1, "a": [2]}) == manifest_digest({"a": [2], "b": 1})
    True
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _identity(manifest: dict) -> str:
    """The digest that binds trial files to their ensemble: settings, data and validation."""
    validation = manifest["validation"]
    return manifest_digest(
        {
            "settings": manifest["settings"],
            "data": manifest["data"]["sha256"],
            "validation": None if validation is None else validation["sha256"],
        }
    )


def _data_entry(data: Dataset) -> dict:
    return {
        "sha256": dataset_digest(data),
        "description": repr(data),
        "samples": len(data),
        "classes": data.n_classes,
    }


def _json_settings(settings: EnsembleSettings) -> dict:
    try:
        return json.loads(json.dumps(settings.to_dict(), allow_nan=False))
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"impact_options must hold numbers, strings and lists only (they are stored "
            f"as JSON), got {settings.impact_options!r} ({err})"
        ) from None


def build_manifest(settings: EnsembleSettings, data: Dataset, validation: Dataset | None) -> dict:
    """The manifest of an ensemble of ``settings`` on ``data`` (and ``validation``), with
    its ``ensemble_sha256`` (settings and data: what binds the trial files) and its
    ``sha256`` (over every other field: what shows an edit). TypeError, one line, for
    ``impact_options`` that JSON cannot hold.

    Examples
    --------
    >>> from lesde.data import geometric_shapes
    >>> settings = EnsembleSettings(lr=0.01, steps=10, batch_size=1, label_noise=0.0,
    ...     record_every=5, dtype=None, impact_every=None, impact_options=None,
    ...     record_stepped=True, seed=0, model="m")
    >>> a = build_manifest(settings, geometric_shapes(4, size=16, seed=0), None)
    >>> b = build_manifest(settings, geometric_shapes(4, size=16, seed=1), None)
    >>> a["ensemble_sha256"] == b["ensemble_sha256"]  # other data: another ensemble
    False
    """
    manifest = {
        "kind": MANIFEST_KIND,
        "format_version": MANIFEST_VERSION,
        "settings": _json_settings(settings),
        "data": _data_entry(data),
        "validation": None if validation is None else _data_entry(validation),
        "lesde_version": __version__,
    }
    manifest["ensemble_sha256"] = _identity(manifest)
    manifest["sha256"] = manifest_digest(manifest)
    return manifest


def trial_binding(manifest: dict) -> dict:
    """What each trial file of the ensemble ``manifest`` carries in its meta: the settings,
    the ``ensemble_sha256`` and the data's SHA-256.

    Examples
    --------
    >>> from lesde.data import geometric_shapes
    >>> settings = EnsembleSettings(lr=0.01, steps=10, batch_size=1, label_noise=0.0,
    ...     record_every=5, dtype=None, impact_every=None, impact_options=None,
    ...     record_stepped=True, seed=0, model="m")
    >>> manifest = build_manifest(settings, geometric_shapes(4, size=16), None)
    >>> trial_binding(manifest)["ensemble_sha256"] == manifest["ensemble_sha256"]
    True
    """
    return {
        "ensemble": manifest["settings"],
        "ensemble_sha256": manifest["ensemble_sha256"],
        "data_sha256": manifest["data"]["sha256"],
    }


# ----------------------------------------------------------------------------- reading
_NUMBER = (int, float)
#: The type of every settings field in a manifest (JSON: tuples and dicts as read back).
_SETTING_TYPES: dict[str, tuple] = {
    "lr": _NUMBER,
    "steps": (int,),
    "batch_size": (int,),
    "label_noise": _NUMBER,
    "record_every": (int,),
    "dtype": (str, type(None)),
    "impact_every": (int, type(None)),
    "impact_options": (dict, type(None)),
    "record_stepped": (bool,),
    "seed": (int,),
    "model": (str,),
}
_DATA_TYPES: dict[str, tuple] = {"sha256": (str,), "description": (str,)}
_DATA_TYPES |= {"samples": (int,), "classes": (int,)}


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of the ensemble in ``folder``, checked (ValueError, one line, if it is
    not one, is damaged or was edited).

    Its ``sha256`` (over every other field) must match its contents, its fields must have
    their types, and its format version must be this lesde's: a manifest of format
    version 1 is refused (its trials were not bound to it).

    Examples
    --------
    >>> import tempfile
    >>> read_manifest(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: ...: not a lesde ensemble folder (no ensemble.json)
    """
    path = Path(folder) / MANIFEST
    what = "lesde ensemble manifest"
    try:
        with storage.open_input(path, what) as file:
            raw = file.read(_MANIFEST_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"{folder}: not a lesde ensemble folder (no {MANIFEST})") from None
    except NotADirectoryError:
        raise ValueError(f"{folder}: not a folder") from None
    redo = (
        f"restore it, or remove it and run the training call again (lesde writes it anew "
        f"when every trial in {folder} is that call's)"
    )
    if len(raw) > _MANIFEST_MAX_BYTES:
        raise ValueError(f"{path}: larger than any {what} ({_MANIFEST_MAX_BYTES} bytes); {redo}")
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"{path}: not a readable {what}, not JSON ({err}); {redo}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: not a {what} (a JSON {type(manifest).__name__}); {redo}")
    if manifest.get("kind") == MANIFEST_KIND and manifest.get("format_version") == 1:
        raise ValueError(
            f"{path}: {what} format version 1 cannot be read by this lesde (it reads "
            f"version {MANIFEST_VERSION}: trials bound to their ensemble); train the "
            "ensemble again in a new folder"
        )
    storage.check_header(
        path, manifest, what=what, kind=MANIFEST_KIND, format_version=MANIFEST_VERSION
    )
    _check_manifest_fields(path, manifest, what, redo)
    return manifest


def _check_manifest_fields(path: Path, manifest: dict, what: str, redo: str) -> None:
    """Every field present; the digest matches the contents; every field has its type."""
    needed = ("settings", "data", "validation", "lesde_version", "ensemble_sha256", "sha256")
    missing = [name for name in needed if name not in manifest]
    if missing:
        raise ValueError(f"{path}: incomplete {what}, missing {', '.join(missing)}; {redo}")
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    if manifest["sha256"] != manifest_digest(body):
        raise ValueError(
            f"{path}: changed after lesde wrote it (its sha256 does not match its contents); {redo}"
        )

    def check(where: str, value: Any, types: dict[str, tuple]) -> None:
        if not isinstance(value, dict) or set(value) != set(types):
            raise ValueError(f"{path}: invalid {what}, {where} should hold {sorted(types)}")
        for name, allowed in types.items():
            item = value[name]
            wrong_bool = isinstance(item, bool) and bool not in allowed
            if wrong_bool or not isinstance(item, allowed):
                kinds = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
                raise ValueError(
                    f"{path}: invalid {what}, {where}.{name} should be {kinds}, got {item!r}"
                )

    check("settings", manifest["settings"], _SETTING_TYPES)
    check("data", manifest["data"], _DATA_TYPES)
    if manifest["validation"] is not None:
        check("validation", manifest["validation"], _DATA_TYPES)
    if manifest["ensemble_sha256"] != _identity(manifest):
        raise ValueError(f"{path}: its ensemble_sha256 does not match its settings; {redo}")


def describe_data(entry: dict | None) -> str:
    """A manifest's data entry in a few words, for messages.

    Examples
    --------
    >>> describe_data({"description": "Dataset(12 images)", "sha256": "ab" * 32})
    'Dataset(12 images), sha256 abababababab'
    >>> describe_data(None)
    'none'
    """
    return "none" if entry is None else f"{entry['description']}, sha256 {entry['sha256'][:12]}"


def check_resume(folder: str | os.PathLike, stored: dict, wanted: dict) -> None:
    """Refuse (ValueError, one line) to resume the ensemble ``stored`` in ``folder`` with
    the manifest ``wanted`` of another data set, validation set or settings.

    Examples
    --------
    >>> stored = {"data": {"sha256": "a"}, "validation": None, "settings": {"lr": 0.1}}
    >>> check_resume("runs", stored, stored)  # the same ensemble: resumed
    >>> check_resume("runs", stored, {**stored, "settings": {"lr": 0.2}})
    Traceback (most recent call last):
        ...
    ValueError: runs: the stored ensemble has lr = 0.1; this call asks for 0.2 (use another ...)
    """
    for part in ("data", "validation"):
        old, new = stored.get(part), wanted.get(part)
        if (old or {}).get("sha256") != (new or {}).get("sha256"):
            raise ValueError(
                f"{folder}: the stored ensemble was trained on other {part} "
                f"({describe_data(old)}); this call gives {describe_data(new)}"
            )
    for name, new in wanted["settings"].items():
        old = stored["settings"].get(name)
        if new != old:
            raise ValueError(
                f"{folder}: the stored ensemble has {name} = {old!r}; this call asks for "
                f"{new!r} (use another folder, or the stored settings to resume)"
            )
