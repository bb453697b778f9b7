"""What a reader of the report must never meet, found in the rendered HTML.

:func:`report_problems` reads a page from :func:`~dltheory.report.render_html`
and lists every headline quantity without a label, every row without a
tolerance, every bound claim shown with a z-score (a bound has a margin, not a
z-score) and every headline check that is missing. The report's tests run it
over the quick outcomes of every reproduction, so a new reproduction that
forgets its ``label``, ``tolerance`` or ``kind`` fails there.
"""

from __future__ import annotations

import re

__all__ = ["report_problems"]

_SECTION = re.compile(r'<section id="([^"]+)" data-kind="([a-z]*)">(.*?)</section>', re.S)
_ROW = re.compile(r'<tr data-kind="([a-z]*)"><td class="name"><a href="#([^"]+)">(.*?)</tr>', re.S)
_Z = re.compile(r"\|z\||<th>z</th>|z-score")


def report_problems(page: str) -> list[str]:
    """The reader-facing defects of a rendered report, one line each (empty: none).

    >>> report_problems('<section id="a" data-kind="bound"><div class="headline">'
    ...                 "<th>z</th></div><!-- /headline --></section>")
    ['a: a bound claim shown with a z-score', 'a: no tolerance stated']
    """
    problems = []
    for name, kind, body in _SECTION.findall(page):
        if 'class="error"' in body.split("<h2>", 1)[-1].split("</h2>", 1)[-1][:400]:
            continue  # an error entry has no values to label
        headline = body.split('<div class="headline">', 1)[-1].split("<!-- /headline -->", 1)[0]
        if "unlabelled" in headline:
            problems.append(f"{name}: headline quantity unlabelled")
        if kind == "bound" and _Z.search(headline):
            problems.append(f"{name}: a bound claim shown with a z-score")
        if "tolerance: not stated" in headline or "tolerance:" not in headline:
            problems.append(f"{name}: no tolerance stated")
        if re.search(r"<th>check \([a-z]+\)</th><td class=\"num\">—", headline):
            problems.append(f"{name}: no check value (|z|, margin or exact difference)")
    for kind, name, cells in _ROW.findall(page):
        if "not stated" in cells:
            problems.append(f"{name}: summary row without a tolerance")
        if kind == "bound" and _Z.search(cells):
            problems.append(f"{name}: summary row shows a z-score for a bound claim")
    return problems
