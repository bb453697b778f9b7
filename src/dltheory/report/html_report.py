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
from .result import Result, plain
from .writers import atomic_write

__all__ = ["render_html", "write_html"]

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


def _z(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _values(result: Result) -> str:
    """The headline prediction and measurement, labelled; vectors as a small table."""
    pred = result.prediction
    meas = plain(result.measurement)
    mean, stderr, n = meas["mean"], meas["stderr"], meas["n"]
    label = math_html(result.label) if result.label else "<em>unlabelled</em>"
    exact = result.exact
    kind = "exact computation" if exact else f"measurement (mean ± stderr, n = {n})"
    if (isinstance(pred, list) and not _is_vector(pred)) or (
        isinstance(mean, list) and not (_is_vector(mean))
    ):  # a matrix: its numbers are in the tables below and in results.json
        return (
            f'<tr><th>quantity</th><td colspan="2">{label}</td></tr>'
            f'<tr><th>prediction, {_e(kind)}</th><td colspan="2">{_e(fmt(pred))}; '
            "the tables below show them side by side</td></tr>"
        )
    if not (_is_vector(pred) or _is_vector(mean)):
        shown = fmt(mean, exact=True) if exact else pm(mean, stderr)
        return (
            f'<tr><th>quantity</th><td colspan="2">{label}</td></tr>'
            f'<tr><th>prediction</th><td class="num">{_e(fmt(pred))}</td><td></td></tr>'
            f'<tr><th>{_e(kind)}</th><td class="num">{_e(shown)}</td><td></td></tr>'
        )
    count = len(mean) if isinstance(mean, list) else len(pred)
    preds = pred if isinstance(pred, list) else [pred] * count
    means = mean if isinstance(mean, list) else [mean] * count
    errs = stderr if isinstance(stderr, list) else [stderr] * count
    index = list(result.index) if result.index and len(result.index) == count else None
    index = index or list(range(1, count + 1))
    head = result.index_label or "#"
    if exact:
        rows = [(i, p, m) for i, p, m in zip(index, preds, means, strict=False)]
        cols = (head, "prediction", "exact value")
    else:
        rows = [
            (i, p, {"mean": m, "stderr": s},
             None if s in (None, 0) or m is None or p is None else round((m - p) / s, 2))
            for i, p, m, s in zip(index, preds, means, errs, strict=False)
        ]  # fmt: skip
        cols = (head, "prediction", "measurement ± stderr", "z")
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
        z = None if row.z is None else round(row.z, 2)
        body.append((row.label, row.prediction, shown, z, row.note or ""))
    return table_html(
        "labelled quantities", ("quantity", "prediction", "measured", "|z|", "note"), body
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


def _section(result: Result) -> str:
    parts = [
        f'<section id="{_e(result.name)}">',
        f"<h2>{math_html(result.title)} {_badge(result.status)}</h2>",
        _stamp(result),
        f"<blockquote><strong>Claim.</strong> {math_html(result.claim)}</blockquote>",
    ]
    if result.error is not None:
        parts.append(f'<p><span class="error">error</span> <code>{_e(result.error)}</code></p>')
    else:
        tolerance = math_html(result.tolerance) if result.tolerance else "see the criterion"
        parts += [
            '<table class="result">',
            _values(result),
            f'<tr><th>verdict</th><td colspan="2">{_badge(result.status)} '
            f"{math_html(result.criterion)}</td></tr>",
            f'<tr><th>max |z|</th><td class="num">{_z(result.max_z)}</td>'
            f"<td>tolerance: {tolerance}</td></tr>",
            f'<tr><th>note</th><td colspan="2">{math_html(result.note)}</td></tr>'
            if result.note else "",
            f'<tr><th>summary</th><td colspan="2">{math_html(result.summary)}</td></tr>',
            "</table>",
            _rows(result),
            "".join(table_html(t.title, t.columns, t.rows, cut=60) for t in result.tables),
            _figure(result),
        ]  # fmt: skip
        numbers = {**{f"parameter: {k}": v for k, v in plain(result.parameters).items()}}
        parts.append(
            "<details><summary>parameters and every other number</summary>"
            f"{details_html(numbers)}{details_html(plain(result.details))}"
            '<p class="meta">Every value, unrounded, is in results.json.</p></details>'
        )
    parts.append("</section>")
    return "".join(parts)


def _overview(results: Sequence[Result], pending: Sequence[str]) -> str:
    rows = [
        f'<tr><td><a href="#{_e(r.name)}">{_e(r.name)}</a></td><td>{math_html(r.title)}</td>'
        f'<td>{_badge(r.status)}</td><td class="num">{_z(r.max_z)}</td>'
        f"<td>{math_html(r.tolerance) if r.tolerance else '—'}</td>"
        f"<td>{'quick' if r.quick else 'full'}</td>"
        f'<td class="num">{r.seconds:.1f} s</td></tr>'
        for r in results
    ]
    rows += [
        f"<tr><td>{_e(name)}</td><td></td><td>{_badge('pending')}</td>"
        "<td></td><td></td><td></td><td></td></tr>"
        for name in pending
    ]
    head = ("<tr><th>reproduction</th><th>title</th><th>verdict</th><th>max |z|</th>"
            "<th>tolerance</th><th>size</th><th>runtime</th></tr>")  # fmt: skip
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
        "criterion; |z| = |measurement − prediction| / stderr. Each entry is stamped with the "
        "run that produced it.</p>"
        f'<p class="meta">{info}</p>{banner}'
        f"<p><strong>{passed} of {len(results)}</strong> finished reproductions pass.</p>"
        f'<div class="scroll">{_overview(results, pending)}</div>'
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
