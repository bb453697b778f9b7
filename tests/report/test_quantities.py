"""Labelled quantities, tables, exact values, max |z| and their rendering."""

from __future__ import annotations

import math
import re

import pytest

from dltheory import Estimate
from dltheory.report import Outcome, Quantity, Reproduction, Result, Table, render_html
from dltheory.report.figures import is_svg, new_figure, svg_bytes
from dltheory.report.html_values import fmt, math_html
from dltheory.report.quantities import max_abs_z


def test_max_abs_z_by_hand():
    # |1.3 - 1| / 0.1 = 3, |2 - 2.5| / 0.25 = 2: the largest is 3.
    assert max_abs_z([1.0, 2.5], [1.3, 2.0], [0.1, 0.25]) == pytest.approx(3.0)
    assert max_abs_z(1.0, [1.0, 1.4], [0.2, 0.2]) == pytest.approx(2.0)  # scalar broadcast
    assert max_abs_z([1.0], [1.0], [0.0]) is None  # no stderr, no z
    assert max_abs_z({"a": 1}, 1.0, 0.1) is None


def test_outcome_computes_max_z_from_the_measurement_and_the_rows():
    out = Outcome([1.0, 1.0], Estimate([1.1, 0.8], [0.1, 0.1], 5), True, "c",
                  rows=[Quantity("q", 0.0, Estimate(0.5, 0.1, 9))])  # fmt: skip
    assert out.max_z == pytest.approx(5.0)  # the row: |0.5 - 0| / 0.1
    exact = Outcome(505, Estimate(505.0, 0.0, 1), True, "c", exact=True)
    assert exact.max_z is None
    assert Outcome(1.0, Estimate(9.0, 1.0, 2), True, "c", max_z=math.nan).max_z is None


def test_validation_messages():
    with pytest.raises(ValueError, match=r"^label must be a non-empty string"):
        Quantity("", 1.0)
    with pytest.raises(TypeError, match=r"^measured must be an Estimate, a number or None"):
        Quantity("q", 1.0, "3")
    with pytest.raises(ValueError, match=r"^rows must be rows of 2 cells"):
        Table("t", ("a", "b"), [(1, 2, 3)])
    with pytest.raises(ValueError, match=r"^rows must be at most 200 rows"):
        Table("t", ("a",), [(i,) for i in range(201)])
    with pytest.raises(TypeError, match=r"^rows must be a sequence of Quantity"):
        Outcome(1.0, Estimate(1.0, 0.1, 2), True, "c", rows=[1.0])
    with pytest.raises(ValueError, match=r"^max_z must be a number >= 0 or None"):
        Outcome(1.0, Estimate(1.0, 0.1, 2), True, "c", max_z=-1.0)


def test_math_is_legible_unicode():
    assert math_html("chi_perp(K*) = 1") == "χ<sub>⊥</sub>(K*) = 1"
    assert math_html("l K^(l), |x|^2/n_0") == "ℓ K<sup>(ℓ)</sup>, |x|<sup>2</sup>/n<sub>0</sub>"
    assert math_html("a < b") == "a &lt; b"  # escaped
    assert math_html("fan_in_variance") == "fan_in_variance"  # identifiers untouched


def test_numbers_exact_and_arrays_never_dumped():
    assert fmt(505, exact=True) == "505" and fmt(505.0, exact=True) == "505"
    assert fmt([1.0, 2.0]) == "(1, 2)"
    assert fmt([[0.1] * 3] * 50).startswith("50 × 3 array")


def _page(outcome: Outcome) -> str:
    rep = Reproduction("demo", "Demo", "Claim.", lambda quick=False, seed=0: outcome)
    return render_html([Result.from_outcome(rep, outcome, seconds=1.0, seed=0, quick=True)],
                       {"status": "complete"})  # fmt: skip


def test_rendering_labels_tables_exact_values_and_short_rows():
    layers = list(range(1, 61))
    outcome = Outcome(
        [[0.5] * 3] * 60, Estimate([[0.5] * 3] * 60, [[0.01] * 3] * 60, 40), True, "c",
        details={"zscores": [[0.1] * 3] * 60, "a_1": -2.0, "curve": [float(i) for i in layers]},
        label="l K^(l) at every layer", tolerance="5σ",
        rows=[Quantity("pieces", 516, 505, note="small regions are missed by the grid")],
        tables=[Table("per layer", ("layer l", "K"), [(i, 0.5) for i in layers])],
        caption="A caption.",
    )  # fmt: skip
    page = _page(outcome)
    assert "ℓ K<sup>(ℓ)</sup> at every layer" in page
    assert "505 (exact)" in page and "small regions are missed" in page
    assert "<caption>per layer</caption>" in page and "tolerance: 5σ" in page
    text = re.sub(r"<[^>]+>", "\n", page.split("<body>", 1)[1])
    longest = max(len(line) for line in text.splitlines())
    assert longest < 400, longest  # no row dumps a nested list (the 60 x 3 arrays are tables)
    exact = _page(Outcome(16, Estimate(16.0, 0.0, 1), True, "c", exact=True, label="pieces"))
    assert "exact computation" in exact and "± 0" not in exact


def test_svg_figures_are_embedded():
    fig, (ax,) = new_figure()
    ax.plot([0, 1], [0, 1])
    svg = svg_bytes(fig)
    assert is_svg(svg)
    page = _page(Outcome(1.0, Estimate(1.0, 0.1, 3), True, "c", figure=svg, caption="Line."))
    assert 'src="data:image/svg+xml;base64,' in page and "<figcaption>Figure. Line." in page
