"""scikit-learn estimators from infinite networks: conventions, exactness, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from dltheory import MLP
from dltheory.estimators import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor

ESTIMATORS = [NNGPRegressor, NTKRegressor, NNGPClassifier, NTKClassifier]
FIXED = {"optimizer": None, "normalize_y": False}  # the given hyperparameters, raw targets


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_check_estimator(cls):
    expected = {}
    if issubclass(cls, ClassifierMixin):
        # A repeated sample stays in its own leave-one-out fold (its copies do not), so
        # the calibrated temperature differs between weights and repeats, by design.
        expected["check_sample_weight_equivalence_on_dense_data"] = "leave-one-out calibration"
    check_estimator(cls(depth=1, optimizer=None), expected_failed_checks=expected)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x, xs = rng.standard_normal((60, 3)), rng.standard_normal((9, 3))
    return x, xs, np.sin(x[:, 0]) + x[:, 1] * x[:, 2]


def _blocks(spec, x, xs, kind):
    tx, ts = torch.from_numpy(x), torch.from_numpy(xs)
    return [
        getattr(s, kind).numpy() for s in (spec.kernel(tx), spec.kernel(ts, tx), spec.kernel(ts))
    ]


def test_nngp_regression_is_the_exact_gp_posterior(data):
    x, xs, y = data
    k, k_sn, k_ss = _blocks(MLP(3, "relu", c_w=2.0, c_b=0.1), x, xs, "nngp")
    noise = 1e-2
    inv = np.linalg.inv(k + noise * np.eye(len(x)))  # dense NumPy reference
    model = NNGPRegressor(depth=3, c_w=2.0, c_b=0.1, alpha=noise, **FIXED).fit(x, y)
    mean, cov = model.predict(xs, return_cov=True)
    _, std = model.predict(xs, return_std=True)
    # cond(K + 1e-2 I) ~ 1e4: both routes agree to ~1e4 ulps of O(1) entries.
    np.testing.assert_allclose(mean, k_sn @ inv @ y, rtol=0, atol=1e-10)
    np.testing.assert_allclose(cov, k_ss - k_sn @ inv @ k_sn.T, rtol=0, atol=1e-10)
    np.testing.assert_allclose(std**2, np.diagonal(cov), rtol=0, atol=1e-10)
    assert model.solver_ == "exact" and model.jitter_ == 0.0


def test_ntk_at_infinity_is_kernel_regression_with_the_ntk(data):
    x, xs, y = data
    spec = MLP(2, "erf", c_w=1.5, c_b=0.3)
    theta, theta_sn, _ = _blocks(spec, x, xs, "ntk")
    ref = KernelRidge(alpha=1e-3, kernel="precomputed").fit(theta, y).predict(theta_sn)
    got = NTKRegressor(spec=spec, alpha=1e-3, normalize_y=False).fit(x, y).predict(xs)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


def test_ntk_at_finite_time_follows_gradient_flow(data):
    x, xs, y = data
    theta, theta_sn, _ = _blocks(MLP(2, "relu", c_w=2.0), x, xs, "ntk")
    lam, vec = np.linalg.eigh(theta)
    t, lr, n = 3.0, 0.5, len(x)
    # f_t = Theta_*n Theta^-1 (I - exp(-lr Theta t / N)) y for L = |f - y|^2 / (2N).
    ref = theta_sn @ vec @ (-np.expm1(-lr * lam * t / n) / lam * (vec.T @ y))
    got = NTKRegressor(depth=2, t=t, lr=lr, alpha=0.0, **FIXED).fit(x, y).predict(xs)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)
    early = NTKRegressor(depth=2, t=0.0, alpha=0.0, **FIXED).fit(x, y).predict(xs)
    np.testing.assert_array_equal(early, 0.0)  # the mean output at initialisation


def test_cg_solvers_agree_with_exact(data):
    x, xs, y = data
    exact = NNGPRegressor(depth=2, alpha=1e-2, **FIXED).fit(x, y).predict(xs)
    pcg = NNGPRegressor(depth=2, alpha=1e-2, solver="cg", tol=1e-12, random_state=0, **FIXED)
    falkon = NNGPRegressor(depth=2, alpha=1e-2, solver="cg", n_inducing=60, tol=1e-12, **FIXED)
    # Relative residual 1e-12 and ||(K + 1e-2 I)^-1|| <= 100: alpha within ~1e-9.
    np.testing.assert_allclose(pcg.fit(x, y).predict(xs), exact, atol=1e-8)
    np.testing.assert_allclose(falkon.fit(x, y).predict(xs), exact, atol=1e-8)
    assert pcg.solver_ == "pcg" and falkon.solver_ == "falkon" and pcg.n_iter_ >= 1


def test_grid_search_over_depth_in_a_pipeline(data):
    x, _, y = data
    pipe = make_pipeline(StandardScaler(), NNGPRegressor(alpha=1e-2, optimizer=None))
    search = GridSearchCV(pipe, {"nngpregressor__depth": [1, 2, 4]}, cv=3).fit(x, y)
    assert search.best_params_["nngpregressor__depth"] in (1, 2, 4)
    assert len(search.cv_results_["mean_test_score"]) == 3


def test_classifier_probabilities_follow_the_documented_rule():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((45, 2))
    y = np.array(["a", "b", "c"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 1).astype(int)]
    model = NNGPClassifier(depth=1, alpha=1e-2, temperature=0.2, optimizer=None).fit(x, y)
    f = model.decision_function(x)
    z = np.exp((f - f.max(1, keepdims=True)) / 0.2)
    np.testing.assert_allclose(model.predict_proba(x), z / z.sum(1, keepdims=True), rtol=1e-12)
    assert (model.predict(x) == model.classes_[f.argmax(1)]).all()
    assert model.score(x, y) > 0.9  # nearly separable training data, small ridge


def test_duplicate_inputs_are_fitted_with_reported_jitter():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    model = NNGPRegressor(depth=1, alpha=0.0, **FIXED).fit(x, [1.0, 1.0, 2.0])
    assert model.jitter_ > 0
    np.testing.assert_allclose(model.predict(x), [1.0, 1.0, 2.0], atol=1e-4)


@pytest.mark.parametrize("cls", [NNGPRegressor, NTKClassifier], ids=lambda c: c.__name__)
def test_bad_input_gives_scikit_learn_errors(cls):
    x, y = np.ones((4, 2)), np.array([0.0, 1.0, 0.0, 1.0])
    model = cls(depth=1)
    with pytest.raises(NotFittedError):
        model.predict(x)
    for bad in (np.nan, np.inf):
        xb = x.copy()
        xb[0, 0] = bad
        with pytest.raises(ValueError, match=r"Input X contains (NaN|infinity)"):
            model.fit(xb, y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        model.fit(x, y[:3])
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        model.fit(x[:, 0], y)
    model.fit(x, y)
    with pytest.raises(ValueError, match="X has 3 features, but"):
        model.predict(np.ones((2, 3)))


def test_bad_target_values():
    with pytest.raises(ValueError, match="Input y contains NaN"):
        NNGPRegressor().fit(np.ones((3, 2)), [1.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="Unknown label type"):
        NNGPClassifier().fit(np.ones((3, 2)), [0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"depth": 0}, r"depth. parameter of NNGPRegressor must be an integer in \[1, 100000\]"),
        ({"depth": 10**12}, r"depth. parameter of NNGPRegressor must be an integer in \[1, 100000"),
        ({"alpha": -1.0}, "The 'alpha' parameter of NNGPRegressor must be a real number >= 0"),
        ({"solver": "lu"}, "The 'solver' parameter of NNGPRegressor must be one of"),
        ({"solver": "cg", "alpha": 0.0, "optimizer": None}, "must be > 0 for the CG solvers"),
        ({"backend": "ray"}, "The 'backend' parameter of NNGPRegressor must be 'serial' or 'dask'"),
        ({"spec": "relu"}, "The 'spec' parameter of NNGPRegressor must be None or a dltheory"),
    ],
)
def test_hyperparameter_errors(params, pattern):
    with pytest.raises(ValueError, match=pattern):
        NNGPRegressor(**params).fit(np.ones((3, 2)), [1.0, 2.0, 3.0])


def test_spread_needs_the_exact_solver(data):
    x, xs, y = data
    model = NNGPRegressor(alpha=1e-2, solver="cg", n_inducing=10, optimizer=None).fit(x, y)
    with pytest.raises(ValueError, match=r"solver must be 'exact' \(or 'cg' without n_inducing"):
        model.predict(xs, return_std=True)
    with pytest.raises(ValueError, match="The 't' parameter of NTKRegressor"):
        NTKRegressor(t=-1.0).fit(x, y)
    with pytest.raises(ValueError, match="'exact' or 'auto' for a finite training time"):
        NTKRegressor(t=1.0, solver="cg", alpha=1.0).fit(x, y)


def _lee_reference(spec, x, xs, y, t, lr, ridge):
    """Lee et al. (2019) Eqs. (15)-(16), dense: mean and covariance over initialisations.

    With Theta_r = Theta + ridge I and A = Theta_*n Theta_r^-1 (I - expm(-lr Theta_r t / N))
    (A = Theta_*n Theta_r^-1 at t = inf): mean A y, cov K_** + A K A^T - A K_n* - K_*n A^T.
    """
    import scipy.linalg

    theta, theta_sn, _ = _blocks(spec, x, xs, "ntk")
    k, k_sn, k_ss = _blocks(spec, x, xs, "nngp")
    theta_r = theta + ridge * np.eye(len(x))
    flow = np.eye(len(x)) if t is None else np.eye(len(x)) - scipy.linalg.expm(
        -lr * theta_r * t / len(x))  # fmt: skip
    a = theta_sn @ np.linalg.solve(theta_r, flow)
    return a @ y, k_ss + a @ k @ a.T - a @ k_sn.T - k_sn @ a.T


@pytest.mark.parametrize("t", [None, 2.0])
def test_ntk_spread_and_finite_time_mean_with_a_ridge(data, t):
    x, xs, y = data
    spec = MLP(2, "relu", c_w=2.0, c_b=0.1)
    mean_ref, cov_ref = _lee_reference(spec, x, xs, y, t, 0.7, 0.05)
    model = NTKRegressor(depth=2, c_b=0.1, t=t, lr=0.7, alpha=0.05, **FIXED).fit(x, y)
    mean, cov = model.predict(xs, return_cov=True)
    _, std = model.predict(xs, return_std=True)
    # cond(Theta + 0.05 I) ~ 1e3-1e4: eigendecomposition vs dense solve agree to ~1e-11.
    np.testing.assert_allclose(mean, mean_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cov, cov_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(std, np.sqrt(np.diagonal(cov_ref)), rtol=1e-7)
