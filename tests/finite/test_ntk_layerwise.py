"""The layerwise structured NTK path (Linear / Conv1d / Conv2d / normalisation affines in
any per-example model) against the dense float64 autograd reference of test_ntk_zoo."""

from __future__ import annotations

import pytest
import torch
from tests.finite.test_ntk_zoo import _close, reference_ntk
from torch import nn

from dltheory import empirical_ntk
from dltheory.finite.functional_model import FunctionalModel
from dltheory.finite.model_function import ModelState
from dltheory.finite.ntk_layerwise import _mode, layerwise_plan


def _check_all_outputs(net, x1, x2, dtype, method="structured"):
    want = reference_ntk(net, x1, x1)
    _close(empirical_ntk(net, x1, output="full", method=method), want, dtype)
    _close(empirical_ntk(net, x1, method=method), want.diagonal(dim1=2, dim2=3).mean(-1), dtype)
    cross = reference_ntk(net, x2, x1)
    _close(empirical_ntk(net, x2, x1, output="full", method=method), cross, dtype)
    _close(
        empirical_ntk(net, x2, x1, method=method), cross.diagonal(dim1=2, dim2=3).mean(-1), dtype
    )


def test_structured_on_the_zoo_or_refused_for_batch_statistics(zoo):
    x1, x2 = zoo.x(4, seed=1), zoo.x(3, seed=2)
    if zoo.random or zoo.batched:  # Dropout refused; train-mode BatchNorm couples samples
        with pytest.raises(ValueError, match=r"(model|method) must be"):
            empirical_ntk(zoo.model, x1, method="structured")
        return
    before = ModelState.of(zoo.model)
    _check_all_outputs(zoo.model, x1, x2, zoo.dtype)
    assert before.changes(zoo.model) == []


class _Convs(nn.Sequential):
    """Conv2d with stride / padding / dilation / no bias, Conv1d, BatchNorm1d, LayerNorm."""

    def __init__(self):
        super().__init__(
            nn.Conv2d(2, 5, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
            nn.GroupNorm(1, 5),
            nn.Tanh(),
            nn.Conv2d(5, 3, 2, stride=2, bias=False),
            nn.Flatten(2),  # (N, 3, L)
            nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2),
            nn.BatchNorm1d(4),
            nn.SiLU(),
            nn.Flatten(),
            nn.LayerNorm(12),
            nn.Linear(12, 3),
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conv_strides_padding_dilation_and_norm_affines(dtype):
    torch.manual_seed(0)
    net = _Convs().to(dtype).eval()
    with torch.no_grad():
        net[6].running_mean.uniform_(-0.3, 0.3)
        net[6].running_var.uniform_(0.5, 2.0)
    net[3].weight.data.mul_(2.0)
    g = torch.Generator().manual_seed(1)
    x1, x2 = (torch.randn(n, 2, 8, 7, generator=g, dtype=torch.float64) for n in (4, 3))
    fm = FunctionalModel(net)
    plan = layerwise_plan(fm, x1.to(dtype))
    assert plan is not None and plan.rest == [] and len(plan.layers) == 7
    _check_all_outputs(net, x1, x2, dtype)
    _check_all_outputs(net, x1, x2, dtype, method="auto")


def test_gram_and_gradient_modes_agree_with_the_reference():
    # a conv with 2 x 2 output pixels and wide channels takes the pixel-pair Gram,
    # the first conv (36 pixels, narrow) the per-example gradients
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(64, 2),
    ).double()
    x = torch.randn(5, 1, 6, 6, dtype=torch.float64)
    plan = layerwise_plan(FunctionalModel(net), x)
    modes = [_mode(c, 5, 5, 2, "full", 8, 2**30) for c in plan.layers]
    assert modes == ["grad", "gram", "gram"]
    _check_all_outputs(net, x, x[:3] + 0.5, torch.float64)


class _ReadsWeight(nn.Module):
    """A Linear called once whose weight is also read directly (a tied readout), and
    a conv called twice: both must leave the layerwise set and still be counted."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.lin = nn.Linear(16, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        h = torch.tanh(self.conv(torch.tanh(self.conv(x)))).flatten(1)
        z = torch.tanh(self.lin(h))
        return self.head(z) + (z @ self.lin.weight)[:, :2]


def test_weights_used_outside_their_layer_are_detected():
    torch.manual_seed(2)
    net = _ReadsWeight().double()
    x = torch.randn(4, 1, 4, 4, dtype=torch.float64)
    plan = layerwise_plan(FunctionalModel(net), x)
    assert [c.module for c in plan.layers] == [net.head]
    assert plan.rest == ["conv.weight", "conv.bias", "lin.weight", "lin.bias"]
    _check_all_outputs(net, x, x[:2] * 2, torch.float64)
