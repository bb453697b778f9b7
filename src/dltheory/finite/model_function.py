"""A user's ``nn.Module`` as the function the measurement tools differentiate.

One policy for every measurement (empirical NTK, Hessian, training trackers, ...):

* **Inputs** are batch-first tensors of any shape and dtype: only the leading
  dimension is the batch. Floating inputs take the model's floating dtype and device;
  integer inputs (token ids) stay integer; NumPy arrays are converted; tensors that
  require grad are detached.
* **State**: no measurement changes a model's parameters or buffers. The model is
  evaluated with ``torch.func.functional_call`` on detached parameters and copies of
  its buffers.
* **BatchNorm in train mode** is measured as the function it is: the batched map that
  normalises with the statistics of the batch it is given (running statistics are
  neither read nor updated). Its value on one sample depends on the whole batch, so
  per-example tools (an NTK built from per-sample Jacobians) refuse it unless they
  differentiate the batched map.
* **Random modules in train mode** (Dropout and its variants) are refused in one line
  naming the module, with ``model.eval()`` as the fix: a measurement is never silently
  random.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .._checks import message

__all__ = [
    "ModelState",
    "batch_norm_in_train_mode",
    "check_no_random_modules",
    "functional_buffers",
    "model_dtype_device",
    "model_inputs",
]

RANDOM_MODULES: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
_BATCH_NORMS = (nn.modules.batchnorm._BatchNorm,)


def model_dtype_device(model: nn.Module) -> tuple[torch.dtype | None, torch.device | None]:
    """The floating dtype and the device of the model's first parameter (or buffer)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype, t.device
    for t in list(model.parameters()) + list(model.buffers()):
        return None, t.device
    return None, None


def model_inputs(name: str, x: Any, model: nn.Module, *, min_rows: int = 1) -> torch.Tensor:
    """Batch-first inputs for ``model``: any shape, dtype kept unless floating.

    Floating inputs are cast to the model's floating dtype and moved to its device;
    integer and bool inputs keep their dtype (token ids, masks). Complex, object and
    string inputs, non-finite floating entries, 0-d inputs and fewer than ``min_rows``
    samples are refused in one line naming ``name``.
    """
    if isinstance(x, list | tuple):  # nested lists of numbers: an array at the edge
        x = np.asarray(x)
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(
                message(name, "a real or integer array", f"dtype {x.dtype}", "Convert it first")
            )
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise TypeError(message(name, "a torch.Tensor or NumPy array of inputs", type(x).__name__))
    if x.is_complex():
        raise TypeError(message(name, "a real or integer tensor", f"dtype {x.dtype}"))
    x = x.detach()
    if x.ndim == 0:
        raise ValueError(
            message(name, "batch-first inputs with at least one dimension", "a 0-d tensor")
        )
    if x.shape[0] < min_rows:
        raise ValueError(
            message(
                name,
                f"at least {min_rows} sample(s) in its leading dimension",
                f"shape {tuple(x.shape)}",
            )
        )
    dtype, device = model_dtype_device(model)
    if x.is_floating_point():
        x = x.to(dtype=dtype or x.dtype, device=device or x.device)
        if not bool(torch.isfinite(x).all()):
            raise ValueError(message(name, "finite (no NaN or inf)", "non-finite entries"))
    elif device is not None:
        x = x.to(device=device)
    return x


def check_no_random_modules(model: nn.Module, name: str = "model") -> None:
    """Refuse a model with a random module (Dropout, ...) in train mode."""
    for mod_name, module in model.named_modules():
        if isinstance(module, RANDOM_MODULES) and module.training and module.p > 0:
            where = mod_name or type(model).__name__
            raise ValueError(
                message(
                    name,
                    "free of random modules in train mode (measurements are deterministic)",
                    f"{type(module).__name__} at '{where}' in train mode",
                    "Call model.eval() to measure the network without dropout",
                )
            )


def batch_norm_in_train_mode(model: nn.Module) -> list[str]:
    """Names of the BatchNorm modules that normalise with batch statistics."""
    return [
        n or type(model).__name__
        for n, m in model.named_modules()
        if isinstance(m, _BATCH_NORMS)
        and (m.training or not m.track_running_stats or m.running_mean is None)
    ]


def functional_buffers(model: nn.Module) -> dict[str, torch.Tensor | None]:
    """Buffers to pass to ``functional_call``: copies, never the model's own.

    A BatchNorm in train mode gets ``None`` for its running statistics and batch
    counter, so it normalises with the batch's statistics and updates nothing.
    """
    skip: set[str] = set()
    for mod_name, module in model.named_modules():
        if isinstance(module, _BATCH_NORMS) and module.training:
            prefix = f"{mod_name}." if mod_name else ""
            skip.update(prefix + b for b in ("running_mean", "running_var", "num_batches_tracked"))
    return {n: (None if n in skip else b.detach().clone()) for n, b in model.named_buffers()}


@dataclass(frozen=True)
class ModelState:
    """A snapshot of a model's parameters, buffers and modes (to check nothing changed)."""

    tensors: dict[str, torch.Tensor]
    modes: dict[str, bool]
    identities: dict[str, int] = None  # type: ignore[assignment]

    @classmethod
    def of(cls, model: nn.Module) -> ModelState:
        named = list(model.named_parameters(remove_duplicate=False))
        tensors = {f"param:{n}": p.detach().clone() for n, p in named}
        tensors.update({f"buffer:{n}": b.detach().clone() for n, b in model.named_buffers()})
        modes = {n: m.training for n, m in model.named_modules()}
        # which object each slot holds: a measurement that swaps parameters (functional_call)
        # and restores the wrong object leaves equal values but a different tensor
        identities = {n: (id(p), isinstance(p, nn.Parameter)) for n, p in named}
        return cls(tensors, modes, identities)

    def changes(self, model: nn.Module) -> list[str]:
        """Names of the parameters, buffers or modes that differ from the snapshot."""
        now = ModelState.of(model)
        changed = [
            n
            for n in self.tensors.keys() | now.tensors.keys()
            if n not in self.tensors
            or n not in now.tensors
            or not _same(self.tensors[n], now.tensors[n])
        ]
        changed += [f"mode:{n}" for n in self.modes if now.modes.get(n) != self.modes[n]]
        changed += [
            f"identity:{n}" for n in self.identities if now.identities.get(n) != self.identities[n]
        ]
        return sorted(changed)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shapes, dtypes and entries (NaN equal to NaN)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.all((a == b) | (torch.isnan(a) & torch.isnan(b))))
    return torch.equal(a, b)
