"""Criticality of residual and LayerNorm nets: susceptibilities, APJN, ``critical_init_``.

Predictions are closed forms written here: a ReLU block h + alpha W relu(h) has
chi = gamma^2 + alpha^2 C_w / 2 (Yang & Schoenholz 2017), so J^(1,l) = chi^(l-1) and
K grows by chi per block; a pre-LN block h + alpha W relu(LN h) adds alpha^2 C_w / 2 to
K whatever K is, with chi_perp = 1 + alpha^2 C_w / (2 K) (Doshi, He & Gromov 2023).
Measurements average over networks; tolerances are 5 standard errors plus a relative
finite-width allowance of 4 l / width for l blocks (each block shifts the Jacobian
norm by O(1/width)).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import dltheory
from dltheory import critical_init_
from dltheory.criticality.residual import CRITICALITY_RULES, measured_apjn, spec_criticality
from dltheory.spec import Dense, LayerNorm, Nonlinearity, Residual, Serial

RELU = Nonlinearity("relu")
L, WIDTH, D = 64, 256, 8


def test_the_rule_table_covers_every_layer_kind():
    assert set(CRITICALITY_RULES) == set(dltheory.spec.LAYER_KINDS)


@pytest.mark.parametrize(("gamma", "alpha", "c_w"), [(1.0, 1.0, 2.0), (0.9, 0.3, 1.5)])
def test_relu_block_susceptibility_is_gamma2_plus_alpha2_cw_over_2(gamma, alpha, c_w):
    block = Residual((RELU, Dense(c_w)), alpha=alpha, gamma=gamma)
    c = spec_criticality(Serial(Dense(1.0), *[block] * 10, Dense(1.0)), k0=1.0)
    chi = gamma**2 + alpha**2 * c_w / 2
    torch.testing.assert_close(c.chi_perp[1:-1], torch.full((10,), chi, dtype=torch.float64))
    torch.testing.assert_close(c.chi_parallel[1:-1], torch.full((10,), chi, dtype=torch.float64))
    torch.testing.assert_close(c.variance[1:-1], chi ** torch.arange(1.0, 11, dtype=torch.float64))
    assert c.apjn[-2].item() == pytest.approx(chi**10, rel=1e-12)


def test_pre_ln_is_critical_at_any_initialisation():
    for c_w in (0.5, 2.0, 8.0):
        block = Residual((LayerNorm(eps=0.0), RELU, Dense(c_w)))
        c = spec_criticality(Serial(Dense(1.0), *[block] * L, Dense(1.0)), k0=1.0)
        k = 1.0 + c_w / 2 * torch.arange(1.0, L + 1, dtype=torch.float64)
        torch.testing.assert_close(c.variance[1:-1], k)
        chi = 1 + c_w / (2 * torch.cat([torch.ones(1, dtype=torch.float64), k[:-1]]))
        torch.testing.assert_close(c.chi_perp[1:-1], chi)
        assert c.phase == "critical"
        # J^(1,L) telescopes: prod (K_l / K_(l-1)) = K_L / K_0, K_0 = 1 after the first Dense.
        assert c.apjn[-2].item() == pytest.approx(k[-1].item(), rel=1e-12)


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc(torch.relu(h))


def resnet(policy: str, seed: int) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(D, WIDTH), *[Block(WIDTH) for _ in range(L)]).double()
    return critical_init_(net, seed=seed, residual=policy)


def inputs() -> torch.Tensor:
    x = torch.randn(6, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return x / x.norm(dim=1, keepdim=True) * math.sqrt(D)  # |x|^2 / n_0 = 1


def measured(policy: str, n_nets: int = 6):
    return measured_apjn([resnet(policy, seed) for seed in range(n_nets)], inputs())


def test_stable_policy_keeps_a_64_block_relu_net_critical():
    apjn, variance = measured("stable")
    blocks = torch.arange(L + 1, dtype=torch.float64)
    predicted = (1 + 1 / L) ** blocks  # alpha^2 chi_F = 1/L per block: e at l = L
    assert apjn.agrees(predicted, n_std=5.0, rtol=4 * L / WIDTH**2 + 0.02)
    ratio = variance.mean[-1] / variance.mean[1]
    assert 1.0 < ratio < 3.0, ratio
    assert abs(ratio - (1 + 1 / L) ** (L - 1)) < 0.15 * (1 + 1 / L) ** (L - 1)
    block = Residual((RELU, Dense(2.0)), alpha=1 / math.sqrt(L))  # what the policy does
    assert spec_criticality(Serial(Dense(1.0), *[block] * L, Dense(1.0))).phase == "critical"


def test_he_init_with_alpha_one_grows_as_two_to_the_depth():
    apjn, variance = measured("none")
    predicted = 2.0 ** torch.arange(L + 1, dtype=torch.float64)
    # Over 64 blocks the finite-width factors compound: log J has a spread of order
    # sqrt(L / width); compare per-block growth rates.
    rate = math.log2(apjn.mean[-1].item()) / L
    assert abs(rate - 1.0) < 0.03, rate
    assert apjn.agrees(predicted, n_std=5.0, rtol=4 * L / WIDTH)
    k_rate = math.log2((variance.mean[-1] / variance.mean[0]).item()) / L
    assert abs(k_rate - 1.0) < 0.03, k_rate


def test_zero_policy_makes_every_block_the_identity():
    net = resnet("zero", 0)
    x = inputs()
    with torch.no_grad():
        torch.testing.assert_close(net(x), net[0](x), rtol=0, atol=0)
    apjn, _ = measured_apjn([net, resnet("zero", 1)], x)
    torch.testing.assert_close(apjn.mean, apjn.mean[:1].expand(L + 1), rtol=1e-9, atol=0)


def test_pre_ln_apjn_measured_beside_the_prediction():
    block = Residual((LayerNorm(), RELU, Dense(2.0)))
    spec = Serial(Dense(1.0), *[block] * 16, Dense(1.0, width=1))
    nets = [spec.sample(width=WIDTH, in_dim=D, seed=s, dtype=torch.float64)[:-1] for s in range(4)]
    apjn, _ = measured_apjn(nets, inputs())
    predicted = spec_criticality(spec).apjn[:-1]
    assert apjn.agrees(predicted, n_std=5.0, rtol=4 * 16 / WIDTH)


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match=r"^residual must be one of"):
        critical_init_(nn.Linear(2, 2), "relu", residual="fixup")


# measured_apjn on traced modules (not nn.Sequential) ---------------------------------------


class _ResNet(torch.nn.Module):
    """A for-loop of ReLU residual blocks h + alpha W2 relu(W1 h), written as a forward."""

    def __init__(self, width: int, depth: int, alpha: float) -> None:
        super().__init__()
        self.stem = torch.nn.Linear(4, width)
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(),
                                torch.nn.Linear(width, width))
            for _ in range(depth)
        )  # fmt: skip
        self.alpha = alpha
        for block in self.blocks:
            for layer in (block[0], block[2]):
                torch.nn.init.normal_(layer.weight, std=(2.0 / width) ** 0.5)
                torch.nn.init.zeros_(layer.bias)

    def forward(self, x):
        h = self.stem(x)
        for block in self.blocks:
            h = h + self.alpha * block(h)
        return h


def test_measured_apjn_reads_a_traced_residual_module():
    """J^(1,l) of a for-loop ResNet (lifted by tracing) against its prediction.

    For F = W2 relu(W1 h) with C_w = 2 on both weights, E||dF/dh v||^2 = C_w * (C_w / 2)
    ||v||^2 = 2 ||v||^2, so each block multiplies J by chi = 1 + 2 alpha^2 (the skip and
    the branch are independent at infinite width): J^(1, 1 + b) = (1 + 2 alpha^2)^b.
    """
    torch.manual_seed(0)
    depth, alpha = 4, 0.5
    nets = [_ResNet(256, depth, alpha).double() for _ in range(6)]
    x = torch.randn(8, 4, dtype=torch.float64)
    apjn, _ = measured_apjn(nets, x, n_probes=2)
    # Stages: the stem, then each block's sum (the cut nodes of the traced graph).
    assert apjn.mean.shape == (1 + depth,)
    expected = (1 + 2 * alpha**2) ** torch.arange(depth + 1, dtype=torch.float64)
    # O(1/width) finite-width bias (~depth / 256) and 5 standard errors over the nets.
    tol = 5 * apjn.stderr + 0.05 * expected
    assert bool(((apjn.mean - expected).abs() <= tol).all()), (apjn.mean, expected)
    seq = measured_apjn([torch.nn.Sequential(n.stem, *[_Skip(b, alpha) for b in n.blocks])
                         for n in nets], x, n_probes=2)[0]  # fmt: skip
    torch.testing.assert_close(seq.mean, apjn.mean, rtol=1e-6, atol=0)


class _Skip(torch.nn.Module):
    def __init__(self, block, alpha):
        super().__init__()
        self.block, self.alpha = block, alpha

    def forward(self, h):
        return h + self.alpha * self.block(h)


def test_measured_apjn_refuses_untraceable_modules():
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(x) if x.sum() > 0 else x

    with pytest.raises(ValueError, match=r"^nets must be torch.nn.Sequential networks or modules"):
        measured_apjn([Branchy(), Branchy()], torch.ones(2, 3))
