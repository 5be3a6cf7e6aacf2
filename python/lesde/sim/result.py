"""What runs return, and how they are saved and loaded (``.npz``, never pickle).

:class:`Result` is what :func:`lesde.simulate` returns; :func:`load` reads it back. The
file layout is :mod:`lesde.io.storage`'s (a JSON header with a kind and a format version,
arrays checked before they are read). The records of real networks, laid out the same
way, are :class:`lesde.nn.training_result.TrainingResult`.

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

from .. import _core
from ..io import storage
from ..metrics.neural_collapse import nc1_from_moments_batched, nc2_from_means_batched
from ..version import __version__
from .config import Config
from .model import SIGNAL_INFO

__all__ = [
    "FORMAT_VERSION",
    "HEADLINE_METRICS",
    "SCALAR_METRICS",
    "Result",
    "final_values",
    "finish_metrics",
    "load",
    "provenance",
    "record_count",
    "status_names",
]

#: What a summary of a run leads with, per signal: what its dynamics drive (docs/model.md,
#: section 3), from the one table of the signals (:data:`lesde.sim.model.SIGNAL_INFO`).
HEADLINE_METRICS = {name: info.headline for name, info in SIGNAL_INFO.items()}
#: The scalars the engine records, in the column order of its records, as the core declares
#: them (cpp/include/lesde/record.hpp kScalars; a change there bumps FORMAT_VERSION).
SCALAR_METRICS = tuple(m["name"] for m in sorted(_core.scalar_metrics(), key=lambda m: m["index"]))
STATUS = {0: "ok", 1: "nonfinite"}
#: Version of the result file layout; a file of another version is refused. It goes up with
#: every change of SCALAR_METRICS (tests/test_record_table.py).
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
    (R, T, K, p) are the engine's record arrays; every metric comes out as (R, T). NC1 and
    NC2 are those of :func:`lesde.metrics.nc1_from_moments` and
    :func:`lesde.metrics.nc2_from_means`, evaluated for all replicas and records at once
    (:mod:`lesde.metrics.neural_collapse`'s batched forms). A class whose mean is not finite (no
    sample holds its label, or the replica diverged) is left out; a record with fewer than
    two classes left, or a non-finite ``sigma_w`` (a failed replica), gets NaN.

    Examples
    --------
    >>> R, T, K = 1, 2, 3
    >>> out = finish_metrics(np.zeros((R, T, len(SCALAR_METRICS))), np.ones((R, T, K, K)),
    ...                      np.eye(K)[None, None].repeat(T, axis=1))
    >>> out["loss"].shape, out["nc1"].shape
    ((1, 2), (1, 2))
    """
    out = {name: np.ascontiguousarray(scalars[..., j]) for j, name in enumerate(SCALAR_METRICS)}
    with np.errstate(all="ignore"):  # records of a diverging run may hold huge values
        usable = np.all(np.isfinite(sigma_w), axis=(-2, -1))
        present = np.all(np.isfinite(label_means), axis=-1) & usable[..., None]
        means = np.where(present[..., None], label_means, np.nan)
        out["nc1"] = nc1_from_moments_batched(sigma_w, means)
        out.update(nc2_from_means_batched(means))
    return out


