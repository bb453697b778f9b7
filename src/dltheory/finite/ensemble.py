"""Ensembles: many independent finite networks of one spec, sampled and run at once.

An :class:`Ensemble` is a recipe, not a pile of weights: networks are grouped
in batches of ``batch_size``; batch ``k`` draws its weights layer by layer as
``(batch, n_l, n_{l-1})`` tensors from 8 generators seeded by ``(seed, k, j)``
(each fills a fixed block of rows, so CPU threads can draw them in parallel),
and every layer of the forward pass is one batched matmul. So

* memory is bounded by one batch (``batch_size`` is chosen so that a batch
  holds at most ``max_elements`` weights, independently of the machine), and
* the same ``(spec, width, n_networks, seed, batch_size, dtype, device)`` gives
  the same networks however the work is split, with any number of threads or
  processes (``dltheory.parallel``). Ensembles that differ in size (the default
  batch size depends on it, and a partial last batch draws fewer rows), dtype
  or device are different draws.

Initialisation is exactly :func:`dltheory.build_module`'s: W ~ N(0, C_w / n_{l-1}),
b ~ N(0, C_b) (the parametrisation changes the training dynamics, not the
function at initialisation); :meth:`Ensemble.network` returns network ``i`` as
a ``torch.nn.Sequential`` with the same weights, e.g. for
:func:`dltheory.empirical_ntk`.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import as_float_tensor, check_int, message
from ..spec.layers import Dense, Nonlinearity, Serial
from .modules import ActivationModule, FiniteDense

__all__ = ["Ensemble", "EnsembleBatch", "ensemble"]

Weights = tuple[tuple[torch.Tensor, torch.Tensor] | None, ...]

_MAX_ELEMENTS = 1 << 24  # weights per batch: 64 MiB in float32
_STREAMS = 8  # generators per batch (part of the random stream's definition)


@functools.lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()))


@dataclass(frozen=True)
class EnsembleBatch:
    """Networks ``start .. stop - 1`` of an ensemble evaluated on inputs x (N, n_0).

    Attributes:
        start, stop: the networks' indices in the ensemble.
        preactivations: one (stop - start, N, n_l) tensor per Dense layer
            (z^(1), ..., z^(L+1)); empty unless asked for.
        output: (stop - start, N, out), the last Dense layer's z^(L+1).
    """

    start: int
    stop: int
    preactivations: tuple[torch.Tensor, ...]
    output: torch.Tensor


@dataclass(frozen=True)
class Ensemble:
    """``n_networks`` independent finite networks of ``spec`` (see the module docstring).

    Build it with :func:`ensemble`.

    Attributes:
        spec: the architecture.
        widths: (n_0, n_1, ..., n_{L+1}) features of every Dense layer's input and output.
        n_networks: the ensemble size E.
        seed: the root seed; batch k draws from ``SeedSequence([seed, k, j])``, j < 8.
        batch_size: networks per batch (part of the random stream's definition).
        dtype, device: of the weights and outputs.
    """

    spec: Serial
    widths: tuple[int, ...]
    n_networks: int
    seed: int
    batch_size: int
    dtype: torch.dtype
    device: torch.device

    @property
    def n_batches(self) -> int:
        return -(-self.n_networks // self.batch_size)

    def _batch_range(self, k: int) -> tuple[int, int]:
        start = k * self.batch_size
        return start, min(start + self.batch_size, self.n_networks)

    def _generators(self, k: int) -> list[torch.Generator]:
        """The _STREAMS generators of batch k, seeded by SeedSequence([seed, k, j])."""
        gens = []
        for j in range(_STREAMS):
            sequence = np.random.SeedSequence([self.seed, k, j])
            gen = torch.Generator(device=self.device)
            gen.manual_seed(int(sequence.generate_state(1, dtype=np.uint64)[0]) & ((1 << 63) - 1))
            gens.append(gen)
        return gens

    def _draw(self, gens: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
        """N(0, 1) of ``shape``: its rows (all but the last axis) split in _STREAMS blocks.

        Block j comes from generator j, so the values do not depend on how many
        threads draw them; on CPU the blocks are drawn in parallel threads
        (torch releases the GIL; one generator alone draws on one core).
        """
        out = torch.empty(shape, dtype=self.dtype, device=self.device)
        rows = out.view(-1, shape[-1])
        edges = np.linspace(0, rows.shape[0], _STREAMS + 1).astype(int)
        blocks = [
            (rows[a:b], g) for a, b, g in zip(edges[:-1], edges[1:], gens, strict=True) if b > a
        ]
        if self.device.type == "cpu" and torch.get_num_threads() > 1 and out.numel() >= 1 << 16:
            list(_pool().map(lambda block: block[0].normal_(generator=block[1]), blocks))
        else:
            for block, gen in blocks:
                block.normal_(generator=gen)
        return out

    def _layers(
        self, k: int
    ) -> Iterator[tuple[Any, tuple[torch.Tensor, torch.Tensor, float] | None]]:
        """Yield (layer, (omega, b, w_std)) of batch k in order, drawing each Dense layer.

        W = w_std * omega with omega ~ N(0, 1) (B, n_l, n_{l-1}); the scale is
        applied to W h (n_l x N numbers) rather than to W, which saves a pass
        over the weights.
        """
        start, stop = self._batch_range(k)
        gens, size, fan_in, dense = self._generators(k), stop - start, self.widths[0], 0
        for layer in self.spec.layers:
            if isinstance(layer, Nonlinearity):
                yield layer, None
                continue
            fan_out = self.widths[dense + 1]
            omega = self._draw(gens, (size, fan_out, fan_in))
            b = self._draw(gens, (size, fan_out, 1)).mul_(math.sqrt(layer.c_b))
            yield layer, (omega, b, math.sqrt(layer.c_w / fan_in))
            fan_in, dense = fan_out, dense + 1

    def weights(self, k: int) -> Weights:
        """All weights of batch ``k``: per layer (W (B, n_l, n_{l-1}), b (B, n_l, 1)) or None."""
        k = check_int("k", k, minimum=0)
        if k >= self.n_batches:
            raise ValueError(message("k", f"a batch index < {self.n_batches}", k))
        return tuple(None if p is None else (p[0].mul_(p[2]), p[1]) for _, p in self._layers(k))

    def batches(self, x: Any, *, keep_preactivations: bool = False) -> Iterator[EnsembleBatch]:
        """Run every batch of networks on inputs ``x`` (N, n_0), one batch at a time.

        Memory: one batch's weights of one layer plus its activations
        (batch_size x N x n_l), whatever the ensemble size.
        """
        x = self._inputs(x)
        for k in range(self.n_batches):
            yield self._run(k, x, keep_preactivations)

    def forward(self, x: Any) -> torch.Tensor:
        """Outputs (E, N, out) of every network on inputs x (N, n_0)."""
        return torch.cat([batch.output for batch in self.batches(x)])

    def preactivations(self, x: Any) -> list[torch.Tensor]:
        """z^(1), ..., z^(L+1) of every network: one (E, N, n_l) tensor per Dense layer."""
        parts = [b.preactivations for b in self.batches(x, keep_preactivations=True)]
        return [torch.cat(layer) for layer in zip(*parts, strict=True)]

    def network(self, i: int) -> nn.Sequential:
        """Network ``i`` as a ``torch.nn.Sequential`` of the spec's finite modules.

        Its parameters are this ensemble's weights (so its outputs match
        :meth:`forward`), with the spec's parametrisation for training and
        :func:`dltheory.empirical_ntk`.
        """
        i = check_int("i", i, minimum=0)
        if i >= self.n_networks:
            raise ValueError(message("i", f"a network index < {self.n_networks}", i))
        k, row = divmod(i, self.batch_size)
        gen = torch.Generator().manual_seed(0)  # replaced below; FiniteDense needs one
        modules: list[nn.Module] = []
        for layer, params in self._layers(k):
            if params is None:
                modules.append(ActivationModule(layer.activation))
                continue
            w, b = params[0][row] * params[2], params[1][row, :, 0]
            dense = FiniteDense(layer, w.shape[1], w.shape[0], gen, self.dtype, self.device)
            with torch.no_grad():
                dense.weight.copy_(w / dense.w_mult)
                dense.bias.copy_(b / dense.b_mult)
            modules.append(dense)
        return nn.Sequential(*modules)

    def _inputs(self, x: Any) -> torch.Tensor:
        x = as_float_tensor("x", x, ndim=2, dtype=self.dtype, device=self.device)
        if x.shape[1] != self.widths[0]:
            raise ValueError(
                message(
                    "x",
                    f"inputs with n_0 = {self.widths[0]} features (the ensemble's in_dim)",
                    f"shape {tuple(x.shape)}",
                )
            )
        return x

    @torch.no_grad()
    def _run(self, k: int, x: torch.Tensor, keep: bool) -> EnsembleBatch:
        h = x.T.unsqueeze(0)  # (1, n_0, N): broadcast over the networks
        kept = []
        for layer, params in self._layers(k):
            if params is None:
                h = layer.activation.fn(h)
                continue
            omega, b, w_std = params
            h = torch.bmm(omega, h) if h.shape[0] == omega.shape[0] else torch.matmul(omega, h)
            h = h.mul_(w_std).add_(b)
            if keep:
                kept.append(h.transpose(1, 2))
        start, stop = self._batch_range(k)
        return EnsembleBatch(start, stop, tuple(kept), h.transpose(1, 2))


def _widths(spec: Serial, width: int | None, in_dim: int) -> tuple[int, ...]:
    widths = [in_dim]
    for layer in spec.layers:
        if isinstance(layer, Dense):
            out = layer.width if layer.width is not None else width
            if out is None:
                raise ValueError(
                    message("width", "an integer >= 1 for the hidden layers", None, "Pass width=")
                )
            widths.append(out)
    return tuple(widths)


def ensemble(
    spec: Serial,
    width: int | None = None,
    n_networks: int = 100,
    *,
    seed: int = 0,
    in_dim: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
    max_elements: int = _MAX_ELEMENTS,
) -> Ensemble:
    """An ensemble of ``n_networks`` independent finite networks of ``spec``.

    Args:
        spec: the architecture (``MLP(...)`` or a ``Serial``).
        width: width of the hidden Dense layers (default ``spec.width``).
        n_networks: the ensemble size E.
        seed: root seed (>= 0).
        in_dim: input features n_0 (default ``spec.in_dim``).
        dtype, device: of weights and outputs (any floating dtype; CPU or GPU).
        batch_size: networks drawn and run together; default: as many as fit in
            ``max_elements`` weights (at least 1). It is part of the random
            stream (see the module docstring).
        max_elements: the weight budget of one batch when ``batch_size`` is None.

    >>> from dltheory import MLP
    >>> ens = ensemble(MLP(depth=2, activation="relu", c_w=2.0), width=64,
    ...                n_networks=500, in_dim=3, seed=0)
    >>> z = ens.forward(torch.ones(1, 3))  # (500, 1, 1)
    >>> abs(float(z.square().mean()) - 2.0) < 0.5  # K^(3) = 2 |x|^2 / n_0 = 2
    True
    """
    if not isinstance(spec, Serial):
        raise TypeError(message("spec", "a dltheory Serial/MLP spec", type(spec).__name__))
    for layer in spec.layers:
        if getattr(layer, "parametrization", "ntk") in ("mean_field", "mup"):
            raise ValueError(
                message(
                    "spec",
                    "in 'ntk' or 'standard' parametrisation for an ensemble",
                    layer.parametrization,
                    "Its readout variance C_w / n^2 differs; sample with spec.sample(...)",
                )
            )
    width = spec.width if width is None else check_int("width", width, minimum=1)
    in_dim = spec.in_dim if in_dim is None else check_int("in_dim", in_dim, minimum=1)
    if in_dim is None:
        raise ValueError(message("in_dim", "an integer >= 1", None, "Pass in_dim="))
    n_networks = check_int("n_networks", n_networks, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(message("dtype", "a floating torch.dtype", dtype))
    device = torch.device(device if device is not None else "cpu")
    widths = _widths(spec, width, in_dim)
    if batch_size is None:
        per_network = sum(a * b + b for a, b in itertools.pairwise(widths))
        max_elements = check_int("max_elements", max_elements, minimum=1)
        batch_size = max(1, min(n_networks, max_elements // per_network))
    batch_size = check_int("batch_size", batch_size, minimum=1)
    return Ensemble(spec, widths, n_networks, seed, batch_size, dtype, device)
