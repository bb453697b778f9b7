"""Coordinate check: size of every layer's activations, and of their change in training.

As microsoft/mup's coordinate check (Yang et al. 2022, "Tensor programs V", Fig. 5 and
App. D.1): train networks of several widths for a few steps and record, per layer,
the mean absolute coordinate of its output, mean |h_t|, and of its change,
mean |h_t - h_0|. In muP both stay flat in the width; in standard parametrisation
the change grows (the output's like the width, at a fixed learning rate); in NTK
parametrisation the hidden layers' change shrinks like width^(-1/2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import (
    as_float_tensor,
    check_bytes,
    check_choice,
    check_int,
    check_positive,
    check_widths,
    message,
)
from ..finite.model_function import check_no_random_modules, model_inputs
from ..finite.modules import FiniteDense
from ..spec.layers import Serial
from .trajectory import mse_loss

__all__ = ["CoordCheck", "coord_check"]


@dataclass(frozen=True)
class CoordCheck:
    """Per width, step and layer: mean |h| (``size``) and mean |h_t - h_0| (``change``).

    Attributes:
        widths: (W,) widths.
        layers: names of the recorded layers (dense layers, input to output).
        size, change: (W, steps + 1, n_layers) arrays, averaged over seeds.
    """

    widths: np.ndarray
    layers: tuple[str, ...]
    size: np.ndarray
    change: np.ndarray

    def slopes(self, step: int = -1, which: str = "change") -> np.ndarray:
        """Least-squares slope of log(value) against log(width), per layer, at ``step``."""
        which = check_choice("which", which, ("size", "change"))
        n_records = self.size.shape[1]
        step = check_int("step", step)
        if not -n_records <= step < n_records:
            raise ValueError(
                message("step", f"a recorded step index in [-{n_records}, {n_records - 1}]", step)
            )
        values = getattr(self, which)[:, step, :]
        logw = np.log(self.widths)
        return np.array(
            [
                np.polyfit(logw, np.log(np.maximum(values[:, j], 1e-300)), 1)[0]
                for j in range(values.shape[1])
            ]
        )

    def plot(self, title: str = ""):
        """One panel per step > 0: mean |h_t - h_0| against width, one line per layer."""
        import matplotlib.pyplot as plt

        steps = self.change.shape[1] - 1
        fig, axes = plt.subplots(1, steps, figsize=(3.2 * steps, 3), sharey=True, squeeze=False)
        for s, ax in enumerate(axes[0], start=1):
            for j, name in enumerate(self.layers):
                ax.loglog(self.widths, self.change[:, s, j], "o-", label=name)
            ax.set_title(f"{title} step {s}".strip())
            ax.set_xlabel("width")
        axes[0][0].set_ylabel("mean |h_t - h_0|")
        axes[0][-1].legend(fontsize=7)
        fig.tight_layout()
        return fig


#: the layers whose outputs are recorded: dense, convolution and embedding layers
RECORDED = (FiniteDense, nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding)


class _DTypeOnly(nn.Module):
    """A parameter-free stand-in carrying only a dtype, for input validation."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("anchor", torch.zeros((), dtype=dtype))


_DTYPE_ONLY = {d: _DTypeOnly(d) for d in (torch.float32, torch.float64)}


