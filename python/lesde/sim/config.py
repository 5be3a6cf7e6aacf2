"""The run configuration: one frozen, keyword-only, validated object.

Every field is validated once, here, in :meth:`Config.__post_init__`; errors name the field
and the allowed values. Fields hold what the user gave (``None`` means "use the default"),
so ``dataclasses.replace(cfg, dt=...)`` in a sweep re-derives everything that depends on
the changed field. The resolved values (defaults filled in) are exposed as properties
(``class_sizes_resolved``, ``n_steps``, ``record_interval``, ...) and by
``to_dict(resolved=True)``.

Examples
--------
>>> cfg = Config(n_classes=3, n_per_class=100, alpha=1.0, beta=0.2, t_end=1.0)
>>> cfg.n_samples, cfg.p, cfg.n_steps, cfg.record_interval
(300, 3, 100, 1)
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ..io.storage import open_input
from ..validate import choice, integer, probability, real, real_array
from .model import BACKENDS, NOISES, SCHEMES, SIGNALS, check_dimension
from .schedules import Constant, Schedule, as_schedule
from .toml_text import names_a_file, toml_error_message, toml_value

__all__ = [
    "Config",
    "SIGNALS",
    "PROCESSES",
    "SCHEMES",
    "NOISES",
    "DTYPES",
    "BACKENDS",
    "toml_error_message",
    "toml_value",
    "unknown_field_message",
]

PROCESSES = ("sde", "sgd")
DTYPES = ("float64", "float32")
DEFAULT_ALPHA, DEFAULT_BETA = 1.0, 0.2
DEFAULT_T_END = 10.0
DEFAULT_N_PER_CLASS = 1000
TARGET_RECORDS = 100
MAX_SEED = 2**64 - 1


def available_cores() -> int:
    """Cores this process may run on (what ``threads=None`` uses)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _schedule_value(name: str, value: Any) -> float | Schedule:
    sched = as_schedule(name, value)
    return sched.value if isinstance(sched, Constant) else sched


#: How far t_end / dt may be from a whole number of steps (rounding in decimal inputs).
STEPS_REL_TOL, STEPS_ABS_TOL = 1e-12, 1e-9


def _check_whole_steps(t_end: float, dt: float) -> None:
    """Refuse a horizon that is not a whole number of steps, suggesting the nearest ones.

    Without it t_end=1.0, dt=0.3 would silently stop at 0.9 and t_end=0.001, dt=0.01 run
    to 0.01.
    """
    ratio = t_end / dt
    if not math.isfinite(ratio):
        return  # the step count check names the overflow
    steps = round(ratio)
    if steps >= 1 and math.isclose(ratio, steps, rel_tol=STEPS_REL_TOL, abs_tol=STEPS_ABS_TOL):
        return
    below, above = math.floor(ratio), math.floor(ratio) + 1
    options = [f"t_end={n * dt:.12g} (steps={n})" for n in (below, above) if n >= 1]
    raise ValueError(
        f"t_end={t_end:g} is not a whole number of steps of dt={dt:g} (t_end / dt = "
        f"{ratio:.6g}); use {' or '.join(options)}, or give steps instead of t_end"
    )


def _check_never_negative(name: str, value: float | Schedule) -> None:
    """Refuse a parameter (sigma) that is negative at some time t >= 0, schedules included."""
    sched = as_schedule(name, value)
    lowest = sched.infimum()
    if lowest >= 0:
        return
    if isinstance(sched, Constant):
        raise ValueError(f"{name} must be >= 0, got {sched.value}")
    reaches = "decreases without bound" if lowest == -math.inf else f"reaches {lowest:g}"
    raise ValueError(
        f"{name} must be >= 0 at every time t >= 0; its {sched.kind} schedule {reaches}"
    )


