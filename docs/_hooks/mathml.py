"""MkDocs hook: the site's maths rendered at build time as MathML (no JavaScript, no CDN).

``pymdownx.arithmatex`` (generic mode) marks ``$...$`` and ``$$...$$`` in the pages
as ``<span class="arithmatex">\\(...\\)</span>`` and ``<div class="arithmatex">\\[...\\]</div>``;
this hook replaces each with the MathML that ``latex2mathml`` makes of it, which
every current browser renders natively. The site therefore builds and reads offline.
A formula that latex2mathml cannot convert fails the build with the page and the formula.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_INLINE = re.compile(r'<span class="arithmatex">\\\((.*?)\\\)</span>', flags=re.S)
_BLOCK = re.compile(r'<div class="arithmatex">\\\[(.*?)\\\]</div>', flags=re.S)


def _mathml(tex: str, display: str, where: str) -> str:
    source = html.unescape(tex).strip()
    try:
        return convert(source, display=display)
    except Exception as err:  # latex2mathml raises several types; name the formula
        raise ValueError(f"{where}: cannot convert the formula {source!r}: {err}") from err


def on_page_content(html_text: str, page, config, files) -> str:
    where = page.file.src_uri
    html_text = _BLOCK.sub(lambda m: _mathml(m.group(1), "block", where), html_text)
    return _INLINE.sub(lambda m: _mathml(m.group(1), "inline", where), html_text)
