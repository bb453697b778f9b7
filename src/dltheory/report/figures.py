"""Figures for the report: matplotlib's object API on the Agg canvas, as PNG bytes.

No ``pyplot``: figures are plain ``Figure`` objects rendered by
``FigureCanvasAgg``, so the report never touches global backend state and runs
headless.

Before a figure is rendered, :func:`tidy` fixes what a reader trips over and a
reproduction easily forgets: log axes carry no crowded minor labels (and short
ones plain 1-2-5 ticks), an axis whose data are short runs of integers (depths,
layers) gets integer ticks, a legend that covers data points moves below the
axes, and ASCII mathematics left in labels, titles and legends (``K^(l)``,
``||P v_j||^2``, ``C_w``, ``lambda_0``) is set as mathtext (:func:`mathtext`).
"""

from __future__ import annotations

import io
import re
import warnings
from functools import cache

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter

__all__ = ["PNG_SIGNATURE", "is_svg", "mathtext", "new_figure", "png_bytes", "svg_bytes", "tidy"]

_GREEK = ("alpha", "beta", "gamma", "delta", "Delta", "epsilon", "eta", "theta", "Theta",
          "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "Sigma", "tau", "phi",
          "chi", "psi", "omega")  # fmt: skip
_WORD = r"(?:" + "|".join(sorted(_GREEK, key=len, reverse=True)) + r"|[A-Za-z])"
_SUBS = {"perp": r"\perp", "parallel": r"\parallel", "max": r"\max", "min": r"\min"}
_TOKEN = re.compile(
    r"\|\|[^|$]{1,24}\|\|(?:_[A-Za-z])?(?:\^[0-9])?"  # ||P v_j||^2, ||W||_F
    rf"|(?<![A-Za-z\\]){_WORD}(?:\^\([^()$]{{1,12}}\)|\^[A-Za-z0-9*]+|_[A-Za-z0-9*,]+)+"
    rf"|(?<![A-Za-z\\])(?:{'|'.join(_GREEK)})(?![A-Za-z])"
)


def _tex(token: str) -> str:
    """One ASCII token as mathtext source (without the dollars)."""
    out = re.sub(rf"(?<![A-Za-z\\])({'|'.join(_GREEK)})(?![A-Za-z])", r"\\\1", token)
    out = out.replace("||", r"\|")
    out = re.sub(r"\^\(([^()]*)\)", lambda m: "^{(" + m.group(1) + ")}", out)
    out = re.sub(r"\^([A-Za-z0-9*]+)", r"^{\1}", out)
    out = re.sub(r"_([A-Za-z0-9*,]+)", lambda m: "_{" + _SUBS.get(m.group(1), m.group(1)) + "}",
                 out)  # fmt: skip
    return re.sub(r"(?<![A-Za-z\\])l(?![A-Za-z])", r"\\ell", out)


@cache
def _parses(source: str) -> bool:
    from matplotlib.mathtext import MathTextParser

    try:
        MathTextParser("path").parse(source)
    except ValueError:
        return False
    return True


def mathtext(text: str) -> str:
    r"""``text`` with its ASCII mathematics set as mathtext; unchanged if it has ``$`` already.

    >>> print(mathtext("K^(l) / K^(1)"), mathtext("||P v_j||^2"), mathtext("layer l"))
    $K^{(\ell)}$ / $K^{(1)}$ $\|P v_{j}\|^{2}$ layer l
    >>> print(mathtext("lambda_min(Theta_k) >= lambda_0 / 2"))
    $\lambda_{\min}$($\Theta_{k}$) >= $\lambda_{0}$ / 2
    """
    if "$" in text or not _TOKEN.search(text):
        return text
    out = _TOKEN.sub(lambda m: "$" + _tex(m.group(0)) + "$", text)
    segments = out.split("$")[1::2]
    return out if all(_parses(f"${seg}$") for seg in segments) else text


def _set_math(ax: Axes) -> None:
    texts = [ax.xaxis.label, ax.yaxis.label, ax.title, ax._left_title, ax._right_title]
    legend = ax.get_legend()
    if legend is not None:
        texts += list(legend.get_texts())
    for text in texts:
        text.set_text(mathtext(text.get_text()))


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


def _points(ax: Axes) -> np.ndarray:
    """Every plotted data point of ``ax`` (lines, markers, scatter), in data coordinates."""
    parts = [np.asarray(line.get_xydata(), dtype=float).reshape(-1, 2) for line in ax.lines
             if line.get_visible() and line.get_label() != "_nolegend_"]  # fmt: skip
    for coll in ax.collections:
        if isinstance(coll, Collection) and coll.get_visible():
            offsets = np.asarray(coll.get_offsets(), dtype=float).reshape(-1, 2)
            if len(offsets) > 1:
                parts.append(offsets)
    pts = np.concatenate(parts) if parts else np.empty((0, 2))
    return pts[np.all(np.isfinite(pts), axis=1)]


