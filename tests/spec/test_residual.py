"""``Residual`` and ``LayerNorm`` specs: finite networks sampled from them, against the NNGP.

Each check draws an ensemble of finite networks with ``spec.sample`` (one generator
stream) and compares the output covariance E[z_a z_b] with ``spec.kernel(x).nngp``:
agreement within 5 standard errors plus a relative O(1/width) allowance of
3 * (blocks + 1) / width (the leading finite-width shift of a ReLU net's variance is
of order (layers) / width, Roberts, Yaida & Hanin 2022, ch. 5; 3 covers its constant).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dltheory import Estimate
from dltheory.finite.modules import FiniteResidual
from dltheory.spec import Dense, LayerNorm, Nonlinearity, Residual, Serial

X = torch.tensor(
    [[1.0, -0.5, 0.3], [0.2, 0.8, -1.1], [-0.7, 0.1, 0.9], [1.5, 0.4, 0.0]], dtype=torch.float64
)
RELU = Nonlinearity("relu")


def ensemble_agrees(spec: Serial, width: int, n_nets: int, blocks: int) -> None:
    generator = torch.Generator().manual_seed(0)
    outputs = []
    with torch.no_grad():
        for _ in range(n_nets):
            net = spec.sample(width=width, in_dim=3, generator=generator, dtype=torch.float64)
            outputs.append(net(X)[:, 0])
    z = torch.stack(outputs)
    measured = Estimate.from_samples(z[:, :, None] * z[:, None, :])
    predicted = spec.kernel(X).nngp
    rtol = 3 * (blocks + 1) / width
    assert measured.agrees(predicted, n_std=5.0, rtol=rtol), measured.zscore(predicted)


SPECS = {
    "residual": (
        Serial(Dense(2.0, 0.1), *[Residual((RELU, Dense(2.0, 0.1)), alpha=0.7)] * 4, RELU,
               Dense(1.0, width=1)),
        4,
    ),
    "post_ln_after_relu": (
        Serial(*[m for _ in range(3) for m in (Dense(2.0, 0.1), RELU, LayerNorm())],
               Dense(1.0, width=1)),
        3,
    ),
    "pre_ln_residual": (
        Serial(Dense(1.0), *[Residual((LayerNorm(), RELU, Dense(2.0)))] * 4, LayerNorm(),
               Dense(1.0, width=1)),
        4,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SPECS))
def test_finite_ensembles_agree_with_the_nngp(name):
    spec, blocks = SPECS[name]
    ensemble_agrees(spec, width=256, n_nets=200, blocks=blocks)


def test_sampled_modules_are_the_spec():
    spec = SPECS["pre_ln_residual"][0]
    net = spec.sample(width=8, in_dim=3, seed=0)
    blocks = [m for m in net if isinstance(m, FiniteResidual)]
    assert len(blocks) == 4 and isinstance(blocks[0].skip, nn.Identity)
    norm = blocks[0].branch[0]
    assert isinstance(norm, nn.LayerNorm) and norm.normalized_shape == (8,)
    assert torch.equal(norm.weight, torch.ones(8)) and torch.equal(norm.bias, torch.zeros(8))
    z = net(torch.randn(5, 3))
    assert z.shape == (5, 1)


def test_a_branch_that_changes_the_width_is_refused_when_sampling():
    spec = Serial(Dense(), Residual((RELU, Dense(width=3))), Dense(width=1))
    with pytest.raises(ValueError) as info:
        spec.sample(width=8, in_dim=3, seed=0)
    assert str(info.value).startswith(
        "branch must be an arm that returns the 8 features it reads (to add them). Got '3 "
    )


def test_residual_validates_its_multipliers():
    with pytest.raises(TypeError, match=r"^alpha must be a real number\. Got 'a'\."):
        Residual((Dense(),), alpha="a")
    with pytest.raises(ValueError, match=r"^gamma must be finite\. Got inf\."):
        Residual((Dense(),), gamma=float("inf"))
    with pytest.raises(TypeError, match=r"^affine must be a bool\. Got 1\."):
        LayerNorm(affine=1)
