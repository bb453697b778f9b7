"""Activation.from_callable: autograd derivatives of any order, and jump detection."""

from __future__ import annotations

import math

import pytest
import torch

from dltheory import Activation, activation

Z = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64)


def test_autograd_second_derivative_of_a_callable_keeps_its_graph():
    custom = Activation.from_callable(torch.tanh)
    t = torch.tanh(Z)
    # Closed forms: tanh' = 1 - tanh^2, tanh'' = -2 tanh (1 - tanh^2); float64 rounding only.
    torch.testing.assert_close(custom.d1(Z), 1 - t**2, rtol=0, atol=1e-15)
    torch.testing.assert_close(custom.d2(Z), -2 * t * (1 - t**2), rtol=0, atol=1e-15)
    assert not custom.d2(Z).requires_grad  # plain values for plain inputs


def test_polynomial_and_constant_derivatives():
    cube = Activation.from_callable(lambda z: z**3, name="cube")
    torch.testing.assert_close(cube.d1(Z), 3 * Z**2, rtol=1e-15, atol=0)
    torch.testing.assert_close(cube.d2(Z), 6 * Z, rtol=1e-15, atol=0)
    line = Activation.from_callable(lambda z: 2 * z, name="line")
    assert torch.equal(line.d2(Z), torch.zeros_like(Z))  # d1 = 2 does not depend on z
    step = Activation.from_callable(lambda z: (z > 0).double(), name="step", kinks=(0.0,))
    assert torch.equal(step.d1(Z), torch.zeros_like(Z))


def test_derivatives_differentiate_again_when_asked():
    custom = Activation.from_callable(torch.sin)
    z = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    (third,) = torch.autograd.grad(custom.d2(z), z)
    assert float(third) == pytest.approx(-math.cos(0.4), abs=1e-15)  # sin''' = -cos


@pytest.mark.parametrize(("name", "jumps"), [("step", (0.0,)), ("sign", (0.0,)), ("relu", ()),
                                             ("tanh", ()), ("elu", ())])  # fmt: skip
def test_jumps_of_the_registry(name, jumps):
    assert activation(name).jumps == jumps


def test_jumps_of_a_callable_at_a_declared_kink():
    hard = Activation.from_callable(lambda z: torch.where(z > 1, 1.0 + 0 * z, 0 * z), kinks=(1.0,))
    assert hard.jumps == (1.0,)
    clipped = Activation.from_callable(lambda z: z.clamp(0, 6), kinks=(0.0, 6.0))
    assert clipped.jumps == ()
