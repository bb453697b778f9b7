"""Exact 2-D regions against brute-force pattern enumeration on a fine grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dltheory.regions import plot_regions_2d, regions_2d


def _net(widths, n_in, seed):
    torch.manual_seed(seed)
    layers, fan_in = [], n_in
    for w in widths:
        layers += [nn.Linear(fan_in, w), nn.ReLU()]
        fan_in = w
    model = nn.Sequential(*layers, nn.Linear(fan_in, 1)).double()
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, (2 / m.in_features) ** 0.5)
                m.bias.normal_(0, 0.5)
    return model


def _grid(model, result, n):
    (s0, s1), (t0, t1) = result.box
    st = torch.cartesian_prod(
        torch.linspace(s0, s1, n, dtype=torch.float64),
        torch.linspace(t0, t1, n, dtype=torch.float64),
    )
    h, blocks = result.to_input(st), []
    for m in model:
        if isinstance(m, nn.ReLU):
            blocks.append(h > 0)
        h = m(h)
    return st, torch.cat(blocks, 1)


def _inside(poly, pts, tol=1e-9):
    edges = np.roll(poly, -1, axis=0) - poly
    rel = pts[:, None, :] - poly[None]
    cross = edges[None, :, 0] * rel[..., 1] - edges[None, :, 1] * rel[..., 0]
    return (cross >= -tol).all(1)


@pytest.mark.parametrize(("widths", "n_in", "seed"), [((5,), 2, 0), ((4, 4), 2, 1), ((5, 4), 3, 2)])
def test_regions_equal_grid_enumeration(widths, n_in, seed):
    model = _net(widths, n_in, seed)
    g = torch.Generator().manual_seed(seed)
    origin, u, v = (torch.randn(n_in, generator=g, dtype=torch.float64) for _ in range(3))
    result = regions_2d(model, origin, u, v, ((-1.5, 1.5), (-1.0, 2.0)))
    areas = result.areas
    np.testing.assert_allclose(areas.sum(), 9.0, rtol=1e-12)
    assert (areas > 0).all()
    exact = [tuple(p) for p in result.patterns.int().tolist()]
    assert len(set(exact)) == result.n_regions  # one region per pattern
    st, grid = _grid(model, result, 400)
    key = torch.rand(grid.shape[1], generator=g, dtype=torch.float64)
    exact_keys, grid_keys = result.patterns.double() @ key, grid.double() @ key
    order = torch.argsort(exact_keys)
    pos = torch.searchsorted(exact_keys[order], grid_keys).clamp(max=result.n_regions - 1)
    owner = order[pos]
    assert torch.equal(result.patterns[owner], grid)  # grid patterns are exact patterns
    cell = (3.0 / 399) ** 2
    missed = sorted(set(range(result.n_regions)) - set(owner.tolist()))
    assert all(areas[k] < 4 * cell for k in missed)
    # every grid point lies in the polygon of its own pattern
    pts = st.numpy()
    for k in range(result.n_regions):
        assert _inside(result.polygons[k], pts[(owner == k).numpy()], tol=1e-7).all()


def test_the_seen_regions_match_exactly_for_a_coarse_arrangement():
    model = _net((4, 3), 2, 1)
    result = regions_2d(model, [0, 0], [1, 0], [0, 1], (-2.0, 2.0))
    _, grid = _grid(model, result, 500)
    assert result.areas.min() > 20 * (4 / 499) ** 2
    assert len(torch.unique(grid, dim=0)) == result.n_regions


def test_slopes_are_the_output_gradient_in_each_region():
    model = _net((6, 6), 2, 3)
    result = regions_2d(model, [0.1, 0.2], [1, 0.5], [-0.3, 1], (-1.0, 1.0))
    for k in range(0, result.n_regions, 5):
        centre = torch.tensor(result.polygons[k].mean(0), requires_grad=True)
        out = model(result.to_input(centre)[None])[0, 0]
        (grad,) = torch.autograd.grad(out, centre)
        torch.testing.assert_close(result.slopes[k, 0], grad)


def test_plot_draws_one_polygon_per_region():
    model = _net((4,), 2, 0)
    result = regions_2d(model, [0, 0], [1, 0], [0, 1], (-1, 1))
    ax = plot_regions_2d(result)
    assert len(ax.collections[0].get_paths()) == result.n_regions


def test_error_messages():
    model = _net((3,), 2, 0)
    o, u, v = [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]
    with pytest.raises(ValueError, match=r"^bounds must be lo < hi in both coordinates"):
        regions_2d(model, o, u, v, (1.0, -1.0))
    with pytest.raises(ValueError, match=r"^bounds must be finite \(lo, hi\)"):
        regions_2d(model, o, u, v, (0.0, 1.0, 2.0))
    with pytest.raises(ValueError, match=r"^v must be linearly independent of u"):
        regions_2d(model, o, u, [2.0, 0.0], (-1, 1))
    with pytest.raises(ValueError, match=r"^u must be a vector of the origin's dimension 2"):
        regions_2d(model, o, [1.0, 0.0, 0.0], v, (-1, 1))
    with pytest.raises(
        ValueError, match=r"^origin must be a point of the model's input dimension 2"
    ):
        regions_2d(model, [0.0], [1.0], [2.0], (-1, 1))
    with pytest.raises(TypeError, match=r"^result must be a Regions2D"):
        plot_regions_2d("regions")


def _axes_net():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU()).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
    return net


def test_tolerance_is_relative_to_the_box():
    # two ReLUs on the axes give the 4 quadrants at any scale of the box
    for half in (1e-10, 1.0, 1e10):
        r = regions_2d(_axes_net(), [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-half, half))
        assert r.n_regions == 4
        np.testing.assert_allclose(sorted(r.areas), [half**2] * 4, rtol=1e-12)


def test_thin_slabs_are_kept_and_areas_sum_to_the_box():
    slab = nn.Sequential(nn.Linear(2, 2), nn.ReLU()).double()
    with torch.no_grad():
        slab[0].weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        slab[0].bias.copy_(torch.tensor([1.5e-9, -1.5e-9]))  # lines s = -+1.5e-9
    r = regions_2d(slab, [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-1.0, 1.0))
    assert r.n_regions == 3
    np.testing.assert_allclose(r.areas.sum(), 4.0, rtol=1e-12)
    np.testing.assert_allclose(min(r.areas), 3e-9 * 2.0, rtol=1e-6)


def test_argument_validation_of_slices_and_plots():
    model = _net((3,), 2, 0)
    o, u, v = [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]
    with pytest.raises(ValueError, match=r"^u must be nonzero"):
        regions_2d(model, o, [0.0, 0.0], v, (-1, 1))
    with pytest.raises(ValueError, match=r"^v must be nonzero"):
        regions_2d(model, o, u, [0.0, 0.0], (-1, 1))
    with pytest.raises(ValueError, match=r"^tol must be <= 0\.001"):
        regions_2d(model, o, u, v, (-1, 1), tol=0.01)
    result = regions_2d(model, o, u, v, (-1, 1))
    torch.testing.assert_close(
        result.to_input([[0.5, -0.25]]), torch.tensor([[0.5, -0.25]], dtype=torch.float64)
    )
    with pytest.raises(ValueError, match=r"^st must be an array of \(s, t\) pairs"):
        result.to_input([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"^st must be a torch\.Tensor or NumPy array"):
        result.to_input("st")
    with pytest.raises(TypeError, match=r"^seed must be an integer"):
        plot_regions_2d(result, seed=0.5)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0"):
        plot_regions_2d(result, seed=-1)
    with pytest.raises(TypeError, match=r"^ax must be a matplotlib Axes or None"):
        plot_regions_2d(result, ax="axes")