def final_values(metrics: dict[str, np.ndarray], name: str) -> np.ndarray:
    """The last finite record of ``metrics[name]`` (R, T) for every replica, shape (R,).

    ``separable_ncc`` is derived: 1.0 where the final ``ncc_accuracy`` is 1, else 0.0.

    Examples
    --------
    >>> final_values({"loss": np.array([[1.0, 0.5, np.nan]])}, "loss")
    array([0.5])
    >>> final_values({"ncc_accuracy": np.array([[0.5, 1.0], [1.0, 0.9]])}, "separable_ncc")
    array([1., 0.])
    """
    if name == "separable_ncc" and "ncc_accuracy" in metrics:
        ncc = final_values(metrics, "ncc_accuracy")
        return np.where(np.isnan(ncc), np.nan, (ncc == 1.0).astype(float))
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

    def at_last_record(self, name: str) -> np.ndarray:
        """Metric ``name`` at the last record, ``times[-1]``, for every replica, shape (R,).

        NaN for a replica that failed (status not "ok": its records stop at its failure)
        and where the record holds NaN by definition. Unlike :meth:`final`, never a value
        of an earlier record: what ``lesde run`` prints under "t = times[-1]".
        ``separable_ncc`` is derived from ``ncc_accuracy`` as in :meth:`final`.

        Examples
        --------
        >>> import lesde
        >>> res = lesde.simulate(n_classes=2, n_per_class=10, t_end=0.05, progress=False)
        >>> bool(res.at_last_record("loss")[0] == res.metrics["loss"][0, -1])
        True
        """
        if name == "separable_ncc" and "ncc_accuracy" in self.metrics:
            ncc = self.at_last_record("ncc_accuracy")
            return np.where(np.isnan(ncc), np.nan, (ncc == 1.0).astype(float))
        if name not in self.metrics:
            raise KeyError(f"unknown metric {name!r}; recorded: {', '.join(self.metrics)}")
        values = self.metrics[name]
        if values.shape[1] == 0:
            return np.full(values.shape[0], np.nan)
        return np.where(self.status == "ok", values[:, -1], np.nan)

    def failures(self) -> list[tuple[int, int, float]]:
        """``(replica, step, t)`` of every replica that failed (its state or a record became
        NaN or infinite, see :class:`lesde.NonFiniteError`), in replica order.

        Examples
        --------
        >>> import lesde
        >>> lesde.simulate(n_classes=2, n_per_class=10, t_end=0.05, progress=False).failures()
        []
        """
        return [
            (int(r), int(self.fail_step[r]), float(self.fail_step[r] * self.config.dt))
            for r in np.flatnonzero(self.status != "ok")
        ]

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

    @property
    def headline(self) -> tuple[str, ...]:
        """The metrics that tell this run's story, for its signal (:data:`HEADLINE_METRICS`).

        >>> import lesde
        >>> lesde.simulate(n_classes=2, n_per_class=10, t_end=0.05, signal="linear",
        ...                progress=False).headline
        ('separable_ncc', 'ncc_accuracy', 'nc1')
        """
        return HEADLINE_METRICS[self.config.signal]

    def summary(self) -> dict[str, float]:
        """Mean over the replicas that are ok of each metric at the last record
        (:meth:`at_last_record`), :attr:`headline` first, then the other metrics, ``t_end``
        (the time of that record) and ``replicas_ok``. A failed replica's numbers belong to
        an earlier time, so they are left out (NaN where no replica is ok).
        ``separable_ncc`` is the fraction of replicas whose final features the
        nearest-class-centre rule separates.

        Examples
        --------
        >>> import lesde
        >>> s = lesde.simulate(n_classes=2, n_per_class=10, t_end=0.05, progress=False).summary()
        >>> list(s)[:3]  # the cross-entropy signal's headline
        ['loss', 'accuracy', 'separable_ncc']
        """
        out: dict[str, Any] = {}
        for name in dict.fromkeys([*self.headline, *self.metrics]):
            values = self.at_last_record(name)
            out[name] = float(np.nanmean(values)) if np.any(np.isfinite(values)) else float("nan")
        out["t_end"] = float(self.times[-1]) if self.times.size else 0.0
        out["replicas_ok"] = int(np.sum(self.status == "ok"))
        return out

    def to_dataframe(self, metrics=None):
        """The records as one tidy table: a row per replica and record time.

        Columns: ``replica``, ``record`` (the record's index), ``t`` (its time), ``status``
        (the replica's: "ok" or "nonfinite"), then one column per metric: those of
        :attr:`metrics` in their order, and ``separable_ncc`` (1.0 where the record's
        ``ncc_accuracy`` is 1, else 0.0; NaN where that is NaN), or only those named in
        ``metrics``. Records that a failed replica did not reach are NaN. Rows are sorted
        by replica, then time. ``df.attrs`` holds the run's config (``config_toml``) and
        the lesde version; :meth:`to_parquet` keeps them.

        To compare runs, add their settings as columns and stack the tables:
        ``pd.concat([r.to_dataframe().assign(beta=r.config.beta) for r in runs])``.

        Examples
        --------
        >>> import lesde
        >>> res = lesde.simulate(n_classes=2, n_per_class=10, t_end=0.2, replicas=2,
        ...                      record_every=10, progress=False)
        >>> df = res.to_dataframe()
        >>> df.shape[0], list(df.columns[:5])
        (6, ['replica', 'record', 't', 'status', 'loss'])
        >>> df.groupby("t")["accuracy"].mean().index.tolist()  # mean over replicas
        [0.0, 0.1, 0.2]
        >>> res.to_dataframe(metrics=["nc1"]).columns.tolist()
        ['replica', 'record', 't', 'status', 'nc1']
        """
        import difflib

        import pandas as pd

        columns = dict(self.metrics)
        if "ncc_accuracy" in columns:
            ncc = columns["ncc_accuracy"]
            columns["separable_ncc"] = np.where(np.isnan(ncc), np.nan, (ncc == 1.0) * 1.0)
        if metrics is None:
            names = list(columns)
        else:
            names = [metrics] if isinstance(metrics, str) else list(metrics)
        for name in names:
            if name not in columns:
                hint = difflib.get_close_matches(str(name), list(columns), n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                raise KeyError(f"no metric {name!r} in the result{extra}")
        R, T = len(self.status), self.times.size
        table = {
            "replica": np.repeat(np.arange(R, dtype=np.int64), T),
            "record": np.tile(np.arange(T, dtype=np.int64), R),
            "t": np.tile(np.asarray(self.times, dtype=float), R),
            "status": np.repeat(np.asarray(self.status, dtype=str), T).astype(object),
        }
        table.update(
            {name: np.asarray(columns[name], dtype=float).reshape(R * T) for name in names}
        )
        frame = pd.DataFrame(table)
        frame.attrs.update(
            kind="lesde-result-table",
            config_toml=self.config.to_toml(),
            lesde_version=str(self.meta.get("lesde_version", __version__)),
        )
        return frame

    def to_parquet(self, path: str | os.PathLike, metrics=None) -> None:
        """Write :meth:`to_dataframe` as a Parquet file, atomically
        (:func:`lesde.io.storage.atomic_write_parquet`; needs ``pip install
        'lesde[parquet]'``). The file keeps the run's config: ``pd.read_parquet(path)
        .attrs["config_toml"]``.

        Examples
        --------
        >>> import lesde, os, tempfile, pandas as pd
        >>> res = lesde.simulate(n_classes=2, n_per_class=10, t_end=0.2, progress=False)
        >>> path = os.path.join(tempfile.mkdtemp(), "run.parquet")
        >>> res.to_parquet(path)
        >>> back = pd.read_parquet(path)
        >>> back.shape == res.to_dataframe().shape, lesde.Config.from_toml(
        ...     back.attrs["config_toml"]) == res.config
        (True, True)
        """
        storage.atomic_write_parquet(path, self.to_dataframe(metrics))

    def __repr__(self) -> str:
        R, T = self.metrics["loss"].shape
        names, counts = np.unique(self.status, return_counts=True)
        status = {str(k): int(n) for k, n in zip(names, counts, strict=True)}
        return (
            f"Result(replicas={R}, records={T}, t={self.times[-1] if T else 0:g}, status={status})"
        )

    # ------------------------------------------------------------------ files
    def save(
        self, path: str | os.PathLike, include_features: bool = True, *, overwrite: bool = True
    ) -> None:
        """Write an ``.npz`` file atomically (temp file, fsync, rename).

        It carries the resolved config, the package version, build flags, seeds and the
        random-stream version. Read it back with :func:`lesde.load`.

        A result file of lesde already at ``path`` is replaced (unless ``overwrite`` is
        False); anything else there is never replaced: a file lesde did not write, another
        kind of lesde file (a checkpoint), a link, a FIFO or a folder raise
        :class:`lesde.io.storage.NotReplacedError` (a ``ValueError``), and the file stays as
        it was. Only the existing file's header is read to tell.

        Examples
        --------
        >>> import lesde, os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
        >>> _ = open(path, "w").write("my notes")
        >>> res = lesde.simulate(n_classes=2, n_per_class=5, t_end=0.05, progress=False)
        >>> res.save(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        lesde.io.replace.NotReplacedError: result path '...notes.txt' exists and is not a file ...
        """
        storage.check_replace(
            path, kind=KIND, name=f"result path {str(path)!r}", overwrite=overwrite
        )
        arrays: dict[str, np.ndarray] = {}
        for name in _ARRAYS:
            if name == "features" and not include_features:
                continue
            value = getattr(self, name)
            arrays[name] = value.astype(str) if name == "status" else np.asarray(value)
        arrays.update(metric_members(self.metrics))
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
        "reduction_order": int(_core.REDUCTION_ORDER_VERSION),
        "seed": cfg.seed,
        "noise_seed": cfg.effective_noise_seed,
        "threads": cfg.effective_threads,
        "wall_seconds": wall_seconds,
    }


