"""``spec_from_module``: lifting an ordinary PyTorch MLP into a spec.

The Monte-Carlo checks re-initialise plain ``nn.Linear`` layers by hand,
W ~ N(0, c_w / fan_in), b ~ N(0, c_b), independently of the library's sampler.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dltheory import Dense, Estimate, Nonlinearity, Serial, empirical_ntk, spec_from_module
from dltheory.spec import MLP

X = torch.tensor(
    [[1.0, -0.5, 0.3], [0.2, 0.8, -1.1], [-0.7, 0.1, 0.9], [1.5, 0.4, 0.0]], dtype=torch.float64
)
C_W, C_B = [1.0, 2.0, 1.5], [0.1, 0.0, 0.2]


def three_layer_model(width: int = 8, out: int = 2) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 6), nn.Tanh(), nn.Linear(6, out)
    ).double()


def hand_built(width: int = 8, out: int = 2, parametrization: str = "ntk") -> Serial:
    dense = [
        Dense(cw, cb, width=w, parametrization=parametrization)
        for cw, cb, w in zip(C_W, C_B, [width, 6, out], strict=True)
    ]
    return Serial(
        dense[0], Nonlinearity("relu"), dense[1], Nonlinearity("tanh"), dense[2], in_dim=3
    )


def reinitialise(model: nn.Sequential, c_w, c_b, generator: torch.Generator) -> None:
    """W ~ N(0, c_w / fan_in), b ~ N(0, c_b), layer by layer."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for layer, cw, cb in zip(linears, c_w, c_b, strict=True):
            fan_in = layer.in_features
            layer.weight.normal_(0.0, math.sqrt(cw / fan_in), generator=generator)
            layer.bias.normal_(0.0, math.sqrt(cb), generator=generator)


# Structure ---------------------------------------------------------------------------------


def test_reads_widths_and_activations():
    spec = spec_from_module(three_layer_model(), c_w=C_W, c_b=C_B, parametrization="ntk")
    assert isinstance(spec, Serial)
    assert [type(layer) for layer in spec.layers] == [Dense, Nonlinearity] * 2 + [Dense]
    dense = [layer for layer in spec.layers if isinstance(layer, Dense)]
    assert [d.width for d in dense] == [8, 6, 2]
    assert [d.c_w for d in dense] == C_W
    assert [d.c_b for d in dense] == C_B
    assert {d.parametrization for d in dense} == {"ntk"}
    assert [layer.activation.name for layer in spec.layers[1::2]] == ["relu", "tanh"]
    assert (spec.in_dim, spec.out_dim, spec.depth) == (3, 2, 2)


def test_scalar_variances_apply_to_every_linear():
    spec = spec_from_module(three_layer_model(), c_w=2.0, c_b=0.5, parametrization="standard")
    dense = [layer for layer in spec.layers if isinstance(layer, Dense)]
    assert [(d.c_w, d.c_b, d.parametrization) for d in dense] == [(2.0, 0.5, "standard")] * 3


def test_kernel_equals_the_hand_built_spec():
    model = three_layer_model()
    lifted = spec_from_module(model, c_w=C_W, c_b=C_B, parametrization="ntk").kernel(X)
    expected = hand_built().kernel(X, backend="torch")
    torch.testing.assert_close(lifted.nngp, expected.nngp, rtol=1e-12, atol=0)
    torch.testing.assert_close(lifted.ntk, expected.ntk, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("module", "name", "params"),
    [
        (nn.ReLU(), "relu", {}),
        (nn.Tanh(), "tanh", {}),
        (nn.Sigmoid(), "sigmoid", {}),
        (nn.SiLU(), "silu", {}),
        (nn.GELU(), "gelu", {}),
        (nn.LeakyReLU(0.2), "leaky_relu", {"slope": 0.2}),
        (nn.ELU(alpha=0.5), "elu", {"alpha": 0.5}),
        (nn.Softplus(), "softplus", {}),
        (nn.Softplus(beta=2.0), "softplus", {"beta": 2.0}),
        (nn.GELU(approximate="tanh"), "gelu", {"approximate": "tanh"}),
        (nn.Mish(), "mish", {}),
    ],
)
def test_supported_activations_are_the_same_function(module, name, params):
    spec = spec_from_module(nn.Sequential(nn.Linear(2, 4), module, nn.Linear(4, 1)))
    act = spec.layers[1].activation
    assert (act.name, act.params) == (name, params)
    z = torch.linspace(-6.0, 6.0, 241, dtype=torch.float64)
    torch.testing.assert_close(act.fn(z), module(z), rtol=1e-12, atol=1e-12)


def test_round_trip_of_a_sampled_spec():
    for parametrization in ("ntk", "standard"):
        spec = MLP(2, "relu", c_w=[1.5, 2.0, 0.5], c_b=0.2, parametrization=parametrization)
        model = spec.sample(width=16, in_dim=3, seed=0, dtype=torch.float64)
        lifted = spec_from_module(model)
        dense = [layer for layer in lifted.layers if isinstance(layer, Dense)]
        assert [(d.c_w, d.c_b, d.width) for d in dense] == [
            (1.5, 0.2, 16),
            (2.0, 0.2, 16),
            (0.5, 0.2, 1),
        ]
        assert {d.parametrization for d in dense} == {parametrization}
        expected = Serial(spec, width=16).kernel(X, backend="torch")
        got = lifted.kernel(X, backend="torch")
        torch.testing.assert_close(got.nngp, expected.nngp, rtol=1e-12, atol=0)
        torch.testing.assert_close(got.ntk, expected.ntk, rtol=1e-12, atol=0)


# Errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [
        nn.Hardtanh(),
        nn.Softplus(threshold=5.0),  # torch's linear switch differs by e^-5
    ],
)
def test_unsupported_modules_are_refused_naming_model(module):
    model = nn.Sequential(nn.Linear(3, 4), module, nn.Linear(4, 1))
    with pytest.raises(ValueError) as info:
        spec_from_module(model)
    text = str(info.value)
    assert text.startswith("model must be made of Linear layers and supported activations. ")
    assert f"Got {type(module).__name__!r}." in text
    assert "Supported: ReLU, Tanh" in text and "\n" not in text


def test_layers_without_a_closed_form_kernel_are_refused_naming_model():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    with pytest.raises(ValueError) as info:
        spec_from_module(model)
    text = str(info.value)
    assert text.startswith("model must be made of layers with a closed-form infinite-width ")
    assert "Got 'BatchNorm1d'." in text and "Monte Carlo over finite networks" in text


def test_non_module_is_refused_and_a_bare_linear_is_a_network():
    with pytest.raises(TypeError) as info:
        spec_from_module(lambda x: x)
    assert str(info.value) == "model must be a torch.nn.Module. Got 'function'."
    spec = spec_from_module(nn.Linear(3, 1))
    assert [type(layer) for layer in spec.layers] == [Dense] and spec.in_dim == 3


def test_sequential_without_linear_is_refused_in_one_line():
    with pytest.raises(ValueError) as info:
        spec_from_module(nn.Sequential(nn.ReLU()))
    text = str(info.value)
    assert text.startswith("model must be a model with at least one Linear layer. Got ")
    assert "\n" not in text


@pytest.mark.parametrize("name", ["c_w", "c_b"])
@pytest.mark.parametrize("values", [[1.0, 1.0], [1.0] * 4])
def test_per_layer_list_of_wrong_length_names_the_argument(name, values):
    with pytest.raises(ValueError) as info:
        spec_from_module(three_layer_model(), **{name: values})
    text = str(info.value)
    assert text == f"{name} must be a number or 3 numbers (one per Linear). Got {values!r}."


def test_negative_variance_is_refused():
    with pytest.raises(ValueError, match=r"^c_b must be a variance >= 0\. Got -0\.1\."):
        spec_from_module(three_layer_model(), c_b=[0.0, -0.1, 0.0])


def test_bias_free_linear_gets_no_bias_variance():
    # A Linear without a bias cannot be initialised with C_b > 0: its layer of the
    # lifted spec must have c_b = 0 (or the lift must refuse the C_b it cannot honour).
    model = nn.Sequential(nn.Linear(3, 8, bias=False), nn.ReLU(), nn.Linear(8, 1))
    try:
        spec = spec_from_module(model, c_w=2.0, c_b=0.3)
    except ValueError as err:
        assert str(err).startswith(("c_b must be ", "model must be "))
        return
    assert [layer.c_b for layer in spec.layers if isinstance(layer, Dense)] == [0.0, 0.3]


# Monte Carlo: the lifted spec describes the model at initialisation --------------------------


def test_output_covariance_matches_lifted_nngp():
    width, n_seeds = 256, 300
    model = three_layer_model(width=width, out=1)
    spec = spec_from_module(model, c_w=C_W, c_b=C_B)
    predicted = spec.kernel(X, backend="torch").nngp
    generator = torch.Generator().manual_seed(0)
    outputs = []
    with torch.no_grad():
        for _ in range(n_seeds):
            reinitialise(model, C_W, C_B, generator)
            outputs.append(model(X)[:, 0])
    z = torch.stack(outputs)  # (seeds, inputs)
    measured = Estimate.from_samples(z[:, :, None] * z[:, None, :])
    assert measured.agrees(predicted, n_std=5.0), measured.zscore(predicted)
    assert Estimate.from_samples(z).agrees(torch.zeros(len(X)), n_std=5.0)


def test_empirical_ntk_of_plain_linears_matches_lifted_standard_ntk():
    # Training nn.Linear weights directly is the standard parametrisation.
    width, n_seeds = 256, 20
    model = three_layer_model(width=width, out=1)
    spec = spec_from_module(model, c_w=C_W, c_b=C_B, parametrization="standard")
    predicted = spec.kernel(X, backend="torch").ntk
    generator = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(n_seeds):
        reinitialise(model, C_W, C_B, generator)
        samples.append(empirical_ntk(model, X))
    measured = Estimate.from_samples(torch.stack(samples))
    assert measured.agrees(predicted, n_std=5.0), measured.zscore(predicted)


def test_identity_is_skipped_like_everywhere_else():
    from dltheory.spec import is_pass_through, module_activation

    assert module_activation(nn.Identity()) is None and is_pass_through(nn.Identity())
    model = nn.Sequential(nn.Linear(2, 4), nn.Identity(), nn.Tanh(), nn.Identity(), nn.Linear(4, 1))
    spec = spec_from_module(model)
    assert [type(layer).__name__ for layer in spec.layers] == ["Dense", "Nonlinearity", "Dense"]
    linear = spec_from_module(
        nn.Sequential(nn.Linear(2, 4), nn.Identity(), nn.Linear(4, 1)), c_w=1.0, c_b=0.0
    )
    assert [type(layer).__name__ for layer in linear.layers] == ["Dense", "Dense"]
    # Dense, Dense is the linear network: K = C_w^2 x.x' / n_0 with C_w = 1.
    x = torch.tensor([[1.0, 2.0], [-0.5, 0.3]], dtype=torch.float64)
    torch.testing.assert_close(linear.kernel(x).nngp, x @ x.T / 2, rtol=1e-15, atol=0)


def test_two_activations_in_a_row_are_refused():
    with pytest.raises(ValueError, match="model must be free of two activations in a row"):
        spec_from_module(nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Tanh(), nn.Linear(4, 1)))
