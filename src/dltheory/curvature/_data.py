"""Shared plumbing of the curvature operators: data batches and flat parameter vectors."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from .._checks import check_int, message

Batch = tuple[torch.Tensor, torch.Tensor]


def as_batches(data: Any, dtype: torch.dtype, device: torch.device) -> list[Batch]:
    """``(inputs, targets)`` or an iterable of such pairs -> a non-empty list of batches.

    Floating inputs are cast to the parameters' dtype and device; targets keep their
    dtype (class indices stay integers) and move to the device.
    """
    if _is_pair(data):
        pairs = [data]
    elif isinstance(data, Iterable) and not isinstance(data, str | bytes | torch.Tensor):
        pairs = list(data)
    else:
        raise TypeError(
            message(
                "data",
                "a pair (inputs, targets) of tensors or an iterable of such pairs",
                type(data).__name__,
            )
        )
    if not pairs:
        raise ValueError(message("data", "non-empty", "no batches", "Pass at least one batch"))
    batches = []
    for i, pair in enumerate(pairs):
        if not _is_pair(pair):
            raise TypeError(
                message(f"data[{i}]", "a pair (inputs, targets) of tensors", type(pair).__name__)
            )
        x, y = pair
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError(
                message(
                    "data", "batches with at least one sample", f"inputs of shape {tuple(x.shape)}"
                )
            )
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(
                message(
                    "data",
                    "pairs whose inputs and targets have the same number of samples",
                    f"shapes {tuple(x.shape)} and {tuple(y.shape)}",
                )
            )
        if x.is_floating_point():
            x = x.to(dtype=dtype, device=device)
        else:
            x = x.to(device=device)
        y = y.to(dtype=dtype, device=device) if y.is_floating_point() else y.to(device=device)
        for name, t in (("inputs", x), ("targets", y)):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ValueError(
                    message(f"data {name}", "finite (no NaN or inf)", "non-finite entries")
                )
        batches.append((x, y))
    return batches


def _is_pair(obj: Any) -> bool:
    return (
        isinstance(obj, tuple | list)
        and len(obj) == 2
        and all(isinstance(t, torch.Tensor) for t in obj)
    )


class FlatParameters:
    """A model's trainable parameters as one flat vector theta, and back.

    ``functional_call(model, unflatten(theta), x)`` evaluates the model at theta.
    """

    def __init__(self, model: Any) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(message("model", "a torch.nn.Module", type(model).__name__))
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named or sum(p.numel() for _, p in named) == 0:
            raise ValueError(
                message(
                    "model",
                    "a torch.nn.Module with trainable parameters",
                    type(model).__name__,
                    "Curvature is taken with respect to parameters with requires_grad=True",
                )
            )
        dtypes = {p.dtype for _, p in named}
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
            raise TypeError(
                message(
                    "model",
                    "a module whose parameters share one floating dtype",
                    sorted(map(str, dtypes)),
                )
            )
        self.model = model
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.dtype = named[0][1].dtype
        self.device = named[0][1].device
        self.theta = torch.cat([p.detach().reshape(-1) for _, p in named])
        self.buffers = {n: b.detach() for n, b in model.named_buffers()}
        self.dim = int(self.theta.numel())

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat vector -> {name: tensor} in the model's parameter shapes."""
        chunks = torch.split(theta, self.sizes)
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes, strict=True)}

    def output_fn(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """theta -> model output on x."""

        def f(theta: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(
                self.model, (self.unflatten(theta), self.buffers), (x,)
            )

        return f


def check_loss_fn(loss_fn: Any, output: torch.Tensor, target: torch.Tensor) -> None:
    """The loss must be callable and return a finite scalar tensor."""
    if not callable(loss_fn):
        raise TypeError(
            message("loss_fn", "a callable (output, target) -> scalar", type(loss_fn).__name__)
        )
    with torch.no_grad():
        value = loss_fn(output, target)
    if not isinstance(value, torch.Tensor) or value.ndim != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(
            message(
                "loss_fn",
                "a callable returning a scalar tensor (the mean loss over the batch)",
                f"output of shape {shape}",
                "Use reduction='mean'",
            )
        )
    if not bool(torch.isfinite(value)):
        raise ValueError(message("loss_fn", "finite at the current parameters", float(value)))


def generator_from(seed: Any) -> torch.Generator:
    """A torch.Generator from an int seed, a Generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        gen = torch.Generator()
        gen.seed()
        return gen
    return torch.Generator().manual_seed(check_int("seed", seed))
