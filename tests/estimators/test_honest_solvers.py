"""What ran is what is reported: solver names, convergence, shapes, randomness, weights."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from dltheory import MLP
from dltheory.estimators import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor

FIXED = {"optimizer": None, "normalize_y": False}


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    x, xs = rng.standard_normal((50, 3)), rng.standard_normal((7, 3))
    return x, xs, np.sin(x[:, 0]) + 0.5 * x[:, 1]


def _nngp(x1, x2=None, depth=2, c_w=2.0, c_b=0.0, kind="nngp"):
    spec = MLP(depth, "relu", c_w=c_w, c_b=c_b)
    t2 = None if x2 is None else torch.from_numpy(x2)
    return getattr(spec.kernel(torch.from_numpy(x1), t2), kind).numpy()


@pytest.mark.parametrize("cls", [NNGPRegressor, NTKRegressor], ids=lambda c: c.__name__)
def test_auto_above_exact_memory_runs_and_reports_falkon(cls, data):
    x, xs, y = data
    model = cls(depth=2, alpha=1e-2, exact_memory=1000, **FIXED).fit(x, y)
    assert model.solver_ == "falkon" and model.factor_ is None
    for kw in ({"return_std": True}, {"return_cov": True}):
        with pytest.raises(ValueError, match="Falkon's Nystrom model has no posterior variance"):
            model.predict(xs, **kw)


def test_solver_names():
    x, y = np.random.default_rng(0).standard_normal((20, 2)), np.arange(20.0)
    names = {
        (s, m): NNGPRegressor(solver=s, n_inducing=m, alpha=1e-2, **FIXED).fit(x, y).solver_
        for s, m in [("auto", None), ("exact", None), ("cg", None), ("cg", 10)]
    }
    assert names == {
        ("auto", None): "exact",
        ("exact", None): "exact",
        ("cg", None): "pcg",
        ("cg", 10): "falkon",
    }


@pytest.mark.parametrize("n_inducing", [None, 30])
def test_iterative_solvers_that_stop_short_warn(n_inducing):
    x = np.random.default_rng(0).standard_normal((300, 3))  # more points than PCG's rank 200
    y = np.sin(x[:, 0])
    model = NNGPRegressor(alpha=1e-8, solver="cg", n_inducing=n_inducing, max_iter=2, **FIXED)
    with pytest.warns(ConvergenceWarning, match="solver stopped after 2 iterations"):
        model.fit(x, y)
    assert not model.converged_


@pytest.mark.parametrize("cls", [NNGPClassifier, NTKClassifier], ids=lambda c: c.__name__)
def test_one_class_is_refused(cls):
    with pytest.raises(
        ValueError, match=r"y must be labels of at least 2 classes\. Got 'one class"
    ):
        cls().fit(np.ones((4, 2)), [1, 1, 1, 1])


def test_two_dimensional_targets_give_per_column_spread(data):
    x, xs, y = data
    y2 = np.column_stack([y, 10.0 * y + 3.0])
    model = NNGPRegressor(depth=2, alpha=1e-2, optimizer=None).fit(x, y2)  # normalize_y
    mean, std = model.predict(xs, return_std=True)
    _, cov = model.predict(xs, return_cov=True)
    assert mean.shape == (7, 2) and std.shape == (7, 2) and cov.shape == (7, 7, 2)
    k, k_sn, k_ss = _nngp(x), _nngp(xs, x), _nngp(xs)
    latent = k_ss - k_sn @ np.linalg.solve(k + 1e-2 * np.eye(len(x)), k_sn.T)  # dense reference
    scale = y2.std(axis=0)  # normalize_y: the latent GP is of y / std(y), per column
    np.testing.assert_allclose(cov, latent[:, :, None] * scale**2, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(std, np.sqrt(np.diagonal(latent))[:, None] * scale, rtol=1e-7)


def test_random_state_objects_are_honoured(data):
    x, xs, y = data

    def falkon(rs):
        model = NNGPRegressor(alpha=1e-2, solver="cg", n_inducing=10, random_state=rs, **FIXED)
        return model.fit(x, y).predict(xs)

    np.testing.assert_array_equal(falkon(np.random.RandomState(4)), falkon(4))
    assert not np.allclose(falkon(np.random.RandomState(4)), falkon(5))


def test_factor_is_kept_only_where_predictions_need_it(data):
    x, _, y = data
    labels = (y > 0).astype(int)
    assert NNGPRegressor(alpha=1e-2, **FIXED).fit(x, y).factor_ is not None  # return_std
    assert NTKRegressor(alpha=1e-2, **FIXED).fit(x, y).factor_ is None
    clf = NNGPClassifier(alpha=1e-2, optimizer=None).fit(x, labels)
    assert clf.factor_ is None and len(pickle.dumps(clf)) < 8 * len(x) ** 2


def test_sample_weight_is_weighted_ridge(data):
    x, xs, y = data
    w = np.random.default_rng(0).uniform(0.2, 3.0, len(x))
    k, k_sn = _nngp(x), _nngp(xs, x)
    ref = k_sn @ np.linalg.solve(k + np.diag(1e-2 / w), y)  # (K + alpha W^-1)^-1 y, dense
    exact = NNGPRegressor(alpha=1e-2, **FIXED).fit(x, y, sample_weight=w)
    pcg = NNGPRegressor(alpha=1e-2, solver="cg", tol=1e-12, **FIXED).fit(x, y, sample_weight=w)
    # cond(K + alpha W^-1) <= ~1e4: agreement to ~1e4 ulps; CG residual 1e-12 -> ~1e-9.
    np.testing.assert_allclose(exact.predict(xs), ref, atol=1e-10)
    np.testing.assert_allclose(pcg.predict(xs), ref, atol=1e-8)
    # Falkon with every point a centre: K (W K + alpha I) a = K W y, the same ridge.
    falkon = NNGPRegressor(alpha=1e-2, solver="cg", n_inducing=len(x), tol=1e-13, **FIXED)
    np.testing.assert_allclose(falkon.fit(x, y, sample_weight=w).predict(xs), ref, atol=1e-7)


def test_integer_weights_are_repeats_for_the_evidence(data):
    x, xs, y = data
    w = np.random.default_rng(1).integers(0, 3, len(x))
    kw = {"depth": 1, "normalize_y": False, "random_state": 0}
    weighted = NNGPRegressor(**kw).fit(x, y, sample_weight=w)
    repeated = NNGPRegressor(**kw).fit(np.repeat(x, w, 0), np.repeat(y, w))
    # The same evidence function: optima equal to L-BFGS-B's stopping tolerance.
    np.testing.assert_allclose(weighted.alpha_, repeated.alpha_, rtol=1e-4)
    np.testing.assert_allclose(
        weighted.log_marginal_likelihood_, repeated.log_marginal_likelihood_, rtol=1e-5
    )
    # At equal hyperparameters, equal predictions (the exact solves agree to ~1e-10).
    fixed = {"depth": 1, "c_w": repeated.c_w_, "c_b": repeated.c_b_, "alpha": repeated.alpha_}
    at_same = NNGPRegressor(**fixed, **FIXED).fit(x, y, sample_weight=w)
    np.testing.assert_allclose(at_same.predict(xs), repeated.predict(xs), atol=1e-8)
