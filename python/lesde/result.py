"""What runs return, and how they are saved and loaded (``.npz``, never pickle).

:class:`Result` is what :func:`lesde.simulate` returns; :func:`load` reads it back. The
file layout is :mod:`lesde.storage`'s (a JSON header with a kind and a format version,
arrays checked before they are read). The records of real networks, laid out the same
way, are :class:`lesde.training_result.TrainingResult`.

Examples
--------
>>> import lesde, tempfile, os
>>> res = lesde.simulate(n_classes=2, n_per_class=20, t_end=0.1, progress=False)
>>> path = os.path.join(tempfile.mkdtemp(), "run.npz")
>>> res.save(path)
>>> lesde.load(path).metrics["loss"].shape == res.metrics["loss"].shape
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core, storage
from .config import Config
from .metrics import nc1_from_moments, nc2_from_means
from .version import __version__

__all__ = [
    "FORMAT_VERSION",
    "SCALAR_METRICS",
    "Result",
    "final_values",
    "finish_metrics",
    "load",
    "provenance",
    "status_names",
]

# Order of the scalars the engine records (cpp/include/lesde/state.hpp: enum Scalar).
SCALAR_METRICS = ("loss", "accuracy", "clean_accuracy", "ncc_accuracy", "nc4")
STATUS = {0: "ok", 1: "nonfinite"}
#: Version of the result file layout; a file of another version is refused.
FORMAT_VERSION = 1
KIND = "lesde-result"
METRIC_PREFIX = "metric__"
_ARRAYS = (
    "times",
    "class_means",
    "label_means",
    "sigma_w",
    "features",
    "classes",
    "labels",
    "sample_indices",
    "sample_trajectories",
    "status",
    "fail_step",
)


def status_names(codes: np.ndarray) -> np.ndarray:
    """The engine's status codes as names ("ok", "nonfinite").

    Examples
    --------
    >>> status_names(np.array([0, 1])).tolist()
    ['ok', 'nonfinite']
    """
    return np.array([STATUS.get(int(c), f"unknown({int(c)})") for c in codes])


def finish_metrics(scalars: np.ndarray, sigma_w: np.ndarray, label_means: np.ndarray) -> dict:
    """Per-record metrics: the engine's scalars, plus NC1/NC2 from its small moments.

    ``scalars`` (R, T, NUM_SCALARS), ``sigma_w`` (R, T, p, p) and ``label_means``
    (R, T, K, p) are the engine's record arrays; every metric comes out as (R, T).

    Examples
    --------
    >>> R, T, K = 1, 2, 3
    >>> out = finish_metrics(np.zeros((R, T, len(SCALAR_METRICS))), np.ones((R, T, K, K)),
    ...                      np.eye(K)[None, None].repeat(T, axis=1))
    >>> out["loss"].shape, out["nc1"].shape
    ((1, 2), (1, 2))
    """
    R, T = scalars.shape[:2]
    out = {name: np.ascontiguousarray(scalars[..., j]) for j, name in enumerate(SCALAR_METRICS)}
    out["nc1"] = np.full((R, T), np.nan)
    with np.errstate(all="ignore"):  # records of a diverging run may hold huge values
        for r in range(R):
            for t in range(T):
                means = label_means[r, t]
                present = np.all(np.isfinite(means), axis=1)
                if present.sum() < 2 or not np.all(np.isfinite(sigma_w[r, t])):
                    continue
                out["nc1"][r, t] = nc1_from_moments(sigma_w[r, t], means[present])
                for key, value in nc2_from_means(means[present]).items():
                    out.setdefault(key, np.full((R, T), np.nan))[r, t] = value
    return out


def final_values(metrics: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The last finite record of ``metrics[name]`` (R, T) for every replica, shape (R,).

    Examples
    --------
    >>> final_values({"loss": np.array([[1.0, 0.5, np.nan]])}, "loss")
    array([0.5])
    """
    if name not in metrics:
        raise KeyError(f"unknown metric {name!r}; recorded: {', '.join(metrics)}")
    values = metrics[name]
    out = np.full(values.shape[0], np.nan)
    for r, row in enumerate(values):
        finite = np.flatnonzero(np.isfinite(row))
        if finite.size:
            out[r] = row[finite[-1]]
    return out


