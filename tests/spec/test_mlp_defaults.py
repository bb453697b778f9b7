"""MLP's C_w, C_b default to the activation's critical point, as on the command line."""

from __future__ import annotations

import math

import pytest

from dltheory import MLP
from dltheory.spec.mlp import default_variances


@pytest.mark.parametrize(
    ("name", "c_w"),
    [
        ("relu", 2.0),  # He et al. (2015): E[relu(z)^2] = K/2
        ("tanh", 1.0),  # K* = 0 class: C_w = 1 / s'(0)^2, tanh'(0) = 1
        ("erf", math.pi / 4),  # erf'(0) = 2 / sqrt(pi)
        ("identity", 1.0),
    ],
)
def test_default_is_the_closed_form_critical_point_and_in_the_repr(name, c_w):
    spec = MLP(3, name)
    assert all(d.c_w == pytest.approx(c_w, rel=1e-12) and d.c_b == 0.0 for d in spec.layers[::2])
    assert f"c_w={spec.layers[0].c_w!r}" in repr(spec)
    assert default_variances(name).source == "critical point"


def test_explicit_values_win_and_the_old_default_is_one_argument_away():
    assert MLP(2, "relu", c_w=1.0).layers[0].c_w == 1.0
    assert MLP(2, "relu", c_w=1.0, c_b=0.0) == MLP(2, "relu", 1.0, 0.0)
    mixed = default_variances("gelu", c_w=1.5)
    assert mixed.c_w == 1.5 and mixed.c_b > 0 and mixed.source == "given / critical point"
    assert default_variances("relu", 1.0, 0.5) == (1.0, 0.5, "given")


def test_no_critical_point_falls_back_to_one_and_says_so():
    for name in ("sigmoid", "softplus", "step"):
        got = default_variances(name)
        assert (got.c_w, got.c_b) == (1.0, 0.0)
        assert got.source.startswith("no critical point")
        assert MLP(1, name).layers[0].c_w == 1.0
