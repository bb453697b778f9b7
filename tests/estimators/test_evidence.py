"""Hyperparameters learned in fit: exact gradients, a real optimum, bounds, calibration."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.optimize
import torch
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from dltheory import MLP
from dltheory.estimators import NNGPClassifier, NNGPRegressor, NTKRegressor
from dltheory.estimators.evidence import _Objective
from dltheory.kernels.gp import log_marginal_likelihood


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 3))
    return x, np.sin(2 * x[:, 0]) + 0.3 * x[:, 1] + 0.1 * rng.standard_normal(40)


def _reference_lml(x, y, activation, depth, kind, c_w, c_b, noise):
    """log p(y) from the library kernel and kernels.gp (an independent Cholesky route)."""
    spec = MLP(depth, activation, c_w=c_w, c_b=c_b)
    return log_marginal_likelihood(getattr(spec.kernel(torch.from_numpy(x)), kind), y, noise=noise)


@pytest.mark.parametrize(
    ("activation", "kind"), [("relu", "nngp"), ("relu", "ntk"), ("erf", "ntk"), ("gelu", "nngp")]
)
def test_evidence_gradient_matches_central_differences(data, activation, kind):
    x, y = data
    act = MLP(1, activation).layers[1].activation
    objective = _Objective(x, y[:, None], np.ones(len(x)), act, 2, kind, "ntk", None, activation)
    p = np.log([1.3, 0.2, 0.05])  # not an optimum: the gradient is O(1)
    value, grad = objective(p)
    h = 1e-4  # central differences: error ~ h^2 |f'''| ~ 1e-7 relative

    def lml(q):
        return _reference_lml(x, y, activation, 2, kind, *np.exp(q))

    fd = [(lml(p + h * e) - lml(p - h * e)) / (2 * h) for e in np.eye(3)]
    # The autograd kernel clamps |rho| <= 1 - 1e-10 off the diagonal: relative ~1e-9.
    assert value == pytest.approx(-lml(p), rel=1e-8)
    np.testing.assert_allclose(-grad, fd, rtol=2e-5, atol=1e-5)


def test_fit_reaches_an_evidence_maximum(data):
    x, y = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = NNGPRegressor(depth=2, normalize_y=False, c_w=1.0, c_b=0.5).fit(x, y)
    p = np.log([model.c_w_, model.c_b_, model.alpha_])
    best = _reference_lml(x, y, "relu", 2, "nngp", *np.exp(p))
    # log_marginal_likelihood_ is the exact fit's evidence (R&W Eq. 5.8), jitter 0 here.
    assert model.log_marginal_likelihood_ == pytest.approx(best, rel=1e-10)
    for e in np.eye(3):  # every neighbour 5 % away in a log-parameter has lower evidence
        for step in (-0.05, 0.05):
            assert _reference_lml(x, y, "relu", 2, "nngp", *np.exp(p + step * e)) < best


def test_depth_is_chosen_by_evidence(data):
    x, y = data
    model = NNGPRegressor(depth_grid=(1, 3), normalize_y=False, random_state=0).fit(x, y)
    other = 3 if model.depth_ == 1 else 1
    rival = NNGPRegressor(depth=other, normalize_y=False, random_state=0).fit(x, y)
    assert model.depth_ in (1, 3)
    assert model.log_marginal_likelihood_ >= rival.log_marginal_likelihood_


def test_optimizer_none_keeps_the_given_hyperparameters(data):
    x, y = data
    model = NTKRegressor(depth=3, c_w=1.5, c_b=0.2, alpha=0.3, optimizer=None).fit(x, y)
    assert (model.depth_, model.c_w_, model.c_b_, model.alpha_) == (3, 1.5, 0.2, 0.3)
    assert NNGPRegressor(optimizer=None).fit(x, y).depth_ == 2  # depth="auto", no optimizer


def test_optimum_on_a_bound_warns():
    x = np.linspace(-1, 1, 30)[:, None] * np.array([[1.0, 0.5]])
    y = 2.0 * x[:, 0]  # noiseless and in the kernel's span: the noise wants to vanish
    with pytest.warns(ConvergenceWarning, match="optimum of noise = .* lies on a bound"):
        NNGPRegressor(depth=1).fit(x, y)


def test_restarts_never_lower_the_evidence(data):
    x, y = data
    one = NNGPRegressor(depth=2, random_state=0).fit(x, y)
    more = NNGPRegressor(depth=2, n_restarts_optimizer=2, random_state=0).fit(x, y)
    assert more.log_marginal_likelihood_ >= one.log_marginal_likelihood_ - 1e-8


def test_normalize_y_scales_back(data):
    x, y = data
    kw = {"depth": 2, "alpha": 0.1, "optimizer": None}
    base = NNGPRegressor(**kw).fit(x, y)
    shifted = NNGPRegressor(**kw).fit(x, 5.0 * y + 100.0)  # GP of the standardised targets
    np.testing.assert_allclose(shifted.predict(x[:5]), 5.0 * base.predict(x[:5]) + 100.0)
    _, s1 = base.predict(x[:5], return_std=True)
    _, s2 = shifted.predict(x[:5], return_std=True)
    np.testing.assert_allclose(s2, 5.0 * s1, rtol=1e-10)


def test_temperature_minimises_the_leave_one_out_log_loss():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((24, 2))
    labels = (x[:, 0] + 0.7 * rng.standard_normal(24) > 0).astype(int)
    model = NNGPClassifier(depth=1, c_b=0.1, alpha=0.2, optimizer=None).fit(x, labels)
    # Independent reference: 24 refits, each without one sample, then a 1-D minimisation.
    margins = []
    for i in range(24):
        keep = np.arange(24) != i
        fold = NNGPClassifier(depth=1, c_b=0.1, alpha=0.2, optimizer=None, temperature=1.0)
        margins.append(fold.fit(x[keep], labels[keep]).decision_function(x[i : i + 1])[0])
    sign = np.where(labels == 1, 1.0, -1.0) * np.array(margins)

    def loss(log_t):
        return float(np.mean(np.logaddexp(0.0, -sign / math.exp(log_t))))

    ref = math.exp(scipy.optimize.minimize_scalar(loss, bounds=(-8, 8), method="bounded").x)
    assert model.temperature_ == pytest.approx(ref, rel=1e-3)  # bounded Brent's tolerance


def test_held_out_accuracy_matches_gaussian_process_regressor():
    """A fast version of benchmarks/estimator_accuracy.py (diabetes, 200 training points)."""
    x, y = load_diabetes(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x, y, train_size=200, test_size=200, random_state=0)
    scaler = StandardScaler().fit(xtr)
    xtr, xte = scaler.transform(xtr), scaler.transform(xte)
    gpr = GaussianProcessRegressor(
        ConstantKernel() * RBF() + WhiteKernel(), normalize_y=True, random_state=0
    ).fit(xtr, ytr)
    ours = NNGPRegressor(depth_grid=(1, 2), random_state=0).fit(xtr, ytr)
    assert ours.score(xte, yte) >= gpr.score(xte, yte) - 0.01
