"""Built-in trackers for :func:`dltheory.dynamics.train`.

A tracker is any object with a ``name`` and ``__call__(state) -> float | Tensor``.
Built-in names: ``"loss"``, ``"ntk_drift"`` (||Theta_t - Theta_0||_F / ||Theta_0||_F),
``"ntk_lambda_min"``, ``"ntk_lambda_max"`` (of the empirical NTK on the training inputs,
all outputs: the (N k, N k) matrix, by Lanczos on NTK-vector products, see
:class:`NTKEigenvalue`), ``"weight_movement"``
(max_l ||W_l(t) - W_l(0)||_F / ||W_l(0)||_F over parameters with 2 or more axes) and
``"linearized_distance"`` (RMS distance between the network's training outputs and
those of its linearisation at step 0 trained the same way; GD on the MSE only).

Every built-in tracker measures the model as it is without changing it
(:mod:`dltheory.finite.model_function`: copies of buffers, BatchNorm in train mode with
the batch's statistics, Dropout in train mode refused).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .._checks import check_int, message
from ..finite.empirical import empirical_ntk
from ..finite.functional_model import FunctionalModel
from .curvature_products import ntk_eigenvalues
from .linearized import linearized_prediction
from .trajectory import TrainState

__all__ = ["BUILTIN_TRACKERS", "NTKEigenvalue", "Tracker", "resolve_trackers"]


@dataclass(frozen=True)
class Tracker:
    """A named function of the training state."""

    name: str
    fn: Callable[[TrainState], float | torch.Tensor]

    def __call__(self, state: TrainState) -> float | torch.Tensor:
        return self.fn(state)


@dataclass
class NTKEigenvalue:
    """Tracker: lambda_max or lambda_min of the empirical NTK (N k x N k) on the training x.

    Lanczos on NTK-vector products (never the full NTK), warm-started from the previous
    eigenvector. Cost per computed step: ``n_matvecs`` products of about 3 forward
    passes over x each (typically 5-30 for lambda_max; lambda_min may take up to
    min(N k, ``max_matvecs``)), memory O(N k + P). A value whose relative residual is
    above ``tol`` (budget spent) is still returned (a Ritz value: an upper bound for
    lambda_min, a lower bound for lambda_max); ``residuals`` records each one.

    Args:
        which: ``"largest"`` or ``"smallest"``.
        every: compute at steps that are multiples of this (NaN elsewhere).
        tol: relative Lanczos residual (default 1e-8 float64, 1e-4 float32).
        max_matvecs: products per call (default min(N k, 300)).
        name: the tracker's name.
    """

    which: str = "largest"
    every: int = 1
    tol: float | None = None
    max_matvecs: int | None = None
    name: str = ""
    n_matvecs: int = field(default=0, init=False)
    residuals: list[float] = field(default_factory=list, init=False)
    _v0: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.which not in ("largest", "smallest"):
            raise ValueError(message("which", "'largest' or 'smallest'", self.which))
        self.every = check_int("every", self.every, minimum=1)
        if not self.name:
            self.name = "ntk_lambda_max" if self.which == "largest" else "ntk_lambda_min"

    def __call__(self, state: TrainState) -> float:
        if state.step % self.every:
            return math.nan
        fm = FunctionalModel(state.model)
        res = ntk_eigenvalues(
            fm, state.x, which=self.which, tol=self.tol, v0=self._v0, max_matvecs=self.max_matvecs
        )
        self._v0 = res.eigenvectors[:, 0].detach().clone()
        self.n_matvecs += int(res.n_matvecs)
        top = float(res.eigenvalues[0])
        self.residuals.append(float(res.residuals[0]) / max(abs(top), 1e-300))
        return top


def _full_ntk(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    full = empirical_ntk(model, x, output="full")
    n, k = full.shape[0], full.shape[2]
    return full.permute(0, 2, 1, 3).reshape(n * k, n * k)


def _ntk_now(state: TrainState) -> torch.Tensor:
    key = ("ntk", state.step)
    if key not in state.cache:
        state.cache[key] = _full_ntk(state.model, state.x)
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
            state.cache["ntk0"] = _full_ntk(_initial_model(state), state.x)
    return state.cache["ntk0"]


def _loss(state: TrainState) -> float:
    return state.loss


def _ntk_drift(state: TrainState) -> float:
    theta0 = _ntk_initial(state)
    return float(torch.linalg.norm(_ntk_now(state) - theta0) / torch.linalg.norm(theta0))


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
        model0 = state.model if state.step == 0 else _initial_model(state)
        f0 = FunctionalModel(model0).outputs("x", state.x)
        n, k = f0.shape
        theta0 = _ntk_initial(state)
        state.cache["lin"] = (theta0, f0.reshape(n * k), state.y.reshape(n * k))
    theta0, f0, y = state.cache["lin"]
    pred = linearized_prediction(theta0, y, f0, lr=state.lr, t=state.step, dynamics="gd")
    f = FunctionalModel(state.model).outputs("x", state.x).reshape(-1)
    return float(torch.sqrt(torch.mean((f - pred.train) ** 2)))


BUILTIN_TRACKERS: dict[str, Callable[[TrainState], float | torch.Tensor]] = {
    "loss": _loss,
    "ntk_drift": _ntk_drift,
    "ntk_lambda_min": lambda state: NTKEigenvalue("smallest")(state),
    "ntk_lambda_max": lambda state: NTKEigenvalue("largest")(state),
    "weight_movement": _weight_movement,
    "linearized_distance": _linearized_distance,
}

#: built-in names that stand for a fresh stateful tracker per run (warm starts)
_STATEFUL = {
    "ntk_lambda_max": lambda: NTKEigenvalue("largest"),
    "ntk_lambda_min": lambda: NTKEigenvalue("smallest"),
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
            out.append(
                _STATEFUL[item]() if item in _STATEFUL else Tracker(item, BUILTIN_TRACKERS[item])
            )
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
