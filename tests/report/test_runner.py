"""run_report: files after every reproduction, interrupts, errors; the HTML writer."""

from __future__ import annotations

import base64
import io
import json

import pytest
from rich.console import Console

from dltheory import Estimate
from dltheory.report import (
    Outcome,
    Reproduction,
    new_figure,
    png_bytes,
    run_report,
)


def _figure() -> bytes:
    fig, (ax,) = new_figure()
    ax.plot([1, 2, 3], [1, 4, 9])
    return png_bytes(fig)


def _passing(quick=False, seed=0):
    return Outcome([1.0, 2.0], Estimate([1.0, 2.1], [0.1, 0.1], 9), True, "rule", "ok",
                   {"quick": quick, "seed": seed}, {"z": [0.0, 1.0]}, _figure())  # fmt: skip


def _registry(**runs) -> dict[str, Reproduction]:
    return {
        name: Reproduction(name, f"Title of {name}", "Claim.", run) for name, run in runs.items()
    }


def _interrupt(quick=False, seed=0):
    raise KeyboardInterrupt


def _raise(quick=False, seed=0):
    raise ZeroDivisionError("division by zero")


def test_writes_both_files_with_every_number(tmp_path):
    run = run_report(tmp_path / "out", quick=True, seed=4, progress=False,
                     registry=_registry(first=_passing))  # fmt: skip
    doc = json.loads(run.json_path.read_text())
    assert doc["status"] == "complete" and doc["quick"] is True and doc["seed"] == 4
    assert doc["counts"] == {"pass": 1, "fail": 0, "error": 0}
    (record,) = doc["results"]
    assert record["prediction"] == [1.0, 2.0]
    assert record["measurement"] == {"mean": [1.0, 2.1], "stderr": [0.1, 0.1], "n": 9}
    assert record["parameters"] == {"quick": True, "seed": 4}
    assert record["seconds"] >= 0
    page = run.html_path.read_text()
    assert "Title of first" in page and "Claim." in page
    data = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(data).startswith(b"\x89PNG")


def test_interrupt_keeps_finished_results(tmp_path):
    registry = _registry(first=_passing, second=_interrupt, third=_passing)
    with pytest.raises(KeyboardInterrupt):
        run_report(tmp_path, progress=False, registry=registry)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["status"] == "interrupted"
    assert [r["name"] for r in doc["results"]] == ["first"]
    assert doc["pending"] == ["second", "third"]
    page = (tmp_path / "report.html").read_text()
    assert "Title of first" in page and "Partial report (interrupted)" in page
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_error_is_recorded_and_the_run_goes_on(tmp_path):
    run = run_report(tmp_path, only=["boom", "last"], progress=False,
                     registry=_registry(boom=_raise, skipped=_passing, last=_passing))  # fmt: skip
    assert [r.status for r in run.results] == ["error", "pass"]
    assert run.results[0].error == "ZeroDivisionError: division by zero"
    doc = json.loads(run.json_path.read_text())
    assert doc["counts"] == {"pass": 1, "fail": 0, "error": 1}
    assert "ZeroDivisionError: division by zero" in run.html_path.read_text()


def test_a_wrong_return_type_is_an_error(tmp_path):
    run = run_report(tmp_path, progress=False, registry=_registry(bad=lambda quick, seed: 1.0))
    assert run.results[0].status == "error"
    assert "bad's return value must be an Outcome" in run.results[0].error


def test_progress_goes_to_the_given_console(tmp_path):
    buffer = io.StringIO()
    run_report(tmp_path, progress=True, registry=_registry(first=_passing),
               console=Console(file=buffer, width=100))  # fmt: skip
    assert "first" in buffer.getvalue() and "pass" in buffer.getvalue()


def test_bad_arguments(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"^out_dir must be a directory"):
        run_report(tmp_path / "file", progress=False, registry=_registry(first=_passing))
    with pytest.raises(ValueError, match=r"^only must be names of registered reproductions"):
        run_report(tmp_path / "new", only="nope", progress=False, registry=_registry(a=_passing))
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0"):
        run_report(tmp_path, seed=-1, progress=False, registry=_registry(a=_passing))


def test_quick_runs_use_one_thread_and_full_runs_keep_the_default(tmp_path):
    import torch
    from threadpoolctl import threadpool_info

    seen = {}

    def run(quick=False, seed=0):
        blas = [pool["num_threads"] for pool in threadpool_info()]
        seen[quick] = (torch.get_num_threads(), blas)
        return Outcome(1.0, Estimate(1.0, 0.1, 4), True, "rule", label="x", tolerance="1σ")

    registry = {"threads": Reproduction("threads", "T", "C.", run)}
    before = torch.get_num_threads()
    run_report(tmp_path / "q", quick=True, progress=False, registry=registry)
    assert seen[True][0] == 1 and all(n == 1 for n in seen[True][1])
    run_report(tmp_path / "f", quick=False, progress=False, registry=registry)
    assert seen[False][0] == before and torch.get_num_threads() == before
    run_report(tmp_path / "t", quick=False, progress=False, registry=registry, threads=1)
    assert seen[False][0] == 1
