"""The self-contained HTML report: inline CSS, figures as base64 PNG, no scripts."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f5f5f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
"""

_INLINE_LIST = 6


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(_num(v) for v in value) + "]"
    return str(value)


def _badge(status: str) -> str:
    return f'<span class="{_e(status)}">{_e(status)}</span>'


def _is_vector(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int | float | None) for v in value)


def _values(result: Result) -> str:
    """Prediction and measurement rows: inline for scalars, a per-index table for vectors."""
    pred = result.prediction
    meas = plain(result.measurement)
    mean, stderr = meas["mean"], meas["stderr"]
    if not (_is_vector(pred) or _is_vector(mean)):
        return (
            f'<tr><th>prediction</th><td class="num">{_e(_num(pred))}</td></tr>'
            f'<tr><th>measurement</th><td class="num">{_e(_num(mean))} ± {_e(_num(stderr))} '
            f"(n = {meas['n']})</td></tr>"
        )
    count = len(mean) if isinstance(mean, list) else len(pred)
    preds = pred if isinstance(pred, list) else [pred] * count
    rows = "".join(
        f'<tr><td class="num">{i + 1}</td><td class="num">{_e(_num(p))}</td>'
        f'<td class="num">{_e(_num(m))} ± {_e(_num(s))}</td></tr>'
        for i, (p, m, s) in enumerate(zip(preds, mean, stderr, strict=False))
    )
    short_p = (
        _num(preds) if count <= _INLINE_LIST else f"{count} values, {_num(preds[:3])[:-1]}, …]"
    )
    short_m = _num(mean) if count <= _INLINE_LIST else f"{count} values, {_num(mean[:3])[:-1]}, …]"
    return (
        f'<tr><th>prediction</th><td class="num">{_e(short_p)}</td></tr>'
        f'<tr><th>measurement</th><td class="num">{_e(short_m)} (n = {meas["n"]})'
        "<details><summary>every value ± stderr</summary><table>"
        "<tr><th>#</th><th>prediction</th><th>measurement ± stderr</th></tr>"
        f"{rows}</table></details></td></tr>"
    )


def _section(result: Result) -> str:
    parts = [
        f'<section id="{_e(result.name)}">',
        f"<h2>{_e(result.title)} {_badge(result.status)}</h2>",
        f'<p class="meta"><code>{_e(result.name)}</code>',
        f" · topic: {_e(result.topic)}" if result.topic else "",
        f" · {_e(result.reference)}" if result.reference else "",
        f" · runtime {result.seconds:.1f} s · seed {result.seed}",
        " · quick" if result.quick else "",
        "</p>",
        f"<blockquote><strong>Claim.</strong> {_e(result.claim)}</blockquote>",
    ]
    if result.error is not None:
        parts.append(f'<p><span class="error">error</span> <code>{_e(result.error)}</code></p>')
    else:
        parts += [
            "<table>",
            _values(result),
            f"<tr><th>verdict</th><td>{_badge(result.status)} {_e(result.criterion)}</td></tr>",
            f"<tr><th>summary</th><td>{_e(result.summary)}</td></tr>",
            f"<tr><th>runtime</th><td>{result.seconds:.2f} s</td></tr>",
            "</table>",
        ]
        if result.figure is not None:
            data = base64.b64encode(result.figure).decode("ascii")
            parts.append(
                f'<p><img alt="figure: {_e(result.title)}" src="data:image/png;base64,{data}"></p>'
            )
        numbers = json.dumps(
            {"parameters": plain(result.parameters), "details": plain(result.details)}, indent=1
        )
        parts.append(
            f"<details><summary>parameters and every number</summary><pre>{_e(numbers)}</pre>"
            "</details>"
        )
    parts.append("</section>")
    return "".join(parts)


def _overview(results: Sequence[Result], pending: Sequence[str]) -> str:
    rows = [
        f'<tr><td><a href="#{_e(r.name)}">{_e(r.name)}</a></td><td>{_e(r.title)}</td>'
        f'<td>{_badge(r.status)}</td><td class="num">{r.seconds:.1f} s</td></tr>'
        for r in results
    ]
    rows += [
        f"<tr><td>{_e(name)}</td><td></td><td>{_badge('pending')}</td><td></td></tr>"
        for name in pending
    ]
    head = "<tr><th>reproduction</th><th>title</th><th>verdict</th><th>runtime</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def render_html(
    results: Sequence[Result], meta: Mapping[str, Any], pending: Sequence[str] = ()
) -> str:
    """The whole report as one HTML string (no external resources)."""
    status = str(meta.get("status", ""))
    passed = sum(r.status == "pass" for r in results)
    info = " · ".join(
        f"{_e(key)}: {_e(meta[key])}"
        for key in ("status", "quick", "seed", "started", "updated", "dltheory", "torch", "python")
        if key in meta
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
        "PyTorch networks (mean ± standard error) and a verdict.</p>"
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
