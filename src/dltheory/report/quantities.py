"""Labelled quantities and small tables: how a reproduction says what its numbers are.

A report row never shows a bare number: a :class:`Quantity` carries a label with
its symbol and scale ("l K^(l) at l = 51"), the prediction, and either a
measurement (:class:`~dltheory.finite.Estimate`, shown as mean ± stderr with its
z-score) or an exact value (a count or an exact computation, shown without an
error bar). Arrays become a :class:`Table` with named columns (layer by layer,
width by width) rather than a list printed in a row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._checks import message
from ..finite import Estimate

__all__ = ["BOUND_SIDES", "MAX_TABLE_ROWS", "Quantity", "Table", "bound_margin", "max_abs_z"]

MAX_TABLE_ROWS = 200
BOUND_SIDES = ("upper", "lower")


def _flat(value: Any) -> list[float | None] | None:
    """``value`` as a flat list of floats (``None`` for missing), or ``None`` if not numeric."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, list | tuple):
        out: list[float | None] = []
        for item in value:
            sub = _flat(item) if item is not None else [None]
            if sub is None:
                return None
            out.extend(sub)
        return out
    return None


def max_abs_z(prediction: Any, mean: Any, stderr: Any) -> float | None:
    """The largest |mean - prediction| / stderr over the entries with a positive stderr.

    Scalars broadcast against lists; entries with a zero or missing stderr are
    skipped (exact entries have no z-score). Returns ``None`` when there is no
    entry to compare.

    >>> max_abs_z([1.0, 2.0], [1.25, 2.75], [0.125, 0.25])  # z = 2 and 3
    3.0
    >>> max_abs_z(3.0, 3.0, 0.0) is None
    True
    """
    p, m, s = _flat(prediction), _flat(mean), _flat(stderr)
    if p is None or m is None or s is None:
        return None
    size = max(len(p), len(m), len(s))
    if any(len(v) not in (1, size) for v in (p, m, s)):
        return None
    p, m, s = ([v[0]] * size if len(v) == 1 else v for v in (p, m, s))
    zs = [
        abs(mi - pi) / si
        for pi, mi, si in zip(p, m, s, strict=True)
        if pi is not None and mi is not None and si is not None and si > 0
    ]
    zs = [z for z in zs if math.isfinite(z)]
    return max(zs) if zs else None


def bound_margin(bound: Any, measured: Any, side: str) -> list[float | None] | None:
    """Margin of each measured entry to its bound: ``bound - measured`` for an upper
    bound, ``measured - bound`` for a lower one (positive: the bound holds).

    Scalars broadcast against lists; ``None`` marks a missing entry. Returns
    ``None`` when the values are not numbers of compatible lengths.

    >>> bound_margin([1.0, 2.0], [0.75, 2.5], "upper")
    [0.25, -0.5]
    >>> bound_margin(10.0, 25.0, "lower")
    [15.0]
    """
    if side not in BOUND_SIDES:
        raise ValueError(message("side", f"one of {BOUND_SIDES}", side))
    b, m = _flat(bound), _flat(measured)
    if b is None or m is None:
        return None
    size = max(len(b), len(m))
    if any(len(v) not in (1, size) for v in (b, m)):
        return None
    b, m = ([v[0]] * size if len(v) == 1 else v for v in (b, m))
    sign = 1.0 if side == "upper" else -1.0
    return [
        None if bi is None or mi is None else sign * (bi - mi) for bi, mi in zip(b, m, strict=True)
    ]


