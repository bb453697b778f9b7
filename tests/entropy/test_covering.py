"""Greedy eps-nets: cover and packing properties, exact 1-D counts, volumetric bounds."""

import math

import pytest
import torch

from dltheory.entropy import covering_number, greedy_net, volumetric_bounds


@pytest.mark.parametrize("metric", ["l2", "sup"])
def test_greedy_net_is_a_cover_and_a_packing(metric):
    f = torch.randn(300, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps = 0.8
    centers = greedy_net(f, eps, metric)
    diff = f[:, None, :] - f[centers][None, :, :]
    dist = diff.abs().amax(-1) if metric == "sup" else diff.pow(2).mean(-1).sqrt()
    assert float(dist.min(1).values.max()) <= eps  # every function within eps of a centre
    between = dist[centers]
    off = between[~torch.eye(len(centers), dtype=torch.bool)]
    assert float(off.min()) > eps  # centres are eps-separated


def test_one_dimensional_grid_exact_count():
    # Integers 0..N-1, sup metric, eps = 1: a ball covers 3 neighbours, N(1) = ceil(N / 3).
    for n in (10, 31, 100):
        est = covering_number(torch.arange(float(n))[:, None], 1.0, metric="sup")
        assert est.lower <= math.ceil(n / 3) <= est.upper


def test_volumetric_bounds_on_a_dense_disk():
    # Grid of spacing h inside the unit disk: every point of the disk is within h of the grid
    # (delta = h), so (1 / (eps + h))^2 <= N(eps) <= greedy(eps) <= (1 + 2 / eps)^2.
    h = 0.02
    t = torch.arange(-1.0, 1.0 + h / 2, h, dtype=torch.float64)
    grid = torch.cartesian_prod(t, t)
    disk = grid[(grid**2).sum(1) <= 1.0]
    for eps in (0.1, 0.25, 0.5):
        lower, upper = volumetric_bounds(2, 1.0, eps, delta=h)
        # the "l2" metric is the root-mean-square over the 2 columns: scaling the points by
        # sqrt(2) makes it the Euclidean distance of the disk
        est = covering_number(disk * math.sqrt(2), eps)
        assert lower <= est.upper <= upper


def test_errors():
    with pytest.raises(ValueError, match="eps must be > 0"):
        greedy_net(torch.eye(3), 0.0)
    with pytest.raises(ValueError, match="metric must be one of 'l2', 'sup'"):
        greedy_net(torch.eye(3), 1.0, metric="l1")
    with pytest.raises(ValueError, match="f must be a 2-D array"):
        covering_number(torch.ones(3), 1.0)
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        volumetric_bounds(0, 1.0, 0.5)
