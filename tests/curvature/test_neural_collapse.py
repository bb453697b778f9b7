"""Neural-collapse metrics on constructed features with known values."""

from __future__ import annotations

import math

import pytest
import torch

from dltheory.curvature import neural_collapse


def _etf(C: int, d: int, seed: int = 0) -> torch.Tensor:
    """(C, d) centred simplex ETF, unit norms, rotated into R^d."""
    M = (torch.eye(C, dtype=torch.float64) - 1.0 / C) * math.sqrt(C / (C - 1))
    Q, _ = torch.linalg.qr(
        torch.randn(d, C, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    )
    return M @ Q.T


def test_exact_collapse_on_a_simplex_etf():
    C, d = 5, 8
    M = _etf(C, d)
    offset = torch.full((d,), 0.7, dtype=torch.float64)  # a global mean does not matter
    y = torch.arange(C).repeat(6)
    h = M[y] + offset
    W = 2.5 * M
    r = neural_collapse(h, y, W, -W @ offset)
    assert abs(r.nc1) < 1e-24  # Sigma_W = 0 exactly up to rounding of the means
    # cosines of a simplex ETF are exactly -1/(C-1): both angle metrics vanish
    for value in (
        r.equinorm_means,
        r.equiangular_means,
        r.max_angle_means,
        r.equinorm_classifier,
        r.equiangular_classifier,
        r.max_angle_classifier,
        r.self_duality,
    ):
        assert abs(value) < 1e-12
    assert r.ncc_mismatch == 0.0 and r.n_classes == C


def test_known_nc1_of_a_spread_etf():
    # Sigma_W = s^2 I_{C-1} on the ETF's span and ETF means of norm r:
    # Sigma_B has C-1 eigenvalues r^2/(C-1), so NC1 = s^2 (C-1)^2 / (C r^2).
    C, s, r = 4, 0.3, 2.0
    M = (torch.eye(C, dtype=torch.float64) - 1.0 / C) * math.sqrt(C / (C - 1)) * r
    # within-class offsets +-s along each of the C-1 orthonormal directions of the span
    U = torch.linalg.svd(M.T, full_matrices=False).U[:, : C - 1]  # (C, C-1) basis of span
    offsets = torch.cat([s * U.T, -s * U.T]) * math.sqrt(C - 1)  # 2(C-1) offsets
    h = (M[:, None, :] + offsets[None]).reshape(-1, C)
    y = torch.arange(C).repeat_interleave(offsets.shape[0])
    assert neural_collapse(h, y).nc1 == pytest.approx(s**2 * (C - 1) ** 2 / (C * r**2), rel=1e-12)


def test_random_gaussian_features_match_the_wishart_mean():
    # h ~ N(0, I_d), n per class: Sigma_W and Sigma_B are independent, E Sigma_W =
    # (n-1)/n I and tr Sigma_B^+ = C n tr(W^-1), W ~ Wishart_{C-1}(d, I) with
    # E W^-1 = I / (d - C), so E[NC1] = (n - 1)(C - 1) / (d - C).
    C, n, d, reps = 4, 10, 30, 400
    g = torch.Generator().manual_seed(3)
    y = torch.arange(C).repeat(n)
    values = torch.tensor(
        [
            neural_collapse(torch.randn(C * n, d, generator=g, dtype=torch.float64), y).nc1
            for _ in range(reps)
        ]
    )
    expected = (n - 1) * (C - 1) / (d - C)
    se = float(values.std() / math.sqrt(reps))
    assert abs(float(values.mean()) - expected) < 5 * se  # 5 standard errors
    assert float(values.mean()) > 0.5  # far from collapse


def test_nearest_centre_mismatch_counts_disagreements():
    h = torch.tensor([[0.0], [0.1], [1.0], [0.45]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    # means 0.05 and 0.725 (midpoint 0.3875); classifier with threshold 0.5
    W = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    r = neural_collapse(h, y, W, torch.tensor([0.5, -0.5], dtype=torch.float64))
    assert r.ncc_mismatch == pytest.approx(0.25)  # only h = 0.45 disagrees


def test_bad_input():
    h = torch.randn(6, 3, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="features must be a 2-D array"):
        neural_collapse(h[0], y)
    with pytest.raises(TypeError, match="labels must be a 1-D array of integer classes"):
        neural_collapse(h, y.double())
    with pytest.raises(ValueError, match="labels must be of length N = 6"):
        neural_collapse(h, y[:4])
    with pytest.raises(
        ValueError, match=r"labels must be classes 0\.\.C-1 with C >= 2, each present"
    ):
        neural_collapse(h, torch.tensor([0, 2, 2, 0, 2, 2]))
    with pytest.raises(ValueError, match=r"classifier_weight must be of shape \(C, d\)"):
        neural_collapse(h, y, torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"classifier_bias must be of shape \(3,\)"):
        neural_collapse(h, y, torch.ones(3, 3), torch.ones(2))
    bad = h.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="features must be finite"):
        neural_collapse(bad, y)


def test_features_of_any_batch_first_shape_are_flattened():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(12, 2, 3, generator=g, dtype=torch.float64)
    y = torch.arange(12) % 3
    a = neural_collapse(h, y)
    b = neural_collapse(h.reshape(12, 6), y)
    assert a.nc1 == b.nc1 and a.equinorm_means == b.equinorm_means


def test_metrics_are_scale_free_up_to_the_float64_limit():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(30, 4, generator=gen, dtype=torch.float64)
    y = torch.arange(3).repeat(10)
    w = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    small = neural_collapse(h, y, classifier_weight=w)
    # NC metrics are ratios: h -> 1e300 h changes none of them (within rounding)
    big = neural_collapse(h * 1e300, y, classifier_weight=w)
    for name in ("nc1", "equinorm_means", "max_angle_means", "self_duality"):
        assert getattr(big, name) == pytest.approx(getattr(small, name), rel=1e-12)
    with pytest.raises(TypeError, match="labels must be a 1-D array of integer classes"):
        neural_collapse(h, None)
