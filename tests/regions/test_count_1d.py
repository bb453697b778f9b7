"""Exact 1-D counting against fine-grid enumeration, closed forms and the notes' n_1 + 1 bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dltheory import MLP
from dltheory.regions import count_pieces_1d, one_layer_1d_bound


def _net(widths, n_in, seed, slope=0.0, bias_std=0.5):
    g = torch.Generator().manual_seed(seed)
    layers, fan_in = [], n_in
    for w in widths:
        lin = nn.Linear(fan_in, w, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(w, fan_in, generator=g, dtype=torch.float64))
            lin.weight.mul_((2.0 / fan_in) ** 0.5)
            lin.bias.copy_(bias_std * torch.randn(w, generator=g, dtype=torch.float64))
        layers += [lin, nn.LeakyReLU(slope) if slope else nn.ReLU()]
        fan_in = w
    return nn.Sequential(*layers, nn.Linear(fan_in, 1, dtype=torch.float64))


def _grid_patterns(model, a, b, n):
    t = torch.linspace(0, 1, n, dtype=torch.float64)
    h = a + t[:, None] * (b - a)
    blocks = []
    for m in model:
        if isinstance(m, nn.Linear):
            h = m(h)
        else:
            blocks.append(h > 0)
            h = m(h)
    return t, torch.cat(blocks, 1)


@pytest.mark.parametrize(
    ("widths", "n_in", "seed", "slope"),
    [((4,), 1, 0, 0.0), ((5, 5), 2, 1, 0.0), ((4, 4, 4), 3, 2, 0.0), ((6, 3), 2, 3, 0.1)],
)
def test_count_equals_distinct_patterns_on_a_fine_grid(widths, n_in, seed, slope):
    model = _net(widths, n_in, seed, slope)
    g = torch.Generator().manual_seed(100 + seed)
    a, b = (torch.randn(n_in, generator=g, dtype=torch.float64) * 2 for _ in range(2))
    pieces = count_pieces_1d(model, a, b)
    ends = pieces.endpoints
    assert float(torch.diff(ends).min()) > 1e-4  # the grid below resolves every piece
    t, grid = _grid_patterns(model, a, b, 200_001)
    runs = 1 + int((grid[1:] != grid[:-1]).any(1).sum())
    assert pieces.n_pieces == runs == len(torch.unique(grid, dim=0))
    # each piece's pattern is the grid's pattern inside it
    index = torch.searchsorted(ends, t, right=True).clamp(1, pieces.n_pieces) - 1
    assert torch.equal(pieces.patterns[index], grid)
    assert pieces.n_linear_pieces <= pieces.n_pieces
    packed = np.unpackbits(pieces.packed_patterns(), axis=1)[:, : grid.shape[1]]
    assert np.array_equal(packed.astype(bool), pieces.patterns.numpy())


def test_one_layer_breakpoints_are_the_kinks_and_the_notes_bound_holds():
    g = torch.Generator().manual_seed(5)
    w = torch.randn(9, 1, generator=g, dtype=torch.float64)
    bias = torch.randn(9, generator=g, dtype=torch.float64)
    model = nn.Sequential(nn.Linear(1, 9), nn.ReLU(), nn.Linear(9, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(w)
        model[0].bias.copy_(bias)
    kinks = torch.sort(-bias / w[:, 0]).values  # xi_j = -b_j / W_j (notes, Example 1)
    a, b = float(kinks[0]) - 1.0, float(kinks[-1]) + 1.0
    pieces = count_pieces_1d(model, a, b)
    torch.testing.assert_close(pieces.points[:, 0], kinks)
    assert pieces.n_pieces == pieces.n_linear_pieces == one_layer_1d_bound(9)
    for seed in range(20):  # random segments: never more than n_1 + 1
        m = _net((7,), 1, seed)
        assert count_pieces_1d(m, -3.0, 3.0).n_pieces <= one_layer_1d_bound(7)


def test_linear_pieces_merge_neighbours_with_equal_slopes():
    # the second hidden neuron never reaches the output: its kink is a pattern change only
    model = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0], [1.0]]))
        model[0].bias.copy_(torch.tensor([0.0, -0.5]))
        model[2].weight.copy_(torch.tensor([[1.0, 0.0]]))
    pieces = count_pieces_1d(model, -1.0, 1.0)
    assert (pieces.n_pieces, pieces.n_linear_pieces) == (3, 2)
    assert pieces.linear_breakpoints.tolist() == [0.5]


def test_adjacent_patterns_differ_and_finite_modules_count():
    model = MLP(3, "relu", c_w=2.0, c_b=0.1).sample(32, in_dim=4, seed=0, dtype=torch.float64)
    pieces = count_pieces_1d(model, -torch.ones(4), torch.ones(4))
    patterns = pieces.patterns
    assert pieces.n_pieces > 20
    assert bool((patterns[1:] != patterns[:-1]).any(1).all())
    assert patterns.shape == (pieces.n_pieces, 96) and pieces.widths == (32, 32, 32)


def test_error_messages():
    model = _net((3,), 2, 0)
    with pytest.raises(ValueError, match=r"^b must be different from a \(a segment"):
        count_pieces_1d(model, [1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^b must be a point of the same dimension as a \(2\)"):
        count_pieces_1d(model, [1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"^a must be a point of the model's input dimension 2"):
        count_pieces_1d(model, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^a must be a point: a number or a 1-D array"):
        count_pieces_1d(model, [[0.0, 1.0]], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"^b must be finite \(no NaN or inf\)"):
        count_pieces_1d(model, [0.0, 1.0], [float("nan"), 1.0])
    with pytest.raises(ValueError, match=r"^tol must be > 0\. Got 0\.0\."):
        count_pieces_1d(model, [0.0, 1.0], [1.0, 1.0], tol=0.0)


def test_tol_must_be_a_small_rounding_tolerance():
    model = _net((3,), 2, 0)
    for tol in (1e-2, 0.5, 1.0):  # 0.5 would drop every breakpoint, 1.0 leave 0 pieces
        with pytest.raises(ValueError, match=r"^tol must be <= 0\.001 \(a relative rounding"):
            count_pieces_1d(model, [0.0, 1.0], [1.0, 1.0], tol=tol)
    assert count_pieces_1d(model, [0.0, 1.0], [1.0, 1.0], tol=1e-3).n_pieces >= 1


def test_patterns_of_a_model_without_activations_are_empty_columns():
    pieces = count_pieces_1d(nn.Linear(2, 1), [0.0, 0.0], [1.0, 1.0])
    assert pieces.n_pieces == 1
    assert pieces.patterns.shape == (1, 0) and pieces.patterns.dtype == torch.bool
    packed = pieces.packed_patterns()
    assert packed.shape == (1, 0) and packed.dtype == np.uint8
