"""Dynamics tests train many small networks: one torch thread is much faster for them
on a shared 2-core machine (thread hand-offs dominate tiny matmuls under load)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
