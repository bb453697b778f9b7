"""NTK-GP prediction: closed forms, and an ensemble of trained wide nets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dltheory import MLP, ntk_gp_prediction, train


def test_t_zero_is_prior_and_infinity_is_regression():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(7, 7, generator=gen, dtype=torch.float64)
    theta_all = a @ a.T + torch.eye(7, dtype=torch.float64)
    b = torch.randn(7, 7, generator=gen, dtype=torch.float64)
    k_all = b @ b.T + 0.1 * torch.eye(7, dtype=torch.float64)
    tr, te = slice(0, 4), slice(4, 7)
    y = torch.randn(4, generator=gen, dtype=torch.float64)
    kw = dict(
        nngp_train_train=k_all[tr, tr], nngp_test_train=k_all[te, tr], nngp_test_test=k_all[te, te]
    )
    p0 = ntk_gp_prediction(theta_all[tr, tr], theta_all[te, tr], y, t=0.0, **kw)
    assert float(p0.mean.abs().max()) == 0.0
    assert float((p0.cov - k_all[te, te]).abs().max()) < 1e-12
    pinf = ntk_gp_prediction(theta_all[tr, tr], theta_all[te, tr], y, **kw)
    # Lee et al. 2019 Eq. (16) at t = infinity, written with solves instead of eigenpairs
    a_inf = theta_all[te, tr] @ torch.linalg.inv(theta_all[tr, tr])
    cov = (
        k_all[te, te]
        + a_inf @ k_all[tr, tr] @ a_inf.T
        - a_inf @ k_all[tr, te]
        - k_all[te, tr] @ a_inf.T
    )
    assert float((pinf.mean - a_inf @ y).abs().max()) < 1e-10
    assert float((pinf.cov - cov).abs().max()) < 1e-10
    # finite t: the matrix exponential from scipy
    import scipy.linalg

    e = torch.from_numpy(scipy.linalg.expm(-(0.8 / 4) * 2.0 * theta_all[tr, tr].numpy()))
    a_t = (
        theta_all[te, tr]
        @ torch.linalg.inv(theta_all[tr, tr])
        @ (torch.eye(4, dtype=torch.float64) - e)
    )
    pt = ntk_gp_prediction(theta_all[tr, tr], theta_all[te, tr], y, t=2.0, lr=0.8, **kw)
    assert float((pt.mean - a_t @ y).abs().max()) < 1e-10


def test_ensemble_of_trained_wide_nets_matches_ntk_gp():
    spec = MLP(1, "erf", c_w=1.5, c_b=0.05)
    gen = torch.Generator().manual_seed(1)
    x = 1.5 * torch.eye(4, dtype=torch.float64) + 0.3  # well-conditioned Theta (kappa ~ 3)
    xt = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    y = torch.tensor([[0.5], [-0.3], [0.8], [0.1]], dtype=torch.float64)
    k = spec.kernel(torch.cat([x, xt]))
    tr, te = slice(0, 4), slice(4, 7)
    nngp = k.nngp
    pred = ntk_gp_prediction(
        k.ntk[tr, tr],
        k.ntk[te, tr],
        y,
        nngp_train_train=nngp[tr, tr],
        nngp_test_train=nngp[te, tr],
        nngp_test_test=nngp[te, te],
    )
    lam = torch.linalg.eigvalsh(k.ntk[tr, tr])
    lr = 4 / float(lam[-1])  # (eta/N) lambda_max = 1
    steps = math.ceil(30 / (lr * float(lam[0]) / 4))  # residual e^-30 of its start
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(2).spawn(40)]
    outs = []
    for s in seeds:
        net = spec.sample(1024, in_dim=4, seed=s, dtype=torch.float64)
        train(net, x, y, lr=lr, steps=steps, track=())
        with torch.no_grad():
            outs.append(net(xt)[:, 0])
    outs = torch.stack(outs)
    m = len(seeds)
    mean, var = outs.mean(0), outs.var(0)
    # mean: SE = sqrt(var / M); variance: SE of a sample variance = var sqrt(2 / (M - 1))
    # (Gaussian outputs); plus the O(1/sqrt(n)) finite-width bias, small at n = 1024.
    pvar = pred.cov.diagonal()
    assert bool((torch.abs(mean - pred.mean[:, 0]) < 5 * torch.sqrt(pvar / m)).all())
    assert bool((torch.abs(var - pvar) < 5 * pvar * math.sqrt(2 / (m - 1))).all())


def test_errors():
    t = torch.eye(2, dtype=torch.float64)
    y = torch.ones(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="ntk_test_train must be of shape \\(2, 2\\)"):
        ntk_gp_prediction(t, torch.ones(2, 3), y)
    with pytest.raises(ValueError, match="nngp_train_train must be given together"):
        ntk_gp_prediction(t, t, y, nngp_train_train=t)
    with pytest.raises(ValueError, match="ntk_train_train must be positive definite"):
        ntk_gp_prediction(torch.ones(2, 2), t, y)
    with pytest.raises(ValueError, match="lr must be > 0"):
        ntk_gp_prediction(t, t, y, lr=-1.0)
    with pytest.raises(ValueError, match="y_train must be non-empty"):
        ntk_gp_prediction(t, t, torch.ones(0))
    # diag_reg makes a singular Theta usable
    assert ntk_gp_prediction(torch.ones(2, 2), t, y, diag_reg=1e-3).mean.shape == (2,)
