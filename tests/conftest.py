"""Shared fixtures: the case grid (activations x depths x seeds) and small inputs.

Activations with a closed-form Gaussian dual are cheap everywhere; quadrature
ones (Mehler series) cost ~0.1 s a kernel, so tests use few of them.
"""

from __future__ import annotations

import pytest
import torch

CLOSED_FORM = ("relu", "leaky_relu", "abs", "erf", "sin", "cos", "identity", "step", "sign")
QUADRATURE = ("tanh", "gelu")
DEPTHS = (1, 3)
SEEDS = (0, 1)


@pytest.fixture(params=CLOSED_FORM)
def closed_form_activation(request: pytest.FixtureRequest) -> str:
    """Each registered activation with closed-form Gaussian maps."""
    return request.param


@pytest.fixture(params=QUADRATURE)
def quadrature_activation(request: pytest.FixtureRequest) -> str:
    """A few activations whose Gaussian maps come from quadrature."""
    return request.param


@pytest.fixture(params=DEPTHS)
def depth(request: pytest.FixtureRequest) -> int:
    """Hidden-layer counts L of the case grid."""
    return request.param


@pytest.fixture(params=SEEDS)
def seed(request: pytest.FixtureRequest) -> int:
    """Seeds of the case grid."""
    return request.param


@pytest.fixture
def inputs() -> torch.Tensor:
    """Five float64 inputs in R^3: generic directions, one repeated, one negated."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(3, 3, generator=g, dtype=torch.float64)
    return torch.cat([x, x[:1], -x[1:2]])
