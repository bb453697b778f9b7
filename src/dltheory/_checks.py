"""Shared input validators and the one error-message format.

Every message reads ``"<name> must be <constraint>. Got <value!r>. <How to fix>."``
Public functions validate once, at the boundary, through these helpers.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "as_float_tensor",
    "check_choice",
    "check_int",
    "check_nonnegative",
    "check_positive",
    "check_real",
    "check_widths",
    "message",
]


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())  # one line, whatever the repr
    return text if len(text) <= 80 else text[:77] + "..."


def message(name: str, constraint: str, value: Any, fix: str = "") -> str:
    """Format the project's one error message."""
    fix = fix.rstrip(".")
    tail = f" {fix}" + ("" if fix.endswith(("?", "!")) else ".") if fix else ""
    return f"{name} must be {constraint}. Got {_short(value)}.{tail}"


def check_real(name: str, value: Any) -> float:
    """A finite real number (bool excluded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message(name, "a real number", value))
    try:
        value = float(value)
    except OverflowError as err:
        raise ValueError(message(name, "finite", value)) from err
    if not math.isfinite(value):
        raise ValueError(message(name, "finite", value))
    return value


def check_nonnegative(name: str, value: Any) -> float:
    """A finite real number >= 0 (variances, learning-rate factors)."""
    value = check_real(name, value)
    if value < 0:
        raise ValueError(message(name, "a variance >= 0", value, "Variances cannot be negative"))
    return value


def check_positive(name: str, value: Any) -> float:
    """A finite real number > 0."""
    value = check_real(name, value)
    if value <= 0:
        raise ValueError(message(name, "> 0", value))
    return value


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """An integer (bool excluded), optionally >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(message(name, "an integer", value))
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(message(name, f"an integer >= {minimum}", value))
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of a few allowed strings."""
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(message(name, f"one of {allowed}", value))
    return value


def as_float_tensor(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Convert an array-like to a finite floating tensor of the given rank.

    Integer and NumPy inputs are converted; float tensors keep their dtype unless
    ``dtype`` is given; complex, boolean, empty and non-finite inputs are refused.
    """
    if isinstance(value, torch.Tensor):
        tensor = value
    elif isinstance(value, np.ndarray | Sequence | numbers.Real) and not isinstance(
        value, str | bytes
    ):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as err:  # ragged lists
            raise ValueError(message(name, "a rectangular array of numbers", value)) from err
        if array.dtype == object or array.dtype.kind not in "iuf":
            raise TypeError(message(name, "an array of real numbers", value))
        tensor = torch.from_numpy(np.array(array, dtype=np.float64, copy=True))
    else:
        raise TypeError(message(name, "a torch.Tensor or NumPy array", type(value).__name__))
    if tensor.is_complex():
        raise TypeError(message(name, "real-valued", f"dtype {tensor.dtype}"))
    if tensor.dtype == torch.bool:
        raise TypeError(message(name, "an array of real numbers, not booleans", "dtype bool"))
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    if dtype is not None:
        tensor = tensor.to(dtype)
    if device is not None:
        tensor = tensor.to(device)
    if ndim is not None and tensor.ndim != ndim:
        raise ValueError(
            message(name, f"a {ndim}-D array", f"shape {tuple(tensor.shape)}", _rank_fix(ndim))
        )
    if tensor.numel() == 0:
        raise ValueError(message(name, "non-empty", f"shape {tuple(tensor.shape)}"))
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(message(name, "finite (no NaN or inf)", "non-finite entries"))
    return tensor


def _rank_fix(ndim: int) -> str:
    if ndim == 2:
        return "Pass inputs as (n_samples, n_features); reshape a single input with x[None, :]"
    return ""


def check_widths(widths: Any, name: str = "widths") -> tuple[int, ...]:
    """Hidden widths (n_1, ..., n_L): a non-empty sequence or 1-D array of integers >= 1.

    Wrong-type entries (floats, None, bools) raise TypeError; integers < 1 raise ValueError.
    """
    if isinstance(widths, str | bytes) or not isinstance(widths, Sequence | np.ndarray):
        raise TypeError(
            message(
                name,
                "a sequence of hidden widths (n_1, ..., n_L)",
                widths,
                f"Pass e.g. {name}=(10, 10, 10) for three hidden layers of width 10",
            )
        )
    if isinstance(widths, np.ndarray) and widths.ndim != 1:
        raise ValueError(message(name, "a 1-D sequence of hidden widths", widths))
    if len(widths) == 0:
        raise ValueError(message(name, "non-empty (at least one hidden layer)", widths))
    out = []
    for n in widths:
        if isinstance(n, bool | np.bool_) or not isinstance(n, numbers.Integral):
            raise TypeError(
                message(
                    name, "a sequence of integers >= 1", widths, f"Entry {n!r} is not an integer"
                )
            )
        if n < 1:
            raise ValueError(message(name, "a sequence of integers >= 1", widths))
        out.append(int(n))
    return tuple(out)
