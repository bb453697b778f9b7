"""HTML fragments for numbers: legible notation, labelled values, small tables.

The report shows mathematics in Unicode and HTML sub/superscripts (no script,
no network): ``K^(l)`` becomes K<sup>(l)</sup>, ``C_w`` C<sub>w</sub>,
``chi_perp`` χ<sub>⊥</sub>. Arrays are shown as small tables, never as a list
printed into a row; the full arrays stay in ``results.json``.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["INLINE", "details_html", "fmt", "fmt_z", "is_z_name", "math_html", "table_html"]

INLINE = 8  # at most this many numbers on one line
_TABLE_ROWS = 40  # rows of a details table before it is cut (the JSON has all)

_GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "Delta": "Δ", "epsilon": "ε",
    "eta": "η", "theta": "θ", "Theta": "Θ", "kappa": "κ", "lambda": "λ", "mu": "μ",
    "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ", "Sigma": "Σ", "tau": "τ",
    "phi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω",
}  # fmt: skip
_SUB_WORDS = {"perp": "⊥", "parallel": "∥", "par": "∥"}
_GREEK_RE = re.compile(r"(?<![A-Za-z])(" + "|".join(sorted(_GREEK, key=len, reverse=True)) + r")"
                       r"(?![a-z])")  # fmt: skip
_ELL = re.compile(r"(?<![A-Za-z'])l(?![A-Za-z'])")
_SUP_PAREN = re.compile(r"\^\(([^()]{1,12})\)")
_SUP = re.compile(r"\^(-?[0-9]+|[A-Za-z](?![A-Za-z]))")
_SUB = re.compile(r"(?<=[A-Za-zα-ωΑ-Ω)*])_(perp|parallel|par|[A-Za-z0-9*]{1,3})(?![A-Za-z0-9_])")
_OPS = (("+-", "±"), ("<=", "≤"), (">=", "≥"), ("!=", "≠"), ("sqrt", "√"), ("->", "→"),
        ("~=", "≈"), ("inf", "∞"))  # fmt: skip


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def math_html(text: Any) -> str:
    """Escape ``text`` and render its ASCII mathematics legibly.

    >>> math_html("K^(l) with C_w = 2, chi_perp <= 1")
    'K<sup>(ℓ)</sup> with C<sub>w</sub> = 2, χ<sub>⊥</sub> ≤ 1'
    """
    out = str(text)
    for ascii_op, uni in _OPS:
        out = re.sub(rf"(?<![A-Za-z]){re.escape(ascii_op)}(?![A-Za-z])", uni, out)
    out = _GREEK_RE.sub(lambda m: _GREEK[m.group(1)], out)
    out = _ELL.sub("ℓ", out)  # the layer index: "l" reads as "I" in sans-serif fonts
    out = _e(out)
    out = _SUP_PAREN.sub(r"<sup>(\1)</sup>", out)
    out = _SUP.sub(r"<sup>\1</sup>", out)
    return _SUB.sub(lambda m: f"<sub>{_SUB_WORDS.get(m.group(1), m.group(1))}</sub>", out)


def fmt(value: Any, *, exact: bool = False) -> str:
    """One value as text: integers exactly, floats to 6 significant digits.

    >>> fmt(505), fmt(0.1234567), fmt(None), fmt(2.0, exact=True)
    ('505', '0.123457', '—', '2')
    """
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if exact and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    if isinstance(value, Mapping) and {"mean", "stderr"} <= set(value):
        return pm(value["mean"], value["stderr"])
    if isinstance(value, Mapping) and set(value) == {"exact"}:
        return fmt(value["exact"], exact=True)
    if isinstance(value, list):
        if len(value) > INLINE or any(isinstance(v, list | Mapping) for v in value):
            return f"{_shape(value)} array (see the table / results.json)"
        return "(" + ", ".join(fmt(v, exact=exact) for v in value) + ")"
    return str(value)


_Z_NAME = re.compile(r"(?:^|[\s_|(])(?:max_abs_)?(?:z|zs|zscores?|z-scores?)(?:$|[\s_|)])",
                     re.IGNORECASE)  # fmt: skip


def is_z_name(name: Any) -> bool:
    """Whether a column or key names z-scores (``"z"``, ``"|z|"``, ``"z_scale"``, ``"zscores"``).

    >>> [is_z_name(n) for n in ("z", "|z|", "z_evidence", "zscores", "size", "lazy")]
    [True, True, True, True, False, False]
    """
    return bool(_Z_NAME.search(str(name)))


def fmt_z(value: Any) -> str:
    """A z-score (or a list of them) to 2 decimals: the report's one format for z.

    >>> fmt_z(1.234567), fmt_z([0.5, -2.0]), fmt_z(None)
    ('1.23', '(0.50, -2.00)', '—')
    """
    if isinstance(value, list):
        if len(value) > INLINE:
            return f"{_shape(value)} array (see results.json)"
        return "(" + ", ".join(fmt_z(v) for v in value) + ")"
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:.2f}"
    return fmt(value)


def pm(mean: Any, stderr: Any) -> str:
    """mean ± stderr with the stderr to 2 significant digits and the mean to match.

    >>> pm(0.529995, 0.0322811), pm(505.0, 0.0), pm(None, 1.0)
    ('0.530 ± 0.032', '505 ± 0', '— ± 1')
    """
    if not isinstance(mean, int | float) or not isinstance(stderr, int | float):
        return f"{fmt(mean)} ± {fmt(stderr)}"
    if stderr <= 0 or not math.isfinite(stderr) or not math.isfinite(mean):
        return f"{fmt(mean)} ± {fmt(stderr)}"
    decimals = max(0, 1 - math.floor(math.log10(stderr)))
    if decimals > 8 or abs(mean) >= 1e6:
        return f"{mean:.6g} ± {stderr:.2g}"
    return f"{mean:.{decimals}f} ± {stderr:.{decimals}f}"


def _shape(value: Any) -> str:
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return " × ".join(map(str, dims))


def table_html(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, cut: int | None = None
) -> str:
    """A small captioned table; numbers right-aligned; rows past ``cut`` elided."""
    shown = list(rows)
    more = ""
    if cut is not None and len(shown) > cut:
        half = cut // 2
        more = (f'<tr><td colspan="{len(columns)}" class="more">… {len(shown) - 2 * half} '
                "more rows in results.json …</td></tr>")  # fmt: skip
        shown = [*shown[:half], None, *shown[-half:]]
    head = "".join(f"<th>{math_html(c)}</th>" for c in columns)
    zcol = [is_z_name(c) for c in columns]
    body = []
    for row in shown:
        if row is None:
            body.append(more)
            continue
        cells = "".join(
            f"<td>{math_html(c)}</td>" if isinstance(c, str) else
            f'<td class="num">{_e(fmt_z(c) if z else fmt(c))}</td>'
            for c, z in zip(row, zcol, strict=False)
        )  # fmt: skip
        body.append(f"<tr>{cells}</tr>")
    caption = f"<caption>{math_html(title)}</caption>" if title else ""
    table = f'<table class="data">{caption}<tr>{head}</tr>{"".join(body)}</table>'
    return f'<div class="scroll">{table}</div>'  # wide tables scroll, the page does not


def _is_numbers(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int | float | None) and not isinstance(v, bool) for v in value
    )


def details_html(details: Mapping[str, Any]) -> str:
    """``details`` as tables: scalars in one table, equal-length number lists side by side.

    Nested mappings get their own block; matrices and longer nested lists are
    named with their shape (the values are in ``results.json``).
    """
    scalars: list[tuple[str, Any]] = []
    vectors: dict[int, list[tuple[str, list]]] = {}
    blocks: list[str] = []
    for key, value in details.items():
        if _is_numbers(value) and len(value) > 1:
            vectors.setdefault(len(value), []).append((key, value))
        elif isinstance(value, Mapping) and value and not ({"mean", "stderr"} <= set(value)):
            blocks.append(f"<h4>{math_html(key)}</h4>{details_html(value)}")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            keys = list(dict.fromkeys(k for v in value for k in v))
            rows = [[v.get(k) for k in keys] for v in value]
            rows = [[c if not isinstance(c, list | Mapping) or _small(c) else fmt(c)
                     for c in r] for r in rows]  # fmt: skip
            blocks.append(table_html(key, keys, [[_cell(c) for c in r] for r in rows],
                                     cut=_TABLE_ROWS))  # fmt: skip
        else:
            scalars.append((key, value))
    parts = []
    if scalars:
        parts.append(table_html("", ("quantity", "value"),
                                [(k, fmt_z(v) if is_z_name(k) else _cell(v))
                                 for k, v in scalars]))  # fmt: skip
    for length, cols in vectors.items():
        rows = [[i + 1, *(c[1][i] for c in cols)] for i in range(length)]
        parts.append(table_html("", ("#", *(c[0] for c in cols)), rows, cut=_TABLE_ROWS))
    return "".join(parts + blocks)


def _small(value: Any) -> bool:
    return isinstance(value, Mapping) and {"mean", "stderr"} <= set(value)


def _cell(value: Any) -> Any:
    """A table cell: numbers stay numbers (right-aligned), the rest becomes text."""
    if (isinstance(value, int | float) and not isinstance(value, bool)) or value is None:
        return value
    if isinstance(value, str):
        return value
    return fmt(value)
