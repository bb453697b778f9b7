"""Shared boundary checks of the implicit-bias module (through ``dltheory._checks``)."""

from __future__ import annotations

from typing import Any

import torch

from .._checks import as_float_tensor, check_positive, message

__all__ = ["design", "labels_pm1", "shape_vector", "targets"]


def design(name: str, value: Any) -> torch.Tensor:
    """A finite float64 design matrix (n_samples, n_features)."""
    return as_float_tensor(name, value, ndim=2, dtype=torch.float64, detach=True)


def targets(name: str, value: Any, n: int) -> torch.Tensor:
    """A finite float64 target vector of length ``n``."""
    y = as_float_tensor(name, value, ndim=1, dtype=torch.float64, detach=True)
    if y.shape[0] != n:
        raise ValueError(
            message(name, f"of length {n} (one target per row of X)", f"length {y.shape[0]}")
        )
    return y


def labels_pm1(name: str, value: Any, n: int) -> torch.Tensor:
    """Labels in {-1, +1}, one per row of X."""
    y = targets(name, value, n)
    bad = (y != 1) & (y != -1)
    if bool(bad.any()):
        raise ValueError(
            message(name, "labels in {-1, +1}", y[bad][0].item(), "Map 0/1 labels with 2 * y - 1")
        )
    return y


def shape_vector(theta0: Any, d: int) -> torch.Tensor:
    """The initialisation shape theta_0 (length d, nonzero entries); ones by default."""
    if theta0 is None:
        return torch.ones(d, dtype=torch.float64)
    if isinstance(theta0, int | float) and not isinstance(theta0, bool):
        check_positive("theta0", theta0)
        return torch.full((d,), float(theta0), dtype=torch.float64)
    t = as_float_tensor("theta0", theta0, ndim=1, dtype=torch.float64, detach=True)
    if t.shape[0] != d:
        raise ValueError(message("theta0", f"of length {d} (one entry per feature)", t.shape[0]))
    if bool((t == 0).any()):
        raise ValueError(
            message(
                "theta0", "nonzero in every entry", "a zero entry", "A zero shape freezes beta_i"
            )
        )
    return t
