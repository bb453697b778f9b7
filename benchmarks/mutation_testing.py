"""Mutation testing of the kernel solvers and the estimators with mutmut 3.

Each target (one module, or the ``estimators`` package) is mutated on its own,
in a scratch copy of the project, against only the fast tests that cover it
(``-x``, a per-test timeout): mutmut 3 copies the project into ``mutants/`` of
the working directory, records which tests reach each function, then runs those
tests once per mutant. The score per file (killed / survived / timeout / ...)
is printed and written as JSON; the surviving mutants' diffs go beside it.

Usage (mutmut is not a dependency of the package: ``pip install mutmut``):

    OMP_NUM_THREADS=1 python benchmarks/mutation_testing.py cholesky gp solvers estimators \
        --max-children 2 --out benchmarks/_mutmut

Per target the scratch copy is ``<out>/<target>/`` (delete it to start afresh:
mutmut otherwise reuses the results it has).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# target -> (files to mutate (globs), tests that cover them)
TARGETS = {
    "cholesky": (
        ["src/dltheory/kernels/cholesky.py"],
        ["tests/kernels/test_cholesky.py", "tests/kernels/test_gp.py",
         "tests/kernels/test_mutation_kills.py"],
    ),
    "gp": (
        ["src/dltheory/kernels/gp.py"],
        ["tests/kernels/test_gp.py", "tests/kernels/test_mutation_kills.py"],
    ),
    "solvers": (
        ["src/dltheory/kernels/solvers.py"],
        ["tests/kernels/test_solvers.py", "tests/kernels/test_mutation_kills.py",
         "-k", "not dask and not n_5000"],  # the fast ones (no cluster, no N = 5,000)
    ),
    "estimators": (
        ["src/dltheory/estimators/*"],
        ["tests/estimators/"],
    ),
}  # fmt: skip

PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--timeout=120"]


def _setup(target: str, work: Path) -> None:
    """A scratch copy of src/, tests/ and pyproject.toml with mutmut's setup.cfg."""
    mutate, tests = TARGETS[target]
    work.mkdir(parents=True, exist_ok=True)
    (work.parent / ".gitignore").write_text("*\n")  # the scratch copies stay out of git
    for name in ("src", "tests"):
        if not (work / name).exists():
            shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")
    tests = [t for t in tests if not t.startswith("tests") or (ROOT / t).exists()]
    lines = ["[mutmut]", "source_paths = src", "only_mutate ="]
    lines += [f"    {m}" for m in mutate]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests]
    lines += ["pytest_add_cli_args ="] + [f"    {a}" for a in PYTEST_ARGS]
    # A mutant times out after 15 x its tests' clean duration + 30 s: the first kernel call
    # in a fresh child costs seconds, more on a loaded machine.
    lines += ["timeout_constant = 30.0"]
    # Fork from a server that only collected the tests: a child forked from a process
    # whose torch / BLAS thread pools have run can hang on a lock copied while held.
    lines += ["process_isolation = forkserver"]
    (work / "setup.cfg").write_text("\n".join(lines) + "\n")


def _score(work: Path) -> dict[str, dict[str, int]]:
    """{file: {status: count}} from mutmut's .meta files."""
    from mutmut.stats import status_by_exit_code

    out = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        codes = data.get("exit_code_by_key", {})
        if codes:
            rel = str(meta.relative_to(work / "mutants"))[: -len(".meta")]
            out[rel] = dict(Counter(status_by_exit_code[c] for c in codes.values()))
    return out


def _mutmut(work: Path, *args: str, log: Path | None = None) -> str:
    mutmut = Path(sys.executable).parent / "mutmut"
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    if log is None:
        res = subprocess.run([str(mutmut), *args], cwd=work, env=env, capture_output=True,
                             text=True, check=False)  # fmt: skip
        return res.stdout
    with open(log, "a") as out:
        subprocess.run([str(mutmut), *args], cwd=work, env=env, stdout=out,
                       stderr=subprocess.STDOUT, check=False)  # fmt: skip
    return ""


def _not_killed(work: Path) -> list[str]:
    """Names of the mutants ``mutmut results`` lists (all but the killed ones)."""
    return [line.split(":")[0].strip() for line in _mutmut(work, "results").splitlines()
            if ":" in line]  # fmt: skip


def run(target: str, out: Path, max_children: int, rescore: bool = False) -> dict:
    """Mutate ``target``; with ``rescore``, rerun only the mutants not yet killed, against
    the current tests (copied over the scratch copy's)."""
    work = (out / target).resolve()
    start = time.time()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
    if rescore:
        _setup(target, work)  # the current configuration
        for dest in (work / "tests", work / "mutants" / "tests"):
            shutil.copytree(ROOT / "tests", dest, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        names = _not_killed(work)
        if names:
            _mutmut(work, "run", "--max-children", str(max_children), *names,
                    log=work / "mutmut.log")  # fmt: skip
    else:
        _setup(target, work)
        _mutmut(work, "run", "--max-children", str(max_children), log=work / "mutmut.log")
    wall = time.time() - start
    survivors = _not_killed(work)
    diffs = [_mutmut(work, "show", name) for name in survivors]
    (work / "survivors.diff").write_text("\n".join(diffs))
    score = {
        "target": target,
        "wall_s": round(wall, 1),
        "cpu_s": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - cpu, 1),
        "files": _score(work),
        "not_killed": _mutmut(work, "results").splitlines(),
    }
    (work / ("rescore.json" if rescore else "score.json")).write_text(json.dumps(score, indent=1))
    return score


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_mutmut")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument(
        "--rescore", action="store_true", help="rerun the mutants not killed, current tests"
    )
    args = parser.parse_args(argv)
    for target in args.targets:
        score = run(target, args.out, args.max_children, args.rescore)
        print(json.dumps({k: score[k] for k in ("target", "wall_s", "files")}), flush=True)


if __name__ == "__main__":
    main()