@dataclass(eq=False)
class Result:
    """The records of a run (all replicas), its final state, and where it came from.

    Attributes
    ----------
    config : Config
    times : (T,) array of record times
    class_means : (R, T, K, p) class means by true class
    label_means : (R, T, K, p) class means by training label
    sigma_w : (R, T, p, p) within-class covariance (grouped by training label)
    metrics : dict name -> (R, T) array (loss, accuracy, clean_accuracy, ncc_accuracy,
        nc1, nc4, equinorm, equiangularity, etf_distance)
    features : (R, N, p) features at the last step reached
    classes : (N,) true classes; labels : (R, N) training labels
    sample_indices, sample_trajectories : recorded samples, (S,) and (R, T, S, p)
    status : (R,) "ok" or "nonfinite"; fail_step : (R,) step of failure or -1
    steps_done : steps completed; interrupted : True if stopped by Ctrl-C
    meta : version, build flags, seeds, random-stream version, wall time

    Examples
    --------
    >>> import lesde
    >>> res = lesde.simulate(n_classes=2, n_per_class=10, t_end=0.05, progress=False)
    >>> res.final("loss").shape
    (1,)
    """

    config: Config
    times: np.ndarray
    class_means: np.ndarray
    label_means: np.ndarray
    sigma_w: np.ndarray
    metrics: dict[str, np.ndarray]
    features: np.ndarray
    classes: np.ndarray
    labels: np.ndarray
    sample_indices: np.ndarray
    sample_trajectories: np.ndarray
    status: np.ndarray
    fail_step: np.ndarray
    steps_done: int
    interrupted: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_engine(
        cls, cfg: Config, arrays: dict, steps_done: int, interrupted: bool, wall_seconds: float
    ) -> Result:
        record_steps = cfg.record_steps
        T = int(np.searchsorted(record_steps, steps_done, side="right"))
        cut = lambda a: a[:, :T]  # noqa: E731
        return cls(
            config=cfg,
            times=record_steps[:T] * cfg.dt,
            class_means=cut(arrays["class_means"]),
            label_means=cut(arrays["label_means"]),
            sigma_w=cut(arrays["sigma_w"]),
            metrics=finish_metrics(
                cut(arrays["scalars"]), cut(arrays["sigma_w"]), cut(arrays["label_means"])
            ),
            features=arrays["features"],
            classes=arrays["classes"],
            labels=arrays["labels"],
            sample_indices=cfg.recorded_sample_indices,
            sample_trajectories=cut(arrays["samples"]),
            status=status_names(arrays["status"]),
            fail_step=arrays["fail_step"],
            steps_done=int(steps_done),
            interrupted=interrupted,
            meta=provenance(cfg, wall_seconds),
        )

    # ------------------------------------------------------------------ conveniences
    @property
    def ok(self) -> bool:
        """True when every replica finished with finite values and was not interrupted."""
        return not self.interrupted and bool(np.all(self.status == "ok"))

    def final(self, name: str) -> np.ndarray:
        """The last finite record of metric ``name`` for every replica, shape (R,).

        Examples
        --------
        >>> import lesde
        >>> lesde.simulate(n_classes=2, n_per_class=10, t_end=0.05,
        ...                progress=False).final("accuracy").shape
        (1,)
        """
        return final_values(self.metrics, name)

    def summary(self) -> dict[str, float]:
        """Mean over replicas of each metric's final value (and the run's status).

        Examples
        --------
        >>> import lesde
        >>> s = lesde.simulate(n_classes=2, n_per_class=10, t_end=0.05, progress=False).summary()
        >>> sorted(s)[:3]
        ['accuracy', 'clean_accuracy', 'coherence']
        """
        out: dict[str, Any] = {}
        for name in self.metrics:
            values = self.final(name)
            out[name] = float(np.nanmean(values)) if np.any(np.isfinite(values)) else float("nan")
        out["t_end"] = float(self.times[-1]) if self.times.size else 0.0
        out["replicas_ok"] = int(np.sum(self.status == "ok"))
        return out

    def __repr__(self) -> str:
        R, T = self.metrics["loss"].shape
        names, counts = np.unique(self.status, return_counts=True)
        status = {str(k): int(n) for k, n in zip(names, counts, strict=True)}
        return (
            f"Result(replicas={R}, records={T}, t={self.times[-1] if T else 0:g}, status={status})"
        )

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike, include_features: bool = True) -> None:
        """Write an ``.npz`` file atomically (temp file, fsync, rename).

        It carries the resolved config, the package version, build flags, seeds and the
        random-stream version. Read it back with :func:`lesde.load`.
        """
        arrays: dict[str, np.ndarray] = {}
        for name in _ARRAYS:
            if name == "features" and not include_features:
                continue
            value = getattr(self, name)
            arrays[name] = value.astype(str) if name == "status" else np.asarray(value)
        arrays.update(_metric_arrays(self.metrics))
        header = {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            "config_toml": self.config.to_toml(),
            "steps_done": self.steps_done,
            "interrupted": self.interrupted,
            "meta": self.meta,
        }
        storage.write_npz(path, arrays, header)


def provenance(cfg: Config, wall_seconds: float) -> dict[str, Any]:
    """What a record says about where it came from: versions, build, seeds, wall time.

    Examples
    --------
    >>> sorted(provenance(Config(n_classes=2), 0.0))[:3]
    ['build_info', 'lesde_version', 'noise_seed']
    """
    return {
        "lesde_version": __version__,
        "build_info": _core.build_info(),
        "random_stream_version": int(_core.RANDOM_STREAM_VERSION),
        "seed": cfg.seed,
        "noise_seed": cfg.effective_noise_seed,
        "threads": cfg.effective_threads,
        "wall_seconds": wall_seconds,
    }


