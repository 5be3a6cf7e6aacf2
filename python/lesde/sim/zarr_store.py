"""Zarr output: the records of a run appended to a Zarr group while the run goes.

``lesde.simulate(cfg, zarr_store="run.zarr")`` (``lesde run --zarr run.zarr``) creates the
group before the first step and, after every chunk of the run loop, appends the records
completed since the last append. ``lesde.load_zarr("run.zarr")`` reads it back as a
:class:`~lesde.sim.result.Result` holding the records complete so far, so a run that was
killed (even with SIGKILL) leaves a store that loads. Needs the optional ``zarr`` package:
``pip install 'lesde[zarr]'``; both the zarr 3 API (``create_array``, the default store
format 3) and zarr 2.18 (``create_dataset``, format 2) are supported.

Layout. Arrays ``times (T,)``, ``class_means`` and ``label_means (R, T, K, p)``,
``sigma_w (R, T, p, p)``, ``sample_trajectories (R, T, S, p)`` and one ``(R, T)`` array per
engine scalar under ``metrics/`` (loss, accuracy, clean_accuracy, ncc_accuracy, nc4), each
chunked along T (1 to 16 records a chunk, fewer when a record is large) and resized as T
grows; the static ``classes (N,)`` and ``sample_indices (S,)``; the state ``labels (R, N)``,
``status (R,)`` (0 ok, 1 nonfinite) and ``fail_step (R,)``; optionally the final
``features (R, N, p)``. NC1/NC2 are not stored: they are recomputed from ``sigma_w`` and
``label_means`` on loading, as for the in-memory Result.

Group attributes: ``kind``, ``format_version``, ``config_toml`` (reads back the exact
Config), ``config_toml_resolved``, ``lesde_version``, ``build_info``, ``seed``,
``noise_seed``, ``random_stream_version``, ``dtype``, ``records_planned``, ``has_features``,
``records_complete``, ``steps_done``, ``finished`` (set by the last write of a run that
returned), ``interrupted`` and ``meta``. ``records_complete`` is rewritten after every
append, *after* the data it counts, so a reader trusts only records that were written:
the arrays may be longer (resized before a write that did not finish) but never shorter.

Crash safety. Every zarr file (chunk or metadata) is written to a temporary file and
renamed over the old one by zarr's local store, so a killed process leaves whole files;
the files are not fsynced, so a power cut may still lose the last appends.

Examples
--------
>>> import lesde, tempfile, os, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "run.zarr")
>>> res = lesde.simulate(n_classes=2, n_per_class=20, t_end=0.1, progress=False,
...                      zarr_store=path)  # doctest: +SKIP
>>> np.array_equal(lesde.load_zarr(path).class_means, res.class_means)  # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..io import storage
from .config import Config
from .result import SCALAR_METRICS, Result, finish_metrics, provenance, record_count, status_names
from .zarr_folder import (
    KIND,
    RECORD_ARRAYS,
    check_regular_files,
    check_store,
    remove_store_files,
    store_lock,
)

__all__ = [
    "ZARR_HINT",
    "FORMAT_VERSION",
    "KIND",
    "ZarrWriter",
    "check_store",
    "load_zarr",
    "store_lock",
]

ZARR_HINT = "pip install 'lesde[zarr]'"
#: Version of the store layout; a store of another version is refused (it goes up
#: with every change of the recorded scalars, lesde.sim.result.SCALAR_METRICS).
FORMAT_VERSION = 1
#: Largest T-chunk (records), and the bytes a chunk aims at when records are large.
MAX_CHUNK_RECORDS = 16
CHUNK_BYTES = 4 * 2**20
#: An append is skipped until this many times its last duration has passed since it
#: ended, so writing the store takes at most about 1/(1 + ratio) of the run's wall time.
APPEND_WAIT_RATIO = 19.0


def _zarr():
    """The zarr module, or an ImportError naming the extra that installs it."""
    try:
        import zarr
    except ImportError:
        raise ImportError(f"Zarr output needs the zarr package: {ZARR_HINT}") from None
    return zarr


def _create_array(group, name: str, shape: tuple, chunks: tuple, dtype, fill_value) -> Any:
    create = getattr(group, "create_array", None)  # zarr 3
    if create is None:  # zarr 2
        create = group.create_dataset
    return create(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill_value)


def _chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunks of an (R, T, ...) array: whole trailing dims, T (then R) cut to CHUNK_BYTES."""
    R, rest = shape[0], [max(1, n) for n in shape[2:]]
    per_replica = itemsize * int(np.prod(rest, dtype=np.int64))
    t = int(np.clip(CHUNK_BYTES // max(R * per_replica, 1), 1, MAX_CHUNK_RECORDS))
    r = max(1, min(R, CHUNK_BYTES // max(per_replica, 1)))
    return (r, t, *rest)


def _update_attrs(group: Any, values: dict) -> None:
    """Set the group attributes ``values`` in one metadata write. zarr 3's
    ``attrs.update`` writes the metadata once per key, so a reader could see a new
    ``records_complete`` beside an old ``steps_done``."""
    update = getattr(group, "update_attributes", None)  # zarr 3: one write
    if update is not None:
        update(values)
    else:  # zarr 2: Attributes.update writes once
        group.attrs.update(values)


class ZarrWriter:
    """Creates the store and appends records to it: the :class:`lesde.sim.engine.RecordWriter`
    of a run. The run loop calls :meth:`append` after each chunk and :meth:`close` with the
    Result at the end."""

    def __init__(
        self, path: str | os.PathLike, cfg: Config, features: bool = False, overwrite: bool = False
    ):
        self.path, self.cfg, self.features = Path(path), cfg, bool(features)
        self.overwrite = bool(overwrite)
        self.record_steps = cfg.record_steps
        self.written = 0  # records in the store that records_complete counts
        self.next_append = 0.0  # perf_counter time before which append() waits
        self._held: contextlib.ExitStack | None = None  # the lock, while entered

    def __enter__(self) -> ZarrWriter:
        """Take the store's lock (one writer: :func:`store_lock`), replace the lesde store
        at the path if allowed (:func:`check_store`), and create the new one."""
        check_store(self.path, overwrite=self.overwrite)  # a refusal leaves no lock file
        with contextlib.ExitStack() as held:  # let go of the lock if anything below fails
            held.enter_context(store_lock(self.path))
            for stale in check_store(self.path, overwrite=self.overwrite):
                remove_store_files(self.path, stale)
            self._create()
            self._held = held.pop_all()  # kept until __exit__
        return self

    def __exit__(self, *exc: Any) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.close()

    def _create(self) -> None:
        """Create the group, its empty arrays and its attributes (mode ``w-``: zarr deletes
        nothing; the folder is absent or empty here)."""
        cfg = self.cfg
        self.started = time.perf_counter()
        R, N, K, p = cfg.replicas, cfg.n_samples, cfg.n_classes, cfg.p
        S = len(cfg.recorded_sample_indices)
        root = _zarr().open_group(str(self.path), mode="w-")
        self.root = root
        trailing = {
            "class_means": (K, p),
            "label_means": (K, p),
            "sigma_w": (p, p),
            "sample_trajectories": (S, p),
        }
        self.arrays = {
            name: _create_array(root, name, (R, 0, *dims), _chunks((R, 0, *dims), 8), "f8", np.nan)
            for name, dims in trailing.items()
        }
        self.times = _create_array(root, "times", (0,), (MAX_CHUNK_RECORDS,), "f8", np.nan)
        metrics = root.create_group("metrics")
        self.metrics = {
            name: _create_array(metrics, name, (R, 0), _chunks((R, 0), 8), "f8", np.nan)
            for name in SCALAR_METRICS
        }
        _create_array(root, "classes", (N,), (max(N, 1),), "i4", 0)[:] = np.repeat(
            np.arange(K, dtype=np.int32), cfg.class_sizes_resolved
        )
        indices = cfg.recorded_sample_indices
        _create_array(root, "sample_indices", indices.shape, (max(indices.size, 1),), "i8", 0)[
            :
        ] = indices
        self.labels = _create_array(root, "labels", (R, N), (R, max(N, 1)), "i4", -1)
        self.status = _create_array(root, "status", (R,), (R,), "i4", 0)
        self.fail_step = _create_array(root, "fail_step", (R,), (R,), "i8", -1)
        made_by = provenance(cfg, 0.0)
        made_by.pop("wall_seconds")
        _update_attrs(
            root,
            {
                "kind": KIND,
                "format_version": FORMAT_VERSION,
                "config_toml": cfg.to_toml(),
                "config_toml_resolved": cfg.to_toml(resolved=True),
                "lesde_version": made_by["lesde_version"],
                "build_info": made_by["build_info"],
                "seed": cfg.seed,
                "noise_seed": cfg.effective_noise_seed,
                "random_stream_version": made_by["random_stream_version"],
                "dtype": cfg.dtype,
                "records_planned": int(self.record_steps.size),
                "records_complete": 0,
                "steps_done": 0,
                "finished": False,
                "interrupted": None,
                "meta": made_by,
                "has_features": False,
            },
        )

    @classmethod
    def create(
        cls, path: Any, cfg: Config, features: bool = False, overwrite: bool = False
    ) -> ZarrWriter | None:
        """Validate the user's ``zarr_store``/``zarr_features``; None if not writing one.

        The writer is a context manager: entering it takes the store's lock and checks
        the path (:func:`check_store`: only a lesde store, and only with ``overwrite``, is
        replaced), then creates the store.
        """
        if path is None:
            if features:
                raise ValueError("zarr_features needs a store path (zarr_store=...)")
            return None
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"zarr_store must be a path, got {type(path).__name__}")
        if str(path) == "":
            raise ValueError("zarr_store must be a folder path, got ''")
        _zarr()  # the ImportError naming the extra, before anything else
        return cls(path, cfg, features, overwrite)

    def _write_records(self, arrays: dict, n: int) -> None:
        """Records [written, n) of the engine's arrays into the store (resizing first)."""
        w = self.written
        for name, source in RECORD_ARRAYS.items():
            out = self.arrays[name]
            if out.shape[1] < n:
                out.resize((out.shape[0], n, *out.shape[2:]))
            out[:, w:n] = arrays[source][:, w:n]
        for j, name in enumerate(SCALAR_METRICS):
            out = self.metrics[name]
            if out.shape[1] < n:
                out.resize((out.shape[0], n))
            out[:, w:n] = arrays["scalars"][:, w:n, j]
        if self.times.shape[0] < n:
            self.times.resize((n,))
        self.times[w:n] = self.record_steps[w:n] * self.cfg.dt

    def append(self, step: int, arrays: dict) -> None:
        """Append the records complete after ``step`` steps; then count them in the attrs.

        Called after every chunk of the run loop (about 4 times a second); when the last
        append was slow it waits (see :data:`APPEND_WAIT_RATIO`), and the records it
        leaves are written by the next append or by :meth:`close`.
        """
        n = int(np.searchsorted(self.record_steps, step, side="right"))
        start = time.perf_counter()
        if n <= self.written or start < self.next_append:
            return
        if self.written == 0:
            self.labels[:] = arrays["labels"]  # drawn at step 0, fixed afterwards
        self._write_records(arrays, n)
        self.status[:] = arrays["status"]
        self.fail_step[:] = arrays["fail_step"]
        self.written = n
        _update_attrs(
            self.root,
            {
                "records_complete": n,
                "steps_done": int(step),
                "wall_seconds": time.perf_counter() - self.started,
            },
        )
        end = time.perf_counter()
        self.next_append = end + APPEND_WAIT_RATIO * (end - start)

    def close(self, result: Result, arrays: dict) -> None:
        """Make the store hold exactly ``result``: its records, state, features and meta."""
        n = len(result.times)
        if n > self.written:
            if self.written == 0:
                self.labels[:] = arrays["labels"]
            self._write_records(arrays, n)
        elif n < self.written:  # every replica failed before the last appended record
            _update_attrs(self.root, {"records_complete": n})
            for out in (*self.arrays.values(), *self.metrics.values()):
                out.resize((out.shape[0], n, *out.shape[2:]))
            self.times.resize((n,))
        self.status[:] = arrays["status"]
        self.fail_step[:] = arrays["fail_step"]
        if self.features:
            features = result.features
            R, N, p = features.shape
            per_sample = max(p, 1) * features.itemsize
            rows = max(1, min(N, CHUNK_BYTES // per_sample))  # samples a chunk, one replica
            _create_array(
                self.root, "features", (R, N, p), (1, rows, max(p, 1)), features.dtype, np.nan
            )[:] = features
        self.written = n
        _update_attrs(
            self.root,
            {
                "records_complete": n,
                "steps_done": int(result.steps_done),
                "finished": True,
                "interrupted": bool(result.interrupted),
                "meta": result.meta,
                "wall_seconds": result.meta.get("wall_seconds"),
                "has_features": self.features,
            },
        )


def _checked_array(
    path: Any, root: Any, name: str, kinds: str, shape: tuple, records: bool
) -> tuple[Any, int]:
    """The store's array ``name`` (nothing read) and the bytes reading it would take, once
    its metadata agree with the config: dtype kind, shape (a record array may be longer
    along T than the records complete: an append cut short) and one chunk that fits."""
    try:
        array = root[name]
    except KeyError:
        raise ValueError(f"{path}: incomplete store, missing array {name!r}") from None
    have, dtype = tuple(array.shape), np.dtype(array.dtype)
    if records:
        t = 1 if len(shape) > 1 else 0
        ok = len(have) == len(shape) and have[t] >= shape[t]
        ok = ok and have[:t] + have[t + 1 :] == shape[:t] + shape[t + 1 :]
    else:
        ok = have == shape
    if not ok or dtype.kind not in kinds:
        raise ValueError(
            f"{path}: array {name!r} is {dtype} {have}, expected {shape} for its config; "
            "the store is damaged (nothing was read)"
        )
    chunk = int(np.prod(array.chunks, dtype=object)) * dtype.itemsize  # decoded whole
    storage.check_size(path, chunk, "lesde Zarr store's chunks")
    return array, int(np.prod(shape, dtype=object)) * dtype.itemsize + chunk


def load_zarr(path: str | os.PathLike) -> Result:
    """Read a store written with ``simulate(..., zarr_store=path)`` as a Result.

    The Result holds the records the store counts as complete (``records_complete``).
    A store whose run did not return (killed, machine down) loads with
    ``interrupted=True`` when it holds fewer records than planned; its ``steps_done`` is
    the step of the last append. ``features`` is ``(R, 0, p)`` unless the run was made
    with ``zarr_features=True``. A folder that is not a lesde store, or one whose arrays
    disagree with its config, raises :class:`ValueError`.

    Examples
    --------
    >>> import lesde, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "run.zarr")
    >>> _ = lesde.simulate(n_classes=2, n_per_class=10, t_end=0.05, progress=False,
    ...                    zarr_store=path)  # doctest: +SKIP
    >>> lesde.load_zarr(path).config.n_classes  # doctest: +SKIP
    2
    """
    zarr = _zarr()
    found = storage.file_kind(path, follow_links=True)
    if found is None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no Zarr store at {path}")
        found = "a file"
    if found != "a folder":
        raise ValueError(f"{path}: {found}, not a Zarr store (a folder)")
    check_regular_files(Path(path))
    try:
        root = zarr.open_group(str(path), mode="r")
        attrs = dict(root.attrs)
    except Exception as err:  # missing or damaged metadata
        raise ValueError(
            f"{path}: not a readable Zarr store ({type(err).__name__}: {err})"
        ) from None
    storage.check_header(
        path, attrs, what="lesde Zarr store", kind=KIND, format_version=FORMAT_VERSION
    )
    try:
        cfg = Config.from_toml_text(attrs["config_toml"])
        n = attrs["records_complete"]
        steps_done = attrs["steps_done"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, steps_done)):
            raise TypeError("records_complete and steps_done must be ints")
    except (KeyError, TypeError, ValueError) as err:
        why = f"{type(err).__name__}: {err}"
        raise ValueError(f"{path}: invalid store attributes ({why})") from None
    R, N, K, p = cfg.replicas, cfg.n_samples, cfg.n_classes, cfg.p
    planned = record_count(cfg)  # counted: a crafted config's record grid may not fit
    if not 0 <= n <= planned:
        raise ValueError(f"{path}: records_complete {n} outside [0, {planned}]")
    # A finished store counts the records of its steps_done; a store cut short may count
    # fewer (its last append, or the trimming of a run whose replicas all failed).
    reached = record_count(cfg, steps_done) if 0 <= steps_done <= cfg.n_steps else -1
    if reached < 0 or n > reached or (attrs.get("finished") is True and n != reached):
        raise ValueError(
            f"{path}: records_complete {n} disagrees with steps_done {steps_done} of its "
            "config; the store is damaged"
        )
    # Every array's metadata is checked against the config, and what would be read against
    # the memory, before any chunk is read. S is counted only once N is known to fit.
    specs = {
        "times": ("f", (n,), True),
        "class_means": ("f", (R, n, K, p), True),
        "label_means": ("f", (R, n, K, p), True),
        "sigma_w": ("f", (R, n, p, p), True),
        **{f"metrics/{m}": ("f", (R, n), True) for m in SCALAR_METRICS},
        "classes": ("iu", (N,), False),
        "labels": ("iu", (R, N), False),
        "status": ("iu", (R,), False),
        "fail_step": ("iu", (R,), False),
    }
    if attrs.get("has_features"):
        specs["features"] = ("f", (R, N, p), False)
    stored = {name: _checked_array(path, root, name, *spec) for name, spec in specs.items()}
    S = len(cfg.recorded_sample_indices)
    more = {"sample_indices": ("iu", (S,), False), "sample_trajectories": ("f", (R, n, S, p), True)}
    stored.update({name: _checked_array(path, root, name, *spec) for name, spec in more.items()})
    specs.update(more)
    storage.check_size(path, sum(nbytes for _, nbytes in stored.values()), "lesde Zarr store")

    def read(name: str) -> np.ndarray:
        array, records = stored[name][0], specs[name][2]
        if not records:
            return np.asarray(array[...])
        return np.asarray(array[:n] if array.ndim == 1 else array[:, :n])

    records = {
        name: read(name)
        for name in ("times", "class_means", "label_means", "sigma_w", "sample_trajectories")
    }
    scalars = np.stack([read(f"metrics/{m}") for m in SCALAR_METRICS], axis=-1)
    features = (
        read("features")
        if attrs.get("has_features")
        else np.empty((R, 0, p), dtype=np.float64 if cfg.dtype == "float64" else np.float32)
    )
    finished = attrs.get("finished") is True
    interrupted = bool(attrs.get("interrupted")) if finished else n < planned
    meta = dict(attrs.get("meta") or {})
    if not finished:
        meta["wall_seconds"] = attrs.get("wall_seconds")
    return Result(
        config=cfg,
        metrics=finish_metrics(scalars, records["sigma_w"], records["label_means"]),
        features=features,
        classes=read("classes"),
        labels=read("labels"),
        sample_indices=read("sample_indices"),
        status=status_names(read("status")),
        fail_step=read("fail_step"),
        steps_done=steps_done,
        interrupted=interrupted,
        meta=meta,
        **records,
    )
