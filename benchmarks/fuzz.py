"""The full seeded fuzz run over the public API (every case of tests/fuzz), with its counts.

    python benchmarks/fuzz.py                       # full run (~20 min on 2 busy cores)
    python benchmarks/fuzz.py --baseline SRC        # also run it against another checkout's
                                                    # src/ (e.g. main's) for a before/after
    python benchmarks/fuzz.py --quick               # 3 changed calls per callable, no file

Each public callable (``__all__`` of every subpackage, classes and their public methods) is
called once with its example from ``tests/fuzz/examples.py``, then once per bad value of each
argument (NaN / inf entries, x1e30 / x1e300, int / bool / complex / object / str dtypes,
float32, requires_grad, 0 / 1 rows, a row dropped, duplicated rows, missing / extra
dimensions, lists, None, non-contiguous, NumPy for torch; scalars 0, -1, NaN, inf, 1e30,
1e-300, None, str, bool, non-integers, 10^12; models without parameters, wrong input /
output size, float32, BatchNorm, frozen, NaN weight, a lambda). Calls run in child processes
capped at 6 GiB of address space, 5 s per call (alarm) and 12 s per call (watchdog for code
that holds the GIL). Outcomes: see ``tests/fuzz/harness.py``. The section also lists the
failures left in ``tests/fuzz/pending.py`` (modules fixed by other issues).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fuzz import harness  # noqa: E402
from tests.fuzz.pending import PENDING  # noqa: E402


def run(out: Path, src: Path | None, per_target: int | None) -> tuple[list[dict], float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    paths = [str(src)] if src else []
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(ROOT)])
    cmd = [sys.executable, "-m", "tests.fuzz.run", str(out), "--hard-timeout", "12"]
    if per_target is not None:
        cmd += ["--per-target", str(per_target)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return harness.read_results(str(out)), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--baseline", type=Path, default=None, help="a src/ to compare with")
    args = parser.parse_args()
    per_target = 3 if args.quick else None
    tmp = Path(tempfile.mkdtemp())
    rows, wall = run(tmp / "after.jsonl", None, per_target)
    print(f"## Fuzzed public API ({dt.date.today()})\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs; "
        f"{len(rows)} calls in {wall:.0f} s wall. `python benchmarks/fuzz.py`; harness in "
        "`tests/fuzz/`, a seeded sample of it runs in `make test` (`tests/test_fuzz.py`).\n"
    )
    if args.baseline:
        before, _ = run(tmp / "before.jsonl", args.baseline, per_target)
        print(f"Before (src {args.baseline}):\n")
        print(harness.count_table(before) + "\n")
        print("After:\n")
    print(harness.count_table(rows) + "\n")
    failing = [r for r in rows if r["outcome"] in harness.FAILURES]
    pending = [r for r in failing if harness.case_key(r) in PENDING]
    print(
        f"Failures: {len(failing)}, of which {len(pending)} are listed in "
        f"`tests/fuzz/pending.py` (modules of other issues) and "
        f"{len(failing) - len(pending)} are new."
    )


if __name__ == "__main__":
    from results_file import run_and_record  # beside this script

    run_and_record("fuzz", main, quick="--quick" in sys.argv)
