"""Telgarsky's sawtooth: exactly 2^L pieces on [0, 1] for L up to 20."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dltheory.regions import count_pieces_1d, sawtooth, sawtooth_reference


def test_two_to_the_l_pieces_up_to_20():
    for L in range(1, 21):
        pieces = count_pieces_1d(sawtooth(L), 0.0, 1.0)
        assert pieces.n_pieces == pieces.n_linear_pieces == 2**L, L
    # L = 20 is the last one above: 2^20 ~ 1e6 pieces, breakpoints exactly k / 2^20
    expected = torch.arange(1, 2**20, dtype=torch.float64) / 2**20
    assert torch.equal(pieces.breakpoints, expected)
    slopes = pieces.slopes[:, 0]
    assert bool((slopes.abs() == 2.0**20).all()) and bool((slopes[1:] * slopes[:-1] < 0).all())


def test_architecture_and_values_match_the_tent_map():
    L = 5
    model = sawtooth(L)
    linear = [m for m in model if isinstance(m, nn.Linear)]
    assert len(linear) == 2 * L  # 2L layers
    assert sum(m.out_features for m in linear) == 3 * L  # 3L ReLU neurons
    x = torch.rand(1000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(model(x).detach()[:, 0], sawtooth_reference(L, x[:, 0]))


def test_errors():
    with pytest.raises(ValueError, match=r"^L must be an integer >= 1\. Got 0\."):
        sawtooth(0)
    with pytest.raises(ValueError, match=r"^L must be an integer <= 52\. Got 53\. Pieces"):
        sawtooth(53)
    with pytest.raises(TypeError, match=r"^L must be an integer\. Got 2\.0\."):
        sawtooth(2.0)


def test_reference_validates_x():
    assert sawtooth_reference(2, [0.125, 0.25]).tolist() == [0.5, 1.0]  # lists are converted
    with pytest.raises(TypeError, match=r"^x must be a torch\.Tensor or NumPy array"):
        sawtooth_reference(2, "0.5")
    with pytest.raises(ValueError, match=r"^x must be finite"):
        sawtooth_reference(2, torch.tensor([float("nan")]))
