"""The linear-region reproductions run in quick mode and pass."""

from __future__ import annotations

import pytest

from dltheory.report.experiments import regions
from dltheory.report.figures import PNG_SIGNATURE
from dltheory.report.registry import REGISTRY

from .conftest import reader_problems


@pytest.mark.parametrize("name", ["region_density", "sawtooth_pieces", "region_map_2d"])
def test_quick_reproduction_passes(name):
    assert REGISTRY[name].topic == "linear regions"
    outcome = REGISTRY[name].run(quick=True, seed=0)
    assert reader_problems(name, outcome) == []
    assert outcome.verdict, outcome.summary
    assert outcome.figure.startswith(PNG_SIGNATURE)


def test_grid_patterns_of_a_sawtooth_free_net():
    import torch
    from torch import nn

    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU()).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
    patterns = regions.grid_patterns(net, 4, -1.0, 1.0)
    assert patterns.shape == (16, 2) and len(torch.unique(patterns, dim=0)) == 4
