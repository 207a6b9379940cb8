"""The checks that cnnlab's public functions make of what they are given.

Each returns the value in the form the caller works with, or raises a `LabError` that a learner
reads in their own language. There is one meaning of each word:

- a *whole* number is an int or a NumPy integer, or a float with no fraction (3.0 is 3, as a
  form's number field or a JSON file gives it); never a bool, NaN or infinity;
- a *number* is a real, finite int or float; never a bool;
- a *fraction* is a number above 0 and at most 1;
- an array of *numbers* holds integers or floats (not text, objects or booleans), all finite.
"""

from __future__ import annotations

import math
import numbers as _numbers

import numpy as np

from .errors import LabError

MAX_SHOWN = 60  # characters of a received value quoted back to the learner


def shown(value) -> str:
    """A value as a refusal quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


def is_whole(value) -> bool:
    """Whether `value` is a whole number (see the module's docstring)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _numbers.Real):
        return False
    if isinstance(value, _numbers.Integral):
        return True
    return math.isfinite(value) and value == int(value)


def whole(value, name: str, low: int, high: int | None = None) -> int:
    """`value` as an int, from `low` to `high` (no upper bound when None)."""
    if is_whole(value) and low <= value and (high is None or value <= high):
        return int(value)
    if high is None:
        raise LabError("whole_at_least", name=name, low=str(low), value=shown(value))
    raise LabError("whole", name=name, low=str(low), high=str(high), value=shown(value))


def number(value, name: str, low: float, high: float, *, above: bool = False) -> float:
    """`value` as a float, from `low` (or, with `above`, above it) to `high`."""
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, _numbers.Real) and math.isfinite(value)
    if ok and (low < value if above else low <= value) and value <= high:
        return float(value)
    raise LabError("number_above" if above else "number", name=name, low=f"{low:g}", high=f"{high:g}",
                   value=shown(value))


def fraction(value, name: str = "sample") -> float:
    """A share above 0 and at most 1, such as 0.1 for 10%."""
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, _numbers.Real) and math.isfinite(value)
    if ok and 0 < value <= 1:
        return float(value)
    raise LabError("fraction", name=name, value=shown(value))


def choice(value, name: str, choices):
    """`value`, when it is one of `choices`."""
    choices = tuple(choices)
    try:
        known = isinstance(value, (str, int, float)) and not isinstance(value, bool) and value in choices
    except TypeError:
        known = False
    if known:
        return value
    raise LabError("choice", name=name, choices=", ".join(map(str, choices)), value=shown(value))


def numbers(value, what: str, *, finite: bool = True) -> np.ndarray:
    """An array of integers or floats (as float64), all finite unless `finite=False`."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):  # rows of different lengths
        raise LabError("numbers_ragged", what=what) from None
    if array.dtype.kind not in "iuf":
        raise LabError("numbers", what=what, dtype=str(array.dtype))
    array = array.astype(np.float64)
    if finite and not np.isfinite(array).all():
        raise LabError("numbers_finite", what=what)
    return array
