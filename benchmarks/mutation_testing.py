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
import ast
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
import types
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


# ---------------------------------------------------------------------------------------
# The own runner: mutmut 3's stats step fails on solvers.py under forkserver, so this
# runner mutates the numerical lines itself (AST operators, comparisons, numbers), imports
# torch, the package and pytest once, and runs each mutant in a forked child that patches
# the mutated functions' code in place, then runs the chosen tests (-x) with a timeout.
# Only mutants on lines the tests reach are run (the others are "no coverage").
# ---------------------------------------------------------------------------------------

OWN_TESTS = {
    "cholesky": ["tests/kernels/test_cholesky.py", "tests/kernels/test_mutation_kills.py"],
    "gp": ["tests/kernels/test_gp.py", "tests/kernels/test_mutation_kills.py"],
    "solvers": ["tests/kernels/test_solvers.py", "tests/kernels/test_mutation_kills.py",
                "tests/kernels/test_solvers_mutation_kills.py", "-k",
                "not dask and not n_5000"],
    "estimators": ["tests/estimators/test_estimators.py",
                   "tests/estimators/test_estimator_mutation_kills.py",
                   "tests/estimators/test_honest_solvers.py", "-k", "not dask and not slow"],
}  # fmt: skip

_SWAP = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
    ast.Pow: ast.Mult, ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv, ast.MatMult: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.And: ast.Or, ast.Or: ast.And,
}  # fmt: skip


