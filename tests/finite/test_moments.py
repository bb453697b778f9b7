"""layer_samples (the one per-layer measurement), preactivation_moments at the edges,
and sample_outputs on the ensemble's independent streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltheory import MLP, sample_outputs
from dltheory.finite import ensemble, layer_samples, preactivation_moments
from dltheory.finite.moments import ratio_estimate


def _manual_layers(net: torch.nn.Sequential, x: np.ndarray) -> list[np.ndarray]:
    """z^(l) of every Dense layer, run by hand in NumPy from the module's W and b."""
    dense = [m for m in net if hasattr(m, "w_mult")]
    h, out = x, []
    for i, module in enumerate(dense):
        w = (module.weight * module.w_mult).detach().numpy()
        b = (module.bias * module.b_mult).detach().numpy()
        z = h @ w.T + b
        out.append(z)
        h = np.tanh(z) if i < len(dense) - 1 else None
    return out


def test_layer_samples_match_a_manual_forward_pass_of_every_network():
    spec = MLP(2, "tanh", c_w=1.5, c_b=0.2, out_dim=3)
    ens = ensemble(spec, 6, 5, in_dim=4, seed=3, dtype=torch.float64, batch_size=2)
    x = torch.tensor([[0.3, -1.2, 0.7, 2.0], [1.0, 0.0, -0.5, 0.2]], dtype=torch.float64)
    samples = layer_samples(ens, x)  # default statistic: (1 / n_l) sum_i z_i^2
    assert samples.shape == (5, 3, 2) and samples.dtype == torch.float64
    for i in range(5):
        expected = [np.mean(z**2, axis=1) for z in _manual_layers(ens.network(i), x.numpy())]
        np.testing.assert_allclose(samples[i].numpy(), np.stack(expected), rtol=1e-12)


def test_layer_samples_accept_any_per_network_statistic_and_refuse_bad_ones():
    ens = ensemble(MLP(1, "relu", c_w=2.0), 4, 3, in_dim=2, seed=0)
    gram = layer_samples(ens, torch.ones(2, 2), lambda z: z @ z.transpose(1, 2))
    assert gram.shape == (3, 2, 2, 2)
    with pytest.raises(TypeError, match=r"^statistic must be a callable"):
        layer_samples(ens, torch.ones(2, 2), "mean")
    with pytest.raises(TypeError, match=r"^networks must be a dltheory.finite.Ensemble"):
        layer_samples("ens", torch.ones(2, 2))


def test_preactivation_moments_name_an_input_whose_preactivations_vanish():
    # x = 0 with C_b = 0: z = 0 in every network, E[z^4] / E[z^2]^2 is 0 / 0 (was NaN +- NaN).
    ens = ensemble(MLP(2, "tanh", c_w=1.0, c_b=0.0), 8, 4, in_dim=3, seed=0)
    x = torch.tensor([[1.0, 0.5, -1.0], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"^x must be inputs whose preactivations are not .*"
                       r"Got 'input 1 with z\^\(1\) = 0 in every network'"):  # fmt: skip
        preactivation_moments(ens, x)
    m = preactivation_moments(ens, x[:1])
    assert bool(torch.isfinite(m.excess_kurtosis.mean).all())
    with pytest.raises(ValueError, match=r"^m2 must be a positive mean"):
        ratio_estimate(torch.zeros(3), torch.zeros(3))


def test_sample_outputs_are_the_ensembles_networks_and_seeds_do_not_overlap():
    spec = MLP(2, "relu", c_w=2.0, c_b=0.1)
    x = torch.tensor([[1.0, -0.5], [0.3, 0.8]], dtype=torch.float64)
    f0 = sample_outputs(spec, x, 16, 6, seed=0)
    expected = ensemble(spec, 16, 6, seed=0, in_dim=2, dtype=torch.float64).forward(x)
    torch.testing.assert_close(f0, expected, rtol=0, atol=0)
    # Network i used seed + i before, so seeds 0 and 1 shared 5 of 6 networks.
    f1 = sample_outputs(spec, x, 16, 6, seed=1)
    distances = torch.cdist(f0.flatten(1), f1.flatten(1))
    assert float(distances.min()) > 1e-6
    # A longer run extends a shorter one (split and resume by network index).
    torch.testing.assert_close(sample_outputs(spec, x, 16, 9, seed=0)[:6], f0, rtol=0, atol=0)


def test_second_moment_checks_and_overflow():
    from dltheory.finite import second_moment

    z = torch.tensor([[[3.0, 4.0]]], dtype=torch.float64)
    assert float(second_moment(z)) == 12.5  # (9 + 16) / 2
    assert float(second_moment(z.numpy())) == 12.5
    with pytest.raises(TypeError, match="z must be"):
        second_moment(None)
    with pytest.raises(ValueError, match="z must be finite"):
        second_moment(torch.tensor([[float("nan")]]))
    with pytest.raises(ValueError, match="z must be small enough that the result is finite"):
        second_moment(z * 1e300)


def test_sample_outputs_refuses_an_impossible_ensemble_in_one_line():
    with pytest.raises(ValueError, match="n_networks must be small enough for the memory budget"):
        sample_outputs(MLP(1), torch.ones(2, 2), 8, 10**12)
    with pytest.raises(TypeError, match="spec must be a dltheory Serial/MLP spec"):
        sample_outputs("mlp", torch.ones(2, 2), 8, 3)
