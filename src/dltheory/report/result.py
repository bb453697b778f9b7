"""What a reproduction returns (``Outcome``) and what the report records (``Result``).

A reproduction computes a prediction from the theory and a measurement on
finite networks, and decides a verdict; it returns an :class:`Outcome`. The
runner adds what the reproduction does not know about itself (name, title,
claim, runtime, seed, time, version, commit, backend) and records a
:class:`Result`.

Only the first four fields of :class:`Outcome` are required; the others
(labels, exact values, the tolerance, labelled rows and tables, a caption)
are optional, so a reproduction written against the first form still runs.

Every reproduction says what kind of claim its headline checks (``kind``):

* ``"statistical"``: the prediction is the expected value of the measurement;
  shown as mean ± stderr with |z| = |mean - prediction| / stderr.
* ``"exact"``: the measurement is an exact computation (a count, an exact sum);
  shown as an exact value, never "± 0 (n = 1)".
* ``"bound"``: the prediction is an upper or lower bound (``bound="upper"`` /
  ``"lower"``) or a threshold the criterion sets; shown as the margin to the
  bound, never as a z-score.

With ``label`` (symbol and unit) and ``tolerance`` (the rule's slack, in
symbols), these are what a report row needs: the report test fails on an
unlabelled headline, a missing tolerance or a z-score on a bound.
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
from .figures import PNG_SIGNATURE, is_svg
from .quantities import BOUND_SIDES, Quantity, Table, bound_margin, max_abs_z

if TYPE_CHECKING:
    from .registry import Reproduction

__all__ = ["CLAIM_KINDS", "Outcome", "Result", "plain"]

Status = Literal["pass", "fail", "error"]
ClaimKind = Literal["statistical", "exact", "bound"]
CLAIM_KINDS = ("statistical", "exact", "bound")


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
    ok = isinstance(value, bytes) and (value.startswith(PNG_SIGNATURE) or is_svg(value))
    if value is not None and not ok:
        raise TypeError(
            message(
                "figure", "PNG or SVG bytes or None", type(value).__name__,
                "Use figures.png_bytes or figures.svg_bytes",
            )
        )  # fmt: skip
    return value


def _items(name: str, value: Any, kind: type) -> tuple:
    if isinstance(value, kind):
        value = (value,)
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise TypeError(message(name, f"a sequence of {kind.__name__}", value))
    for item in value:
        if not isinstance(item, kind):
            raise TypeError(message(name, f"a sequence of {kind.__name__}", item))
    return tuple(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(message(name, "a string", value))
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
        details: every other number worth keeping (per-width values, fits, z-scores);
            kept in ``results.json``, shown in the report as small tables.
        figure: a PNG (``figures.png_bytes``), an SVG (``figures.svg_bytes``) or ``None``.
        label: what ``prediction`` and ``measurement`` are, with symbol and scale,
            e.g. ``"K^(l)_aa / (|x|²/n₀)"`` (optional; the report says "unlabelled").
        index: the labels of the entries when they are lists (layers, widths, ...).
        index_label: what ``index`` counts, e.g. ``"layer l"`` or ``"width n"``.
        exact: the measurement is an exact computation (a count, an exact sum):
            shown as exact values, without "± 0 (n = ...)".
        tolerance: the tolerance the criterion used, in words or symbols,
            e.g. ``"5σ + 2 % (finite-width bias)"``.
        max_z: the largest |z| the check saw; computed from ``prediction`` and
            ``measurement`` when ``None`` (and from the ``rows``); ``math.nan`` when
            no z-score applies (a classification, a deterministic fit).
        rows: further labelled prediction-vs-measurement rows (:class:`Quantity`).
        tables: small tables (:class:`Table`) of per-layer / per-width numbers.
        caption: the figure's caption (what is plotted, what the lines are).
        note: how to read the numbers, e.g. why an exact count differs from the
            prediction.
        kind: what the headline claim is (module docstring): ``"statistical"``,
            ``"exact"`` or ``"bound"``; ``""`` (default) means ``"exact"`` when
            ``exact`` is set and ``"statistical"`` otherwise. ``"exact"`` sets ``exact``.
        bound: for ``kind="bound"``: ``"upper"`` (the claim is measurement <=
            prediction) or ``"lower"`` (measurement >= prediction).
    """

    prediction: Any
    measurement: Estimate
    verdict: bool
    criterion: str
    summary: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    figure: bytes | None = None
    label: str = ""
    index: Sequence[Any] | None = None
    index_label: str = ""
    exact: bool = False
    tolerance: str = ""
    max_z: float | None = None
    rows: Sequence[Quantity] = ()
    tables: Sequence[Table] = ()
    caption: str = ""
    note: str = ""
    kind: str = ""
    bound: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.verdict, bool | np.bool_):
            raise TypeError(message("verdict", "a bool", self.verdict))
        object.__setattr__(self, "verdict", bool(self.verdict))
        object.__setattr__(self, "prediction", plain(self.prediction))
        object.__setattr__(self, "measurement", _estimate(self.measurement))
        object.__setattr__(self, "parameters", _frozen_mapping("parameters", self.parameters))
        object.__setattr__(self, "details", _frozen_mapping("details", self.details))
        object.__setattr__(self, "figure", _figure(self.figure))
        for name in ("label", "index_label", "tolerance", "caption", "note"):
            _text(name, getattr(self, name))
        if self.index is not None:
            object.__setattr__(self, "index", tuple(plain(list(self.index))))
        object.__setattr__(self, "exact", bool(self.exact))
        kind = self.kind or ("exact" if self.exact else "statistical")
        if kind not in CLAIM_KINDS:
            raise ValueError(message("kind", f"one of {CLAIM_KINDS}", self.kind))
        if (kind == "bound") != (self.bound in BOUND_SIDES) or self.bound not in ("", *BOUND_SIDES):
            raise ValueError(
                message(
                    "bound", "'upper' or 'lower' exactly when kind='bound'", self.bound,
                    "Say which side the prediction bounds, e.g. kind='bound', bound='upper'",
                )
            )  # fmt: skip
        object.__setattr__(self, "kind", kind)
        if kind == "exact":
            object.__setattr__(self, "exact", True)
        object.__setattr__(self, "rows", _items("rows", self.rows, Quantity))
        object.__setattr__(self, "tables", _items("tables", self.tables, Table))
        if (
            kind == "bound"
            and self.max_z is not None
            and not (isinstance(self.max_z, float) and math.isnan(self.max_z))
        ):
            raise ValueError(
                message("max_z", "None for a bound claim (it shows a margin)", self.max_z)
            )
        if kind == "bound":
            object.__setattr__(self, "max_z", None)
        elif isinstance(self.max_z, float) and math.isnan(self.max_z):
            object.__setattr__(self, "max_z", None)  # NaN: no |z| applies (a classification)
        elif self.max_z is None:
            object.__setattr__(self, "max_z", self.largest_z())
        elif not isinstance(self.max_z, int | float) or not self.max_z >= 0:
            raise ValueError(message("max_z", "a number >= 0 or None", self.max_z))
        else:
            object.__setattr__(self, "max_z", float(self.max_z))

    def largest_z(self) -> float | None:
        """max |z| of the headline measurement (if statistical) and of every row."""
        zs = [row.z for row in self.rows]
        if self.kind == "statistical":
            m = self.measurement
            zs.append(max_abs_z(self.prediction, plain(m.mean), plain(m.stderr)))
        zs = [z for z in zs if z is not None]
        return max(zs) if zs else None


