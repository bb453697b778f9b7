"""empirical_ntk methods: structured / ntvp / jacobian agree; convergence to the spec NTK."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dltheory import MLP, Dense, Nonlinearity, Serial, empirical_ntk
from dltheory.finite.ntk_structured import dense_layers
from dltheory.finite.ntk_vector_products import NTKOperator

METHODS = ("structured", "ntvp")


def _nets():
    torch.manual_seed(0)
    yield (
        "ntk-relu",
        MLP(2, "relu", c_w=2.0, c_b=0.1, out_dim=3).sample(
            width=9, in_dim=4, seed=0, dtype=torch.float64
        ),
    )
    yield (
        "standard-tanh",
        MLP(2, "tanh", c_b=0.2, out_dim=2, parametrization="standard").sample(
            width=9, in_dim=4, seed=1, dtype=torch.float64
        ),
    )
    yield (
        "mup-gelu",
        MLP(2, "gelu", parametrization="mup").sample(
            width=9, in_dim=4, seed=2, dtype=torch.float64
        ),
    )
    yield (
        "mean_field-erf",
        MLP(1, "erf", c_b=0.3, parametrization="mean_field").sample(
            width=9, in_dim=4, seed=3, dtype=torch.float64
        ),
    )
    # a frozen readout (lr_w = 0 buffer) and frozen biases (lr_b = 0)
    yield (
        "frozen",
        Serial(
            Dense(1.5, 0.2, lr_b=0.0), Nonlinearity("sin"), Dense(1.0, width=1, lr_w=0.0)
        ).sample(width=9, in_dim=4, seed=4, dtype=torch.float64),
    )
    yield (
        "torch-seq",
        nn.Sequential(
            nn.Linear(4, 8),
            nn.SiLU(),
            nn.Sequential(nn.Linear(8, 8, bias=False), nn.LeakyReLU(0.1)),
            nn.Linear(8, 2),
        ).double(),
    )


@pytest.mark.parametrize("output", ["trace", "full"])
@pytest.mark.parametrize("name_net", list(_nets()), ids=lambda p: p[0])
def test_methods_agree_with_jacobian(name_net, output):
    _, net = name_net
    assert dense_layers(net) is not None
    gen = torch.Generator().manual_seed(5)
    x1 = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    x2 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    for a, b in ((x1, None), (x1, x2)):
        ref = empirical_ntk(net, a, b, output=output, method="jacobian")
        for method in METHODS:
            got = empirical_ntk(net, a, b, output=output, method=method)
            assert got.shape == ref.shape
            # float64 round-off on O(1) sums of a few hundred products: << 1e-10
            assert float((got - ref).abs().max()) < 1e-10
        assert float((empirical_ntk(net, a, b, output=output) - ref).abs().max()) < 1e-10


def test_custom_activation_module_is_structured():
    spec = Serial(
        Dense(1.0),
        Nonlinearity(lambda z: z * torch.sigmoid(z)),
        Dense(1.0, width=1),
    )
    net = spec.sample(width=7, in_dim=3, seed=0, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    ref = empirical_ntk(net, x, method="jacobian")
    assert float((empirical_ntk(net, x, method="structured") - ref).abs().max()) < 1e-10


def test_unsupported_model_structured_refused_auto_falls_back():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, x):
            return self.lin(x) ** 2

    net = Net().double()
    x = torch.randn(4, 3, dtype=torch.float64)

    class Raw(nn.Module):  # a bare parameter: no layer the structured path knows
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3, 2, dtype=torch.float64))

        def forward(self, x):
            return torch.tanh(x @ self.w)

    with pytest.raises(ValueError, match="method must be 'structured' only for models with"):
        empirical_ntk(Raw(), x, method="structured")
    ref = empirical_ntk(net, x, method="jacobian")
    # any module with a Linear: the layerwise structured path
    assert float((empirical_ntk(net, x, method="structured") - ref).abs().max()) < 1e-12
    assert float((empirical_ntk(net, x) - ref).abs().max()) < 1e-12
    assert float((empirical_ntk(net, x, method="ntvp") - ref).abs().max()) < 1e-10


def test_ntk_operator_matches_dense_full_ntk():
    net = MLP(2, "tanh", out_dim=2).sample(width=6, in_dim=3, seed=0, dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64)
    full = empirical_ntk(net, x, output="full", method="jacobian")
    dense = full.permute(0, 2, 1, 3).reshape(10, 10)
    op = NTKOperator(net, x)
    v = torch.randn(10, dtype=torch.float64)
    assert op.shape == (10, 10) and op.dtype == torch.float64
    assert float((op @ v - dense @ v).abs().max()) < 1e-12
    assert op.n_matvecs == 1


@pytest.mark.parametrize("method", ["auto", "jacobian", "structured", "ntvp"])
def test_wrong_input_width_names_argument(method):
    net = MLP(1, "relu").sample(width=4, in_dim=3, seed=0, dtype=torch.float64)
    x = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"x1 must be inputs with 3 features \(the model's input "
        r"width\). Got 'shape \(2, 5\)'",
    ):
        empirical_ntk(net, torch.zeros(2, 5), method=method)
    with pytest.raises(
        ValueError, match=r"x2 must be inputs with 3 features .* Got 'shape \(4, 2\)'"
    ):
        empirical_ntk(net, x, torch.zeros(4, 2), method=method)


def test_wrong_input_width_generic_model_is_value_error():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, x):
            return torch.tanh(self.lin(x))

    with pytest.raises(
        ValueError, match=r"x1 must be inputs the model accepts. Got 'shape \(2, 4\)'"
    ):
        empirical_ntk(Net().double(), torch.zeros(2, 4), method="jacobian")


def test_bad_method_message():
    net = MLP(1, "relu").sample(width=4, in_dim=3, seed=0)
    with pytest.raises(ValueError, match="method must be one of 'auto', 'jacobian'"):
        empirical_ntk(net, torch.zeros(2, 3), method="fast")


def test_empirical_ntk_converges_to_spec_ntk_like_inverse_sqrt_width():
    # One hidden layer: Theta is an average of n i.i.d. per-neuron terms plus the
    # readout bias, so E||Theta_n - Theta_inf||_F^2 = c / n exactly; the log-log
    # slope of the RMS error against the width is -1/2.
    spec = MLP(1, "tanh", c_w=1.5, c_b=0.1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    target = spec.kernel(x).ntk
    widths = np.array([32, 128, 512, 2048])
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(1).spawn(30)]
    rms = []
    for n in widths:
        errs = [
            float(
                torch.linalg.norm(
                    empirical_ntk(spec.sample(int(n), in_dim=3, seed=s, dtype=torch.float64), x)
                    - target
                )
                ** 2
            )
            for s in seeds
        ]
        rms.append(math.sqrt(np.mean(errs)))
    slope = np.polyfit(np.log(widths), np.log(rms), 1)[0]
    # 30 squared errors per width: relative SE of each mean square ~ sqrt(2/30)/... ~ 0.2,
    # i.e. ~0.1 in log RMS per point; over a 64x width range the slope's SE is ~0.03.
    assert abs(slope + 0.5) < 0.1, slope
