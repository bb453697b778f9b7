"""Residual and LayerNorm kernels: against neural-tangents and an independent NumPy recursion.

The neural-tangents matrices (``tests/data/nt_residual_layernorm.npz``) were made by
``benchmarks/peer_nt_residual.py reference`` (neural-tangents 0.6.5, jax 0.4.23, float64):
``FanOut(2)``, ``parallel(serial(Relu, Dense), Identity)``, ``FanInSum`` blocks and
``LayerNorm(axis=-1)`` (eps 1e-12, no affine pair). Its ReLU NTK carries a ~sqrt(eps)
relative error near the diagonal (the angle by arccos), hence 1e-8 against it.

The NumPy recursion below is written from the formulas alone: Cho & Saul's arc-cosine
maps for ReLU, K' = gamma^2 K + alpha^2 F(K) for a sum (Yang & Schoenholz 2017), and
LayerNorm as the per-input affine map (K_ab - m_a m_b) / sqrt((V_a + eps)(V_b + eps))
with m_a = sqrt(K_aa / 2 pi) after a ReLU; the affine pair adds K' + 1 to the NTK.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dltheory import spec_from_module
from dltheory.spec import Dense, LayerNorm, Nonlinearity, Residual, Serial

DATA = np.load(Path(__file__).parents[1] / "data" / "nt_residual_layernorm.npz")
X = torch.tensor(DATA["x"])
RELU = Nonlinearity("relu")


def dense(scale: float = 1.0, **kw) -> Dense:
    return Dense(2.0 * scale**2, 0.1 * scale**2, **kw)


def ln(**kw) -> LayerNorm:
    return LayerNorm(affine=False, eps=1e-12, **kw)


NT_SPECS = {
    "residual": Serial(dense(), *[Residual((RELU, dense()))] * 4, RELU, dense(width=1)),
    "residual_scaled": Serial(
        dense(), *[Residual((RELU, dense()), alpha=0.5)] * 4, RELU, dense(width=1)
    ),
    "layernorm": Serial(*[m for _ in range(4) for m in (dense(), ln(), RELU)], dense(width=1)),
    "preln": Serial(dense(), *[Residual((ln(), RELU, dense()))] * 4, ln(), RELU, dense(width=1)),
}


def relative(a: torch.Tensor, b: np.ndarray) -> float:
    b = torch.as_tensor(b)
    return float((a - b).abs().max() / b.abs().max())


BACKENDS = pytest.mark.parametrize("backend", ["auto", "torch"])  # fused loop, graph rules


@BACKENDS
@pytest.mark.parametrize("name", sorted(NT_SPECS))
def test_equals_neural_tangents(name, backend):
    k = NT_SPECS[name].kernel(X, backend=backend)
    assert relative(k.nngp, DATA[f"{name}_nngp"]) < 1e-8
    assert relative(k.ntk, DATA[f"{name}_ntk"]) < 1e-8


# An independent NumPy recursion ------------------------------------------------------------


class Np:
    """(K, Theta, mean) of a block of inputs; diagonals read from K."""

    def __init__(self, x: np.ndarray) -> None:
        self.k = x @ x.T / x.shape[1]
        self.t = np.zeros_like(self.k)
        self.m = None

    def copy(self) -> Np:
        out = Np.__new__(Np)
        out.k, out.t, out.m = self.k.copy(), self.t.copy(), None if self.m is None else self.m
        return out

    def dense(self, c_w: float, c_b: float) -> Np:
        self.t = c_b + c_w * self.k + c_w * self.t  # NTK parametrisation: lambda = (C_w, C_b)
        self.k = c_b + c_w * self.k
        self.m = None
        return self

    def relu(self) -> Np:
        d = np.sqrt(np.diag(self.k))
        cos = np.clip(self.k / np.outer(d, d), -1.0, 1.0)
        theta = np.arccos(cos)
        kk = np.outer(d, d) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * cos)
        np.fill_diagonal(kk, np.diag(self.k) / 2)
        dd = (np.pi - theta) / (2 * np.pi)
        np.fill_diagonal(dd, 0.5)
        self.t = dd * self.t
        self.m = d / np.sqrt(2 * np.pi)
        self.k = kk
        return self

    def layer_norm(self, eps: float, affine: bool) -> Np:
        m = np.zeros(len(self.k)) if self.m is None else self.m
        cov = self.k - np.outer(m, m)
        s = 1 / np.sqrt(np.diag(cov) + eps)
        self.k = cov * np.outer(s, s)
        self.t = self.t * np.outer(s, s) + (self.k + 1.0 if affine else 0.0)
        self.m = None
        return self

    def add(self, other: Np, gamma: float, alpha: float) -> Np:
        self.k = gamma**2 * self.k + alpha**2 * other.k
        self.t = gamma**2 * self.t + alpha**2 * other.t
        self.m = None if self.m is None else gamma * self.m
        return self


def numpy_residual(x, gamma, alpha, depth, c_w, c_b):
    """Dense, [h -> gamma h + alpha Dense(relu(h))] * depth, relu, Dense."""
    s = Np(x).dense(c_w, c_b)
    for _ in range(depth):
        s = s.add(s.copy().relu().dense(c_w, c_b), gamma, alpha)
    return s.relu().dense(c_w, c_b)


@BACKENDS
def test_residual_with_gamma_and_alpha_equals_numpy(backend):
    x = DATA["x"]
    spec = Serial(
        Dense(1.5, 0.2),
        *[Residual((RELU, Dense(1.5, 0.2)), alpha=0.6, gamma=0.8)] * 6,
        RELU,
        Dense(1.5, 0.2, width=1),
    )
    k = spec.kernel(X, backend=backend)
    ref = numpy_residual(x, 0.8, 0.6, 6, 1.5, 0.2)
    assert relative(k.nngp, ref.k) < 1e-12
    assert relative(k.ntk, ref.t) < 1e-12


@BACKENDS
def test_layer_norm_after_relu_subtracts_the_mean_and_adds_the_affine_ntk(backend):
    # Dense, relu, LayerNorm(affine) -- the mean sqrt(K / 2 pi) of relu is subtracted.
    x = DATA["x"]
    spec = Serial(
        *[m for _ in range(3) for m in (Dense(2.0, 0.1), RELU, LayerNorm(eps=1e-5))],
        Dense(2.0, 0.1, width=1),
    )
    k = spec.kernel(X, backend=backend)
    ref = Np(x)
    for _ in range(3):
        ref = ref.dense(2.0, 0.1).relu().layer_norm(1e-5, affine=True)
    ref = ref.dense(2.0, 0.1)
    assert relative(k.nngp, ref.k) < 1e-12
    assert relative(k.ntk, ref.t) < 1e-12


@BACKENDS
def test_sum_of_two_branches_and_pre_ln_blocks_equal_numpy(backend):
    # h -> 0.7 Dense(relu(LN h)) + 0.5 Dense(relu(h)): the skip arm is a branch too.
    x = DATA["x"]
    block = Residual(
        (LayerNorm(eps=1e-5), RELU, Dense(2.0, 0.1)),
        alpha=0.7,
        gamma=0.5,
        skip=(RELU, Dense(1.0, 0.3)),
    )
    spec = Serial(Dense(2.0, 0.1), block, block, RELU, Dense(2.0, 0.1, width=1))
    k = spec.kernel(X, backend=backend)
    s = Np(x).dense(2.0, 0.1)
    for _ in range(2):
        skip = s.copy().relu().dense(1.0, 0.3)
        branch = s.copy().layer_norm(1e-5, affine=True).relu().dense(2.0, 0.1)
        s = skip.add(branch, 0.5, 0.7)
    ref = s.relu().dense(2.0, 0.1)
    assert relative(k.nngp, ref.k) < 1e-12
    assert relative(k.ntk, ref.t) < 1e-12


@BACKENDS
def test_kernel_of_x1_x2_is_the_block_of_the_symmetric_one(backend):
    spec = NT_SPECS["preln"]
    full = spec.kernel(X, backend=backend)
    part = spec.kernel(X[:3], X[3:], backend=backend)
    torch.testing.assert_close(part.nngp, full.nngp[:3, 3:], rtol=1e-13, atol=0)
    torch.testing.assert_close(part.ntk, full.ntk[:3, 3:], rtol=1e-13, atol=0)


# Lifted by tracing: the same kernels -------------------------------------------------------


class Block(nn.Module):
    def __init__(self, width: int, pre_ln: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-12, elementwise_affine=False)
        self.fc = nn.Linear(width, width)
        self.pre_ln = pre_ln

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        u = self.norm(h) if self.pre_ln else h
        return h + self.fc(torch.relu(u))


class ResNet(nn.Module):
    """A plain module: a for-loop of residual blocks."""

    def __init__(self, width: int = 32, depth: int = 4, pre_ln: bool = False) -> None:
        super().__init__()
        self.inp = nn.Linear(5, width)
        self.blocks = nn.ModuleList([Block(width, pre_ln) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-12, elementwise_affine=False) if pre_ln else None
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h)
        if self.norm is not None:
            h = self.norm(h)
        return self.out(nn.functional.dropout(torch.relu(h), 0.1, self.training))


@pytest.mark.parametrize(("pre_ln", "name"), [(False, "residual"), (True, "preln")])
def test_traced_module_gives_the_neural_tangents_kernels(pre_ln, name):
    spec = spec_from_module(ResNet(pre_ln=pre_ln), c_w=2.0, c_b=0.1, parametrization="ntk")
    k = spec.kernel(X)
    assert relative(k.nngp, DATA[f"{name}_nngp"]) < 1e-8
    assert relative(k.ntk, DATA[f"{name}_ntk"]) < 1e-8


def test_traced_scaled_branch_is_alpha():
    class Scaled(Block):
        def forward(self, h):
            return h + self.fc(torch.relu(h)) * 0.5

    model = ResNet()
    model.blocks = nn.ModuleList([Scaled(32, False) for _ in range(4)])
    spec = spec_from_module(model, c_w=2.0, c_b=0.1, parametrization="ntk")
    assert {layer.alpha for layer in spec.layers if isinstance(layer, Residual)} == {0.5}
    k = spec.kernel(X)
    assert relative(k.nngp, DATA["residual_scaled_nngp"]) < 1e-8
    assert relative(k.ntk, DATA["residual_scaled_ntk"]) < 1e-8


# Refusals ----------------------------------------------------------------------------------


def test_activation_of_a_non_gaussian_representation_is_refused():
    spec = Serial(Dense(), RELU, LayerNorm(), RELU, Dense())
    with pytest.raises(ValueError) as info:
        spec.kernel(X)
    text = str(info.value)
    assert text.startswith("spec must be a network whose activations read Gaussian ")
    assert "\n" not in text


@pytest.mark.parametrize(
    "branch", [(RELU,), (Dense(), RELU), (Dense(), RELU, LayerNorm()), (LayerNorm(),)]
)
def test_branch_correlated_with_the_skip_is_refused(branch):
    with pytest.raises(ValueError) as info:
        Residual(branch)
    assert str(info.value).startswith("branch must be an arm whose output is independent ")


def test_empty_branch_is_refused():
    with pytest.raises(ValueError, match=r"^branch must be at least one layer\. Got \(\)\."):
        Residual(())