_OUTCOME_EXTRAS = ("label", "index", "index_label", "exact", "tolerance", "max_z", "rows",
                   "tables", "caption", "note", "kind", "bound")  # fmt: skip


def _margin(bound: Any, measurement: Estimate | None, side: str) -> float | None:
    if measurement is None or side not in BOUND_SIDES:
        return None
    margins = bound_margin(plain(bound), plain(measurement.mean), side)
    margins = [m for m in margins or () if m is not None]
    return min(margins) if margins else None


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
        label, index, index_label, exact, tolerance, max_z, rows, tables,
            caption, note, kind, bound: the optional parts of the :class:`Outcome`.
        finished: when it finished (UTC, ISO 8601).
        version: the dltheory version that ran it.
        commit: the git commit of the source tree, when known.
        backend: where its sweeps ran (``"serial"`` or ``"dask"``).
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
    label: str = ""
    index: tuple | None = None
    index_label: str = ""
    exact: bool = False
    tolerance: str = ""
    max_z: float | None = None
    rows: tuple[Quantity, ...] = ()
    tables: tuple[Table, ...] = ()
    caption: str = ""
    note: str = ""
    kind: str = "statistical"
    bound: str = ""
    finished: str = ""
    version: str = ""
    commit: str | None = None
    backend: str = "serial"

    @property
    def margin(self) -> float | None:
        """For a bound claim: the smallest margin to the bound (positive: it holds)."""
        return (
            _margin(self.prediction, self.measurement, self.bound) if self.kind == "bound" else None
        )

    @property
    def status(self) -> Status:
        """``"pass"``, ``"fail"`` or ``"error"``."""
        if self.error is not None:
            return "error"
        return "pass" if self.verdict else "fail"

    @classmethod
    def from_outcome(
        cls,
        rep: Reproduction,
        outcome: Outcome,
        *,
        seconds: float,
        seed: int,
        quick: bool,
        **stamp: Any,
    ) -> Result:
        """Record an :class:`Outcome` of ``rep`` (``stamp``: finished, version, commit, backend)."""
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
            **{key: getattr(outcome, key) for key in _OUTCOME_EXTRAS},
            **stamp,
        )

    @classmethod
    def from_error(
        cls,
        rep: Reproduction,
        error: BaseException,
        *,
        seconds: float,
        seed: int,
        quick: bool,
        **stamp: Any,
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
            **stamp,
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
            "tolerance": self.tolerance,
            "kind": self.kind,
            "bound": self.bound,
            "max_z": plain(self.max_z),
            "margin": plain(self.margin),
            "summary": self.summary,
            "label": self.label,
            "index_label": self.index_label,
            "index": plain(self.index),
            "exact": self.exact,
            "prediction": plain(self.prediction),
            "measurement": plain(self.measurement),
            "rows": [row.to_dict() for row in self.rows],
            "tables": [table.to_dict() for table in self.tables],
            "note": self.note,
            "caption": self.caption,
            "parameters": plain(self.parameters),
            "details": plain(self.details),
            "seconds": self.seconds,
            "seed": self.seed,
            "quick": self.quick,
            "finished": self.finished,
            "version": self.version,
            "commit": self.commit,
            "backend": self.backend,
            "has_figure": self.figure is not None,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], figure: bytes | None = None) -> Result:
        """Rebuild a result from :meth:`to_dict` (the figure is stored beside the JSON)."""
        meas = data.get("measurement")
        measurement = None if meas is None else Estimate(meas["mean"], meas["stderr"], meas["n"])
        index = data.get("index")
        return cls(
            data["name"],
            data["title"],
            data["claim"],
            data.get("topic", ""),
            data.get("reference", ""),
            data.get("prediction"),
            measurement,
            bool(data.get("verdict", False)),
            data.get("criterion", ""),
            data.get("summary", ""),
            MappingProxyType(dict(data.get("parameters") or {})),
            MappingProxyType(dict(data.get("details") or {})),
            _figure(figure),
            float(data.get("seconds", 0.0)),
            int(data.get("seed", 0)),
            bool(data.get("quick", False)),
            error=data.get("error"),
            label=data.get("label", ""),
            index=None if index is None else tuple(index),
            index_label=data.get("index_label", ""),
            exact=bool(data.get("exact", False)),
            tolerance=data.get("tolerance", ""),
            max_z=data.get("max_z"),
            rows=tuple(Quantity.from_dict(r) for r in data.get("rows", ())),
            tables=tuple(Table.from_dict(t) for t in data.get("tables", ())),
            caption=data.get("caption", ""),
            note=data.get("note", ""),
            kind=data.get("kind") or ("exact" if data.get("exact") else "statistical"),
            bound=data.get("bound", ""),
            finished=data.get("finished", ""),
            version=data.get("version", ""),
            commit=data.get("commit"),
            backend=data.get("backend", "serial"),
        )
