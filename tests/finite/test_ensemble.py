"""dltheory.finite.ensemble: batched sampling, reproducibility, statistics, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dltheory import MLP, Dense, Nonlinearity, Serial, empirical_ntk
from dltheory.finite import Ensemble, ensemble


def _x(n: int, d: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 50])
def test_every_network_equals_its_module(batch_size):
    spec = MLP(2, "tanh", c_w=1.3, c_b=0.4, out_dim=2)
    ens = ensemble(spec, 7, 9, in_dim=3, seed=5, dtype=torch.float64, batch_size=batch_size)
    x = _x(5, 3)
    z = ens.forward(x)
    assert z.shape == (9, 5, 2) and z.dtype == torch.float64
    with torch.no_grad():
        direct = torch.stack([ens.network(i)(x) for i in range(9)])
    np.testing.assert_allclose(z.numpy(), direct.numpy(), rtol=1e-12, atol=1e-12)


def test_networks_do_not_depend_on_the_batch_size_or_the_ensemble_size():
    spec = MLP(2, "tanh", c_w=1.5, c_b=0.1)
    x = _x(3, 4)
    a = ensemble(spec, 8, 12, in_dim=4, seed=9, batch_size=5).forward(x)
    b = ensemble(spec, 8, 12, in_dim=4, seed=9, batch_size=12).forward(x)
    c = ensemble(spec, 8, 20, in_dim=4, seed=9, batch_size=3).forward(x)
    assert torch.equal(a, b) and torch.equal(a, c[:12])


def test_different_seeds_share_no_network():
    # With network i seeded seed + i, seeds 0 and 1 shared n - 1 networks. Streams spawned
    # from SeedSequence(seed, spawn_key=(i,)) never coincide: compare every pair.
    spec = MLP(1, "relu", c_w=2.0)
    x = _x(2, 3)
    outs = [ensemble(spec, 4, 20, in_dim=3, seed=s).forward(x).flatten(1) for s in (0, 1, 2)]
    for i, first in enumerate(outs):
        for second in outs[i + 1 :]:
            assert float(torch.cdist(first, second).min()) > 1e-6


def test_network_draws_only_its_own_stream():
    # One batch of 10^9 networks (4 * 10^10 weights) cannot be drawn: network(i) must draw
    # network i alone (the old network(i) redrew its whole batch).
    spec = MLP(1, "relu", c_w=2.0)
    big = ensemble(spec, 8, 10**9, in_dim=3, seed=4, batch_size=10**9, dtype=torch.float64)
    small = ensemble(spec, 8, 3, in_dim=3, seed=4, dtype=torch.float64)
    x = _x(2, 3, seed=5)
    with torch.no_grad():
        # forward scales W h rather than W: equal up to float64 rounding
        torch.testing.assert_close(big.network(2)(x), small.forward(x)[2], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(big.network(2)(x), small.network(2)(x), rtol=0, atol=0)


def test_spec_that_is_not_a_whole_network_is_refused_as_by_the_kernel():
    bad = Serial(Nonlinearity("relu"), Dense())
    with pytest.raises(ValueError, match=r"^spec must be a network whose first layer is Dense"):
        ensemble(bad, 4, 3, in_dim=2)
    with pytest.raises(ValueError, match=r"^spec must be a network whose first layer is Dense"):
        bad.kernel(torch.ones(1, 2))
    with pytest.raises(ValueError, match=r"^spec must be a network whose last layer is Dense"):
        ensemble(Serial(Dense(), Nonlinearity("relu")), 4, 3, in_dim=2)


def test_same_seed_and_batch_size_reproduce_bitwise_and_other_seeds_differ():
    spec = MLP(3, "relu", c_w=2.0, c_b=0.1)
    x = _x(4, 6)
    a = ensemble(spec, 16, 20, in_dim=6, seed=3, batch_size=6).forward(x)
    b = ensemble(spec, 16, 20, in_dim=6, seed=3, batch_size=6).forward(x)
    c = ensemble(spec, 16, 20, in_dim=6, seed=4, batch_size=6).forward(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # Networks within one ensemble are distinct draws.
    assert float((a[0] - a[1]).abs().max()) > 1e-3


def test_weights_have_fan_in_variances_and_spec_shapes():
    spec = MLP(1, "relu", c_w=2.0, c_b=0.5)
    ens = ensemble(spec, 50, 2000, in_dim=4, seed=0, dtype=torch.float64)
    assert ens.n_batches == 1
    (w1, b1), none, (w2, b2) = ens.weights(0)
    assert none is None
    assert w1.shape == (2000, 50, 4) and w2.shape == (2000, 1, 50) and b1.shape == (2000, 50, 1)
    # Variance of n i.i.d. N(0, s2) draws: mean of squares, stderr s2 sqrt(2 / n).
    for tensor, s2 in ((w1, 2.0 / 4), (w2, 2.0 / 50), (b1, 0.5), (b2, 0.5)):
        n = tensor.numel()
        assert abs(float(tensor.square().mean()) - s2) <= 5 * s2 * math.sqrt(2 / n)


def test_memory_budget_sets_the_batch_and_keeps_the_statistics():
    spec = MLP(1, "relu", c_w=2.0)
    ens = ensemble(spec, 8, 20_000, in_dim=2, seed=0, max_elements=1000, dtype=torch.float64)
    per_network = 2 * 8 + 8 + 8 * 1 + 1
    assert ens.batch_size == 1000 // per_network and ens.n_batches > 500
    z = ens.forward(torch.tensor([[1.0, -0.5]], dtype=torch.float64))
    # E[z^2] = C_w |x|^2 / n_0 exactly at any width for ReLU with C_b = 0.
    second = z.square().flatten()
    assert abs(float(second.mean()) - 1.25) <= 5 * float(second.std()) / math.sqrt(20_000)


def test_preactivations_match_the_kernel_diagonal_in_the_mean():
    spec = MLP(2, "erf", c_w=1.7, c_b=0.2)
    x = _x(2, 3)
    ens = ensemble(spec, 64, 400, in_dim=3, seed=2, dtype=torch.float64)
    layers = ens.preactivations(x)
    assert [tuple(z.shape) for z in layers] == [(400, 2, 64), (400, 2, 64), (400, 2, 1)]
    k = spec.kernel(x, return_layers=True).layers
    # Layer 1 is exactly Gaussian with variance K^(1); pool neurons (independent given x).
    z1 = layers[0].square().mean(-1)  # (E, N)
    assert torch.allclose(z1.mean(0), k[0].nngp.diagonal(), rtol=5 * math.sqrt(2 / (400 * 64)))


def test_ensemble_network_gives_the_spec_ntk_on_average():
    spec = MLP(1, "relu", c_w=2.0, c_b=0.1)
    x = _x(2, 3)
    ens = ensemble(spec, 256, 30, in_dim=3, seed=0, dtype=torch.float64)
    ntks = torch.stack([empirical_ntk(ens.network(i), x) for i in range(30)])
    expected = spec.kernel(x).ntk
    err = ntks.std(0) / math.sqrt(30)
    # One hidden layer: z^(1) is exactly Gaussian at any width and the readout weights are
    # independent of it, so E[empirical NTK] equals the infinite-width NTK exactly (no
    # 1/n bias term): the tolerance is the Monte-Carlo error alone, 5 standard errors.
    assert bool(((ntks.mean(0) - expected).abs() <= 5 * err).all())


def test_frozen_layers_and_fixed_widths_are_respected():
    spec = Serial(
        Dense(c_w=1.0, c_b=0.0, width=5, lr_w=0.0),
        Nonlinearity("tanh"),
        Dense(c_w=1.0, c_b=0.3, width=1),
        in_dim=2,
    )
    ens = ensemble(spec, 11, 3, seed=0, dtype=torch.float64)
    assert ens.widths == (2, 5, 1)
    net = ens.network(1)
    assert "weight" not in dict(net[0].named_parameters())
    x = _x(3, 2)
    with torch.no_grad():
        assert torch.allclose(net(x), ens.forward(x)[1])


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"spec": "mlp"}, TypeError, "spec must be a dltheory Serial/MLP spec"),
        ({"n_networks": 0}, ValueError, "n_networks must be an integer >= 1"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0"),
        ({"dtype": torch.int32}, TypeError, "dtype must be a floating torch.dtype"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1"),
        ({"width": None}, ValueError, "width must be an integer >= 1"),
        ({"in_dim": None}, ValueError, "in_dim must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, text):
    args = {"spec": MLP(1, "relu"), "width": 4, "n_networks": 3, "in_dim": 2}
    args.update(kwargs)
    with pytest.raises(error, match=text):
        ensemble(**args)


def test_bad_inputs_and_indices_are_refused():
    ens = ensemble(MLP(1, "relu"), 4, 3, in_dim=2)
    assert isinstance(ens, Ensemble)
    with pytest.raises(ValueError, match="x must be inputs with n_0 = 2 features"):
        ens.forward(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="x must be finite"):
        ens.forward(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="i must be a network index < 3"):
        ens.network(3)
    with pytest.raises(ValueError, match="k must be a batch index < 1"):
        ens.weights(1)


def test_draws_do_not_depend_on_the_thread_count():
    spec = MLP(2, "relu", c_w=2.0, c_b=0.1)
    x = _x(3, 64)
    ens = ensemble(spec, 128, 16, in_dim=64, seed=7, batch_size=16)  # > 2^16 weights per layer
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ens.forward(x)
        torch.set_num_threads(2)
        two = ens.forward(x)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)
