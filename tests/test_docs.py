"""The documentation site builds with no warning, and its code examples run.

``mkdocs build --strict`` fails on any warning (a broken link, a nav entry
without a page, a docstring griffe cannot parse). Topic pages dropped into
docs/topics/ join the navigation without being listed (awesome-pages), which
the second test checks on a copy of the docs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"```python\n(.*?)```", flags=re.S)


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        capture_output=True, text=True, timeout=600, env=env, cwd=config.parent,
    )  # fmt: skip


def _warnings(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if "WARNING" in line]


def test_docs_build_strict_without_warnings(tmp_path):
    proc = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _warnings(proc) == []
    site = tmp_path / "site"
    for page in ("index.html", "conventions/index.html", "topics/criticality/index.html",
                 "api/kernels/index.html", "benchmarks/index.html"):  # fmt: skip
        assert (site / page).is_file(), page
    api = (site / "api" / "kernels" / "index.html").read_text()
    assert "finite_width_corrections" in api  # generated from the docstrings
    assert "Benchmark" in (site / "benchmarks" / "index.html").read_text()  # RESULTS.md included


def test_an_unlisted_topic_page_joins_the_navigation(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    (copy / "src").symlink_to(ROOT / "src")
    (copy / "benchmarks").symlink_to(ROOT / "benchmarks")
    (copy / "docs" / "topics" / "zz_new_topic.md").write_text("# A new topic\n\nText.\n")
    proc = _build(copy / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "topics" / "zz_new_topic" / "index.html").is_file()
    home = (tmp_path / "site" / "index.html").read_text()
    assert "A new topic" in home  # in the navigation


def test_docs_do_not_point_outside_the_repository():
    for page in [*PAGES, ROOT / "README.md"]:
        text = page.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, page


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_docs_code_examples_run(page, capsys):
    blocks = FENCE.findall(page.read_text())
    namespace: dict = {"__name__": "__docs__"}
    for block in blocks:  # the blocks of one page run in order, sharing names
        exec(compile(block, str(page), "exec"), namespace)
    capsys.readouterr()
