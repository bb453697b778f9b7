"""``Estimate``: a Monte-Carlo measurement with its standard error.

Every topic reports its measurements as ``Estimate(mean, stderr, n)`` and compares
a prediction with it in standard errors (plus a relative tolerance for a known
systematic bias). Re-exported as ``dltheory.Estimate`` and ``dltheory.finite.Estimate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._checks import as_float_tensor, check_finite_result, check_int, check_nonnegative, message

__all__ = ["Estimate"]

__fuzz_exempt__ = {
    "Estimate": "value record: holds what it is given (built by from_samples and the library)",
    "Estimate.zscore:inf": "inf where stderr = 0 and mean != prediction (documented)",
}


@dataclass(frozen=True)
class Estimate:
    """mean +- stderr from n independent samples (scalars or tensors).

    >>> e = Estimate.from_samples(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    >>> float(e.mean), round(float(e.stderr), 6), e.n
    (2.5, 0.645497, 4)
    """

    mean: Any
    stderr: Any
    n: int

    @classmethod
    def from_samples(cls, samples: Any, dim: int = 0) -> Estimate:
        """Sample mean and standard error sqrt(var / n) (unbiased var) along ``dim``.

        Boolean samples (indicators) count as 0/1: their mean is a frequency.

        >>> float(Estimate.from_samples(torch.tensor([True, False, True, True])).mean)
        0.75
        """
        if isinstance(samples, torch.Tensor) and samples.dtype == torch.bool:
            samples = samples.to(torch.float64)
        elif isinstance(samples, np.ndarray) and samples.dtype == np.bool_:
            samples = samples.astype(np.float64)
        x = as_float_tensor("samples", samples, detach=True)
        if x.ndim == 0:
            raise ValueError(message("samples", "at least 1-D (samples along dim)", "a scalar"))
        dim = check_int("dim", dim)
        if not -x.ndim <= dim < x.ndim:
            raise ValueError(message("dim", f"a dimension of the {x.ndim}-D samples", dim))
        n = x.shape[dim]
        if n < 2:
            raise ValueError(message("samples", "at least 2 samples along dim", n))
        mean = x.mean(dim)
        stderr = x.std(dim, unbiased=True) / math.sqrt(n)
        check_finite_result("samples", (mean, stderr))
        return cls(mean, stderr, n)

    def zscore(self, prediction: Any) -> Any:
        """(mean - prediction) / stderr (inf where stderr = 0 and they differ)."""
        prediction = as_float_tensor("prediction", prediction, dtype=torch.float64, detach=True)
        diff = torch.as_tensor(self.mean) - prediction
        se = torch.as_tensor(self.stderr, dtype=diff.dtype)
        return torch.where(
            se > 0,
            diff / torch.where(se > 0, se, 1.0),
            torch.where(diff == 0, 0.0, math.inf) * diff.sign(),
        )

    def agrees(self, prediction: Any, n_std: float = 5.0, rtol: float = 0.0) -> bool:
        """|mean - prediction| <= n_std * stderr + rtol * |prediction|, everywhere.

        ``rtol`` allows a known systematic bias (e.g. O(1/width) at finite width).
        """
        check_nonnegative("n_std", n_std)
        check_nonnegative("rtol", rtol)
        pred = as_float_tensor("prediction", prediction, dtype=torch.float64, detach=True)
        mean = torch.as_tensor(self.mean, dtype=torch.float64)
        se = torch.as_tensor(self.stderr, dtype=torch.float64)
        return bool(((mean - pred).abs() <= n_std * se + rtol * pred.abs()).all())

    def __format__(self, spec: str) -> str:
        if torch.as_tensor(self.mean).numel() == 1:
            fmt = spec or ".4g"
            return f"{float(self.mean):{fmt}} ± {float(self.stderr):{fmt}} (n={self.n})"
        return repr(self)

    def __post_init__(self) -> None:
        check_int("n", self.n, minimum=1)
