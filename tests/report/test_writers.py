"""Atomic writes and the JSON document."""

from __future__ import annotations

import json

import pytest

from dltheory import Estimate
from dltheory.report import Outcome, Reproduction, Result, atomic_write, write_json


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write(path, "old")
    atomic_write(path, b"new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_write_json_is_strict_and_counts_statuses(tmp_path):
    rep = Reproduction("demo", "T", "C.", lambda quick=False, seed=0: None)
    outcome = Outcome(float("nan"), Estimate(float("inf"), 0.1, 3), False, "rule")
    result = Result.from_outcome(rep, outcome, seconds=0.1, seed=0, quick=True)
    path = write_json(tmp_path / "r.json", [result], {"status": "running"}, pending=["next"])
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text)
    assert doc["status"] == "running" and doc["pending"] == ["next"]
    assert doc["counts"] == {"pass": 0, "fail": 1, "error": 0}
    assert doc["results"][0]["prediction"] is None
    assert doc["results"][0]["measurement"] == {"mean": None, "stderr": 0.1, "n": 3}


def test_atomic_write_cleans_up_after_a_failure(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("dltheory.report.writers.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "f.txt", "data")
    assert list(tmp_path.iterdir()) == []
