"""Shared fixtures: the case grid (activations x depths x seeds) and small inputs.

Activations with a closed-form Gaussian dual are cheap everywhere; quadrature
ones (Mehler series) cost ~0.1 s a kernel, so tests use few of them.
"""

from __future__ import annotations

import pytest
import torch

CLOSED_FORM = ("relu", "leaky_relu", "abs", "erf", "sin", "cos", "identity", "step", "sign")
QUADRATURE = ("tanh", "gelu")
DEPTHS = (1, 3)
SEEDS = (0, 1)


@pytest.fixture(params=CLOSED_FORM)
def closed_form_activation(request: pytest.FixtureRequest) -> str:
    """Each registered activation with closed-form Gaussian maps."""
    return request.param


@pytest.fixture(params=QUADRATURE)
def quadrature_activation(request: pytest.FixtureRequest) -> str:
    """A few activations whose Gaussian maps come from quadrature."""
    return request.param


@pytest.fixture(params=DEPTHS)
def depth(request: pytest.FixtureRequest) -> int:
    """Hidden-layer counts L of the case grid."""
    return request.param


@pytest.fixture(params=SEEDS)
def seed(request: pytest.FixtureRequest) -> int:
    """Seeds of the case grid."""
    return request.param


@pytest.fixture
def inputs() -> torch.Tensor:
    """Five float64 inputs in R^3: generic directions, one repeated, one negated."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(3, 3, generator=g, dtype=torch.float64)
    return torch.cat([x, x[:1], -x[1:2]])


# ---------------------------------------------------------------------------------------
# The model zoo: the nn.Modules practitioners bring (conv + BatchNorm, a ResNet-style
# module, a small transformer on integer tokens, a Dropout MLP, GroupNorm, tied weights).
# Every public measurement function is run on every entry, in float32 and float64, in
# train and eval mode, against dense torch.func references (small sizes: tests stay fast).
# ---------------------------------------------------------------------------------------


class ConvBN(torch.nn.Sequential):
    """Conv2d + BatchNorm2d + ReLU + average pooling + Linear on (N, 1, 8, 8) images."""

    def __init__(self, out: int = 3) -> None:
        super().__init__(
            torch.nn.Conv2d(1, 4, 3, padding=1),
            torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(),
            torch.nn.AvgPool2d(2),
            torch.nn.Flatten(),
            torch.nn.Linear(4 * 16, out),
        )


class TinyResNet(torch.nn.Module):
    """A ResNet-style module (not a Sequential): stem, one residual block, pooled head."""

    def __init__(self, out: int = 3) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.stem(x))
        h = h + self.conv2(torch.tanh(self.conv1(h)))  # the skip connection
        return self.head(torch.nn.functional.adaptive_avg_pool2d(h, 1).flatten(1))


class TinyTransformer(torch.nn.Module):
    """Embedding, one self-attention block with LayerNorm, readout tied to the embedding."""

    def __init__(self, vocab: int = 7, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim)
        self.attn = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm = torch.nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)
        h = self.norm(h + self.attn(h, h, h, need_weights=False)[0])
        return h.mean(1) @ self.embed.weight.T  # (N, vocab): the tied readout


class TiedMLP(torch.nn.Sequential):
    """One nn.Linear used twice in a Sequential (shared weights)."""

    def __init__(self) -> None:
        shared = torch.nn.Linear(5, 5)
        super().__init__(
            torch.nn.Linear(3, 5), torch.nn.Tanh(), shared, torch.nn.Tanh(), shared,
            torch.nn.Tanh(), torch.nn.Linear(5, 2),
        )  # fmt: skip


def _dropout_mlp() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Dropout(0.25), torch.nn.Linear(12, 2)
    )


def _groupnorm_conv() -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.GroupNorm(2, 4),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 36, 2),
    )


def _images(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64)


def _tokens(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 7, (n, 5), generator=g)


def _vectors(d: int):
    return lambda n, g: torch.randn(n, d, generator=g, dtype=torch.float64)


#: name -> (builder, input sampler (n, generator) -> x, number of outputs k)
ZOO = {
    "conv_bn": (ConvBN, _images, 3),
    "resnet": (TinyResNet, _images, 3),
    "transformer": (TinyTransformer, _tokens, 7),
    "dropout_mlp": (_dropout_mlp, _vectors(6), 2),
    "groupnorm_conv": (_groupnorm_conv, _images, 2),
    "tied_mlp": (TiedMLP, _vectors(3), 2),
}


class ZooCase:
    """One zoo model in one dtype and mode, with inputs: ``case.model``, ``case.x(n)``."""

    def __init__(self, name: str, dtype: torch.dtype, mode: str) -> None:
        builder, self._sample, self.k = ZOO[name]
        torch.manual_seed(0)
        self.name, self.dtype, self.mode = name, dtype, mode
        self.model = builder().to(dtype)
        self.model.train(mode == "train")
        # eval-mode BatchNorm: non-trivial running statistics, as after training
        with torch.no_grad():
            for m in self.model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.3, 0.3)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)
        self.random = name == "dropout_mlp" and mode == "train"
        self.batched = name == "conv_bn" and mode == "train"
        self.integer = name == "transformer"

    def x(self, n: int = 4, seed: int = 0) -> torch.Tensor:
        """n inputs: float64 images / vectors (cast by the tools) or int64 tokens."""
        return self._sample(n, torch.Generator().manual_seed(seed))

    def __repr__(self) -> str:
        return f"{self.name}-{self.mode}-{str(self.dtype)[6:]}"


ZOO_CASES = [
    (name, dtype, mode)
    for name in ZOO
    for dtype in (torch.float32, torch.float64)
    for mode in ("train", "eval")
]


@pytest.fixture(params=ZOO_CASES, ids=lambda c: f"{c[0]}-{c[2]}-{str(c[1])[6:]}")
def zoo(request: pytest.FixtureRequest) -> ZooCase:
    """Every zoo model x (float32, float64) x (train, eval mode)."""
    return ZooCase(*request.param)


@pytest.fixture(
    params=[c for c in ZOO_CASES if c[1] == torch.float64], ids=lambda c: f"{c[0]}-{c[2]}"
)
def zoo64(request: pytest.FixtureRequest) -> ZooCase:
    """Every zoo model in float64, train and eval mode (for the costlier checks)."""
    return ZooCase(*request.param)
