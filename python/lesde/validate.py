"""Checks of user-given values, shared by every public entry point of lesde: the one
validator family (numbers, names, and the arrays given to :mod:`lesde.metrics`).

One rule everywhere, so the same mistake gets the same exception wherever it is made:

- a value of the wrong *type* is a :class:`TypeError`: a bool, a string or ``None`` where a
  number is expected, a number with a fractional part (2.5) where an integer is expected,
  a non-string where one of a few names is expected;
- a value of the right type that is not allowed is a :class:`ValueError`: outside its
  range, not finite (NaN, inf), or a name that is not among the choices (the message then
  lists them and suggests the closest one).

Every message names the field. A float that holds a whole number (``1e4``) is accepted
where an integer is expected, as the integer it equals: numbers from TOML, JSON or NumPy
grids are often floats, and ``n_per_class=1e4`` means 10000.

Examples
--------
>>> integer("n_classes", 3.0, at_least=2)
3
>>> real("dt", 0.01, above=0)
0.01
>>> choice("signal", "linaer", ("linear", "projected"))
Traceback (most recent call last):
    ...
ValueError: signal must be one of 'linear', 'projected'; got 'linaer' (did you mean 'linear'?)
"""

from __future__ import annotations

import difflib
import math
import numbers
import operator
from typing import Any

import numpy as np

__all__ = ["choice", "integer", "probability", "real", "real_array"]


def _is_number(value: Any) -> bool:
    # bool is an int to Python, but True as a count or a rate is a mistake.
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _bound(value: float | int) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _check_range(
    name: str,
    value: float | int,
    at_least: float | None,
    above: float | None,
    at_most: float | None,
    below: float | None,
) -> None:
    lower = at_least if at_least is not None else above
    upper = at_most if at_most is not None else below
    too_low = (at_least is not None and value < at_least) or (above is not None and value <= above)
    too_high = (at_most is not None and value > at_most) or (below is not None and value >= below)
    if not (too_low or too_high):
        return
    if lower is not None and upper is not None:
        left = "[" if at_least is not None else "("
        right = "]" if at_most is not None else ")"
        allowed = f"in {left}{_bound(lower)}, {_bound(upper)}{right}"
    elif lower is not None:
        allowed = f"{'>=' if at_least is not None else '>'} {_bound(lower)}"
    else:
        allowed = f"{'<=' if at_most is not None else '<'} {_bound(upper)}"
    raise ValueError(f"{name} must be {allowed}, got {value}")


def integer(
    name: str, value: Any, *, at_least: int | None = None, at_most: int | None = None
) -> int:
    """``value`` as an ``int``, within ``[at_least, at_most]`` (bounds optional).

    Accepts Python and NumPy integers and floats that hold a whole number.

    Raises
    ------
    TypeError
        Not a number, a bool, or a number with a fractional part (or NaN/inf).
    ValueError
        Outside the bounds.

    Examples
    --------
    >>> integer("replicas", 4, at_least=1)
    4
    >>> integer("replicas", 2.5)
    Traceback (most recent call last):
        ...
    TypeError: replicas must be an integer, got 2.5
    >>> integer("replicas", 0, at_least=1)
    Traceback (most recent call last):
        ...
    ValueError: replicas must be >= 1, got 0
    """
    if not _is_number(value):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, numbers.Integral):
        as_float = float(value)
        if not as_float.is_integer():  # also NaN and inf
            raise TypeError(f"{name} must be an integer, got {value!r}")
        value = as_float
    value = int(value)
    _check_range(name, value, at_least, None, at_most, None)
    return value


