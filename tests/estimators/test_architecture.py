"""``architecture=``: CNTK / CNN-GP estimators from a torch model or a spec, on images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from torch import nn

from dltheory import NNGPClassifier, NNGPRegressor, NTKClassifier, spec_from_module
from dltheory.estimators.architecture import learn_noise


def _cnn(readout: str = "flatten") -> nn.Module:
    head = (
        [nn.Flatten(), nn.Linear(8 * 64, 10)]
        if readout == "flatten"
        else [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)]
    )
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), *head)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(x))
    return (x / 16.0)[idx].reshape(-1, 1, 8, 8), y[idx]


def test_cntk_classifier_on_digit_images(digits):
    """A one-conv-layer CNN's NTK classifies 8 x 8 digits (60 train, 60 test) far above chance.

    Measured (seed 0 split, deterministic): CNTK with a flattened readout 0.767, the
    MLP NNGP (depth 2, alpha 1e-3) 0.85; chance is 0.1. The bar (>= 0.75 and within
    0.1 of the MLP) is about two binomial standard errors (~0.05 at 60 test images).
    """
    x, y = digits
    tr, te = slice(0, 60), slice(60, 120)
    clf = NTKClassifier(architecture=_cnn(), temperature=1.0).fit(x[tr], y[tr])
    assert clf.input_shape_ == (1, 8, 8) and clf.n_features_in_ == 64
    acc = clf.score(x[te], y[te])
    mlp = NNGPClassifier(optimizer=None, depth=2, temperature=1.0, alpha=1e-3)
    acc_mlp = mlp.fit(x[tr].reshape(60, -1), y[tr]).score(x[te].reshape(60, -1), y[te])
    assert acc >= 0.75 and acc >= acc_mlp - 0.1, (acc, acc_mlp)
    assert clf.alpha_ > 0 and clf.log_marginal_likelihood_ is not None


def test_images_and_flat_rows_of_a_spec_agree(digits):
    x, y = digits
    spec = spec_from_module(_cnn("gap"))
    a = NNGPRegressor(architecture=spec, optimizer=None, alpha=1e-3).fit(x[:20], y[:20])
    flat = spec.__class__(*spec.layers, input_shape=(1, 8, 8))
    b = NNGPRegressor(spec=flat, alpha=1e-3).fit(x[:20].reshape(20, -1), y[:20])
    np.testing.assert_allclose(a.predict(x[20:30]), b.predict(x[20:30].reshape(10, -1)),
                               rtol=1e-10, atol=1e-12)  # fmt: skip
    assert clone(a).get_params()["architecture"].layers[0] == spec.layers[0]
    with pytest.raises(ValueError, match=r"^X must be images of shape \(1, 8, 8\)"):
        a.predict(np.zeros((2, 1, 4, 4)))


def test_both_spec_and_architecture_are_refused(digits):
    x, y = digits
    spec = spec_from_module(_cnn())
    est = NNGPClassifier(spec=spec, architecture=_cnn())
    with pytest.raises(ValueError, match="'architecture' parameter of NNGPClassifier must be None"):
        est.fit(x[:10], y[:10])
    with pytest.raises(ValueError, match=r"must be None, a dltheory spec or a torch\.nn\.Module"):
        NNGPClassifier(architecture="cnn").fit(x[:10], y[:10])


def test_learned_noise_maximises_the_evidence():
    """On K = I and targets of variance 4 per entry the evidence peaks at alpha = 3."""
    rng = np.random.default_rng(1)
    y = 2.0 * rng.standard_normal((4000, 1))
    alpha, _ = learn_noise(np.eye(4000), y, 1e-3)
    # log p = -1/2 sum y^2 / (1 + a) - N/2 log(1 + a): the optimum 1 + a = mean(y^2).
    assert alpha == pytest.approx(float(np.mean(y**2)) - 1.0, rel=1e-4)


def test_torch_tensor_images_are_accepted(digits):
    x, y = digits
    est = NNGPRegressor(architecture=_cnn("gap"), optimizer=None, alpha=1e-3)
    est.fit(torch.from_numpy(x[:10]), y[:10])
    assert est.predict(torch.from_numpy(x[10:12])).shape == (2,)
