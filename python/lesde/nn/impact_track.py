"""The impact matrices measured during training, one row per network (no PyTorch).

:class:`ImpactTrack` is what ``train_and_record(impact_every=...)`` keeps of the
:class:`lesde.nn.ImpactMatrix` measurements it takes: the matrices, the fitted
``alpha_hat``/``beta_hat`` and their bootstrap intervals, with the replica axis of a
:class:`lesde.nn.TrainingResult` (so an ensemble's tracks stack). :func:`pad_records` is the
padding both use when networks that stopped early are stacked with others.

Examples
--------
>>> from types import SimpleNamespace  # stands in for a lesde.nn.ImpactMatrix
>>> measured = SimpleNamespace(
...     matrix=np.eye(2), alpha_hat=1.0, beta_hat=0.0, ratio=np.inf, alpha_ci=(0.9, 1.1),
...     beta_ci=(-0.1, 0.1), ratio_ci=(9.0, np.inf), difference_ci=(0.8, 1.2),
...     dropped_inputs=0, confidence=0.95)
>>> short = ImpactTrack.collect([0], 0.1, [measured])
>>> full = ImpactTrack.collect([0, 10], 0.1, [measured, measured])
>>> ImpactTrack.stack([full, short]).alpha_hat.tolist()  # the short one padded with NaN
[[1.0, 1.0], [1.0, nan]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ImpactTrack", "pad_records"]


def pad_records(values: np.ndarray, length: int, axis: int, fill) -> np.ndarray:
    """``values`` extended along ``axis`` to ``length`` with ``fill`` (the records a network
    that stopped early did not reach, when networks are stacked).

    Examples
    --------
    >>> pad_records(np.array([[1.0, 2.0]]), 3, axis=1, fill=np.nan).tolist()
    [[1.0, 2.0, nan]]
    """
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
                    pad_records(getattr(tr, name), S, 1, -1 if name == "dropped_inputs" else np.nan)
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