def load(path: str | os.PathLike) -> Result:
    """Read a result written by :meth:`Result.save` (never unpickles anything).

    The file is checked before its arrays are read (:func:`lesde.io.storage.read_npz`), every
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
        expect=_expected_result_arrays,
    )
    header = contents.header
    cfg, steps_done, interrupted = _result_header(header)
    arrays, metrics = split_metrics(contents.arrays)
    T = arrays["times"].shape[0]
    grid = np.minimum(np.arange(T, dtype=np.int64) * cfg.record_interval, cfg.n_steps)
    if not np.array_equal(arrays["times"], grid * cfg.dt):
        raise ValueError(f"{path}: the record times are not those of its config; damaged file")
    if "features" not in arrays:
        arrays["features"] = np.empty((cfg.replicas, 0, cfg.p))
    return Result(
        config=cfg,
        metrics=metrics,
        status=arrays.pop("status").astype(str),
        steps_done=steps_done,
        interrupted=interrupted,
        meta=header.get("meta", {}),
        **arrays,
    )


def record_count(cfg: Config, step: int | None = None) -> int:
    """How many of the record steps of ``cfg`` come at or before ``step`` (default: all).

    Counted, not built: the record grid of a crafted config could itself not fit.

    Examples
    --------
    >>> cfg = Config(n_classes=2, steps=25, record_every=10)
    >>> cfg.record_steps.tolist(), record_count(cfg), record_count(cfg, 24)
    ([0, 10, 20, 25], 4, 3)
    """
    n, every = cfg.n_steps, cfg.record_interval
    step = n if step is None else min(int(step), n)
    if step < 0:
        return 0
    return step // every + 1 + int(step == n and n % every != 0)


def _result_header(header: dict) -> tuple[Config, int, bool]:
    """(config, steps_done, interrupted) of a result file's header."""
    try:
        cfg = Config.from_toml_text(header["config_toml"])
        steps_done, interrupted = header["steps_done"], header["interrupted"]
        if not isinstance(steps_done, int) or not isinstance(interrupted, bool):
            raise TypeError("steps_done must be an int and interrupted a bool")
        if not 0 <= steps_done <= cfg.n_steps:
            raise ValueError(f"steps_done {steps_done} outside [0, {cfg.n_steps}] of its config")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"invalid result header ({type(err).__name__}: {err})") from None
    return cfg, steps_done, interrupted


