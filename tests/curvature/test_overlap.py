"""Gradient / top-subspace overlap against a dense eigendecomposition; the tracker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch

from dltheory.curvature import GradientOverlap, gradient_overlap


@dataclass(frozen=True)
class State:
    """A hand-built stand-in for dltheory.dynamics.TrainState (the fields trackers read)."""

    model: Any
    x: torch.Tensor
    y: torch.Tensor
    loss_fn: Any
    step: int = 0


def test_matches_dense_projection(problem):
    model, loss_fn, x, y, H = problem
    model.zero_grad()
    loss_fn(model(x), y).backward()
    g = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    V = torch.linalg.eigh(H).eigenvectors[:, -4:]
    expected = float(((V.T @ g) ** 2).sum() / (g @ g))
    r = gradient_overlap(model, loss_fn, (x, y), k=4, tol=1e-10)
    assert r.overlap == pytest.approx(expected, rel=1e-8)
    whole = gradient_overlap(model, loss_fn, (x, y), k=51, tol=1e-10).overlap
    assert whole == pytest.approx(1.0, abs=1e-10)  # the whole space


def test_tracker_protocol_and_warm_start(problem):
    model, loss_fn, x, y, _ = problem
    tracker = GradientOverlap(k=3, tol=1e-8)
    assert tracker.name == "grad_overlap_top3"
    state = State(model, x, y, loss_fn)
    first = tracker(state)
    used = tracker.n_matvecs
    second = tracker(state)  # same point: the warm start lies in the top subspace
    assert second == pytest.approx(first, rel=1e-6)
    assert tracker.n_matvecs - used < used
    assert 0.0 <= first <= 1.0


def test_bad_input(problem):
    model, loss_fn, x, y, _ = problem
    with pytest.raises(TypeError, match="state must be a TrainState with a 'model' attribute"):
        GradientOverlap(k=2)(object())
    with pytest.raises(ValueError, match="k must be at most the number of parameters 51"):
        gradient_overlap(model, loss_fn, (x, y), k=52)
    lin = torch.nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        lin.weight.zero_()
    mse = lambda o, t: 0.5 * ((o - t) ** 2).sum(1).mean()  # noqa: E731
    with pytest.raises(ValueError, match="gradient must be non-zero"):
        gradient_overlap(lin, mse, (torch.eye(2, dtype=torch.float64), torch.zeros(2, 1)), k=1)
