"""Papyan's decomposition against its definitions evaluated densely."""

from __future__ import annotations

import pytest
import torch

from dltheory.curvature import gauss_newton_decomposition, gauss_newton_parts

from .conftest import dense_hessian, small_net
from .test_ggn import dense_jacobian


def _reference_parts(model, x, y, C):
    """G_0, G_1, G_2, G_{c=c'} straight from the definitions, with loops over classes."""
    J, out = dense_jacobian(model, x)
    p = torch.softmax(out.detach(), 1)
    N, P = x.shape[0], J.shape[2]
    eye = torch.eye(C, dtype=torch.float64)
    g = torch.einsum("ncp,nkc->nkp", J, eye[None] - p[:, None, :])  # g[i, c'] = J_i^T(e_c'-p_i)
    w = p / N
    G0, G1, G2, Gs = (torch.zeros(P, P, dtype=torch.float64) for _ in range(4))
    for c in range(C):
        idx = y == c
        W = w[idx].sum(0)  # W_cc' over c'
        gcc = torch.stack([(w[idx, k, None] * g[idx, k]).sum(0) / W[k] for k in range(C)])
        others = [k for k in range(C) if k != c]
        Wc = W[others].sum()
        gc = (W[others, None] * gcc[others]).sum(0) / Wc
        G0 += Wc * torch.outer(gc, gc)
        for k in others:
            G1 += W[k] * torch.outer(gcc[k] - gc, gcc[k] - gc)
            d = g[idx, k] - gcc[k]
            G2 += (w[idx, k, None] * d).T @ d
        Gs += (w[idx, c, None] * g[idx, c]).T @ g[idx, c]
    return G0, G1, G2, Gs


@pytest.fixture
def classifier():
    g = torch.Generator().manual_seed(11)
    model = small_net(5, d_in=4, width=5, d_out=3)
    x = torch.randn(24, 4, generator=g, dtype=torch.float64)
    y = torch.arange(24) % 3
    return model, x, y


def test_parts_match_definitions_and_sum_to_ggn(classifier):
    model, x, y = classifier
    G0, G1, G2, Gs = _reference_parts(model, x, y, 3)
    parts = gauss_newton_parts(model, [(x[:10], y[:10]), (x[10:], y[10:])])
    eye = torch.eye(G0.shape[0], dtype=torch.float64)
    A, B = parts.class_factor, parts.cross_factor
    within = torch.stack([parts.within(e) for e in eye], 1)
    same = torch.stack([parts.same_class(e) for e in eye], 1)
    G = parts.ggn.dense()
    scale = float(G.abs().max())
    # float64 sums of a few hundred terms: 1e-10 relative to the largest entry.
    atol = 1e-10 * scale
    assert torch.allclose(A @ A.T, G0, atol=atol)
    assert torch.allclose(B @ B.T, G1, atol=atol)
    assert torch.allclose(within, G2, atol=atol)
    assert torch.allclose(same, Gs, atol=atol)
    assert torch.allclose(G0 + G1 + G2 + Gs, G, atol=atol)  # the parts of the reference
    assert torch.allclose(A @ A.T + B @ B.T + within + same, G, atol=atol)  # and ours


def test_decomposition_shares_and_spectra(classifier):
    model, x, y = classifier
    d = gauss_newton_decomposition(model, (x, y), tol=1e-10)
    H = dense_hessian(model, torch.nn.functional.cross_entropy, x, y)
    evals, evecs = torch.linalg.eigh(H)
    assert torch.allclose(d.hessian_eigenvalues, evals.flip(0)[:3], rtol=1e-8)
    G0, G1, *_ = _reference_parts(model, x, y, 3)
    assert torch.allclose(d.class_eigenvalues, torch.linalg.eigvalsh(G0).flip(0)[:3], atol=1e-10)
    assert torch.allclose(d.cross_eigenvalues, torch.linalg.eigvalsh(G1).flip(0)[:6], atol=1e-10)
    assert sum(d.shares.values()) == pytest.approx(1.0, abs=1e-12)
    V = evecs[:, -3:]
    assert d.shares["class"] == pytest.approx(
        float(torch.trace(V.T @ G0 @ V)) / float(evals[-3:].sum()), rel=1e-6
    )
    assert bool(
        ((d.class_overlap >= -1e-12) & (d.class_overlap <= d.class_cross_overlap + 1e-12)).all()
    )


def test_bad_labels(classifier):
    model, x, y = classifier
    with pytest.raises(ValueError, match=r"data targets must be class indices in 0\.\.2"):
        gauss_newton_parts(model, (x, y + 1))
    with pytest.raises(ValueError, match=r"data targets must be class indices in 0\.\.2"):
        gauss_newton_decomposition(model, (x, y + 1))
    with pytest.raises(ValueError, match="data targets must be integer class indices"):
        gauss_newton_decomposition(model, (x, y == 1))
    with pytest.raises(ValueError, match="data targets must be class indices or class prob"):
        gauss_newton_parts(model, (x, y.double()))
    with pytest.raises(TypeError, match="labels must be a 1-D tensor of integer class indices"):
        gauss_newton_parts(model, (x, torch.nn.functional.one_hot(y, 3).double()))
    with pytest.raises(ValueError, match="k must be at most the number of parameters"):
        gauss_newton_decomposition(model, (x, y), k=10_000)
