"""critical_init_: fan-in variances, detected activations, deep signal propagation, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dltheory import MLP
from dltheory.criticality import chi_parallel, chi_perp
from dltheory.criticality.init import critical_init_


def _check_variance(values: torch.Tensor, expected: float, n_std: float = 5.0) -> None:
    """Sample variance of N(0, expected) draws: s.e. = expected sqrt(2 / n)."""
    n = values.numel()
    measured = float(values.detach().double().square().mean())  # mean is 0: E[x^2] is the variance
    assert abs(measured - expected) <= n_std * expected * math.sqrt(2.0 / n), (measured, expected)


def test_relu_gets_he_init_with_fan_in_variances():
    net = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 100), nn.ReLU())
    net[0].bias.data.fill_(7.0)
    assert critical_init_(net, seed=0) is net
    _check_variance(net[0].weight, 2.0 / 300)  # He: C_w = 2 exactly
    _check_variance(net[2].weight, 2.0 / 200)
    assert torch.all(net[0].bias == 0) and torch.all(net[2].bias == 0)  # C_b = 0


def test_gelu_gets_its_solved_critical_point_and_bias_variance():
    net = nn.Sequential(nn.Linear(400, 400), nn.GELU(), nn.Linear(400, 300))
    for layer in (net[0], net[2]):
        layer.bias = nn.Parameter(torch.zeros(20000))  # many draws for the bias check
    critical_init_(net, seed=1)
    w0 = net[0].weight
    c_w = float(w0.detach().double().square().mean()) * 400
    c_b = float(net[0].bias.detach().double().square().mean())
    # Independent check of the solved point: bisection for K* with chi_parallel = chi_perp.
    lo, hi = 0.5, 10.0
    f = lambda k: float(chi_parallel("gelu", 1.0, k) - chi_perp("gelu", 1.0, k))  # noqa: E731
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(lo) * f(mid) > 0 else (lo, mid)
    k_star = 0.5 * (lo + hi)
    c_w_ref = 1.0 / float(chi_perp("gelu", 1.0, k_star))
    from dltheory.activations import activation

    c_b_ref = k_star - c_w_ref * float(activation("gelu").second_moment(torch.tensor(k_star)))
    assert c_b_ref > 0
    _check_variance(w0, c_w_ref / 400)
    _check_variance(net[2].weight, c_w_ref / 400)  # the readout uses the same C_w
    _check_variance(net[0].bias, c_b_ref)
    _check_variance(net[2].bias, c_b_ref)
    assert c_w == pytest.approx(c_w_ref, rel=0.05) and c_b == pytest.approx(c_b_ref, rel=0.05)


def test_conv2d_fan_in_counts_channels_per_group_and_kernel_size():
    conv = nn.Conv2d(8, 16, kernel_size=(3, 5), groups=2, bias=False)
    net = nn.Sequential(conv, nn.Tanh(), nn.Flatten())
    critical_init_(net, seed=2)
    _check_variance(conv.weight, 1.0 / (4 * 3 * 5))  # tanh: C_w = 1, fan_in = 8/2 * 15
    assert conv.bias is None


def test_include_conv_false_leaves_convolutions_alone():
    conv = nn.Conv1d(4, 4, 3)
    before = conv.weight.detach().clone()
    net = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    critical_init_(net, seed=0, include_conv=False)
    assert torch.equal(conv.weight, before)
    assert torch.all(net[3].bias == 0)


def test_seed_and_generator_are_reproducible():
    a = critical_init_(nn.Sequential(nn.Linear(5, 5), nn.Tanh()), seed=3)
    b = critical_init_(
        nn.Sequential(nn.Linear(5, 5), nn.Tanh()), generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(a[0].weight, b[0].weight)


def _tanh_net(depth: int, width: int) -> nn.Sequential:
    layers = [m for _ in range(depth) for m in (nn.Linear(width, width), nn.Tanh())]
    return nn.Sequential(*layers).double()


def test_deep_tanh_signal_follows_the_critical_kernel_and_default_init_collapses():
    depth, width, n_nets = 64, 256, 10
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, width, generator=g, dtype=torch.float64)
    x[1] = 0.6 * x[0] + 0.8 * x[1]  # correlated inputs, |x|^2 / n_0 ~ 1
    k = MLP(depth - 1, "tanh", c_w=1.0, c_b=0.0).kernel(x).nngp  # z^(64): depth-1 hidden
    torch.manual_seed(0)  # PyTorch's default init draws from the global generator
    crit, default = [], []
    for seed in range(n_nets):
        net = _tanh_net(depth, width)
        with torch.no_grad():
            z = net[:-1](x)
            default.append(float((z[0] - z[1]).square().mean()))
            critical_init_(net, seed=seed)
            z = net[:-1](x)
        crit.append(torch.stack([z[0].square().mean(), z[1].square().mean(), (z[0] * z[1]).mean()]))
    samples = torch.stack(crit)
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(n_nets)
    predicted = torch.stack([k[0, 0], k[1, 1], k[0, 1]])
    # 5 s.e. + O(depth / width) finite-width correction.
    assert torch.all((mean - predicted).abs() <= 5 * se + depth / width * predicted), (
        mean,
        se,
        predicted,
    )
    assert float(k[0, 0]) == pytest.approx(1 / (2 * depth), rel=0.2)  # the 1/(2l) law
    # Default init (C_w = 1/3): chi_perp ~ 1/3, the two inputs merge exponentially.
    assert max(default) < 1e-10
    assert min(float(s[0] + s[1] - 2 * s[2]) for s in samples) > 1e-4


def test_sigmoid_has_no_critical_point():
    net = nn.Sequential(nn.Linear(3, 3), nn.Sigmoid())
    with pytest.raises(ValueError, match=r"activation must be an activation with a critical point"):
        critical_init_(net, seed=0)
    with pytest.raises(ValueError, match="No critical point"):
        critical_init_(nn.Linear(3, 3), "softplus", seed=0)


def test_mixed_or_missing_activations_ask_for_activation():
    mixed = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3), nn.Tanh())
    with pytest.raises(ValueError, match=r"single kind of activation.*Pass activation="):
        critical_init_(mixed, seed=0)
    with pytest.raises(ValueError, match="no activation modules"):
        critical_init_(nn.Linear(3, 3), seed=0)
    critical_init_(mixed, "relu", seed=0)  # explicit choice wins
    assert torch.all(mixed[0].bias == 0)


def test_bad_arguments():
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module\. Got 'list'"):
        critical_init_([nn.Linear(2, 2)], "relu")
    with pytest.raises(ValueError, match="seed must be None when a generator is given"):
        critical_init_(nn.Linear(2, 2), "relu", seed=0, generator=torch.Generator())
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        critical_init_(nn.Linear(2, 2), "relu", generator=0)
    with pytest.raises(ValueError, match="activation must be one of"):
        critical_init_(nn.Linear(2, 2), "relux")


# Detection through the shared module mapping --------------------------------------------


@pytest.mark.parametrize(
    ("module", "act"),
    [
        (nn.GELU(approximate="tanh"), ("gelu", {"approximate": "tanh"})),
        (nn.Mish(), ("mish", {})),
        (nn.SiLU(), ("silu", {})),
        (nn.LeakyReLU(0.3), ("leaky_relu", {"slope": 0.3})),
        (nn.ELU(alpha=0.5), ("elu", {"alpha": 0.5})),
    ],
)
def test_every_registered_torch_module_gets_its_own_point(module, act):
    from dltheory import activation
    from dltheory.criticality import critical_point

    net = nn.Sequential(nn.Linear(400, 400), module, nn.Linear(400, 300))
    critical_init_(net, seed=0)
    point = critical_point(activation(act[0], **act[1]))
    _check_variance(net[0].weight, point.c_w / 400)
    _check_variance(net[2].weight, point.c_w / 400)


def test_mixed_or_unknown_activations_are_refused_by_name():
    mixed = nn.Sequential(nn.Linear(4, 4), nn.Mish(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"Activation\('mish'\).*Activation\('tanh'\)"):
        critical_init_(mixed, seed=0)
    with pytest.raises(ValueError, match="Got '1: Hardtanh'"):
        critical_init_(nn.Sequential(nn.Linear(4, 4), nn.Hardtanh(), nn.Linear(4, 1)))

    class Square(nn.Module):
        def forward(self, x):
            return x * x

    with pytest.raises(ValueError, match="Got '1: Square'"):
        critical_init_(nn.Sequential(nn.Linear(4, 4), Square(), nn.Linear(4, 1)))


def test_identity_is_a_pass_through_and_a_linear_sequential_is_a_linear_net():
    net = nn.Sequential(nn.Linear(300, 300), nn.Identity(), nn.Linear(300, 300))
    critical_init_(net, seed=0)
    _check_variance(net[0].weight, 1.0 / 300)  # identity: C_w = 1, C_b = 0
    assert torch.all(net[0].bias == 0)
    relu = nn.Sequential(nn.Linear(300, 300), nn.ReLU(), nn.Identity(), nn.Linear(300, 300))
    critical_init_(relu, seed=0)  # Identity does not count as a second activation
    _check_variance(relu[0].weight, 2.0 / 300)
