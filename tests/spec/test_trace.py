"""``spec_from_module`` by tracing: residual models, PyTorch's default init, refusals.

The convergence check compares the lifted spec's NTK (standard parametrisation, the
model's own init: C_w = 1/3, C_b = 1/(3 fan_in)) with ``empirical_ntk`` of the same
plain PyTorch models at growing width: the relative Frobenius error of the NTK at
initialisation falls as width^-1/2 (its fluctuations are O(1/sqrt(n)); Hanin & Nica
2020), so the fitted log-log slope must be -1/2 +- 0.1. Each width averages the squared
error over 12 models, which keeps the slope's spread near +-0.05 (measured over seeds).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from dltheory import empirical_ntk, spec_from_module
from dltheory.spec import Dense, LayerNorm, Nonlinearity, Residual

X = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


class Block(nn.Module):
    def __init__(self, width: int, pre_ln: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width) if pre_ln else nn.Identity()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(torch.relu(self.fc1(self.norm(h))))


class ResNet(nn.Module):
    def __init__(self, width: int, depth: int = 3, pre_ln: bool = True) -> None:
        super().__init__()
        self.inp = nn.Linear(5, width)
        self.blocks = nn.ModuleList([Block(width, pre_ln) for _ in range(depth)])
        self.drop = nn.Dropout(0.1)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h)
        return self.out(self.drop(torch.relu(h)))


def test_structure_and_pytorch_default_variances():
    spec = spec_from_module(ResNet(16))
    kinds = [type(layer).__name__ for layer in spec.layers]
    assert kinds == ["Dense", "Residual", "Residual", "Residual", "Nonlinearity", "Dense"]
    first, block = spec.layers[0], spec.layers[1]
    assert isinstance(block, Residual) and (block.alpha, block.gamma, block.skip) == (1.0, 1.0, ())
    assert [type(layer) for layer in block.branch] == [LayerNorm, Dense, Nonlinearity, Dense]
    assert block.branch[0].affine and block.branch[0].eps == 1e-5
    # nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b: variances 1/(3 fan_in).
    assert (first.c_w, first.c_b, first.parametrization) == (1 / 3, 1 / 15, "standard")
    assert (block.branch[1].c_w, block.branch[1].c_b) == (1 / 3, 1 / 48)
    assert spec.in_dim == 5 and spec.out_dim == 1


def test_the_default_variances_are_those_of_nn_linear():
    # Measured on many fresh nn.Linear(fan_in=48) layers: fan_in Var(W) = 1/3, Var(b) = 1/144.
    torch.manual_seed(0)
    w = torch.cat([nn.Linear(48, 48).weight.flatten() for _ in range(40)]).double()
    b = torch.cat([nn.Linear(48, 48).bias for _ in range(400)]).double()
    # Standard errors of a variance estimate of a uniform law: sqrt(0.8 / n) relative.
    assert abs(48 * w.var().item() - 1 / 3) < 5 * math.sqrt(0.8 / len(w)) / 3
    assert abs(b.var().item() - 1 / 144) < 5 * math.sqrt(0.8 / len(b)) / 144


def test_scalar_multiples_subtraction_and_nested_sums():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c, self.out = (nn.Linear(4, 4) for _ in range(4))

        def forward(self, x):
            h = self.a(x)
            h = 0.8 * h - self.b(torch.tanh(h)) / 4  # gamma = 0.8, alpha = -0.25
            h = (h + self.c(torch.tanh(h))) * 0.5  # a scaled sum: gamma = alpha = 0.5
            return self.out(h)

    spec = spec_from_module(Net(), c_w=1.0, c_b=0.0)
    r1, r2 = spec.layers[1], spec.layers[2]
    assert (r1.gamma, r1.alpha) == (0.8, -0.25)
    assert (r2.gamma, r2.alpha) == (0.5, 0.5)


def test_a_sampled_residual_spec_lifts_back_to_itself():
    from dltheory.spec import Serial

    relu = Nonlinearity("relu")
    spec = Serial(
        Dense(2.0, 0.1),
        Residual((LayerNorm(), relu, Dense(2.0, 0.1)), alpha=0.5),
        relu,
        Dense(1.0, width=1),
        width=16,
    )
    model = spec.sample(in_dim=5, seed=0, dtype=torch.float64)
    lifted = spec_from_module(model)
    torch.testing.assert_close(lifted.kernel(X).nngp, spec.kernel(X).nngp, rtol=1e-13, atol=0)
    torch.testing.assert_close(lifted.kernel(X).ntk, spec.kernel(X).ntk, rtol=1e-13, atol=0)


def test_fifty_blocks_trace_and_lift_in_under_a_second():
    model = ResNet(64, depth=50)
    spec_from_module(model)  # first call: imports
    start = time.process_time()
    spec = spec_from_module(model)
    assert time.process_time() - start < 1.0
    assert sum(isinstance(layer, Residual) for layer in spec.layers) == 50


def test_empirical_ntk_of_the_plain_model_approaches_the_lifted_ntk():
    torch.manual_seed(0)
    widths = [64, 128, 256, 512]
    errors = []
    for width in widths:
        squares = []
        for _ in range(12):
            model = ResNet(width).double().eval()  # Dropout: the identity
            theory = spec_from_module(model).kernel(X).ntk
            diff = empirical_ntk(model, X) - theory
            squares.append(float((diff.norm() / theory.norm()) ** 2))
        errors.append(math.sqrt(np.mean(squares)))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert -0.6 < slope < -0.4, (slope, errors)
    assert errors[-1] < 0.15


@pytest.mark.slow
def test_empirical_ntk_at_width_4096():
    torch.manual_seed(1)
    widths, errors = [256, 1024, 4096], []
    x = X
    for width, n_models in zip(widths, [16, 12, 6], strict=True):
        squares = []
        for _ in range(n_models):
            model = ResNet(width, depth=1).double().eval()
            theory = spec_from_module(model).kernel(x).ntk
            squares.append(float(((empirical_ntk(model, x) - theory).norm() / theory.norm()) ** 2))
        errors.append(math.sqrt(np.mean(squares)))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert -0.6 < slope < -0.4, (slope, errors)


# Refusals ----------------------------------------------------------------------------------


def refusal(model: nn.Module) -> str:
    with pytest.raises(ValueError) as info:
        spec_from_module(model)
    text = str(info.value)
    assert text.startswith("model must be ") and "\n" not in text
    return text


def test_shapes_that_do_not_chain_are_refused():
    text = refusal(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(7, 1)))
    assert "Got '7 input features after 5'" in text
    assert "graph node '_2' (module '2': Linear)" in text


def test_untraceable_forward_is_refused():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 3)

        def forward(self, x):
            return self.a(x) if x.sum() > 0 else x

    assert "a module whose forward torch.fx can trace. Got 'Branchy'" in refusal(Branchy())


@pytest.mark.parametrize(
    ("forward", "needle"),
    [
        (lambda m, x: (h := m.a(x)) + torch.relu(h), "a branch ending in a fresh Linear"),
        (lambda m, x: m.b(h := m.a(x)) + m.b(h), "module 'b' in both arms"),
        (lambda m, x: m.a(x) + m.a(x), "module 'a' in both arms"),
        (lambda m, x: m.b(torch.cumsum(m.a(x), 1)), "Got 'cumsum'"),  # abs lifts (registry)
        (lambda m, x: m.b(m.a(x) * x), "Got 'mul'"),
        (lambda m, x: m.b(m.a(x).softmax(-1)), "Got 'tensor.softmax()'"),
        (lambda m, x: m.b(m.a(x) + m.c(x)), "Got '3 + 4'"),
    ],
)
def test_operations_without_a_kind_and_dependent_branches_are_refused(forward, needle):
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 4)

        def forward(self, x):
            return forward(self, x)

    text = refusal(Net())
    assert needle in text, text
    assert "At graph node " in text


def test_batch_norm_is_refused_naming_its_module():
    model = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.BatchNorm1d(4)), nn.Linear(4, 1))
    text = refusal(model)
    assert "Got 'BatchNorm1d'" in text and "module '1.0': BatchNorm1d" in text


# LayerNorm and GroupNorm inside conv nets -----------------------------------------------------


def _conv_net(norm: nn.Module, permute: bool = False) -> nn.Module:
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.norm, self.head = nn.Conv2d(2, 6, 3, padding=1), norm, nn.Linear(6, 1)
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            h = torch.relu(self.conv(x))
            h = self.norm(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2) if permute else self.norm(h)
            return self.head(self.pool(h).flatten(1))

    return Net()


def test_image_layernorms_are_lifted_with_their_axes():
    from dltheory import spec_from_module

    cases = [
        (_conv_net(nn.LayerNorm(6), permute=True), "channels", False),
        (_conv_net(nn.LayerNorm((6, 4, 4))), "all", True),
        (_conv_net(nn.GroupNorm(1, 6)), "all", False),
        (_conv_net(nn.LayerNorm((6, 4, 4), elementwise_affine=False)), "all", False),
    ]
    for model, over, per_pixel in cases:
        norm = spec_from_module(model).layers[2]
        assert isinstance(norm, LayerNorm)
        assert (norm.over, norm.per_pixel_affine) == (over, per_pixel)
    # GroupNorm(1, C) is LayerNorm over (C, H, W) with one gain per channel: same kernel.
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    k_gn = spec_from_module(_conv_net(nn.GroupNorm(1, 6))).kernel(x)
    k_ln = spec_from_module(_conv_net(nn.LayerNorm((6, 4, 4)))).kernel(x)
    torch.testing.assert_close(k_gn.nngp, k_ln.nngp, rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    ("norm", "permute", "text"),
    [
        (nn.LayerNorm(4), False, r"normalized_shape \(4,\) on an image \(channels-first\)"),
        (nn.LayerNorm((6, 4, 4)), True, r"on an image \(channels-last\)"),
        (nn.GroupNorm(2, 6), False, r"GroupNorm\(2, 6\).*At graph node 'norm'"),
        (nn.LayerNorm((5, 4, 4)), False, "normalisation of 5 channels after 6"),
    ],
)
def test_image_layernorm_refusals_name_the_node(norm, permute, text):
    from dltheory import spec_from_module

    with pytest.raises(ValueError, match=text):
        spec_from_module(_conv_net(norm, permute))


def test_channels_last_conv_and_output_are_refused():
    from dltheory import spec_from_module

    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.conv2 = nn.Conv2d(2, 4, 3), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.conv2(self.conv(x).permute(0, 2, 3, 1))

    with pytest.raises(ValueError, match=r"channels-first images.*At graph node 'conv2'"):
        spec_from_module(Bad())

    class Transpose(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3)

        def forward(self, x):
            return self.conv(x).permute(0, 3, 2, 1)

    with pytest.raises(ValueError, match=r"permutations of images to channels-last and back"):
        spec_from_module(Transpose())
