"""The reproduction registry: registration, selection, topic modules."""

from __future__ import annotations

import pkgutil

import pytest

from dltheory.report import Reproduction, experiments, registered, reproduction, select
from dltheory.report.experiments import finite_width  # noqa: F401  (imported before load())


def _run(quick=False, seed=0):
    raise AssertionError("not called")


def test_decorator_registers_and_returns_the_function():
    mine: dict[str, Reproduction] = {}
    returned = reproduction("demo_one", title="T", claim="C.", topic="x", registry=mine)(_run)
    assert returned is _run
    rep = mine["demo_one"]
    assert (rep.name, rep.title, rep.claim, rep.topic, rep.run) == (
        "demo_one",
        "T",
        "C.",
        "x",
        _run,
    )


def test_duplicate_name_is_refused():
    mine: dict[str, Reproduction] = {}
    reproduction("demo", title="T", claim="C.", registry=mine)(_run)
    with pytest.raises(
        ValueError, match=r"^name must be unique among reproductions\. Got 'demo'\."
    ):
        reproduction("demo", title="T", claim="C.", registry=mine)(_run)


@pytest.mark.parametrize("name", ["Bad-Name", "", "1abc", "with space"])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError, match=r"^name must be a snake_case identifier"):
        reproduction(name, title="T", claim="C.", registry={})(_run)


def test_empty_title_is_refused():
    with pytest.raises(ValueError, match=r"^title must be a non-empty string\. Got ''\."):
        reproduction("demo", title="", claim="C.", registry={})(_run)


def test_select_keeps_registry_order_and_refuses_unknown_names():
    mine: dict[str, Reproduction] = {}
    for name in ("b_first", "a_second", "c_third"):
        reproduction(name, title="T", claim="C.", registry=mine)(_run)
    assert [r.name for r in select(None, mine)] == ["b_first", "a_second", "c_third"]
    assert [r.name for r in select(["c_third", "b_first"], mine)] == ["b_first", "c_third"]
    assert [r.name for r in select("a_second", mine)] == ["a_second"]
    with pytest.raises(ValueError, match=r"^only must be names of registered reproductions"):
        select(["nope"], mine)


def test_every_topic_module_is_listed_and_loaded():
    on_disk = {info.name for info in pkgutil.iter_modules(experiments.__path__)}
    assert on_disk == set(experiments.MODULES)
    reps = registered()
    # Report order follows MODULES (propagation, then finite width), whatever the import order.
    assert [n for n in reps if n in ("fan_in_variance", "gaussian_outputs")] == [
        "fan_in_variance",
        "gaussian_outputs",
    ]
    for rep in reps.values():
        assert rep.title.strip() and rep.claim.strip() and rep.topic.strip()


def test_every_reproduction_is_read_as_the_report_reader_would():
    """Each registered reproduction's quick outcome goes through the reader check.

    The check (``reader_problems``: labels, tolerances, no z-score on a bound) runs in
    the ``quick_outcome`` fixture or by an explicit call; a test module that names a
    reproduction must use one of the two.
    """
    from pathlib import Path

    from dltheory.report import registered

    here = Path(__file__).parent
    texts = [
        p.read_text()
        for p in here.glob("test_*.py")
        if "quick_outcome" in p.read_text() or "reader_problems(" in p.read_text()
    ]
    missing = [name for name in registered() if not any(name in text for text in texts)]
    assert missing == []
