"""Greedy epsilon-nets: covering-number estimates for a finite set of functions on data.

A finite set K = {f_1, ..., f_N} of functions, evaluated on m data points, is a set of
rows F (N x m) in the empirical metric ||f - g|| = sqrt(mean_i (f(x_i) - g(x_i))^2)
("l2", L2 of the empirical measure) or max_i |f(x_i) - g(x_i)| ("sup"). The greedy net
repeatedly takes a point not yet covered as a centre and covers its eps-ball. Its centres
are an eps-cover and are pairwise > eps apart (an eps-packing), so with N(eps) the covering
number (centres in K) and M(eps) the packing number (Vershynin 2018, High-Dimensional
Probability, Lemma 4.2.8: M(2 eps) <= N(eps) <= M(eps)),

    greedy(2 eps) <= M(2 eps) <= N(eps) <= greedy(eps).

For K inside a ball of radius R in R^d the volumetric bound M(eps) <= (1 + 2R/eps)^d holds
(Vershynin 2018, Proposition 4.2.12), and a cover of a delta-dense subset of the ball gives a
cover of the ball, so N(eps) >= (R / (eps + delta))^d. The entropy numbers are
eps_n(K) = inf{eps : N(eps) <= 2^n}.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import torch

from .._checks import (
    as_float_tensor,
    check_bool,
    check_choice,
    check_int,
    check_positive,
    check_real,
    message,
)

__all__ = ["CoveringEstimate", "covering_number", "greedy_net", "volumetric_bounds"]

Metric = Literal["l2", "sup"]
_LOG_MAX = math.log(1.7976931348623157e308)  # log of the largest float64


class CoveringEstimate(NamedTuple):
    """Bracket lower <= N(eps) <= upper of the covering number, and the greedy centres.

    ``upper`` = greedy(eps) (a cover), ``lower`` = greedy(2 eps) (a 2eps-packing),
    ``centers`` the row indices of the eps-net.
    """

    eps: float
    lower: int
    upper: int
    centers: torch.Tensor


def _distances(f: torch.Tensor, row: torch.Tensor, metric: str) -> torch.Tensor:
    diff = f - row
    if metric == "sup":
        return diff.abs().amax(1)
    return torch.sqrt((diff * diff).mean(1))


def greedy_net(f: Any, eps: float, metric: Metric = "l2") -> torch.Tensor:
    """Row indices of a greedy eps-net of the rows of f (an eps-cover and eps-packing).

    >>> greedy_net(torch.tensor([[0.0], [0.5], [3.0]]), 1.0).tolist()
    [0, 2]
    """
    f = as_float_tensor("f", f, ndim=2, dtype=torch.float64, detach=True)
    eps = check_positive("eps", eps)
    check_choice("metric", metric, ("l2", "sup"))
    uncovered = torch.ones(f.shape[0], dtype=torch.bool)
    centers = []
    while bool(uncovered.any()):
        i = int(torch.nonzero(uncovered)[0])
        centers.append(i)
        uncovered &= _distances(f, f[i], metric) > eps
    return torch.tensor(centers, dtype=torch.long)


def covering_number(f: Any, eps: float, metric: Metric = "l2") -> CoveringEstimate:
    """Greedy bracket greedy(2 eps) <= N(eps) <= greedy(eps) for the rows of f.

    >>> est = covering_number(torch.arange(10.0)[:, None], 1.0, metric="sup")
    >>> est.lower, est.upper  # points 0..9 on a line: N(1) = 4 (centres 1, 4, 7, 9)
    (4, 5)
    """
    nets = greedy_net(f, eps, metric)
    lower = greedy_net(f, 2 * eps, metric).numel()
    return CoveringEstimate(eps, lower, nets.numel(), nets)


def volumetric_bounds(
    dim: int, radius: float, eps: float, delta: float = 0.0, *, log: bool = False
) -> tuple[float, float]:
    """(lower, upper) = ((R / (eps + delta))^d, (1 + 2R / eps)^d) for the eps-covering number.

    The upper bound holds for any subset of the radius-R ball in R^d; the lower bound for a
    delta-dense subset of it (every point of the ball within delta of the set). With
    ``log=True`` the natural logs d log(R / (eps + delta)) and d log(1 + 2R / eps) are
    returned; without it a bound beyond the float64 range (about 1e308) is refused with a
    ValueError that points to ``log=True`` (a bound below 1e-308 is returned as 0.0).

    >>> volumetric_bounds(2, 1.0, 0.5)
    (4.0, 25.0)
    >>> [round(b, 6) for b in volumetric_bounds(100000, 1.0, 0.1, log=True)]
    [230258.509299, 304452.243772]
    """
    d = check_int("dim", dim, minimum=1)
    r = check_positive("radius", radius)
    eps = check_positive("eps", eps)
    delta = check_real("delta", delta)
    if delta < 0:
        raise ValueError(message("delta", ">= 0 (a density radius)", delta))
    log = check_bool("log", log)
    ratio = 2 * r / eps
    if math.isfinite(ratio):
        log_upper = d * math.log1p(ratio)
    else:  # 2R / eps overflows: log(1 + 2R / eps) = log 2 + log R - log eps to double precision
        log_upper = d * (math.log(2.0) + math.log(r) - math.log(eps))
    log_lower = d * (math.log(r) - math.log(eps + delta))
    if log:
        return log_lower, log_upper
    try:
        if log_upper >= _LOG_MAX:
            raise OverflowError
        return (r / (eps + delta)) ** d, (1 + ratio) ** d
    except OverflowError:
        raise ValueError(
            message(
                "dim, radius, eps",
                "such that (1 + 2 radius / eps)^dim fits a float64 (below 1.8e308)",
                (d, r, eps),
                f"Its log is {log_upper:.6g}; pass log=True to get the bounds as logs",
            )
        ) from None
