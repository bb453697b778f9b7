"""Counting bounds: Zaslavsky's count (equality in general position, checked by LP
enumeration of sign vectors in R^2 and R^3, and by exact 2-D regions), 3^N, n_1 + 1."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog
from torch import nn

from dltheory.regions import one_layer_1d_bound, pattern_bound, regions_2d, zaslavsky_count


def _feasible_sign_vectors(w: np.ndarray, b: np.ndarray) -> int:
    """Sign vectors e with {x : e_j (w_j.x + b_j) > 0 for all j} non-empty (max-margin LP)."""
    n, d = w.shape
    count = 0
    for signs in itertools.product((-1.0, 1.0), repeat=n):
        e = np.array(signs)
        # variables (x, m): maximise m s.t. -e_j (w_j.x + b_j) + m <= 0, m <= 1
        a_ub = np.hstack([-e[:, None] * w, np.ones((n, 1))])
        res = linprog(
            c=np.r_[np.zeros(d), -1.0],
            A_ub=a_ub,
            b_ub=e * b,
            bounds=[(None, None)] * d + [(None, 1.0)],
            method="highs",
        )
        count += res.status == 0 and -res.fun > 1e-9
    return count


def test_zaslavsky_closed_forms():
    for n in range(0, 12):
        assert zaslavsky_count(2, n) == 1 + n + n * (n - 1) // 2
        assert zaslavsky_count(n + 1, n) == 2**n  # n_1 <= n_0: every pattern
        assert zaslavsky_count(1, n) == one_layer_1d_bound(n) == n + 1
    assert pattern_bound(5) == 243 and math.log(pattern_bound(30), 3) == pytest.approx(30)


@pytest.mark.parametrize(("n_in", "n_hidden", "seed"), [(2, 5, 0), (2, 7, 1), (3, 6, 2), (3, 8, 3)])
def test_zaslavsky_equality_for_random_one_layer_nets(n_in, n_hidden, seed):
    rng = np.random.default_rng(seed)
    w, b = rng.standard_normal((n_hidden, n_in)), rng.standard_normal(n_hidden)
    assert _feasible_sign_vectors(w, b) == zaslavsky_count(n_in, n_hidden)


def test_zaslavsky_equality_with_exact_2d_regions():
    rng = np.random.default_rng(4)
    n = 6
    w, b = rng.standard_normal((n, 2)), rng.standard_normal(n)
    model = nn.Sequential(nn.Linear(2, n), nn.ReLU(), nn.Linear(n, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(w))
        model[0].bias.copy_(torch.from_numpy(b))
    # a box containing every vertex of the arrangement meets every (unbounded) cell
    vertices = [
        np.linalg.solve(w[[i, j]], -b[[i, j]]) for i, j in itertools.combinations(range(n), 2)
    ]
    r = 2 * np.abs(vertices).max() + 1
    result = regions_2d(model, [0, 0], [1, 0], [0, 1], (-r, r))
    assert result.n_regions == zaslavsky_count(2, n) == 22
    assert result.n_regions <= 2**n <= pattern_bound(n)


def test_deep_counts_respect_the_pattern_bounds():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.ReLU()).double()
    result = regions_2d(model, [0, 0], [1, 0], [0, 1], (-50, 50))
    assert result.n_regions <= 2**6 <= pattern_bound(6)


def test_error_messages():
    with pytest.raises(ValueError, match=r"^n_in must be an integer >= 1\. Got 0\."):
        zaslavsky_count(0, 3)
    with pytest.raises(TypeError, match=r"^n_hidden must be an integer\. Got 2\.5\."):
        zaslavsky_count(2, 2.5)
    with pytest.raises(ValueError, match=r"^n_neurons must be an integer >= 0\. Got -1\."):
        pattern_bound(-1)
