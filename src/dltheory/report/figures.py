"""Figures for the report: matplotlib's object API on the Agg canvas, as PNG bytes.

No ``pyplot``: figures are plain ``Figure`` objects rendered by
``FigureCanvasAgg``, so the report never touches global backend state and runs
headless.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["PNG_SIGNATURE", "new_figure", "png_bytes"]

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


def png_bytes(fig: Figure, *, dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG bytes (the report embeds them as base64).

    >>> fig, (ax,) = new_figure()
    >>> png_bytes(fig)[:8] == PNG_SIGNATURE
    True
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
