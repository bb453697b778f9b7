"""Shared plumbing of the curvature operators: data batches and flat parameter vectors.

Inputs follow the project's one policy for a user's ``nn.Module``
(:mod:`dltheory.finite.model_function`): batch-first tensors of any shape, floating
inputs in the model's dtype, integer inputs (token ids) kept integer; the model is
evaluated with ``torch.func.functional_call`` on copies of its buffers, so no
measurement changes it; BatchNorm in train mode normalises with the statistics of the
batch it is given; Dropout in train mode is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .._checks import check_int, message
from ..finite.functional_model import FunctionalModel
from ..finite.model_function import check_no_random_modules, functional_buffers, model_inputs

Batch = tuple[torch.Tensor, torch.Tensor]


def as_batches(data: Any, model: nn.Module) -> list[Batch]:
    """``(inputs, targets)`` or an iterable of such pairs -> a non-empty list of batches.

    Inputs go through :func:`~dltheory.finite.model_function.model_inputs` (any
    batch-first shape; floating inputs in the model's dtype, integers kept); floating
    targets take the model's dtype, integer targets keep theirs; both move to the
    model's device.
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
        x, y = (torch.from_numpy(np.asarray(t)) if isinstance(t, np.ndarray) else t for t in pair)
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
        x = model_inputs("data inputs", x, model)
        if y.is_complex():
            raise TypeError(message("data targets", "real or integer", f"dtype {y.dtype}"))
        y = y.detach()
        if y.is_floating_point():
            y = y.to(dtype=x.dtype if x.is_floating_point() else _float_dtype(model))
            if not bool(torch.isfinite(y).all()):
                raise ValueError(
                    message("data targets", "finite (no NaN or inf)", "non-finite entries")
                )
        batches.append((x, y.to(device=x.device)))
    return batches


def _float_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def _is_pair(obj: Any) -> bool:
    return (
        isinstance(obj, tuple | list)
        and len(obj) == 2
        and all(isinstance(t, torch.Tensor | np.ndarray) for t in obj)
    )


class FlatParameters:
    """A model's trainable parameters as one flat vector theta, and back.

    ``functional_call(model, unflatten(theta), x)`` evaluates the model at theta, with
    copies of its buffers (:func:`~dltheory.finite.model_function.functional_buffers`).
    Tied parameters appear once (``named_parameters`` removes duplicates) and stay tied.
    """

    def __init__(self, model: Any) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(message("model", "a torch.nn.Module", type(model).__name__))
        check_no_random_modules(model)
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
        frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
        self.buffers = {**functional_buffers(model), **frozen}
        self.dim = int(self.theta.numel())
        # a parameter reached under two names (a module used twice, tied weights)
        every = list(model.named_parameters(remove_duplicate=False))
        self.tied = len(every) > len(list(model.named_parameters()))
        # calls go through FunctionalModel's slots: torch 2.13's functional_call with
        # tie_weights=True leaves a tied model's parameters swapped (changed) afterwards
        self._functional = FunctionalModel(model)
        self._functional.buffers = self.buffers

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat vector -> {name: tensor} in the model's parameter shapes."""
        chunks = torch.split(theta, self.sizes)
        return {n: c.view(s) for n, c, s in zip(self.names, chunks, self.shapes, strict=True)}

    def output_fn(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """theta -> model output on x (the model itself is never called)."""

        def f(theta: torch.Tensor) -> torch.Tensor:
            with _differentiable_attention():
                return self._functional._call(self.unflatten(theta), x)

        return f

    def output(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output on x at theta, without gradients or state changes."""
        with torch.no_grad():
            return self.output_fn(x)(self.theta)


@contextlib.contextmanager
def _differentiable_attention():
    """Attention by its math kernel, without nn.MultiheadAttention's fused fast path: the
    fused CPU kernels have neither second derivatives nor forward-mode derivatives."""
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)


_CROSS_ENTROPIES = (torch.nn.functional.cross_entropy, torch.nn.functional.nll_loss)


def check_targets(loss_fn: Any, output: torch.Tensor, batches: list[Batch]) -> None:
    """Class-index targets of a cross-entropy loss: integer, right shape, in range."""
    is_ce = loss_fn in _CROSS_ENTROPIES or isinstance(loss_fn, nn.CrossEntropyLoss | nn.NLLLoss)
    if not is_ce or output.ndim < 2:
        return
    C = output.shape[1]
    ignore = getattr(loss_fn, "ignore_index", -100)
    index_shape = (output.shape[0], *output.shape[2:])
    for _, y in batches:
        if y.is_floating_point():
            if y.shape[1:] != output.shape[1:]:
                raise ValueError(
                    message(
                        "data targets",
                        f"class indices or class probabilities of shape (n, {C}, ...)",
                        f"float targets of shape {tuple(y.shape)}",
                    )
                )
            continue
        if y.dtype == torch.bool:
            raise ValueError(
                message(
                    "data targets",
                    "integer class indices for cross-entropy",
                    "dtype torch.bool",
                    "Use y.long()",
                )
            )
        if y.shape[1:] != index_shape[1:]:
            raise ValueError(
                message(
                    "data targets",
                    f"class indices of shape (n, {', '.join(map(str, index_shape[1:]))})"
                    if len(index_shape) > 1
                    else "class indices of shape (n,)",
                    f"shape {tuple(y.shape)}",
                    "Drop the extra dimensions (e.g. y.squeeze(-1))",
                )
            )
        bad = ((y < 0) | (y >= C)) & (y != ignore)
        if bool(bad.any()):
            raise ValueError(
                message(
                    "data targets",
                    f"class indices in 0..{C - 1} (the model has {C} outputs)",
                    sorted(set(y[bad].tolist()))[:5],
                )
            )


def check_loss_fn(loss_fn: Any, output: torch.Tensor, target: torch.Tensor) -> None:
    """The loss must be callable and return a finite scalar tensor."""
    if not callable(loss_fn):
        raise TypeError(
            message("loss_fn", "a callable (output, target) -> scalar", type(loss_fn).__name__)
        )
    try:
        with torch.no_grad():
            value = loss_fn(output, target)
    except (RuntimeError, IndexError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            message(
                "loss_fn",
                "callable on (model output, targets)",
                f"{type(err).__name__}: {first}",
                "Check the targets' dtype and shape against the model's output "
                f"{tuple(output.shape)}",
            )
        ) from err
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


def prepare(model: Any, loss_fn: Any, data: Any) -> tuple[FlatParameters, list[Batch]]:
    """Validate a (model, loss_fn, data) triple once: flat parameters and checked batches."""
    flat = FlatParameters(model)
    batches = as_batches(data, model)
    x = batches[0][0]
    try:  # the one forward pass of the checks; a model that refuses x: one line
        out = flat.output(x)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            message(
                "data inputs",
                "inputs the model accepts",
                f"shape {tuple(x.shape)}",
                f"The model raised on {x.dtype} inputs: {first}",
            )
        ) from err
    check_targets(loss_fn, out, batches)
    check_loss_fn(loss_fn, out, batches[0][1])
    return flat, batches


def generator_from(seed: Any) -> torch.Generator:
    """A torch.Generator from an int seed, a Generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        gen = torch.Generator()
        gen.seed()
        return gen
    return torch.Generator().manual_seed(check_int("seed", seed))
