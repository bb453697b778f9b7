"""The tracer reads functional calls (F.adaptive_avg_pool2d, F.layer_norm, x.mean, ...).

Each functional form lifts to the same spec as its module form (compared as specs: the
module forms' kernels are tested against neural-tangents and NumPy in tests/kernels); the
zoo's TinyResNet lifts and its lifted kernels match its own finite networks; every other
zoo model either lifts or is refused in one line naming the graph node and the module.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tests.conftest import ZOO, TinyResNet
from torch import nn

from dltheory import empirical_ntk
from dltheory.spec import spec_from_module
from dltheory.spec.conv import AvgPool, Flatten
from dltheory.spec.normalization import LayerNorm


class _Net(nn.Module):
    """conv -> act -> ``tail`` (a functional form) -> Linear, on (N, 1, 4, 4) images."""

    def __init__(self, tail, features: int, channels: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.head = nn.Linear(features, 2)
        self.tail = tail

    def forward(self, x):
        return self.head(self.tail(self, torch.relu(self.conv(x))))


def _kinds(model) -> list[str]:
    return [type(layer).__name__ for layer in spec_from_module(model).layers]


@pytest.mark.parametrize(
    "tail",
    [
        lambda m, h: F.adaptive_avg_pool2d(h, 1).flatten(1),
        lambda m, h: torch.flatten(F.adaptive_avg_pool2d(h, (1, 1)), 1),
        lambda m, h: h.mean((2, 3)),
        lambda m, h: torch.mean(h, dim=(-2, -1)),
    ],
    ids=["adaptive-1", "adaptive-1x1", "mean-method", "mean-function"],
)
def test_global_pooling_forms_lift_to_global_avg_pool(tail) -> None:
    assert _kinds(_Net(tail, 3)) == ["Conv", "Nonlinearity", "GlobalAvgPool", "Dense"]


def test_avg_pool_and_flatten_lift_to_their_kinds() -> None:
    net = _Net(lambda m, h: torch.flatten(F.avg_pool2d(h, 2), 1), 3 * 4)
    spec = spec_from_module(net)
    assert [type(x).__name__ for x in spec.layers] == [
        "Conv", "Nonlinearity", "AvgPool", "Flatten", "Dense",
    ]  # fmt: skip
    assert spec.layers[2] == AvgPool((2, 2), padding=(0, 0))
    strided = _Net(lambda m, h: F.avg_pool2d(h, 3, stride=1, padding=1).flatten(1), 3 * 16)
    assert spec_from_module(strided).layers[2] == AvgPool((3, 3), stride=(1, 1), padding=(1, 1))
    # a flatten of an image is Flatten (not a no-op): the kernel averages pixel pairs
    assert isinstance(spec_from_module(_Net(lambda m, h: h.flatten(1), 48)).layers[2], Flatten)


@pytest.mark.parametrize(
    ("tail", "words"),
    [
        (lambda m, h: F.adaptive_avg_pool2d(h, 2).flatten(1), "output_size 2"),
        (lambda m, h: F.avg_pool2d(h, 2, ceil_mode=True).flatten(1), "ceil_mode=True"),
        (lambda m, h: h.mean(1), "mean over (1,)"),
        (lambda m, h: torch.flatten(h), "start_dim=0"),
    ],
    ids=["adaptive-2", "ceil-mode", "mean-channels", "flatten-batch"],
)
def test_unread_pooling_forms_are_refused_in_one_line(tail, words) -> None:
    with pytest.raises(ValueError, match="graph node") as err:
        spec_from_module(_Net(tail, 12))
    assert "\n" not in str(err.value) and words in str(err.value)


class _VectorNorm(nn.Module):
    def __init__(self, affine: bool, kind: str = "layer") -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 6), nn.Linear(6, 1)
        self.kind = kind
        self.weight = nn.Parameter(torch.ones(6)) if affine else None
        self.bias = nn.Parameter(torch.zeros(6)) if affine else None

    def forward(self, x):
        h = self.fc1(x)
        if self.kind == "layer":
            h = F.layer_norm(h, (6,), self.weight, self.bias, eps=1e-3)
        else:
            h = F.group_norm(h, 1, self.weight, self.bias)
        return self.fc2(torch.tanh(h))


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("kind", ["layer", "group"])
def test_functional_norms_of_features_lift_to_layer_norm(affine, kind) -> None:
    norm = spec_from_module(_VectorNorm(affine, kind)).layers[1]
    eps = 1e-3 if kind == "layer" else 1e-5
    assert norm == LayerNorm(affine=affine, bias=affine, eps=eps)


def test_functional_norm_matches_its_module_form_on_images() -> None:
    def functional(m, h):
        return F.group_norm(h, 1).flatten(1)

    class Module(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.norm = nn.Conv2d(1, 3, 3, padding=1), nn.GroupNorm(1, 3, affine=False)
            self.head = nn.Linear(48, 2)

        def forward(self, x):
            return self.head(self.norm(torch.relu(self.conv(x))).flatten(1))

    assert spec_from_module(_Net(functional, 48)) == spec_from_module(Module())
    chw = _Net(lambda m, h: F.layer_norm(h, (3, 4, 4)).flatten(1), 48)
    assert spec_from_module(chw).layers[2] == LayerNorm(False, False, 1e-5, over="all")


def test_functional_norm_refusals_are_one_line() -> None:
    model = _VectorNorm(True)
    with torch.no_grad():
        model.weight.fill_(2.0)  # not at its init: the kernel would not be the model's
    cases = [
        (model, "weight is 1 at initialisation"),
        (_Net(lambda m, h: F.group_norm(h, 3).flatten(1), 48), "3 groups"),
        (_Net(lambda m, h: F.layer_norm(h, (4, 4)).flatten(1), 48), "normalized_shape (4, 4)"),
    ]
    for net, words in cases:
        with pytest.raises(ValueError, match="graph node") as err:
            spec_from_module(net)
        assert "\n" not in str(err.value) and words in str(err.value), str(err.value)


@pytest.mark.parametrize("name", ["elu", "softplus", "sin", "gelu", "silu"])
def test_registry_activations_lift_from_functional_calls(name) -> None:
    fn = getattr(F, name, None) or getattr(torch, name)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(3, 5), nn.Linear(5, 1)

        def forward(self, x):
            return self.b(fn(self.a(x)))

    assert spec_from_module(Net()).layers[1].activation.name == name


# ------------------------------------------------------------------------------------
# The zoo
# ------------------------------------------------------------------------------------

#: zoo model -> the lifted kinds, or the words of its one-line refusal
ZOO_OUTCOMES = {
    "conv_bn": "module '1': BatchNorm2d",
    "resnet": ["Conv", "Nonlinearity", "Residual", "GlobalAvgPool", "Dense"],
    "transformer": "module 'embed': Embedding",
    "dropout_mlp": ["Dense", "Nonlinearity", "Dense"],
    "groupnorm_conv": "module '1': GroupNorm",
    "tied_mlp": "module '2': Linear",
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_zoo_model_lifts_or_is_refused_in_one_line(name) -> None:
    assert set(ZOO_OUTCOMES) == set(ZOO)  # a new zoo model needs its outcome here
    model = ZOO[name][0]()
    expected = ZOO_OUTCOMES[name]
    if isinstance(expected, list):
        assert _kinds(model) == expected
        return
    with pytest.raises(ValueError, match="graph node") as err:
        spec_from_module(model)
    assert "\n" not in str(err.value) and expected in str(err.value), str(err.value)


class _WideResNet(TinyResNet):
    """TinyResNet with ``channels`` channels (the zoo's forward, read unchanged)."""

    def __init__(self, channels: int, out: int) -> None:
        super().__init__(out)
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.head = nn.Linear(channels, out)


def _images(n: int = 3) -> torch.Tensor:
    return torch.randn(n, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_tiny_resnet_lifted_nngp_and_ntk_match_its_finite_networks() -> None:
    """Ensembles of the zoo's ResNet at 64 channels against the lifted spec's kernels.

    Per entry |mean - limit| <= 5 SE + c / channels: the SE over nets (and the output
    units, independent at init) bounds the sampling error; the finite-width bias of
    the NNGP / NTK is O(1 / channels) (Hanin & Nica 2019), c = 2 |limit| a generous
    constant (the observed bias at 64 channels is a few percent of the limit).
    """
    x = _images()
    channels, out, n_nets = 64, 8, 60
    # PyTorch's bias variance 1 / (3 fan_in) depends on the width: lift the same model
    kernel = spec_from_module(_WideResNet(channels, out)).kernel(x)
    nngp, ntk = kernel.nngp.double(), kernel.ntk.double()
    torch.manual_seed(0)
    outer, ntks = [], []
    for s in range(n_nets):
        net = _WideResNet(channels, out).double()
        with torch.no_grad():
            f = net(x)  # (N, out)
        outer.append(f.T[:, :, None] * f.T[:, None, :])  # (out, N, N)
        if s < 12:
            ntks.append(empirical_ntk(net, x) / 1.0)
    outer = torch.cat(outer)
    ntks = torch.stack(ntks)
    assert ntks.shape[-2:] == nngp.shape
    for samples, limit in ((outer, nngp), (ntks, ntk)):
        mean = samples.mean(0)
        se = samples.std(0) / math.sqrt(len(samples))
        bound = 5 * se + 2 * limit.abs().max() / channels
        assert torch.all((mean - limit).abs() <= bound), (mean, limit, bound)


def test_tiny_resnet_measured_apjn_runs() -> None:
    nets = [TinyResNet().double() for _ in range(3)]
    apjn, variance = __import__("dltheory.criticality", fromlist=["measured_apjn"]).measured_apjn(
        nets, _images(4)
    )
    assert apjn.mean.shape == variance.mean.shape and len(apjn.mean) >= 3
    assert torch.isfinite(apjn.mean).all() and abs(float(apjn.mean[0]) - 1.0) < 0.1