def _integer_ticks(ax: Axes, pts: np.ndarray) -> None:
    # Lines spanning the whole axis (axhline/axvline) use axes coordinates; skip them.
    data = [np.asarray(line.get_xdata(), dtype=float) for line in ax.lines
            if line.get_transform() == ax.transData]  # fmt: skip
    xs = np.concatenate(data) if data else pts[:, 0]
    xs = xs[np.isfinite(xs)]
    # Only short ranges (depths, layers): there the default locator puts ticks at halves.
    if (ax.get_xscale() == "linear" and xs.size and np.all(xs == np.round(xs))
            and xs.max() - xs.min() <= 20):  # fmt: skip
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _log_ticks(ax: Axes) -> None:
    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale != "log":
            continue
        lo, hi = sorted(axis.get_view_interval())
        decades = np.log10(hi / lo) if lo > 0 else np.inf
        if decades < 1.0:
            # Less than a decade: a few plain ticks ("3", "4", "5"), not 10^x labels.
            axis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
            axis.set_major_formatter(FormatStrFormatter("%g"))
        elif decades < 2.5:
            # One or two decades: 1, 2, 5 x 10^k in plain numbers ("200", "500", "1000").
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())


def _legend_covers_data(ax: Axes, pts: np.ndarray) -> bool:
    legend = ax.get_legend()
    if legend is None or not len(pts):
        return False
    box = legend.get_window_extent()
    disp = ax.transData.transform(pts)
    for line in ax.lines:  # the segments between markers count too
        if line.get_transform() == ax.transData and line.get_linestyle() not in ("None", ""):
            xy = ax.transData.transform(np.asarray(line.get_xydata(), dtype=float))
            xy = xy[np.all(np.isfinite(xy), axis=1)]
            if len(xy) > 1:
                t = np.linspace(0.0, 1.0, 12)[:, None, None]
                disp = np.concatenate([disp, (xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2)])
    inside = ((disp[:, 0] > box.x0) & (disp[:, 0] < box.x1)
              & (disp[:, 1] > box.y0) & (disp[:, 1] < box.y1))  # fmt: skip
    return bool(inside.any())


def tidy(fig: Figure) -> Figure:
    """Fix tick labels and legends of every axes of ``fig`` in place (module docstring).

    Returns ``fig``. :func:`png_bytes` and :func:`svg_bytes` call it.

    >>> fig, (ax,) = new_figure()
    >>> _ = ax.plot([1, 2, 3], [1.0, 2.0, 3.0])
    >>> ticks = tidy(fig).axes[0].get_xticks()
    >>> bool(all(t == int(t) for t in ticks))
    True
    """
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    for ax in axes:
        pts = _points(ax)
        _integer_ticks(ax, pts)
        _log_ticks(ax)
        _set_math(ax)
    for legend in fig.legends:
        for text in legend.get_texts():
            text.set_text(mathtext(text.get_text()))
    with warnings.catch_warnings():  # "loc='best' can be slow": it is timed, not wrong
        warnings.simplefilter("ignore", UserWarning)
        fig.canvas.draw()  # legend positions are known after a draw
    for ax in axes:
        if _legend_covers_data(ax, _points(ax)):
            old = ax.get_legend()
            size = old.get_texts()[0].get_fontsize() if old.get_texts() else 8
            handles, labels = old.legend_handles, [t.get_text() for t in old.get_texts()]
            # Below the axes (under the x label); constrained layout makes room for it.
            ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                      fontsize=size, ncols=min(len(labels), 2), frameon=False)  # fmt: skip
    return fig


def png_bytes(fig: Figure, *, dpi: int = 220) -> bytes:
    """Render ``fig`` to PNG bytes at 2x resolution (the report embeds them as base64).

    >>> fig, (ax,) = new_figure()
    >>> png_bytes(fig)[:8] == PNG_SIGNATURE
    True
    """
    buffer = io.BytesIO()
    tidy(fig)
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def svg_bytes(fig: Figure) -> bytes:
    """Render ``fig`` to SVG bytes (vector; text kept as paths, so no font is needed).

    >>> fig, (ax,) = new_figure()
    >>> is_svg(svg_bytes(fig))
    True
    """
    buffer = io.BytesIO()
    tidy(fig)
    with rc_context({"svg.fonttype": "path", "svg.hashsalt": "dltheory"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


def is_svg(data: bytes) -> bool:
    """Whether ``data`` is an SVG document (what :func:`svg_bytes` returns)."""
    head = data[:400].lstrip()
    return head.startswith((b"<?xml", b"<svg")) and b"<svg" in data[:2000]
