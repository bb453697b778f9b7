"""``train``: gradient descent / SGD / Adam on a real model, with trackers.

Loss normalisation: ``loss="mse"`` is L(theta) = 1/(2N) sum_i ||f(x_i) - y_i||^2, so
full-batch GD on the linearisation reads f_{t+1} - y = (I - (eta/N) Theta)(f_t - y)
and is stable iff eta < 2N / lambda_max(Theta) = 2 / lambda_max(GGN).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .._checks import (
    as_float_tensor,
    check_bytes,
    check_choice,
    check_int,
    check_positive,
    message,
)
from ..finite.model_function import functional_buffers, model_inputs
from .trackers import resolve_trackers
from .trajectory import Divergence, TrainState, Trajectory, mse_loss

__all__ = ["train"]

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": mse_loss,
    "cross_entropy": lambda out, target: nn.functional.cross_entropy(out, target),
}


def _progress(enabled: bool, steps: int):
    if not enabled:
        return None
    from rich.progress import Progress

    bar = Progress(transient=False)
    bar.start()
    return bar, bar.add_task("training", total=steps)


def _record(trackers, state) -> dict[str, np.ndarray]:
    row = {}
    for tracker in trackers:
        value = tracker(state)
        if isinstance(value, torch.Tensor):
            value = value.detach().to("cpu", torch.float64).numpy()
        row[tracker.name] = np.asarray(value, dtype=np.float64)
    return row


def _measure(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(x) without gradients and without touching its buffers (BatchNorm in train
    mode uses the batch's statistics and updates nothing)."""
    with torch.no_grad():
        return functional_call(model, functional_buffers(model), (x,), tie_weights=False)


