"""Train a real network with plain SGD and measure what the LE-SDE models (needs PyTorch).

The paper's claims are about real networks; this module connects the simulator to them:

- :class:`LeNet`: the small CNN of the paper's experiments (2 convolutional + 3 linear layers).
- :func:`train_and_record`: plain SGD, one sample per step by default, recording the logits
  of every training sample (class means for large sets), train and validation loss and
  accuracy, and optionally the measured impact matrix. Its :class:`TrainingResult` has the
  layout of :class:`lesde.Result` (``times``, ``class_means`` of shape (1, T, K, K),
  ``metrics`` of shape (1, T)), so :mod:`lesde.estimate` and :mod:`lesde.plot` accept it.
- :func:`impact_matrix`: the empirical impact matrix: one SGD step at an input, the change of
  every other input's logits projected on the stepped input's signal direction
  ``g = e_y - softmax(f)``, averaged per class pair, with bootstrap confidence intervals.

Time is measured as in the SGD imitation (MODEL.md section 2a): ``t = step * lr``, so the
rates fitted here are on the simulator's time scale.

Install with ``pip install 'lesde[nn]'`` (PyTorch 2.13.0, CPU build).

Examples
--------
>>> import lesde.data, lesde.nn
>>> data = lesde.data.geometric_shapes(20, size=16, seed=0)
>>> net = lesde.nn.LeNet(n_classes=3, image_size=16, seed=0)
>>> res = lesde.nn.train_and_record(net, data, lr=0.01, steps=40, record_every=20,
...                                 progress=False)
>>> res.class_means.shape  # (replica, record, class, logit)
(1, 3, 3, 3)
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:
    import torch
    from torch import nn as _tnn
    from torch.func import functional_call
except ImportError as _err:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "lesde.nn needs PyTorch: pip install 'lesde[nn]' (installs torch==2.13.0, CPU build)"
    ) from _err

from . import metrics as _metrics
from .data import Dataset, corrupt_labels

__all__ = [
    "ImpactMatrix",
    "ImpactTrack",
    "LeNet",
    "TrainingResult",
    "impact_matrix",
    "load_training",
    "train_and_record",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_LOGITS_BUDGET_BYTES = 256 * 2**20  # record all logits below this, class means above
_EVAL_BATCH = 1024
TRAINING_FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- the model
class LeNet(_tnn.Module):
    """LeNet-style CNN: two 5x5 convolutions with max pooling, then three linear layers.

    ``conv(C->6) - ReLU - pool - conv(6->16) - ReLU - pool - linear(->120) - ReLU -
    linear(->84) - ReLU - linear(->K)``, the network of the paper's experiments. Inputs are
    ``(batch, in_channels, image_size, image_size)``; outputs are the K logits.

    Parameters
    ----------
    n_classes : int
        Number of logits K.
    in_channels : int
        1 for the shapes data, 3 for CIFAR-10.
    image_size : int
        Height = width of the inputs (>= 16 for two 5x5 convolutions with pooling).
    seed : int
        Seeds the initial weights (PyTorch's default initialisation), without touching
        the global random state: the same seed gives the same network.
    dtype : {"float32", "float64"}
        Parameter precision.
    input_mean, input_std : float or sequence of per-channel floats
        Inputs are standardised as ``(x - input_mean) / input_std`` inside the network
        (fixed buffers, not trained), e.g. from :meth:`lesde.data.Dataset.channel_stats`.
        Centred inputs shorten the initial plateau of plain SGD several-fold.

    Examples
    --------
    >>> net = LeNet(n_classes=3, in_channels=1, image_size=32, seed=0)
    >>> net(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 3])
    >>> sum(p.numel() for p in net.parameters())
    61111
    """

    def __init__(
        self,
        n_classes: int = 3,
        in_channels: int = 1,
        image_size: int = 32,
        seed: int = 0,
        dtype: str = "float32",
        input_mean=0.0,
        input_std=1.0,
    ):
        super().__init__()
        _int_at_least("LeNet: n_classes", n_classes, 2)
        _int_at_least("LeNet: in_channels", in_channels, 1)
        _int_at_least("LeNet: image_size", image_size, 16)
        torch_dtype = _torch_dtype(dtype)
        side = ((image_size - 4) // 2 - 4) // 2  # two valid 5x5 convolutions, each pooled by 2
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.features = _tnn.Sequential(
                _tnn.Conv2d(in_channels, 6, 5),
                _tnn.ReLU(),
                _tnn.MaxPool2d(2),
                _tnn.Conv2d(6, 16, 5),
                _tnn.ReLU(),
                _tnn.MaxPool2d(2),
                _tnn.Flatten(),
            )
            self.classifier = _tnn.Sequential(
                _tnn.Linear(16 * side * side, 120),
                _tnn.ReLU(),
                _tnn.Linear(120, 84),
                _tnn.ReLU(),
                _tnn.Linear(84, n_classes),
            )
        mean = np.broadcast_to(np.asarray(input_mean, dtype=np.float64), (in_channels,))
        std = np.broadcast_to(np.asarray(input_std, dtype=np.float64), (in_channels,))
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError(
                f"LeNet: input_mean must be finite and input_std positive, got {input_mean!r}, "
                f"{input_std!r}"
            )
        self.register_buffer("input_mean", torch.tensor(mean).reshape(1, -1, 1, 1))
        self.register_buffer("input_std", torch.tensor(std).reshape(1, -1, 1, 1))
        self.to(torch_dtype)
        self.n_classes = int(n_classes)

    def forward(self, x):  # noqa: D102 - nn.Module protocol
        return self.classifier(self.features((x - self.input_mean) / self.input_std))


def _torch_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype) and dtype in _DTYPES.values():
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {tuple(_DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]


def _model_dtype(model) -> torch.dtype:
    params = list(model.parameters())
    if not params:
        raise ValueError("model has no parameters to train")
    return params[0].dtype


def _check_data(data, name="data") -> Dataset:
    if not isinstance(data, Dataset):
        raise TypeError(
            f"{name} must be a lesde.data.Dataset (e.g. lesde.data.geometric_shapes(...)), "
            f"got {type(data).__name__}"
        )
    return data


def _as_tensor(images: np.ndarray, dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).to(dtype)


@torch.no_grad()
def _logits(model, X: torch.Tensor, batch: int = _EVAL_BATCH) -> np.ndarray:
    """Logits of all rows of ``X`` in evaluation mode, as a float64 NumPy array."""
    was_training = model.training
    model.eval()
    try:
        out = [model(X[i : i + batch]) for i in range(0, X.shape[0], batch)]
    finally:
        model.train(was_training)
    return torch.cat(out).to(torch.float64).numpy()


# ----------------------------------------------------------------------------- impact
@dataclass(eq=False)
class ImpactMatrix:
    """The measured impact matrix of a network at one moment of training.

    ``matrix[k, k']`` is the mean, over stepped inputs of class k' and target inputs of
    class k, of ``(Δf_target · g) / (lr |g|^2)``: the move of the target's logits along the
    stepped input's signal direction ``g = e_y - softmax(f)``, per unit of step. By
    MODEL.md section 1 it estimates ``E[k, k']``. ``alpha_hat`` is the mean of the diagonal,
    ``beta_hat`` the mean off it; ``*_ci`` are two-way bootstrap percentile intervals
    (stepped inputs and targets resampled within their classes) at level ``confidence``,
    ``difference_ci`` the interval of ``alpha_hat - beta_hat``. Stepped inputs whose softmax
    has saturated (``|g|^2`` below machine epsilon: no direction to project on) are left
    out; ``dropped_inputs`` counts them.
    """

    matrix: np.ndarray
    alpha_hat: float
    beta_hat: float
    ratio: float
    alpha_ci: tuple[float, float]
    beta_ci: tuple[float, float]
    ratio_ci: tuple[float, float]
    difference_ci: tuple[float, float]
    confidence: float
    pairwise: np.ndarray  # (S, M) impact of stepped input s on target m
    input_indices: np.ndarray  # (S,) rows of the data set that were stepped
    target_indices: np.ndarray  # (M,) rows whose logits were watched
    input_classes: np.ndarray  # (S,)
    target_classes: np.ndarray  # (M,)
    lr: float
    dropped_inputs: int = 0

    @property
    def locally_elastic(self) -> bool:
        """True when the whole confidence interval of ``alpha_hat - beta_hat`` lies above 0.

        The difference, not the ratio: the ratio's meaning flips when beta is negative.
        """
        return bool(self.difference_ci[0] > 0.0)

    def __repr__(self) -> str:
        lvl = f"{100 * self.confidence:g}%"
        return (
            f"ImpactMatrix(alpha_hat={self.alpha_hat:.4g} [{self.alpha_ci[0]:.4g}, "
            f"{self.alpha_ci[1]:.4g}], beta_hat={self.beta_hat:.4g} [{self.beta_ci[0]:.4g}, "
            f"{self.beta_ci[1]:.4g}], ratio={self.ratio:.3g} [{self.ratio_ci[0]:.3g}, "
            f"{self.ratio_ci[1]:.3g}] ({lvl}), inputs={self.pairwise.shape[0]}, "
            f"targets={self.pairwise.shape[1]})"
        )


def _alpha_beta(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the diagonal and of the off-diagonal entries, over the last two axes."""
    K = matrix.shape[-1]
    off = ~np.eye(K, dtype=bool)
    with warnings.catch_warnings():  # a class without usable stepped inputs is all NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        alpha = np.nanmean(np.einsum("...kk->...k", matrix), axis=-1)
        beta = np.nanmean(matrix[..., off], axis=-1)
    return alpha, beta


def _class_block_means(pairwise, input_classes, target_classes, K, w_in=None, w_tg=None):
    """``matrix[..., k, k']``: weighted mean of ``pairwise`` over targets of class k and
    stepped inputs of class k'. Weights (bootstrap counts) have a leading batch axis."""
    if w_in is None:
        w_in = np.ones((1, pairwise.shape[0]))
        w_tg = np.ones((1, pairwise.shape[1]))
    out = np.empty((w_in.shape[0], K, K))
    for kp in range(K):
        rows = input_classes == kp
        for k in range(K):
            cols = target_classes == k
            block = pairwise[np.ix_(rows, cols)]  # (S_kp, M_k)
            num = np.einsum("bs,sm,bm->b", w_in[:, rows], block, w_tg[:, cols])
            den = w_in[:, rows].sum(axis=1) * w_tg[:, cols].sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, k, kp] = num / den  # NaN for a class with no stepped input
    return out


def _bootstrap_counts(classes: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """Multinomial resampling counts, (n_boot, len(classes)), stratified by class."""
    counts = np.zeros((n_boot, classes.size))
    for k in np.unique(classes):
        idx = np.flatnonzero(classes == k)
        counts[:, idx] = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size), n_boot)
    return counts


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return (math.nan, math.nan)
    q = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, [q, 1.0 - q])
    return (float(lo), float(hi))


