"""Every script in examples/ runs as written (in-process, so imports are paid once)."""

from __future__ import annotations

import ast
import runpy
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_there_are_examples_for_what_users_come_for():
    names = {p.stem for p in EXAMPLES}
    assert {"kernels_of_your_model", "critical_init", "theory_vs_ensemble",
            "regions_of_a_trained_net"} <= names  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, capsys):
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip(), f"{path.name} printed nothing"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_asserts_what_it_prints(path):
    # An example's printed claim is checked in the example itself (issue 22: two printed
    # claims their own numbers contradicted), so running it is a test of the claim.
    tree = ast.parse(path.read_text())
    assert any(isinstance(node, ast.Assert) for node in ast.walk(tree)), path.name
