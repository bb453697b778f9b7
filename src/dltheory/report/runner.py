"""Run the reproductions and write the report after each one.

``results.json`` and ``report.html`` are rewritten (atomically) every time a
reproduction finishes, so an interrupted run keeps every finished result. A
reproduction that raises is recorded as an error and the run goes on; a
``KeyboardInterrupt`` marks the files "interrupted" and propagates.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import __version__
from .._checks import check_int, message
from .html_report import write_html
from .registry import Reproduction, registered, select
from .result import Outcome, Result
from .writers import write_json

__all__ = ["HTML_NAME", "JSON_NAME", "ReportRun", "run_one", "run_report"]

JSON_NAME = "results.json"
HTML_NAME = "report.html"


@dataclass(frozen=True)
class ReportRun:
    """A finished report run.

    Attributes:
        results: one :class:`Result` per reproduction, in run order.
        json_path, html_path: the files written.
        status: ``"complete"``.
    """

    results: tuple[Result, ...]
    json_path: Path
    html_path: Path
    status: Literal["complete"] = "complete"


def run_one(rep: Reproduction, *, quick: bool, seed: int) -> Result:
    """Run one reproduction, timing it; an exception becomes an error result."""
    start = time.perf_counter()
    try:
        outcome = rep.run(quick=quick, seed=seed)
        if not isinstance(outcome, Outcome):
            raise TypeError(message(f"{rep.name}'s return value", "an Outcome", outcome))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # recorded in the report; the other reproductions still run
        return Result.from_error(
            rep, err, seconds=time.perf_counter() - start, seed=seed, quick=quick
        )
    seconds = time.perf_counter() - start
    return Result.from_outcome(rep, outcome, seconds=seconds, seed=seed, quick=quick)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _progress(enabled: bool, console: Console | None):
    if not enabled:
        return nullcontext(None)
    return Progress(
        TextColumn("[bold]{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
    )


def run_report(
    out_dir: str | os.PathLike,
    quick: bool = False,
    only: str | Iterable[str] | None = None,
    progress: bool = True,
    *,
    seed: int = 0,
    registry: Mapping[str, Reproduction] | None = None,
    console: Console | None = None,
) -> ReportRun:
    """Run the registered reproductions; write ``results.json`` and ``report.html``.

    Args:
        out_dir: directory for the two files (created if missing).
        quick: small sizes (seconds per reproduction) instead of the full ones.
        only: a name or names of reproductions to run (default: all).
        progress: show a rich progress bar (on stderr, or ``console``).
        seed: the seed every reproduction gets.
        registry: the reproductions to choose from (default: every registered one).
        console: where the progress bar and per-reproduction lines go.

    Returns:
        The results and the paths written.

    Raises:
        ValueError: an unknown name in ``only``, or ``out_dir`` not a directory.
        KeyboardInterrupt: after marking the files "interrupted" (finished results kept).
    """
    seed = check_int("seed", seed, minimum=0)
    reps = select(only, registered() if registry is None else registry)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(message("out_dir", "a directory", str(out), "Pass a directory path"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            message("out_dir", "a directory that can be created", str(out), err.strerror or "")
        ) from err
    json_path, html_path = out / JSON_NAME, out / HTML_NAME
    meta = {
        "dltheory": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "quick": quick,
        "seed": seed,
        "selected": [rep.name for rep in reps],
        "started": _now(),
    }
    results: list[Result] = []

    def save(status: str) -> None:
        done = {r.name for r in results}
        pending = [rep.name for rep in reps if rep.name not in done]
        state = {**meta, "status": status, "updated": _now()}
        write_json(json_path, results, state, pending)
        write_html(html_path, results, state, pending)

    save("running")
    try:
        with _progress(progress, console) as bar:
            task = bar.add_task("starting", total=len(reps)) if bar is not None else None
            for rep in reps:
                if bar is not None:
                    bar.update(task, description=rep.name)
                result = run_one(rep, quick=quick, seed=seed)
                results.append(result)
                save("running" if len(results) < len(reps) else "complete")
                if bar is not None:
                    style = {"pass": "green", "fail": "red", "error": "magenta"}[result.status]
                    bar.console.print(
                        f"[{style}]{result.status:>5}[/] {escape(rep.name)} "
                        f"({result.seconds:.1f} s)"
                        + (f": {escape(result.error)}" if result.error else "")
                    )
                    bar.advance(task)
            if bar is not None:
                bar.update(task, description="done")
    except KeyboardInterrupt:
        save("interrupted")
        raise
    if not reps:
        save("complete")
    return ReportRun(tuple(results), json_path, html_path)
