import math

import pytest

from dltheory.implicit_bias import (
    challenge_walk,
    lattice_slow_mass,
    valley_drift_prediction,
    valley_sgd,
    walk_density,
)


def test_valley_sgd_drifts_toward_lower_curvature_at_the_predicted_speed():
    run = valley_sgd(2.0, 0.1, 150, chains=400, seed=1)
    predicted = valley_drift_prediction(2.0, 0.1, 150) - 2.0
    assert float(run.curvature_change.mean) < -5 * float(run.curvature_change.stderr)
    assert run.displacement.agrees(predicted, 5.0, rtol=0.03)


def test_no_noise_no_drift():
    # noise -> 0: the drift speed vanishes like sigma^2
    assert abs(valley_drift_prediction(2.0, 0.1, 100, noise=1e-4) - 2.0) < 1e-6


def test_walk_mass_matches_the_lattice_law_not_the_notes():
    run = challenge_walk(20, 1700, walkers=4000, seed=0)
    assert run.slow_mass.agrees(lattice_slow_mass(20), 5.0)
    notes = math.sqrt(2) / (math.sqrt(2) + 1)
    assert abs(float(run.slow_mass.zscore(notes))) > 10
    assert abs(lattice_slow_mass(800) - 0.8) < 1e-3
    total = sum(float(walk_density(t)) for t in (1.0, 4.0)) * math.pi
    assert abs(total - 1.0) < 1e-12


def test_walk_and_valley_validation():
    with pytest.raises(ValueError, match="eta must be < 2 / h"):
        valley_sgd(4.0, 0.5, 10)
    with pytest.raises(ValueError, match="m must be an integer >= 2"):
        challenge_walk(1)


def test_valley_divergence_is_reported():
    # eta h(x0) = 1.8 < 2, but the noise carries chains to eta h(x) > 2
    with pytest.raises(ValueError, match="eta must be small enough that every chain stays"):
        valley_sgd(2.0, 0.36, 500)
    with pytest.raises(ValueError, match="n_log must be an integer >= 1"):
        valley_sgd(2.0, 0.1, 10, n_log=0)


def test_short_walk_warns():
    with pytest.warns(RuntimeWarning, match="fewer than 20 relaxation times"):
        challenge_walk(20, 100, walkers=10)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [0.5, float("-inf")]])
def test_walk_density_refuses_angles_that_are_not_finite(bad):
    # nan mod 2 pi is nan, and nan < pi is False: the old density silently said 1 / (5 pi).
    with pytest.raises(ValueError, match=r"^theta must be finite \(no NaN or inf\)"):
        walk_density(bad)
