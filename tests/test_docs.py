"""The documentation site builds with no warning, and its code examples run.

``mkdocs build --strict`` fails on any warning (a broken link, a nav entry
without a page, a docstring griffe cannot parse). Topic pages dropped into
docs/topics/ join the navigation without being listed (awesome-pages), which
the second test checks on a copy of the docs.
"""

from __future__ import annotations

import html
import importlib
import inspect
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


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for the tests that read it (about 15 s)."""
    out = tmp_path_factory.mktemp("docs") / "site"
    proc = _build(ROOT / "mkdocs.yml", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _warnings(proc) == []
    return out


def _pages(site: Path) -> dict[str, str]:
    return {str(p.relative_to(site)): p.read_text() for p in sorted(site.rglob("index.html"))}


def _text(page: str) -> str:
    """What a reader sees: tags and <math> elements removed, entities decoded."""
    page = re.sub(r"<math.*?</math>", " ", page, flags=re.S)
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_docs_build_strict_without_warnings(site):
    for page in ("index.html", "conventions/index.html", "topics/criticality/index.html",
                 "api/kernels/index.html", "benchmarks/index.html"):  # fmt: skip
        assert (site / page).is_file(), page
    api = (site / "api" / "kernels" / "index.html").read_text()
    assert "finite_width_corrections" in api  # generated from the docstrings
    assert "Benchmark" in (site / "benchmarks" / "index.html").read_text()  # RESULTS.md included


ROLE = re.compile(r":(py:)?(class|func|meth|attr|mod|data|obj|exc|const|math|ref):`?")


def test_no_raw_roles_or_broken_code_blocks(site):
    for name, page in _pages(site).items():
        text = _text(page)
        assert not ROLE.search(text), (name, ROLE.search(text))
        # a fence that Markdown did not close shows its backticks; a doctest outside a
        # code block reads as nested blockquotes or a paragraph starting with >>>
        assert "```" not in text, name
        assert not re.search(r"<blockquote>\s*<blockquote>", page), name
        assert not re.search(r"<p>\s*&gt;&gt;&gt;", page), name


def test_doctests_are_code_blocks_one_line_each(site):
    page = (site / "api" / "spec" / "index.html").read_text()
    blocks = re.findall(r'<div class="highlight">(.*?)</div>', page, flags=re.S)
    doctests = [b for b in blocks if "&gt;&gt;&gt;" in b]
    assert doctests, "no doctest rendered as a code block"
    shown = _text(doctests[0])
    assert ">>>" in shown and "\n" in shown.strip()  # one statement per line, not run together


def test_every_public_name_is_on_its_api_page(site):
    for md in sorted((DOCS / "api").glob("*.md")):
        for target in re.findall(r"^::: (dltheory\.\w+)\s*$", md.read_text(), flags=re.M):
            module = importlib.import_module(target)
            page = (site / "api" / md.stem / "index.html").read_text()
            objects = {n: getattr(module, n) for n in module.__all__}
            public = [n for n, o in objects.items() if inspect.isclass(o) or inspect.isfunction(o)]
            # documented here (id), or here under its module's path, or linked to its page
            missing = [n for n in public if not re.search(rf'(id="|#)dltheory(\.\w+)*\.{n}"', page)]
            assert not missing, (md.name, missing)


def test_parameters_show_their_defaults(site):
    page = (site / "api" / "kernels" / "index.html").read_text()
    assert "x2=None" in _text(page) and 'backend="auto"' in html.unescape(_text(page))
    for name, page in _pages(site).items():
        if not name.startswith("api/"):
            continue
        # "c_w, c_b: ..." documented together is split, each matched with its default
        cells = re.findall(r"<td><code>([^<]*)</code></td>", page)
        assert not [c for c in cells if "," in c], name


def test_maths_is_rendered_and_free_of_stray_markdown(site):
    pages = _pages(site)
    for name, page in pages.items():
        assert 'class="arithmatex"' not in page, name  # every formula became MathML
        # a `$` left in prose is an unrendered formula; code may hold mathtext or a prompt
        text = _text(re.sub(r"<pre.*?</pre>|<code.*?</code>", "", page, flags=re.S))
        assert "$" not in text, name
    maths_pages = [n for n in pages if n.startswith("topics/")] + ["conventions/index.html"]
    assert len(maths_pages) >= 12
    for name in maths_pages:
        assert "<math" in pages[name], name
        # one notation: LaTeX rendered as MathML, not Unicode superscripts and Greek in prose
        prose = _text(re.sub(r"<pre.*?</pre>|<code.*?</code>", "", pages[name], flags=re.S))
        assert not re.findall(r"[⁽⁾ˡᴸ⁺χσΘλ∥⊥≈≤≥∑∏ₗ]", prose), name
        # a `*` read as emphasis inside a formula: <em> glued to a letter or bracket
        outside = re.sub(r"<math.*?</math>", "", pages[name], flags=re.S)
        assert not re.search(r"[\w(]<em>|</em>[\w)]", outside), name
    # the examples: f_t(x*) and K* keep their stars, a table cell keeps its |
    dynamics = pages["topics/dynamics/index.html"]
    assert "<mo>*</mo>" in dynamics or "<mo>∗</mo>" in dynamics or "<msup>" in dynamics


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