def impact_matrix(
    model,
    data: Dataset,
    lr: float,
    *,
    labels=None,
    inputs_per_class: int = 20,
    targets_per_class: int = 100,
    seed: int = 0,
    confidence: float = 0.95,
    n_boot: int = 2000,
) -> ImpactMatrix:
    """Measure the impact matrix E of a network: how a step at one input moves the others.

    For each stepped input j (``inputs_per_class`` drawn per class), take one plain SGD step
    of size ``lr`` on its cross-entropy loss, starting from the current weights (the model
    is left unchanged), and record the change ``Δf_i`` of the logits of every target input
    i (``targets_per_class`` per class, disjoint from the stepped ones). Project it on the
    stepped input's signal direction ``g_j = e_{y_j} - softmax(f_j)`` (MODEL.md: a step at j
    moves i by ``lr E[c_i, c_j] g_j`` to first order) and average per class pair:

        E_hat[k, k'] = mean over c_j = k', c_i = k of (Δf_i · g_j) / (lr |g_j|^2)

    Parameters
    ----------
    model : torch.nn.Module
        Maps images (n, C, H, W) to K logits. Evaluated in eval mode.
    data : lesde.data.Dataset
        Inputs; class pairs are by true class (``data.labels``).
    lr : float
        The SGD step size (the one used in training, for a local measurement).
    labels : array_like, optional
        Training labels of ``data`` used for the stepped input's loss (e.g. corrupted
        labels); default ``data.labels``.
    inputs_per_class, targets_per_class : int
        Sample sizes (capped by the class sizes; inputs and targets never overlap).
    seed : int
        Chooses the inputs and targets and seeds the bootstrap.
    confidence : float
        Level of the bootstrap percentile intervals.
    n_boot : int
        Bootstrap resamples (two-way: stepped inputs and targets, within classes).

    Returns
    -------
    ImpactMatrix

    Examples
    --------
    >>> import lesde.data
    >>> data = lesde.data.geometric_shapes(30, size=16, seed=1)
    >>> net = LeNet(n_classes=3, image_size=16, seed=0)
    >>> E = impact_matrix(net, data, lr=0.05, inputs_per_class=4, targets_per_class=10)
    >>> E.matrix.shape, E.pairwise.shape
    ((3, 3), (12, 30))
    """
    data = _check_data(data)
    lr = _step_size(lr)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    _int_at_least("inputs_per_class", inputs_per_class)
    _int_at_least("targets_per_class", targets_per_class)
    _int_at_least("n_boot", n_boot)
    K = data.n_classes
    y = data.labels if labels is None else _check_train_labels(labels, data)
    rng = np.random.default_rng(seed)
    inputs, targets = [], []
    for k in range(K):
        members = rng.permutation(np.flatnonzero(data.labels == k))
        if members.size < 2:
            raise ValueError(f"class {k} has {members.size} inputs; impact_matrix needs >= 2")
        n_in = min(inputs_per_class, members.size - 1)
        inputs.append(members[:n_in])
        targets.append(members[n_in : n_in + targets_per_class])
    inputs, targets = np.concatenate(inputs), np.concatenate(targets)

    dtype = _model_dtype(model)
    X_in = _as_tensor(data.images[inputs], dtype)
    X_tg = _as_tensor(data.images[targets], dtype)
    y_in = torch.from_numpy(np.asarray(y[inputs], dtype=np.int64))
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    was_training = model.training
    model.eval()
    pairwise = np.empty((inputs.size, targets.size))
    try:
        with torch.no_grad():
            f_tg = functional_call(model, (params, buffers), (X_tg,))
            f_in = functional_call(model, (params, buffers), (X_in,))
        g_in = torch.nn.functional.one_hot(y_in, K).to(dtype) - torch.softmax(f_in, dim=1)
        for s in range(inputs.size):
            live = {n: p.clone().requires_grad_(True) for n, p in params.items()}
            out = functional_call(model, (live, buffers), (X_in[s : s + 1],))
            loss = torch.nn.functional.cross_entropy(out, y_in[s : s + 1])
            grads = torch.autograd.grad(loss, list(live.values()))
            with torch.no_grad():
                stepped = {n: p - lr * g for (n, p), g in zip(params.items(), grads, strict=True)}
                delta = functional_call(model, (stepped, buffers), (X_tg,)) - f_tg
                g = g_in[s]
                pairwise[s] = ((delta @ g) / (lr * (g @ g))).to(torch.float64).numpy()
    finally:
        model.train(was_training)

    in_cls, tg_cls = data.labels[inputs], data.labels[targets]
    usable = (g_in * g_in).sum(dim=1).to(torch.float64).numpy() > torch.finfo(dtype).eps
    dropped = int(np.sum(~usable))
    if dropped == usable.size:
        raise ValueError(
            "impact_matrix: every stepped input has a saturated softmax (g = e_y - softmax(f) "
            "is 0 to machine precision), so no impact can be measured; use float64 or a "
            "less confident model"
        )
    if dropped:
        warnings.warn(
            f"impact_matrix: {dropped} of {usable.size} stepped inputs have a saturated "
            "softmax (|g|^2 below machine epsilon) and are left out",
            RuntimeWarning,
            stacklevel=2,
        )
    pairwise[~usable] = np.nan
    matrix = _class_block_means(pairwise[usable], in_cls[usable], tg_cls, K)[0]
    alpha, beta = (float(v) for v in _alpha_beta(matrix))
    boot_rng = np.random.default_rng([seed, 1])
    boot = _class_block_means(
        pairwise[usable],
        in_cls[usable],
        tg_cls,
        K,
        _bootstrap_counts(in_cls[usable], n_boot, boot_rng),
        _bootstrap_counts(tg_cls, n_boot, boot_rng),
    )
    a_b, b_b = _alpha_beta(boot)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_b = a_b / b_b
        ratio = alpha / beta if beta != 0 else math.copysign(math.inf, alpha)
    return ImpactMatrix(
        matrix=matrix,
        alpha_hat=alpha,
        beta_hat=beta,
        ratio=float(ratio),
        alpha_ci=_interval(a_b, confidence),
        beta_ci=_interval(b_b, confidence),
        ratio_ci=_interval(ratio_b, confidence),
        difference_ci=_interval(a_b - b_b, confidence),
        confidence=float(confidence),
        pairwise=pairwise,
        input_indices=inputs,
        target_indices=targets,
        input_classes=in_cls,
        target_classes=tg_cls,
        lr=lr,
        dropped_inputs=dropped,
    )


