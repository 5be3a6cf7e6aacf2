"""The file of a training record: lesde's ``.npz`` layout for a TrainingResult (no PyTorch).

A :class:`lesde.nn.TrainingResult` is written by :func:`write_training` (what
:meth:`~lesde.nn.TrainingResult.save` calls) as named arrays and a JSON header in lesde's
guarded ``.npz`` layout (:mod:`lesde.io.storage`: atomic, no pickle). :func:`read_training`
reads one back, checking every array's dtype and shape against the sizes the file declares
(:func:`expected_training_arrays`), and gives the record's fields;
:func:`lesde.nn.load_training` builds the record from them. Files of format version 1 (one
network, impact arrays without the replica axis) are read and given the axis.
:func:`read_training_meta` reads the header alone.

Examples
--------
>>> import os, tempfile
>>> from lesde.nn.training_result import TrainingResult
>>> path = os.path.join(tempfile.mkdtemp(), "train.npz")
>>> write_training(TrainingResult.tiny_example(), path)
>>> fields = read_training(path)
>>> fields["class_means"].shape, fields["steps_done"], fields["metrics"]["loss"].tolist()
((1, 2, 2, 2), 10, [[0.7, 0.5]])
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any

import numpy as np

from ..io import storage
from ..sim.result import (
    FLOAT,
    INTEGER,
    METRIC_PREFIX,
    TEXT,
    declared_dimension,
    metric_members,
    split_metrics,
)
from .impact_track import ImpactTrack

__all__ = [
    "IMPACT_PREFIX",
    "TRAINING_FORMAT_VERSION",
    "TRAINING_KIND",
    "expected_training_arrays",
    "read_training",
    "read_training_meta",
    "write_training",
]

#: Version of the training record layout; a file of another version is refused, except
#: version 1 (one network, impact arrays without the replica axis), which is read and given
#: the axis.
TRAINING_FORMAT_VERSION = 2
TRAINING_KIND = "lesde.nn.TrainingResult"
IMPACT_PREFIX = "impact__"
_TRAINING_ARRAYS = ("times", "steps", "class_means", "label_means", "features", "classes")
_TRAINING_ARRAYS += ("labels", "status", "fail_step")
_STEPPED_ARRAYS = ("stepped_indices", "stepped_logits")


def write_training(result, path: str | os.PathLike) -> None:
    """Write the TrainingResult ``result`` to ``path`` atomically (read back with
    :func:`read_training`, or :func:`lesde.nn.load_training`).

    Examples
    --------
    >>> import os, tempfile
    >>> from lesde.nn.training_result import TrainingResult
    >>> path = os.path.join(tempfile.mkdtemp(), "train.npz")
    >>> write_training(TrainingResult.tiny_example(), path)
    >>> sorted(read_training(path))[:3]
    ['class_means', 'classes', 'fail_step']
    """
    arrays = {name: np.asarray(getattr(result, name)) for name in _TRAINING_ARRAYS}
    arrays["status"] = result.status.astype(str)
    if result.logits is not None:
        arrays["logits"] = result.logits
    if result.stepped_indices is not None:
        arrays["stepped_indices"] = result.stepped_indices
        arrays["stepped_logits"] = result.stepped_logits
    arrays.update(metric_members(result.metrics))
    if result.impact is not None:
        for name in ImpactTrack.FIELDS:
            arrays[IMPACT_PREFIX + name] = getattr(result.impact, name)
    header = {
        "kind": TRAINING_KIND,
        "format_version": TRAINING_FORMAT_VERSION,
        "steps_done": result.steps_done,
        "interrupted": result.interrupted,
        "impact_confidence": result.impact.confidence if result.impact is not None else None,
        "meta": result.meta,
    }
    storage.write_npz(path, arrays, header)


def read_training(path: str | os.PathLike) -> dict[str, Any]:
    """The fields of the TrainingResult stored at ``path`` (the keyword arguments of
    :class:`lesde.nn.TrainingResult`), checked like :func:`lesde.sim.result.load`:
    ValueError, one line, for a file that is not one, damaged or of another format version.

    Examples
    --------
    >>> import os, tempfile
    >>> from lesde.nn.training_result import TrainingResult
    >>> path = os.path.join(tempfile.mkdtemp(), "train.npz")
    >>> write_training(TrainingResult.tiny_example(), path)
    >>> read_training(path)["status"].tolist()
    ['ok']
    """
    read = dict(
        what="lesde training result",
        kind=TRAINING_KIND,
        required=_TRAINING_ARRAYS,
        optional=["logits", *_STEPPED_ARRAYS],
        prefixes=[METRIC_PREFIX, IMPACT_PREFIX],
        expect=expected_training_arrays,
    )
    try:
        contents = storage.read_npz(path, format_version=TRAINING_FORMAT_VERSION, **read)
        version = TRAINING_FORMAT_VERSION
    except ValueError as err:
        if "format version 1 " not in str(err):
            raise
        contents = storage.read_npz(path, format_version=1, **read)
        version = 1
    header = contents.header
    arrays, metrics = split_metrics(contents.arrays)
    impact_arrays = {k: v for k, v in arrays.items() if k.startswith(IMPACT_PREFIX)}
    missing = [IMPACT_PREFIX + n for n in ImpactTrack.FIELDS if IMPACT_PREFIX + n not in arrays]
    if impact_arrays and missing:
        raise ValueError(f"{path}: incomplete lesde training result, missing {', '.join(missing)}")
    if version == 1:  # one network; its impact arrays had no replica axis
        for name in ImpactTrack.PER_REPLICA:
            if IMPACT_PREFIX + name in arrays:
                arrays[IMPACT_PREFIX + name] = arrays[IMPACT_PREFIX + name][None]
    if ("stepped_indices" in arrays) != ("stepped_logits" in arrays):
        raise ValueError(f"{path}: incomplete lesde training result, stepped records")
    try:
        steps_done, interrupted = header["steps_done"], header["interrupted"]
        if not isinstance(steps_done, int) or not isinstance(interrupted, bool):
            raise TypeError("steps_done must be an int and interrupted a bool")
        impact = None
        if impact_arrays:
            impact = ImpactTrack(
                **{n: arrays[IMPACT_PREFIX + n] for n in ImpactTrack.FIELDS},
                confidence=float(header["impact_confidence"]),
            )
    except (KeyError, TypeError, ValueError) as err:
        why = f"{type(err).__name__}: {err}"
        raise ValueError(f"{path}: invalid training result header ({why})") from None
    return {
        **{name: arrays[name] for name in _TRAINING_ARRAYS if name != "status"},
        "status": arrays["status"].astype(str),
        "metrics": metrics,
        "logits": arrays.get("logits"),
        "impact": impact,
        "steps_done": steps_done,
        "interrupted": interrupted,
        "meta": header.get("meta", {}),
        "stepped_indices": arrays.get("stepped_indices"),
        "stepped_logits": arrays.get("stepped_logits"),
    }


def read_training_meta(path: str | os.PathLike, what: str = "lesde training result") -> Any:
    """The ``meta`` of a training record file, read from its header alone (no array is
    read; ValueError, one line, naming ``what``, if it is not one or is damaged). What binds
    an ensemble's trial file to its ensemble; :func:`read_training` checks the whole file.

    Examples
    --------
    >>> import os, tempfile
    >>> from lesde.nn.training_result import TrainingResult
    >>> res = TrainingResult.tiny_example()
    >>> res.meta["trial"] = 3
    >>> path = os.path.join(tempfile.mkdtemp(), "trial.npz")
    >>> write_training(res, path)
    >>> read_training_meta(path)
    {'trial': 3}
    """
    with storage.open_input(path, what) as file:
        try:
            with zipfile.ZipFile(file) as archive:
                info = archive.getinfo("header.npy")
                if info.file_size > storage.MAX_HEADER_BYTES:
                    raise ValueError(f"a header of {info.file_size} bytes")
                with archive.open(info) as member:
                    text = np.lib.format.read_array(member, allow_pickle=False)
            header = json.loads(str(text[()]))
        except Exception as err:  # the zip, .npy and JSON parsers raise many kinds
            why = f"{type(err).__name__}: {err}"
            raise ValueError(f"{path}: not a readable {what}, damaged ({why})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a {what} (its header is not a JSON object)")
    storage.check_header(
        path, header, what=what, kind=TRAINING_KIND, format_version=TRAINING_FORMAT_VERSION
    )
    return header.get("meta")


def expected_training_arrays(header: dict, declared: dict) -> dict[str, storage.Spec]:
    """The dtype and shape of every array of a training record, from the sizes its times,
    classes and class means declare (for storage.read_npz). Format version 1 (one network)
    stored the impact arrays without a replica axis.

    Examples
    --------
    >>> from types import SimpleNamespace as Declared  # what storage.read_npz passes
    >>> declared = {"times": Declared(shape=(5,)), "classes": Declared(shape=(40,)),
    ...             "class_means": Declared(shape=(3, 5, 4, 4))}
    >>> expected_training_arrays({"format_version": 2}, declared)["features"][1]  # (R, N, K)
    (3, 40, 4)
    """
    T = declared_dimension(declared, "times", 1)
    N = declared_dimension(declared, "classes", 1)
    R = declared_dimension(declared, "class_means", 4, axis=0)
    K = declared_dimension(declared, "class_means", 4, axis=2)
    expected = {
        "times": (FLOAT, (T,)),
        "steps": (INTEGER, (T,)),
        "class_means": (FLOAT, (R, T, K, K)),
        "label_means": (FLOAT, (R, T, K, K)),
        "features": (FLOAT, (R, N, K)),
        "classes": (INTEGER, (N,)),
        "labels": (INTEGER, (R, N)),
        "status": (TEXT, (R,)),
        "fail_step": (INTEGER, (R,)),
        "logits": (FLOAT, (T, N, K)),
    }
    if R != 1 and "logits" in declared:
        raise ValueError(f"logits of {R} networks; the file is damaged")
    if "stepped_indices" in declared:
        S = declared_dimension(declared, "stepped_indices", 2, axis=1)
        expected["stepped_indices"] = (INTEGER, (R, S))
        expected["stepped_logits"] = (FLOAT, (R, S, K))
    expected.update({n: (FLOAT, (R, T)) for n in declared if n.startswith(METRIC_PREFIX)})
    if IMPACT_PREFIX + "times" in declared:
        S = declared_dimension(declared, IMPACT_PREFIX + "times", 1)
        per = (R,) if header.get("format_version") != 1 else ()
        impact = {"times": (FLOAT, (S,)), "steps": (INTEGER, (S,))}
        impact["matrices"] = (FLOAT, (*per, S, K, K))
        impact.update({n: (FLOAT, (*per, S)) for n in ("alpha_hat", "beta_hat", "ratio")})
        impact.update({n: (FLOAT, (*per, S, 2)) for n in ImpactTrack.FIELDS if n.endswith("_ci")})
        impact["dropped_inputs"] = (INTEGER, (*per, S))
        expected.update({IMPACT_PREFIX + n: kind_shape for n, kind_shape in impact.items()})
    return expected
