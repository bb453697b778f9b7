"""Reproductions of the course: prediction vs measurement, verdicts, the report.

* :mod:`~dltheory.report.registry`: ``@reproduction(name, title=..., claim=...)``
  registers ``run(quick, seed) -> Outcome``; topic modules live in
  :mod:`dltheory.report.experiments`.
* :mod:`~dltheory.report.result`: ``Outcome`` (what a reproduction returns) and
  ``Result`` (what the report records).
* :mod:`~dltheory.report.quantities`: ``Quantity`` (a labelled row: prediction
  vs an ``Estimate`` or an exact value) and ``Table`` (a small table).
* :mod:`~dltheory.report.runner`: ``run_report(out_dir, quick, only, progress)``
  writes ``results.json`` and a self-contained ``report.html`` after every
  reproduction, merging into a report already in ``out_dir``.
* :mod:`~dltheory.report.lint`: ``report_problems(page)``, what a reader must never
  meet in a rendered report (an unlabelled headline, a missing tolerance, a
  z-score on a bound); ``check_text(result)`` is the one-cell check of a result
  (|z|, the margin to a bound, or the exact difference).
"""

from .figures import new_figure, png_bytes, svg_bytes
from .html_report import check_text, render_html, write_html
from .lint import report_problems
from .quantities import Quantity, Table
from .registry import REGISTRY, Reproduction, registered, reproduction, select
from .result import CLAIM_KINDS, Outcome, Result
from .runner import HTML_NAME, JSON_NAME, ReportRun, load_report, run_one, run_report
from .writers import atomic_write, write_json

__all__ = [
    "CLAIM_KINDS",
    "HTML_NAME",
    "JSON_NAME",
    "REGISTRY",
    "Outcome",
    "Quantity",
    "ReportRun",
    "Reproduction",
    "Result",
    "Table",
    "atomic_write",
    "check_text",
    "load_report",
    "new_figure",
    "png_bytes",
    "registered",
    "render_html",
    "report_problems",
    "reproduction",
    "run_one",
    "run_report",
    "select",
    "svg_bytes",
    "write_html",
    "write_json",
]
