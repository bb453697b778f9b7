"""Shared fixtures of the report tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def quick_outcome(request):
    """Runs each reproduction of the test module's ``_RUNS`` (quick mode) at most once."""
    runs = request.module._RUNS
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = runs[name](quick=True, seed=0)
        return cache[name]

    return get