def real(
    name: str,
    value: Any,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
) -> float:
    """``value`` as a finite ``float`` within the given bounds (``at_*`` inclusive, ``above``
    and ``below`` exclusive; give at most one of each side).

    Raises
    ------
    TypeError
        Not a real number (a string, a bool, None, a complex number, an array).
    ValueError
        NaN or infinite, or outside the bounds.

    Examples
    --------
    >>> real("size_jitter", 0.2, at_least=0, below=1)
    0.2
    >>> real("size_jitter", 1.0, at_least=0, below=1)
    Traceback (most recent call last):
        ...
    ValueError: size_jitter must be in [0, 1), got 1.0
    >>> real("lr", "0.1")
    Traceback (most recent call last):
        ...
    TypeError: lr must be a real number, got '0.1'
    """
    if not _is_number(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond the float range
        value = math.copysign(math.inf, value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    _check_range(name, value, at_least, above, at_most, below)
    return value


def probability(name: str, value: Any) -> float:
    """A probability: a real number in ``[0, 1]`` (``label_noise``, ``p_err``).

    Examples
    --------
    >>> probability("label_noise", 1)
    1.0
    >>> probability("label_noise", 1.5)
    Traceback (most recent call last):
        ...
    ValueError: label_noise must be in [0, 1], got 1.5
    """
    return real(name, value, at_least=0.0, at_most=1.0)


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of the names in ``allowed``.

    Raises
    ------
    TypeError
        Not a string.
    ValueError
        Not one of ``allowed``; the message lists them and suggests the closest.

    Examples
    --------
    >>> choice("process", "sgd", ("sde", "sgd"))
    'sgd'
    >>> choice("process", 2, ("sde", "sgd"))
    Traceback (most recent call last):
        ...
    TypeError: process must be one of 'sde', 'sgd' (a string), got 2
    """
    options = ", ".join(map(repr, allowed))
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {options} (a string), got {value!r}")
    if value not in allowed:
        hint = difflib.get_close_matches(value, allowed, n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise ValueError(f"{name} must be one of {options}; got {value!r}{extra}")
    return value


def real_array(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A finite float64 copy of ``value`` with exactly this ``shape``, made read-only.

    Raises
    ------
    TypeError
        Not numeric, or complex (the imaginary part is never dropped silently).
    ValueError
        Another shape, or NaN/inf entries.

    Examples
    --------
    >>> real_array("head", [[1, 0], [0, 1]], (2, 2)).dtype
    dtype('float64')
    >>> real_array("head", [[1, 0]], (2, 2))
    Traceback (most recent call last):
        ...
    ValueError: head must have shape (2, 2), got (1, 2)
    """
    if isinstance(value, np.ndarray) and value.dtype.kind == "c":
        raise TypeError(f"{name} must be a real array, got dtype {value.dtype}")
    try:
        array = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric array of shape {shape}") from None
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (no NaN/Inf)")
    array.flags.writeable = False
    return array


# ----------------------------------------------------------------------------- arrays
# The arrays users give to lesde.metrics (features, labels, a head, the chunk size).


def as_real_array(a, name):
    """``a`` as a real numeric array (no copy when it already is one); TypeError otherwise.

    >>> as_real_array([1, 2], "x").dtype.kind
    'i'
    """
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a real numeric array, got dtype object") from exc
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def check_features(X, name="X"):
    """``X`` as a non-empty 2-D real array of shape ``(N, p)``.

    >>> check_features([[1.0, 2.0]]).shape
    (1, 2)
    """
    arr = as_real_array(X, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, p); got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); need N >= 1 rows, p >= 1 columns")
    return arr


def check_labels(y, n, name="y"):
    """``y`` as a 1-D integer array of ``n`` labels (not yet range-checked).

    >>> check_labels([0, 1, 1], 3)
    array([0, 1, 1])
    """
    arr = y if isinstance(y, np.ndarray) else np.asarray(y)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must be an integer array of class labels, got dtype {arr.dtype}"
            " (cast with .astype(int) if the values are whole numbers)"
        )
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D of shape (N,); got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but X has {n} rows")
    return arr


def resolve_n_classes(y, n_classes, name="y"):
    """``K``: ``n_classes`` when given (checked against the labels), else ``y.max() + 1``.

    >>> resolve_n_classes(np.array([0, 2]), None), resolve_n_classes(np.array([0, 2]), 5)
    (3, 5)
    """
    ymin, ymax = int(y.min()), int(y.max())
    if ymin < 0:
        raise ValueError(f"{name} contains the negative label {ymin}; labels must lie in [0, K)")
    if n_classes is None:
        return ymax + 1
    try:
        K = operator.index(n_classes)
    except TypeError as exc:
        raise TypeError(f"n_classes must be an int or None, got {n_classes!r}") from exc
    if K < 1:
        raise ValueError(f"n_classes must be >= 1, got {K}")
    if ymax >= K:
        raise ValueError(f"{name} contains the label {ymax}, out of range for n_classes={K}")
    return K


def check_head(head, p):
    """The head matrix ``(K, p)`` as a finite float64 copy, or None when there is none.

    >>> check_head([[1, 0]], 2)
    array([[1., 0.]])
    """
    if head is None:
        return None
    H = as_real_array(head, "head")
    if H.ndim != 2:
        raise ValueError(f"head must be a 2-D array of shape (K, p); got shape {H.shape}")
    if H.shape[1] != p or H.shape[0] == 0:
        raise ValueError(f"head must have shape (K, p) with p = {p} (X's columns); got {H.shape}")
    H = np.array(H, dtype=np.float64)
    if not np.isfinite(H).all():
        raise ValueError("head contains non-finite values (NaN or inf)")
    return H


def n_logit_columns(p, H, n_classes):
    """Number of logit columns; check it against ``n_classes`` when that is given.

    >>> n_logit_columns(4, None, None), n_logit_columns(4, np.ones((3, 4)), 3)
    (4, 3)
    """
    K = p if H is None else H.shape[0]
    if n_classes is not None:
        try:
            nk = operator.index(n_classes)
        except TypeError as exc:
            raise TypeError(f"n_classes must be an int or None, got {n_classes!r}") from exc
        if nk != K:
            what = "head has" if H is not None else "X (used as logits, no head) has"
            raise ValueError(f"n_classes={nk} but {what} {K} logit columns")
    return K


def check_logit_labels(y, K):
    """Raise unless every label indexes one of the ``K`` logit columns.

    >>> check_logit_labels(np.array([0, 1]), 2)
    """
    ymin, ymax = int(y.min()), int(y.max())
    if ymin < 0 or ymax >= K:
        bad = ymin if ymin < 0 else ymax
        raise ValueError(
            f"y contains the label {bad}, out of range for {K} logit columns"
            " (features are used as logits when head is None)"
        )


def check_chunk(chunk):
    """The ``_chunk`` argument of the metrics as a positive int.

    >>> check_chunk(1000)
    1000
    """
    c = operator.index(chunk)
    if c < 1:
        raise ValueError(f"_chunk must be >= 1, got {c}")
    return c
