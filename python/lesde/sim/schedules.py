"""Time-varying parameters: alpha(t), beta(t), sigma(t).

A parameter of :class:`lesde.Config` is either a plain float (constant in time)
or one of the schedule objects below. Every schedule is evaluated inside the C++
loop (no Python call per step); the ``__call__`` methods here evaluate the same
formula in NumPy, for plots, the LE-ODE and tests.

Examples
--------
>>> from lesde.sim.schedules import PowerLaw, Tabulated
>>> PowerLaw(a0=2.0, tau=1.0, gamma=1.0)(1.0)
1.0
>>> Tabulated(times=[0.0, 1.0], values=[0.0, 2.0])(0.25)
0.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..validate import real

__all__ = ["Constant", "PowerLaw", "ExponentialDecay", "Tabulated", "Schedule", "as_schedule"]


def _out(values: np.ndarray):
    """A Python float for a scalar time, an array for an array of times."""
    return float(values) if np.ndim(values) == 0 else values


@dataclass(frozen=True)
class Constant:
    """A constant parameter, ``value`` at every time.

    Examples
    --------
    >>> Constant(0.5)(3.0)
    0.5
    """

    value: float

    kind = "constant"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", real("value", self.value))

    def __call__(self, t):
        return _out(np.full_like(np.asarray(t, dtype=float), self.value))

    def infimum(self) -> float:
        """The greatest lower bound of the values over t >= 0.

        >>> Constant(-0.5).infimum()
        -0.5
        """
        return self.value

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value}


@dataclass(frozen=True)
class PowerLaw:
    """``a0 * (1 + t / tau) ** (-gamma)``: the slow decay of a learning-rate schedule.

    Examples
    --------
    >>> PowerLaw(a0=1.0, tau=2.0, gamma=0.5)(6.0)
    0.5
    """

    a0: float
    tau: float
    gamma: float

    kind = "power_law"

    def __post_init__(self) -> None:
        object.__setattr__(self, "a0", real("power_law.a0", self.a0))
        object.__setattr__(self, "tau", real("power_law.tau", self.tau, above=0))
        object.__setattr__(self, "gamma", real("power_law.gamma", self.gamma))

    def __call__(self, t):
        t = np.asarray(t, dtype=float)
        return _out(self.a0 * (1.0 + t / self.tau) ** (-self.gamma))

    def infimum(self) -> float:
        """The greatest lower bound of the values over t >= 0 (the sign is that of ``a0``).

        >>> PowerLaw(a0=2.0, tau=1.0, gamma=0.5).infimum(), PowerLaw(-1.0, 1.0, 0.5).infimum()
        (0.0, -1.0)
        """
        if self.gamma == 0 or self.a0 == 0:
            return self.a0
        decays = self.gamma > 0  # toward 0 from a0; otherwise it grows from a0 without bound
        if self.a0 > 0:
            return 0.0 if decays else self.a0
        return self.a0 if decays else -math.inf

    def to_dict(self) -> dict:
        return {"kind": self.kind, "a0": self.a0, "tau": self.tau, "gamma": self.gamma}


@dataclass(frozen=True)
class ExponentialDecay:
    """``a0 * exp(-t / tau)``.

    Examples
    --------
    >>> round(ExponentialDecay(a0=1.0, tau=1.0)(1.0), 6)
    0.367879
    """

    a0: float
    tau: float

    kind = "exponential"

    def __post_init__(self) -> None:
        object.__setattr__(self, "a0", real("exponential.a0", self.a0))
        object.__setattr__(self, "tau", real("exponential.tau", self.tau, above=0))

    def __call__(self, t):
        t = np.asarray(t, dtype=float)
        return _out(self.a0 * np.exp(-t / self.tau))

    def infimum(self) -> float:
        """The greatest lower bound of the values over t >= 0.

        >>> ExponentialDecay(a0=1.0, tau=1.0).infimum(), ExponentialDecay(-1.0, 1.0).infimum()
        (0.0, -1.0)
        """
        return min(self.a0, 0.0)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "a0": self.a0, "tau": self.tau}


@dataclass(frozen=True, eq=False)
class Tabulated:
    """Values on a time grid, interpolated linearly and held constant past either end.

    This is how rates estimated from a real network (``lesde.analysis.estimate``) are replayed.

    Examples
    --------
    >>> s = Tabulated(times=[0.0, 1.0, 2.0], values=[1.0, 3.0, 3.0])
    >>> float(s(0.5)), float(s(10.0))
    (2.0, 3.0)
    """

    times: np.ndarray
    values: np.ndarray

    kind = "tabulated"

    def __post_init__(self) -> None:
        for part in (self.times, self.values):  # never drop imaginary parts silently
            if isinstance(part, np.ndarray) and part.dtype.kind == "c":
                raise TypeError(f"tabulated schedule needs real numbers, got dtype {part.dtype}")
        times = np.array(self.times, dtype=np.float64, copy=True)
        values = np.array(self.values, dtype=np.float64, copy=True)
        for name, part in (("times", times), ("values", values)):
            if part.ndim != 1:  # never flattened: a 2-D table is a mistake, not a series
                raise ValueError(
                    f"tabulated schedule {name} must be a 1-D sequence, got shape {part.shape}"
                )
        if times.size < 1 or times.size != values.size:
            raise ValueError(
                "tabulated schedule needs times and values of the same non-zero length, "
                f"got {times.size} and {values.size}"
            )
        if not (np.all(np.isfinite(times)) and np.all(np.isfinite(values))):
            raise ValueError("tabulated schedule times and values must be finite (no NaN/Inf)")
        if np.any(np.diff(times) <= 0):
            raise ValueError("tabulated schedule times must be strictly increasing")
        times.flags.writeable = False
        values.flags.writeable = False
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", values)

    def __call__(self, t):
        return _out(np.interp(np.asarray(t, dtype=float), self.times, self.values))

    def infimum(self) -> float:
        """The smallest tabulated value (interpolation stays between neighbours).

        >>> Tabulated(times=[0.0, 1.0], values=[2.0, -1.0]).infimum()
        -1.0
        """
        return float(self.values.min())

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Tabulated)
            and np.array_equal(self.times, other.times)
            and np.array_equal(self.values, other.values)
        )

    def __hash__(self) -> int:
        return hash((self.times.tobytes(), self.values.tobytes()))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "times": self.times.tolist(), "values": self.values.tolist()}


Schedule = Constant | PowerLaw | ExponentialDecay | Tabulated
_KINDS = {cls.kind: cls for cls in (Constant, PowerLaw, ExponentialDecay, Tabulated)}


def as_schedule(name: str, value: Any) -> Schedule:
    """Turn a float, a schedule, or a ``{"kind": ...}`` table into a schedule object.

    Examples
    --------
    >>> as_schedule("alpha", {"kind": "power_law", "a0": 1.0, "tau": 5.0, "gamma": 0.5})
    PowerLaw(a0=1.0, tau=5.0, gamma=0.5)
    """
    if isinstance(value, (Constant, PowerLaw, ExponentialDecay, Tabulated)):
        return value
    if isinstance(value, dict):
        fields = dict(value)
        kind = fields.pop("kind", None)
        if kind not in _KINDS:
            raise ValueError(f"{name}: schedule kind must be one of {sorted(_KINDS)}, got {kind!r}")
        try:
            return _KINDS[kind](**fields)
        except TypeError as err:
            raise ValueError(f"{name}: bad fields for a {kind} schedule: {err}") from None
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    if isinstance(value, tuple) and len(value) == 2:
        try:
            return Tabulated(times=value[0], values=value[1])
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    try:
        return Constant(value)
    except (TypeError, ValueError) as err:
        raise type(err)(
            f"{name} must be a float, a schedule (PowerLaw, ExponentialDecay, Tabulated) "
            f"or a (times, values) pair: {err}"
        ) from None
