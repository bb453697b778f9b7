"""RKHS tools: norms, kernel ridge in representer form, Mercer spectra."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import torch
from sklearn.kernel_ridge import KernelRidge

from dltheory import MLP
from dltheory.kernels import kernel_ridge, mercer_eigen, rkhs_norm, sphere_spectrum


@pytest.fixture
def gram():
    rng = np.random.default_rng(1)
    x, xs = rng.standard_normal((25, 4)), rng.standard_normal((5, 4))
    spec = MLP(depth=2, activation="erf", c_w=1.5, c_b=0.2)
    k = spec.kernel(torch.from_numpy(x)).nngp.numpy()
    k_sn = spec.kernel(torch.from_numpy(xs), torch.from_numpy(x)).nngp.numpy()
    return k, k_sn, np.cos(x[:, 0])


def test_rkhs_norm_is_y_kinv_y(gram):
    k, _, y = gram
    assert rkhs_norm(k, y) ** 2 == pytest.approx(y @ np.linalg.solve(k, y), rel=1e-9)


def test_kernel_ridge_equals_scikit_learn_on_the_same_gram(gram):
    k, k_sn, y = gram
    sol = kernel_ridge(k, k_sn, y, ridge=0.3)
    ref = KernelRidge(alpha=0.3, kernel="precomputed").fit(k, y)
    np.testing.assert_allclose(sol.alpha, ref.dual_coef_, rtol=1e-10)
    np.testing.assert_allclose(sol.prediction, ref.predict(k_sn), rtol=1e-10)
    assert sol.rkhs_norm == pytest.approx(math.sqrt(sol.alpha @ k @ sol.alpha), rel=1e-12)


def test_mercer_eigen_and_nystrom_extension(gram):
    k, _, _ = gram
    dec = mercer_eigen(k, 3)
    lam = np.linalg.eigvalsh(k)[::-1][:3]
    np.testing.assert_allclose(dec.eigenvalues, lam / 25, rtol=1e-12)
    # At the training points the extension is sqrt(N) u_i (K u = lambda u).
    np.testing.assert_allclose(dec.eigenfunctions(k), 5.0 * dec.eigenvectors, atol=1e-10)


def _arccos_nngp(t):
    """Depth-1 ReLU NNGP, c_w = 2, |x|^2 / n_0 = 1 (Cho & Saul 2009): K^(1) = 2t, and
    K^(2) = c_w K^(1)(1) (sin th + (pi - th) cos th) / (2 pi), th = arccos t."""
    theta = np.arccos(np.clip(t, -1, 1))
    return 2.0 * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / np.pi


@pytest.mark.parametrize("ell", [0, 1, 2, 4])
def test_sphere_spectrum_equals_independent_quadrature(ell):
    d = 5
    spec = MLP(depth=1, activation="relu", c_w=2.0)
    got = sphere_spectrum(spec, d, max_degree=6).eigenvalues[ell]
    lam = (d - 2) / 2
    norm = scipy.special.eval_gegenbauer(ell, lam, 1.0)
    const = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d - 1) / 2))
    integrand = lambda t: (  # noqa: E731
        _arccos_nngp(t) * scipy.special.eval_gegenbauer(ell, lam, t) / norm * (1 - t * t) ** 1.0
    )
    ref = const * scipy.integrate.quad(integrand, -1, 1, epsabs=1e-14, epsrel=1e-12)[0]
    assert got == pytest.approx(ref, rel=1e-8, abs=1e-13)


def test_sphere_spectrum_trace_and_decay():
    # sum_l N(d, l) mu_l = k(1) = 2; the tail beyond l = 200 is O(l^-4) (mu_l ~ l^-(d+2),
    # N(d, l) ~ l^(d-2)): below 1e-6 here.
    s = sphere_spectrum(MLP(depth=1, activation="relu", c_w=2.0), 3, max_degree=200)
    assert float((s.multiplicities * s.eigenvalues).sum()) == pytest.approx(2.0, abs=1e-5)
    # Arc-cosine kernel of degree 1 on S^2: mu_l ~ l^-(d+2) = l^-5 (Bach 2017).
    assert s.decay_exponent == pytest.approx(5.0, abs=0.3)
    ntk = sphere_spectrum(MLP(depth=1, activation="relu", c_w=2.0), 3, 200, kind="ntk")
    assert ntk.decay_exponent == pytest.approx(3.0, abs=0.3)  # NTK: l^-d (Bietti & Mairal 2019)


def test_errors():
    with pytest.raises(ValueError, match="k_train_train must be a square kernel matrix"):
        rkhs_norm(np.ones((2, 3)), [1.0, 1.0])
    with pytest.raises(ValueError, match=r"y must be of shape \(2,\)"):
        rkhs_norm(np.eye(2), [1.0])
    with pytest.raises(ValueError, match="dim must be an integer >= 3"):
        sphere_spectrum(MLP(depth=1), 2)