def _expected_result_arrays(header: dict, declared: dict) -> dict[str, storage.Spec]:
    """The dtype and shape of every array of a result file, from its header: the sizes of
    the config, and as many records as its steps_done makes (for storage.read_npz)."""
    cfg, steps_done, _ = _result_header(header)
    R, N, K, p = cfg.replicas, cfg.n_samples, cfg.n_classes, cfg.p
    T = declared_dimension(declared, "times", 1)
    records = record_count(cfg, steps_done)
    if T != records:
        raise ValueError(
            f"the file holds {T} records, but {records} for steps_done = {steps_done} of its "
            "config; the file is damaged (nothing was read)"
        )
    if declared["labels"].shape != (R, N):  # N is right before it sizes anything below
        raise ValueError(
            f"array 'labels' should have shape {(R, N)} for its header, but declares "
            f"{declared['labels'].shape}; the file is damaged (nothing was read)"
        )
    S = len(cfg.recorded_sample_indices)
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
    metrics = [name for name in declared if name.startswith(METRIC_PREFIX)]
    expected.update({name: (FLOAT, (R, T)) for name in metrics})
    return expected


# ------------------------------------------------------------------ shared with training_result
def metric_members(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {METRIC_PREFIX + name: values for name, values in metrics.items()}


def split_metrics(stored: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(arrays, metrics): the ``metric__<name>`` members become ``metrics[name]``."""
    arrays = {k: v for k, v in stored.items() if not k.startswith(METRIC_PREFIX)}
    metrics = {
        k.removeprefix(METRIC_PREFIX): v for k, v in stored.items() if k.startswith(METRIC_PREFIX)
    }
    return arrays, metrics


# dtype kinds an array may have: floating point, integer, text.
FLOAT, INTEGER, TEXT = "f", "iu", "U"


def declared_dimension(declared: dict, name: str, ndim: int, axis: int = 0) -> int:
    """``shape[axis]`` that member ``name`` declares, once it has ``ndim`` dimensions (the
    size the other members are checked against)."""
    shape = declared[name].shape
    if len(shape) != ndim:
        raise ValueError(
            f"array {name!r} must be {ndim}-D, declares shape {shape}; the file is damaged"
        )
    return shape[axis]
