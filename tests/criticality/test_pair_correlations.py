"""Correlations of input pairs on sampled networks: the inputs and the ensemble's estimate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dltheory import MLP
from dltheory.criticality.pair_correlations import correlation_samples, pair_inputs
from dltheory.finite import FiniteDense, ensemble


def test_pair_inputs_have_the_requested_first_layer_kernel() -> None:
    c_w, c_b = 1.5, 0.2
    x = pair_inputs(c_w, c_b, 0.9, -0.3, n_pairs=3)
    k = c_b + c_w * x @ x.T / x.shape[1]
    torch.testing.assert_close(torch.diagonal(k), torch.full((6,), 0.9, dtype=torch.float64))
    for p in range(3):
        assert float(k[2 * p, 2 * p + 1]) == pytest.approx(-0.3 * 0.9, rel=1e-12)
    assert float(k[0, 2]) == pytest.approx(c_b, abs=1e-14)  # pairs are orthogonal inputs


def test_correlation_samples_match_a_direct_computation() -> None:
    # Rebuild every network of the ensemble as a module, run it layer by layer, and compute
    # rho_hat^(l) = mean over pairs of z(x) . z(x') / (|z(x)| |z(x')|) by hand in float64.
    x = pair_inputs(2.0, 0.0, 1.0, 0.4, n_pairs=2)
    s = correlation_samples(
        "relu", 2.0, 0.0, x, width=16, depth=3, n_networks=3, seed=4, dtype=torch.float64
    )
    assert s.correlation.shape == s.one_minus.shape == s.variance.shape == (3, 4)
    spec = MLP(3, "relu", 2.0, 0.0, out_dim=16)
    ens = ensemble(spec, 16, 3, seed=4, in_dim=4, dtype=torch.float64)
    for i in range(3):
        h = x
        layer = 0
        with torch.no_grad():
            for module in ens.network(i):
                h = module(h)
                if not isinstance(module, FiniteDense):
                    continue
                z = h.numpy()
                unit = z / np.linalg.norm(z, axis=1, keepdims=True)
                rho = np.mean([unit[2 * p] @ unit[2 * p + 1] for p in range(2)])
                var = np.mean(np.sum(z**2, axis=1)) / z.shape[1]
                assert float(s.correlation[i, layer]) == pytest.approx(rho, rel=1e-12)
                assert float(s.one_minus[i, layer]) == pytest.approx(1 - rho, rel=1e-9)
                assert float(s.variance[i, layer]) == pytest.approx(var, rel=1e-12)
                layer += 1
        assert layer == 4


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match=r"^rho_1 must be in \["):
        pair_inputs(1.0, 0.5, 0.6, -1.0)
    with pytest.raises(ValueError, match=r"^k_1 must be > c_b"):
        pair_inputs(1.0, 0.5, 0.4, 0.0)
    with pytest.raises(ValueError, match=r"^x must be an even number of rows"):
        correlation_samples("tanh", 1.0, 0.0, torch.ones(3, 2), width=4, depth=1, n_networks=2)


def test_compare_correlation_profile_at_relu_criticality():
    from dltheory.criticality import compare_correlation_profile, depth_profile, pair_inputs

    c = compare_correlation_profile("relu", 2.0, 0.0, 0.3, width=128, depth=8, n_networks=8)
    x = pair_inputs(2.0, 0.0, 1.0, 0.3, n_pairs=1)
    torch.testing.assert_close(c.predicted, depth_profile("relu", 2.0, 0.0, x, 8).correlation)
    assert c.measured.mean.shape == c.predicted.shape == (9,)
    assert c.agrees
    # A wrong profile is rejected: the same samples against the identity map's rho = 0.3.
    wrong = (c.measured.mean - 0.3).abs() <= 5 * c.measured.stderr + (8 / 128) * 0.7
    assert not bool(wrong.all())
