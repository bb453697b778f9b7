"""Specs as data: ``MLP``, ``Dense``, ``Nonlinearity``, ``Serial``; the standard parametrisation.

Expected kernels come from closed forms derived here for deep linear networks
(identity activation), and from empirical NTKs of sampled finite networks.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import dltheory
from dltheory import MLP, Dense, Estimate, Nonlinearity, Serial, activation, empirical_ntk
from dltheory.spec.layers import Layer

X = torch.tensor(
    [[1.0, -0.5, 0.3], [0.2, 0.8, -1.1], [-0.7, 0.1, 0.9], [1.0, -0.5, 0.3]], dtype=torch.float64
)


def dense_layers(spec: Serial) -> list[Dense]:
    return [layer for layer in spec.layers if isinstance(layer, Dense)]


# MLP ---------------------------------------------------------------------------------------


def test_mlp_structure():
    c_w, c_b = [1.0, 1.5, 2.0, 0.5], [0.0, 0.1, 0.2, 0.3]
    spec = MLP(3, "tanh", c_w=c_w, c_b=c_b, width=16, out_dim=4, in_dim=5)
    assert isinstance(spec, Serial)
    assert [type(layer) for layer in spec.layers] == [Dense, Nonlinearity] * 3 + [Dense]
    assert spec.depth == 3
    assert spec.out_dim == 4
    assert (spec.width, spec.in_dim) == (16, 5)
    dense = dense_layers(spec)
    assert [d.c_w for d in dense] == c_w
    assert [d.c_b for d in dense] == c_b
    assert [d.width for d in dense] == [None, None, None, 4]
    assert {d.parametrization for d in dense} == {"ntk"}
    assert {layer.activation.name for layer in spec.layers[1::2]} == {"tanh"}


def test_mlp_scalar_variances_and_defaults():
    spec = MLP(2, c_w=2.0, c_b=0.5)
    assert spec.depth == 2 and spec.out_dim == 1
    assert spec.width is None and spec.in_dim is None
    assert [(d.c_w, d.c_b) for d in dense_layers(spec)] == [(2.0, 0.5)] * 3
    assert spec.layers[1].activation.name == "relu"


def test_mlp_passes_activation_parameters_and_parametrization():
    spec = MLP(1, "leaky_relu", parametrization="standard", width=8, slope=0.2)
    assert spec.layers[1].activation.params == {"slope": 0.2}
    assert {d.parametrization for d in dense_layers(spec)} == {"standard"}


@pytest.mark.parametrize("name", ["c_w", "c_b"])
@pytest.mark.parametrize("values", [[1.0, 1.0], [1.0] * 4, []])
def test_mlp_per_layer_list_of_wrong_length(name, values):
    with pytest.raises(ValueError) as info:
        MLP(2, **{name: values})
    assert str(info.value) == (
        f"{name} must be a number or a sequence of 3 numbers (one per Dense layer, "
        f"the readout included). Got {values!r}."
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "start"),
    [
        ({"depth": 0}, ValueError, "depth must be an integer >= 1. Got 0."),
        ({"depth": -2}, ValueError, "depth must be an integer >= 1. Got -2."),
        ({"depth": 2.0}, TypeError, "depth must be an integer. Got 2.0."),
        ({"depth": 2, "out_dim": 0}, ValueError, "out_dim must be an integer >= 1. Got 0."),
        ({"depth": 2, "width": 0}, ValueError, "width must be an integer >= 1. Got 0."),
        ({"depth": 2, "width": 8.5}, TypeError, "width must be an integer. Got 8.5."),
        ({"depth": 2, "in_dim": 0}, ValueError, "in_dim must be an integer >= 1. Got 0."),
        ({"depth": 2, "c_w": -1.0}, ValueError, "c_w must be a variance >= 0. Got -1.0."),
        ({"depth": 2, "c_b": [0.0, -0.1, 0.0]}, ValueError, "c_b must be a variance >= 0."),
        ({"depth": 2, "c_w": True}, TypeError, "c_w must be a real number. Got True."),
        ({"depth": 2, "parametrization": "yang"}, ValueError, "parametrization must be one of"),
        ({"depth": 2, "activation": None}, TypeError, "activation must be a name or"),
        ({"depth": 2, "activation": "relu", "slope": 0.1}, TypeError, "params must be valid"),
    ],
)
def test_mlp_validation(kwargs, error, start):
    with pytest.raises(error) as info:
        MLP(**kwargs)
    assert str(info.value).startswith(start)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("slope", [float("nan"), float("inf"), 1j, "0.1"])
def test_activation_parameters_are_validated(slope):
    # A NaN slope gave a NaN kernel and 1j a silently real-cast one; refuse them up front.
    with pytest.raises((ValueError, TypeError)) as info:
        MLP(1, "leaky_relu", slope=slope)
    text = str(info.value)
    assert text.startswith(("slope must be ", "params must be ")), text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("typo", "close"), [("rellu", "relu"), ("tanhh", "tanh"), ("GeLU_", "gelu")]
)
def test_unknown_activation_lists_close_names(typo, close):
    with pytest.raises(ValueError) as info:
        MLP(2, typo)
    text = str(info.value)
    assert text.startswith("activation must be one of ")
    assert f"Got {typo!r}." in text
    hint = text.split(f"Got {typo!r}.", 1)[1]
    assert close in hint.replace(",", " ").replace("?", " ").split()


def test_activation_names_are_normalised():
    assert MLP(1, " ReLU ").layers[1].activation.name == "relu"
    assert MLP(1, "Leaky-ReLU").layers[1].activation.name == "leaky_relu"
    assert set(dltheory.activations.names()) >= {"relu", "tanh", "gelu", "erf"}


# Dense -------------------------------------------------------------------------------------


def test_dense_stores_floats_and_is_frozen():
    layer = Dense(2, 0, width=3)
    assert (layer.c_w, layer.c_b) == (2.0, 0.0)
    assert type(layer.c_w) is float and type(layer.c_b) is float
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.c_w = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        (
            {"c_w": -1.0},
            ValueError,
            "c_w must be a variance >= 0. Got -1.0. Variances cannot be negative.",
        ),
        (
            {"c_b": -0.5},
            ValueError,
            "c_b must be a variance >= 0. Got -0.5. Variances cannot be negative.",
        ),
        ({"c_w": float("nan")}, ValueError, "c_w must be finite. Got nan."),
        ({"c_b": "0.1"}, TypeError, "c_b must be a real number. Got '0.1'."),
        ({"width": 0}, ValueError, "width must be an integer >= 1. Got 0."),
        ({"width": -3}, ValueError, "width must be an integer >= 1. Got -3."),
        ({"width": 4.0}, TypeError, "width must be an integer. Got 4.0."),
        ({"width": True}, TypeError, "width must be an integer. Got True."),
        (
            {"parametrization": "yang"},
            ValueError,
            "parametrization must be one of 'ntk', 'standard', 'mean_field', 'mup'. Got 'yang'.",
        ),
        (
            {"parametrization": None},
            ValueError,
            "parametrization must be one of 'ntk', 'standard', 'mean_field', 'mup'. Got None.",
        ),
        (
            {"lr_w": -1.0},
            ValueError,
            "lr_w must be a variance >= 0. Got -1.0. Variances cannot be negative.",
        ),
    ],
)
def test_dense_validation(kwargs, error, text):
    with pytest.raises(error) as info:
        Dense(**kwargs)
    assert str(info.value) == text


@pytest.mark.parametrize("name", ["c_w", "c_b"])
def test_dense_refuses_variances_beyond_float_range(name):
    # float(10**400) overflows; the spec must answer with its own ValueError.
    with pytest.raises(ValueError) as info:
        Dense(**{name: 10**400})
    assert str(info.value).startswith(f"{name} must be ")


def test_dense_learning_rates():
    assert Dense(2.0, 0.3).learning_rates(None) == (2.0, 0.3)
    assert Dense(2.0, 0.3, lr_w=0.5, lr_b=0.0).learning_rates(7) == (0.5, 0.0)
    assert Dense(2.0, 0.3, parametrization="standard").learning_rates(7) == (7.0, 1.0)
    assert Dense(2.0, 0.3, parametrization="standard", lr_w=0.5).learning_rates(4) == (2.0, 1.0)


# Nonlinearity and Serial -------------------------------------------------------------------


def test_nonlinearity_accepts_name_activation_or_callable():
    assert Nonlinearity("erf").activation.name == "erf"
    relu = activation("relu")
    assert Nonlinearity(relu).activation is relu
    custom = Nonlinearity(lambda z: z * torch.sigmoid(z)).activation
    z = torch.linspace(-2, 2, 5, dtype=torch.float64)
    torch.testing.assert_close(custom(z), z * torch.sigmoid(z))
    with pytest.raises(ValueError, match=r"^activation must be one of "):
        Nonlinearity("no-such-activation")


def test_serial_flattens_nested_serials_in_order():
    d1, d2, d3 = Dense(1.0), Dense(2.0), Dense(3.0, width=2)
    act1, act2 = Nonlinearity("relu"), Nonlinearity("tanh")
    spec = Serial(Serial(d1, act1), Serial(Serial(d2), act2), d3, width=5, in_dim=3)
    assert spec.layers == (d1, act1, d2, act2, d3)
    assert spec.depth == 2
    assert spec.out_dim == 2
    assert (spec.width, spec.in_dim) == (5, 3)


def test_serial_out_dim_falls_back_to_width():
    assert Serial(Dense(), Nonlinearity("relu"), Dense(), width=7).out_dim == 7
    assert Serial(Dense()).out_dim is None


def test_serial_validation():
    with pytest.raises(ValueError, match=r"^layers must be at least one layer\. Got \(\)\.$"):
        Serial()
    with pytest.raises(
        TypeError,
        match=r"^layers must be spec layers \(Dense, Nonlinearity, \.\.\.\) or Serial\. "
        r"Got 3\.$",
    ):
        Serial(Dense(), 3)
    with pytest.raises(TypeError, match=r"^layers must be spec layers"):
        Serial(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"^width must be an integer >= 1\. Got 0\.$"):
        Serial(Dense(), width=0)
    with pytest.raises(TypeError, match=r"^in_dim must be an integer\. Got '3'\.$"):
        Serial(Dense(), in_dim="3")


def test_kernel_refuses_specs_it_cannot_start_or_end():
    for spec in (Serial(Nonlinearity("relu"), Dense()), Serial(Dense(), Nonlinearity("relu"))):
        with pytest.raises(ValueError, match=r"^spec must be a network whose (first|last) layer"):
            spec.kernel(X, backend="torch")


def test_equal_specs_compare_equal():
    # A spec is data: two MLPs built from the same arguments are the same spec.
    assert Dense(2.0, 0.1) == Dense(2.0, 0.1)
    assert Nonlinearity("relu") == Nonlinearity("relu")
    assert MLP(2, "relu", c_w=2.0) == MLP(2, "relu", c_w=2.0)
    assert MLP(2, "relu") != MLP(2, "tanh")
    assert MLP(2, "leaky_relu", slope=0.1) != MLP(2, "leaky_relu", slope=0.2)


def test_a_default_parameter_passed_explicitly_gives_an_equal_spec():
    # Specs are normalised at creation: defaults filled in, aliases resolved, registry
    # instances replaced by the one instance of their (name, parameters).
    from dltheory.activations import activation

    assert MLP(1, "leaky_relu") == MLP(1, "leaky_relu", slope=0.01)
    assert hash(MLP(1, "leaky_relu")) == hash(MLP(1, "leaky_relu", slope=0.01))
    assert MLP(2, "elu") == MLP(2, "elu", alpha=1.0) == MLP(2, activation("elu"))
    assert Nonlinearity("linear") == Nonlinearity("identity")
    assert Nonlinearity("swish") == Nonlinearity("silu")
    assert Nonlinearity(activation("leaky_relu")) == Nonlinearity("leaky_relu", slope=0.01)
    assert MLP(1, "leaky_relu", slope=0.02) != MLP(1, "leaky_relu")
    # Another function under a registered name stays its own activation.
    from dltheory.activations import Activation

    fake = Activation.from_callable(lambda z: z.clamp(min=0) * 2, name="relu")
    assert Nonlinearity(fake) != Nonlinearity("relu")


def test_one_network_rule_for_every_interpreter():
    good = Serial(Dense(2.0), Nonlinearity("relu"), Dense())
    assert good.check_network() is good
    cases = [
        (Serial(Nonlinearity("relu"), Dense()), "first layer is Dense"),
        (Serial(Dense(), Nonlinearity("relu")), r"last layer is Dense \(the readout\)"),
        (Serial(Dense(), Nonlinearity("relu"), Nonlinearity("tanh"), Dense()), "free of two"),
    ]
    interpreters = (
        lambda spec: spec.check_network(),
        lambda spec: spec.kernel(X, backend="torch"),
        lambda spec: spec.sample(4, in_dim=X.shape[1], seed=0),
        lambda spec: dltheory.ensemble(spec, 4, 2, in_dim=X.shape[1]),
    )
    for spec, text in cases:
        for interpret in interpreters:
            with pytest.raises(ValueError, match=rf"^spec must be (a network .*)?{text}"):
                interpret(spec)


# The two interpreters cover every layer kind -------------------------------------------------


def test_interpreter_tables_cover_every_layer_kind():
    kinds = set(dltheory.spec.LAYER_KINDS)
    assert {Dense, Nonlinearity} <= kinds
    assert all(issubclass(kind, Layer) for kind in kinds)
    assert set(dltheory.kernels.graph.GRAPH_RULES) == kinds
    assert {k for k in kinds if k.chain_kind} == set(dltheory.kernels.recursion.RULES)
    assert set(dltheory.finite.modules.MODULE_RULES) == kinds
    assert set(dltheory.kernels.layer_kinds()) == kinds
    assert set(dltheory.finite.modules.MODULE_RULES) == kinds
    assert set(dltheory.kernels.layer_kinds()) == kinds


# Deep linear networks: closed forms --------------------------------------------------------


def linear_network_kernels(x, c_w, c_b, width=None):
    """K and Theta of an identity-activation network, derived by hand.

    K^(1) = c_b + c_w G with G = x.x' / n0, K^(l+1) = c_b + c_w K^(l).
    NTK parametrisation (lambda = C): Theta^(1) = c_b + c_w G,
    Theta^(l+1) = c_b + c_w K^(l) + c_w Theta^(l).
    Standard parametrisation (W, b trained directly): dz/dW_ij = s_j sums to
    n_l K^(l) over j and dz/db = 1, so Theta^(1) = 1 + x.x' and
    Theta^(l+1) = 1 + width K^(l) + c_w Theta^(l).
    """
    n0 = x.shape[1]
    gram = x @ x.T
    k = c_b[0] + c_w[0] * gram / n0
    if width is None:
        theta = k.clone()
    else:
        theta = 1.0 + gram
    for cw, cb in zip(c_w[1:], c_b[1:], strict=True):
        lam_w, lam_b = (cw, cb) if width is None else (width, 1.0)
        k, theta = cb + cw * k, lam_b + lam_w * k + cw * theta
    return k, theta


@pytest.mark.parametrize("width", [None, 3, 50])
def test_deep_linear_network_kernels_match_closed_form(width):
    c_w, c_b = [0.5, 1.5, 2.0, 0.8], [0.1, 0.0, 0.3, 0.2]
    parametrization = "ntk" if width is None else "standard"
    spec = MLP(3, "identity", c_w=c_w, c_b=c_b, width=width, parametrization=parametrization)
    k = spec.kernel(X, backend="torch")
    nngp, ntk = linear_network_kernels(X, c_w, c_b, width)
    torch.testing.assert_close(k.nngp, nngp, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(k.ntk, ntk, rtol=1e-12, atol=1e-12)


# Standard parametrisation -----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_standard_parametrization_kernel_needs_a_width(backend):
    spec = MLP(2, "relu", parametrization="standard")
    with pytest.raises(ValueError) as info:
        spec.kernel(X, backend=backend)
    text = str(info.value)
    assert text.startswith("width must be given for a standard-parametrisation NTK. Got None.")
    assert "parametrization='ntk'" in text and "\n" not in text


def test_standard_parametrization_ntk_grows_with_width():
    small = MLP(2, "relu", c_w=2.0, width=100, parametrization="standard").kernel(
        X, backend="torch"
    )
    large = MLP(2, "relu", c_w=2.0, width=400, parametrization="standard").kernel(
        X, backend="torch"
    )
    torch.testing.assert_close(small.nngp, large.nngp, rtol=1e-14, atol=0)
    ratio = large.ntk / small.ntk
    assert bool((ratio > 3.0).all()) and bool((ratio < 4.0).all())


def test_standard_parametrization_ntk_matches_empirical_ntk():
    width, n_seeds = 256, 20
    spec = MLP(2, "relu", c_w=2.0, c_b=0.1, width=width, parametrization="standard")
    predicted = spec.kernel(X, backend="torch").ntk
    samples = torch.stack(
        [
            empirical_ntk(spec.sample(in_dim=3, seed=seed, dtype=torch.float64), X)
            for seed in range(n_seeds)
        ]
    )
    measured = Estimate.from_samples(samples)
    # Finite-width bias is O(1/width) relative, far below the Monte-Carlo error here.
    assert measured.agrees(predicted, n_std=5.0), measured.zscore(predicted)
    # The NTK-parametrisation kernel is ~width times smaller: the comparison has power.
    ntk_param = MLP(2, "relu", c_w=2.0, c_b=0.1).kernel(X, backend="torch").ntk
    assert not measured.agrees(ntk_param, n_std=5.0)