def _mutations(tree: ast.AST):
    """(node, field, new value, description) for every numerical mutation in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _SWAP:
            new = _SWAP[type(node.op)]()
            yield node, "op", new, f"{type(node.op).__name__} -> {type(new).__name__}"
        elif isinstance(node, ast.BoolOp) and type(node.op) in _SWAP:
            new = _SWAP[type(node.op)]()
            yield node, "op", new, f"{type(node.op).__name__} -> {type(new).__name__}"
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAP:
            new = [_SWAP[type(node.ops[0])](), *node.ops[1:]]
            yield node, "ops", new, f"{type(node.ops[0]).__name__} -> {type(new[0]).__name__}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            yield node, None, node.operand, f"drop {type(node.op).__name__}"
        elif (isinstance(node, ast.Constant) and type(node.value) in (int, float)
              and not isinstance(node.value, bool)):  # fmt: skip
            v = node.value
            new = v + 1 if isinstance(v, int) else (v * 2 if v else 1.0)
            yield node, "value", new, f"{v!r} -> {new!r}"


def _own_mutants(path: Path, lines: set[int] | None):
    """[(lineno, description, mutated source)] of ``path`` (only on ``lines`` if given)."""
    src = path.read_text()
    tree = ast.parse(src)
    base = ast.unparse(tree)
    out = []
    for i, (node, field, new, desc) in enumerate(list(_mutations(tree))):
        line = node.lineno
        if lines is not None and line not in lines:
            continue
        mtree = ast.parse(src)
        target = list(_mutations(mtree))[i][0]
        if field is None:  # replace the node by its operand: patch through the parent
            for parent in ast.walk(mtree):
                for name, value in ast.iter_fields(parent):
                    if value is target:
                        setattr(parent, name, target.operand)
                    elif isinstance(value, list) and any(v is target for v in value):
                        value[[id(v) for v in value].index(id(target))] = target.operand
        else:
            setattr(target, field, new)
        mutated = ast.unparse(mtree)
        if mutated != base:
            out.append((line, desc, mutated))
    return out


def _patch(module, mutated: str) -> None:
    """Give every function and method of ``module`` the code of its mutated version."""
    ns = {"__name__": module.__name__, "__package__": module.__package__,
          "__file__": module.__file__}  # fmt: skip
    exec(compile(mutated, module.__file__, "exec"), ns)

    def fix(old, new):
        if isinstance(old, (staticmethod, classmethod)):
            old, new = old.__func__, new.__func__
        if isinstance(old, property):
            for a in ("fget", "fset"):
                if getattr(old, a) is not None:
                    fix(getattr(old, a), getattr(new, a))
            return
        if isinstance(old, types.FunctionType) and isinstance(new, types.FunctionType):
            old = inspect.unwrap(old)
            new = inspect.unwrap(new)
            if old.__code__.co_freevars == new.__code__.co_freevars:
                old.__code__ = new.__code__
            old.__defaults__, old.__kwdefaults__ = new.__defaults__, new.__kwdefaults__

    for name, new in ns.items():
        old = module.__dict__.get(name)
        if isinstance(new, type) and isinstance(old, type):
            for attr, value in vars(new).items():
                if attr in vars(old):
                    fix(vars(old)[attr], value)
        elif isinstance(new, types.FunctionType):
            fix(old, new)
        elif not isinstance(new, types.ModuleType) and not name.startswith("__"):
            if isinstance(new, (int, float, bool, tuple, str)):
                setattr(module, name, new)


def _child(fn, timeout: float) -> tuple[int, float]:
    """Run ``fn`` in a forked child; its exit status (-9 on timeout) and wall time."""
    t0 = time.time()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            os.setpgid(0, 0)
            code = fn()
        finally:
            sys.stdout.flush()
            os._exit(int(code))
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), time.time() - t0
        if time.time() - t0 > timeout:
            os.killpg(pid, 9)
            os.waitpid(pid, 0)
            return -9, time.time() - t0
        time.sleep(0.05)


def own_run(target: str, out: Path, timeout: float, budget: float, rescore: bool = False) -> dict:
    """Score ``target`` with the own runner (see above); results in ``<out>/<target>.json``.

    With ``rescore``, run only the survivors of that file again (current tests), and
    write ``<out>/<target>.rescore.json``."""
    import importlib

    import pytest  # imported once, before the forks
    import torch

    torch.set_num_threads(1)
    files = sorted(ROOT.glob(TARGETS[target][0][0]))
    files = [f for f in files if f.name != "__init__.py"]
    tests = OWN_TESTS[target]
    tests = [t for t in tests if not t.startswith("tests") or (ROOT / t).exists()]
    args = [*tests, "-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-W", "ignore"]
    os.chdir(ROOT)
    modules = {}
    for f in files:
        name = ".".join(f.relative_to(ROOT / "src").with_suffix("").parts)
        modules[f] = importlib.import_module(name)
    cover = out / f"{target}.lines.json"

    def trace_run():  # the clean run, recording the target lines reached

        hit: dict[str, set[int]] = {str(f): set() for f in files}

        def tracer(frame, event, arg):
            fname = frame.f_code.co_filename
            if fname not in hit:
                return None

            def local(frame, event, arg):
                if event == "line":
                    hit[fname].add(frame.f_lineno)
                return local

            hit[fname].add(frame.f_lineno)
            return local

        threading.settrace(tracer)
        sys.settrace(tracer)
        code = pytest.main(args)
        sys.settrace(None)
        cover.write_text(json.dumps({k: sorted(v) for k, v in hit.items()}))
        return int(code)

    start, cpu0 = time.time(), _cpu()
    code, clean = _child(trace_run, 10 * timeout)
    if code != 0:
        raise RuntimeError(f"the clean run of {target}'s tests failed (exit {code})")
    reached = {k: set(v) for k, v in json.loads(cover.read_text()).items()}
    for f in files:  # lines run at import (constants, signatures with their defaults)
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                reached[str(f)].update(range(node.lineno, node.body[0].lineno))
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                reached[str(f)].update(range(node.lineno, node.end_lineno + 1))
    results, survivors = Counter(), []
    only = None
    if rescore:
        only = {
            s.split(" (")[0] for s in json.loads((out / f"{target}.json").read_text())["survivors"]
        }
    for f, module in modules.items():
        mutants = _own_mutants(f, None)
        if only is not None:
            rel = str(f.relative_to(ROOT))
            mutants = [m for m in mutants if f"{rel}:{m[0]}: {m[1]}" in only]
        # the unparse keeps line numbers only roughly: map by the original AST line
        for line, desc, mutated in mutants:
            rel = str(f.relative_to(ROOT))
            if line not in reached[str(f)]:
                results["no coverage"] += 1
                survivors.append(f"{rel}:{line}: {desc} (no coverage)")
                continue
            if time.time() - start > budget:
                results["not run (budget)"] += 1
                continue

            def one(module=module, mutated=mutated):

                _patch(module, mutated)
                sys.stdout = sys.stderr = open(os.devnull, "w")
                return int(pytest.main(args))

            code, _ = _child(one, timeout)
            status = {0: "survived", 1: "killed", -9: "timeout"}.get(code, f"error {code}")
            if code not in (0, 1, -9):
                status = "killed (error)"
            results[status] += 1
            if code == 0:
                survivors.append(f"{rel}:{line}: {desc}")
            print(f"{rel}:{line}: {desc}: {status}", flush=True)
    score = {"target": target, "runner": "own", "tests": tests,
             "clean_run_s": round(clean, 1), "wall_s": round(time.time() - start, 1),
             "cpu_s": round(_cpu() - cpu0, 1), "counts": dict(results),
             "survivors": survivors}  # fmt: skip
    name = f"{target}.rescore.json" if rescore else f"{target}.json"
    (out / name).write_text(json.dumps(score, indent=1))
    return score


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + time.process_time()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_mutmut")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument(
        "--rescore", action="store_true", help="rerun the mutants not killed, current tests"
    )
    parser.add_argument("--own", action="store_true", help="the own runner (no mutmut)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per mutant (own)")
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds per target (own)")
    args = parser.parse_args(argv)
    for target in args.targets:
        if args.own:
            args.out.mkdir(parents=True, exist_ok=True)
            score = own_run(target, args.out, args.timeout, args.budget, args.rescore)
            print(json.dumps({k: score[k] for k in ("target", "wall_s", "cpu_s", "counts")}))
            continue
        score = run(target, args.out, args.max_children, args.rescore)
        print(json.dumps({k: score[k] for k in ("target", "wall_s", "files")}), flush=True)


if __name__ == "__main__":
    main()
