"""Train a real network with plain SGD and measure what the LE-SDE models (needs PyTorch).

The paper's claims are about real networks; this module connects the simulator to them:

- :class:`LeNet`: the small CNN of the paper's experiments (2 convolutional + 3 linear layers).
- :func:`train_and_record`: plain SGD, one sample per step by default, recording the logits
  of every training sample (class means for large sets), train and validation loss and
  accuracy, and optionally the measured impact matrix. Its :class:`TrainingResult` has the
  layout of :class:`lesde.Result` (``times``, ``class_means`` of shape (1, T, K, K),
  ``metrics`` of shape (1, T)), so :mod:`lesde.analysis.estimate` and :mod:`lesde.plot` accept it.
- :func:`train_ensemble`: R independently seeded networks trained in parallel worker
  processes (the paper's trials), stored per trial in a folder, resumable; one
  :class:`TrainingResult` with R replicas (:func:`load_ensemble` reads a folder back).
- :func:`impact_matrix`: the empirical impact matrix: one SGD step at an input, the change of
  every other input's logits projected on the stepped input's signal direction
  ``g = e_y - softmax(f)``, averaged per class pair, with bootstrap confidence intervals.

Time is measured as in the SGD imitation (docs/model.md section 2a): ``t = step * lr``, so the
rates fitted here are on the simulator's time scale.

Install with ``pip install 'lesde[nn]'`` (PyTorch 2.13.0, CPU build).

This module is where to start; the work is done in :mod:`lesde.nn.network` (the network and
the impact measurement), :mod:`lesde.nn.training` (the training loop), :mod:`lesde.nn.ensemble`
(trial ensembles: :mod:`~lesde.nn.ensemble_manifest`, :mod:`~lesde.nn.ensemble_folder` and
:mod:`~lesde.nn.ensemble_workers` hold its manifest, its folder's files and lock, and its
worker processes), :mod:`lesde.nn.training_result` (the record type, which loads without
PyTorch; :mod:`~lesde.nn.training_file` is its file layout, :mod:`~lesde.nn.impact_track`
the impact matrices measured in training) and :mod:`lesde.nn.memory` (what a training needs
in memory, checked before it starts).

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

import importlib as _importlib

from .ensemble import EnsembleFolderInUse, WorkerError, load_ensemble, train_ensemble
from .training_result import ImpactTrack, TrainingResult, load_training, stepped_class_means

# The names that need PyTorch load on first use, so that records and ensembles are read
# (load_training, load_ensemble, the paper's pipeline) where PyTorch is not installed; the
# first use without it says how to get it.
_NEEDS_TORCH = {
    "ImpactMatrix": "network",
    "LeNet": "network",
    "impact_matrix": "network",
    "train_and_record": "training",
}


def __getattr__(name: str):
    if name in _NEEDS_TORCH:
        value = getattr(_importlib.import_module(f"{__name__}.{_NEEDS_TORCH[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EnsembleFolderInUse",
    "ImpactMatrix",
    "ImpactTrack",
    "LeNet",
    "TrainingResult",
    "WorkerError",
    "impact_matrix",
    "load_ensemble",
    "load_training",
    "stepped_class_means",
    "train_and_record",
    "train_ensemble",
]
