"""Fixed points of the diagonal kernel map."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dltheory.criticality import FixedPoint, fixed_points


def _gauss_expectation(f, k: float, n: int = 200) -> float:
    """Independent reference: Gauss-Hermite E[f(z)], z ~ N(0, k)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return float(np.sum(w * f(math.sqrt(k) * x)) / math.sqrt(2 * math.pi))


def test_tanh_unit_weights_only_zero_marginal() -> None:
    fps = fixed_points("tanh", 1.0, 0.0)
    assert not fps.line_of_fixed_points
    assert [p.k_star for p in fps] == [0.0]
    assert fps[0].stability == "marginal"
    assert fps[0].chi_parallel == pytest.approx(1.0, abs=1e-12)
    assert not fps[0].stable


def test_tanh_large_weights_nonzero_stable_point() -> None:
    fps = fixed_points("tanh", 2.0, 0.0)
    assert [p.stability for p in fps] == ["unstable", "stable"]
    k = fps[1].k_star
    assert k > 0
    residual = 2.0 * _gauss_expectation(lambda z: np.tanh(z) ** 2, k) - k
    assert abs(residual) < 1e-12
    assert fps[1].stable and abs(fps[1].chi_parallel) < 1


def test_relu_with_bias_closed_form() -> None:
    # K* = C_b + (C_w / 2) K*  =>  K* = C_b / (1 - C_w / 2); chi_parallel = C_w / 2.
    (p,) = fixed_points("relu", 1.5, 0.5)
    assert p.k_star == pytest.approx(2.0, rel=1e-13)
    assert p.chi_parallel == pytest.approx(0.75, rel=1e-13)
    assert p.stability == "stable"


@pytest.mark.parametrize(("name", "c_w"), [("identity", 1.0), ("relu", 2.0)])
def test_line_of_fixed_points_is_flagged(name: str, c_w: float) -> None:
    fps = fixed_points(name, c_w, 0.0)
    assert fps.line_of_fixed_points
    assert len(fps) == 0


def test_sigmoid_has_positive_fixed_point() -> None:
    (p,) = fixed_points("sigmoid", 4.0, 0.1)
    assert p.k_star > 0
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    assert 0.1 + 4.0 * _gauss_expectation(lambda z: sig(z) ** 2, p.k_star) == pytest.approx(
        p.k_star, abs=1e-12
    )


def test_result_is_frozen_and_validated() -> None:
    p = fixed_points("tanh", 1.0, 0.0)[0]
    with pytest.raises(AttributeError):
        p.k_star = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"k_star must be a finite variance >= 0"):
        FixedPoint(k_star=-1.0, chi_parallel=1.0, chi_perp=1.0, stability="stable")


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"c_b must be a variance >= 0\. Got -0\.1"):
        fixed_points("tanh", 1.0, -0.1)
    with pytest.raises(ValueError, match=r"k_max must be > 0\. Got 0\.0"):
        fixed_points("tanh", 1.0, 0.0, k_max=0.0)
    with pytest.raises(ValueError, match=r"c_w must be finite"):
        fixed_points("tanh", float("inf"), 0.0)
