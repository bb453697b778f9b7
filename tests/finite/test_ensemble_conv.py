"""``ensemble`` of conv, residual and LayerNorm specs: finite networks against the NNGP.

The output covariance of E independent networks, (1/E) sum_e f_e(x_a) f_e(x_b), estimates
the NNGP with a standard error from the spread of the products; at finite width it is
off by O(1/width) (Yaida 2020; the 1/n corrections of ``dltheory.kernels.corrections``).
Each check allows 5 standard errors plus 4/width of the kernel's scale.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dltheory import Dense, Nonlinearity, Serial, ensemble, spec_from_module
from dltheory.spec import Conv, Flatten, GlobalAvgPool, LayerNorm, Residual

RELU = Nonlinearity("relu")
READ = Dense(1.5, width=1)


def _check(spec, x, width, n_networks, seed=0, **kw):
    if "input_shape" not in kw:
        kw["in_dim"] = x.shape[1]
    ens = ensemble(spec, width, n_networks, seed=seed, dtype=torch.float64, **kw)
    z = ens.forward(x)[:, :, 0]  # (E, N)
    prods = z[:, :, None] * z[:, None, :]
    mean, se = prods.mean(0), prods.std(0) / n_networks**0.5
    k = spec.kernel(x, input_shape=kw.get("input_shape")).nngp
    tol = 5 * se + 4.0 / width * k.abs().max()
    assert bool(((mean - k).abs() <= tol).all()), ((mean - k) / se).abs().max()
    return ens


SPECS = {
    "conv_gap": Serial(Conv(None, (3, 3), c_w=2.0, c_b=0.1), RELU,
                       Conv(None, (3, 3), c_w=2.0, c_b=0.1), RELU, GlobalAvgPool(), READ),
    "conv_ln_channels": Serial(Conv(None, (3, 3), c_w=2.0, c_b=0.1), RELU,
                               LayerNorm(over="channels"), Conv(None, (3, 3), c_w=2.0), RELU,
                               GlobalAvgPool(), READ),
    "conv_ln_all_per_pixel": Serial(Conv(None, (3, 3), c_w=2.0, c_b=0.1), RELU,
                                    LayerNorm(over="all", per_pixel_affine=True),
                                    Conv(None, (3, 3), c_w=2.0), RELU, Flatten(), READ),
    "residual_conv_ln": Serial(Conv(None, (3, 3), c_w=2.0, c_b=0.1),
                               Residual((LayerNorm(over="channels"), RELU,
                                         Conv(None, (3, 3), c_w=2.0)), alpha=0.7),
                               GlobalAvgPool(), Dense(1.0, width=1)),
}  # fmt: skip


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "residual_conv_ln" else n for n in
             sorted(SPECS)])  # fmt: skip
def test_conv_ensemble_covariance_matches_the_cnn_gp(name):
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kw = {"input_shape": (2, 4, 4)} if name == "conv_ln_all_per_pixel" else {}
    if kw:
        x = x.reshape(3, -1)
    ens = _check(SPECS[name], x, width=48, n_networks=200, **kw)
    assert ens.widths[0] == 2 and not ens.chain


def test_conv_ensemble_networks_are_reproducible_and_independent():
    spec = SPECS["conv_gap"]
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    a = ensemble(spec, 8, 5, seed=3, in_dim=2, dtype=torch.float64, batch_size=2)
    b = ensemble(spec, 8, 5, seed=3, in_dim=2, dtype=torch.float64, batch_size=5)
    torch.testing.assert_close(a.forward(x), b.forward(x), rtol=0, atol=0)
    torch.testing.assert_close(a.network(4)(x), b.forward(x)[4], rtol=0, atol=0)
    out = a.forward(x)[:, 0, 0]
    assert len(set(out.tolist())) == 5  # no two networks coincide
    pre = a.preactivations(x)
    assert [tuple(p.shape) for p in pre] == [(5, 2, 8, 4, 4), (5, 2, 8, 4, 4), (5, 2, 1)]
    with pytest.raises(ValueError, match=r"^ensemble must be an ensemble of a Dense"):
        a.weights(0)
    with pytest.raises(ValueError, match=r"^x must be inputs with n_0 = 2 features"):
        a.forward(torch.zeros(2, 3, 4, 4))


class ConvNeXtBlock(nn.Module):
    """Conv stem, then x + Linear(GELU(Linear(LN(x)))) on channels-last pixels."""

    def __init__(self, c: int = 64) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, c, 3, padding=1)
        self.norm = nn.LayerNorm(c)
        self.up, self.down = nn.Linear(c, 2 * c), nn.Linear(2 * c, c)
        self.pool, self.head = nn.AdaptiveAvgPool2d(1), nn.Linear(c, 1)

    def forward(self, x):
        h = self.stem(x)
        y = self.norm(h.permute(0, 2, 3, 1))
        y = self.down(torch.relu(self.up(y))).permute(0, 3, 1, 2)
        return self.head(self.pool(h + y).flatten(1))


def test_lifted_convnext_block_matches_its_torch_ensemble():
    """The lifted spec's NNGP is the limit of the torch model's own outputs over seeds."""
    model = ConvNeXtBlock(48).double()
    spec = spec_from_module(model)
    kinds = [type(layer).__name__ for layer in spec.layers]
    assert kinds == ["Conv", "Residual", "GlobalAvgPool", "Dense"]
    branch = spec.layers[1].branch
    assert [type(layer).__name__ for layer in branch] == [
        "LayerNorm", "Conv", "Nonlinearity", "Conv"]  # fmt: skip
    assert branch[0].over == "channels" and branch[1].kernel_size == (1, 1)
    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    outs = []
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(200):
            net = ConvNeXtBlock(48).double()
            outs.append(net(x)[:, 0])
    z = torch.stack(outs)
    prods = z[:, :, None] * z[:, None, :]
    mean, se = prods.mean(0), prods.std(0) / len(z) ** 0.5
    k = spec.kernel(x).nngp
    assert bool(((mean - k).abs() <= 5 * se + 4.0 / 48 * k.abs().max()).all())
