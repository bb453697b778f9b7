"""Atomic file writes and the JSON report.

Every write goes to a temporary file in the target directory and is moved into
place with ``os.replace``, so a reader (or an interrupted run) only ever sees a
complete old file or a complete new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .result import Result, plain

__all__ = ["FORMAT", "atomic_write", "report_dict", "write_json"]

FORMAT = 2  # results.json layout: 2 = per-entry stamps, labelled rows and tables


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); a report is for reading (umask applies).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def report_dict(
    results: Sequence[Result], meta: Mapping[str, Any], pending: Sequence[str] = ()
) -> dict[str, Any]:
    """The JSON document: run metadata, every result, and the names still to run."""
    counts = {status: 0 for status in ("pass", "fail", "error")}
    for result in results:
        counts[result.status] += 1
    return {
        "format": FORMAT,
        **plain(meta),
        "counts": counts,
        "pending": list(pending),
        "results": [result.to_dict() for result in results],
    }


def write_json(
    path: str | os.PathLike,
    results: Sequence[Result],
    meta: Mapping[str, Any],
    pending: Sequence[str] = (),
) -> Path:
    """Write ``results.json`` (atomically; strict JSON, no NaN)."""
    text = json.dumps(report_dict(results, meta, pending), indent=2, allow_nan=False)
    return atomic_write(path, text + "\n")
