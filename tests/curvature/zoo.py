"""A small model zoo for the curvature tests (conv + BatchNorm, ResNet-style module,
transformer with a tied readout, Dropout MLP, GroupNorm conv net) and dense references."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


class ResNetStyle(nn.Module):
    """Conv stem, one residual block (skip + conv branch), global pooling, readout."""

    def __init__(self, width: int = 3, n_classes: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.stem(x))
        h = h + self.conv2(torch.tanh(self.conv1(h)))
        return self.head(h.mean((2, 3)))


class TinyTransformer(nn.Module):
    """Embedding, one self-attention block with LayerNorm, readout tied to the embedding."""

    def __init__(self, vocab: int = 5, d: int = 4, heads: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        a, _ = self.attn(h, h, h, need_weights=False)
        h = self.norm(h + a).mean(1)
        return h @ self.embed.weight.T  # logits over the vocabulary (tied readout)


def conv_bn() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.BatchNorm2d(3),
        nn.Tanh(),
        nn.AvgPool2d(4),
        nn.Flatten(),
        nn.Linear(12, 3),
    )
    bn = net[1]
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
        bn.num_batches_tracked.fill_(7)
    return net


def group_norm() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.GroupNorm(2, 4),
        nn.Tanh(),
        nn.AvgPool2d(4),
        nn.Flatten(),
        nn.Linear(16, 3),
    )


def dropout_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 5), nn.Tanh(), nn.Dropout(0.3), nn.Linear(5, 3)
    )


@dataclass
class Case:
    """A zoo model in a given dtype and mode with a batch and its loss."""

    name: str
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    loss_fn: object
    n_classes: int


BUILDERS = {
    "conv_bn": conv_bn,
    "resnet": ResNetStyle,
    "transformer": TinyTransformer,
    "dropout_mlp": dropout_mlp,
    "group_norm": group_norm,
}


def make_case(name: str, dtype: torch.dtype, train: bool = False, n: int = 12) -> Case:
    torch.manual_seed(0)
    model = BUILDERS[name]().to(dtype)
    model.train(train)
    g = torch.Generator().manual_seed(1)
    if name == "transformer":
        x = torch.randint(0, 5, (n, 3), generator=g)
        y = torch.randint(0, 5, (n,), generator=g)
        C = 5
    else:
        x = torch.randn(n, 1, 8, 8, generator=g, dtype=dtype)
        y = torch.randint(0, 3, (n,), generator=g)
        C = 3
    return Case(name, model, x, y, nn.functional.cross_entropy, C)


def dense_reference(case: Case):
    """(H, gradient, GGN) of the batched loss in float64, by torch.autograd.functional on
    a float64 deep copy called as an ordinary module (its own buffers; in train mode its
    BatchNorm normalises with the batch's statistics)."""
    model = copy.deepcopy(case.model).double()
    x = case.x.double() if case.x.is_floating_point() else case.x
    named = [(n, p) for n, p in model.named_parameters()]
    names = [n for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    theta0 = torch.cat([p.detach().reshape(-1) for _, p in named])

    def params(theta):
        return {
            n: c.view(s) for n, c, s in zip(names, torch.split(theta, sizes), shapes, strict=True)
        }

    def out_of(theta):
        return torch.func.functional_call(model, params(theta), (x,))

    def loss_of(theta):
        return case.loss_fn(out_of(theta), case.y)

    with sdpa_kernel(SDPBackend.MATH):  # the fused attention kernels have no 2nd derivative
        H = torch.autograd.functional.hessian(loss_of, theta0)
        theta = theta0.clone().requires_grad_()
        grad = torch.autograd.grad(loss_of(theta), theta)[0]
        J = torch.autograd.functional.jacobian(out_of, theta0)  # (n, C, P)
        out = out_of(theta0).detach()
    H_out = torch.autograd.functional.hessian(lambda o: case.loss_fn(o, case.y), out)
    Jf = J.reshape(out.numel(), -1)
    G = Jf.T @ H_out.reshape(out.numel(), out.numel()) @ Jf
    return H, grad, G
