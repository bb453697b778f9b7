"""Tests that catch wrong code in the Cholesky, the GP and the kernel ridge solvers.

Each test here was written against mutants that survived the rest of the suite
(``benchmarks/mutation_testing.py``): a changed constant, operator or argument
that still gave passing tests. They check public results against independent
computations (dense NumPy / SciPy solves, closed forms, scikit-learn), never
against numbers printed by the code itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltheory.kernels import cholesky
from dltheory.kernels.cholesky import as_fortran_copy, cholesky_in_place, jitter_schedule

EPS = np.finfo(np.float64).eps


# ------------------------------------------------------------------ cholesky.py
def test_jitter_schedule_is_zero_then_tenfold_from_1e_12_of_the_scale():
    # Closed form of the documented schedule: 0, then scale * 10^(k - 12), k = 0, 1, ...
    got = jitter_schedule(3.0, 5)
    np.testing.assert_allclose(got, [0.0, 3e-12, 3e-11, 3e-10, 3e-9], rtol=1e-14, atol=0)
    assert jitter_schedule(3.0, 1) == [0.0]  # max_tries = 1 is allowed: no jitter at all
    with pytest.raises(ValueError, match=r"max_tries must be an integer >= 1\. Got 0"):
        jitter_schedule(3.0, 0)


def test_default_tries_stop_at_a_jitter_of_1e_6_of_the_scale():
    # K has eigenvalues ~2 and -eps_k with eps_k = 3e-6 * 1 / 2 (det = -3e-6): a jitter
    # 1e-6 (the 8th and last default try, 1e-12 ... 1e-6) is not enough, 1e-5 (a 9th) is.
    k = np.array([[1.0, 1.0], [1.0, 1.0 - 3e-6]])
    smallest = np.linalg.eigvalsh(k)[0]
    assert -1e-5 < smallest < -1e-6
    scale = float(np.mean(np.diagonal(k)))
    with pytest.raises(ValueError, match=r"jitter of 1\.0e-06"):
        cholesky_in_place(np.asfortranarray(k))
    c = cholesky_in_place(np.asfortranarray(k), max_tries=9)
    assert c.jitter == pytest.approx(1e-5 * scale, rel=1e-12)


def test_zero_kernel_takes_its_jitter_scale_from_1():
    # mean |diag K| = 0: the documented scale is 1, so the first nonzero jitter 1e-12 works.
    c = cholesky_in_place(np.zeros((3, 3), order="F"))
    assert c.jitter == 1e-12
    np.testing.assert_allclose(np.diagonal(c.buffer), np.sqrt(1e-12), rtol=1e-14)


def test_error_names_the_smallest_eigenvalue_of_k_plus_the_shift():
    k = np.diag([1.0, 2.0, -3.0])
    with pytest.raises(ValueError, match=r"smallest eigenvalue -2\.500e\+00"):
        cholesky_in_place(np.asfortranarray(k), shift=0.5, max_tries=2)


@pytest.mark.parametrize(
    "bad",
    [
        np.ones(4),  # 1-D
        np.ones((3, 4), order="F"),  # not square
        np.ascontiguousarray(np.eye(3) + 0.1),  # C order
        np.asfortranarray(np.eye(3), dtype=np.float32),
    ],
    ids=["1d", "non-square", "c-order", "float32"],
)
def test_buffer_must_be_a_square_fortran_float64_array(bad):
    with pytest.raises(ValueError, match="a must be a square Fortran-ordered float64 array"):
        cholesky_in_place(bad)


@pytest.mark.parametrize("fail_panel", [1, 9])
def test_failure_in_a_late_panel_restores_every_earlier_panel(monkeypatch, fail_panel):
    # Panels of 4 columns; rows/columns 4 * fail_panel + (0, 1) are duplicates with the
    # second diagonal lowered by 1e-8 (eigenvalue ~ -5e-9), so K is indefinite only from
    # that panel on: every earlier panel is factorised, then undone.
    monkeypatch.setattr(cholesky, "_PANEL", 4)
    rng = np.random.default_rng(7)
    n = 42
    x = rng.standard_normal((n, n + 5))
    i = 4 * fail_panel
    x[i + 1] = x[i]
    k = x @ x.T / (n + 5)
    k[i + 1, i + 1] -= 1e-8
    c = cholesky_in_place(np.array(k, order="F"))
    scale = float(np.mean(np.diagonal(k)))
    assert c.jitter in jitter_schedule(scale, 8)[1:]
    lower = np.tril(c.buffer)
    # Backward error of Cholesky: |L L^T - (K + jitter I)| <= c n eps |K|.
    np.testing.assert_allclose(lower @ lower.T, k + c.jitter * np.eye(n), rtol=0,
                               atol=100 * n * EPS * np.abs(k).max())  # fmt: skip
    np.testing.assert_array_equal(np.triu(c.buffer, 1), np.triu(k, 1))
    assert c.logdet() == pytest.approx(np.linalg.slogdet(k + c.jitter * np.eye(n))[1], rel=1e-8)


def test_as_fortran_copy_is_a_fresh_square_float64_copy():
    k = np.asfortranarray(np.arange(9.0).reshape(3, 3))
    out = as_fortran_copy(k)
    assert out.dtype == np.float64 and out.flags.f_contiguous
    assert not np.shares_memory(out, k)  # the Cholesky overwrites it in place
    np.testing.assert_array_equal(out, k)
    out32 = as_fortran_copy(torch.eye(2, dtype=torch.float32))
    assert out32.dtype == np.float64 and out32.flags.f_contiguous
    with pytest.raises(ValueError, match=r"k must be a square matrix\. Got 'shape \(2, 3\)'"):
        as_fortran_copy(np.ones((2, 3)))
    with pytest.raises(ValueError, match="k must be a 2-D"):
        as_fortran_copy(np.ones(3))


def test_gp_leaves_the_callers_kernel_untouched():
    from dltheory.kernels import gp_posterior

    k = np.asfortranarray([[2.0, 0.5], [0.5, 1.0]])
    before = k.copy()
    gp_posterior(k, k, [1.0, 0.0], noise=0.1)
    np.testing.assert_array_equal(k, before)


def test_given_scale_and_shift_are_used_and_reported():
    c = cholesky_in_place(np.zeros((2, 2), order="F"), scale=5.0)
    assert c.jitter == pytest.approx(5e-12, rel=1e-14)  # 5 * 10^-12, the first nonzero try
    c = cholesky_in_place(np.asfortranarray(np.eye(2)), shift=0.25)
    assert c.shift == 0.25 and c.jitter == 0.0
    np.testing.assert_allclose(np.diagonal(c.buffer), np.sqrt(1.25), rtol=1e-15)


def test_cholesky_error_messages_in_full():
    # The project's one message format: "<name> must be <constraint>. Got <value>. <fix>."
    with pytest.raises(ValueError) as err:
        cholesky_in_place(np.ones((3, 4), order="F"))
    assert str(err.value) == (
        "a must be a square Fortran-ordered float64 array. Got (3, 4). "
        "Use np.asfortranarray(k, dtype=np.float64)."
    )
    with pytest.raises(ValueError) as err:
        cholesky_in_place([[1.0]])
    assert str(err.value).startswith(
        "a must be a square Fortran-ordered float64 array. Got 'list'."
    )
    with pytest.raises(ValueError) as err:
        cholesky_in_place(np.asfortranarray(np.eye(2)), shift=-1.0)
    assert (
        str(err.value) == "shift must be a variance >= 0. Got -1.0. Variances cannot be negative."
    )
    with pytest.raises(ValueError) as err:
        cholesky_in_place(np.asfortranarray(np.eye(2)), max_tries=0)
    assert str(err.value) == "max_tries must be an integer >= 1. Got 0."
    bad = np.asfortranarray(np.eye(2))
    bad[1, 1] = np.nan
    with pytest.raises(ValueError) as err:
        cholesky_in_place(bad)
    assert str(err.value) == "kernel must be finite. Got 'non-finite diagonal entries'."
    with pytest.raises(ValueError) as err:
        cholesky_in_place(np.asfortranarray(np.diag([1.0, -1.0])), max_tries=1)
    assert str(err.value) == (
        "kernel must be positive definite (K + noise I, even with a jitter of 0.0e+00). "
        "Got 'smallest eigenvalue -1.000e+00'. Increase the noise / ridge term (alpha), "
        "remove duplicate inputs, or check that the kernel is a valid covariance."
    )


def test_non_finite_entries_in_the_last_panel_are_found(monkeypatch):
    monkeypatch.setattr(cholesky, "_PANEL", 4)
    k = np.eye(10) + 0.1
    k[9, 8] = k[8, 9] = np.inf  # only in the last two columns, off the diagonal
    with pytest.raises(ValueError, match=r"kernel must be finite\. Got 'non-finite entries'"):
        cholesky_in_place(np.array(k, order="F"), max_tries=2)