def load(path: str | os.PathLike) -> Result:
    """Read a result written by :meth:`Result.save` (never unpickles anything).

    The file is checked before its arrays are read (:func:`lesde.storage.read_npz`), every
    member is read (so the zip CRC-32 of each is checked) and every array is checked
    against the config: a truncated, damaged or incomplete file raises :class:`ValueError`
    naming what is wrong, never a half-filled Result.

    Examples
    --------
    >>> import lesde, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "r.npz")
    >>> lesde.simulate(n_classes=2, n_per_class=10, t_end=0.05, progress=False).save(p)
    >>> lesde.load(p).config.n_classes
    2
    """
    required = [name for name in _ARRAYS if name != "features"]
    required += [METRIC_PREFIX + m for m in (*SCALAR_METRICS, "nc1")]
    contents = storage.read_npz(
        path,
        what="lesde result file",
        kind=KIND,
        format_version=FORMAT_VERSION,
        required=required,
        optional=["features"],
        prefixes=[METRIC_PREFIX],
        allow_missing_kind=True,  # result files written before the kind tag have none
    )
    header = contents.header
    try:
        cfg = Config.from_toml(header["config_toml"])
        steps_done, interrupted = header["steps_done"], header["interrupted"]
        meta = header.get("meta", {})
        if not isinstance(steps_done, int) or not isinstance(interrupted, bool):
            raise TypeError("steps_done must be an int and interrupted a bool")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid result header ({type(err).__name__}: {err})") from None
    arrays, metrics = _split_metrics(contents.arrays)
    _check_result_arrays(path, cfg, arrays, metrics)
    if "features" not in arrays:
        arrays["features"] = np.empty((cfg.replicas, 0, cfg.p))
    return Result(
        config=cfg,
        metrics=metrics,
        status=arrays.pop("status").astype(str),
        steps_done=steps_done,
        interrupted=interrupted,
        meta=meta,
        **arrays,
    )


# ----------------------------------------------------------------------------- shared by both
def _metric_arrays(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {METRIC_PREFIX + name: values for name, values in metrics.items()}


def _split_metrics(stored: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(arrays, metrics): the ``metric__<name>`` members become ``metrics[name]``."""
    arrays = {k: v for k, v in stored.items() if not k.startswith(METRIC_PREFIX)}
    metrics = {
        k.removeprefix(METRIC_PREFIX): v for k, v in stored.items() if k.startswith(METRIC_PREFIX)
    }
    return arrays, metrics


# dtype kinds an array may have: floating point, integer, text.
FLOAT, INTEGER, TEXT = "f", "iu", "U"


def _check_arrays(path: Any, found: dict[str, np.ndarray], expected: dict[str, tuple]) -> None:
    """Every array in ``found`` of the dtype kind and shape that ``expected[name]`` gives."""
    for name, value in found.items():
        kinds, shape = expected[name]
        if value.dtype.kind not in kinds:
            raise ValueError(f"{path}: array {name!r} has dtype {value.dtype}; the file is damaged")
        if value.shape != shape:
            raise ValueError(
                f"{path}: array {name!r} has shape {value.shape}, expected "
                f"{shape} for its config; the file is damaged"
            )


def _length(path: Any, array: np.ndarray, name: str, ndim: int, axis: int = 0) -> int:
    """``array.shape[axis]``, once ``array`` has ``ndim`` dimensions (the size the other
    arrays of a file are checked against)."""
    if array.ndim != ndim:
        raise ValueError(
            f"{path}: array {name!r} must be {ndim}-D, got shape {array.shape}; the file is damaged"
        )
    return array.shape[axis]


def _check_result_arrays(path: Any, cfg: Config, arrays: dict, metrics: dict) -> None:
    R, N, K, p = cfg.replicas, cfg.n_samples, cfg.n_classes, cfg.p
    T = arrays["times"].shape[0] if arrays["times"].ndim == 1 else -1
    if not 0 <= T <= len(cfg.record_steps):
        raise ValueError(
            f"{path}: times must be 1-D with at most {len(cfg.record_steps)} "
            f"records; got shape {arrays['times'].shape}"
        )
    S = _length(path, arrays["sample_indices"], "sample_indices", 1)
    expected = {
        "times": (FLOAT, (T,)),
        "class_means": (FLOAT, (R, T, K, p)),
        "label_means": (FLOAT, (R, T, K, p)),
        "sigma_w": (FLOAT, (R, T, p, p)),
        "features": (FLOAT, (R, N, p)),
        "classes": (INTEGER, (N,)),
        "labels": (INTEGER, (R, N)),
        "sample_indices": (INTEGER, (S,)),
        "sample_trajectories": (FLOAT, (R, T, S, p)),
        "status": (TEXT, (R,)),
        "fail_step": (INTEGER, (R,)),
    }
    expected.update({METRIC_PREFIX + m: (FLOAT, (R, T)) for m in metrics})
    _check_arrays(path, {**arrays, **_metric_arrays(metrics)}, expected)
