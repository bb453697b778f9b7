"""In-place blocked Cholesky: equal to LAPACK's factor, jitter, errors, panel boundaries."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from dltheory.kernels import cholesky
from dltheory.kernels.cholesky import cholesky_in_place, jitter_schedule

EPS = np.finfo(np.float64).eps


def _spd(n, seed=0, floor=0.1):
    """A random SPD matrix with eigenvalues in [floor, floor + ~4]: condition <= ~40."""
    x = np.random.default_rng(seed).standard_normal((n, n + 3))
    return x @ x.T / (n + 3) + floor * np.eye(n)


@pytest.mark.parametrize(("n", "panel"), [(1, 512), (5, 2), (50, 7), (64, 16), (1100, 512)])
def test_factor_equals_lapack_and_keeps_the_upper_triangle(monkeypatch, n, panel):
    # Panels of 7 and 512 do not divide 50 and 1100: the last panel is a short one.
    monkeypatch.setattr(cholesky, "_PANEL", panel)
    k = _spd(n, seed=n)
    c = cholesky_in_place(np.array(k, order="F"))
    ref = scipy.linalg.cholesky(k, lower=True)
    ref_torch = torch.linalg.cholesky(torch.from_numpy(k)).numpy()
    # Cholesky is backward stable: each factor's error is <= c n eps cond(K) |L| with
    # cond(K) <= ~40 here, so 10 n eps * 40 bounds the difference of two factors.
    tol = 400 * n * EPS * np.abs(ref).max()
    np.testing.assert_allclose(np.tril(c.buffer), ref, rtol=0, atol=tol)
    np.testing.assert_allclose(np.tril(c.buffer), ref_torch, rtol=0, atol=tol)
    # The strict upper triangle is untouched, bit for bit.
    np.testing.assert_array_equal(np.triu(c.buffer, 1), np.triu(k, 1))
    assert c.jitter == 0.0
    b = np.random.default_rng(1).standard_normal((n, 2))
    # Solve: backward stable, so relative error <= c n eps cond(K).
    x = np.linalg.solve(k, b)
    np.testing.assert_allclose(c.solve(b), x, rtol=0, atol=400 * n * EPS * np.abs(x).max())
    assert c.logdet() == pytest.approx(np.linalg.slogdet(k)[1], rel=1e-12, abs=1e-12 * n)


def test_jitter_found_in_a_later_panel_undoes_the_earlier_ones(monkeypatch):
    # Rank-10 PSD kernel of 60 points with panels of 16: the first panels factorise
    # (they are positive definite), a later one fails, the buffer is restored from the
    # upper triangle and the next jitter is tried from the start.
    monkeypatch.setattr(cholesky, "_PANEL", 16)
    x = np.random.default_rng(3).standard_normal((60, 10))
    k = x @ x.T / 10
    k[:16, :16] += np.eye(16)  # the first panel is well conditioned
    c = cholesky_in_place(np.array(k, order="F"))
    scale = float(np.abs(np.diagonal(k)).mean())
    assert c.jitter in jitter_schedule(scale, 8)[1:]
    lower = np.tril(c.buffer)
    # L L^T reproduces K + jitter I to the backward error c n eps |K|.
    np.testing.assert_allclose(lower @ lower.T, k + c.jitter * np.eye(60), rtol=0,
                               atol=100 * 60 * EPS * np.abs(k).max())  # fmt: skip
    np.testing.assert_array_equal(np.triu(c.buffer, 1), np.triu(k, 1))


def test_non_positive_definite_error_names_the_smallest_eigenvalue(monkeypatch):
    monkeypatch.setattr(cholesky, "_PANEL", 8)
    k = _spd(20)
    k[15, 15] = -2.0  # fails in the second panel, whatever the jitter
    smallest = np.linalg.eigvalsh(k)[0]
    with pytest.raises(
        ValueError, match=rf"smallest eigenvalue {smallest:.3e}".replace("+", r"\+")
    ):
        cholesky_in_place(np.array(k, order="F"), max_tries=3)


def test_non_finite_kernels_are_rejected(monkeypatch):
    monkeypatch.setattr(cholesky, "_PANEL", 4)
    k = _spd(10)
    k[7, 2] = k[2, 7] = np.nan
    with pytest.raises(ValueError, match=r"kernel must be finite\. Got 'non-finite entries'"):
        cholesky_in_place(np.array(k, order="F"), max_tries=2)
    k = _spd(10)
    k[3, 3] = np.inf
    with pytest.raises(ValueError, match="kernel must be finite"):
        cholesky_in_place(np.array(k, order="F"))


def test_shift_is_added_before_factorising():
    k = _spd(30, floor=0.0) - 0.05 * np.eye(30)  # may be indefinite without the shift
    c = cholesky_in_place(np.array(k, order="F"), shift=1.0)
    lower = np.tril(c.buffer)
    np.testing.assert_allclose(lower @ lower.T, k + np.eye(30), rtol=0, atol=1e3 * EPS)
    np.testing.assert_array_equal(c.diagonal, np.diagonal(k))


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -1.0, 0.0, True])
def test_scale_is_checked(scale):
    a = np.asfortranarray(np.eye(3))
    with pytest.raises((ValueError, TypeError), match="scale must be"):
        cholesky_in_place(a, scale=scale)
    with pytest.raises((ValueError, TypeError), match="scale must be"):
        jitter_schedule(scale, 3)


# ------------------------------------------------ mixed precision: float32 factor, float64 CG
U32, U64 = 2.0**-24, 2.0**-53


def _conditioned(n, kappa, seed=0):
    """Q diag(geomspace(1, 1/kappa)) Q^T: condition number kappa exactly (up to rounding)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    a = (q * np.geomspace(1.0, 1.0 / kappa, n)) @ q.T
    return np.asfortranarray((a + a.T) / 2)


