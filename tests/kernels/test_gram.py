"""In-place Gram panels, block products and the Cholesky with adaptive jitter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltheory import MLP
from dltheory.estimators import NNGPRegressor
from dltheory.kernels import cholesky_in_place, gram_matrix, kernel_product
from dltheory.kernels.cholesky import jitter_schedule
from dltheory.kernels.gram import panel_rows
from dltheory.parallel import pool


@pytest.fixture
def data() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).standard_normal((37, 4)))


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
@pytest.mark.parametrize("block_rows", [1, 5, 64])
def test_gram_panels_equal_the_dense_kernel(data, kind, block_rows):
    spec = MLP(depth=2, activation="relu", c_w=2.0, c_b=0.1)
    dense = getattr(spec.kernel(data), kind).numpy()
    out = gram_matrix(spec, data, kind=kind, block_rows=block_rows)
    assert out.flags.f_contiguous
    # Blocked BLAS Grams round differently: a few ulps of the largest entry.
    np.testing.assert_allclose(out, dense, rtol=0, atol=1e-13 * np.abs(dense).max())
    np.testing.assert_array_equal(out, out.T)  # both triangles written from one panel
    np.testing.assert_array_equal(np.diagonal(out), np.diagonal(dense))  # exact diagonal pass


def test_gram_into_a_given_buffer_and_its_errors(data):
    spec = MLP(depth=1, activation="erf")
    buf = np.empty((37, 37), order="F")
    assert gram_matrix(spec, data, out=buf) is buf
    with pytest.raises(ValueError, match=r"out must be a Fortran-ordered float64 array"):
        gram_matrix(spec, data, out=np.empty((37, 37)))
    with pytest.raises(ValueError, match="kind must be one of"):
        gram_matrix(spec, data, kind="k")
    with pytest.raises(ValueError, match="x must be a 2-D array"):
        gram_matrix(spec, data[0])


def test_panel_rows_keep_the_panels_small():
    # 3 arrays of b x N doubles within 5 % of the N x N Gram: b = 0.05 N / 3.
    assert panel_rows(20_000, 20_000) == 333
    assert panel_rows(10, 10) == 10
    assert panel_rows(10**6, 10**6) == 2048


@pytest.mark.parametrize("twice", [False, True])
def test_kernel_product_matches_dense(data, twice):
    spec = MLP(depth=3, activation="relu", c_w=2.0)
    x2 = data[:11]
    v = torch.from_numpy(np.random.default_rng(1).standard_normal((11, 2)))
    k = spec.kernel(data, x2).ntk
    expected = k.T @ (k @ v) if twice else k @ v
    got = kernel_product(spec, data, x2, v, kind="ntk", block_rows=7, gram_twice=twice)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


def test_kernel_product_errors(data):
    spec = MLP(depth=1)
    with pytest.raises(ValueError, match=r"v must be of shape \(37,\) or \(37, k\)"):
        kernel_product(spec, data, data, torch.ones(5, dtype=torch.float64))


def test_two_worker_local_cluster_equals_serial(data):
    """Blocked products on a real 2-worker LocalCluster equal the serial ones.

    Same blocks, same single thread per block; only BLAS rounding may differ
    (alignment of the arrays a worker receives), so the tolerance is a few ulps.
    """
    spec = MLP(depth=2, activation="relu", c_w=2.0)
    v = torch.from_numpy(np.random.default_rng(2).standard_normal(37))
    with pool("serial") as p:
        serial = kernel_product(spec, data, data, v, block_rows=9, pool=p)
    y = np.sin(data[:, 0].numpy())
    kw = {"depth": 2, "alpha": 1e-2, "solver": "cg", "n_inducing": 20, "random_state": 0,
          "tol": 1e-10}  # fmt: skip
    local = NNGPRegressor(**kw).fit(data, y).predict(data)
    with pool("dask", n_workers=2) as p:  # one cluster for the products and the estimator
        assert len(p._client.scheduler_info()["workers"]) == 2
        on_dask = kernel_product(spec, data, data, v, block_rows=9, pool=p)
        address = p._client.scheduler.address
        remote = NNGPRegressor(**kw, backend="dask", address=address).fit(data, y).predict(data)
    torch.testing.assert_close(on_dask, serial, rtol=1e-14, atol=1e-14 * float(serial.abs().max()))
    # Both are CG solutions of one system to a relative residual of 1e-10; rounding
    # differences in the products move the iterates, not the solution: with the
    # preconditioned system's condition number below 1e3 they agree to 1e-7.
    np.testing.assert_allclose(remote, local, rtol=1e-7, atol=1e-7 * np.abs(local).max())


def test_cholesky_needs_no_jitter_for_a_positive_definite_kernel():
    k = np.asfortranarray([[4.0, 2.0], [2.0, 3.0]])
    c = cholesky_in_place(k, shift=1.0)
    lower = np.tril(c.buffer)
    np.testing.assert_allclose(lower @ lower.T, [[5.0, 2.0], [2.0, 4.0]], rtol=1e-15)
    assert c.jitter == 0.0 and c.buffer[0, 1] == 2.0  # upper triangle keeps K
    assert c.logdet() == pytest.approx(np.log(16.0), rel=1e-14)


def test_cholesky_adds_jitter_to_a_singular_kernel_and_reports_it():
    # Duplicate inputs: a rank-one PSD kernel. The factor satisfies L L^T = K + jitter I.
    u = np.array([1.0, 2.0, 2.0])
    k = np.outer(u, u)
    c = cholesky_in_place(np.asfortranarray(k))
    assert c.jitter in jitter_schedule(3.0, 8)[1:]
    lower = np.tril(c.buffer)
    np.testing.assert_allclose(lower @ lower.T, k + c.jitter * np.eye(3), atol=1e-12)


def test_cholesky_error_names_the_smallest_eigenvalue():
    k = np.asfortranarray([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3, -1
    with pytest.raises(
        ValueError, match=r"kernel must be positive definite.*smallest eigenvalue -1\.000e\+00"
    ):
        cholesky_in_place(k)
    with pytest.raises(ValueError, match="a must be a square Fortran-ordered float64 array"):
        cholesky_in_place(np.ones((2, 3)))
    with pytest.raises(ValueError, match="shift must be a variance >= 0"):
        cholesky_in_place(np.asfortranarray(np.eye(2)), shift=-1.0)


@pytest.mark.parametrize("tile", [None, 7])
def test_tiled_gram_equals_a_numpy_arccos_recursion(tile):
    """The tiled pass (per-tile x_a . x_b products, tiles not dividing N) against the
    arc-cosine recursion written out in NumPy (Cho & Saul 2009; Jacot et al. 2018)."""
    x = np.random.default_rng(3).standard_normal((300, 5))
    c_w, c_b, depth = 2.0, 0.1, 3
    k = c_b + c_w * (x @ x.T) / x.shape[1]
    t = k.copy()
    for _ in range(depth):
        sd = np.sqrt(np.diag(k))
        rho = np.clip(k / np.outer(sd, sd), -1.0, 1.0)
        angle = np.pi - np.arccos(rho)
        e_ss = np.outer(sd, sd) * (np.sqrt(1 - rho**2) + angle * rho) / (2 * np.pi)
        e_dd = angle / (2 * np.pi)
        k, t = c_b + c_w * e_ss, c_b + c_w * e_ss + c_w * e_dd * t
    spec = MLP(depth=depth, activation="relu", c_w=c_w, c_b=c_b)
    xt = torch.from_numpy(x)
    for kind, want in (("nngp", k), ("ntk", t)):
        got = gram_matrix(spec, xt, kind=kind, block_rows=tile)
        # Both sides round a few ulps per layer (BLAS sums, arccos near rho = 1: ~1e-8
        # there, scaled by sin): 1e-7 of the largest entry bounds it with margin.
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7 * np.abs(want).max())
        np.testing.assert_array_equal(got, got.T)