def _plain(value: Any) -> Any:
    """A field value as TOML/JSON-friendly builtins."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


def unknown_field_message(key: str, fields: list[str]) -> str:
    """One line for an unknown Config field: the name, the closest field, all the fields.

    Examples
    --------
    >>> unknown_field_message("alpah", ["alpha", "beta"])
    "unknown config field 'alpah'; did you mean 'alpha'? (fields: alpha, beta)"
    """
    hint = difflib.get_close_matches(key, fields, n=1)
    guess = f"; did you mean {hint[0]!r}?" if hint else ""
    return f"unknown config field {key!r}{guess} (fields: {', '.join(fields)})"


def _hint_unknown_fields(cls):
    """Class decorator: ``Config(alpah=1)`` says which field is unknown and what it may mean,
    where the dataclass ``__init__`` says only "unexpected keyword argument"."""
    init = cls.__init__
    fields = [f.name for f in dataclasses.fields(cls)]

    @functools.wraps(init)  # keeps the signature that help() and IDEs show
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        for key in kwargs:
            if key not in fields:
                raise TypeError(unknown_field_message(key, fields))
        init(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls


@_hint_unknown_fields
@dataclass(frozen=True, kw_only=True, eq=False)
class Config:
    """Everything that defines a run; pass it to :func:`lesde.simulate`.

    Parameters
    ----------
    n_classes : int
        K, the number of classes (>= 2).
    n_per_class, class_sizes : int or sequence of int
        Samples per class: give one (default 1000 per class).
    dim : int, optional
        p, the feature dimension (default K; must be K for "projected", and for
        "cross_entropy" unless a ``head`` is given).
    signal : {"linear", "projected", "cross_entropy"}
        The backprop signal g(x, y) of docs/model.md section 1.
    alpha, beta : float or schedule
        Intra- and inter-class impact (defaults 1.0 and 0.2). Not with ``impact``.
    impact : (K, K) array, optional
        A full, constant impact matrix E (instead of alpha/beta).
    sigma : float or schedule
        Noise level (>= 0). Where sigma(t) = 0 no noise is drawn at all.
    noise : {"gaussian", "two_point", "three_point"}
        The law of the Brownian increments dW = sqrt(dt) xi of the SDE: Gaussian xi (exact;
        strong order 1), or a weak scheme's cheap substitute with the right low moments:
        two-point xi = +-1 (weak order 1 with either scheme) or three-point xi = +-sqrt(3)
        with probability 1/6 each and 0 with 2/3 (weak order 2 with Heun). The weak noises
        give the law of the features (loss, separability, collapse) at a fraction of the
        cost, not their paths (docs/model.md). ``process="sde"`` only.
    label_noise : float
        p_err in [0, 1]: each training label is replaced, with this probability, by one of
        the other K-1 classes (drawn independently per replica).
    init_scale : float
        x_i(0) ~ N(mu_{c_i}, init_scale^2 I).
    init_means : (K, p) array, optional
        The mu_k of the initialisation (default 0).
    head : (K, p) array, optional
        Fixed head H: logits are H x and the cross-entropy signal is H^T (e_y - softmax(H x)).
    process : {"sde", "sgd"}
        The LE-SDE (docs/model.md 2b) or the discrete SGD imitation (2a).
    scheme : {"euler_maruyama", "heun"}
        Integrator for the SDE.
    dt : float
        Time step; for ``process="sgd"`` this is the learning rate eta (time t = m * eta).
    t_end, steps : float, int
        Horizon, give one (default t_end = 10).
    batch_size : int
        B, the SGD batch size.
    replicas : int
        Independent runs of the same model (R).
    seed, noise_seed : int
        Seed of initialisation and labels; ``noise_seed`` (default ``seed``) seeds the
        Brownian increments / SGD batches, so two configs can share noise.
    threads : int, optional
        OpenMP threads (default: all cores available to this process).
    dtype : {"float64", "float32"}
        Storage type of the features (sums are accumulated in float64).
    backend : {"cpu", "cuda", "auto", "cuda_emulator"}
        Where the SDE runs: the OpenMP CPU engine, the optional CUDA engine (a build with
        CUDA and a visible GPU), or CUDA when available and worthwhile, else CPU. Results
        of the two agree to rounding (docs/cuda.md); each is deterministic on its own.
        ``"cuda_emulator"`` runs the CUDA engine's kernels on host threads: slow, for
        testing the CUDA code where there is no GPU.
    record_every : int, optional
        Steps between records (default: about 100 records per run).
    record_samples : int or sequence of int, optional
        Record the trajectories of these sample indices (an int n picks n evenly spaced).

    Examples
    --------
    >>> cfg = Config(n_classes=2, n_per_class=10, signal="linear", alpha=2.0, beta=1.0)
    >>> cfg.impact_matrix(0.0).tolist()
    [[2.0, 1.0], [1.0, 2.0]]
    """

    n_classes: int = 3
    n_per_class: int | None = None
    class_sizes: tuple[int, ...] | None = None
    dim: int | None = None
    signal: str = "cross_entropy"
    alpha: float | Schedule | None = None
    beta: float | Schedule | None = None
    impact: np.ndarray | None = None
    sigma: float | Schedule = 0.5
    noise: str = "gaussian"
    label_noise: float = 0.0
    init_scale: float = 1.0
    init_means: np.ndarray | None = None
    head: np.ndarray | None = None
    process: str = "sde"
    scheme: str = "euler_maruyama"
    dt: float = 0.01
    t_end: float | None = None
    steps: int | None = None
    batch_size: int = 1
    replicas: int = 1
    seed: int = 0
    noise_seed: int | None = None
    threads: int | None = None
    dtype: str = "float64"
    backend: str = "cpu"
    record_every: int | None = None
    record_samples: int | tuple[int, ...] | None = field(default=None)

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        put = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        K = integer("n_classes", self.n_classes, at_least=2, at_most=100_000)
        put("n_classes", K)

        if self.n_per_class is not None:
            put("n_per_class", integer("n_per_class", self.n_per_class, at_least=1))
        if self.class_sizes is not None:
            sizes = self.class_sizes
            if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
                raise TypeError(f"class_sizes must be a sequence of {K} integers, got {sizes!r}")
            sizes = tuple(integer("class_sizes[]", s, at_least=1) for s in sizes)
            if len(sizes) != K:
                raise ValueError(f"class_sizes must have n_classes = {K} entries, got {len(sizes)}")
            if self.n_per_class is not None and any(s != self.n_per_class for s in sizes):
                raise ValueError("give either n_per_class or class_sizes, not both (they disagree)")
            put("class_sizes", sizes)
        if self.n_samples >= 2**31:
            raise ValueError(f"the total number of samples must be < 2^31, got {self.n_samples}")

        if self.dim is not None:
            put("dim", integer("dim", self.dim, at_least=1, at_most=100_000))
        choice("signal", self.signal, SIGNALS)
        p = self.p
        if self.n_samples * p >= 2**40:  # rng.hpp: a normal's retries are keyed by its index
            raise ValueError(
                f"n_samples x dim must be < 2^40 (the random streams number one increment per "
                f"sample and coordinate), got {self.n_samples} x {p}"
            )

        if self.head is not None:
            put("head", real_array("head", self.head, (K, p)))
        check_dimension(self.signal, K, p, has_head=self.head is not None)

        if self.impact is not None:
            if self.alpha is not None or self.beta is not None:
                raise ValueError("give either impact (a K x K matrix) or alpha/beta, not both")
            put("impact", real_array("impact", self.impact, (K, K)))
        else:
            put(
                "alpha",
                _schedule_value("alpha", DEFAULT_ALPHA if self.alpha is None else self.alpha),
            )
            put("beta", _schedule_value("beta", DEFAULT_BETA if self.beta is None else self.beta))
        put("sigma", _schedule_value("sigma", self.sigma))
        _check_never_negative("sigma", self.sigma)

        put("label_noise", probability("label_noise", self.label_noise))
        put("init_scale", real("init_scale", self.init_scale, at_least=0))
        if self.init_means is not None:
            put("init_means", real_array("init_means", self.init_means, (K, p)))

        choice("process", self.process, PROCESSES)
        choice("scheme", self.scheme, SCHEMES)
        if self.process == "sgd" and self.scheme != "euler_maruyama":
            raise ValueError(
                'scheme applies to process="sde" only; leave it at "euler_maruyama" for sgd'
            )
        choice("noise", self.noise, NOISES)
        if self.process == "sgd" and self.noise != "gaussian":
            raise ValueError(
                'noise applies to process="sde" only (the SGD process draws Gaussian sample '
                'noise); leave it at "gaussian" for sgd'
            )
        dt = real("dt", self.dt, above=0)
        put("dt", dt)
        if self.t_end is not None:
            put("t_end", real("t_end", self.t_end, above=0))
            if self.steps is None:
                _check_whole_steps(self.t_end, dt)
        if self.steps is not None:
            put("steps", integer("steps", self.steps, at_least=1, at_most=2**31 - 1))
            if self.t_end is not None and abs(self.steps * dt - self.t_end) > 1e-9 * self.t_end:
                raise ValueError(
                    f"t_end={self.t_end} and steps={self.steps} disagree with dt={dt}: give one"
                )
        if self.steps is None and not math.isfinite((self.t_end or DEFAULT_T_END) / dt):
            raise ValueError(f"t_end / dt overflows with dt={dt}; at most 2^31 - 1 steps allowed")
        if self.n_steps > 2**31 - 1:
            raise ValueError(f"t_end / dt gives {self.n_steps} steps; at most 2^31 - 1 are allowed")
        put("batch_size", integer("batch_size", self.batch_size, at_least=1, at_most=2**31 - 1))
        if self.batch_size > self.n_samples:
            raise ValueError(
                f"batch_size must be <= the number of samples N = {self.n_samples}, got "
                f"{self.batch_size}: a batch is drawn with replacement from the N samples, so "
                "a larger one averages the same N signals over and over within one step (and "
                "Ctrl-C acts only between steps); for the large-batch limit use process='sde'"
            )
        put("replicas", integer("replicas", self.replicas, at_least=1, at_most=2**24 - 1))
        put("seed", integer("seed", self.seed, at_least=0, at_most=MAX_SEED))
        if self.noise_seed is not None:
            put("noise_seed", integer("noise_seed", self.noise_seed, at_least=0, at_most=MAX_SEED))
        if self.threads is not None:
            put("threads", integer("threads", self.threads, at_least=1, at_most=4096))
        choice("dtype", self.dtype, DTYPES)
        choice("backend", self.backend, BACKENDS)
        if self.record_every is not None:
            put("record_every", integer("record_every", self.record_every, at_least=1))
        if self.record_samples is not None:
            rs, N = self.record_samples, self.n_samples
            if isinstance(rs, (str, bytes)):
                raise TypeError("record_samples must be an int or a sequence of sample indices")
            if hasattr(rs, "__len__"):  # sample indices
                idx = tuple(integer("record_samples[]", i, at_least=0, at_most=N - 1) for i in rs)
                put("record_samples", idx)
            else:  # how many samples, evenly spaced
                put("record_samples", integer("record_samples", rs, at_least=0, at_most=N))

    # ------------------------------------------------------------------ resolved values
    @property
    def class_sizes_resolved(self) -> tuple[int, ...]:
        """n_k for every class."""
        if self.class_sizes is not None:
            return self.class_sizes
        n = DEFAULT_N_PER_CLASS if self.n_per_class is None else self.n_per_class
        return (n,) * self.n_classes

    @property
    def n_samples(self) -> int:
        """N = sum of the class sizes."""
        return int(sum(self.class_sizes_resolved))

    @property
    def p(self) -> int:
        """The feature dimension (``dim``, default K)."""
        return self.n_classes if self.dim is None else self.dim

    @property
    def n_steps(self) -> int:
        """Number of steps: ``steps``, or ``round(t_end / dt)``."""
        if self.steps is not None:
            return self.steps
        t_end = DEFAULT_T_END if self.t_end is None else self.t_end
        return max(1, int(round(t_end / self.dt)))

    @property
    def record_interval(self) -> int:
        """Steps between records (``record_every``, default about 100 records)."""
        if self.record_every is not None:
            return self.record_every
        return max(1, self.n_steps // TARGET_RECORDS)

    @property
    def record_steps(self) -> np.ndarray:
        """The step numbers at which the run records (0, every interval, and the last).

        This builds the array (8 bytes a record): to count records or find one, use
        :attr:`n_records`, :meth:`record_index` and :meth:`next_record_step`, which do not.
        """
        steps = np.arange(0, self.n_steps + 1, self.record_interval, dtype=np.int64)
        if steps[-1] != self.n_steps:
            steps = np.append(steps, self.n_steps)
        return steps

    @property
    def n_records(self) -> int:
        """Number of records, ``len(record_steps)``, counted without building them.

        Examples
        --------
        >>> Config(steps=2**31 - 1, record_every=1).n_records
        2147483648
        """
        every = self.record_interval
        return self.n_steps // every + 1 + int(self.n_steps % every > 0)

    def record_index(self, step: int) -> int:
        """The index of ``step`` among the record steps, or -1 when it is not one.

        Examples
        --------
        >>> cfg = Config(steps=25, record_every=10)
        >>> [cfg.record_index(s) for s in (0, 10, 15, 25)]
        [0, 1, -1, 3]
        """
        every, last = self.record_interval, self.n_steps
        if step == last:
            return self.n_records - 1
        if 0 <= step < last and step % every == 0:
            return step // every
        return -1

    def next_record_step(self, step: int) -> int:
        """The first record step at or after ``step`` (``n_steps`` past the last one).

        Examples
        --------
        >>> cfg = Config(steps=25, record_every=10)
        >>> [cfg.next_record_step(s) for s in (0, 1, 20, 21, 99)]
        [0, 10, 20, 25, 25]
        """
        every = self.record_interval
        return min(-(-max(step, 0) // every) * every, self.n_steps)

    @property
    def effective_noise_seed(self) -> int:
        return self.seed if self.noise_seed is None else self.noise_seed

    @property
    def effective_threads(self) -> int:
        return available_cores() if self.threads is None else self.threads

    @property
    def recorded_sample_indices(self) -> np.ndarray:
        rs = self.record_samples
        if rs is None:
            return np.zeros(0, dtype=np.int64)
        if isinstance(rs, int):
            return np.unique(np.linspace(0, self.n_samples - 1, rs).round().astype(np.int64))
        return np.asarray(rs, dtype=np.int64)

    def impact_matrix(self, t: float = 0.0) -> np.ndarray:
        """E(t), the K x K impact matrix at time t.

        Examples
        --------
        >>> Config(n_classes=2, alpha=1.0, beta=0.5).impact_matrix().tolist()
        [[1.0, 0.5], [0.5, 1.0]]
        """
        if self.impact is not None:
            return np.array(self.impact)
        a = float(as_schedule("alpha", self.alpha)(t))
        b = float(as_schedule("beta", self.beta)(t))
        K = self.n_classes
        return np.full((K, K), b) + (a - b) * np.eye(K)

    def state_bytes(self, samples: int | None = None) -> int:
        """Bytes a run allocates: the per-sample state (features, labels, SGD bookkeeping)
        and the records (:meth:`record_bytes`). Counted, never built. ``samples``: the
        samples one process holds (a rank of a sharded run), default all of them.

        Examples
        --------
        >>> cfg = Config(n_classes=2, n_per_class=10, steps=10, record_every=5)
        >>> cfg.state_bytes(), cfg.state_bytes(samples=5)
        (880, 580)
        """
        itemsize = 8 if self.dtype == "float64" else 4
        per_sample = self.p * itemsize + 4
        if self.process == "sgd":
            per_sample += 8  # noise variance already applied to each sample (lazy noise)
        n = self.n_samples if samples is None else samples
        return self.replicas * n * per_sample + self.record_bytes()

    def record_bytes(self) -> int:
        """Bytes of the records (float64): :attr:`n_records` x (class and label means,
        scatter matrix, scalars, recorded samples) per replica. Counted, never built.

        Examples
        --------
        >>> Config(steps=2**31 - 1, record_every=1).record_bytes() / 2**30  # GiB
        560.0
        """
        per_record = 2 * self.n_classes * self.p + self.p * self.p + 8
        per_record += len(self.recorded_sample_indices) * self.p
        return self.replicas * self.n_records * 8 * per_record

    # ------------------------------------------------------------------ conversion
    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated again).

        Examples
        --------
        >>> Config(alpha=1.0).replace(alpha=0.5).alpha
        0.5
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self, resolved: bool = False) -> dict[str, Any]:
        """Plain builtins (lists, dicts, numbers, strings); ``None`` fields are left out.

        With ``resolved=True`` the defaults are filled in (what ``lesde validate`` prints).

        Examples
        --------
        >>> Config(n_classes=2, alpha=1.0, beta=0.5).to_dict()["alpha"]
        1.0
        """
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = _plain(value)
        if resolved:
            out["class_sizes"] = list(self.class_sizes_resolved)
            out.pop("n_per_class", None)
            out["dim"] = self.p
            out["steps"] = self.n_steps
            out.pop("t_end", None)
            out["record_every"] = self.record_interval
            out["noise_seed"] = self.effective_noise_seed
            out["threads"] = self.effective_threads
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build a Config from a mapping; unknown keys are errors with a hint.

        Examples
        --------
        >>> Config.from_dict({"n_classes": 2, "signal": "linear"}).signal
        'linear'
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise ValueError(unknown_field_message(unknown[0], names))
        kwargs = dict(data)
        for key in ("class_sizes", "record_samples"):
            if isinstance(kwargs.get(key), list):
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def to_toml(self, path: str | os.PathLike | None = None, resolved: bool = False) -> str:
        """The config as TOML text (written to ``path`` if given); reads back exactly.

        Examples
        --------
        >>> cfg = Config(n_classes=2, alpha=1.5)
        >>> Config.from_toml(cfg.to_toml()) == cfg
        True
        """
        lines, tables = [], []
        for key, value in self.to_dict(resolved=resolved).items():
            if isinstance(value, dict):
                tables.append(f"\n[{key}]")
                tables += [f"{k} = {toml_value(v)}" for k, v in value.items()]
            else:
                lines.append(f"{key} = {toml_value(value)}")
        text = "\n".join(lines + tables) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_toml(cls, source: str | os.PathLike) -> Config:
        """Read a Config from a TOML file, or from TOML text.

        Which one ``source`` is never depends on what exists on disk:

        - a :class:`pathlib.Path` (any ``os.PathLike``) is always a file;
        - a ``str`` is a file name when it is one line that ends in ``.toml`` or holds no
          ``=`` (``"cfg.toml"``, ``"runs/a=b.toml"``, ``"my_config"``), and TOML text
          otherwise (``"alpha = 0.5"``, anything of several lines).

        A missing file raises FileNotFoundError naming it; only a regular file is read (a
        FIFO or a device is refused without blocking). :meth:`from_toml_text` takes text
        whatever it looks like.

        Examples
        --------
        >>> Config.from_toml('n_classes = 4\\nsignal = "linear"').n_classes
        4
        >>> from pathlib import Path
        >>> Config.from_toml(Path("alpha=0.5"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        FileNotFoundError: no TOML config file at alpha=0.5
        """
        if isinstance(source, str) and not names_a_file(source):
            return cls.from_toml_text(source)
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(
                f"source must be a path (str or os.PathLike) or TOML text, got "
                f"{type(source).__name__}"
            )
        with open_input(source, "TOML config file") as f:
            data = f.read()
        try:
            return cls.from_toml_text(data.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise ValueError(f"{os.fspath(source)}: not a TOML file (not UTF-8: {err})") from None
        except (TypeError, ValueError) as err:
            raise type(err)(f"{os.fspath(source)}: {err}") from None

    @classmethod
    def from_toml_text(cls, text: str) -> Config:
        """Read a Config from TOML text (never a file, whatever the text looks like).

        Examples
        --------
        >>> Config.from_toml_text("alpha = 0.5").alpha
        0.5
        """
        if not isinstance(text, str):
            raise TypeError(f"TOML text must be a str, got {type(text).__name__}")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(toml_error_message(text, err)) from None
        except RecursionError:  # tomllib recurses once per level of nesting
            raise ValueError("invalid TOML: values nested too deeply") from None
        return cls.from_dict(data)

    # ------------------------------------------------------------------ comparison
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.to_toml())
