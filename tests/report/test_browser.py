"""report.html in headless Chromium: figures decode, anchors resolve, no console errors.

Uses Playwright with the system Chromium (Debian: ``apt-get install chromium``;
or set ``DLTHEORY_CHROMIUM`` to a Chromium binary). Without a browser the test
is skipped and says why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dltheory import Estimate
from dltheory.report import (
    Outcome,
    Quantity,
    Reproduction,
    Table,
    new_figure,
    png_bytes,
    run_report,
    svg_bytes,
)

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str | None:
    given = os.environ.get("DLTHEORY_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    return next((p for p in map(shutil.which, _CANDIDATES) if p), None)


def _outcome(svg: bool):
    def run(quick=False, seed=0):
        fig, (ax,) = new_figure()
        ax.plot([1, 2, 3], [1, 4, 9], label="line")
        ax.legend()
        return Outcome(
            [1.0, 2.0, 3.0], Estimate([1.1, 1.9, 3.0], [0.1, 0.1, 0.1], 20), True,
            "|z| <= 5 at every layer", label="K^(l), layer by layer", index=[1, 2, 3],
            index_label="layer l", tolerance="5σ", caption="A test figure.",
            rows=[Quantity("pieces", 16, 16)], tables=[Table("t", ("n", "v"), [(1, 2.0)])],
            figure=svg_bytes(fig) if svg else png_bytes(fig),
        )  # fmt: skip

    return run


@pytest.fixture(scope="module")
def browser():
    path = _chromium()
    if path is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium; or set "
                    "DLTHEORY_CHROMIUM to a Chromium binary)")  # fmt: skip
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        yield chromium
        chromium.close()


@pytest.mark.parametrize("width", [800, 1400])
def test_report_renders_in_chromium(browser, tmp_path, width):
    registry = {
        "png_one": Reproduction("png_one", "A PNG figure", "Claim one.", _outcome(False)),
        "svg_one": Reproduction("svg_one", "An SVG figure", "Claim two.", _outcome(True)),
    }
    run = run_report(tmp_path, progress=False, registry=registry)
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(run.html_path.resolve().as_uri())
    page.wait_for_load_state("load")
    assert errors == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    # Every figure decodes: a loaded image has a natural size.
    sizes = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
    assert len(sizes) == 2 and all(done and w > 0 for done, w in sizes), sizes
    # Every in-page anchor resolves to an element.
    missing = page.eval_on_selector_all(
        "a[href^='#']", "els => els.filter(a => !document.getElementById("
        "decodeURIComponent(a.getAttribute('href').slice(1)))).map(a => a.href)",
    )  # fmt: skip
    assert missing == []
    assert page.eval_on_selector_all("a[href^='#']", "els => els.length") == 2
    # The page fits the viewport: nothing but the scrollable tables is wider.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page wider than the {width} px viewport by {overflow} px"
    assert page.locator("figcaption").first.inner_text().startswith("Figure. A test figure.")
    page.close()
