"""Tests that catch wrong numbers in the estimators (see benchmarks/mutation_testing.py).

Every expected value is computed independently here: dense NumPy solves of the
kernel system, Gaussian log-densities from SciPy, the documented rules.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from dltheory import MLP
from dltheory.estimators import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor

FIXED = {"optimizer": None, "normalize_y": False}


@pytest.fixture
def data():
    rng = np.random.default_rng(11)
    x, xs = rng.standard_normal((25, 3)), rng.standard_normal((4, 3))
    return x, xs, 3.0 * np.sin(x[:, 0]) + x[:, 1] + 10.0 + 0.3 * rng.standard_normal(25)


def _k(x1, x2=None, kind="nngp", depth=2, c_w=2.0, c_b=0.0):
    spec = MLP(depth, "relu", c_w=c_w, c_b=c_b)
    t2 = None if x2 is None else torch.from_numpy(x2)
    return getattr(spec.kernel(torch.from_numpy(x1), t2), kind).numpy()


def _gauss_logpdf(cov, cols):
    return sum(scipy.stats.multivariate_normal(np.zeros(len(cov)), cov).logpdf(c) for c in cols.T)


@pytest.mark.parametrize("cls", [NNGPRegressor, NTKRegressor], ids=lambda c: c.__name__)
def test_normalize_y_is_the_gp_of_the_standardised_targets(cls, data):
    x, xs, y = data
    kind = "nngp" if cls is NNGPRegressor else "ntk"
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(x))
    model = cls(depth=2, alpha=0.1, optimizer=None).fit(x, y, sample_weight=w)
    mu = np.average(y, weights=w)
    sd = np.sqrt(np.average((y - mu) ** 2, weights=w))
    k, k_sn = _k(x, kind=kind), _k(xs, x, kind=kind)
    a = np.linalg.solve(k + np.diag(0.1 / w), (y - mu) / sd)  # dense weighted ridge
    # cond(K + 0.1 W^-1) ~ 1e3: the Cholesky and the dense solve agree to ~1e-12.
    np.testing.assert_allclose(model.predict(xs), mu + sd * (k_sn @ a), rtol=0, atol=1e-9)
    # Evidence of the standardised targets with noise 0.1 / w_i, integer-free weights: the
    # repeated-samples term -((w - 1) log(2 pi alpha) + log w) / 2 is added (module doc).
    z = ((y - mu) / sd)[:, None]
    lml = _gauss_logpdf(k + np.diag(0.1 / w), z)
    lml -= 0.5 * float(((w - 1.0) * np.log(2 * np.pi * 0.1) + np.log(w)).sum())
    assert model.log_marginal_likelihood_ == pytest.approx(lml, rel=1e-9)


def test_constant_targets_are_predicted_exactly(data):
    x, xs, _ = data
    model = NNGPRegressor(depth=2, alpha=0.1, optimizer=None).fit(x, np.full(len(x), 7.5))
    np.testing.assert_allclose(model.predict(xs), 7.5, rtol=1e-14)
    _, std = model.predict(xs, return_std=True)
    k, k_sn, k_ss = _k(x), _k(xs, x), _k(xs)
    latent = np.diagonal(k_ss - k_sn @ np.linalg.solve(k + 0.1 * np.eye(len(x)), k_sn.T))
    np.testing.assert_allclose(std, np.sqrt(latent), rtol=1e-7)  # std of y is 0: scale 1


def test_two_column_targets_have_per_column_evidence_and_scales(data):
    x, xs, y = data
    y2 = np.column_stack([y, -2.0 * y + 1.0])
    model = NNGPRegressor(depth=2, alpha=0.1, optimizer=None).fit(x, y2)
    z = (y2 - y2.mean(0)) / y2.std(0)
    k = _k(x) + 0.1 * np.eye(len(x))
    assert model.log_marginal_likelihood_ == pytest.approx(_gauss_logpdf(k, z), rel=1e-9)
    k_sn = _k(xs, x)
    ref = y2.mean(0) + y2.std(0) * (k_sn @ np.linalg.solve(k, z))
    np.testing.assert_allclose(model.predict(xs), ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("cls", [NNGPClassifier, NTKClassifier], ids=lambda c: c.__name__)
def test_classifier_regresses_centred_one_hot_targets(cls):
    rng = np.random.default_rng(5)
    x, xs = rng.standard_normal((24, 2)), rng.standard_normal((5, 2))
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, 24)]
    kind = "nngp" if cls is NNGPClassifier else "ntk"
    model = cls(depth=1, c_b=0.1, alpha=0.2, optimizer=None, temperature=0.7).fit(x, labels)
    onehot = (labels[:, None] == np.array(["a", "b", "c"])).astype(float) - 1.0 / 3.0
    k = _k(x, kind=kind, depth=1, c_b=0.1) + 0.2 * np.eye(24)
    f = _k(xs, x, kind=kind, depth=1, c_b=0.1) @ np.linalg.solve(k, onehot)
    np.testing.assert_allclose(model.decision_function(xs), f, rtol=0, atol=1e-10)
    p = np.exp(f / 0.7)
    np.testing.assert_allclose(model.predict_proba(xs), p / p.sum(1, keepdims=True), atol=1e-12)
    assert model.temperature_ == 0.7
    np.testing.assert_array_equal(model.predict(xs), np.array(["a", "b", "c"])[f.argmax(1)])
    assert model.log_marginal_likelihood_ == pytest.approx(_gauss_logpdf(k, onehot), rel=1e-9)


def test_binary_decision_function_is_the_difference_of_the_two_outputs():
    rng = np.random.default_rng(6)
    x, xs = rng.standard_normal((20, 2)), rng.standard_normal((5, 2))
    labels = (x[:, 0] > 0).astype(int)
    model = NNGPClassifier(depth=1, alpha=0.2, optimizer=None).fit(x, labels)
    onehot = np.eye(2)[labels] - 0.5
    f = _k(xs, x, depth=1) @ np.linalg.solve(_k(x, depth=1) + 0.2 * np.eye(20), onehot)
    np.testing.assert_allclose(model.decision_function(xs), f[:, 1] - f[:, 0], atol=1e-10)


@pytest.mark.parametrize("n", [30])
def test_auto_solver_switches_exactly_at_exact_memory(n):
    x = np.random.default_rng(1).standard_normal((n, 2))
    y = np.sin(x[:, 0])
    kw = {"depth": 1, "alpha": 1e-2, **FIXED}
    # "auto" is exact while the 8 N^2 bytes of the float64 Gram fit in exact_memory.
    assert NNGPRegressor(exact_memory=8 * n * n, **kw).fit(x, y).solver_ == "exact"
    assert NNGPRegressor(exact_memory=8 * n * n - 1, **kw).fit(x, y).solver_ == "falkon"


def test_learned_hyperparameters_reach_the_reported_evidence(data):
    x, xs, y = data
    model = NNGPRegressor(depth=1, random_state=0).fit(x, y)
    z = ((y - y.mean()) / y.std())[:, None]
    k = _k(x, depth=1, c_w=model.c_w_, c_b=model.c_b_) + model.alpha_ * np.eye(len(x))
    # The reported evidence is the Gaussian log-density at the reported hyperparameters.
    assert model.log_marginal_likelihood_ == pytest.approx(_gauss_logpdf(k, z), rel=1e-8)
    # ... and no worse than at the starting point (c_w=2, c_b=0.1, noise=0.1 mean(z^2)).
    k0 = _k(x, depth=1, c_w=2.0, c_b=0.1) + 0.1 * np.eye(len(x))
    assert model.log_marginal_likelihood_ >= _gauss_logpdf(k0, z)
    a = np.linalg.solve(k, z[:, 0])
    ref = y.mean() + y.std() * (_k(xs, x, depth=1, c_w=model.c_w_, c_b=model.c_b_) @ a)
    np.testing.assert_allclose(model.predict(xs), ref, rtol=0, atol=1e-8)