@dataclass(eq=False)
class ImpactTrack:
    """Impact matrices measured during training (``train_and_record(impact_every=...)``).

    Arrays are indexed by measurement: ``times`` (S,), ``steps`` (S,), ``matrices``
    (S, K, K), ``alpha_hat``/``beta_hat``/``ratio`` (S,) and their intervals (S, 2),
    ``difference_ci`` (S, 2) the intervals of ``alpha_hat - beta_hat``, ``dropped_inputs``
    (S,) the stepped inputs left out for a saturated softmax (reported here, not warned).
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

    _FIELDS = ("times", "steps", "matrices", "alpha_hat", "beta_hat", "ratio")
    _FIELDS += ("alpha_ci", "beta_ci", "ratio_ci", "difference_ci", "dropped_inputs")

    @classmethod
    def collect(cls, steps, lr, measured: list[ImpactMatrix]) -> ImpactTrack:
        steps = np.asarray(steps, dtype=np.int64)
        return cls(
            times=steps * lr,
            steps=steps,
            matrices=np.array([m.matrix for m in measured]),
            alpha_hat=np.array([m.alpha_hat for m in measured]),
            beta_hat=np.array([m.beta_hat for m in measured]),
            ratio=np.array([m.ratio for m in measured]),
            alpha_ci=np.array([m.alpha_ci for m in measured]).reshape(-1, 2),
            beta_ci=np.array([m.beta_ci for m in measured]).reshape(-1, 2),
            ratio_ci=np.array([m.ratio_ci for m in measured]).reshape(-1, 2),
            difference_ci=np.array([m.difference_ci for m in measured]).reshape(-1, 2),
            dropped_inputs=np.array([m.dropped_inputs for m in measured], dtype=np.int64),
            confidence=measured[0].confidence if measured else 0.95,
        )


# ----------------------------------------------------------------------------- training
@dataclass(eq=False)
class TrainingResult:
    """What :func:`train_and_record` returns: the records of one network's training.

    Laid out like :class:`lesde.Result` with one replica, so the estimators
    (:func:`lesde.estimate.impact_integrals` takes ``res.class_means[0]``, or use
    :func:`lesde.estimate.fit`) and plots (:func:`lesde.plot.metric_over_time`,
    :func:`lesde.plot.class_means_3d`) accept it directly.

    Attributes
    ----------
    times : (T,) record times ``t = step * lr``; steps : (T,) SGD steps
    class_means : (1, T, K, K) mean logits by true class
    label_means : (1, T, K, K) mean logits by training label
    metrics : dict name -> (1, T) array: loss, accuracy (against the training labels),
        clean_accuracy (against the true classes), ncc_accuracy, nc1, nc4, equinorm,
        equiangularity, etf_distance, coherence, and val_loss, val_accuracy with
        validation data
    features : (1, N, K) logits of the training samples at the last record
    classes : (N,) true classes; labels : (1, N) training labels (corrupted if asked)
    logits : (T, N, K) all recorded logits, or None (class means only, for large sets)
    impact : ImpactTrack or None
    status : (1,) "ok" or "nonfinite"; fail_step : (1,) step of failure or -1
    steps_done, interrupted, meta (settings, versions, wall time)
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

    @property
    def ok(self) -> bool:
        """True when training finished with finite values and was not interrupted."""
        return not self.interrupted and bool(np.all(self.status == "ok"))

    @property
    def title(self) -> str:
        """One line naming the run, used by :mod:`lesde.plot`."""
        m = self.meta
        return (
            f"{m.get('model', 'network')}, SGD lr = {m.get('lr', float('nan')):g}, "
            f"batch {m.get('batch_size', '?')}, p_err = {m.get('label_noise', 0):g}"
        )

    def final(self, name: str) -> float:
        """The last finite record of metric ``name``.

        Examples
        --------
        >>> import lesde.data
        >>> data = lesde.data.geometric_shapes(10, size=16)
        >>> res = train_and_record(LeNet(image_size=16), data, lr=0.01, steps=10,
        ...                        record_every=5, progress=False)
        >>> 0.0 <= res.final("accuracy") <= 1.0
        True
        """
        from .result import final_values

        return float(final_values(self.metrics, name)[0])

    def summary(self) -> dict[str, float]:
        """Each metric's final value, the time reached and the run's status."""
        out: dict[str, Any] = {name: self.final(name) for name in self.metrics}
        out["t_end"] = float(self.times[-1]) if self.times.size else 0.0
        out["status"] = str(self.status[0])
        return out

    def __repr__(self) -> str:
        return (
            f"TrainingResult(records={self.times.size}, steps={self.steps_done}, "
            f"t={self.times[-1] if self.times.size else 0:g}, status={self.status[0]!r}, "
            f"logits={'recorded' if self.logits is not None else 'class means only'})"
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write an ``.npz`` file atomically (read back with :func:`load_training`)."""
        from .storage import atomic_savez

        payload = {
            name: np.asarray(getattr(self, name))
            for name in ("times", "steps", "class_means", "label_means", "features")
        }
        payload.update(classes=self.classes, labels=self.labels, fail_step=self.fail_step)
        payload["status"] = self.status.astype(str)
        if self.logits is not None:
            payload["logits"] = self.logits
        for name, values in self.metrics.items():
            payload[f"metric__{name}"] = values
        if self.impact is not None:
            for name in ImpactTrack._FIELDS:
                payload[f"impact__{name}"] = getattr(self.impact, name)
        header = {
            "format_version": TRAINING_FORMAT_VERSION,
            "kind": "lesde.nn.TrainingResult",
            "steps_done": self.steps_done,
            "interrupted": self.interrupted,
            "impact_confidence": self.impact.confidence if self.impact is not None else None,
            "meta": self.meta,
        }
        payload["header"] = np.array(json.dumps(header))
        atomic_savez(path, payload)


def load_training(path: str | os.PathLike) -> TrainingResult:
    """Read a :class:`TrainingResult` written by :meth:`TrainingResult.save` (no pickle).

    Examples
    --------
    >>> import lesde.data, tempfile, os
    >>> res = train_and_record(LeNet(image_size=16), lesde.data.geometric_shapes(5, size=16),
    ...                        lr=0.01, steps=4, record_every=2, progress=False)
    >>> p = os.path.join(tempfile.mkdtemp(), "train.npz")
    >>> res.save(p)
    >>> load_training(p).class_means.shape == res.class_means.shape
    True
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no training result file at {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            stored = {name: f[name] for name in f.files}
        header = json.loads(str(stored.pop("header")[()]))
    except Exception as err:
        raise ValueError(
            f"{path}: not a readable lesde training result ({type(err).__name__}: {err})"
        ) from None
    if header.get("kind") != "lesde.nn.TrainingResult":
        raise ValueError(f"{path}: not a lesde.nn training result (kind {header.get('kind')!r})")
    if header.get("format_version") != TRAINING_FORMAT_VERSION:
        raise ValueError(
            f"{path}: training result format {header.get('format_version')} cannot be read "
            f"(this lesde reads {TRAINING_FORMAT_VERSION})"
        )
    metrics = {k[len("metric__") :]: v for k, v in stored.items() if k.startswith("metric__")}
    impact = None
    if "impact__times" in stored:
        impact = ImpactTrack(
            **{n: stored[f"impact__{n}"] for n in ImpactTrack._FIELDS},
            confidence=float(header["impact_confidence"]),
        )
    try:
        return TrainingResult(
            times=stored["times"],
            steps=stored["steps"],
            class_means=stored["class_means"],
            label_means=stored["label_means"],
            metrics=metrics,
            features=stored["features"],
            classes=stored["classes"],
            labels=stored["labels"],
            logits=stored.get("logits"),
            impact=impact,
            status=stored["status"].astype(str),
            fail_step=stored["fail_step"],
            steps_done=int(header["steps_done"]),
            interrupted=bool(header["interrupted"]),
            meta=header.get("meta", {}),
        )
    except KeyError as err:
        raise ValueError(f"{path}: incomplete training result, missing {err}") from None


def _check_train_labels(labels, data: Dataset) -> np.ndarray:
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" or y.shape != (len(data),):
        raise ValueError(
            f"labels must be an integer array of shape ({len(data)},), got {y.dtype} {y.shape}"
        )
    if y.size and (y.min() < 0 or y.max() >= data.n_classes):
        raise ValueError(f"labels must lie in [0, {data.n_classes}), got [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def _record_metrics(logits, labels, classes, K) -> dict[str, float]:
    """Loss, accuracies and neural-collapse metrics of one record (lesde.metrics)."""
    out = {
        "loss": _metrics.loss(logits, labels),
        "accuracy": _metrics.accuracy(logits, labels),
        "clean_accuracy": _metrics.accuracy(logits, classes),
        "ncc_accuracy": _metrics.ncc_accuracy(logits, labels, K),
        "nc4": _metrics.nc4(logits, labels, n_classes=K),
    }
    with np.errstate(all="ignore"):
        out["nc1"] = _metrics.nc1(logits, labels, K)
        out.update(_metrics.nc2(logits, labels, K))
    return {k: float(v) for k, v in out.items()}


def _real(name, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None


def _step_size(lr) -> float:
    lr = _real("lr", lr)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    return lr


def _int_at_least(name, value, low=1, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def train_and_record(
    model,
    data: Dataset,
    lr: float,
    steps: int,
    *,
    batch_size: int = 1,
    label_noise: float = 0.0,
    record_every: int | None = None,
    validation: Dataset | None = None,
    seed: int = 0,
    dtype: str | None = None,
    record_logits: bool | str = "auto",
    impact_every: int | None = None,
    impact_options: dict | None = None,
    progress: bool | None = None,
) -> TrainingResult:
    """Train ``model`` with plain SGD and record the quantities the LE-SDE describes.

    Each step draws ``batch_size`` training inputs uniformly with replacement (the paper:
    one sample per step) and takes ``theta <- theta - lr * grad`` of their mean
    cross-entropy, no momentum or weight decay. At step 0, every ``record_every`` steps
    and at the end, the logits of all training samples are computed (eval mode, no
    gradient) and reduced to class means and metrics. The model is trained in place.

    Parameters
    ----------
    model : torch.nn.Module
        Maps (n, C, H, W) images to K logits, e.g. :class:`LeNet`.
    data : lesde.data.Dataset
        Training inputs with their true classes.
    lr : float
        SGD step size; record times are ``t = step * lr`` (MODEL.md section 2a).
    steps : int
        Number of SGD steps.
    batch_size : int
        Inputs per step (default 1, as in the paper).
    label_noise : float in [0, 1]
        p_err: each training label is replaced, with this probability, by one of the other
        K - 1 classes (:func:`lesde.data.corrupt_labels`, seeded by ``seed``). ``accuracy``
        and ``loss`` are measured against these labels, ``clean_accuracy`` against the true
        classes; validation labels stay clean.
    record_every : int, optional
        Steps between records; default ``max(1, steps // 100)``.
    validation : lesde.data.Dataset, optional
        Held-out data: adds ``val_loss`` and ``val_accuracy``.
    seed : int
        Seeds the sampling of steps and the label corruption (the weights are the model's).
    dtype : {"float32", "float64"}, optional
        Convert the model (in place) and the inputs to this precision; default: the
        model's own.
    record_logits : bool or "auto"
        Keep the logits of every sample at every record (``res.logits``, (T, N, K)); "auto"
        keeps them below 256 MiB, otherwise only class means and metrics are kept.
    impact_every : int, optional
        Also measure :func:`impact_matrix` every this many steps (and at the end);
        ``impact_options`` are passed to it (``inputs_per_class``, ``targets_per_class``,
        ``n_boot``, ``confidence``, ``seed``).
    progress : bool, optional
        tqdm progress bar; ``None`` shows one for runs expected to last over a second.

    Returns
    -------
    TrainingResult
        Also on Ctrl-C (``interrupted=True``, the records so far). If the loss becomes
        NaN or infinite, training stops there with ``status == "nonfinite"`` and the
        records before it.

    Examples
    --------
    >>> import lesde.data
    >>> data = lesde.data.geometric_shapes(20, size=16, seed=0)
    >>> train, val = data.split(0.25, seed=0)
    >>> res = train_and_record(LeNet(image_size=16, seed=0), train, lr=0.02, steps=30,
    ...                        record_every=10, validation=val, label_noise=0.1,
    ...                        progress=False)
    >>> res.metrics["val_accuracy"].shape, float(res.times[-1])
    ((1, 4), 0.6)
    """
    from .engine import Progress

    data = _check_data(data)
    if validation is not None:
        validation = _check_data(validation, "validation")
        if validation.n_classes != data.n_classes:
            raise ValueError(
                f"validation has {validation.n_classes} classes, data has {data.n_classes}"
            )
    lr = _step_size(lr)
    steps = _int_at_least("steps", steps)
    batch_size = _int_at_least("batch_size", batch_size)
    record_every = _int_at_least("record_every", record_every, allow_none=True)
    record_every = record_every or max(1, steps // 100)
    impact_every = _int_at_least("impact_every", impact_every, allow_none=True)
    if not 0.0 <= _real("label_noise", label_noise) <= 1.0:
        raise ValueError(f"label_noise must lie in [0, 1], got {label_noise}")
    if not (isinstance(record_logits, bool) or record_logits == "auto"):
        raise ValueError(f"record_logits must be True, False or 'auto', got {record_logits!r}")
    if dtype is not None:
        model.to(_torch_dtype(dtype))
    tdtype = _model_dtype(model)

    K, N = data.n_classes, len(data)
    with torch.no_grad():
        probe = model(_as_tensor(data.images[:1], tdtype))
    if probe.shape != (1, K):
        raise ValueError(f"model must output {K} logits per input, got shape {tuple(probe.shape)}")
    classes = data.labels
    labels = corrupt_labels(classes, float(label_noise), K, seed=seed) if label_noise else classes
    X = _as_tensor(data.images, tdtype)
    y = torch.from_numpy(labels)
    X_val = _as_tensor(validation.images, tdtype) if validation is not None else None

    record_steps = np.unique(np.r_[np.arange(0, steps, record_every), steps])
    T = record_steps.size
    keep_logits = record_logits is True or (
        record_logits == "auto" and T * N * K * 8 <= _LOGITS_BUDGET_BYTES
    )
    names = ["loss", "accuracy", "clean_accuracy", "ncc_accuracy", "nc4", "nc1"]
    names += ["equinorm", "equiangularity", "etf_distance", "coherence"]
    if validation is not None:
        names += ["val_loss", "val_accuracy"]
    metrics = {n: np.full((1, T), np.nan) for n in names}
    class_means = np.full((1, T, K, K), np.nan)
    label_means = np.full((1, T, K, K), np.nan)
    all_logits = np.full((T, N, K), np.nan) if keep_logits else None
    features = np.full((1, N, K), np.nan)
    impact_steps: list[int] = []
    impacts: list[ImpactMatrix] = []
    impact_opts = {"seed": seed, **(impact_options or {})}
    if "labels" in impact_opts:
        raise ValueError("impact_options cannot set labels: the training labels are used")

    def record(j: int) -> bool:
        f = _logits(model, X)
        if not np.all(np.isfinite(f)):
            return False
        features[0] = f
        if keep_logits:
            all_logits[j] = f
        class_means[0, j] = _metrics.class_means(f, classes, K)
        label_means[0, j] = _metrics.class_means(f, labels, K)
        for name, value in _record_metrics(f, labels, classes, K).items():
            metrics[name][0, j] = value
        if X_val is not None:
            fv = _logits(model, X_val)
            metrics["val_loss"][0, j] = _metrics.loss(fv, validation.labels)
            metrics["val_accuracy"][0, j] = _metrics.accuracy(fv, validation.labels)
        return True

    rng = np.random.default_rng([seed, 2])
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    bar = Progress(steps, progress)
    status, fail_step, interrupted, done, next_record = "ok", -1, False, 0, 0
    start = time.perf_counter()
    was_training = model.training
    model.train()
    try:
        for step in range(steps + 1):
            if step == record_steps[next_record]:
                if not record(next_record):
                    status, fail_step = "nonfinite", step
                    break
                next_record += 1
            if impact_every and (step % impact_every == 0 or step == steps):
                with warnings.catch_warnings():  # saturated inputs: counted in the track
                    warnings.simplefilter("ignore", RuntimeWarning)
                    impacts.append(impact_matrix(model, data, lr, labels=labels, **impact_opts))
                impact_steps.append(step)
            if step == steps:
                break
            batch = torch.from_numpy(rng.integers(0, N, size=batch_size))
            loss = loss_fn(model(X[batch]), y[batch])
            if not torch.isfinite(loss):
                status, fail_step = "nonfinite", step
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done = step + 1
            if done % 64 == 0:
                bar.update(done)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        model.train(was_training)
    T_done = next_record
    cut = slice(0, T_done)
    return TrainingResult(
        times=record_steps[cut] * lr,
        steps=record_steps[cut],
        class_means=class_means[:, cut],
        label_means=label_means[:, cut],
        metrics={n: v[:, cut] for n, v in metrics.items()},
        features=features,
        classes=classes.copy(),
        labels=labels[None, :].copy(),
        logits=all_logits[cut] if keep_logits else None,
        impact=ImpactTrack.collect(impact_steps, lr, impacts) if impacts else None,
        status=np.array([status]),
        fail_step=np.array([fail_step]),
        steps_done=done,
        interrupted=interrupted,
        meta=_provenance(model, lr, batch_size, label_noise, seed, record_every, start),
    )


def _provenance(model, lr, batch_size, label_noise, seed, record_every, start) -> dict:
    from . import __version__

    return {
        "model": type(model).__name__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "dtype": str(_model_dtype(model)).replace("torch.", ""),
        "lr": lr,
        "batch_size": batch_size,
        "label_noise": float(label_noise),
        "seed": int(seed),
        "record_every": record_every,
        "lesde_version": __version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "wall_seconds": time.perf_counter() - start,
    }
