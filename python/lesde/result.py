"""What a run returns, and how it is saved and loaded (``.npz``, never pickle).

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

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config

__all__ = ["Result", "load", "SCALAR_METRICS", "FORMAT_VERSION", "status_names"]

# Order of the scalars the engine records (cpp/include/lesde/state.hpp: enum Scalar).
SCALAR_METRICS = ("loss", "accuracy", "clean_accuracy", "ncc_accuracy", "nc4")
STATUS = {0: "ok", 1: "nonfinite"}
FORMAT_VERSION = 1
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
    return np.array([STATUS.get(int(c), f"unknown({int(c)})") for c in codes])


def _finish_metrics(scalars: np.ndarray, sigma_w: np.ndarray, label_means: np.ndarray) -> dict:
    """Per-record metrics: the engine's scalars, plus NC1/NC2 from its small moments."""
    from .metrics import nc1_from_moments, nc2_from_means

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
    """The last finite record of ``metrics[name]`` (R, T) for every replica, shape (R,)."""
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
            metrics=_finish_metrics(
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
            meta=_provenance(cfg, wall_seconds),
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
        path = Path(path)
        payload: dict[str, np.ndarray] = {}
        for name in _ARRAYS:
            if name == "features" and not include_features:
                continue
            value = getattr(self, name)
            payload[name] = value.astype(str) if name == "status" else np.asarray(value)
        for name, values in self.metrics.items():
            payload[f"metric__{name}"] = values
        header = {
            "format_version": FORMAT_VERSION,
            "config_toml": self.config.to_toml(),
            "steps_done": self.steps_done,
            "interrupted": self.interrupted,
            "meta": self.meta,
        }
        payload["header"] = np.array(json.dumps(header))
        _atomic_savez(path, payload)


def _atomic_savez(path: Path, payload: dict[str, np.ndarray]) -> None:
    """Write ``payload`` to ``path`` so that readers see the old file or the new, whole one.

    A temporary file in the same directory is written, flushed and fsynced, renamed over
    ``path`` (atomic on POSIX), and the directory is fsynced so the rename survives a
    power cut.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _provenance(cfg: Config, wall_seconds: float) -> dict[str, Any]:
    from . import __version__, _core

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

    Every member is read (so the zip CRC-32 of each is checked) and every array is checked
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
    if not os.path.exists(path):
        raise FileNotFoundError(f"no result file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            stored = {name: data[name] for name in data.files}
    except MemoryError:
        raise
    except Exception as err:  # BadZipFile (truncated, bad CRC), EOFError, bad .npy header
        raise ValueError(
            f"{path}: not a readable lesde result file, damaged or truncated "
            f"({type(err).__name__}: {err})"
        ) from None
    if "header" not in stored:
        raise ValueError(f"{path}: not a lesde result file (no header)")
    try:
        header = json.loads(str(stored.pop("header")[()]))
        if not isinstance(header, dict):
            raise TypeError("the header is not a JSON object")
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: damaged result file (unreadable header: {err})") from None
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: result format version {version} cannot be read by this lesde "
            f"(reads version {FORMAT_VERSION})"
        )
    try:
        cfg = Config.from_toml(header["config_toml"])
        steps_done, interrupted = header["steps_done"], header["interrupted"]
        meta = header.get("meta", {})
        if not isinstance(steps_done, int) or not isinstance(interrupted, bool):
            raise TypeError("steps_done must be an int and interrupted a bool")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: invalid result header ({type(err).__name__}: {err})") from None
    arrays = {name: stored[name] for name in _ARRAYS if name in stored}
    metrics = {k[len("metric__") :]: v for k, v in stored.items() if k.startswith("metric__")}
    _check_loaded(path, cfg, arrays, metrics)
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


def _check_loaded(path: Any, cfg: Config, arrays: dict, metrics: dict) -> None:
    """Every array present, numeric where it should be, and shaped as the config says."""
    missing = [n for n in _ARRAYS if n not in arrays and n != "features"]
    missing += [f"metric__{m}" for m in (*SCALAR_METRICS, "nc1") if m not in metrics]
    if missing:
        raise ValueError(f"{path}: incomplete result file, missing {', '.join(missing)}")
    R, N, K, p = cfg.replicas, cfg.n_samples, cfg.n_classes, cfg.p
    T, S = (
        arrays["times"].shape[0] if arrays["times"].ndim == 1 else -1,
        len(arrays["sample_indices"]),
    )
    if not 0 <= T <= len(cfg.record_steps):
        raise ValueError(
            f"{path}: times must be 1-D with at most {len(cfg.record_steps)} "
            f"records; got shape {arrays['times'].shape}"
        )
    shapes = {
        "times": (T,),
        "class_means": (R, T, K, p),
        "label_means": (R, T, K, p),
        "sigma_w": (R, T, p, p),
        "features": (R, N, p),
        "classes": (N,),
        "labels": (R, N),
        "sample_indices": (S,),
        "sample_trajectories": (R, T, S, p),
        "status": (R,),
        "fail_step": (R,),
    }
    shapes.update({f"metric__{m}": (R, T) for m in metrics})
    found = {**arrays, **{f"metric__{m}": v for m, v in metrics.items()}}
    for name, value in found.items():
        kind = (
            "U"
            if name == "status"
            else "iu"
            if name in ("classes", "labels", "sample_indices", "fail_step")
            else "f"
        )
        if value.dtype.kind not in kind:
            raise ValueError(f"{path}: array {name!r} has dtype {value.dtype}; the file is damaged")
        if value.shape != shapes[name]:
            raise ValueError(
                f"{path}: array {name!r} has shape {value.shape}, expected "
                f"{shapes[name]} for its config; the file is damaged"
            )
