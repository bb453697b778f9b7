"""Kernels and finite networks on CUDA (skipped on machines without a GPU) and
in float32 / float64 everywhere."""

from __future__ import annotations

import copy

import pytest
import torch

import dltheory
from dltheory import MLP, empirical_ntk

cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine",
)


@cuda
@pytest.mark.parametrize("name", ["relu", "tanh", "elu"])
def test_kernel_on_cuda_matches_cpu(name):
    x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spec = MLP(3, name, c_w=1.5, c_b=0.1)
    cpu = spec.kernel(x, backend="torch")
    gpu = spec.kernel(x.cuda())
    assert gpu.nngp.device.type == "cuda"
    torch.testing.assert_close(gpu.nngp.cpu(), cpu.nngp, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gpu.ntk.cpu(), cpu.ntk, rtol=1e-10, atol=1e-12)


@cuda
def test_sampled_network_and_empirical_ntk_on_cuda_match_cpu():
    # The same weights on both devices: outputs and empirical NTK agree to float64 rounding
    # (different reduction orders: relative 1e-12 on values of order 1).
    spec = MLP(2, "relu", c_w=2.0, c_b=0.1)
    cpu_net = spec.sample(64, in_dim=3, seed=0, dtype=torch.float64)
    gpu_net = copy.deepcopy(cpu_net).cuda()
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(gpu_net(x.cuda()).cpu(), cpu_net(x), rtol=1e-12, atol=1e-12)
    ntk = empirical_ntk(gpu_net, x.cuda())
    assert ntk.device.type == "cuda"
    torch.testing.assert_close(ntk.cpu(), empirical_ntk(cpu_net, x), rtol=1e-12, atol=1e-12)


@cuda
def test_ensemble_on_cuda_matches_its_networks_run_on_cpu():
    # CUDA draws differ from CPU draws (another generator), but each network drawn on the
    # GPU and moved to the CPU must give the GPU ensemble's outputs.
    spec = MLP(2, "tanh", c_w=1.5, c_b=0.1)
    ens = dltheory.ensemble(spec, 32, 5, in_dim=3, seed=1, dtype=torch.float64, device="cuda")
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    out = ens.forward(x.cuda())
    assert out.device.type == "cuda"
    with torch.no_grad():
        cpu = torch.stack([ens.network(i).cpu()(x) for i in range(5)])
    torch.testing.assert_close(out.cpu(), cpu, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_float64_inputs_give_float64_kernels(dtype):
    x = torch.randn(5, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))
    spec = MLP(3, "tanh")
    k = spec.kernel(x)
    assert k.nngp.dtype == torch.float64
    ref = spec.kernel(x.to(torch.float64))
    torch.testing.assert_close(k.nngp, ref.nngp, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_networks_keep_their_dtype(dtype):
    net = MLP(2, "gelu").sample(16, in_dim=3, seed=0, dtype=dtype)
    x = torch.randn(4, 3, dtype=dtype)
    assert net(x).dtype == dtype
    assert empirical_ntk(net, x).dtype == dtype
