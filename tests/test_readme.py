"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1
    assert len(blocks[0].strip().splitlines()) <= 20
    exec(compile(blocks[0], str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "max |z| of output covariance vs NNGP" in out


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert "make report" in text and "make test" in text


def test_readme_counts_the_registered_reproductions():
    from dltheory.report import registered

    text = README.read_text()
    counts = {int(n) for n in re.findall(r"all (\d+)(?: reproductions| in small versions)", text)}
    counts |= {int(a) for a, b in re.findall(r"(\d+) of (\d+) pass", text) if a == b}
    assert counts == {len(registered())}, counts
