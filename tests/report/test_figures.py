"""The tidy pass every report figure goes through before it is rendered."""

from __future__ import annotations

import numpy as np

from dltheory.report.figures import mathtext, new_figure, png_bytes, tidy


def test_ascii_mathematics_becomes_mathtext_and_plain_words_stay():
    assert mathtext("K^(l)") == r"$K^{(\ell)}$"
    assert mathtext("||P v_j||^2") == r"$\|P v_{j}\|^{2}$"
    assert mathtext("chi_perp(K*) = 1") == r"$\chi_{\perp}$(K*) = 1"
    for plain in ("GD step", "layer l", "width n", "test accuracy", "Adam step"):
        assert mathtext(plain) == plain
    assert mathtext(r"$\lambda$ already") == r"$\lambda$ already"


def test_tidy_sets_labels_integer_ticks_and_moves_a_legend_off_the_data():
    fig, (ax, ax_log) = new_figure(2)
    depths = np.arange(1, 9)
    ax.plot(depths, depths, "o-", label="K^(l)")  # the two lines cross at the centre
    ax.plot(depths, 9 - depths, "s-", label="rho^(l)")
    ax.legend(loc="center")  # over the data on purpose
    ax.set_ylabel("||P v_j||^2")
    ax_log.loglog([300, 400, 600], [1.0, 2.0, 3.0], "o-")
    tidy(fig)
    assert ax.get_ylabel() == r"$\|P v_{j}\|^{2}$"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        r"$K^{(\ell)}$",
        r"$\rho^{(\ell)}$",
    ]
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 8]
    assert ticks and all(float(t).is_integer() for t in ticks)
    # The legend now sits below the axes, clear of every point.
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    assert box.y1 <= ax.get_window_extent().y0
    # Less than a decade on a log axis: plain numbers, no crowded minor labels.
    fig.canvas.draw()
    labels = [t.get_text() for t in ax_log.get_xticklabels(minor=True) if t.get_text()]
    assert labels == []
    assert png_bytes(fig).startswith(b"\x89PNG")
