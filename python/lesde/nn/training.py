"""Train a real network with plain SGD and record what the LE-SDE models (needs PyTorch).

:func:`train_and_record` takes plain SGD steps, one sample per step by default, recording
the logits of every training sample (class means for large sets), train and validation
loss and accuracy, and optionally the measured impact matrix (:func:`lesde.nn.impact_matrix`).
Its :class:`~lesde.nn.training_result.TrainingResult` has the layout of :class:`lesde.Result`
(``times``, ``class_means`` of shape (1, T, K, K), ``metrics`` of shape (1, T)), so
:mod:`lesde.analysis.estimate` and :mod:`lesde.plot` accept it; it is saved and loaded without
PyTorch (:func:`lesde.nn.training_result.load_training`). :func:`lesde.nn.train_ensemble`
trains many such networks and stacks them along the replica axis.

Time is measured as in the SGD imitation (docs/model.md section 2a): ``t = step * lr``, so the
rates fitted here are on the simulator's time scale. Users reach it through :mod:`lesde.nn`.

Examples
--------
>>> from lesde.data import geometric_shapes
>>> from lesde.nn.network import LeNet
>>> res = train_and_record(LeNet(image_size=16), geometric_shapes(5, size=16), lr=0.01,
...                        steps=4, record_every=2, progress=False)
>>> res.times.tolist(), res.ok
([0.0, 0.02, 0.04], True)
"""

from __future__ import annotations

import time
import warnings

import numpy as np

try:
    import torch
except ImportError as _err:  # pragma: no cover - exercised only without torch
    raise ImportError(
        "lesde.nn needs PyTorch: pip install 'lesde[nn]' (installs torch==2.13.0, CPU build)"
    ) from _err

from .. import metrics
from ..data.dataset import Dataset, corrupt_labels
from ..sim.engine import Progress
from ..validate import integer, probability, real
from ..version import __version__
from .impact_track import ImpactTrack
from .memory import check_training_memory, training_record_bytes
from .network import (
    ImpactMatrix,
    as_tensor,
    check_dataset,
    eval_logits,
    impact_matrix,
    model_dtype,
    torch_dtype,
)
from .training_result import TrainingResult

__all__ = ["ImpactTrack", "TrainingResult", "train_and_record"]

LOGITS_BUDGET_BYTES = 256 * 2**20  # record all logits below this, class means above


