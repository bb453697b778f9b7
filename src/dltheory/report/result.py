"""What a reproduction returns (``Outcome``) and what the report records (``Result``).

A reproduction computes a prediction from the theory and a measurement on
finite networks, and decides a verdict; it returns an :class:`Outcome`. The
runner adds what the reproduction does not know about itself (name, title,
claim, runtime, seed) and records a :class:`Result`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from .._checks import message
from ..finite import Estimate
from .figures import PNG_SIGNATURE

if TYPE_CHECKING:
    from .registry import Reproduction

__all__ = ["Outcome", "Result", "plain"]

Status = Literal["pass", "fail", "error"]


def plain(value: Any) -> Any:
    """Convert tensors, arrays and NumPy scalars to JSON-ready Python values.

    Non-finite floats become ``None`` (JSON has no NaN or infinity).

    >>> plain({"k": torch.tensor([1.0, float("nan")]), "n": np.int64(3)})
    {'k': [1.0, None], 'n': 3}
    """
    if isinstance(value, torch.Tensor):
        return plain(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray | np.generic):
        return plain(value.tolist())
    if isinstance(value, Estimate):
        return {"mean": plain(value.mean), "stderr": plain(value.stderr), "n": value.n}
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, bytes):
        return [plain(v) for v in value]
    raise TypeError(message("value", "JSON-serialisable (numbers, strings, lists, dicts)", value))


def _frozen_mapping(name: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(message(name, "a mapping of names to values", value))
    return MappingProxyType(plain(value))


def _estimate(value: Any) -> Estimate:
    if not isinstance(value, Estimate):
        raise TypeError(
            message("measurement", "a dltheory.Estimate", value, "Use Estimate(mean, stderr, n)")
        )
    return Estimate(plain(value.mean), plain(value.stderr), value.n)


def _figure(value: Any) -> bytes | None:
    if value is not None and (not isinstance(value, bytes) or not value.startswith(PNG_SIGNATURE)):
        raise TypeError(
            message("figure", "PNG bytes or None", type(value).__name__, "Use figures.png_bytes")
        )
    return value


@dataclass(frozen=True)
class Outcome:
    """What one reproduction found.

    Attributes:
        prediction: the theory's value (a number or a list, e.g. one per layer).
        measurement: the finite-network estimate of the same quantity
            (mean, stderr, n); tensors are stored as plain lists.
        verdict: whether the measurement agrees with the prediction.
        criterion: the rule the verdict applied, in words.
        summary: one line of the key numbers, for the report's reader.
        parameters: the experiment's settings (widths, depth, number of networks, ...).
        details: every other number worth keeping (per-width values, fits, z-scores).
        figure: a PNG (``figures.png_bytes``) or ``None``.
    """

    prediction: Any
    measurement: Estimate
    verdict: bool
    criterion: str
    summary: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    figure: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.verdict, bool | np.bool_):
            raise TypeError(message("verdict", "a bool", self.verdict))
        object.__setattr__(self, "verdict", bool(self.verdict))
        object.__setattr__(self, "prediction", plain(self.prediction))
        object.__setattr__(self, "measurement", _estimate(self.measurement))
        object.__setattr__(self, "parameters", _frozen_mapping("parameters", self.parameters))
        object.__setattr__(self, "details", _frozen_mapping("details", self.details))
        object.__setattr__(self, "figure", _figure(self.figure))


@dataclass(frozen=True)
class Result:
    """One reproduction as the report records it.

    Attributes:
        name, title, claim, topic, reference: from the registration.
        prediction, measurement, verdict, criterion, summary, parameters,
            details, figure: from the :class:`Outcome` (empty when it raised).
        seconds: wall-clock runtime.
        seed: the seed it ran with.
        quick: whether it ran at the quick size.
        error: ``"ExceptionType: message"`` when the reproduction raised, else ``None``.
    """

    name: str
    title: str
    claim: str
    topic: str
    reference: str
    prediction: Any
    measurement: Estimate | None
    verdict: bool
    criterion: str
    summary: str
    parameters: Mapping[str, Any]
    details: Mapping[str, Any]
    figure: bytes | None
    seconds: float
    seed: int
    quick: bool
    error: str | None = None

    @property
    def status(self) -> Status:
        """``"pass"``, ``"fail"`` or ``"error"``."""
        if self.error is not None:
            return "error"
        return "pass" if self.verdict else "fail"

    @classmethod
    def from_outcome(
        cls, rep: Reproduction, outcome: Outcome, *, seconds: float, seed: int, quick: bool
    ) -> Result:
        """Record an :class:`Outcome` of ``rep``."""
        return cls(
            rep.name,
            rep.title,
            rep.claim,
            rep.topic,
            rep.reference,
            outcome.prediction,
            outcome.measurement,
            outcome.verdict,
            outcome.criterion,
            outcome.summary,
            outcome.parameters,
            outcome.details,
            outcome.figure,
            float(seconds),
            seed,
            quick,
        )

    @classmethod
    def from_error(
        cls, rep: Reproduction, error: BaseException, *, seconds: float, seed: int, quick: bool
    ) -> Result:
        """Record that ``rep`` raised ``error`` (the report goes on with the others)."""
        text = " ".join(str(error).split()) or "(no message)"
        return cls(
            rep.name,
            rep.title,
            rep.claim,
            rep.topic,
            rep.reference,
            None,
            None,
            False,
            "",
            "",
            MappingProxyType({}),
            MappingProxyType({}),
            None,
            float(seconds),
            seed,
            quick,
            error=f"{type(error).__name__}: {text}",
        )

    def to_dict(self) -> dict[str, Any]:
        """Every number of the result as JSON-ready values (the figure as a flag)."""
        return {
            "name": self.name,
            "title": self.title,
            "claim": self.claim,
            "topic": self.topic,
            "reference": self.reference,
            "status": self.status,
            "verdict": self.verdict,
            "criterion": self.criterion,
            "summary": self.summary,
            "prediction": plain(self.prediction),
            "measurement": plain(self.measurement),
            "parameters": plain(self.parameters),
            "details": plain(self.details),
            "seconds": self.seconds,
            "seed": self.seed,
            "quick": self.quick,
            "has_figure": self.figure is not None,
            "error": self.error,
        }
