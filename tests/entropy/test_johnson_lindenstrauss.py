"""JL: both dimensions (distances, squared), the exact union bound, measured distortion."""

import math

import numpy as np
import pytest
import scipy.stats as st
import torch

from dltheory.entropy import jl_dimension, jl_distortion, jl_failure_bound, random_projection


def test_dimension_and_bound():
    assert jl_dimension(50, 0.5) == math.ceil(8 * math.log(50) / 0.25)
    for k, eps in [(10, 0.3), (50, 0.5), (1000, 0.2)]:
        m = jl_dimension(k, eps)
        # Gaussian concentration: failure <= k(k-1) exp(-m (eps - 1/(2m))^2 / 2) <= e^{1/2} / k^2
        assert jl_failure_bound(k, m, eps) <= k * (k - 1) * math.exp(-m * (eps - 0.5 / m) ** 2 / 2)
        assert jl_failure_bound(k, m, eps) <= math.exp(0.5) / k**2


def test_squared_distance_dimension_is_dasgupta_gupta():
    # Dasgupta & Gupta (2003), Theorem 2.1: m >= 4 ln k / (eps^2/2 - eps^3/3).
    for k, eps in [(10, 0.3), (100, 0.5), (1000, 0.1)]:
        m = jl_dimension(k, eps, preserve="squared_distances")
        assert m == math.ceil(4 * math.log(k) / (eps**2 / 2 - eps**3 / 3))
        # Their Lemma 2.2: each tail of chi2_m / m at b = 1 -+ eps is at most
        # exp(m/2 (1 - b + ln b)), and both are <= 1/k^2 at this m, so the union bound is
        # at most binom(k, 2) 2/k^2 = (k - 1)/k (success with probability >= 1/k).
        chernoff = sum(math.exp(m / 2 * (1 - b + math.log(b))) for b in (1 - eps, 1 + eps))
        assert chernoff <= 2 / k**2
        bound = jl_failure_bound(k, m, eps, preserve="squared_distances")
        assert bound <= math.comb(k, 2) * chernoff <= (k - 1) / k
    # 100 points, eps = 0.5: 4 ln 100 / (1/8 - 1/24) = 221.05 (and 8 ln 100 / 0.25 = 147.4)
    assert jl_dimension(100, 0.5, preserve="squared_distances") == 222
    assert jl_dimension(100, 0.5) == 148


@pytest.mark.parametrize(("preserve", "power"), [("distances", 2), ("squared_distances", 1)])
def test_per_pair_probability_matches_simulation(preserve, power):
    # One pair, m = 10, eps = 0.3: the chi-square formula vs 4000 projections (binomial SE).
    m, eps, runs = 10, 0.3, 4000
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([[0.0] * 20, [1.0] + [0.0] * 19], dtype=torch.float64)
    out = [
        jl_distortion(x, random_projection(x, m, generator=gen), preserve=preserve) > eps
        for _ in range(runs)
    ]
    p = jl_failure_bound(2, m, eps, preserve=preserve)  # one pair: the exact probability
    # independently: |A u|^2 / |u|^2 ~ chi2_m / m, outside [(1-eps)^power, (1+eps)^power]
    assert p == pytest.approx(
        st.chi2.cdf(m * (1 - eps) ** power, m) + st.chi2.sf(m * (1 + eps) ** power, m)
    )
    freq = float(np.mean(out))
    assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / runs)


def test_distortion_below_eps_with_the_stated_probability():
    k, d, eps, runs = 40, 300, 0.5, 60
    x = torch.randn(k, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    m = jl_dimension(k, eps)
    gen = torch.Generator().manual_seed(2)
    worst = [jl_distortion(x, random_projection(x, m, generator=gen)) for _ in range(runs)]
    failures = sum(w > eps for w in worst)
    bound = jl_failure_bound(k, m, eps)
    # Failures ~ Binomial(runs, p <= bound): more than its 0.999 quantile would refute the bound.
    assert failures <= st.binom.ppf(0.999, runs, bound)
    assert max(worst) < eps


def test_distortion_of_known_maps():
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    q, _ = torch.linalg.qr(
        torch.randn(4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    )
    assert jl_distortion(x, x @ q) < 1e-12  # rotations keep every distance
    assert jl_distortion(x, 3 * x) == pytest.approx(2.0)
    assert jl_distortion(x, 3 * x, preserve="squared_distances") == pytest.approx(8.0)


def test_errors():
    with pytest.raises(ValueError, match="eps must be in \\(0, 1\\)"):
        jl_dimension(10, 1.5)
    with pytest.raises(ValueError, match=r"eps must be large enough for a dimension below 2\^53"):
        jl_dimension(100, 1e-300)  # was a ZeroDivisionError (eps^2 underflows)
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\)\. Got 0\.0\."):
        jl_failure_bound(10, 5, 0.0)
    with pytest.raises(ValueError, match="preserve must be one of 'distances'"):
        jl_dimension(10, 0.5, preserve="squared")
    with pytest.raises(ValueError, match="n_points must be an integer >= 2"):
        jl_dimension(1, 0.5)
    with pytest.raises(ValueError, match="x must be of distinct rows"):
        jl_distortion(torch.ones(3, 2), torch.ones(3, 2))
    with pytest.raises(ValueError, match="projected must be 3 >= 2 points like x"):
        jl_distortion(torch.eye(3), torch.eye(2))
    with pytest.raises(ValueError, match="m must be an integer >= 1"):
        random_projection(torch.eye(3), 0)


def test_distortion_at_extreme_scales_and_projection_size():
    x = torch.eye(3, dtype=torch.float64)
    # a uniform scale c has distortion |c - 1| (distances) exactly, even near the float limit
    assert jl_distortion(x, 1e300 * x) == pytest.approx(1e300, rel=1e-15)
    assert jl_distortion(1e-300 * x, x) == pytest.approx(1e300, rel=1e-15)
    with pytest.raises(ValueError, match="projected must be at a scale whose distortion"):
        jl_distortion(x, 1e300 * x, preserve="squared_distances")
    with pytest.raises(ValueError, match="m must be small enough for the memory budget"):
        random_projection(x, 10**12)