@pytest.mark.parametrize("kappa", [1e2, 1e4])
def test_mixed_solve_equals_the_float64_solve(kappa):
    n = 300
    a = _conditioned(n, kappa, seed=int(kappa))
    b = np.random.default_rng(1).standard_normal((n, 3))
    b[:, 2] = 0.0  # a zero right-hand side stays zero
    ref = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, lower=True), b)
    m = cholesky.mixed_cholesky(a)
    out = m.refine(b)
    assert out.converged and out.residuals[-1] <= m.tol
    assert m.condition <= kappa * (1 + 1e-6)  # the estimate is a lower bound
    # Both solutions have backward error <= tol (ours, checked) and <= ~n u64 (float64
    # Cholesky, Higham 2002 Thm. 10.4 normwise): forward errors <= 2 kappa eta each.
    bound = 2 * kappa * (m.tol + n * U64) * 2
    assert bound <= 1e-8
    err = np.abs(out.x - ref).max() / np.abs(ref).max()
    assert err <= bound
    assert np.array_equal(out.x[:, 2], np.zeros(n))
    assert np.allclose(m.solve(b[:, 0]), out.x[:, 0], rtol=0, atol=bound * np.abs(ref).max())
    # V^T V = B^T A^-1 B from the exact series, to the same forward-error bound.
    kt = np.random.default_rng(2).standard_normal((n, 4))
    v = m.solve_lower(kt)
    quad = kt.T @ scipy.linalg.cho_solve(scipy.linalg.cho_factor(a, lower=True), kt)
    assert np.abs(v.T @ v - quad).max() <= bound * np.abs(quad).max()
    # log det from the float32 factor: |log det(I + F)| <= n ||F|| / (1 - ||F||), ||F|| of
    # order (n u32) kappa for a float32 Cholesky (Higham Thm. 10.3): a float32-accurate value.
    f_norm = n * U32 * kappa
    assert abs(m.logdet() - np.linalg.slogdet(a)[1]) <= n * f_norm / (1 - min(f_norm, 0.5))


def test_mixed_cholesky_reads_k_and_applies_the_shift():
    a = _spd(40, seed=3)
    k = np.array(a, order="F")
    m = cholesky.mixed_cholesky(k, shift=0.5)
    assert np.array_equal(k, a)  # K is not written
    b = np.arange(40.0)
    ref = np.linalg.solve(a + 0.5 * np.eye(40), b)
    assert np.allclose(m.solve(b), ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    assert m.lower.dtype == np.float32 and m.lower.flags.f_contiguous and m.jitter == 0.0


def test_mixed_cholesky_refuses_what_float32_cannot_precondition():
    with pytest.raises(cholesky.MixedPrecisionError):
        cholesky.mixed_cholesky(_conditioned(200, 1e10))  # breaks down in float32
    with pytest.raises(cholesky.MixedPrecisionError, match="conditioned for float32"):
        # kappa 1e5 is fine for float32 but not under a stricter u32 kappa <= 1e-6
        cholesky.mixed_cholesky(_conditioned(200, 1e5), max_u_kappa=1e-6)
    with pytest.raises(ValueError, match="Fortran"):
        cholesky.mixed_cholesky(np.eye(3))  # C order


def test_mixed_refinement_stops_when_float32_is_not_enough():
    # max_iter 1: not converged, reported rather than returned as an answer.
    a = _conditioned(200, 1e4)
    m = cholesky.MixedCholesky(**{**cholesky.mixed_cholesky(a).__dict__, "max_iter": 1})
    out = m.refine(np.ones(200))
    assert not out.converged and out.iterations == 1
    with pytest.raises(cholesky.MixedPrecisionError, match="refinement"):
        m.solve(np.ones(200))
