"""The self-contained HTML report: inline CSS, figures embedded (PNG or SVG), no scripts.

The page reads as a paper supplement: a summary table (verdict, largest |z|,
tolerance, size, runtime) linking to one section per reproduction with its
claim, labelled prediction and measurement (small tables for arrays, exact
values shown as exact), the criterion, the figure with its caption, and the
stamps of the run that produced it. Mathematics is Unicode and HTML
sub/superscripts, so the page needs no network and no script.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .figures import is_svg
from .html_values import details_html, fmt, math_html, pm, table_html
from .quantities import bound_margin
from .result import Result, plain
from .writers import atomic_write

__all__ = ["check_text", "render_html", "write_html"]

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #1d1d1f; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
.meta { color: #555; font-size: 0.9em; }
.banner { background: #fff4e5; border: 1px solid #f0a020; padding: 0.6em 1em; margin: 1em 0; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f5f5f7; }
td.num { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; text-align: right; }
.pass { color: #fff; background: #1a7f37; padding: 0.1em 0.5em; border-radius: 0.3em; }
.fail { color: #fff; background: #c62828; padding: 0.1em 0.5em; border-radius: 0.3em; }
.error { color: #fff; background: #6a1b9a; padding: 0.1em 0.5em; border-radius: 0.3em; }
.pending { color: #555; background: #e0e0e0; padding: 0.1em 0.5em; border-radius: 0.3em; }
section { border-top: 2px solid #eee; margin-top: 2em; padding-top: 0.5em; }
blockquote { border-left: 4px solid #8ab4f8; margin: 0.5em 0; padding: 0.2em 1em;
             background: #f8fbff; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure { margin: 1em 0; }
figcaption { color: #333; font-size: 0.92em; margin-top: 0.3em; }
table.data caption { text-align: left; font-weight: 600; padding: 0.2em 0; }
td.more { text-align: center; color: #666; }
.scroll { overflow-x: auto; max-width: 100%; }
table.overview { width: 100%; }
table.overview td.name { overflow-wrap: anywhere; min-width: 9em; }
table.overview td.name .title { font-size: 0.88em; color: #333; }
table.overview td.time { white-space: nowrap; text-align: right; }
table.data th { overflow-wrap: anywhere; }
sub, sup { font-size: 0.75em; line-height: 0; }
@media (max-width: 900px) { body { margin: 1em auto; } th, td { padding: 0.2em 0.35em; } }
pre { background: #f5f5f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _badge(status: str) -> str:
    return f'<span class="{_e(status)}">{_e(status)}</span>'


def _is_vector(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int | float | None) for v in value)


def _signed(value: float) -> str:
    """A margin or difference to 3 significant digits, with its sign."""
    return f"{value:+.3g}"


def _diffs(result: Result) -> list[float] | None:
    """Exact claims: measured - predicted, entry by entry (``None``: not comparable)."""
    meas = plain(result.measurement)
    diffs = bound_margin(result.prediction, meas["mean"], "lower")  # = measured - prediction
    return None if diffs is None else [d for d in diffs if d is not None]


def check_text(result: Result) -> str:
    """The summary table's "check" cell: |z|, the margin to a bound, or the exact difference.

    Statistical claims show max |z|; bound claims the smallest margin to the bound
    (positive when it holds), never a z-score; exact claims the largest exact difference.
    """
    if result.kind == "bound":
        margin = result.margin
        side = "≤" if result.bound == "upper" else "≥"
        return "—" if margin is None else f"margin {_signed(margin)} (bound {side})"
    if result.kind == "exact":
        diffs = _diffs(result)
        if not diffs:
            return "exact"
        worst = max(diffs, key=abs)
        if worst == 0:
            return "exact, equal"
        pred = result.prediction
        rel = (f" ({100 * worst / pred:+.2g} %)" if isinstance(pred, int | float)
               and not isinstance(pred, bool) and pred != 0 else "")  # fmt: skip
        return f"exact, Δ = {_signed(worst)}{rel}"
    return "—" if result.max_z is None else f"|z| = {result.max_z:.2f}"


def _kind(result: Result) -> str:
    """The measured value's heading, saying what kind of value it is."""
    n = result.measurement.n
    if result.exact:
        return "exact computation"
    return f"measurement (mean ± stderr, n = {n})"


