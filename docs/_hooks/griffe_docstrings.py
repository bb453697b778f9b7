"""Griffe extension of the documentation build: docstrings as the site shows them.

The project's docstrings are written for ``help()`` and doctest (Google style,
ASCII maths, ``>>>`` examples, the odd Sphinx role). Before mkdocstrings renders
them as Markdown, this extension

* fences every run of doctest lines (``>>>``, ``...`` and their output) as a
  ``pycon`` code block, so Markdown does not read ``>>>`` as nested blockquotes;
* turns Sphinx roles (``:class:`~pkg.Name```, ``:func:`name```) into code spans;
* escapes ``*`` outside code (``K*``, ``f(x*)``), which Markdown reads as emphasis;
* splits an entry that documents several parameters together (``c_w, c_b: ...``)
  into one entry per parameter, so each is matched with its default in the signature;
* reads a docstring built at import time (``__doc__ = ...``, the classifiers) by
  importing the object, where static analysis finds none.

Nothing in the library changes: ``help()`` and the doctests read the docstrings as written.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|obj|exc|const|term|ref):`~?([^`]+)`")
_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params|Attributes|Keyword Args):\s*$")
_MULTI = re.compile(r"^(\s+)([A-Za-z_*][\w*]*(?:\s*,\s*[A-Za-z_*][\w*]*)+)(\s*\([^)]*\))?:(\s.*|)$")
_CODE = re.compile(r"(``?[^`]+``?)")


def _role(match: re.Match) -> str:
    target = match.group(1)
    shown = target.split(".")[-1] if match.group(0).split("`")[1].startswith("~") else target
    return f"`{shown}`"


def _escape_stars(line: str) -> str:
    parts = _CODE.split(line)  # odd parts are code spans: left as they are
    return "".join(p if i % 2 else re.sub(r"(?<!\\)\*", r"\\*", p) for i, p in enumerate(parts))


def _split_params(lines: list[str]) -> list[str]:
    out: list[str] = []
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        head = _SECTION.match(line)
        if head:
            section_indent = len(head.group(1))
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        if section_indent is not None and line.strip() and indent <= section_indent:
            section_indent = None
        multi = _MULTI.match(line) if section_indent is not None else None
        if multi:
            block = [line]
            while i + 1 < len(lines) and (
                not lines[i + 1].strip() or len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent
            ):
                if not lines[i + 1].strip() and (
                    i + 2 >= len(lines) or len(lines[i + 2]) - len(lines[i + 2].lstrip()) <= indent
                ):
                    break
                i += 1
                block.append(lines[i])
            names = [n.strip() for n in multi.group(2).split(",")]
            for name in names:
                out.append(f"{multi.group(1)}{name}{multi.group(3) or ''}:{multi.group(4)}")
                out.extend(block[1:])
            i += 1
            continue
        out.append(line)
        i += 1
    return out


_EXAMPLE = re.compile(r"^(\s*)Examples?:\s*$")


def _dedent_examples(lines: list[str]) -> list[str]:
    """An ``Example:`` section's body moved out to the header's indentation: plain text
    with fenced code, instead of an indented block Markdown would show verbatim."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        head = _EXAMPLE.match(lines[i])
        i += 1
        if not head:
            continue
        base = len(head.group(1))
        body: list[str] = []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > base
        ):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
            i -= 1
        shift = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=base) - base
        out += ["", *(b[shift:] if b.strip() else "" for b in body)]
    return out


def _fence_doctests(lines: list[str]) -> list[str]:
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence or not stripped.startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        block = []
        while i < len(lines) and lines[i].strip():
            this = lines[i]
            if len(this) - len(this.lstrip()) < len(indent):
                break
            block.append(this[len(indent) :])
            i += 1
        if out and out[-1].strip():
            out.append("")
        out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
        if i < len(lines) and lines[i].strip():
            out.append("")
    return out


def docstring_for_the_site(text: str) -> str:
    """The Markdown that mkdocstrings should render for one docstring."""
    lines = _split_params(text.splitlines())
    lines = _fence_doctests(_dedent_examples(lines))
    fixed: list[str] = []
    in_fence = False
    for line in lines:
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            fixed.append(line)
            continue
        fixed.append(line if in_fence else _escape_stars(_ROLE.sub(_role, line)))
    return "\n".join(fixed)


class DocstringsForTheSite(griffe.Extension):
    """Apply :func:`docstring_for_the_site` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None and obj.is_class and not obj.name.startswith("_"):
            doc = _runtime_doc(obj)
            if doc:
                obj.docstring = griffe.Docstring(doc, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = docstring_for_the_site(obj.docstring.value)


def _runtime_doc(obj: griffe.Object) -> str | None:
    try:
        value = getattr(importlib.import_module(obj.module.path), obj.name)
    except Exception:  # not importable here: keep what static analysis found
        return None
    doc = value.__dict__.get("__doc__") if isinstance(value, type) else None
    return inspect.cleandoc(doc) if doc else None