def _running_counts(names: list[str]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    out = []
    for n in names:
        counts[n] = counts.get(n, 0) + 1
        out.append((n, counts[n]))
    return out


def _seeds(seed: int, n: int) -> list[int]:
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def coord_check(
    spec_or_factory: Serial | Callable[[int, int], nn.Module],
    widths: Sequence[int],
    steps: int = 3,
    *,
    x: Any = None,
    y: Any = None,
    lr: float = 0.1,
    n_seeds: int = 3,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> CoordCheck:
    """Coordinate sizes of every dense layer's output across widths during GD.

    Args:
        spec_or_factory: a spec (sampled with ``spec.sample(width, seed=...)``) or a
            callable ``(width, seed) -> nn.Module``.
        widths: the widths to compare.
        steps: full-batch GD steps on the MSE L = 1/(2N) sum ||f - y||^2.
        x, y: data (default: 16 seeded standard-normal inputs of dimension 8 and
            targets of their first coordinate's sign). With a factory, ``x`` may be
            batch-first inputs of any shape and dtype (images, integer tokens), passed
            to the models as given; ``y`` (N, k) must then be given.

    Recorded layers: every ``nn.Linear``, ``FiniteDense``, ``nn.Conv1d/2d/3d`` and
    ``nn.Embedding`` (:data:`RECORDED`), in module order. The networks train in their
    own mode (BatchNorm in train mode uses batch statistics); Dropout in train mode is
    refused, since it would make |h_t - h_0| noise.
        lr: the global learning rate eta (the same at every width).
        n_seeds: networks averaged per width (independent spawned seeds).

    >>> from dltheory import MLP
    >>> cc = coord_check(MLP(2, "relu", c_w=2.0, parametrization="mup"), [32, 128], 1, n_seeds=1)
    >>> cc.size.shape
    (2, 2, 3)
    """
    widths = check_widths(widths, "widths")
    steps = check_int("steps", steps, minimum=1)
    lr = check_positive("lr", lr)
    n_seeds = check_int("n_seeds", n_seeds, minimum=1)
    # per width and seed, two records of (steps + 1) floats per layer; the seed list itself
    check_bytes("n_seeds", 256.0 * n_seeds, fix="Use fewer seeds")
    check_bytes("steps", 16.0 * len(widths) * n_seeds * (steps + 1), fix="Use fewer steps")
    if x is None:
        gen = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
        x = torch.randn(16, 8, generator=gen, dtype=dtype)
    x = model_inputs("x", x, _DTYPE_ONLY[dtype])
    if y is None:
        if x.ndim != 2 or not x.is_floating_point():
            raise ValueError(message("y", "given for inputs that are not (N, n_0) vectors", None))
        y = torch.sign(x[:, :1])
    y = as_float_tensor("y", y, dtype=dtype)
    if y.ndim == 1:
        y = y[:, None]
    if y.shape[0] != x.shape[0]:
        raise ValueError(message("y", f"targets with {x.shape[0]} rows", tuple(y.shape)))
    if isinstance(spec_or_factory, Serial):
        spec = spec_or_factory
        if x.ndim != 2:
            raise ValueError(message("x", "(N, n_0) inputs for a spec", f"shape {tuple(x.shape)}"))

        item = torch.empty((), dtype=dtype).element_size()
        for width in widths:  # the hidden weight matrices of the widest net
            hidden = width * width * max(spec.depth - 1, 0) + width * (x.shape[1] + y.shape[1] + 2)
            check_bytes("widths", float(item * hidden), fix="Use smaller widths")

        def factory(width: int, s: int) -> nn.Module:
            return spec.sample(width, in_dim=x.shape[1], seed=s, dtype=dtype)
    elif callable(spec_or_factory):
        factory = spec_or_factory
    else:
        raise TypeError(
            message(
                "spec_or_factory",
                "a Serial spec or a callable (width, seed) -> module",
                spec_or_factory,
            )
        )
    sizes, changes, names = [], [], None
    for width in widths:
        s_w, c_w = [], []
        for s in _seeds(seed, n_seeds):
            net = factory(width, s)
            if not isinstance(net, nn.Module):
                raise TypeError(
                    message("spec_or_factory", "a factory returning an nn.Module", type(net))
                )
            check_no_random_modules(net, "spec_or_factory(width, seed)")
            dense = [(n, m) for n, m in net.named_modules() if isinstance(m, RECORDED)]
            outs: list[tuple[str, torch.Tensor]] = []
            hooks = [
                m.register_forward_hook(
                    lambda _m, _i, o, acc=outs, name=n: acc.append((name, o.detach()))
                )
                for n, m in dense
            ]
            opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr)
            record = []
            try:
                for _ in range(steps + 1):
                    outs.clear()
                    out = net(x).reshape(x.shape[0], -1)
                    if out.shape != y.shape:
                        raise ValueError(
                            message("y", f"of the model's output shape {tuple(out.shape)}", y.shape)
                        )
                    loss = mse_loss(out, y)
                    record.append([h for _, h in outs])
                    if names is None:  # a layer used twice (shared weights) is recorded twice
                        names = tuple(
                            n if c == 1 else f"{n} (use {c})"
                            for n, c in _running_counts([n for n, _ in outs])
                        )
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            finally:
                for h in hooks:
                    h.remove()
            s_w.append([[float(h.abs().mean()) for h in r] for r in record])
            c_w.append(
                [
                    [float((h - h0).abs().mean()) for h, h0 in zip(r, record[0], strict=True)]
                    for r in record
                ]
            )
        sizes.append(np.mean(s_w, axis=0))
        changes.append(np.mean(c_w, axis=0))
    return CoordCheck(
        np.asarray(widths, dtype=np.float64), names or (), np.asarray(sizes), np.asarray(changes)
    )
