"""The records of trained networks: one network or an ensemble of trials (no PyTorch).

:class:`TrainingResult` is what :func:`lesde.nn.train_and_record` (one network) and
:func:`lesde.nn.train_ensemble` (R independently seeded networks) return. It is laid out like
:class:`lesde.Result`, a leading replica axis on every record, so the estimators, the
paper's pipeline, plots and metrics take it as they take a simulation with replicas.
:class:`ImpactTrack` holds the impact matrices measured during training, with the same
replica axis. Both are saved in lesde's ``.npz`` layout (:mod:`lesde.io.storage`) and read back
by :func:`load_training` without PyTorch.

Examples
--------
>>> import tempfile, os
>>> one = TrainingResult.tiny_example()
>>> pool = TrainingResult.stack([one, one, one])  # three networks
>>> pool.class_means.shape, pool.final("loss").tolist()
((3, 2, 2, 2), [0.5, 0.5, 0.5])
>>> path = os.path.join(tempfile.mkdtemp(), "pool.npz")
>>> pool.save(path)
>>> load_training(path).select([0, 2]).replicas
2
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io import storage
from ..sim.result import (
    FLOAT,
    INTEGER,
    METRIC_PREFIX,
    TEXT,
    declared_dimension,
    final_values,
    metric_members,
    split_metrics,
)

__all__ = [
    "TRAINING_FORMAT_VERSION",
    "ImpactTrack",
    "TrainingResult",
    "check_training_memory",
    "load_training",
    "stepped_class_means",
    "training_record_bytes",
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


def training_record_bytes(
    *,
    steps: int,
    record_every: int,
    n_samples: int,
    n_classes: int,
    validation: bool = False,
    impact_every: int | None = None,
    record_stepped: bool = False,
    record_logits: bool = False,
) -> int:
    """Bytes of the records of one network's training: what
    :func:`lesde.nn.train_and_record` allocates for them, and about what its file holds.

    Counted from the settings alone, never by building arrays: T = ceil(steps /
    record_every) + 1 records of class and label means (2 T K^2 floats) and metrics, the
    final logits, labels and classes (N each), with ``record_stepped`` one sample index and
    K float32 logits per step, with ``impact_every`` the impact track, with
    ``record_logits`` every sample's logits at every record (T N K floats).

    Examples
    --------
    >>> training_record_bytes(steps=10_000_000_000, record_every=50_000_000, n_samples=900,
    ...                       n_classes=3, record_stepped=True) / 2**30  # doctest: +ELLIPSIS
    186.26...
    """
    K, N = int(n_classes), int(n_samples)
    T = -(-int(steps) // int(record_every)) + 1
    n_metrics = 12 if validation else 10
    total = 4 * T * 8  # times, steps and the record steps' temporaries
    total += 2 * T * K * K * 8 + n_metrics * T * 8
    total += N * K * 8 + 2 * N * 8  # features, classes, labels
    if record_logits:
        total += T * N * K * 8
    if record_stepped:
        total += int(steps) * (8 + 4 * K)
    if impact_every:
        S = -(-int(steps) // int(impact_every)) + 1
        total += S * (K * K + 14) * 8
    return total


def check_training_memory(need: int, what: str, advice: str) -> None:
    """Raise :class:`lesde.sim.engine.InsufficientMemoryError` (one line) if ``need`` bytes
    exceed 90 % of the memory available (:func:`lesde.io.storage.available_memory`), the
    convention of :func:`lesde.sim.engine.check_memory`; ``what`` says what they are for,
    ``advice`` what to change.

    Examples
    --------
    >>> check_training_memory(1024, "its records", "record less often")  # fits
    >>> check_training_memory(2**70, "its records", "record less often")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    lesde.sim.engine.InsufficientMemoryError: this training needs about 1099511627776.00 GiB ...
    """
    from ..sim.engine import InsufficientMemoryError

    have = storage.available_memory()
    if have is not None and need > 0.9 * have:
        raise InsufficientMemoryError(
            f"this training needs about {need / 2**30:.2f} GiB for {what}, but only "
            f"{have / 2**30:.2f} GiB of memory is available; {advice}"
        )


def _pad(values: np.ndarray, length: int, axis: int, fill) -> np.ndarray:
    """``values`` extended along ``axis`` to ``length`` with ``fill``."""
    missing = length - values.shape[axis]
    if missing <= 0:
        return values
    shape = list(values.shape)
    shape[axis] = missing
    pad = np.full(shape, fill, dtype=np.result_type(values, np.asarray(fill)))
    return np.concatenate([values, pad], axis=axis)


@dataclass(eq=False)
class ImpactTrack:
    """Impact matrices measured during training (``train_and_record(impact_every=...)``).

    Laid out like the other records of a :class:`TrainingResult`: a leading replica axis
    (one row per network of an ensemble, one row for a single network), then the
    measurement axis. ``times`` (S,) and ``steps`` (S,) are shared; ``matrices``
    (R, S, K, K); ``alpha_hat``/``beta_hat``/``ratio`` (R, S) and their bootstrap
    intervals (R, S, 2); ``difference_ci`` (R, S, 2) the intervals of
    ``alpha_hat - beta_hat``; ``dropped_inputs`` (R, S) the stepped inputs left out for a
    saturated softmax (reported here, not warned). A network that stopped early (a
    non-finite loss) has NaN, and ``dropped_inputs`` -1, at the measurements it did not
    reach.

    Examples
    --------
    >>> from types import SimpleNamespace  # stands in for a lesde.nn.ImpactMatrix
    >>> measured = SimpleNamespace(
    ...     matrix=np.eye(2), alpha_hat=1.0, beta_hat=0.0, ratio=np.inf, alpha_ci=(0.9, 1.1),
    ...     beta_ci=(-0.1, 0.1), ratio_ci=(9.0, np.inf), difference_ci=(0.8, 1.2),
    ...     dropped_inputs=0, confidence=0.95)
    >>> track = ImpactTrack.collect([0, 10], 0.1, [measured, measured])
    >>> track.times.tolist(), track.matrices.shape, track.alpha_ci.shape
    ([0.0, 1.0], (1, 2, 2, 2), (1, 2, 2))
    >>> ImpactTrack.stack([track, track]).alpha_hat.shape  # two networks
    (2, 2)
    """

    times: np.ndarray
    steps: np.ndarray
    matrices: np.ndarray
    alpha_hat: np.ndarray
    beta_hat: np.ndarray
    ratio: np.ndarray
    alpha_ci: np.ndarray
    beta_ci: np.ndarray
    ratio_ci: np.ndarray
    difference_ci: np.ndarray
    dropped_inputs: np.ndarray
    confidence: float

    FIELDS = ("times", "steps", "matrices", "alpha_hat", "beta_hat", "ratio")
    FIELDS += ("alpha_ci", "beta_ci", "ratio_ci", "difference_ci", "dropped_inputs")
    #: The fields with a replica axis (the others, times and steps, are shared).
    PER_REPLICA = FIELDS[2:]

    @property
    def replicas(self) -> int:
        """R, the number of networks measured."""
        return int(self.alpha_hat.shape[0])

    @classmethod
    def collect(cls, steps, lr, measured: list) -> ImpactTrack:
        """The track (one replica) of ``measured`` :class:`lesde.nn.ImpactMatrix` objects,
        taken at SGD ``steps`` of size ``lr``."""
        steps = np.asarray(steps, dtype=np.int64)
        one = lambda values: np.asarray(values, dtype=np.float64)[None]  # noqa: E731
        return cls(
            times=steps * lr,
            steps=steps,
            matrices=one([m.matrix for m in measured]),
            alpha_hat=one([m.alpha_hat for m in measured]),
            beta_hat=one([m.beta_hat for m in measured]),
            ratio=one([m.ratio for m in measured]),
            alpha_ci=one([m.alpha_ci for m in measured]).reshape(1, -1, 2),
            beta_ci=one([m.beta_ci for m in measured]).reshape(1, -1, 2),
            ratio_ci=one([m.ratio_ci for m in measured]).reshape(1, -1, 2),
            difference_ci=one([m.difference_ci for m in measured]).reshape(1, -1, 2),
            dropped_inputs=np.array([[m.dropped_inputs for m in measured]], dtype=np.int64),
            confidence=measured[0].confidence if measured else 0.95,
        )

    @classmethod
    def stack(cls, tracks: list[ImpactTrack]) -> ImpactTrack:
        """One track with the replicas of all ``tracks`` (same measurement steps; a track
        that stopped early is padded with NaN, and ``dropped_inputs`` with -1)."""
        if not tracks:
            raise ValueError("no impact tracks to stack")
        longest = max(tracks, key=lambda tr: tr.steps.size)
        S = longest.steps.size
        for tr in tracks:
            if not np.array_equal(tr.steps, longest.steps[: tr.steps.size]):
                raise ValueError("impact tracks measured at different steps cannot be stacked")
            if tr.confidence != longest.confidence:
                raise ValueError("impact tracks of different confidence levels cannot be stacked")
        fields = {
            name: np.concatenate(
                [
                    _pad(getattr(tr, name), S, 1, -1 if name == "dropped_inputs" else np.nan)
                    for tr in tracks
                ]  # fmt: skip
            )
            for name in cls.PER_REPLICA
        }
        return cls(
            times=longest.times,
            steps=longest.steps,
            confidence=longest.confidence,
            **fields,
        )

    def select(self, replicas) -> ImpactTrack:
        """The track of the networks ``replicas`` (indices along the replica axis)."""
        idx = np.asarray(replicas, dtype=np.int64)
        return ImpactTrack(
            times=self.times,
            steps=self.steps,
            confidence=self.confidence,
            **{name: getattr(self, name)[idx] for name in self.PER_REPLICA},
        )


@dataclass(eq=False)
class TrainingResult:
    """The records of one trained network, or of an ensemble of independently seeded ones.

    Laid out like :class:`Result`: every record has a leading replica axis, one row per
    network (R = 1 for :func:`lesde.nn.train_and_record`, R trials for
    :func:`lesde.nn.train_ensemble`). So the estimators (:func:`lesde.analysis.estimate.fit`,
    or :func:`lesde.analysis.estimate.impact_integrals` on ``res.class_means[r]``), the paper's
    pipeline
    (:func:`lesde.nn.pipeline.paper_pipeline`, which averages over the replicas) and the plots
    (:func:`lesde.plot.metric_over_time`: median and band over replicas) accept it as they
    accept a simulation with replicas. Saved and loaded (:func:`load_training`) without
    PyTorch.

    Attributes
    ----------
    times : (T,) record times ``t = step * lr``; steps : (T,) SGD steps
    class_means : (R, T, K, K) mean logits by true class
    label_means : (R, T, K, K) mean logits by training label
    metrics : dict name -> (R, T) array: loss, accuracy (against the training labels),
        clean_accuracy (against the true classes), ncc_accuracy, nc1, nc4, equinorm,
        equiangularity, etf_distance, coherence, and val_loss, val_accuracy with
        validation data
    features : (R, N, K) logits of the training samples at each network's last record
    classes : (N,) true classes; labels : (R, N) training labels (corrupted if asked)
    logits : (T, N, K) all recorded logits of a single network, or None (class means only,
        and always for an ensemble)
    impact : ImpactTrack or None
    stepped_indices : (R, steps) int, or None
        The training sample stepped at each SGD step (batches of one; -1 after a network
        stopped). The paper records these: its class means are averages, per step and
        class, of the stepped inputs' logits over the trials (:func:`stepped_class_means`).
    stepped_logits : (R, steps, K) float32, or None
        The logits of the stepped input in the forward pass of its step (before the step).
    status : (R,) "ok" or "nonfinite"; fail_step : (R,) step of failure or -1
    steps_done : steps every replica completed; interrupted, meta (settings, versions, wall
        time; ``meta["trials"]`` lists each trial's own meta for an ensemble)

    Records that a replica did not reach (it stopped at a non-finite loss) are NaN.

    Examples
    --------
    >>> T, N, K = 2, 4, 2
    >>> res = TrainingResult(
    ...     times=np.array([0.0, 0.1]), steps=np.array([0, 10]),
    ...     class_means=np.zeros((1, T, K, K)), label_means=np.zeros((1, T, K, K)),
    ...     metrics={"loss": np.array([[0.7, 0.5]])}, features=np.zeros((1, N, K)),
    ...     classes=np.array([0, 0, 1, 1]), labels=np.array([[0, 0, 1, 1]]), logits=None,
    ...     impact=None, status=np.array(["ok"]), fail_step=np.array([-1]), steps_done=10)
    >>> res.final("loss"), res.ok
    (array([0.5]), True)
    >>> TrainingResult.stack([res, res]).class_means.shape  # two networks
    (2, 2, 2, 2)
    """

    times: np.ndarray
    steps: np.ndarray
    class_means: np.ndarray
    label_means: np.ndarray
    metrics: dict[str, np.ndarray]
    features: np.ndarray
    classes: np.ndarray
    labels: np.ndarray
    logits: np.ndarray | None
    impact: ImpactTrack | None
    status: np.ndarray
    fail_step: np.ndarray
    steps_done: int
    interrupted: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    stepped_indices: np.ndarray | None = None
    stepped_logits: np.ndarray | None = None

    @property
    def replicas(self) -> int:
        """R, the number of networks (trials) recorded."""
        return int(self.class_means.shape[0])

    @property
    def ok(self) -> bool:
        """True when every network finished with finite values and none was interrupted."""
        return not self.interrupted and bool(np.all(self.status == "ok"))

    @property
    def title(self) -> str:
        """One line naming the run, used by :mod:`lesde.plot`."""
        m = self.meta
        what = f"{self.replicas} × " if self.replicas > 1 else ""
        return (
            f"{what}{m.get('model', 'network')}, SGD lr = {m.get('lr', float('nan')):g}, "
            f"batch {m.get('batch_size', '?')}, p_err = {m.get('label_noise', 0):g}"
        )

    def final(self, name: str) -> np.ndarray:
        """The last finite record of metric ``name`` for every network, shape (R,).

        Examples
        --------
        >>> res = TrainingResult.tiny_example()
        >>> res.final("loss")
        array([0.5])
        """
        return final_values(self.metrics, name)

    def summary(self) -> dict[str, Any]:
        """Mean over networks of each metric's final value, the time reached, the number
        of networks that finished with finite values, and the status ("ok", or the
        sorted set of the other statuses).

        Examples
        --------
        >>> s = TrainingResult.tiny_example().summary()
        >>> s["loss"], s["replicas_ok"], s["status"]
        (0.5, 1, 'ok')
        """
        out: dict[str, Any] = {}
        for name in self.metrics:
            values = self.final(name)
            out[name] = float(np.nanmean(values)) if np.any(np.isfinite(values)) else float("nan")
        out["t_end"] = float(self.times[-1]) if self.times.size else 0.0
        out["replicas_ok"] = int(np.sum(self.status == "ok"))
        bad = sorted(set(self.status.tolist()) - {"ok"})
        out["status"] = ",".join(bad) if bad else "ok"
        return out

    def __repr__(self) -> str:
        what = f"replicas={self.replicas}, " if self.replicas > 1 else ""
        names, counts = np.unique(self.status, return_counts=True)
        status = (
            repr(str(self.status[0]))
            if self.replicas == 1
            else str({str(k): int(n) for k, n in zip(names, counts, strict=True)})
        )
        return (
            f"TrainingResult({what}records={self.times.size}, steps={self.steps_done}, "
            f"t={self.times[-1] if self.times.size else 0:g}, status={status}, "
            f"logits={'recorded' if self.logits is not None else 'class means only'})"
        )

    @classmethod
    def tiny_example(cls) -> TrainingResult:
        """A tiny one-network record (two records, K = 2) for examples and tests.

        Examples
        --------
        >>> TrainingResult.tiny_example().class_means.shape
        (1, 2, 2, 2)
        """
        return cls(
            times=np.array([0.0, 0.1]),
            steps=np.array([0, 10]),
            class_means=np.zeros((1, 2, 2, 2)),
            label_means=np.zeros((1, 2, 2, 2)),
            metrics={"loss": np.array([[0.7, 0.5]])},
            features=np.zeros((1, 4, 2)),
            classes=np.array([0, 0, 1, 1]),
            labels=np.array([[0, 0, 1, 1]]),
            logits=None,
            impact=None,
            status=np.array(["ok"]),
            fail_step=np.array([-1]),
            steps_done=10,
        )

    # ------------------------------------------------------------------ ensembles
    @classmethod
    def stack(
        cls, results: list[TrainingResult], meta: dict | None = None, interrupted: bool = False
    ) -> TrainingResult:
        """One result with the networks of all ``results`` as replicas, in order.

        They must share the data (true classes), the record steps (a network that stopped
        early has a prefix of them: its missing records become NaN) and the metrics.
        Per-network logits are dropped (an ensemble keeps class means); the stepped-input
        records and impact tracks are kept when every result has them. ``meta`` defaults
        to the first result's, with ``meta["trials"]`` listing every result's own.
        """
        if not results:
            raise ValueError("no training results to stack")
        longest = max(results, key=lambda r: r.steps.size)
        T = longest.steps.size
        for i, r in enumerate(results):
            if not np.array_equal(r.classes, longest.classes):
                raise ValueError(f"result {i} was trained on other data (its classes differ)")
            if not np.array_equal(r.steps, longest.steps[: r.steps.size]):
                raise ValueError(f"result {i} was recorded at other steps")
            if r.metrics.keys() != longest.metrics.keys():
                raise ValueError(f"result {i} recorded other metrics")

        def cat(name: str, axis: int = 1) -> np.ndarray:
            return np.concatenate([_pad(getattr(r, name), T, axis, np.nan) for r in results])

        stepped = all(r.stepped_indices is not None for r in results)
        if stepped:
            n_steps = max(r.stepped_indices.shape[1] for r in results)
            stepped_indices = np.concatenate(
                [_pad(r.stepped_indices, n_steps, 1, -1) for r in results]
            )
            stepped_logits = np.concatenate(
                [_pad(r.stepped_logits, n_steps, 1, np.nan) for r in results]
            ).astype(np.float32)
        impacts = [r.impact for r in results]
        if meta is None:
            meta = dict(longest.meta)
            meta["trials"] = [r.meta for r in results]
        return cls(
            times=longest.times,
            steps=longest.steps,
            class_means=cat("class_means"),
            label_means=cat("label_means"),
            metrics={
                name: np.concatenate([_pad(r.metrics[name], T, 1, np.nan) for r in results])
                for name in longest.metrics
            },
            features=np.concatenate([r.features for r in results]),
            classes=longest.classes,
            labels=np.concatenate([r.labels for r in results]),
            logits=results[0].logits if len(results) == 1 else None,
            impact=ImpactTrack.stack(impacts) if all(i is not None for i in impacts) else None,
            status=np.concatenate([r.status for r in results]),
            fail_step=np.concatenate([r.fail_step for r in results]),
            steps_done=min(r.steps_done for r in results),
            interrupted=interrupted or any(r.interrupted for r in results),
            meta=meta,
            stepped_indices=stepped_indices if stepped else None,
            stepped_logits=stepped_logits if stepped else None,
        )

    def select(self, replicas) -> TrainingResult:
        """The result of the networks ``replicas`` (indices along the replica axis), e.g.
        disjoint sub-ensembles of one pool of trials.

        Examples
        --------
        >>> pool = TrainingResult.stack([TrainingResult.tiny_example()] * 4)
        >>> pool.select([0, 2]).replicas
        2
        """
        idx = np.atleast_1d(np.asarray(replicas, dtype=np.int64))
        if idx.size == 0 or idx.min() < -self.replicas or idx.max() >= self.replicas:
            raise IndexError(f"replicas {idx.tolist()} out of range for {self.replicas}")
        meta = dict(self.meta)
        if "trials" in meta:
            meta["trials"] = [meta["trials"][i] for i in idx]
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return TrainingResult(
            times=self.times,
            steps=self.steps,
            class_means=self.class_means[idx],
            label_means=self.label_means[idx],
            metrics={name: values[idx] for name, values in self.metrics.items()},
            features=self.features[idx],
            classes=self.classes,
            labels=self.labels[idx],
            logits=self.logits if idx.size == 1 and self.replicas == 1 else None,
            impact=None if self.impact is None else self.impact.select(idx),
            status=self.status[idx],
            fail_step=self.fail_step[idx],
            steps_done=self.steps_done,
            interrupted=self.interrupted,
            meta=meta,
            stepped_indices=pick(self.stepped_indices),
            stepped_logits=pick(self.stepped_logits),
        )

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` file atomically (read back with :func:`load_training`)."""
        arrays = {name: np.asarray(getattr(self, name)) for name in _TRAINING_ARRAYS}
        arrays["status"] = self.status.astype(str)
        if self.logits is not None:
            arrays["logits"] = self.logits
        if self.stepped_indices is not None:
            arrays["stepped_indices"] = self.stepped_indices
            arrays["stepped_logits"] = self.stepped_logits
        arrays.update(metric_members(self.metrics))
        if self.impact is not None:
            for name in ImpactTrack.FIELDS:
                arrays[IMPACT_PREFIX + name] = getattr(self.impact, name)
        header = {
            "kind": TRAINING_KIND,
            "format_version": TRAINING_FORMAT_VERSION,
            "steps_done": self.steps_done,
            "interrupted": self.interrupted,
            "impact_confidence": self.impact.confidence if self.impact is not None else None,
            "meta": self.meta,
        }
        storage.write_npz(path, arrays, header)


def stepped_class_means(result: TrainingResult, trials=None) -> np.ndarray:
    """The paper's class means: per SGD step and class, the mean over trials of the logits
    of the input stepped there, grouped by its true class; shape (steps, K, K).

    The paper (docs/model.md section 5) trains many networks with one sample per step and
    records only the stepped input's logits (before its step); averaging them per step and
    class over the trials gives one K x K matrix per step. A step at which no trial
    stepped an input of class k has NaN in row k (likely for few trials: each class has
    probability ``1 - (1 - pi_k)^R`` of being stepped in at least one of R trials).

    Examples
    --------
    >>> res = TrainingResult.tiny_example()
    >>> res.stepped_indices = np.array([[0, 2, 3]])
    >>> res.stepped_logits = np.array([[[1.0, 0.0], [0.0, 2.0], [0.0, 4.0]]], np.float32)
    >>> stepped_class_means(res)[:, 1].tolist()  # class 1: samples 2 and 3
    [[nan, nan], [0.0, 2.0], [0.0, 4.0]]
    """
    if result.stepped_indices is None:
        raise ValueError(
            "this result has no stepped-input records: train with record_stepped=True "
            "(batches of one)"
        )
    idx = result.stepped_indices
    logits = np.asarray(result.stepped_logits, dtype=np.float64)
    if trials is not None:
        idx, logits = idx[trials], logits[trials]
    R, S = idx.shape
    K = result.class_means.shape[2]
    cls = np.where(idx >= 0, result.classes[np.maximum(idx, 0)], -1)  # (R, S)
    sums = np.zeros((S, K, K))
    counts = np.zeros((S, K))
    for k in range(K):
        mask = cls == k
        sums[:, k] = np.einsum("rs,rsj->sj", mask, np.where(mask[..., None], logits, 0.0))
        counts[:, k] = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts[..., None] > 0, sums / counts[..., None], np.nan)