@dataclass(frozen=True)
class Quantity:
    """One labelled prediction-vs-measurement row of the report.

    Attributes:
        label: what the number is, with its symbol and scale, e.g.
            ``"l K^(l) at l = 51"`` or ``"E Θ / (|x|²/n₀)"``.
        prediction: the theory's value (a number; ``None`` when the theory gives none).
        measured: an :class:`Estimate` (shown as mean ± stderr with its z-score),
            a plain number (an exact value, shown without an error bar), or ``None``.
        note: one line on how to read the row, e.g. why an exact count differs
            from the prediction.
        bound: ``"upper"`` or ``"lower"`` when ``prediction`` is a bound on the
            measured value rather than its expected value: the row shows the
            margin to the bound and no z-score (default ``""``: an estimate).

    >>> q = Quantity("pieces of sawtooth(4)", 16, 16)
    >>> q.exact, q.z is None
    (True, True)
    >>> round(Quantity("K", 1.0, Estimate(1.25, 0.125, 50)).z, 12)
    2.0
    """

    label: str
    prediction: Any
    measured: Any = None
    note: str = ""
    bound: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError(message("label", "a non-empty string", self.label))
        if self.bound not in ("", *BOUND_SIDES):
            raise ValueError(message("bound", "'upper', 'lower' or ''", self.bound))
        if self.measured is not None and not isinstance(self.measured, Estimate | int | float):
            raise TypeError(
                message("measured", "an Estimate, a number or None", type(self.measured).__name__)
            )

    @property
    def exact(self) -> bool:
        """Whether the measured value is exact (a number, not an :class:`Estimate`)."""
        return self.measured is not None and not isinstance(self.measured, Estimate)

    @property
    def margin(self) -> float | None:
        """The smallest margin to the bound (:func:`bound_margin`), or ``None`` (not a bound)."""
        if not self.bound or self.measured is None:
            return None
        from .result import plain

        mean = self.measured.mean if isinstance(self.measured, Estimate) else self.measured
        margins = bound_margin(plain(self.prediction), plain(mean), self.bound)
        margins = [m for m in margins or () if m is not None]
        return min(margins) if margins else None

    @property
    def z(self) -> float | None:
        """|measured - prediction| / stderr, or ``None`` (exact, a bound, or no measurement)."""
        if not isinstance(self.measured, Estimate) or self.bound:
            return None
        from .result import plain

        return max_abs_z(
            plain(self.prediction), plain(self.measured.mean), plain(self.measured.stderr)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (an exact value is ``{"exact": value}``)."""
        from .result import plain

        if isinstance(self.measured, Estimate):
            measured: Any = plain(self.measured)
        elif self.measured is None:
            measured = None
        else:
            measured = {"exact": plain(self.measured)}
        return {
            "label": self.label,
            "prediction": plain(self.prediction),
            "measured": measured,
            "z": self.z,
            "note": self.note,
            "bound": self.bound,
            "margin": self.margin,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quantity:
        """Inverse of :meth:`to_dict`."""
        measured = data.get("measured")
        if isinstance(measured, Mapping):
            if "exact" in measured:
                measured = measured["exact"]
            else:
                measured = Estimate(measured["mean"], measured["stderr"], measured["n"])
        return cls(
            data["label"], data.get("prediction"), measured, data.get("note", ""),
            data.get("bound", ""),
        )  # fmt: skip


@dataclass(frozen=True)
class Table:
    """A small table of the report (layer by layer, width by width, ...).

    Attributes:
        title: what the table shows, e.g. ``"K^(l) layer by layer"``.
        columns: column headers with symbols, e.g. ``("layer l", "K^(l) theory", ...)``.
        rows: the rows; each as long as ``columns``; numbers, strings or ``None``.
            An :class:`Estimate` cell is shown as mean ± stderr.

    Examples:
        >>> Table("t", ("n", "value"), [(1, 2.0), (2, 4.0)]).to_dict()["rows"]
        [[1, 2.0], [2, 4.0]]
    """

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        from .result import plain

        columns = tuple(str(c) for c in self.columns)
        rows = tuple(tuple(row) for row in self.rows)
        if not columns:
            raise ValueError(message("columns", "at least one column header", self.columns))
        for row in rows:
            if len(row) != len(columns):
                raise ValueError(
                    message("rows", f"rows of {len(columns)} cells (one per column)", row)
                )
        if len(rows) > MAX_TABLE_ROWS:
            raise ValueError(
                message(
                    "rows",
                    f"at most {MAX_TABLE_ROWS} rows (a report table is small)",
                    len(rows),
                    "Subsample the rows and keep the full array in details",
                )
            )
        object.__setattr__(self, "columns", columns)
        object.__setattr__(self, "rows", tuple(tuple(plain(c) for c in row) for row in rows))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"title": self.title, "columns": list(self.columns),
                "rows": [list(r) for r in self.rows]}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Table:
        """Inverse of :meth:`to_dict`."""
        return cls(data["title"], data["columns"], data["rows"])
