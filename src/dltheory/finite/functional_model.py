"""A user's ``nn.Module`` as a pure function f(theta; x) -> (N, k), per the measurement policy.

The policy (:mod:`dltheory.finite.model_function`): inputs batch-first of any shape and
dtype, passed to the model as given (integer token ids stay integer); parameters
detached; buffers copied (BatchNorm in train mode normalises with the batch's
statistics and updates nothing); random modules in train mode refused. Outputs of
shape (N,) count as k = 1 output, (N, d1, d2, ...) are flattened to (N, d1 d2 ...).

Shared (tied) parameters appear once in ``params`` (``named_parameters`` removes
duplicates), and every attribute slot that holds one (a module used twice is one slot;
``b.weight = a.weight`` is two) is bound to that entry, so derivatives with respect to
``params`` sum over all uses, as training does. (``functional_call(...,
tie_weights=True)`` swaps a module used twice in the same slot twice and restores the
wrong tensor, leaving functorch wrappers in the model: torch 2.13; hence the slots.)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from .._checks import message
from .model_function import (
    batch_norm_in_train_mode,
    check_no_random_modules,
    functional_buffers,
    model_inputs,
)

__all__ = ["FunctionalModel"]


@contextmanager
def _differentiable_attention():
    """Attention by differentiable kernels: scaled dot-product attention by its math
    kernel and ``nn.MultiheadAttention`` without its inference fast path. The fused CPU
    / flash kernels and the fast path have no forward-mode derivative (jvp), which
    NTK-vector and Hessian-vector products need; the values agree up to rounding."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)


class FunctionalModel:
    """``model`` as f(params, x) -> (N, k), with the project's measurement policy.

    Attributes:
        model: the module (never modified).
        params: name -> detached trainable parameter (tied ones once).
        buffers: name -> copy of each buffer (None for train-mode BatchNorm statistics).
        batch_norm: names of the BatchNorm modules in train mode; when non-empty,
            f(x_a) depends on the whole batch (``batched`` is True) and per-example
            tools differentiate the batched map f(X) instead.
        n_params: P, the number of trainable scalars.
    """

    def __init__(self, model: Any, name: str = "model") -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(message(name, "a torch.nn.Module", type(model).__name__))
        check_no_random_modules(model, name)
        self.model = model
        self.params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
        if not self.params:
            raise ValueError(
                message(name, "a module with trainable parameters", type(model).__name__)
            )
        self.buffers = functional_buffers(model)
        self.batch_norm = batch_norm_in_train_mode(model)
        self.batched = bool(self.batch_norm)
        self.names = list(self.params)
        # one name per (module, attribute) slot holding a trainable parameter
        canonical = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
        self._slots: dict[str, str] = {}
        seen: set[tuple[int, str]] = set()
        for name, p in model.named_parameters(remove_duplicate=False):
            owner, _, attr = name.rpartition(".")
            slot = (id(model.get_submodule(owner)), attr)
            if id(p) in canonical and slot not in seen:
                seen.add(slot)
                self._slots[name] = canonical[id(p)]
        self.shapes = [p.shape for p in self.params.values()]
        self.sizes = [p.numel() for p in self.params.values()]
        self.n_params = sum(self.sizes)
        # attention modules need the differentiable kernels (entering that context costs
        # about 0.5 ms a call, so only models with attention pay it)
        self._attention = any(
            isinstance(m, nn.MultiheadAttention) or "attention" in type(m).__name__.lower()
            for m in model.modules()
        )
        first = next(iter(self.params.values()))
        self.dtype, self.device = first.dtype, first.device

    def inputs(self, name: str, x: Any) -> torch.Tensor:
        """Batch-first inputs for the model (see :func:`model_inputs`)."""
        return model_inputs(name, x, self.model)

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self._call(params, x).reshape(x.shape[0], -1)

    def _call(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        bound = {slot: params[name] for slot, name in self._slots.items()}
        if not self._attention:
            try:
                return functional_call(self.model, (bound, self.buffers), (x,), tie_weights=False)
            except NotImplementedError as err:  # attention called functionally, seen now
                if "attention" not in str(err):
                    raise
                self._attention = True
        with _differentiable_attention():
            return functional_call(self.model, (bound, self.buffers), (x,), tie_weights=False)

    def outputs(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """f(x) (N, k) at the current parameters; a model error names ``name``."""
        try:
            with torch.no_grad():
                out = self._call(self.params, x)
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(
                message(
                    name,
                    "inputs the model accepts",
                    f"shape {tuple(x.shape)}",
                    f"The model raised on {x.dtype} inputs: {first}",
                )
            ) from err
        if not isinstance(out, torch.Tensor) or out.ndim == 0 or out.shape[0] != x.shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                message(
                    name,
                    f"inputs the model maps to one output row each ({x.shape[0]} rows)",
                    f"shape {tuple(x.shape)} -> output {got}",
                    "Only the leading dimension is the batch: add one (x[None] or x[:, None])",
                )
            )
        return out.reshape(x.shape[0], -1)

    # flat parameter vectors theta (P,), in ``named_parameters`` order
    def flat(self) -> torch.Tensor:
        """The current trainable parameters as one vector (P,)."""
        return torch.cat([p.reshape(-1) for p in self.params.values()])

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """A (P,) vector as a name -> tensor dict."""
        parts = torch.split(theta, self.sizes)
        return {n: t.reshape(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}

    def flatten(self, tensors: dict[str, torch.Tensor], lead: int = 0) -> torch.Tensor:
        """A name -> tensor dict whose entries have ``lead`` leading axes as (..., P)."""
        return torch.cat(
            [tensors[n].reshape(*tensors[n].shape[:lead], -1) for n in self.names], dim=-1
        )

    def flat_fn(self, x: torch.Tensor):
        """theta (P,) -> f(x; theta) flattened to (N k,)."""

        def fn(theta: torch.Tensor) -> torch.Tensor:
            return self(self.unflatten(theta), x).reshape(-1)

        return fn
