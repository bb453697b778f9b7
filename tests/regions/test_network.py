"""Reading ReLU networks into affine maps: layer kinds, composition, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dltheory import MLP
from dltheory.regions import count_pieces_1d, piecewise_linear_layers


def _forward(net, x):
    h = x
    for layer in net.hidden:
        z = net.affine(layer, h)
        h = torch.where(z > 0, z, layer.slope * z)
    return net.readout(h)


def test_sequential_with_harmless_layers_and_nesting_reproduces_the_forward_pass():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(3, 5),
        nn.Linear(5, 4),  # composed with the previous map
        nn.Sequential(nn.LeakyReLU(0.2), nn.Identity()),
        nn.Linear(4, 2),
        nn.ReLU(),
        nn.ReLU(),  # an identity affine map before it
        nn.Linear(2, 1),
    ).double()
    net = piecewise_linear_layers(model)
    assert [lay.slope for lay in net.hidden] == [0.2, 0.0, 0.0]
    assert net.hidden[2].weight is None
    x = torch.randn(7, 3, dtype=torch.float64)
    torch.testing.assert_close(_forward(net, x), model(x).detach())


def test_finite_dense_and_activation_module_of_a_spec():
    model = MLP(2, "leaky_relu", c_w=2.0, c_b=0.3, slope=0.1).sample(6, in_dim=3, seed=1)
    net = piecewise_linear_layers(model)
    assert [lay.slope for lay in net.hidden] == pytest.approx([0.1, 0.1])
    x = torch.randn(5, 3)
    torch.testing.assert_close(_forward(net, x.double()).float(), model(x).detach())


def test_refuses_other_layers():
    with pytest.raises(
        TypeError, match=r"^model must be a Sequential of Linear.*Got 'a Tanh layer'"
    ):
        piecewise_linear_layers(nn.Sequential(nn.Linear(2, 2), nn.Tanh()))
    with pytest.raises(ValueError, match=r"^model must be a ReLU / leaky-ReLU network\. Got"):
        piecewise_linear_layers(MLP(1, "tanh").sample(3, in_dim=2, seed=0))
    with pytest.raises(TypeError, match=r"^model must be a torch.nn.Module\. Got 'str'"):
        piecewise_linear_layers("relu")


def test_leaky_relu_with_slope_above_one_follows_torch():
    # sigma(z) = z if z > 0 else alpha z, which is not max(z, alpha z) for alpha > 1
    model = nn.Sequential(nn.Linear(1, 1), nn.LeakyReLU(2.0), nn.Linear(1, 1)).double()
    with torch.no_grad():
        for lin in (model[0], model[2]):
            lin.weight.fill_(1.0)
            lin.bias.zero_()
    x = torch.tensor([[-1.5], [1.5]], dtype=torch.float64)
    assert model(x)[:, 0].tolist() == [-3.0, 1.5]  # torch: 2 z below 0, z above
    net = piecewise_linear_layers(model)
    assert _forward(net, x)[:, 0].tolist() == [-3.0, 1.5]
    pieces = count_pieces_1d(model, -3.0, 3.0)  # d f / dt = 6 f'(x)
    assert pieces.n_pieces == 2 and pieces.slopes[:, 0].tolist() == [12.0, 6.0]


def test_layers_that_do_not_chain_are_refused_by_name():
    # Linear(2, 3) then Linear(4, 1): the old code failed inside NumPy's matmul gufunc.
    from dltheory.regions import regions_2d

    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(4, 1))
    text = (
        r"^model must be layers that chain \(each Linear's in_features = the previous "
        r"out_features\)\. Got 'layer 2 \(Linear\) taking 4 features after a layer giving 3'"
    )
    with pytest.raises(ValueError, match=text):
        piecewise_linear_layers(model)
    with pytest.raises(ValueError, match=text):
        count_pieces_1d(model, [0.0, 0.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"^model must be layers that chain"):
        regions_2d(
            nn.Sequential(nn.Linear(2, 3), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1)),
            [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-1.0, 1.0),
        )  # fmt: skip
