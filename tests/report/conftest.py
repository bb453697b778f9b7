"""Shared fixtures of the report tests."""

from __future__ import annotations

import pytest

from dltheory.report import Result, render_html
from dltheory.report.lint import report_problems
from dltheory.report.registry import registered


def reader_problems(name, outcome):
    """What a reader of the rendered report would trip over in ``outcome`` of ``name``.

    An unlabelled headline, a missing tolerance, a z-score on a bound claim, a missing
    check (see :func:`dltheory.report.lint.report_problems`); empty when none.
    """
    rep = registered()[name]
    result = Result.from_outcome(rep, outcome, seconds=0.0, seed=0, quick=True)
    return report_problems(render_html([result], {"status": "complete"}))


@pytest.fixture(scope="module")
def quick_outcome(request):
    """Runs each reproduction of the test module's ``_RUNS`` (quick mode) at most once.

    Every outcome is also rendered and read as the report's reader would: the
    fixture fails on an unlabelled headline, a missing tolerance or a z-score
    shown for a bound claim.
    """
    runs = request.module._RUNS
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = runs[name](quick=True, seed=0)
            problems = reader_problems(name, cache[name])
            assert problems == [], problems
        return cache[name]

    return get