def train(
    model: nn.Module,
    x: Any,
    y: Any,
    *,
    loss: Literal["mse", "cross_entropy"] | Callable = "mse",
    optimizer: Literal["gd", "sgd", "adam"] = "gd",
    lr: float,
    steps: int,
    batch_size: int | None = None,
    track: Any = ("loss",),
    every: int = 1,
    progress: bool = False,
    seed: int | None = None,
    divergence_factor: float = 1e8,
) -> Trajectory:
    """Train ``model`` in place on (x, y) and record trackers every ``every`` steps.

    Loss ``"mse"``: L = 1/(2N) sum_i ||f(x_i) - y_i||^2 (GD on its linearisation is
    stable iff lr < 2N / lambda_max(Theta)); ``"cross_entropy"``: mean cross-entropy
    with integer class targets; or any ``(output, target) -> scalar`` callable.
    ``"gd"`` is full-batch gradient descent (``batch_size=None``); ``"sgd"`` draws
    mini-batches of ``batch_size`` without replacement each epoch from ``seed``;
    ``"adam"`` is ``torch.optim.Adam`` (full batch unless ``batch_size`` is given).

    Inputs ``x`` are batch-first of any shape and dtype ((N, n_0), images
    (N, C, H, W), integer tokens (N, T)); only the leading dimension is the batch and
    x goes to the model as given (floating inputs in the model's dtype). The model
    trains in its own mode (BatchNorm in train mode updates its running statistics
    once per optimizer step, Dropout draws its masks); trackers measure without
    touching parameters or buffers (see :mod:`dltheory.finite.model_function`).

    Trackers (see :mod:`dltheory.dynamics.trackers`) run at step 0, every ``every``
    steps and at the last step, on a :class:`TrainState`. Cost per recorded step:
    ``"loss"`` free; ``"weight_movement"`` O(P); ``"ntk_lambda_max"`` /
    ``"ntk_lambda_min"`` a Lanczos run on NTK-vector products warm-started from the
    previous eigenvector (each product about 3 forward passes over x; typically
    5-30 products for lambda_max, up to min(N k, 300) for lambda_min), memory
    O(N k + P); ``"ntk_drift"`` and ``"linearized_distance"`` a full NTK
    (see :func:`dltheory.empirical_ntk`), memory (N k)^2. The run stops as soon as
    the full-batch loss is non-finite or exceeds ``divergence_factor`` times its
    initial value (or a parameter becomes non-finite); the trajectory then says so
    (``diverged``, ``divergence = (step, reason)``) and holds only finite values.

    >>> net = torch.nn.Linear(1, 1, bias=False).double()
    >>> with torch.no_grad():
    ...     _ = net.weight.fill_(0.0)
    >>> x = torch.ones(4, 1, dtype=torch.float64)
    >>> traj = train(net, x, 2 * x, lr=0.5, steps=1)
    >>> traj.values["loss"].tolist()   # 1/(2N) sum (0 - 2)^2 = 2, then w = 1: 0.5
    [2.0, 0.5]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(message("model", "a torch.nn.Module", type(model).__name__))
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(message("model", "a module with trainable parameters", model))
    optimizer = check_choice("optimizer", optimizer, ("gd", "sgd", "adam"))
    lr = check_positive("lr", lr)
    steps = check_int("steps", steps, minimum=0)
    every = check_int("every", every, minimum=1)
    # the records (step and loss at least) are kept in memory: refuse what cannot be kept
    check_bytes("steps", 16.0 * (steps // every + 2), fix="Use fewer steps or a larger every")
    divergence_factor = check_positive("divergence_factor", divergence_factor)
    if callable(loss) and not isinstance(loss, str):
        loss_fn, loss_name = loss, "custom"
    else:
        loss_name = check_choice("loss", loss, tuple(LOSSES))
        loss_fn = LOSSES[loss_name]
    dtype, device = params[0].dtype, params[0].device
    x = model_inputs("x", x, model)
    n = x.shape[0]
    if loss_name == "cross_entropy":
        y = torch.as_tensor(y, device=device)
        if y.dtype.is_floating_point or y.shape != (n,):
            raise ValueError(
                message("y", f"integer class labels of shape ({n},)", f"{y.dtype} {tuple(y.shape)}")
            )
    else:
        y = as_float_tensor("y", y, dtype=dtype, device=device)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(
                message("y", f"targets with {n} rows, (N,) or (N, k)", f"shape {tuple(y.shape)}")
            )
    try:
        out = _measure(model, x)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            message("x", "inputs the model accepts", f"shape {tuple(x.shape)}", first)
        ) from err
    if loss_name == "mse" and out.shape != y.shape and y.numel() == out.numel():
        y = y.reshape(out.shape)  # e.g. (N,) outputs with (N,) targets
    if loss_name == "mse" and out.shape != y.shape:
        raise ValueError(
            message("y", f"of the model's output shape {tuple(out.shape)}", tuple(y.shape))
        )
    if optimizer == "gd" and batch_size is not None:
        raise ValueError(
            message("batch_size", "None for optimizer='gd'", batch_size, "Use optimizer='sgd'")
        )
    if optimizer == "sgd" and batch_size is None:
        raise ValueError(message("batch_size", "given for optimizer='sgd'", None))
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if batch_size > n:
            raise ValueError(message("batch_size", f"<= N = {n}", batch_size))
    trackers = resolve_trackers(track)
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(params, lr=lr)
    gen = torch.Generator().manual_seed(0 if seed is None else check_int("seed", seed, 0))
    initial = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
    cache: dict = {}

    def full_loss() -> float:  # a measurement: BatchNorm statistics untouched
        return float(loss_fn(_measure(model, x), y))

    def state(step: int, value: float) -> TrainState:
        return TrainState(
            step, model, x, y, loss_fn, lr, initial, value, optimizer, loss_name, cache
        )

    rows, recorded = [], []
    divergence = None
    bar = _progress(progress, steps)
    order = torch.randperm(n, generator=gen)
    cursor, loss0 = 0, math.nan
    try:
        for step in range(steps + 1):
            # one forward serves both the full-batch loss at `step` and, for full-batch
            # methods, the gradient of the update to step + 1 (after the last update the
            # loss is measured: BatchNorm statistics see exactly one forward per update)
            if batch_size is None and step < steps:
                objective = loss_fn(model(x), y)
                value = float(objective.detach())
            else:
                value = full_loss()
            if step == 0:
                loss0 = value
                if not math.isfinite(value):
                    raise ValueError(message("model", "finite initial loss", value))
            else:
                reason = None
                if not math.isfinite(value):
                    reason = f"non-finite loss ({value})"
                elif value > divergence_factor * max(loss0, 1e-300):
                    reason = f"loss {value:.3g} > {divergence_factor:g} x initial loss {loss0:.3g}"
                elif not all(bool(torch.isfinite(p).all()) for p in params):
                    reason = "non-finite parameters"
                if reason is not None:
                    divergence = Divergence(step, reason)
                    break
                if bar is not None:
                    bar[0].update(bar[1], advance=1, description=f"loss {value:.3e}")
            if step % every == 0 or step == steps:
                rows.append(_record(trackers, state(step, value)))
                recorded.append(step)
                cache.pop(("ntk", step - every), None)
            if step == steps:
                break
            if batch_size is not None:
                if cursor + batch_size > n:
                    order, cursor = torch.randperm(n, generator=gen), 0
                idx = order[cursor : cursor + batch_size].to(device)
                cursor += batch_size
                objective = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            objective.backward()
            opt.step()
    finally:
        if bar is not None:
            bar[0].stop()
    values = {t.name: np.stack([r[t.name] for r in rows]) for t in trackers}
    meta = {"optimizer": optimizer, "lr": lr, "loss": loss_name, "steps": steps}
    return Trajectory(np.asarray(recorded, dtype=np.int64), values, divergence, meta)
