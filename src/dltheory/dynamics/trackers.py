"""Built-in trackers for :func:`dltheory.dynamics.train`.

A tracker is any object with a ``name`` and ``__call__(state) -> float | Tensor``.
Built-in names: ``"loss"``, ``"ntk_drift"`` (||Theta_t - Theta_0||_F / ||Theta_0||_F),
``"ntk_lambda_min"``, ``"ntk_lambda_max"`` (of the empirical NTK on the training inputs,
all outputs: the (N k, N k) matrix), ``"weight_movement"``
(max_l ||W_l(t) - W_l(0)||_F / ||W_l(0)||_F over weight matrices) and
``"linearized_distance"`` (RMS distance between the network's training outputs and
those of its linearisation at step 0 trained the same way; GD on the MSE only).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._checks import message
from ..finite.empirical import empirical_ntk
from .linearized import linearized_prediction
from .trajectory import TrainState

__all__ = ["BUILTIN_TRACKERS", "Tracker", "resolve_trackers"]


@dataclass(frozen=True)
class Tracker:
    """A named function of the training state."""

    name: str
    fn: Callable[[TrainState], float | torch.Tensor]

    def __call__(self, state: TrainState) -> float | torch.Tensor:
        return self.fn(state)


def _ntk_now(state: TrainState) -> torch.Tensor:
    key = ("ntk", state.step)
    if key not in state.cache:
        full = empirical_ntk(state.model, state.x, output="full")
        n, k = full.shape[0], full.shape[2]
        state.cache[key] = full.permute(0, 2, 1, 3).reshape(n * k, n * k)
    return state.cache[key]


def _initial_model(state: TrainState) -> torch.nn.Module:
    if "model0" not in state.cache:
        model0 = copy.deepcopy(state.model)
        with torch.no_grad():
            for name, p in model0.named_parameters():
                if name in state.initial_params:
                    p.copy_(state.initial_params[name])
        state.cache["model0"] = model0
    return state.cache["model0"]


def _ntk_initial(state: TrainState) -> torch.Tensor:
    if "ntk0" not in state.cache:
        if state.step == 0:
            state.cache["ntk0"] = _ntk_now(state)
        else:
            full = empirical_ntk(_initial_model(state), state.x, output="full")
            n, k = full.shape[0], full.shape[2]
            state.cache["ntk0"] = full.permute(0, 2, 1, 3).reshape(n * k, n * k)
    return state.cache["ntk0"]


def _loss(state: TrainState) -> float:
    return state.loss


def _ntk_drift(state: TrainState) -> float:
    theta0 = _ntk_initial(state)
    return float(torch.linalg.norm(_ntk_now(state) - theta0) / torch.linalg.norm(theta0))


def _eigvals(state: TrainState) -> torch.Tensor:
    key = ("eig", state.step)
    if key not in state.cache:
        state.cache[key] = torch.linalg.eigvalsh(_ntk_now(state))
    return state.cache[key]


def _lambda_min(state: TrainState) -> float:
    return float(_eigvals(state)[0])


def _lambda_max(state: TrainState) -> float:
    return float(_eigvals(state)[-1])


def _weight_movement(state: TrainState) -> float:
    ratios = []
    for name, p in state.params().items():
        w0 = state.initial_params[name]
        if p.ndim >= 2 and float(torch.linalg.norm(w0)) > 0:
            ratios.append(float(torch.linalg.norm(p - w0) / torch.linalg.norm(w0)))
    return max(ratios) if ratios else 0.0


def _linearized_distance(state: TrainState) -> float:
    if state.optimizer != "gd" or state.loss_name != "mse":
        raise ValueError(
            message(
                "track",
                "free of 'linearized_distance' unless optimizer='gd' and loss='mse'",
                (state.optimizer, state.loss_name),
                "The closed-form linearised dynamics (I - (eta/N) Theta)^t hold for "
                "full-batch GD on the MSE only",
            )
        )
    if "lin" not in state.cache:
        with torch.no_grad():
            f0 = _initial_model(state)(state.x)
        n, k = f0.shape
        theta0 = _ntk_initial(state)
        state.cache["lin"] = (theta0, f0.reshape(n * k), state.y.reshape(n * k))
    theta0, f0, y = state.cache["lin"]
    pred = linearized_prediction(theta0, y, f0, lr=state.lr, t=state.step, dynamics="gd")
    with torch.no_grad():
        f = state.model(state.x).reshape(-1)
    return float(torch.sqrt(torch.mean((f - pred.train) ** 2)))


BUILTIN_TRACKERS: dict[str, Callable[[TrainState], float | torch.Tensor]] = {
    "loss": _loss,
    "ntk_drift": _ntk_drift,
    "ntk_lambda_min": _lambda_min,
    "ntk_lambda_max": _lambda_max,
    "weight_movement": _weight_movement,
    "linearized_distance": _linearized_distance,
}


def resolve_trackers(track) -> list[Tracker]:
    """Turn ``track`` (names, tracker objects, or a dict name -> callable) into trackers."""
    if isinstance(track, dict):
        items = list(track.items())
        out = []
        for name, fn in items:
            if not isinstance(name, str) or not callable(fn):
                raise TypeError(message("track", "a dict of str -> callable(state)", (name, fn)))
            out.append(Tracker(name, fn))
        return out
    if isinstance(track, str) or not isinstance(track, list | tuple):
        track = (track,)
    out = []
    for item in track:
        if isinstance(item, str):
            if item not in BUILTIN_TRACKERS:
                allowed = ", ".join(repr(k) for k in BUILTIN_TRACKERS)
                raise ValueError(
                    message("track", f"built-in names among {allowed} or tracker objects", item)
                )
            out.append(Tracker(item, BUILTIN_TRACKERS[item]))
        elif callable(item) and isinstance(getattr(item, "name", None), str):
            out.append(Tracker(item.name, item))
        else:
            raise TypeError(
                message(
                    "track",
                    "a name, an object with a str `name` and __call__(state), or a dict",
                    item,
                    "Wrap a plain function as {'my_name': fn}",
                )
            )
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise ValueError(message("track", "free of duplicate names", names))
    return out
