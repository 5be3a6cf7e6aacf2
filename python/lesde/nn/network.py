"""A real network and how to measure its impact matrix (needs PyTorch).

- :class:`LeNet`: the small CNN of the paper's experiments (2 convolutional + 3 linear
  layers).
- :func:`impact_matrix`: the empirical impact matrix: one SGD step at an input, the change
  of every other input's logits projected on the stepped input's signal direction
  ``g = e_y - softmax(f)``, averaged per class pair, with bootstrap confidence intervals
  (:class:`ImpactMatrix`).

The small helpers below them (:func:`torch_dtype`, :func:`model_dtype`,
:func:`check_dataset`, :func:`as_tensor`, :func:`eval_logits`) are shared with
:mod:`lesde.nn.training`. Users reach all of it through :mod:`lesde.nn`.

Examples
--------
>>> from lesde.data import geometric_shapes
>>> net = LeNet(n_classes=3, image_size=16, seed=0)
>>> E = impact_matrix(net, geometric_shapes(10, size=16), lr=0.05, inputs_per_class=2,
...                   targets_per_class=4, n_boot=50)
>>> E.matrix.shape
(3, 3)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

try:
    import torch
    from torch import nn as _tnn
    from torch.func import functional_call
except ImportError as _err:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "lesde.nn needs PyTorch: pip install 'lesde[nn]' (installs torch==2.13.0, CPU build)"
    ) from _err

from ..data.dataset import Dataset
from ..validate import choice, integer, real

__all__ = [
    "ImpactMatrix",
    "LeNet",
    "as_tensor",
    "check_dataset",
    "check_train_labels",
    "eval_logits",
    "impact_matrix",
    "model_dtype",
    "torch_dtype",
]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
EVAL_BATCH = 1024  # inputs per forward pass when only logits are needed


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
        n_classes = integer("LeNet: n_classes", n_classes, at_least=2)
        in_channels = integer("LeNet: in_channels", in_channels, at_least=1)
        image_size = integer("LeNet: image_size", image_size, at_least=16)
        parameter_dtype = torch_dtype(dtype)
        side = ((image_size - 4) // 2 - 4) // 2  # two valid 5x5 convolutions, each pooled by 2
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(integer("LeNet: seed", seed))
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
        self.to(parameter_dtype)
        self.n_classes = n_classes

    def forward(self, x):  # noqa: D102 - nn.Module protocol
        return self.classifier(self.features((x - self.input_mean) / self.input_std))


# ----------------------------------------------------------------------------- helpers
def torch_dtype(dtype) -> torch.dtype:
    """The torch dtype named by ``dtype`` ("float32" or "float64", or that torch dtype).

    Examples
    --------
    >>> torch_dtype("float64")
    torch.float64
    """
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    return DTYPES[choice("dtype", dtype, tuple(DTYPES))]


def model_dtype(model) -> torch.dtype:
    """The dtype of ``model``'s parameters (ValueError if it has none).

    Examples
    --------
    >>> model_dtype(torch.nn.Linear(2, 2))
    torch.float32
    """
    params = list(model.parameters())
    if not params:
        raise ValueError("model has no parameters to train")
    return params[0].dtype


def check_dataset(data, name="data") -> Dataset:
    """``data`` if it is a :class:`lesde.data.Dataset`, else a TypeError naming ``name``.

    Examples
    --------
    >>> check_dataset([1, 2])
    Traceback (most recent call last):
        ...
    TypeError: data must be a lesde.data.Dataset (e.g. lesde.data.geometric_shapes(...)), got list
    """
    if not isinstance(data, Dataset):
        raise TypeError(
            f"{name} must be a lesde.data.Dataset (e.g. lesde.data.geometric_shapes(...)), "
            f"got {type(data).__name__}"
        )
    return data


def as_tensor(images: np.ndarray, dtype) -> torch.Tensor:
    """``images`` as a torch tensor of ``dtype`` (no copy when it already fits).

    Examples
    --------
    >>> as_tensor(np.zeros((2, 1, 4, 4), dtype=np.float32), torch.float64).dtype
    torch.float64
    """
    return torch.from_numpy(np.ascontiguousarray(images)).to(dtype)


@torch.no_grad()
def eval_logits(model, X: torch.Tensor, batch: int = EVAL_BATCH) -> np.ndarray:
    """Logits of all rows of ``X`` in evaluation mode, as a float64 NumPy array; the
    model's train/eval mode is left as it was.

    Examples
    --------
    >>> eval_logits(torch.nn.Flatten(), torch.ones(3, 1, 2, 1)).shape
    (3, 2)
    """
    was_training = model.training
    model.eval()
    try:
        out = [model(X[i : i + batch]) for i in range(0, X.shape[0], batch)]
    finally:
        model.train(was_training)
    return torch.cat(out).to(torch.float64).numpy()


def check_train_labels(labels, data: Dataset) -> np.ndarray:
    """Training labels for ``data`` (e.g. corrupted ones) as int64, checked.

    Examples
    --------
    >>> from lesde.data import geometric_shapes
    >>> check_train_labels([0, 1, 2], geometric_shapes(1, size=16)).dtype
    dtype('int64')
    """
    y = np.asarray(labels)
    if y.dtype.kind not in "iu" or y.shape != (len(data),):
        raise ValueError(
            f"labels must be an integer array of shape ({len(data)},), got {y.dtype} {y.shape}"
        )
    if y.size and (y.min() < 0 or y.max() >= data.n_classes):
        raise ValueError(f"labels must lie in [0, {data.n_classes}), got [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


# ----------------------------------------------------------------------------- impact
@dataclass(eq=False)
class ImpactMatrix:
    """The measured impact matrix of a network at one moment of training.

    ``matrix[k, k']`` is the mean, over stepped inputs of class k' and target inputs of
    class k, of ``(Δf_target · g) / (lr |g|^2)``: the move of the target's logits along the
    stepped input's signal direction ``g = e_y - softmax(f)``, per unit of step. By
    docs/model.md section 1 it estimates ``E[k, k']``. ``alpha_hat`` is the mean of the diagonal,
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
    stepped input's signal direction ``g_j = e_{y_j} - softmax(f_j)`` (docs/model.md: a step at j
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
    data = check_dataset(data)
    lr = real("lr", lr, above=0)
    confidence = real("confidence", confidence, above=0, below=1)
    inputs_per_class = integer("inputs_per_class", inputs_per_class, at_least=1)
    targets_per_class = integer("targets_per_class", targets_per_class, at_least=1)
    n_boot = integer("n_boot", n_boot, at_least=1)
    K = data.n_classes
    y = data.labels if labels is None else check_train_labels(labels, data)
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

    dtype = model_dtype(model)
    X_in = as_tensor(data.images[inputs], dtype)
    X_tg = as_tensor(data.images[targets], dtype)
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
