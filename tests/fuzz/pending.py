"""PENDING: known fuzz failures in modules the fuzz harness's author does not own.

``{(qualified_name, "argument:kind" or "valid"): "what happens"}``, grouped by owner. Each entry is
a bug for that module's owner: delete it when it is fixed (``tests/test_fuzz.py`` fails on any
failure not listed here, and skips the listed ones in its sample). Empty since the full run of
2026-12-08 (``benchmarks/fuzz.py``): every public function passes every case.
"""

from __future__ import annotations

# fmt: off
PENDING: dict[tuple[str, str], str] = {
}
# fmt: on