def _values(result: Result) -> str:
    """The headline prediction and measurement, labelled; vectors as a small table."""
    pred = result.prediction
    meas = plain(result.measurement)
    mean, stderr = meas["mean"], meas["stderr"]
    label = math_html(result.label) if result.label else "<em>unlabelled</em>"
    exact, bound = result.exact, result.kind == "bound"
    kind = _kind(result)
    pred_head = f"{result.bound} bound" if bound else "prediction"
    if (isinstance(pred, list) and not _is_vector(pred)) or (
        isinstance(mean, list) and not (_is_vector(mean))
    ):  # a matrix: its numbers are in the tables below and in results.json
        return (
            f'<tr><th>quantity</th><td colspan="2">{label}</td></tr>'
            f'<tr><th>{_e(pred_head)}, {_e(kind)}</th><td colspan="2">{_e(fmt(pred))}; '
            "the tables below show them side by side</td></tr>"
        )
    if not (_is_vector(pred) or _is_vector(mean)):
        shown = fmt(mean, exact=True) if exact else pm(mean, stderr)
        last = ""
        if bound:
            margin = result.margin
            shown_margin = "—" if margin is None else _signed(margin)
            last = (
                f'<tr><th>margin to the bound</th><td class="num">{_e(shown_margin)}</td>'
                "<td></td></tr>"
            )
        return (
            f'<tr><th>quantity</th><td colspan="2">{label}</td></tr>'
            f'<tr><th>{_e(pred_head)}</th><td class="num">{_e(fmt(pred))}</td><td></td></tr>'
            f'<tr><th>{_e(kind)}</th><td class="num">{_e(shown)}</td><td></td></tr>{last}'
        )
    count = len(mean) if isinstance(mean, list) else len(pred)
    preds = pred if isinstance(pred, list) else [pred] * count
    means = mean if isinstance(mean, list) else [mean] * count
    errs = stderr if isinstance(stderr, list) else [stderr] * count
    index = list(result.index) if result.index and len(result.index) == count else None
    index = index or list(range(1, count + 1))
    head = result.index_label or "#"
    shown_m = "exact value" if exact else "measurement ± stderr"
    cells = [m if exact else {"mean": m, "stderr": s} for m, s in zip(means, errs, strict=False)]
    if bound:
        margins = bound_margin(preds, means, result.bound) or [None] * count
        rows = list(zip(index, preds, cells, margins, strict=False))
        cols = (head, pred_head, shown_m, "margin")
    elif exact:
        rows = list(zip(index, preds, means, strict=False))
        cols = (head, "prediction", "exact value")
    else:
        rows = [
            (i, p, c, None if s in (None, 0) or m is None or p is None else (m - p) / s)
            for i, p, c, m, s in zip(index, preds, cells, means, errs, strict=False)
        ]
        cols = (head, "prediction", shown_m, "z")
    table = table_html(result.label or "", cols, rows, cut=60)
    return (
        f'<tr><th>quantity</th><td colspan="2">{label} ({count} values; {_e(kind)})</td></tr>'
        f'<tr><td colspan="3">{table}</td></tr>'
    )


def _rows(result: Result) -> str:
    if not result.rows:
        return ""
    body = []
    for row in result.rows:
        if row.exact:
            shown = fmt(row.measured, exact=True) + " (exact)"
        elif row.measured is None:
            shown = "—"
        else:
            shown = pm(plain(row.measured.mean), plain(row.measured.stderr))
        if row.bound:
            check = "—" if row.margin is None else f"margin {_signed(row.margin)}"
            pred = f"{row.bound} bound {fmt(plain(row.prediction))}"
        else:
            check = "" if row.z is None else f"|z| = {row.z:.2f}"
            pred = plain(row.prediction)
        body.append((row.label, pred, shown, check, row.note or ""))
    return table_html(
        "labelled quantities", ("quantity", "prediction", "measured", "check", "note"), body
    )


def _figure(result: Result) -> str:
    if result.figure is None:
        return ""
    data = base64.b64encode(result.figure).decode("ascii")
    if is_svg(result.figure):
        img = f'<img alt="figure: {_e(result.title)}" src="data:image/svg+xml;base64,{data}">'
    else:
        width = int.from_bytes(result.figure[16:20], "big")  # PNG IHDR width
        size = f' width="{width // 2}"' if width > 0 else ""  # rendered at 2x: half size
        img = f'<img alt="figure: {_e(result.title)}"{size} src="data:image/png;base64,{data}">'
    caption = math_html(result.caption) if result.caption else _e(result.title)
    return f"<figure>{img}<figcaption>Figure. {caption}</figcaption></figure>"


def _stamp(result: Result) -> str:
    parts = [
        f"<code>{_e(result.name)}</code>",
        f"topic: {_e(result.topic)}" if result.topic else "",
        _e(result.reference) if result.reference else "",
        f"{'quick' if result.quick else 'full'} size, seed {result.seed}",
        f"backend {_e(result.backend)}",
        f"runtime {result.seconds:.1f} s",
        f"finished {_e(result.finished)}" if result.finished else "",
        f"dltheory {_e(result.version)}" if result.version else "",
        f"commit {_e(result.commit)}" if result.commit else "",
    ]
    return '<p class="meta">' + " · ".join(p for p in parts if p) + "</p>"


