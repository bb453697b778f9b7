"""The self-contained HTML report."""

from __future__ import annotations

import base64

from dltheory import Estimate
from dltheory.report import Outcome, Reproduction, Result, new_figure, png_bytes, render_html
from dltheory.report.lint import report_problems


def _passing(quick=False, seed=0):
    fig, (ax,) = new_figure()
    ax.plot([1, 2, 3], [1, 4, 9])
    return Outcome(2.0, Estimate(2.1, 0.1, 9), True, "rule", "ok", figure=png_bytes(fig))


def test_html_escapes_text_and_has_no_external_resources():
    rep = Reproduction("evil", "<script>alert(1)</script>", "a < b & c", _passing)
    result = Result.from_outcome(rep, _passing(), seconds=0.5, seed=0, quick=False)
    page = render_html([result], {"status": "complete"}, pending=["later"])
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a &lt; b &amp; c" in page
    for external in ("<link", 'src="http', 'href="http', "@import"):
        assert external not in page
    assert "later" in page and "pending" in page


def test_html_shows_every_part_of_a_result():
    rep = Reproduction("demo", "A title", "The claim.", _passing, "topic", "A reference")
    result = Result.from_outcome(rep, _passing(), seconds=1.25, seed=7, quick=True)
    page = render_html([result], {"status": "complete", "seed": 7})
    parts = ("A title", "The claim.", "A reference", "2.10 ± 0.10", "rule", "ok", "runtime 1.2 s")
    for part in parts:
        assert part in page, part
    assert '<span class="pass">pass</span>' in page
    data = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(data) == result.figure
    assert "Partial report" not in page


def test_html_shows_errors_and_partial_runs():
    rep = Reproduction("demo", "A title", "The claim.", _passing)
    failed = Result.from_error(rep, RuntimeError("it broke"), seconds=0.1, seed=0, quick=False)
    page = render_html([failed], {"status": "interrupted"}, pending=["other"])
    assert "RuntimeError: it broke" in page
    assert "Partial report (interrupted): 1 of 2" in page


def _page(outcome, name="demo"):
    rep = Reproduction(name, "A title", "The claim.", lambda quick=False, seed=0: outcome)
    result = Result.from_outcome(rep, outcome, seconds=1.0, seed=0, quick=True)
    return render_html([result], {"status": "complete"})


def test_bound_claims_show_the_margin_never_a_z_score():
    outcome = Outcome(
        [3, 1, 0], Estimate([2, 1, 0], [0, 0, 0], 10), True, "failures <= allowed",
        label="failures (a count)", index=[16, 64, 256], index_label="target dimension m",
        kind="bound", bound="upper", exact=True, tolerance="the 0.999 binomial quantile",
    )  # fmt: skip
    assert outcome.max_z is None
    page = _page(outcome)
    headline = page.split('<div class="headline">', 1)[1].split("<!-- /headline -->", 1)[0]
    assert "<th>margin</th>" in headline and "<th>z</th>" not in headline
    assert "|z|" not in headline
    # Margins 3 - 2 = 1, 1 - 1 = 0, 0 - 0 = 0: the smallest is 0.
    assert "margin +0 (bound ≤)" in page
    assert "<td>target dimension m</td>" in page or "<th>target dimension m</th>" in page
    assert report_problems(page) == []


def test_a_scalar_bound_states_its_margin_and_side():
    outcome = Outcome(10.0, Estimate(31.5, 0.0, 1), True, "drop >= 10", label="drop (×)",
                      kind="bound", bound="lower", exact=True, tolerance="none")  # fmt: skip
    page = _page(outcome)
    assert "lower bound" in page and "margin +21.5 (bound ≥)" in page
    assert "± 0" not in page


def test_exact_values_are_shown_as_exact():
    outcome = Outcome(10, Estimate(8, 0.0, 1), True, "C ± 3", label="outliers (a count)",
                      kind="exact", tolerance="C ± 3")  # fmt: skip
    page = _page(outcome)
    assert '<td class="num">8</td>' in page and "8 ± 0" not in page and "n = 1" not in page
    assert "exact, Δ = -2 (-20 %)" in page


def test_reader_problems_are_found():
    unlabelled = Outcome(1.0, Estimate(1.1, 0.1, 9), True, "rule")
    problems = report_problems(_page(unlabelled, "bare"))
    assert "bare: headline quantity unlabelled" in problems
    assert "bare: no tolerance stated" in problems
    assert "bare: summary row without a tolerance" in problems
    labelled = Outcome(1.0, Estimate(1.1, 0.1, 9), True, "rule", label="K", tolerance="3σ")
    assert report_problems(_page(labelled)) == []
    # A bound drawn with a z-score (as a hand-written headline might) is caught.
    page = _page(Outcome(1.0, Estimate(0.5, 0.1, 9), True, "r", label="x", tolerance="t",
                         kind="bound", bound="upper"))  # fmt: skip
    assert report_problems(page) == []
    forged = page.replace("margin to the bound", "|z|")
    assert "demo: a bound claim shown with a z-score" in report_problems(forged)


def test_z_scores_have_one_format():
    details = {"z_evidence": [0.123456789, -1.5], "max_abs_z": 2.3456789}
    outcome = Outcome(
        1.0, Estimate(1.1, 0.1, 9), True, "rule", label="K", tolerance="3σ", details=details
    )
    page = _page(outcome)
    assert "0.123457" not in page and "2.34568" not in page
    assert "0.12" in page and "-1.50" in page and "2.35" in page


def test_outcome_refuses_an_inconsistent_claim_kind():
    import pytest

    with pytest.raises(ValueError, match="kind must be one of"):
        Outcome(1.0, Estimate(1.0, 0.1, 9), True, "r", kind="approximate")
    with pytest.raises(ValueError, match="bound must be 'upper' or 'lower' exactly when"):
        Outcome(1.0, Estimate(1.0, 0.1, 9), True, "r", kind="bound")
    with pytest.raises(ValueError, match="bound must be 'upper' or 'lower' exactly when"):
        Outcome(1.0, Estimate(1.0, 0.1, 9), True, "r", bound="upper")
    with pytest.raises(ValueError, match="max_z must be None for a bound claim"):
        Outcome(1.0, Estimate(1.0, 0.1, 9), True, "r", kind="bound", bound="upper", max_z=2.0)
    assert Outcome(1, Estimate(1, 0.0, 1), True, "r", exact=True).kind == "exact"
    assert Outcome(1, Estimate(1, 0.0, 1), True, "r", kind="exact").exact is True


def test_summary_table_has_five_wrapping_columns():
    page = _page(Outcome(1.0, Estimate(1.1, 0.1, 9), True, "rule", label="K", tolerance="3σ"))
    head = page.split('<table class="overview">', 1)[1].split("</tr>", 1)[0]
    assert head.count("<th>") == 5
    assert "table.overview { width: 100%; }" in page
    assert "td.time { white-space: nowrap" in page.replace("table.overview td.time", "td.time")
