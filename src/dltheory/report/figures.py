"""Figures for the report: matplotlib's object API on the Agg canvas, as PNG bytes.

No ``pyplot``: figures are plain ``Figure`` objects rendered by
``FigureCanvasAgg``, so the report never touches global backend state and runs
headless.
"""

from __future__ import annotations

import io

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["PNG_SIGNATURE", "is_svg", "new_figure", "png_bytes", "svg_bytes"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def new_figure(ncols: int = 1, *, width: float = 5.0, height: float = 3.6) -> tuple[Figure, list]:
    """A figure with ``ncols`` side-by-side axes on an Agg canvas.

    Args:
        ncols: number of panels.
        width: width of one panel in inches.
        height: figure height in inches.

    Returns:
        (figure, list of ``ncols`` axes).

    >>> fig, axes = new_figure(2)
    >>> len(axes)
    2
    """
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def png_bytes(fig: Figure, *, dpi: int = 220) -> bytes:
    """Render ``fig`` to PNG bytes at 2x resolution (the report embeds them as base64).

    >>> fig, (ax,) = new_figure()
    >>> png_bytes(fig)[:8] == PNG_SIGNATURE
    True
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def svg_bytes(fig: Figure) -> bytes:
    """Render ``fig`` to SVG bytes (vector; text kept as paths, so no font is needed).

    >>> fig, (ax,) = new_figure()
    >>> is_svg(svg_bytes(fig))
    True
    """
    buffer = io.BytesIO()
    with rc_context({"svg.fonttype": "path", "svg.hashsalt": "dltheory"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def is_svg(data: bytes) -> bool:
    """Whether ``data`` is an SVG document (what :func:`svg_bytes` returns)."""
    head = data[:400].lstrip()
    return head.startswith((b"<?xml", b"<svg")) and b"<svg" in data[:2000]
