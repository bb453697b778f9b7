"""``preactivations``: every Dense layer's z^(l) of a sampled network."""

from __future__ import annotations

import pytest
import torch

from dltheory import MLP
from dltheory.finite import preactivations


def test_preactivations_follow_the_layer_equations():
    net = MLP(3, "tanh", c_w=1.5, c_b=0.1).sample(16, in_dim=4, seed=0, dtype=torch.float64)
    x = torch.randn(5, 4, dtype=torch.float64)
    zs = preactivations(net, x)
    assert [tuple(z.shape) for z in zs] == [(5, 16), (5, 16), (5, 16), (5, 1)]
    # z^(l+1) = b + W tanh(z^(l)), written out with the module's own weights.
    for dense, z_in, z_out in zip(list(net)[2::2], zs[:-1], zs[1:], strict=True):
        w, b = dense.weight * dense.w_mult, dense.bias * dense.b_mult
        torch.testing.assert_close(z_out, torch.tanh(z_in) @ w.T + b)
    torch.testing.assert_close(zs[-1], net(x).detach())


def test_preactivations_refuse_a_non_sequential():
    with pytest.raises(TypeError, match=r"net must be a torch\.nn\.Sequential"):
        preactivations(torch.nn.Linear(2, 2), torch.zeros(1, 2))


def test_preactivations_check_their_inputs():
    net = MLP(2, "relu").sample(8, in_dim=3, seed=0, dtype=torch.float32)
    # float64 and integer inputs are cast to the net's dtype; the values are the same
    x = torch.arange(6.0).reshape(2, 3)
    for given in (x.double(), x.long()):
        torch.testing.assert_close(preactivations(net, given)[-1], preactivations(net, x)[-1])
    with pytest.raises(ValueError, match=r"x must be \(N, 3\) inputs for this net"):
        preactivations(net, torch.ones(2, 4))
    with pytest.raises(TypeError, match="x must be an array of real numbers, not booleans"):
        preactivations(net, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="x must be finite"):
        preactivations(net, torch.full((2, 3), float("nan")))
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="net must be small enough that the result is finite"):
        preactivations(net, x)