def load_training(path: str | os.PathLike) -> TrainingResult:
    """Read a :class:`TrainingResult` written by :meth:`TrainingResult.save` (no pickle,
    no PyTorch); checked like :func:`load`. Files of format version 1 (one network,
    written before ensembles) are read too.

    Examples
    --------
    >>> import tempfile, os
    >>> res = TrainingResult(
    ...     times=np.zeros(1), steps=np.zeros(1, dtype=np.int64),
    ...     class_means=np.zeros((1, 1, 2, 2)), label_means=np.zeros((1, 1, 2, 2)),
    ...     metrics={}, features=np.zeros((1, 3, 2)), classes=np.array([0, 1, 1]),
    ...     labels=np.array([[0, 1, 1]]), logits=None, impact=None,
    ...     status=np.array(["ok"]), fail_step=np.array([-1]), steps_done=0)
    >>> p = os.path.join(tempfile.mkdtemp(), "train.npz")
    >>> res.save(p)
    >>> load_training(p).class_means.shape
    (1, 1, 2, 2)
    """
    read = dict(
        what="lesde training result",
        kind=TRAINING_KIND,
        required=_TRAINING_ARRAYS,
        optional=["logits", *_STEPPED_ARRAYS],
        prefixes=[METRIC_PREFIX, IMPACT_PREFIX],
        expect=_expected_training_arrays,
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
    return TrainingResult(
        **{name: arrays[name] for name in _TRAINING_ARRAYS if name != "status"},
        status=arrays["status"].astype(str),
        metrics=metrics,
        logits=arrays.get("logits"),
        impact=impact,
        steps_done=steps_done,
        interrupted=interrupted,
        meta=header.get("meta", {}),
        stepped_indices=arrays.get("stepped_indices"),
        stepped_logits=arrays.get("stepped_logits"),
    )


def _expected_training_arrays(header: dict, declared: dict) -> dict[str, storage.Spec]:
    """The dtype and shape of every array of a training record, from the sizes its times,
    classes and class means declare (for storage.read_npz). Format version 1 (one network)
    stored the impact arrays without a replica axis."""
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