def _summary(text: str) -> str:
    """The summary line; a multi-line summary becomes one line per sentence."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "<br>".join(math_html(line) for line in lines)


def _section(result: Result) -> str:
    parts = [
        f'<section id="{_e(result.name)}" data-kind="{_e(result.kind)}">',
        f"<h2>{math_html(result.title)} {_badge(result.status)}</h2>",
        _stamp(result),
        f"<blockquote><strong>Claim.</strong> {math_html(result.claim)}</blockquote>",
    ]
    if result.error is not None:
        parts.append(f'<p><span class="error">error</span> <code>{_e(result.error)}</code></p>')
    else:
        tolerance = math_html(result.tolerance) if result.tolerance else "not stated"
        parts += [
            '<div class="headline"><table class="result">',
            _values(result),
            f'<tr><th>verdict</th><td colspan="2">{_badge(result.status)} '
            f"{math_html(result.criterion)}</td></tr>",
            f'<tr><th>check ({_e(result.kind)})</th><td class="num">{_e(check_text(result))}'
            f"</td><td>tolerance: {tolerance}</td></tr>",
            f'<tr><th>note</th><td colspan="2">{math_html(result.note)}</td></tr>'
            if result.note
            else "",
            f'<tr><th>summary</th><td colspan="2">{_summary(result.summary)}</td></tr>',
            "</table></div><!-- /headline -->",
            _rows(result),
            "".join(table_html(t.title, t.columns, t.rows, cut=60) for t in result.tables),
            _figure(result),
        ]
        numbers = {**{f"parameter: {k}": v for k, v in plain(result.parameters).items()}}
        parts.append(
            "<details><summary>parameters and every other number</summary>"
            f"{details_html(numbers)}{details_html(plain(result.details))}"
            '<p class="meta">Every value, unrounded, is in results.json.</p></details>'
        )
    parts.append("</section>")
    return "".join(parts)


def _overview(results: Sequence[Result], pending: Sequence[str]) -> str:
    """The summary table: five columns that wrap, so it fits an 800 px window."""
    rows = [
        f'<tr data-kind="{_e(r.kind)}"><td class="name">'
        f'<a href="#{_e(r.name)}"><code>{_e(r.name)}</code></a>'
        f'<div class="title">{math_html(r.title)}</div></td>'
        f"<td>{_badge(r.status)}</td><td>{_e(check_text(r)) if r.error is None else ''}</td>"
        f"<td>{math_html(r.tolerance) if r.tolerance else 'not stated'}</td>"
        f'<td class="time">{r.seconds:.1f} s<br>{"quick" if r.quick else "full"}</td></tr>'
        for r in results
    ]
    rows += [
        f'<tr><td class="name"><code>{_e(name)}</code></td><td>{_badge("pending")}</td>'
        "<td></td><td></td><td></td></tr>"
        for name in pending
    ]
    head = (
        "<tr><th>reproduction</th><th>verdict</th><th>check</th>"
        "<th>tolerance</th><th>runtime, size</th></tr>"
    )
    return f'<table class="overview">{head}{"".join(rows)}</table>'


def render_html(
    results: Sequence[Result], meta: Mapping[str, Any], pending: Sequence[str] = ()
) -> str:
    """The whole report as one HTML string (no external resources)."""
    status = str(meta.get("status", ""))
    passed = sum(r.status == "pass" for r in results)
    info = " · ".join(
        f"{_e(key)}: {_e(meta[key])}"
        for key in ("status", "started", "updated", "dltheory", "commit", "torch", "python")
        if meta.get(key) is not None
    )
    banner = ""
    if status != "complete":
        total = len(results) + len(pending)
        banner = (
            f'<div class="banner">Partial report ({_e(status)}): {len(results)} of {total} '
            f"reproductions finished.</div>"
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>dltheory report</title><style>{_CSS}</style></head><body>"
        "<h1>dltheory report</h1>"
        "<p>Each reproduction puts a theoretical prediction beside a measurement on finite "
        "PyTorch networks (mean ± standard error, or an exact value) and a verdict with its "
        "criterion and tolerance; each entry is stamped with the run that produced it. "
        "The check column says what kind of claim it is:</p><ul>"
        "<li>statistical: |z| = |measurement − prediction| / stderr;</li>"
        "<li>bound: the margin to the bound (positive: it holds), never a z-score;</li>"
        "<li>exact: the exact difference between computation and prediction.</li></ul>"
        f'<p class="meta">{info}</p>{banner}'
        f"<p><strong>{passed} of {len(results)}</strong> finished reproductions pass.</p>"
        f"{_overview(results, pending)}"
        f"{''.join(_section(r) for r in results)}"
        "</body></html>\n"
    )


def write_html(
    path: str | os.PathLike,
    results: Sequence[Result],
    meta: Mapping[str, Any],
    pending: Sequence[str] = (),
) -> Path:
    """Write ``report.html`` (atomically)."""
    return atomic_write(path, render_html(results, meta, pending))
