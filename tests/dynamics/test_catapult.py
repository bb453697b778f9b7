"""The uv-model recursion against full GD on (u, v), thresholds, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dltheory.dynamics import (
    catapult_divergence_threshold,
    catapult_phase_diagram,
    catapult_recursion,
)


def _uv_gd(u, v, eta, x, y, steps):
    """Independent reference: plain GD on loss (v.u x/sqrt(m) - y)^2 / 2 over (u, v)."""
    m = u.size
    fs, lams, scales = [], [], []
    for _ in range(steps + 1):
        f = x * (v @ u) / math.sqrt(m)
        fs.append(f)
        lams.append((u @ u + v @ v) * x * x / m)
        # the size of the terms summed in v.u: rounding of f is relative to this
        scales.append(abs(x) * math.sqrt((u @ u) * (v @ v) / m))
        r = f - y
        u, v = u - eta * r * v * x / math.sqrt(m), v - eta * r * u * x / math.sqrt(m)
    return np.array(fs), np.array(lams), np.array(scales)


@pytest.mark.parametrize("y", [0.0, 1.0])
@pytest.mark.parametrize("k", [0.5, 1.9, 2.1, 3.0, 3.9, 4.1])
def test_recursion_equals_full_gd(k, y):
    rng = np.random.default_rng(np.random.SeedSequence(11))
    m, x = 64, 0.8
    u, v = rng.standard_normal(m), rng.standard_normal(m)
    f0 = x * (v @ u) / math.sqrt(m)
    lam0 = (u @ u + v @ v) * x * x / m
    eta = k / lam0
    run = catapult_recursion(f0, lam0, eta, m, x=x, y=y, steps=300)
    T = run.f.size - 1
    f_gd, lam_gd, scale = _uv_gd(u, v, eta, x, y, T)
    # Both sides round at ~1e-16 per operation; 1e-12 leaves room for a few hundred
    # steps of accumulation. f is compared relative to the scale of the terms of v.u
    # (f itself can be tiny after convergence to y = 0, where v.u cancels).
    assert np.all(np.abs(run.f - f_gd) <= 1e-12 * np.maximum(scale, np.abs(f_gd)))
    assert np.all(np.abs(run.lam - lam_gd) <= 1e-12 * lam_gd)
    if k < 2:
        assert run.phase == "lazy" and run.outcome == "converged"
    elif k < 4 and y == 0:
        assert run.phase == "catapult" and run.outcome == "converged"
        assert run.eta * run.final_lambda < 2  # the NTK fell below 2/eta
    elif y == 0:
        assert run.outcome == "diverged" and run.phase == "divergent"
        assert run.divergence_step == T + 1


def test_threshold_y0_is_four_over_lambda0():
    for f0, lam0, m in [(0.3, 2.0, 100), (-1.2, 1.5, 10), (2.0, 3.0, 1000)]:
        eta_star = catapult_divergence_threshold(f0, lam0, m, rtol=1e-11)
        # bisection stops at relative bracket width 1e-11 < 1e-8
        assert abs(eta_star * lam0 - 4.0) <= 1e-8 * 4.0


def test_threshold_y1_tends_to_four_only_at_large_width():
    # y != 0: below 4/lambda_0 at small width, approaching it as m grows
    small = catapult_divergence_threshold(0.0, 2.0, 4, y=1.0, rtol=1e-6) * 2.0
    large = catapult_divergence_threshold(0.0, 2.0, 10**6, y=1.0, rtol=1e-6) * 2.0
    assert abs(small - 4.0) > 1e-3
    assert abs(large - 4.0) < abs(small - 4.0)


def test_catapult_lowers_lambda_and_spikes_loss():
    m = 10**4
    run = catapult_recursion(0.5, 2.0, 3.0 / 2.0, m, steps=2000)
    # during the catapult the loss reaches O(m) (|f| ~ sqrt(m)), lambda ends below 2/eta
    assert run.loss.max() > 1e-2 * m
    assert run.final_lambda < 2 / run.eta < run.lam[0]
    lazy = catapult_recursion(0.5, 2.0, 0.5, m, steps=2000)
    # lazy: lambda moves by O(f0^2 / m) only
    assert abs(lazy.final_lambda - 2.0) < 10 * 0.25 / m
    assert lazy.spike == 1.0


def test_phase_diagram_thresholds():
    grid = np.linspace(0.5, 6.0, 56)  # step 0.1: 2.0 and 4.0 on the grid
    d = catapult_phase_diagram(0.5, 2.0, 1000, eta_lambda0=grid)
    assert d.lower_threshold == pytest.approx(2.1)
    # at eta lambda_0 = 4 exactly (4.0 / 2.0 is exact in binary) lambda never moves and
    # f stays on a bounded chaotic orbit: the first divergent grid point is 4.1
    assert d.upper_threshold == pytest.approx(4.1)
    assert d.outcome[35] == "not_converged" and grid[35] == 4.0
    conv = np.array([o == "converged" for o in d.outcome])
    assert np.all(d.final_eta_lambda[conv] < 2)
    assert np.all(np.isinf(d.max_loss[grid >= 4.05]))


@pytest.mark.parametrize(
    ("kwargs", "exc", "text"),
    [
        ({"eta": 0.0}, ValueError, "eta must be > 0. Got 0.0."),
        ({"eta": -1.0}, ValueError, "eta must be > 0. Got -1.0."),
        ({"m": 0}, ValueError, "m must be an integer >= 1. Got 0."),
        ({"f0": math.nan}, ValueError, "f0 must be finite. Got nan."),
        ({"lam0": math.inf}, ValueError, "lam0 must be finite. Got inf."),
        ({"lam0": 0.0}, ValueError, "lam0 must be > 0. Got 0.0."),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1. Got 0."),
        ({"x": 0.0}, ValueError, "x must be non-zero. Got 0.0."),
        ({"f0": 100.0}, ValueError, "f0 must be at most lam0 sqrt(m) / (2|x|)"),
        ({"m": 2.5}, TypeError, "m must be an integer. Got 2.5."),
    ],
)
def test_errors(kwargs, exc, text):
    args = {"f0": 0.5, "lam0": 2.0, "eta": 1.0, "m": 100} | kwargs
    with pytest.raises(exc) as info:
        catapult_recursion(**args)
    assert str(info.value).startswith(text)


def test_phase_diagram_grid_error():
    with pytest.raises(ValueError, match="eta_lambda0 must be a 1-D array of values > 0"):
        catapult_phase_diagram(0.5, 2.0, 10, eta_lambda0=np.array([1.0, -1.0]))
