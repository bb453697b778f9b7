"""RESULTS.md holds one section per benchmark script; each full run rewrites only its own.

Sections are delimited by ``<!-- begin NAME -->`` / ``<!-- end NAME -->``; a
section not yet in the file is appended, in the order the scripts first ran.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, text: str, path: Path = RESULTS) -> None:
    """Replace (or append) the section ``name`` of ``path`` with ``text``."""
    block = f"<!-- begin {name} -->\n{text.rstrip()}\n<!-- end {name} -->\n"
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(
        rf"<!-- begin {re.escape(name)} -->\n.*?<!-- end {re.escape(name)} -->\n", re.S
    )
    new = (
        pattern.sub(lambda _: block, old)
        if pattern.search(old)
        else old + ("\n" if old else "") + block
    )
    path.write_text(new)


def run_and_record(name: str, main: Callable[[], None], quick: bool) -> None:
    """Run ``main`` (which prints a markdown section); unless ``quick``, store it as ``name``."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main()
    sys.stdout.write(buffer.getvalue())
    if not quick:
        write_section(name, buffer.getvalue())
        print(f"wrote section {name!r} of {RESULTS}")
