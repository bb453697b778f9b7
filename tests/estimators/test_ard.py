"""Per-feature input variances (ARD) and the ReLU fast path of the evidence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score

from dltheory import MLP
from dltheory.estimators import NNGPClassifier, NNGPRegressor, NTKRegressor
from dltheory.estimators.evidence import BOUNDS, _Objective, _relu_kernel, _torch_kernel

RELU = MLP(1, "relu").layers[1].activation


def _inputs(n=40, d=4, seed=0):
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, d)))
    return x, x @ x.T / d, (x * x).sum(1) / d


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
@pytest.mark.parametrize("depth", [1, 3])
def test_relu_fast_path_equals_library_kernel(kind, depth):
    # Independent reference: the library's kernel (fused arc-cosine engine). Distinct
    # points, so no pair sits at the rho clamp; both are float64 closed forms (1e-12).
    x, gram, diag = _inputs()
    fast = _relu_kernel(depth, kind, 1.7, 0.3, gram, diag)
    ref = getattr(MLP(depth, "relu", c_w=1.7, c_b=0.3).kernel(x), kind)
    assert torch.allclose(fast, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_relu_fast_path_gradient_equals_generic_autograd(kind):
    # The generic path differentiates the library's maps with the diagonal split off;
    # the fast path uses J' = (pi - theta) / (2 pi). Same derivative: 1e-9 relative
    # (the generic path clamps rho at 1 - 1e-10 off the diagonal).
    _, gram, diag = _inputs()
    grads = []
    for fn in (_relu_kernel, lambda *a: _torch_kernel(RELU, *a)):
        t = torch.tensor([0.4, -1.0], dtype=torch.float64, requires_grad=True)
        k = fn(2, kind, torch.exp(t[0]), torch.exp(t[1]), gram, diag)
        (g,) = torch.autograd.grad((k * k).sum(), t)
        grads.append(g)
    assert torch.allclose(grads[0], grads[1], rtol=1e-9)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_ard_gradient_matches_finite_differences(activation):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 3))
    y = (x[:, :1] + 0.1 * rng.standard_normal((30, 1))).copy()
    act = MLP(1, activation).layers[1].activation
    obj = _Objective(x, y, np.ones(30), act, 2, "nngp", "ntk", None, activation, ard=True)
    p = np.array([0.3, -1.5, -2.0, 0.2, -0.7, 1.1])
    _, grad = obj(p)
    h = 1e-5  # central differences: truncation ~h^2 |f'''| ~ 1e-10, rounding ~1e-16 |f| / h
    fd = np.array([(obj(p + h * e)[0] - obj(p - h * e)[0]) / (2 * h) for e in np.eye(len(p))])
    assert np.allclose(grad, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())


def _relevance_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((200, 6))
    f = np.sin(1.5 * x[:, 0]) + x[:, 1] ** 2 / 2  # features 2..5 irrelevant
    return x[:120], x[120:], f[:120] + 0.1 * rng.standard_normal(120), f[120:]


def test_ard_switches_off_irrelevant_features_and_improves_r2():
    xtr, xte, ytr, fte = _relevance_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        iso = NNGPRegressor(depth=2, random_state=0).fit(xtr, ytr)
    with pytest.warns(ConvergenceWarning, match=r"feature_variances\[\d\]"):
        ard = NNGPRegressor(depth=2, random_state=0, feature_variances="learn").fit(xtr, ytr)
    v = ard.feature_variances_
    assert v.shape == (6,)
    low = BOUNDS["feature_variances"][0]
    assert min(v[0], v[1]) > 1e3 * max(v[2:])  # the relevant ones dominate
    # The evidence is flat as v_i -> 0 (the feature no longer enters), so L-BFGS-B stops
    # at or near the lower bound: all within 100x of it, at least one on it (the warning).
    assert np.all(v[2:] <= 100 * low) and np.any(np.isclose(v[2:], low, rtol=0.02))
    r2_iso, r2_ard = r2_score(fte, iso.predict(xte)), r2_score(fte, ard.predict(xte))
    assert r2_ard > r2_iso + 0.02, (r2_iso, r2_ard)


def test_fixed_feature_variances_equal_scaled_inputs():
    xtr, xte, ytr, _ = _relevance_data()
    v = np.array([2.0, 0.5, 1.0, 0.1, 3.0, 1.0])
    kw = dict(depth=2, alpha=0.1, optimizer=None, normalize_y=False)
    a = NNGPRegressor(feature_variances=v, **kw).fit(xtr, ytr)
    b = NNGPRegressor(**kw).fit(xtr * np.sqrt(v), ytr)
    np.testing.assert_allclose(a.predict(xte), b.predict(xte * np.sqrt(v)), rtol=1e-10)
    _, sa = a.predict(xte, return_std=True)
    _, sb = b.predict(xte * np.sqrt(v), return_std=True)
    np.testing.assert_allclose(sa, sb, rtol=1e-10)
    assert a.feature_variances_ is v or np.array_equal(a.feature_variances_, v)


@pytest.mark.parametrize("bad", ["ard", [1.0, 2.0], [1.0, 0.0, 1.0, 1.0, 1.0, 1.0]])
def test_bad_feature_variances_refused(bad):
    xtr, _, ytr, _ = _relevance_data()
    with pytest.raises(ValueError, match="feature_variances"):
        NNGPRegressor(feature_variances=bad, optimizer=None, alpha=0.1).fit(xtr, ytr)


def test_ard_in_ntk_regressor_and_classifier():
    xtr, xte, ytr, fte = _relevance_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ntk = NTKRegressor(depth=2, random_state=0, feature_variances="learn").fit(xtr, ytr)
        clf = NNGPClassifier(depth=2, random_state=0, feature_variances="learn")
        clf.fit(xtr, ytr > np.median(ytr))
    assert ntk.feature_variances_.shape == (6,) and ntk.score(xte, fte) > 0.9
    assert clf.feature_variances_.shape == (6,)
    assert clf.predict_proba(xte).shape == (80, 2)
    # without an optimizer "learn" keeps every variance at 1
    fixed = NNGPRegressor(feature_variances="learn", optimizer=None, alpha=0.1).fit(xtr, ytr)
    assert np.array_equal(fixed.feature_variances_, np.ones(6))
