"""dltheory.stats: the home of Estimate, re-exported where it was."""

from __future__ import annotations

import math

import pytest
import torch

import dltheory
import dltheory.finite
import dltheory.finite.estimate
from dltheory.stats import Estimate


def test_estimate_is_one_class_everywhere():
    assert dltheory.Estimate is Estimate
    assert dltheory.finite.Estimate is Estimate
    assert dltheory.finite.estimate.Estimate is Estimate


def test_from_samples_is_the_mean_and_the_unbiased_standard_error():
    e = Estimate.from_samples(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    # var = ((1.5^2 + 0.5^2) * 2) / 3 = 5/3, stderr = sqrt(5/3 / 4)
    assert float(e.mean) == 2.5 and float(e.stderr) == pytest.approx(math.sqrt(5 / 12))
    assert e.agrees(2.5 + 4.9 * math.sqrt(5 / 12)) and not e.agrees(2.5 + 5.1 * math.sqrt(5 / 12))
    with pytest.raises(ValueError, match=r"^samples must be at least 2 samples along dim"):
        Estimate.from_samples(torch.ones(1))
