"""Ensembles: many independent finite networks of one spec, sampled and run at once.

An :class:`Ensemble` is a recipe, not a pile of weights. Network ``i`` has its
own random stream, a torch generator seeded from
``numpy.random.SeedSequence(seed, spawn_key=(i,))`` (the i-th child of
``SeedSequence(seed).spawn``): its weights are drawn layer by layer from that
stream alone. So

* ensembles with different seeds never share a network (SeedSequence hashes the
  whole ``(seed, i)`` key; ``seed + i`` streams would make neighbouring seeds
  share all but one network), and ensembles with one seed and different sizes
  share their first networks;
* the same ``(spec, width, seed, dtype, device)`` gives the same network ``i``
  however the work is split: any ``batch_size``, thread count or number of
  processes (``dltheory.parallel``); :meth:`Ensemble.network` redraws one
  network only;
* networks are grouped in batches of ``batch_size`` (chosen so that a batch
  holds at most ``max_elements`` weights, independently of the machine); a
  batch's weights are drawn at once (one call per network), every layer of the
  forward pass is one batched matmul, and memory is bounded by one batch.

Initialisation is exactly :func:`dltheory.build_module`'s: W ~ N(0, C_w / n_{l-1}),
b ~ N(0, C_b) (the parametrisation changes the training dynamics, not the
function at initialisation); :meth:`Ensemble.network` returns network ``i`` as
a ``torch.nn.Sequential`` with the same weights, e.g. for
:func:`dltheory.empirical_ntk`.

Specs beyond the Dense / activation chain (conv, pooling, residual and LayerNorm layers)
are ensembles of :func:`dltheory.build_module` networks: network ``i`` is built from the
same generator ``network_generator(seed, i)``, so the same independence and
reproducibility hold; a batch runs its networks one after another on the whole input
batch (images (N, C, *pixels) as torch lays them out, or flat rows with ``input_shape``).
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
from .modules import ActivationModule, FiniteDense, build_module

__all__ = ["Ensemble", "EnsembleBatch", "ensemble", "network_generator"]

Weights = tuple[tuple[torch.Tensor, torch.Tensor] | None, ...]

_MAX_ELEMENTS = 1 << 24  # weights per batch: 64 MiB in float32
_PARALLEL_DRAW = 1 << 16  # draw a batch's layer in threads above this many numbers


def network_generator(seed: int, i: int, device: torch.device) -> torch.Generator:
    """The generator of network ``i``: seeded from ``SeedSequence(seed, spawn_key=(i,))``."""
    state = np.random.SeedSequence(seed, spawn_key=(i,)).generate_state(1, dtype=np.uint64)
    return torch.Generator(device=device).manual_seed(int(state[0]) & ((1 << 63) - 1))


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
        seed: the root seed; network i draws from ``SeedSequence(seed, spawn_key=(i,))``.
        batch_size: networks per batch (memory only: the draws do not depend on it).
        dtype, device: of the weights and outputs.
        input_shape: of flattened image rows (generic specs; None otherwise).
        width: the width of weight layers without their own (generic specs; None otherwise).
    """

    spec: Serial
    widths: tuple[int, ...]
    n_networks: int
    seed: int
    batch_size: int
    dtype: torch.dtype
    device: torch.device
    input_shape: tuple[int, ...] | None = None
    width: int | None = None

    @property
    def chain(self) -> bool:
        """Whether the spec is a Dense / activation chain (the batched-matmul path)."""
        return all(type(layer).chain_kind for layer in self.spec.layers)

    @property
    def n_batches(self) -> int:
        return -(-self.n_networks // self.batch_size)

    def _batch_range(self, k: int) -> tuple[int, int]:
        start = k * self.batch_size
        return start, min(start + self.batch_size, self.n_networks)

    def _generators(self, start: int, stop: int) -> list[torch.Generator]:
        """The generators of networks ``start .. stop - 1`` (see the module docstring)."""
        return [network_generator(self.seed, i, self.device) for i in range(start, stop)]

    def _draw(self, gens: list[torch.Generator], shape: tuple[int, ...]) -> torch.Tensor:
        """N(0, 1) of shape (len(gens), *shape): row r from generator r.

        Each network's numbers come from its own stream, so they do not depend on
        the batch or the thread count; on CPU large draws are spread over threads
        by networks (torch releases the GIL; one generator draws on one core).
        """
        out = torch.empty((len(gens), *shape), dtype=self.dtype, device=self.device)

        def fill(rows: range) -> None:
            for r in rows:
                out[r].normal_(generator=gens[r])

        threads = torch.get_num_threads()
        if self.device.type == "cpu" and threads > 1 and out.numel() >= _PARALLEL_DRAW:
            chunks = [range(j, len(gens), threads) for j in range(threads)]
            list(_pool().map(fill, chunks))
        else:
            fill(range(len(gens)))
        return out

    def _layers(
        self, gens: list[torch.Generator]
    ) -> Iterator[tuple[Any, tuple[torch.Tensor, torch.Tensor, float] | None]]:
        """Yield (layer, (omega, b, w_std)) in order for the networks of ``gens``.

        Each network draws all its standard normals in one call from its own
        stream (layer by layer: omega (n_l, n_{l-1}) then b (n_l,)), so a batch
        of many small networks costs one call per network; the layers are views
        into that (B, n_params) block. W = w_std * omega; the scale is applied
        to W h (n_l x N numbers) rather than to W, which saves a pass over the
        weights.
        """
        pairs = list(itertools.pairwise(self.widths))
        flat = self._draw(gens, (sum(a * b + b for a, b in pairs),))
        offset, dense = 0, 0
        for layer in self.spec.layers:
            if isinstance(layer, Nonlinearity):
                yield layer, None
                continue
            fan_in, fan_out = pairs[dense]
            omega = flat[:, offset : offset + fan_out * fan_in].view(-1, fan_out, fan_in)
            offset += fan_out * fan_in
            b = flat[:, offset : offset + fan_out].view(-1, fan_out, 1).mul_(math.sqrt(layer.c_b))
            offset += fan_out
            yield layer, (omega, b, math.sqrt(layer.c_w / fan_in))
            dense += 1

    def weights(self, k: int) -> Weights:
        """All weights of batch ``k``: per layer (W (B, n_l, n_{l-1}), b (B, n_l, 1)) or None."""
        k = check_int("k", k, minimum=0)
        if k >= self.n_batches:
            raise ValueError(message("k", f"a batch index < {self.n_batches}", k))
        if not self.chain:
            raise ValueError(
                message(
                    "ensemble",
                    "an ensemble of a Dense / activation chain for weights(k)",
                    "a spec with conv, pooling, residual or LayerNorm layers",
                    "Read network(i).parameters() instead",
                )
            )
        gens = self._generators(*self._batch_range(k))
        return tuple(None if p is None else (p[0].mul_(p[2]), p[1]) for _, p in self._layers(gens))

    def batches(self, x: Any, *, keep_preactivations: bool = False) -> Iterator[EnsembleBatch]:
        """Run every batch of networks on inputs ``x`` (N, n_0), one batch at a time.

        Memory: one batch's weights plus its activations (batch_size x N x n_l),
        whatever the ensemble size.
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
        :func:`dltheory.empirical_ntk`. Only network ``i``'s own stream is drawn.
        """
        i = check_int("i", i, minimum=0)
        if i >= self.n_networks:
            raise ValueError(message("i", f"a network index < {self.n_networks}", i))
        if not self.chain:
            return build_module(
                self.spec,
                self.width,
                in_dim=self.widths[0],
                generator=network_generator(self.seed, i, self.device),
                dtype=self.dtype,
                device=self.device,
                input_shape=self.input_shape,
            )
        # FiniteDense draws its own initial values; they are overwritten below. The
        # generator must live on the ensemble's device (a CPU one fails on CUDA).
        gen = torch.Generator(device=self.device).manual_seed(0)
        modules: list[nn.Module] = []
        for layer, params in self._layers(self._generators(i, i + 1)):
            if params is None:
                modules.append(ActivationModule(layer.activation))
                continue
            omega, b, w_std = params[0][0], params[1][0, :, 0], params[2]
            dense = FiniteDense(layer, omega.shape[1], omega.shape[0], gen, self.dtype, self.device)
            with torch.no_grad():
                dense.weight.copy_(omega.mul_(w_std / dense.w_mult))
                dense.bias.copy_(b.div_(dense.b_mult))
            modules.append(dense)
        return nn.Sequential(*modules)

    def _inputs(self, x: Any) -> torch.Tensor:
        ndim = 2 if self.chain or self.input_shape is not None else None
        x = as_float_tensor("x", x, ndim=ndim, dtype=self.dtype, device=self.device)
        if not self.chain and x.ndim < 2:
            raise ValueError(
                message("x", "a batch (N, C, *pixels) or (N, features)", f"shape {tuple(x.shape)}")
            )
        if not self.chain and self.input_shape is not None:
            size = math.prod(self.input_shape)
            if x.shape[1] != size:
                raise ValueError(
                    message(
                        "x",
                        f"rows of {size} features (flattened input_shape {self.input_shape})",
                        f"shape {tuple(x.shape)}",
                    )
                )
            return x
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
    def _run_modules(self, k: int, x: torch.Tensor, keep: bool) -> EnsembleBatch:
        """Batch ``k`` of a generic spec: its networks one by one (see the module docstring)."""
        from .conv import FiniteConv

        start, stop = self._batch_range(k)
        if self.input_shape is not None and self.spec.input_shape is None:
            x = x.reshape(len(x), *self.input_shape)  # flat rows: build_module reads images
        outputs, kept = [], []
        for i in range(start, stop):
            net = self.network(i)
            seen: list[torch.Tensor] = []
            hooks = [
                m.register_forward_hook(lambda _m, _a, out, seen=seen: seen.append(out))
                for m in net.modules()
                if keep and isinstance(m, FiniteDense | FiniteConv)
            ]
            outputs.append(net(x))
            for hook in hooks:
                hook.remove()
            kept.append(seen)
        pre = tuple(torch.stack(layer) for layer in zip(*kept, strict=True)) if keep else ()
        return EnsembleBatch(start, stop, pre, torch.stack(outputs))

    @torch.no_grad()
    def _run(self, k: int, x: torch.Tensor, keep: bool) -> EnsembleBatch:
        if not self.chain:
            return self._run_modules(k, x, keep)
        h = x.T.unsqueeze(0)  # (1, n_0, N): broadcast over the networks
        kept = []
        start, stop = self._batch_range(k)
        for layer, params in self._layers(self._generators(start, stop)):
            if params is None:
                h = layer.activation.fn(h)
                continue
            omega, b, w_std = params
            h = torch.bmm(omega, h) if h.shape[0] == omega.shape[0] else torch.matmul(omega, h)
            h = h.mul_(w_std).add_(b)
            if keep:
                kept.append(h.transpose(1, 2))
        return EnsembleBatch(start, stop, tuple(kept), h.transpose(1, 2))


def _widths(spec: Serial, width: int | None, in_dim: int) -> tuple[int, ...]:
    """(n_0, n_1, ...): features of the Dense layers (chains), or of every top-level
    weight layer (Dense width, Conv channels) and the default width last (generic specs)."""
    widths = [in_dim]
    chain = all(type(layer).chain_kind for layer in spec.layers)
    for layer in spec.layers:
        if not chain and type(layer).reads_input:
            own = getattr(layer, "width", getattr(layer, "channels", None))
            if own is None and width is None:
                raise ValueError(
                    message("width", "an integer >= 1 for the hidden layers", None, "Pass width=")
                )
            widths.append(own if own is not None else width)
            continue
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
    input_shape: tuple[int, ...] | None = None,
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
            ``max_elements`` weights (at least 1). The draws do not depend on it.
        max_elements: the weight budget of one batch when ``batch_size`` is None.
        input_shape: (C, H, W) or (C, L) of image inputs (default ``spec.input_shape``):
            needed when a Flatten follows conv layers; with it the networks read flat
            rows (N, C H W), as the spec's kernel does. Conv specs otherwise read images
            (N, C, *pixels), with ``in_dim`` the input channels (default: the first
            conv's ``in_channels``).

    >>> from dltheory import MLP
    >>> ens = ensemble(MLP(depth=2, activation="relu", c_w=2.0), width=64,
    ...                n_networks=500, in_dim=3, seed=0)
    >>> z = ens.forward(torch.ones(1, 3))  # (500, 1, 1)
    >>> abs(float(z.square().mean()) - 2.0) < 0.5  # K^(3) = 2 |x|^2 / n_0 = 2
    True
    """
    if not isinstance(spec, Serial):
        raise TypeError(message("spec", "a dltheory Serial/MLP spec", type(spec).__name__))
    spec.check_network()
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
    if input_shape is None:
        input_shape = getattr(spec, "input_shape", None)
    if input_shape is not None:
        input_shape = tuple(check_int("input_shape", n, minimum=1) for n in input_shape)
    if in_dim is None and input_shape is not None:
        in_dim = input_shape[0]
    if in_dim is None:
        in_dim = getattr(spec.layers[0], "in_channels", None)
    if in_dim is None:
        raise ValueError(message("in_dim", "an integer >= 1", None, "Pass in_dim="))
    n_networks = check_int("n_networks", n_networks, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(message("dtype", "a floating torch.dtype", dtype))
    device = torch.device(device if device is not None else "cpu")
    widths = _widths(spec, width, in_dim)
    chain = all(type(layer).chain_kind for layer in spec.layers)
    if batch_size is None and not chain:  # networks run one by one: batches group outputs
        batch_size = min(n_networks, 64)
    if batch_size is None:
        per_network = sum(a * b + b for a, b in itertools.pairwise(widths))
        max_elements = check_int("max_elements", max_elements, minimum=1)
        batch_size = max(1, min(n_networks, max_elements // per_network))
    batch_size = check_int("batch_size", batch_size, minimum=1)
    return Ensemble(
        spec, widths, n_networks, seed, batch_size, dtype, device,
        None if chain else input_shape, None if chain else width,
    )  # fmt: skip
