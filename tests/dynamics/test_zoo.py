"""The dynamics tools on the model zoo, against dense autograd references.

Each public function that takes a model and data runs on every zoo model (conv +
BatchNorm, ResNet-style module, transformer on integer tokens, Dropout MLP, GroupNorm,
tied weights) in float32 / float64 and train / eval mode; values are compared with
references built from a float64 deep copy by plain ``torch.autograd`` (one backward
pass per Jacobian row, double backward for Hessian rows), and the model must be
unchanged (``ModelState``).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from tests.conftest import ZOO, ZooCase
from tests.finite.test_ntk_zoo import reference_jacobian
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from dltheory import max_stable_lr, train
from dltheory.dynamics import QuadraticModel, Sharpness, coord_check, linearized_outputs
from dltheory.dynamics.catapult_networks import catapult_scan
from dltheory.dynamics.linearized import linearized_prediction
from dltheory.dynamics.trajectory import mse_loss
from dltheory.finite.model_function import ModelState


def _targets(case: ZooCase, n: int) -> torch.Tensor:
    return torch.randn(n, case.k, generator=torch.Generator().manual_seed(9), dtype=torch.float64)


def reference_hessian_top(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """lambda_max of the MSE Hessian of a float64 copy, by double backward row by row."""
    ref = copy.deepcopy(model).double()
    params = [p for p in ref.parameters() if p.requires_grad]
    # attention by its math kernel and without the fast path: twice differentiable
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            out = ref(x.double() if x.is_floating_point() else x)
            loss = mse_loss(out.reshape(len(x), -1), y)
            grads = torch.autograd.grad(loss, params, create_graph=True)
            flat = torch.cat([g.reshape(-1) for g in grads])
            eye = torch.eye(len(flat), dtype=flat.dtype)
            try:
                rows = torch.autograd.grad(
                    flat, params, grad_outputs=eye, is_grads_batched=True, retain_graph=True
                )
            except RuntimeError:  # no batching rule (GroupNorm's double backward): row by row
                per = [torch.autograd.grad(g, params, retain_graph=True) for g in flat]
                rows = [torch.stack([r[i] for r in per]) for i in range(len(params))]
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    hess = torch.cat([r.reshape(len(flat), -1) for r in rows], dim=1)
    return float(torch.linalg.eigvalsh((hess + hess.T) / 2)[-1])


def _rtol(dtype: torch.dtype) -> float:
    # float64: Lanczos tol 1e-8; float32: tol 1e-4 and eps32 rounding in the products
    return 1e-7 if dtype == torch.float64 else 2e-3


def test_max_stable_lr_on_the_zoo(zoo):
    x, y = zoo.x(4), _targets(zoo, 4)
    before = ModelState.of(zoo.model)
    if zoo.random:
        with pytest.raises(ValueError, match=r"Call model\.eval\(\)"):
            max_stable_lr(zoo.model, x, y)
        return
    j = reference_jacobian(zoo.model, x).reshape(4 * zoo.k, -1)
    ntk_top = float(torch.linalg.eigvalsh(j @ j.T)[-1])
    dense = max_stable_lr(zoo.model, x, y, hessian=zoo.dtype == torch.float64)
    lanczos = max_stable_lr(zoo.model, x, y, hessian=False, memory_budget=1)
    assert dense.ntk_method.startswith("dense") and lanczos.ntk_method.startswith("Lanczos")
    for r in (dense, lanczos):
        assert r.ntk_lambda_max == pytest.approx(ntk_top, rel=_rtol(zoo.dtype))
        assert r.ntk_lr == pytest.approx(2 * 4 / ntk_top, rel=_rtol(zoo.dtype))
    if zoo.dtype == torch.float64:
        h_top = reference_hessian_top(zoo.model, x, y)
        assert dense.hessian_lambda_max == pytest.approx(h_top, rel=1e-7)
        assert dense.hessian_converged
    assert before.changes(zoo.model) == []


def test_linearized_outputs_on_the_zoo(zoo64):
    x, y, xt = zoo64.x(4), _targets(zoo64, 4), zoo64.x(3, seed=5)
    before = ModelState.of(zoo64.model)
    if zoo64.random:
        with pytest.raises(ValueError, match="Dropout at"):
            linearized_outputs(zoo64.model, x, y, xt)
        return
    j, jt = reference_jacobian(zoo64.model, x), reference_jacobian(zoo64.model, xt)
    ntk = torch.einsum("aop,bqp->aboq", j, j)
    ntk_t = torch.einsum("aop,bqp->aboq", jt, j)
    ref = copy.deepcopy(zoo64.model).double()
    with torch.no_grad():
        f0, f0t = ref(x.double() if x.is_floating_point() else x), ref(xt)
    want = linearized_prediction(ntk, y, f0, ntk_test_train=ntk_t, f0_test=f0t, lr=0.5, t=3)
    got = linearized_outputs(zoo64.model, x, y, xt, lr=0.5, t=3)
    torch.testing.assert_close(got.train, want.train, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(got.test, want.test, rtol=1e-9, atol=1e-11)
    assert before.changes(zoo64.model) == []


class _FirstOutput(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x)[:, :1]


def test_quadratic_model_from_the_zoo(zoo64):
    model = _FirstOutput(zoo64.model)
    x = zoo64.x(3)
    before = ModelState.of(model)
    if zoo64.random:
        with pytest.raises(ValueError, match=r"Dropout at 'inner\.2'"):
            QuadraticModel.from_model(model, x)
        return
    qm = QuadraticModel.from_model(model, x)
    torch.testing.assert_close(qm.phi, reference_jacobian(model, x)[:, 0], rtol=1e-9, atol=1e-12)
    assert before.changes(model) == []


def test_sharpness_and_ntk_trackers_on_the_zoo(zoo64):
    x, y = zoo64.x(4), _targets(zoo64, 4)
    model = copy.deepcopy(zoo64.model)
    if zoo64.random:
        with pytest.raises(ValueError, match="Dropout at"):
            train(model, x, y, lr=1e-3, steps=1, track=(Sharpness(tol=1e-9),))
        return
    h_top = reference_hessian_top(model, x, y)
    j = reference_jacobian(model, x).reshape(4 * zoo64.k, -1)
    lam = torch.linalg.eigvalsh(j @ j.T)
    traj = train(
        model,
        x,
        y,
        lr=1e-3,
        steps=1,
        track=(Sharpness(tol=1e-9), "ntk_lambda_max", "ntk_lambda_min"),
    )
    assert traj["sharpness"][0] == pytest.approx(h_top, rel=1e-8)
    assert traj["ntk_lambda_max"][0] == pytest.approx(float(lam[-1]), rel=1e-7)
    # lambda_min may sit at rounding level (tied readout, pooling): absolute scale
    assert abs(traj["ntk_lambda_min"][0] - float(lam[0])) <= 1e-7 * float(lam[-1])


@pytest.mark.parametrize("name", sorted(ZOO))
def test_coord_check_and_catapult_scan_take_factories_of_zoo_models(name):
    builder, sample, k = ZOO[name]
    g = torch.Generator().manual_seed(0)
    x, y = sample(6, g), torch.randn(6, k, generator=g, dtype=torch.float64)

    def factory(width: int, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        net = builder().double()
        return net.eval() if name == "dropout_mlp" else net

    cc = coord_check(factory, [4, 8], steps=2, x=x, y=y, n_seeds=1, lr=0.01)
    assert cc.size.shape[:2] == (2, 3) and cc.size.shape[2] == len(cc.layers) >= 1
    assert np.all(cc.change[:, 0] == 0) and np.all(cc.change[:, -1] > 0)
    scan = catapult_scan(factory, x, y, width=4, factors=[0.5, 3.0], steps=4, seeds=1)
    slow, fast = scan.runs[0]
    # 4 steps at 0.5 x 2/lambda: no spike (loss falls, maybe not yet below conv_tol)
    assert slow.phase in ("lazy", "not_converged") and slow.spike == 1.0
    assert math.isfinite(slow.final_factor) and fast.phase != "lazy"
    if name == "dropout_mlp":
        with pytest.raises(ValueError, match="Dropout at '2' in train mode"):
            coord_check(lambda w, s: builder().double(), [4], 1, x=x, y=y, n_seeds=1)


def test_bad_inputs_are_one_line_errors_naming_the_argument_and_change_nothing():
    case = ZooCase("conv_bn", torch.float64, "train")
    net, x, y = case.model, case.x(4), _targets(case, 4)
    before = ModelState.of(net)
    bad_x = x[:, :, :5]  # images the model cannot take

    def fac(w, s):
        return copy.deepcopy(net)

    cases = [
        (lambda: train(net, "img", y, lr=0.1, steps=1), TypeError, "x must be a torch.Tensor"),
        (lambda: train(net, bad_x, y, lr=0.1, steps=1), ValueError, "x must be inputs the model"),
        (lambda: train(net, x, y[:3], lr=0.1, steps=1), ValueError, "y must be targets with 4"),
        (lambda: max_stable_lr(net, bad_x, y), ValueError, "x must be inputs the model accepts"),
        (lambda: max_stable_lr(net, x, y[:, :2]), ValueError, "y must be of the model's output"),
        (lambda: max_stable_lr(net, x, y, memory_budget=0), ValueError, "memory_budget must be"),
        (lambda: linearized_outputs(net, bad_x, y), ValueError, "x_train must be inputs the"),
        (lambda: linearized_outputs(net, x, y, bad_x), ValueError, "x_test must be inputs the"),
        (lambda: linearized_outputs(net, x, y[:, :1]), ValueError, "y_train must be of the"),
        (lambda: QuadraticModel.from_model(net, x[0]), ValueError, "x must be inputs the model"),
        (lambda: coord_check(fac, [2], 1, x=x), ValueError, "y must be given for inputs"),
        (lambda: coord_check(fac, [2], 1, x=x, y=y[:2]), ValueError, "y must be targets with 4"),
        (lambda: catapult_scan(fac, x, y[:2], width=2, factors=[1.0]), ValueError, "y must be"),
        (lambda: catapult_scan(3, x, y, width=2, factors=[1.0]), TypeError, "spec must be a"),
    ]
    for fn, exc, text in cases:
        with pytest.raises(exc, match=text) as info:
            fn()
        assert "\n" not in str(info.value), str(info.value)
    assert before.changes(net) == []
