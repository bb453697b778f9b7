"""Run the reproductions and write the report after each one.

``results.json`` and ``report.html`` are rewritten (atomically) every time a
reproduction finishes, so an interrupted run keeps every finished result. A
reproduction that raises is recorded as an error and the run goes on; a
``KeyboardInterrupt`` marks the files "interrupted" and propagates.

A run into a directory that already holds a report **merges** into it: the
reproductions it runs replace their old entries, every other entry is kept
(each entry carries its own time, version, git commit, quick/full, seed and
backend). ``resume=True`` skips the reproductions already finished there at
the same size and seed. Figures are also written to ``figures/NAME.png`` (or
``.svg``) beside the report, which is how a later run rebuilds the page.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import __version__
from .._checks import check_choice, check_int, message
from ..parallel import configure, torch_threads
from .figures import is_svg
from .html_report import write_html
from .registry import Reproduction, registered, select
from .result import Outcome, Result
from .writers import FORMAT, atomic_write, write_json

__all__ = ["FIGURES_DIR", "HTML_NAME", "JSON_NAME", "ReportRun", "load_report", "run_one",
           "run_report"]  # fmt: skip

JSON_NAME = "results.json"
HTML_NAME = "report.html"
FIGURES_DIR = "figures"


@dataclass(frozen=True)
class ReportRun:
    """A finished report run.

    Attributes:
        results: every entry of the report after the run (kept ones included),
            in registry order.
        json_path, html_path: the files written.
        status: ``"complete"``.
        ran: the names of the reproductions this run ran.
    """

    results: tuple[Result, ...]
    json_path: Path
    html_path: Path
    status: Literal["complete"] = "complete"
    ran: tuple[str, ...] = ()


def git_commit() -> str | None:
    """The git commit of the source tree dltheory runs from, or ``None`` (not a checkout)."""
    here = Path(__file__).resolve().parent
    try:
        proc = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    commit = proc.stdout.strip()
    if proc.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, timeout=5, check=False,
    ).stdout.strip()  # fmt: skip
    return commit + ("-dirty" if dirty else "")


def run_one(rep: Reproduction, *, quick: bool, seed: int, **stamp) -> Result:
    """Run one reproduction, timing it; an exception becomes an error result.

    ``stamp`` (``version``, ``commit``, ``backend``) is recorded with the result,
    beside the time it finished.
    """
    stamp = {"version": __version__, **stamp}
    start = time.perf_counter()
    try:
        outcome = rep.run(quick=quick, seed=seed)
        if not isinstance(outcome, Outcome):
            raise TypeError(message(f"{rep.name}'s return value", "an Outcome", outcome))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # recorded in the report; the other reproductions still run
        return Result.from_error(
            rep, err, seconds=time.perf_counter() - start, seed=seed, quick=quick,
            finished=_now(), **stamp,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    return Result.from_outcome(
        rep, outcome, seconds=seconds, seed=seed, quick=quick, finished=_now(), **stamp
    )


def _figure_path(out: Path, result: Result) -> Path | None:
    if result.figure is None:
        return None
    ext = "svg" if is_svg(result.figure) else "png"
    return out / FIGURES_DIR / f"{result.name}.{ext}"


def load_report(out_dir: str | os.PathLike) -> list[Result]:
    """The results recorded in ``out_dir`` (empty when it holds no report).

    Raises:
        ValueError: ``results.json`` is there but not a report of this format
            (the message says how to proceed; nothing is overwritten).
    """
    out = Path(out_dir)
    path = out / JSON_NAME
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
        # Format 1 (before entries were stamped) has no "format" key; its entries
        # load with empty stamps and without figures (they were never saved as files).
        if doc.get("format", 1) not in (1, FORMAT) or not isinstance(doc["results"], list):
            raise KeyError("format")
        results = []
        for entry in doc["results"]:
            figure = None
            if entry.get("has_figure"):
                for ext in ("png", "svg"):
                    candidate = out / FIGURES_DIR / f"{entry['name']}.{ext}"
                    if candidate.exists():
                        figure = candidate.read_bytes()
                        break
            results.append(Result.from_dict(entry, figure))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            message(
                "out_dir",
                f"a new directory or one holding a dltheory report of format {FORMAT}",
                str(out),
                f"{path} is not one ({type(err).__name__}); pass another --out or move it away",
            )
        ) from err
    return results


@contextmanager
def _thread_limit(n: int | None) -> Iterator[None]:
    """torch and BLAS / OpenMP pools limited to ``n`` threads within the block (None: as is)."""
    if n is None:
        yield
        return
    n = check_int("threads", n, minimum=1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it only torch is limited
        limits = nullcontext()
    else:
        limits = threadpool_limits(n)
    with limits, torch_threads(n):
        yield


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
    resume: bool = False,
    backend: str = "serial",
    address: str | None = None,
    workers: int = 2,
    threads: int | None = None,
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
        resume: skip the reproductions that ``out_dir`` already holds finished
            (pass or fail, not error) at the same ``quick`` and ``seed``.
        backend, address, workers: where the sweeps inside reproductions run
            (:func:`dltheory.parallel.configure`); recorded with every entry.
        threads: intra-op threads of torch and of the BLAS / OpenMP pools while the
            reproductions run; ``None`` (default) means 1 in quick mode (small
            tensors: threads spin against each other, worst on a loaded machine)
            and the libraries' own default in full mode.

    Returns:
        The results and the paths written: every entry of the (merged) report,
        in registry order.

    Raises:
        ValueError: an unknown name in ``only``, ``out_dir`` not a directory, or
            holding a ``results.json`` that is not a report of this format.
        KeyboardInterrupt: after marking the files "interrupted" (finished results kept).
    """
    seed = check_int("seed", seed, minimum=0)
    check_choice("backend", backend, ("serial", "dask"))
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
    previous = {r.name: r for r in load_report(out)}
    if resume:
        reps = [
            rep for rep in reps
            if not (rep.name in previous and previous[rep.name].status != "error"
                    and previous[rep.name].quick == quick and previous[rep.name].seed == seed)
        ]  # fmt: skip
    order = {name: i for i, name in enumerate(registered() if registry is None else registry)}
    stamp = {"commit": git_commit(), "backend": backend}
    meta = {
        "dltheory": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": stamp["commit"],
        "quick": quick,
        "seed": seed,
        "selected": [rep.name for rep in reps],
        "started": _now(),
    }
    fresh: dict[str, Result] = {}

    def merged() -> list[Result]:
        both = {**previous, **fresh}
        return sorted(both.values(), key=lambda r: order.get(r.name, len(order)))

    def save(status: str) -> None:
        pending = [rep.name for rep in reps if rep.name not in fresh]
        state = {**meta, "status": status, "updated": _now()}
        everything = merged()
        write_json(json_path, everything, state, pending)
        write_html(html_path, everything, state, pending)

    save("running")
    try:
        with (
            configure(backend, address=address, n_workers=workers),
            _thread_limit(1 if threads is None and quick else threads),
            _progress(progress, console) as bar,
        ):
            task = bar.add_task("starting", total=len(reps)) if bar is not None else None
            for rep in reps:
                if bar is not None:
                    bar.update(task, description=rep.name)
                result = run_one(rep, quick=quick, seed=seed, **stamp)
                fresh[rep.name] = result
                figure_path = _figure_path(out, result)
                if figure_path is not None:
                    figure_path.parent.mkdir(exist_ok=True)
                    atomic_write(figure_path, result.figure)
                save("running" if len(fresh) < len(reps) else "complete")
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
    return ReportRun(tuple(merged()), json_path, html_path, ran=tuple(fresh))
