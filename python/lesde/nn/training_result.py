"""The records of trained networks: one network or an ensemble of trials (no PyTorch).

:class:`TrainingResult` is what :func:`lesde.nn.train_and_record` (one network) and
:func:`lesde.nn.train_ensemble` (R independently seeded networks) return. It is laid out like
:class:`lesde.Result`, a leading replica axis on every record, so the estimators, the
paper's pipeline, plots and metrics take it as they take a simulation with replicas.
:class:`ImpactTrack` holds the impact matrices measured during training, with the same
replica axis (:mod:`lesde.nn.impact_track`). Both are saved in lesde's ``.npz`` layout
(:mod:`lesde.nn.training_file`) and read back by :func:`load_training` without PyTorch; what a
training needs in memory is counted in :mod:`lesde.nn.memory`.

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

from ..sim.result import final_values
from .impact_track import ImpactTrack, pad_records
from .memory import check_training_memory, training_record_bytes
from .training_file import TRAINING_FORMAT_VERSION, read_training, write_training

# ImpactTrack, TRAINING_FORMAT_VERSION and the memory counts are documented here too.
__all__ = [
    "TRAINING_FORMAT_VERSION",
    "ImpactTrack",
    "TrainingResult",
    "check_training_memory",
    "load_training",
    "stepped_class_means",
    "training_record_bytes",
]


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
            return np.concatenate([pad_records(getattr(r, name), T, axis, np.nan) for r in results])

        stepped = all(r.stepped_indices is not None for r in results)
        if stepped:
            n_steps = max(r.stepped_indices.shape[1] for r in results)
            stepped_indices = np.concatenate(
                [pad_records(r.stepped_indices, n_steps, 1, -1) for r in results]
            )
            stepped_logits = np.concatenate(
                [pad_records(r.stepped_logits, n_steps, 1, np.nan) for r in results]
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
                name: np.concatenate([pad_records(r.metrics[name], T, 1, np.nan) for r in results])
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
        """Write an ``.npz`` file atomically (read back with :func:`load_training`; the
        layout is :mod:`lesde.nn.training_file`)."""
        write_training(self, path)


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
    return TrainingResult(**read_training(path))
