"""empirical_ntk on the model zoo: every method against a dense torch.func reference.

The reference is independent of the library's model policy and of torch.func: a
float64 deep copy of the model run as it is (a train-mode BatchNorm in the copy
normalises with the batch statistics, as the library's batched map does), one
``torch.autograd.grad`` per output row with respect to ``model.parameters()`` (a tied
parameter once, its gradient summed over its uses), Theta = J1 J2^T.
"""

from __future__ import annotations

import copy
import re

import pytest
import torch
from tests.conftest import ConvBN, TiedMLP
from torch import nn

from dltheory import empirical_ntk
from dltheory.finite.model_function import ModelState
from dltheory.finite.ntk_vector_products import NTKOperator


def reference_ntk(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """(N1, N2, k, k) float64 NTK of the batched maps f(X1), f(X2), row by row autograd."""
    return torch.einsum(
        "aop,bqp->aboq", reference_jacobian(model, x1), reference_jacobian(model, x2)
    )


def reference_jacobian(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, k, P) float64 Jacobian of X -> f(X) of a deep copy, one backward pass per row."""
    ref = copy.deepcopy(model).double()
    params = [p for p in ref.parameters() if p.requires_grad]
    out = ref(x.double() if x.is_floating_point() else x).reshape(len(x), -1)
    rows = [
        torch.cat(
            [g.reshape(-1) for g in torch.autograd.grad(out[a, o], params, retain_graph=True)]
        )
        for a in range(out.shape[0])
        for o in range(out.shape[1])
    ]
    return torch.stack(rows).reshape(out.shape[0], out.shape[1], -1)


def _tol(dtype: torch.dtype) -> float:
    # float64: rounding of sums of P ~ 300 products; float32: eps32 = 1.2e-7 times the
    # same sums and the normalisation layers' divisions (measured <= 3e-6 relative)
    return 1e-10 if dtype == torch.float64 else 5e-5


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> None:
    scale = float(want.abs().max())
    err = float((got.double() - want).abs().max())
    assert err <= _tol(dtype) * scale, (err, scale)


@pytest.mark.parametrize("method", ["auto", "jacobian", "ntvp"])
def test_every_method_matches_dense_reference_on_the_zoo(zoo, method):
    x1, x2 = zoo.x(4, seed=1), zoo.x(3, seed=2)
    before = ModelState.of(zoo.model)
    if zoo.random:
        with pytest.raises(ValueError, match=r"model must be free of random modules .*Dropout at"):
            empirical_ntk(zoo.model, x1, method=method)
        return
    want = reference_ntk(zoo.model, x1, x1)
    full = empirical_ntk(zoo.model, x1, output="full", method=method)
    assert full.shape == (4, 4, zoo.k, zoo.k) and full.dtype == zoo.dtype
    _close(full, want, zoo.dtype)
    trace = empirical_ntk(zoo.model, x1, method=method)
    _close(trace, want.diagonal(dim1=2, dim2=3).mean(-1), zoo.dtype)
    cross = empirical_ntk(zoo.model, x2, x1, output="full", method=method)
    _close(cross, reference_ntk(zoo.model, x2, x1), zoo.dtype)
    assert before.changes(zoo.model) == []


def test_structured_path_counts_tied_weights_cross_terms():
    torch.manual_seed(3)
    net = TiedMLP().double()
    x = torch.randn(5, 3, dtype=torch.float64)
    want = reference_ntk(net, x, x)
    for method in ("structured", "auto"):
        _close(empirical_ntk(net, x, output="full", method=method), want, torch.float64)
        _close(
            empirical_ntk(net, x, method=method),
            want.diagonal(dim1=2, dim2=3).mean(-1),
            torch.float64,
        )
    # one weight tensor shared by two different modules (and a frozen shared bias)
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    a.bias.requires_grad_(False)
    two = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), a, nn.SiLU(), b, nn.Linear(4, 2)).double()
    _close(
        empirical_ntk(two, x, output="full", method="structured"),
        reference_ntk(two, x, x),
        torch.float64,
    )


def test_blocked_under_a_memory_budget_and_refused_when_it_cannot_fit(zoo64):
    if zoo64.random:
        return
    x = zoo64.x(5)
    want = reference_ntk(zoo64.model, x, x).diagonal(dim1=2, dim2=3).mean(-1)
    with pytest.raises(ValueError, match=r"memory_budget must be at least [0-9]+ bytes") as e:
        empirical_ntk(zoo64.model, x, method="jacobian", memory_budget=1000)
    # the bytes the refusal asks for suffice: one input per block, blocks recomputed
    need = float(re.search(r"at least ([0-9]+) bytes", str(e.value)).group(1))
    got = empirical_ntk(zoo64.model, x, method="jacobian", memory_budget=need)
    _close(got, want, torch.float64)
    with pytest.raises(ValueError, match=r"memory_budget must be at least .*N1=5, N2=5"):
        empirical_ntk(zoo64.model, x, output="full", method="ntvp", memory_budget=100)


def test_ntk_operator_on_images_and_tokens_matches_reference(zoo64):
    if zoo64.random:
        with pytest.raises(ValueError, match=r"Call model\.eval\(\)"):
            NTKOperator(zoo64.model, zoo64.x(3))
        return
    x = zoo64.x(3)
    op = NTKOperator(zoo64.model, x)
    want = reference_ntk(zoo64.model, x, x).permute(0, 2, 1, 3).reshape(op.shape)
    v = torch.randn(op.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    _close(op @ v, want @ v, torch.float64)


def test_bad_inputs_are_one_line_errors_naming_the_argument():
    net = ConvBN().double().eval()
    train = copy.deepcopy(net).train()  # batch statistics: no layerwise path
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    cases = [
        (lambda: empirical_ntk(net, x[:, :, :5]), ValueError, "x1 must be inputs the model"),
        (lambda: empirical_ntk(net, x, x[:, :, :5]), ValueError, "x2 must be inputs the model"),
        (lambda: empirical_ntk(net, "abc"), TypeError, "x1 must be a torch.Tensor or NumPy"),
        (lambda: empirical_ntk(net, torch.tensor(1.0)), ValueError, "x1 must be batch-first"),
        (lambda: empirical_ntk(net, x * float("nan")), ValueError, "x1 must be finite"),
        (lambda: empirical_ntk(net, x, memory_budget=-1), ValueError, "memory_budget must be"),
        (lambda: empirical_ntk(train, x, method="structured"), ValueError, "method must be"),
        (lambda: empirical_ntk(nn.ReLU(), x), ValueError, "model must be a module with"),
    ]
    for fn, exc, text in cases:
        with pytest.raises(exc, match=text) as info:
            fn()
        assert "\n" not in str(info.value)


def test_model_state_sees_a_parameter_swapped_back_wrongly():
    # torch 2.13: functional_call(tie_weights=True) on a module used twice restores the
    # wrong tensor; FunctionalModel binds slots instead, and ModelState notices the swap
    net = TiedMLP().double()
    before = ModelState.of(net)
    empirical_ntk(net, torch.ones(2, 3, dtype=torch.float64), method="jacobian")
    assert before.changes(net) == []
    params = {n: p.detach() for n, p in net.named_parameters()}
    torch.func.jacrev(lambda p: torch.func.functional_call(net, p, (torch.ones(1, 3).double(),)))(
        params
    )
    assert any(c.startswith("identity:") for c in before.changes(net))


def test_functional_attention_without_forward_mode_kernel_is_retried_differentiably():
    # F.scaled_dot_product_attention's fused CPU kernel has no jvp: the first product
    # fails inside torch, FunctionalModel switches to the math kernel and retries
    class SelfAttn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.out = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = self.q(x)
            return self.out(nn.functional.scaled_dot_product_attention(h, h, h).mean(1))

    torch.manual_seed(0)
    net = SelfAttn().double()
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    want = reference_ntk(net, x, x)
    _close(empirical_ntk(net, x, method="ntvp", output="full"), want, torch.float64)
