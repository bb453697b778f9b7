import pytest
import torch


@pytest.fixture
def data():
    """P = 3 generic points in n_0 = 5 dimensions, targets of size ~1."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, generator=g, dtype=torch.float64)
    return x, torch.randn(3, generator=g, dtype=torch.float64)
