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
    "MEMORY_BUDGET",
    "Plain",
    "as_float_array",
    "as_float_tensor",
    "check_bool",
    "check_bytes",
    "check_choice",
    "check_finite_result",
    "check_int",
    "check_labels",
    "check_module",
    "check_nonnegative",
    "check_positive",
    "check_real",
    "check_widths",
    "message",
]


MEMORY_BUDGET = 4 << 30
"""Bytes a single allocation of a public function may ask for unless told otherwise (4 GiB):
larger requests are refused in one line, with the estimate, before anything is allocated."""


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
    allow_inf: bool = False,
    allow_empty: bool = False,
    detach: bool = False,
) -> torch.Tensor:
    """Convert an array-like to a finite floating tensor of the given rank.

    Integer and NumPy inputs are converted; float tensors keep their dtype unless
    ``dtype`` is given; complex, boolean, object, string, ``None``, empty and non-finite
    inputs are refused (``allow_inf`` lets +-inf through, never NaN; ``allow_empty`` lets
    zero-size arrays through). A tensor that requires grad keeps its graph unless
    ``detach`` (use it where the input goes on to NumPy: :func:`as_float_array` does).
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach() if detach else value
    elif isinstance(value, np.ndarray | np.generic | Sequence | numbers.Real) and not isinstance(
        value, str | bytes
    ):
        if isinstance(value, bool | np.bool_):
            raise TypeError(message(name, "an array of real numbers, not booleans", value))
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as err:  # ragged lists
            raise ValueError(message(name, "a rectangular array of numbers", value)) from err
        if array.dtype == object and array.size:  # numbers held as Python objects
            if not all(
                isinstance(e, numbers.Real) and not isinstance(e, bool | np.bool_)
                for e in array.reshape(-1)
            ):
                raise TypeError(message(name, "an array of real numbers", value))
            array = array.astype(np.float64)
        if array.dtype.kind == "b":
            raise TypeError(message(name, "an array of real numbers, not booleans", "dtype bool"))
        if array.dtype.kind not in "iuf" and not (array.dtype == object and not array.size):
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
    if tensor.numel() == 0 and not allow_empty:
        raise ValueError(message(name, "non-empty", f"shape {tuple(tensor.shape)}"))
    if allow_inf:
        if bool(torch.isnan(tensor).any()):
            raise ValueError(message(name, "free of NaN", "NaN entries"))
    elif not bool(torch.isfinite(tensor).all()):
        raise ValueError(message(name, "finite (no NaN or inf)", "non-finite entries"))
    return tensor


def as_float_array(
    name: str,
    value: Any,
    *,
    ndim: int | None = None,
    allow_inf: bool = False,
    allow_empty: bool = False,
) -> np.ndarray:
    """:func:`as_float_tensor` as a float64 NumPy array (a copy: never a view of the input)."""
    tensor = as_float_tensor(
        name,
        value,
        ndim=ndim,
        dtype=torch.float64,
        allow_inf=allow_inf,
        allow_empty=allow_empty,
        detach=True,
    )
    return tensor.cpu().numpy().copy()


class Plain(str):
    """Text shown in a message as it is (no quotes)."""

    def __repr__(self) -> str:
        return str(self)


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def check_bytes(name: str, n_bytes: float, budget: int | None = None, fix: str = "") -> None:
    """Refuse, before allocating, a request of ``n_bytes`` above ``budget`` (default
    :data:`MEMORY_BUDGET`); ``name`` names the argument that sets the size."""
    budget = MEMORY_BUDGET if budget is None else budget
    if n_bytes > budget:
        raise ValueError(
            message(
                name,
                f"small enough for the memory budget of {_bytes(budget)}",
                Plain(f"a request of about {_bytes(n_bytes)}"),
                fix or "Use a smaller size",
            )
        )


def check_bool(name: str, value: Any) -> bool:
    """A flag: True or False (NumPy bools too); 0, 1, None and strings are refused."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(message(name, "True or False", value))
    return bool(value)


def check_module(
    name: str, value: Any, *, parameters: bool = True, finite: bool = True
) -> torch.nn.Module:
    """A ``torch.nn.Module`` (not a plain callable), with parameters and with finite parameters
    and floating buffers unless told otherwise."""
    if not isinstance(value, torch.nn.Module):
        raise TypeError(
            message(name, "a torch.nn.Module", type(value).__name__, "Wrap a function in a Module")
        )
    params = list(value.parameters())
    if parameters and not params:
        raise ValueError(message(name, "a module with parameters", type(value).__name__))
    if finite:
        for key, tensor in [*value.named_parameters(), *value.named_buffers()]:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
                raise ValueError(
                    message(name, "a module with finite parameters", f"NaN/inf in {key}")
                )
    return value


def check_labels(name: str, value: Any, n_classes: int | None = None) -> torch.Tensor:
    """Class labels: a 1-D array of integers in [0, n_classes) (integer-valued floats are
    accepted, booleans are not); returns an int64 tensor."""
    labels = as_float_tensor(name, value, ndim=1, dtype=torch.float64)
    if isinstance(value, torch.Tensor | np.ndarray) and value.dtype in (torch.bool, np.bool_):
        raise TypeError(message(name, "integer class labels, not booleans", "dtype bool"))
    if not bool((labels == labels.round()).all()):
        raise ValueError(message(name, "integer class labels", "non-integer entries"))
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or (n_classes is not None and high >= n_classes):
        allowed = f"in [0, {n_classes})" if n_classes is not None else ">= 0"
        raise ValueError(message(name, f"class labels {allowed}", f"labels from {low} to {high}"))
    return labels.to(torch.int64)


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


def check_finite_result(name: str, value: Any, fix: str = "Rescale the inputs") -> None:
    """Refuse a result (tensor, array, float, or a tuple of them) with NaN or inf entries,
    blaming the inputs ``name`` (an overflow or a degenerate input, never a silent NaN)."""
    parts = value if isinstance(value, tuple | list) else (value,)
    for part in parts:
        if isinstance(part, torch.Tensor):
            ok = bool(torch.isfinite(part.detach()).all())
        elif isinstance(part, np.ndarray):
            ok = bool(np.isfinite(part).all())
        else:
            ok = math.isfinite(float(part))
        if not ok:
            raise ValueError(
                message(
                    name, "small enough that the result is finite in float64", "an overflow", fix
                )
            )
