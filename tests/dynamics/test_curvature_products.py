"""max_stable_lr and Sharpness take Hessian-vector products from HessianOperator: their
lambda_max against a dense float64 Hessian built by double backward on the module."""

from __future__ import annotations

import copy
import types

import torch
from tests.conftest import ConvBN, TiedMLP

from dltheory import max_stable_lr
from dltheory.dynamics import Sharpness
from dltheory.dynamics.curvature_products import LossHessian
from dltheory.finite.functional_model import FunctionalModel
from dltheory.finite.model_function import ModelState


def _mse(out, y):
    return 0.5 * ((out - y) ** 2).sum() / y.shape[0]  # 1/(2N) sum ||f - y||^2


def dense_hessian(model, loss_fn, x, y) -> torch.Tensor:
    """(P, P) by double backward through a float64 deep copy (autograd only)."""
    ref = copy.deepcopy(model).double()
    params = [p for p in ref.parameters() if p.requires_grad]
    out = ref(x.double() if x.is_floating_point() else x)
    g = torch.cat(
        [t.reshape(-1) for t in torch.autograd.grad(loss_fn(out, y), params, create_graph=True)]
    )
    rows = [
        torch.cat([t.reshape(-1) for t in torch.autograd.grad(g[i], params, retain_graph=True)])
        for i in range(g.numel())
    ]
    return torch.stack(rows)


def _cases():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    tied = TiedMLP().double()
    conv = ConvBN(out=2).double().train()  # BatchNorm with batch statistics
    return [
        (tied, torch.randn(6, 3, generator=g, dtype=torch.float64)),
        (conv, torch.randn(5, 1, 8, 8, generator=g, dtype=torch.float64)),
    ]


def test_loss_hessian_products_match_the_dense_hessian_and_change_nothing():
    for model, x in _cases():
        y = torch.randn(x.shape[0], 2, dtype=torch.float64)
        before = ModelState.of(model)
        want = dense_hessian(model, _mse, x, y)
        op = LossHessian(FunctionalModel(model), _mse, x, y)
        got = op.matvec(torch.eye(op.shape[0], dtype=torch.float64)[:, 0])
        # products are exact up to rounding of sums over P ~ 100-300 terms in float64
        assert float((got - want[0]).abs().max()) <= 1e-10 * float(want.abs().max())
        v = torch.randn(op.shape[0], dtype=torch.float64)
        assert float((op.matvec(v) - want @ v).abs().max()) <= 1e-10 * float(want.abs().max())
        assert op.n_matvecs == 2
        assert before.changes(model) == []


def test_max_stable_lr_and_sharpness_top_eigenvalue_equal_dense():
    for model, x in _cases():
        y = torch.randn(x.shape[0], 2, dtype=torch.float64)
        top = float(torch.linalg.eigvalsh(dense_hessian(model, _mse, x, y))[-1])
        before = ModelState.of(model)
        r = max_stable_lr(model, x, y, tol=1e-10)
        # certified: |theta - lambda| <= residual, residual <= tol |theta|
        assert abs(r.hessian_lambda_max - top) <= 1e-8 * abs(top)
        tracker = Sharpness(tol=1e-10)
        state = types.SimpleNamespace(step=0, model=model, loss_fn=_mse, x=x, y=y)
        assert abs(tracker(state) - top) <= 1e-8 * abs(top)
        assert tracker.n_matvecs > 0
        assert before.changes(model) == []
