"""Run fuzz cases and write one JSON line per case.

``python -m tests.fuzz.run OUT.jsonl [--per-target N] [--seed S] [--timeout T] [--only PREFIX]``

The cases run in child processes with a memory cap (a runaway allocation fails there, not on
the machine). A call that cannot be interrupted by the alarm (compiled code: numba, LAPACK)
is stopped by a watchdog that records it as a hang and ends the child; a child that dies
(out of memory, a segfault) leaves its case as ``crash``. Either way a new child goes on
with the next case.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def select(per_target: int | None, seed: int, only: str | None, skip_pending: bool = False):
    """All cases, or the valid call plus ``per_target`` sampled changes per target (drawn
    among the cases not in PENDING when ``skip_pending``: known failures only cost time)."""
    from . import harness
    from .pending import PENDING

    rng = random.Random(seed)
    chosen = []
    for target, example in harness.targets():
        if only and not target.name.startswith(tuple(only.split(","))):
            continue
        cases = harness.cases(target, example)
        if skip_pending:
            cases = [c for c in cases if c[0].key not in PENDING]
        if per_target is not None and len(cases) > per_target + 1:
            cases = [cases[0], *rng.sample(cases[1:], per_target)]
        chosen += [(target, case, build) for case, build in cases]
    return chosen


def _line(fh, rec: dict) -> None:
    fh.write(json.dumps(rec) + "\n")
    fh.flush()


def child(args: argparse.Namespace) -> None:
    """Run the cases from ``args.start`` on, appending to ``args.out``."""
    import torch

    from . import harness

    limit = int(args.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.set_num_threads(1)
    chosen = select(args.per_target, args.seed, args.only, args.skip_pending)
    with open(args.out, "a") as fh:
        for index in range(args.start, len(chosen)):
            target, case, build = chosen[index]
            _line(fh, {"start": list(case), "index": index})

            try:
                call = build()
            except Exception as err:
                res = harness.Result(case, "broken", f"example: {type(err).__name__}: {err}", 0.0)
            else:
                res = harness.run_case(target, call, case, args.timeout)
            _line(
                fh,
                {
                    "case": list(case),
                    "outcome": res.outcome,
                    "detail": res.detail,
                    "seconds": round(res.seconds, 4),
                },
            )
        _line(fh, {"done": len(chosen)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--per-target", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--hard-timeout", type=float, default=15.0)
    parser.add_argument("--only", default=None, help="comma-separated name prefixes")
    parser.add_argument("--skip-pending", action="store_true")
    # address-space cap of the children (a CUDA build of torch may need more to import)
    parser.add_argument(
        "--memory-gb", type=float, default=float(os.environ.get("DLTHEORY_FUZZ_MEMORY_GB", 6))
    )
    parser.add_argument("--start", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.start is not None:
        child(args)
        return
    Path(args.out).write_text("")
    start = 0
    while True:
        cmd = [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            *(argv or sys.argv[1:]),
            "--start",
            str(start),
        ]
        proc = subprocess.Popen(cmd, cwd=ROOT)
        size, since = os.path.getsize(args.out), time.monotonic()
        limit = 300.0  # the child imports and builds its cases first
        while proc.poll() is None:  # the watchdog: no new line for hard_timeout s -> kill
            time.sleep(0.2)
            now_size = os.path.getsize(args.out)
            if now_size != size:
                size, since, limit = now_size, time.monotonic(), args.hard_timeout
            elif time.monotonic() - since > limit:
                proc.kill()
                proc.wait()
                break
        lines = [json.loads(x) for x in Path(args.out).read_text().splitlines()]
        if any("done" in rec for rec in lines):
            break
        starts = [rec for rec in lines if "start" in rec]
        if not starts:
            raise RuntimeError("the fuzz child ended before its first case")
        last = starts[-1]
        if lines[-1] is last:  # killed or died inside this case: record it and go on
            hung = proc.returncode == -9
            with open(args.out, "a") as fh:
                _line(
                    fh,
                    {
                        "case": last["start"],
                        "outcome": "hang" if hung else "crash",
                        "seconds": args.hard_timeout if hung else 0,
                        "detail": f"no answer in {args.hard_timeout:g} s (uninterruptible)"
                        if hung
                        else f"the process died in this call (exit {proc.returncode})",
                    },
                )
        start = last["index"] + 1


if __name__ == "__main__":
    main()
