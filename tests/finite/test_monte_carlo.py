"""Finite networks sampled from a spec converge to its infinite-width kernels."""

from __future__ import annotations

import pytest
import torch

from dltheory import MLP, Estimate, empirical_ntk, sample_outputs

F64 = torch.float64


def _inputs() -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.randn(4, 3, generator=g, dtype=F64)


@pytest.mark.parametrize(
    ("name", "c_w", "c_b"), [("relu", 2.0, 0.0), ("erf", 1.5, 0.1), ("tanh", 1.2, 0.05)]
)
def test_output_covariance_over_networks_matches_nngp(name, c_w, c_b):
    """>= 200 width-1024 networks, depth 3: every entry within 5 standard errors."""
    x = _inputs()
    spec = MLP(3, name, c_w=c_w, c_b=c_b)
    f = sample_outputs(spec, x, width=1024, n_networks=200, seed=100)[..., 0]
    est = Estimate.from_samples(f[:, :, None] * f[:, None, :])
    assert est.n == 200
    assert est.agrees(spec.kernel(x).nngp, n_std=5.0)


@pytest.mark.parametrize(
    ("name", "c_w", "c_b"), [("relu", 2.0, 0.0), ("erf", 1.5, 0.1), ("tanh", 1.2, 0.05)]
)
def test_empirical_ntk_over_networks_matches_ntk(name, c_w, c_b):
    """The mean empirical NTK has an O(depth / width) bias: 5 s.e. + 3% relative."""
    x = _inputs()
    spec = MLP(3, name, c_w=c_w, c_b=c_b)
    ntks = torch.stack(
        [empirical_ntk(spec.sample(512, in_dim=3, seed=s, dtype=F64), x) for s in range(40)]
    )
    est = Estimate.from_samples(ntks)
    assert est.agrees(spec.kernel(x).ntk, n_std=5.0, rtol=0.03)


def test_standard_parametrisation_has_the_same_nngp_and_a_width_scaled_ntk():
    x = _inputs()
    width = 256
    spec = MLP(2, "relu", c_w=2.0, c_b=0.1, width=width, parametrization="standard")
    ntk_spec = MLP(2, "relu", c_w=2.0, c_b=0.1)
    torch.testing.assert_close(spec.kernel(x).nngp, ntk_spec.kernel(x).nngp)
    ntks = torch.stack(
        [empirical_ntk(spec.sample(seed=s, in_dim=3, dtype=F64), x) for s in range(30)]
    )
    assert Estimate.from_samples(ntks).agrees(spec.kernel(x).ntk, n_std=5.0, rtol=0.03)


def test_sampling_is_reproducible_and_dtype_kept():
    spec = MLP(2, "tanh")
    a = spec.sample(32, in_dim=3, seed=5, dtype=torch.float32)
    b = spec.sample(32, in_dim=3, seed=5, dtype=torch.float32)
    x = torch.randn(2, 3)
    assert torch.equal(a(x), b(x))
    assert a(x).dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in a.parameters())


def test_zero_learning_rate_freezes_a_layer():
    from dltheory import Dense, Nonlinearity, Serial

    spec = Serial(Dense(1.0, 0.0, lr_w=0.0), Nonlinearity("relu"), Dense(2.0, 0.0, width=1))
    net = spec.sample(64, in_dim=3, seed=0)
    trainable = [name for name, p in net.named_parameters()]
    assert trainable == ["2.weight"]
    x = _inputs()
    k = spec.kernel(x)
    # Only the readout is trained: Theta = lambda_w E[s s] = C_w E[relu relu] = K^(2).
    torch.testing.assert_close(k.ntk, k.nngp, rtol=1e-14, atol=0)
