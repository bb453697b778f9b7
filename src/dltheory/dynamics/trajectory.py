"""The record of a training run: ``TrainState`` (what a tracker sees) and ``Trajectory``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .._checks import message

__all__ = ["Divergence", "TrainState", "Trajectory", "mse_loss"]

__fuzz_exempt__ = {
    "mse_loss:nan": "the loss of non-finite outputs is non-finite: train() reads it as divergence"
}


def mse_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The project's MSE: L = 1/(2N) sum_i ||f(x_i) - y_i||^2 over the N rows.

    With this normalisation gradient descent on the linearised model reads
    f_{t+1} - y = (I - (eta/N) Theta)(f_t - y), so it is stable iff
    eta < 2N / lambda_max(Theta).

    >>> float(mse_loss(torch.tensor([[1.0], [3.0]]), torch.zeros(2, 1)))
    2.5
    """
    for name, value in (("output", output), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(message(name, "a torch.Tensor", type(value).__name__))
        if not (value.is_floating_point() or value.is_complex()) and name == "output":
            raise TypeError(message(name, "a floating-point tensor", f"dtype {value.dtype}"))
        if value.dtype == torch.bool:
            raise TypeError(message(name, "a numeric tensor, not booleans", "dtype bool"))
    if output.shape != target.shape or output.ndim == 0 or output.shape[0] == 0:
        raise ValueError(
            message(
                "target",
                f"the shape of output {tuple(output.shape)}, with at least one row",
                f"shape {tuple(target.shape)}",
            )
        )
    diff = output - target
    return 0.5 * diff.pow(2).sum() / diff.shape[0]


@dataclass(frozen=True)
class TrainState:
    """What a tracker sees at one recorded step.

    Attributes:
        step: optimizer steps taken so far (0: at initialisation).
        model: the model being trained (its parameters are the current ones).
        x, y: the full training data, (N, n_0) and (N, out).
        loss_fn: ``(output, target) -> scalar``; for ``loss="mse"`` it is
            :func:`mse_loss`, L = 1/(2N) sum_i ||f(x_i) - y_i||^2.
        lr: the learning rate eta.
        initial_params: detached copies of the trainable parameters at step 0.
        loss: the full-batch training loss now.
        optimizer: ``"gd"``, ``"sgd"`` or ``"adam"``.
        loss_name: ``"mse"``, ``"cross_entropy"`` or ``"custom"``.
    """

    step: int
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    lr: float
    initial_params: dict[str, torch.Tensor]
    loss: float
    optimizer: str = "gd"
    loss_name: str = "mse"
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def params(self) -> dict[str, torch.Tensor]:
        """The current trainable parameters (detached)."""
        return {k: v.detach() for k, v in self.model.named_parameters() if v.requires_grad}


class Divergence(NamedTuple):
    """Where and why a run stopped: ``step`` (the optimizer step) and ``reason``."""

    step: int
    reason: str


@dataclass(frozen=True)
class Trajectory:
    """Tracked quantities of a run, one entry per recorded step.

    Attributes:
        steps: (T,) int array of the optimizer steps at which trackers ran.
        values: name -> (T, ...) float64 array (scalars give (T,)).
        divergence: ``Divergence(step, reason)`` if the run stopped early, else ``None``;
            every recorded value is finite either way.
        meta: optimizer, lr, loss name and steps requested.
    """

    steps: np.ndarray
    values: dict[str, np.ndarray]
    divergence: Divergence | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        """Whether the run stopped because the loss blew up."""
        return self.divergence is not None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python containers (lists, floats), ready for ``json.dumps``."""
        return {
            "steps": self.steps.tolist(),
            "values": {k: v.tolist() for k, v in self.values.items()},
            "diverged": self.diverged,
            "divergence": None if self.divergence is None else self.divergence._asdict(),
            "meta": self.meta,
        }

    def to_json(self) -> str:
        """The trajectory as a JSON string (see :meth:`from_json`)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Trajectory:
        """Inverse of :meth:`to_json`."""
        if not isinstance(text, str | bytes | bytearray):
            raise TypeError(message("text", "a JSON string from Trajectory.to_json", text))
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or "steps" not in data or "values" not in data:
                raise ValueError("not a trajectory")
        except ValueError as err:  # json.JSONDecodeError is a ValueError
            raise ValueError(
                message("text", "a JSON string from Trajectory.to_json", text, str(err))
            ) from None
        div = data.get("divergence")
        return cls(
            steps=np.asarray(data["steps"], dtype=np.int64),
            values={k: np.asarray(v, dtype=np.float64) for k, v in data["values"].items()},
            divergence=None if div is None else Divergence(int(div["step"]), div["reason"]),
            meta=data.get("meta", {}),
        )

    def plot(self, names: list[str] | None = None, ax=None):
        """One panel per scalar tracked quantity against the step; returns the figure.

        Quantities whose values are all positive are drawn on a log scale.
        """
        import matplotlib.pyplot as plt

        names = [n for n in (names or list(self.values)) if self.values[n].ndim == 1]
        if ax is None:
            fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4 * max(len(names), 1), 3))
            axes = np.atleast_1d(axes)
        else:
            axes = np.atleast_1d(ax)
            fig = axes[0].figure
        for a, name in zip(axes, names, strict=False):
            v = self.values[name]
            a.plot(self.steps, v)
            if len(v) and np.all(v > 0):
                a.set_yscale("log")
            a.set_xlabel("step")
            a.set_title(name)
            if self.divergence is not None:
                a.axvline(self.divergence.step, color="r", ls="--", lw=1)
        fig.tight_layout()
        return fig
