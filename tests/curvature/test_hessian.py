"""HessianOperator against the dense autograd Hessian; batching; bad input."""

from __future__ import annotations

import copy

import pytest
import torch

from dltheory.curvature import HessianOperator

from .conftest import mse, small_net


def test_matches_dense_hessian(problem, operator):
    *_, H = problem
    # Both are float64 evaluations of the same second derivatives: agreement to
    # rounding (1e-12 relative to the largest entry).
    dense = operator.dense()
    assert torch.allclose(dense, H, rtol=0, atol=1e-12 * float(H.abs().max()))
    assert operator.n_matvecs == H.shape[0]


def test_block_product_and_matmul(problem, operator):
    *_, H = problem
    V = torch.randn(H.shape[0], 3, dtype=torch.float64)
    assert torch.allclose(operator @ V, H @ V, atol=1e-12)
    assert operator.shape == H.shape and operator.dtype == torch.float64


def test_batches_accumulate_to_full_batch(problem):
    model, loss_fn, x, y, H = problem
    # Unequal batches 7 + 7 + 6, weighted n_b / N: the exact full-batch Hessian.
    batches = [(x[:7], y[:7]), (x[7:14], y[7:14]), (x[14:], y[14:])]
    op = HessianOperator(model, loss_fn, iter(batches))
    v = torch.randn(H.shape[0], dtype=torch.float64)
    assert torch.allclose(op @ v, H @ v, atol=1e-12)
    uncached = HessianOperator(model, loss_fn, batches, cache=False)
    assert torch.allclose(uncached @ v, H @ v, atol=1e-12)


def test_gradient_and_loss(problem, operator):
    model, loss_fn, x, y, _ = problem
    model.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(operator.gradient(), grad, atol=1e-14)
    assert operator.loss() == pytest.approx(float(loss.detach()), rel=1e-14)


def test_float32_model():
    model = small_net(0).float()
    x = torch.randn(10, 4)
    y = torch.randn(10, 3)
    op = HessianOperator(model, mse, (x.double(), y))  # inputs follow the parameters
    assert op.dtype == torch.float32
    assert (op @ torch.ones(op.shape[0])).dtype == torch.float32


def test_bad_input():
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"model must be a torch\.nn\.Module with trainable"):
        HessianOperator(torch.nn.Tanh(), mse, (x, y))
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module\. Got .function."):
        HessianOperator(lambda t: t, mse, (x, y))
    net = small_net(0)
    with pytest.raises(ValueError, match="loss_fn must be a callable returning a scalar"):
        HessianOperator(net, lambda o, t: (o - t) ** 2, (x, y))
    with pytest.raises(TypeError, match="loss_fn must be a callable"):
        HessianOperator(net, "mse", (x, y))
    with pytest.raises(ValueError, match="data must be non-empty"):
        HessianOperator(net, mse, [])
    with pytest.raises(ValueError, match="data must be batches with at least one sample"):
        HessianOperator(net, mse, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="same number of samples"):
        HessianOperator(net, mse, (x, y[:3]))
    with pytest.raises(TypeError, match="data must be a pair"):
        HessianOperator(net, mse, 3.0)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="data inputs must be finite"):
        HessianOperator(net, mse, (bad, y))
    op = HessianOperator(net, mse, (x, y))
    with pytest.raises(ValueError, match=r"v must be of shape \(51,\)"):
        op @ torch.ones(3, dtype=torch.float64)


@pytest.mark.parametrize("method", ["vjp", "linearize", "jvp", "autograd"])
@pytest.mark.parametrize("micro_batch", [None, 6])
def test_every_product_matches_dense(problem, method, micro_batch):
    model, loss_fn, x, y, H = problem
    # Every product and micro-batch split (6 + 6 + 6 + 2 samples, weighted n_b / N) is
    # the same float64 second derivative: agreement to rounding.
    op = HessianOperator(model, loss_fn, (x, y), method=method, micro_batch=micro_batch)
    V = torch.randn(H.shape[0], 2, dtype=torch.float64)
    assert torch.allclose(op @ V, H @ V, atol=1e-12 * float(H.abs().max()))
    assert torch.allclose(op @ V, H @ V, atol=1e-12 * float(H.abs().max()))  # cached again
    model.zero_grad()
    loss_fn(model(x), y).backward()
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(op.gradient(), grad, atol=1e-14)


def test_memory_budget_drops_caching_and_splits_batches(problem):
    model, loss_fn, x, y, H = problem
    roomy = HessianOperator(model, loss_fn, (x, y), memory_budget=1e9)
    assert roomy.method in ("vjp", "linearize")
    per_sample = roomy.cached_bytes_estimate() / x.shape[0]
    # Room for the transient of about 5 samples only: uncached forward-over-reverse
    # products on micro-batches, still the exact Hessian.
    tight = HessianOperator(model, loss_fn, (x, y), memory_budget=5.5 * 3.6 * per_sample)
    assert tight.method == "jvp" and len(tight._batches) == 4
    v = torch.randn(H.shape[0], dtype=torch.float64)
    assert torch.allclose(tight @ v, H @ v, atol=1e-12 * float(H.abs().max()))
    assert all(f is None for f in tight._vjps)  # nothing kept between products


def test_micro_batch_refuses_batch_statistics():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)).double()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"micro_batch must be None .*'BatchNorm1d 1"):
        HessianOperator(model, mse, (x, y), micro_batch=4)
    with pytest.raises(ValueError, match="memory_budget must be"):
        HessianOperator(model.eval(), mse, (x, y), memory_budget=-1.0)


def test_tied_weights_products_match_finite_differences_and_leave_the_model():
    from tests.conftest import TiedMLP

    from dltheory.finite.model_function import ModelState

    torch.manual_seed(0)
    model = TiedMLP().double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randn(8, 2, dtype=torch.float64)
    loss_fn = torch.nn.MSELoss()
    before = ModelState.of(model)
    params = list(model.parameters())  # the shared Linear once

    def grad_at(theta: torch.Tensor) -> torch.Tensor:
        twin = copy.deepcopy(model)
        torch.nn.utils.vector_to_parameters(theta, twin.parameters())
        twin.zero_grad()
        loss_fn(twin(x), y).backward()
        return torch.cat([p.grad.reshape(-1) for p in twin.parameters()])

    theta = torch.nn.utils.parameters_to_vector(params).detach()
    v = torch.randn(theta.numel(), dtype=torch.float64)
    h = 1e-5  # central differences: error ~ h^2 |g'''| ~ 1e-10, rounding ~ eps / h ~ 1e-11
    reference = (grad_at(theta + h * v) - grad_at(theta - h * v)) / (2 * h)
    for method in ("auto", "vjp", "autograd"):
        op = HessianOperator(model, loss_fn, (x, y), method=method)
        torch.testing.assert_close(op.matvec(v), reference, rtol=1e-7, atol=1e-9)
    assert before.changes(model) == []
    for method in ("linearize", "jvp"):  # torch 2.13: a segfault / an error on tied weights
        with pytest.raises(ValueError, match="method must be 'auto', 'vjp' or 'autograd'"):
            HessianOperator(model, loss_fn, (x, y), method=method)


def test_a_model_that_refuses_the_data_is_named_in_one_line():
    model = torch.nn.Linear(4, 2).double()
    data = (torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"data inputs must be inputs the model accepts"):
        HessianOperator(model, torch.nn.MSELoss(), data)
