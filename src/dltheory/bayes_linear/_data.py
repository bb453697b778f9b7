"""Shared validation of (x, y, widths, sigma2) for the deep linear Bayesian tools."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from .._checks import Plain, as_float_tensor, check_positive, check_widths, message

__all__ = ["Problem", "validate_problem", "validate_widths"]


class Problem(NamedTuple):
    """Validated inputs: x (P, n_0) and y (P,) in float64, hidden widths, sigma2."""

    x: torch.Tensor
    y: torch.Tensor
    widths: tuple[int, ...]
    sigma2: float


def validate_widths(widths: Any) -> tuple[int, ...]:
    """Hidden widths (n_1, ..., n_L); the empty tuple () means no hidden layer (L = 0)."""
    if isinstance(widths, Sequence | np.ndarray) and not isinstance(widths, str | bytes):
        if len(widths) == 0:
            return ()
    return check_widths(widths)


def validate_problem(x: Any, y: Any, widths: Any, sigma2: Any) -> Problem:
    """Check shapes, P <= n_0, full row rank of x, widths >= 1 and sigma2 > 0."""
    x = as_float_tensor("x", x, ndim=2, dtype=torch.float64, detach=True)
    y = as_float_tensor("y", y, dtype=torch.float64, detach=True)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            message(
                "y",
                f"a vector of P = {x.shape[0]} targets (one per row of x)",
                f"shape {tuple(y.shape)}",
                "Pass y of shape (P,) or (P, 1)",
            )
        )
    for name, value, limit in (("x", x, 1e100), ("y", y, 1e200)):
        top = float(value.abs().max())
        if top > limit:
            raise ValueError(
                message(
                    name,
                    f"of entries with magnitude <= {limit:g} (evidence and posterior are "
                    "computed from x x^T and y^T (x x^T)^-1 y)",
                    Plain(f"max |entry| {top:.3g}"),
                    "Rescale the data",
                )
            )
    n_data, n_in = x.shape
    if n_data > n_in:
        raise ValueError(
            message(
                "x",
                "at most n_0 rows (P <= n_0: exact interpolation needs P <= input dimension)",
                f"shape {tuple(x.shape)}",
                "Use at most n_0 data points or a larger input dimension",
            )
        )
    singular = torch.linalg.svdvals(x)
    tol = max(n_data, n_in) * torch.finfo(torch.float64).eps * float(singular[0])
    if float(singular[-1]) <= tol:
        raise ValueError(
            message(
                "x",
                "of full row rank P (linearly independent data points)",
                f"rank {int((singular > tol).sum())} < P = {n_data}",
                "Remove duplicate or linearly dependent rows",
            )
        )
    gram = x @ x.T
    q = float(y @ torch.linalg.solve(gram, y))
    if not (math.isfinite(q) and bool(torch.isfinite(gram).all())):
        raise ValueError(
            message(
                "y",
                "small enough that y^T (x x^T)^-1 y is a float64",
                Plain(f"max |y| {float(y.abs().max()):.3g}"),
                "Rescale y (and sigma2 with it)",
            )
        )
    return Problem(x, y, validate_widths(widths), check_positive("sigma2", sigma2))