def _record_metrics(logits, labels, classes, K) -> dict[str, float]:
    """Loss, accuracies and neural-collapse metrics of one record (lesde.metrics)."""
    out = {
        "loss": metrics.loss(logits, labels),
        "accuracy": metrics.accuracy(logits, labels),
        "clean_accuracy": metrics.accuracy(logits, classes),
        "ncc_accuracy": metrics.ncc_accuracy(logits, labels, K),
        "nc4": metrics.nc4(logits, labels, n_classes=K),
    }
    with np.errstate(all="ignore"):
        out["nc1"] = metrics.nc1(logits, labels, K)
        out.update(metrics.nc2(logits, labels, K))
    return {k: float(v) for k, v in out.items()}


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
    record_stepped: bool = False,
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
        Maps (n, C, H, W) images to K logits, e.g. :class:`lesde.nn.LeNet`.
    data : lesde.data.Dataset
        Training inputs with their true classes.
    lr : float
        SGD step size; record times are ``t = step * lr`` (docs/model.md section 2a).
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
    record_stepped : bool
        Also keep, at every step, which training sample was stepped and its logits in the
        forward pass of that step (``stepped_indices``, ``stepped_logits``): what the
        paper records (docs/model.md section 5). Costs nothing extra to compute; needs
        ``batch_size == 1``.
    progress : bool, optional
        tqdm progress bar; ``None`` shows one for runs expected to last over a second.

    Returns
    -------
    TrainingResult
        Also on Ctrl-C (``interrupted=True``, the records so far). If the loss becomes
        NaN or infinite, training stops there with ``status == "nonfinite"`` and the
        records before it.

    Raises
    ------
    lesde.sim.engine.InsufficientMemoryError
        Before anything is allocated, when the records would take over 90 % of the memory
        available (:func:`lesde.nn.memory.training_record_bytes`).

    Examples
    --------
    >>> import lesde.data
    >>> data = lesde.data.geometric_shapes(20, size=16, seed=0)
    >>> train, val = data.split(0.25, seed=0)
    >>> from lesde.nn.network import LeNet
    >>> res = train_and_record(LeNet(image_size=16, seed=0), train, lr=0.02, steps=30,
    ...                        record_every=10, validation=val, label_noise=0.1,
    ...                        progress=False)
    >>> res.metrics["val_accuracy"].shape, float(res.times[-1])
    ((1, 4), 0.6)
    """
    data = check_dataset(data)
    if validation is not None:
        validation = check_dataset(validation, "validation")
        if validation.n_classes != data.n_classes:
            raise ValueError(
                f"validation has {validation.n_classes} classes, data has {data.n_classes}"
            )
    lr = real("lr", lr, above=0)
    steps = integer("steps", steps, at_least=1)
    batch_size = integer("batch_size", batch_size, at_least=1)
    if record_every is None:
        record_every = max(1, steps // 100)
    record_every = integer("record_every", record_every, at_least=1)
    if impact_every is not None:
        impact_every = integer("impact_every", impact_every, at_least=1)
    label_noise = probability("label_noise", label_noise)
    if not isinstance(record_stepped, bool):
        raise TypeError(f"record_stepped must be True or False, got {record_stepped!r}")
    if record_stepped and batch_size != 1:
        raise ValueError(
            f"record_stepped needs batch_size = 1 (one stepped input per step), got {batch_size}"
        )
    if not (isinstance(record_logits, bool) or record_logits == "auto"):
        raise ValueError(f"record_logits must be True, False or 'auto', got {record_logits!r}")
    K, N = data.n_classes, len(data)
    check_training_memory(
        training_record_bytes(
            steps=steps,
            record_every=record_every,
            n_samples=N,
            n_classes=K,
            validation=validation is not None,
            impact_every=impact_every,
            record_stepped=record_stepped,
            record_logits=record_logits is True,
        ),
        f"the records of {steps} steps",
        "train fewer steps, record less often (record_every)"
        + (" or without stepped-input records (record_stepped=False)" if record_stepped else ""),
    )
    if dtype is not None:
        model.to(torch_dtype(dtype))
    tdtype = model_dtype(model)

    with torch.no_grad():
        probe = model(as_tensor(data.images[:1], tdtype))
    if probe.shape != (1, K):
        raise ValueError(f"model must output {K} logits per input, got shape {tuple(probe.shape)}")
    classes = data.labels
    labels = corrupt_labels(classes, label_noise, K, seed=seed) if label_noise else classes
    X = as_tensor(data.images, tdtype)
    y = torch.from_numpy(labels)
    X_val = as_tensor(validation.images, tdtype) if validation is not None else None

    record_steps = np.unique(np.r_[np.arange(0, steps, record_every), steps])
    T = record_steps.size
    keep_logits = record_logits is True or (
        record_logits == "auto" and T * N * K * 8 <= LOGITS_BUDGET_BYTES
    )
    names = ["loss", "accuracy", "clean_accuracy", "ncc_accuracy", "nc4", "nc1"]
    names += ["equinorm", "equiangularity", "etf_distance", "coherence"]
    if validation is not None:
        names += ["val_loss", "val_accuracy"]
    recorded = {n: np.full((1, T), np.nan) for n in names}  # metric name -> (1, T)
    class_means = np.full((1, T, K, K), np.nan)
    label_means = np.full((1, T, K, K), np.nan)
    all_logits = np.full((T, N, K), np.nan) if keep_logits else None
    features = np.full((1, N, K), np.nan)
    stepped_indices = np.full((1, steps), -1, dtype=np.int64) if record_stepped else None
    stepped_logits = np.full((1, steps, K), np.nan, dtype=np.float32) if record_stepped else None
    impact_steps: list[int] = []
    impacts: list[ImpactMatrix] = []
    impact_opts = {"seed": seed, **(impact_options or {})}
    if "labels" in impact_opts:
        raise ValueError("impact_options cannot set labels: the training labels are used")

    def record(j: int) -> bool:
        f = eval_logits(model, X)
        if not np.all(np.isfinite(f)):
            return False
        features[0] = f
        if keep_logits:
            all_logits[j] = f
        class_means[0, j] = metrics.class_means(f, classes, K)
        label_means[0, j] = metrics.class_means(f, labels, K)
        for name, value in _record_metrics(f, labels, classes, K).items():
            recorded[name][0, j] = value
        if X_val is not None:
            fv = eval_logits(model, X_val)
            recorded["val_loss"][0, j] = metrics.loss(fv, validation.labels)
            recorded["val_accuracy"][0, j] = metrics.accuracy(fv, validation.labels)
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
            out = model(X[batch])
            loss = loss_fn(out, y[batch])
            if not torch.isfinite(loss):
                status, fail_step = "nonfinite", step
                break
            if record_stepped:
                stepped_indices[0, step] = batch[0]
                stepped_logits[0, step] = out.detach()[0].numpy()
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
        metrics={n: v[:, cut] for n, v in recorded.items()},
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
        stepped_indices=stepped_indices,
        stepped_logits=stepped_logits,
    )


def _provenance(model, lr, batch_size, label_noise, seed, record_every, start) -> dict:
    return {
        "model": type(model).__name__,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "dtype": str(model_dtype(model)).replace("torch.", ""),
        "lr": lr,
        "batch_size": batch_size,
        "label_noise": label_noise,
        "seed": int(seed),
        "record_every": record_every,
        "lesde_version": __version__,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "wall_seconds": time.perf_counter() - start,
    }
