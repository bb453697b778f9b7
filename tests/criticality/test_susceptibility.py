"""chi_parallel and chi_perp against closed forms and finite differences."""

from __future__ import annotations

import pytest
import torch

from dltheory import activation
from dltheory.criticality import chi_parallel, chi_perp

KS = (0.1, 0.7, 1.0, 3.0, 25.0)


@pytest.mark.parametrize("k", KS)
def test_relu_he_init_is_critical_for_every_k(k: float) -> None:
    assert float(chi_parallel("relu", 2.0, k)) == pytest.approx(1.0, abs=1e-14)
    assert float(chi_perp("relu", 2.0, k)) == pytest.approx(1.0, abs=1e-14)


def test_linear_unit_weight_variance_is_critical() -> None:
    k = torch.tensor(KS, dtype=torch.float64)
    torch.testing.assert_close(chi_parallel("identity", 1.0, k), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(chi_perp("identity", 1.0, k), torch.ones(5, dtype=torch.float64))


def test_vectorised_shape_and_float_input() -> None:
    k = torch.rand(2, 3, dtype=torch.float64) + 0.1
    assert chi_perp("tanh", 1.0, k).shape == (2, 3)
    assert chi_parallel("erf", 1.0, 0.5).shape == ()


@pytest.mark.parametrize("name", ["tanh", "erf", "gelu", "relu"])
@pytest.mark.parametrize("k", [0.4, 2.0])
def test_chi_parallel_is_derivative_of_diagonal_map(name: str, k: float) -> None:
    c_w, c_b, h = 1.7, 0.3, 1e-4
    act = activation(name)

    def diag(v: float) -> float:
        return c_b + c_w * float(act.second_moment(torch.tensor(v, dtype=torch.float64)))

    # Fourth-order central difference: error O(h^4) ~ 1e-16, rounding ~ 1e-12 / h.
    fd = (-diag(k + 2 * h) + 8 * diag(k + h) - 8 * diag(k - h) + diag(k - 2 * h)) / (12 * h)
    assert float(chi_parallel(name, c_w, k)) == pytest.approx(fd, abs=1e-7)


@pytest.mark.parametrize("name", ["tanh", "erf", "gelu"])
@pytest.mark.parametrize("k", [0.4, 2.0])
def test_chi_perp_is_off_diagonal_derivative(name: str, k: float) -> None:
    c_w, h = 1.3, 1e-4
    act = activation(name)
    kk = torch.tensor(k, dtype=torch.float64)

    def off(k12: float) -> float:
        return c_w * float(act.nngp_map(kk, torch.tensor(k12, dtype=torch.float64), kk))

    # One-sided (k12 <= K) fourth-order stencil ending at the diagonal.
    pts = [k - j * h for j in range(5)]
    coef = (25 / 12, -4, 3, -4 / 3, 1 / 4)
    fd = sum(c * off(p) for c, p in zip(coef, pts, strict=True)) / h
    assert float(chi_perp(name, c_w, k)) == pytest.approx(fd, abs=1e-7)


@pytest.mark.parametrize("k", [0.4, 2.0])
def test_relu_chi_perp_is_limit_of_off_diagonal_derivative(k: float) -> None:
    # The arc-cosine kernel has a sqrt(1 - rho) cusp at the diagonal, so a finite
    # difference there converges slowly. Check the derivative just below the
    # diagonal against its closed form C_w (pi - theta) / (2 pi), whose limit
    # theta -> 0 is C_w / 2 (Cho & Saul 2009).
    c_w, h = 1.3, 1e-5
    act = activation("relu")
    kk = torch.tensor(k, dtype=torch.float64)
    k12 = 0.99 * k

    def off(v: float) -> float:
        return c_w * float(act.nngp_map(kk, torch.tensor(v, dtype=torch.float64), kk))

    fd = (off(k12 + h) - off(k12 - h)) / (2 * h)
    theta = torch.arccos(torch.tensor(0.99, dtype=torch.float64))
    assert fd == pytest.approx(c_w * float(torch.pi - theta) / (2 * torch.pi), abs=1e-7)
    assert float(chi_perp("relu", c_w, k)) == pytest.approx(c_w / 2, abs=1e-15)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"c_w must be a variance >= 0\. Got -1\.0"):
        chi_perp("tanh", -1.0, 1.0)
    with pytest.raises(ValueError, match=r"k must be a variance >= 0"):
        chi_parallel("tanh", 1.0, -0.5)
    with pytest.raises(ValueError, match=r"k must be finite"):
        chi_parallel("tanh", 1.0, float("nan"))
    with pytest.raises(ValueError, match=r"activation must be one of"):
        chi_perp("tanhh", 1.0, 1.0)
