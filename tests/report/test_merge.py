"""run_report merges into an existing report, resumes, stamps entries, refuses foreign files."""

from __future__ import annotations

import json

import pytest

from dltheory import Estimate, __version__
from dltheory.report import Outcome, Reproduction, load_report, new_figure, png_bytes, run_report

CALLS: list[str] = []


def _make(name: str, value: float):
    def run(quick=False, seed=0):
        CALLS.append(name)
        fig, (ax,) = new_figure()
        ax.plot([0, 1], [value, value])
        return Outcome(value, Estimate(value, 0.1, 10), True, "rule", figure=png_bytes(fig),
                       label=f"{name} value")  # fmt: skip

    return run


def _registry(**values) -> dict[str, Reproduction]:
    return {n: Reproduction(n, f"Title {n}", "Claim.", _make(n, v)) for n, v in values.items()}


def test_only_merges_and_keeps_the_others(tmp_path):
    reg = _registry(a=1.0, b=2.0, c=3.0)
    run_report(tmp_path, quick=False, seed=3, progress=False, registry=reg)
    first = {r["name"]: r for r in json.loads((tmp_path / "results.json").read_text())["results"]}
    reg2 = _registry(a=1.0, b=20.0, c=3.0)
    run = run_report(tmp_path, quick=True, only=["b"], seed=5, progress=False, registry=reg2)
    assert run.ran == ("b",)
    doc = json.loads((tmp_path / "results.json").read_text())
    entries = {r["name"]: r for r in doc["results"]}
    assert list(entries) == ["a", "b", "c"]  # registry order, nothing lost
    assert entries["a"] == first["a"] and entries["c"] == first["c"]  # kept as they were
    assert entries["b"]["prediction"] == 20.0
    assert (entries["b"]["quick"], entries["b"]["seed"]) == (True, 5)
    assert (entries["a"]["quick"], entries["a"]["seed"]) == (False, 3)
    for entry in entries.values():
        assert (
            entry["version"] == __version__ and entry["finished"] and entry["backend"] == "serial"
        )
        assert "commit" in entry
    page = (tmp_path / "report.html").read_text()
    assert page.count("<section") == 3 and page.count("data:image/png;base64,") == 3
    assert "a value" in page and "quick size, seed 5" in page and "full size, seed 3" in page


def test_resume_skips_finished_entries_of_the_same_size_and_seed(tmp_path):
    reg = _registry(a=1.0, b=2.0)
    run_report(tmp_path, only=["a"], progress=False, registry=reg)
    CALLS.clear()
    run = run_report(tmp_path, resume=True, progress=False, registry=reg)
    assert CALLS == ["b"] and run.ran == ("b",)
    CALLS.clear()
    run_report(tmp_path, resume=True, quick=True, progress=False, registry=reg)
    assert CALLS == ["a", "b"]  # another size: nothing to resume


def test_results_round_trip_with_figures(tmp_path):
    run = run_report(tmp_path, progress=False, registry=_registry(a=1.5))
    (loaded,) = load_report(tmp_path)
    (original,) = run.results
    assert loaded.to_dict() == original.to_dict()
    assert loaded.figure == original.figure == (tmp_path / "figures" / "a.png").read_bytes()


def test_a_foreign_results_json_is_refused_not_overwritten(tmp_path):
    (tmp_path / "results.json").write_text('{"something": "else"}')
    with pytest.raises(ValueError, match=r"^out_dir must be a new directory or one holding"):
        run_report(tmp_path, progress=False, registry=_registry(a=1.0))
    assert (tmp_path / "results.json").read_text() == '{"something": "else"}'


def test_a_report_of_the_first_format_is_merged_not_lost(tmp_path):
    run_report(tmp_path, progress=False, registry=_registry(a=1.0))
    doc = json.loads((tmp_path / "results.json").read_text())
    del doc["format"]  # what dltheory 0.1.0 before stamps wrote
    for entry in doc["results"]:
        for key in ("finished", "version", "commit", "backend", "rows", "tables", "label"):
            del entry[key]
    (tmp_path / "results.json").write_text(json.dumps(doc))
    run_report(tmp_path, only=["b"], progress=False, registry=_registry(a=1.0, b=2.0))
    names = [r["name"] for r in json.loads((tmp_path / "results.json").read_text())["results"]]
    assert names == ["a", "b"]
