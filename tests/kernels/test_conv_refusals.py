"""Conv kernels refuse, in one line, what they cannot compute; and plan their layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dltheory import Dense, Nonlinearity, Serial, spec_from_module
from dltheory.kernels.conv import plan_layout
from dltheory.spec import AvgPool, Conv, Flatten, GlobalAvgPool

GAP_NET = Serial(Conv(4, 3), Nonlinearity("relu"), GlobalAvgPool(), Dense(width=1))


@pytest.mark.parametrize("layer", [nn.MaxPool2d(2), nn.BatchNorm2d(8), nn.Softmax(dim=1)])
def test_layers_without_closed_form_are_refused_naming_them(layer):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), layer, nn.Flatten(), nn.Linear(8, 1))
    name = type(layer).__name__
    with pytest.raises(ValueError) as info:
        spec_from_module(model)
    text = str(info.value)
    assert text.startswith(
        f"model must be made of layers with a closed-form infinite-width kernel. Got '{name}'. "
        f"At graph node '_1' (module '1': {name}). "
    )
    assert text.endswith(
        f"{name} has none; estimate its NNGP / NTK by Monte Carlo over finite "
        "networks (outputs of torch models over seeds, dltheory.empirical_ntk)."
    )
    assert "\n" not in text


@pytest.mark.parametrize("backend", ["fused", "torch"])
def test_memory_budget_refused_with_the_estimate(backend):
    with pytest.raises(ValueError) as info:
        GAP_NET.kernel(torch.ones(2, 1, 8, 8), memory_budget=1000, backend=backend)
    text = str(info.value)
    assert text.startswith("memory_budget must be at least ")
    assert text.split("at least ")[1].split(" bytes")[0].replace(",", "").isdigit()
    assert "Got 1000." in text


def test_wrong_input_rank_is_refused():
    with pytest.raises(ValueError) as info:
        GAP_NET.kernel(torch.ones(2, 1, 8))
    assert str(info.value).startswith(
        "x1 must be inputs with 2 spatial axes for Conv 2-D (shape (N, C, H, W)). "
        "Got 'a representation with spatial shape (8,)'."
    )
    with pytest.raises(ValueError) as info:
        GAP_NET.kernel(torch.ones(2, 1, 8, 8, 8))
    assert str(info.value).startswith(
        "x1 must be a 2-D (N, features), 3-D (N, C, L) or 4-D (N, C, H, W) array."
    )


def test_channels_that_do_not_match_the_first_conv_are_refused():
    spec = spec_from_module(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 1)))
    with pytest.raises(ValueError) as info:
        spec.kernel(torch.ones(2, 1, 3, 3))
    assert str(info.value) == (
        "x1 must be inputs with 3 channels (the first layer's input channels). "
        "Got '1 channels (shape (2, 1, 3, 3))'."
    )


def test_dense_on_images_is_refused():
    spec = Serial(Conv(4, 3), Nonlinearity("relu"), Dense(width=1))
    with pytest.raises(ValueError) as info:
        spec.kernel(torch.ones(2, 1, 4, 4))
    assert "Put Flatten or GlobalAvgPool before the Dense layer" in str(info.value)


def test_flattened_rows_need_a_matching_input_shape():
    spec = Serial(*GAP_NET.layers, input_shape=(1, 4, 4))
    k = spec.kernel(torch.ones(2, 16))
    assert k.nngp.shape == (2, 2)
    with pytest.raises(ValueError) as info:
        spec.kernel(torch.ones(2, 15))
    assert str(info.value).startswith(
        "x1 must be rows of 16 features (flattened images of input_shape (1, 4, 4))."
    )


def test_layout_plan_keeps_pixel_pairs_only_up_to_the_last_pooling():
    layers = (
        Conv(4, 3),
        Nonlinearity("relu"),
        AvgPool(2),
        Conv(4, 3),
        Nonlinearity("relu"),
        Flatten(),
        Dense(width=1),
    )
    plan = plan_layout(layers, (8, 8))
    assert plan.full_input == (True, True, True, False, False, False, False)
    assert plan.pixels[3] == (4, 4)
    assert plan.entries == 64 * 64
    flat = plan_layout((Conv(4, 3), Nonlinearity("relu"), Flatten(), Dense()), (8, 8))
    assert flat.full_input == (False, False, False, False) and flat.entries == 64
