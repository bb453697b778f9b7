"""The self-contained HTML report."""

from __future__ import annotations

import base64

from dltheory import Estimate
from dltheory.report import Outcome, Reproduction, Result, new_figure, png_bytes, render_html


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
