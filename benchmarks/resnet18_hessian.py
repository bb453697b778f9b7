"""ResNet-18-size and ~1M-parameter conv-net curvature: dltheory next to curvlinops
(+ scipy eigsh) and PyHessian on the same model and batch (benchmarks/_resnet18_problem.py).

Each measurement runs in its own process (one thread), so its peak memory is its own:
"extra" is the peak resident memory minus the peak after one plain forward/backward of
the model in that process. Run::

    .venv/bin/python benchmarks/resnet18_hessian.py --batch 32          # all, writes RESULTS.md
    .venv/bin/python benchmarks/resnet18_hessian.py --task ours_eig 32  # one task, JSON

The peers' venv: ``$DLTHEORY_PEER_CURV`` or ``--peer-python`` (default
``benchmarks/_venvs/hessian/bin/python``; recipe in benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from _resnet18_problem import baseline_gradient, peak_rss_bytes, problem
from results_file import run_and_record

HERE = Path(__file__).resolve().parent
DEFAULT_PEER = HERE / "_venvs" / "hessian" / "bin" / "python"
TOL = 1e-3  # relative residual: ours and eigsh's ARPACK (peer_resnet18.TOL); PyHessian's tol
PROGRESS = HERE / "_peer" / "resnet18_progress.jsonl"


def task(name: str, batch: int) -> dict:
    from dltheory.curvature import HessianOperator, hutchpp_trace, lanczos_eigenpairs

    torch.set_num_threads(1)
    net = name.split("_")[0] if name.startswith(("conv1m", "convbn")) else "resnet18"
    model, x, y = problem(net, batch)
    P = sum(p.numel() for p in model.parameters())
    base = baseline_gradient(model, x, y)
    out: dict = {"task": name, "batch": batch, "P": P, "base_bytes": base}
    t, c = time.perf_counter(), time.process_time()
    # The targets' budgets: 60 P floats (conv1m), 2 GB (ResNet-18), split as
    # hessian_eigenvalues(memory_budget=...) does: half to the basis, half to products.
    budget = 60 * 4 * P if net == "conv1m" else 2e9 if net == "resnet18" else None
    if name.startswith("oursfast"):
        budget = None  # the default: cached products, default basis
    out["memory_budget"] = budget
    basis_budget = None if budget is None else min(budget / 2, 24 * 4 * P)
    H = HessianOperator(
        model,
        torch.nn.functional.cross_entropy,
        (x, y),
        memory_budget=None if budget is None else budget - basis_budget,
    )
    out["method"], out["micro_batch"] = H.method, max(len(b[0]) for b in H._batches)
    if name.endswith("eig"):
        mv = _logged(H, base, P)
        r = lanczos_eigenpairs(mv, P, k=5, tol=TOL, dtype=H.dtype, memory_budget=basis_budget)
        out.update(
            eigenvalues=r.eigenvalues.tolist(),
            residuals=r.residuals.tolist(),
            converged=r.converged,
            hvps=r.n_matvecs,
        )
    elif name.endswith("trace"):
        tr = hutchpp_trace(H, P, 30, dtype=H.dtype)
        out.update(trace=tr.estimate, stderr=tr.stderr, hvps=tr.n_matvecs)
    else:  # hvp_ratio: one product against one gradient, both methods
        v = torch.randn(P)
        ratios = {}
        for method in ("linearize", "vjp"):
            Hm = HessianOperator(model, torch.nn.functional.cross_entropy, (x, y), method=method)
            Hm @ v
            hv = [_cpu(lambda Hm=Hm: Hm @ v) for _ in range(3)]
            gr = [_cpu(lambda: baseline_gradient(model, x, y)) for _ in range(3)]
            ratios[method] = statistics.median(hv) / statistics.median(gr)
        out.update(hvp_over_grad_cpu=ratios)
    out["wall_s"] = time.perf_counter() - t
    out["cpu_s"] = time.process_time() - c
    out["extra_bytes"] = max(0, peak_rss_bytes() - base)
    out["extra_P_floats"] = out["extra_bytes"] / (4 * P)
    return out


def _logged(H, base: int = 0, P: int = 1):
    """H's products, one JSON line each to ``$DLTHEORY_PROGRESS`` (a long run's timings).

    ``base`` is the peak RSS of one plain forward/backward in this process: each line
    carries the extra memory so far, so a cut run still gives its numbers."""
    path = os.environ.get("DLTHEORY_PROGRESS")
    t, c = time.perf_counter(), time.process_time()

    def mv(v: torch.Tensor) -> torch.Tensor:
        out = H @ v
        if path:
            line = {
                "hvps": H.n_matvecs,
                "wall_s": time.perf_counter() - t,
                "cpu_s": time.process_time() - c,
                "peak_gib": peak_rss_bytes() / 2**30,
                "base_gib": base / 2**30,
                "extra_P_floats": max(0, peak_rss_bytes() - base) / (4 * P),
            }
            with open(path, "a") as fh:
                fh.write(json.dumps(line) + "\n")
        return out

    return mv


def _cpu(fn) -> float:
    c = time.process_time()
    fn()
    return time.process_time() - c


def _run(cmd: list[str]) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


def report(batch: int, peer_python: str, only: list[str] | None) -> None:
    ours = [sys.executable, str(HERE / "resnet18_hessian.py"), "--task"]
    peer = [peer_python, str(HERE / "peer_resnet18.py")]
    runs = {
        "ours_eig": [*ours, "ours_eig", str(batch)],
        "oursfast_eig": [*ours, "oursfast_eig", str(batch)],
        "curvlinops_eig": [*peer, "curvlinops_eig", str(batch)],
        "ours_trace": [*ours, "ours_trace", str(batch)],
        "curvlinops_trace": [*peer, "curvlinops_trace", str(batch)],
        "conv1m_eig": [*ours, "conv1m_eig", "128"],
        "conv1m_hvp_ratio": [*ours, "conv1m_hvp_ratio", "128"],
        "convbn_hvp_ratio": [*ours, "convbn_hvp_ratio", "256"],
        "pyhessian_trace": [*peer, "pyhessian_trace", str(batch)],
        "pyhessian_eig": [*peer, "pyhessian_eig", str(batch)],
    }
    PROGRESS.parent.mkdir(exist_ok=True)
    res = {}
    for key, cmd in runs.items():
        if only and key not in only:
            continue
        res[key] = _run(cmd)
        with PROGRESS.open("a") as fh:  # one line per finished task (a long run's log)
            fh.write(json.dumps({"key": key, "batch": batch, **res[key]}) + "\n")
    _table(res, batch)


def _table(res: dict, batch: int, logs: bool = False) -> None:
    load = os.getloadavg()[0]
    print(f"## Curvature of a ResNet-18 ({time.strftime('%Y-%m-%d')})\n")
    print(
        f"ResNet-18 (11,173,962 parameters, float32, eval mode), synthetic batch of {batch} "
        "3x32x32 inputs, mean cross-entropy. conv1m: 964,874-parameter conv + BatchNorm "
        "net, batch 128 of 3x16x16; convbn: 10,026-parameter conv + BatchNorm net, batch 256 "
        "of 1x8x8. One process and one thread per row on a shared 2-core machine "
        f"(load average {load:.1f} at the end, ~14 during the run): wall times are "
        "noisy, CPU times and HVP counts are the comparison. Extra memory: peak RSS minus "
        "the peak of one plain forward/backward in the same process. Eigensolvers: ours "
        f"stops when every pair's true residual is <= {TOL:g} |theta| (certified), eigsh "
        f"with ARPACK tol {TOL:g} (the same residual test, on its own estimate), PyHessian "
        "power iteration with deflation at its default tol 1e-3 (relative change of the "
        "estimate, not certified). Traces: Hutch++ with 30 HVPs (ours with a standard "
        "error; curvlinops' none), PyHessian's Hutchinson with at most 30.\n"
    )
    if logs:
        print(
            "Rows from the per-run logs (`--from-logs`): a run without its final JSON was "
            "cut (or still runs) and shows its last logged HVP; peer runs stop at a cap of "
            "HVPs that already settles the comparison. Extra memory of a cut run: its peak "
            "RSS minus the baseline of another run on the same model and batch. CPU s / HVP: "
            "median over consecutive logged products.\n"
        )
    print("| task | tool | HVPs | wall s | CPU s | extra memory | result |")
    print("|---|---|---|---|---|---|---|")
    for key, r in res.items():
        if "error" in r:
            print(f"| {key} | | | | | | error: {r['error']} |")
            continue
        if "eigenvalues" in r:
            result = ", ".join(f"{e:.5g}" for e in r["eigenvalues"])
            if "residuals" in r:
                pairs = zip(r["residuals"], r["eigenvalues"], strict=True)
                worst = max(a / abs(b) for a, b in pairs)
                result += f" (max residual / theta {worst:.1e}, converged {r['converged']})"
        elif "trace" in r:
            se = f" +- {r['stderr']:.4g}" if "stderr" in r else " (no standard error)"
            result = f"{r['trace']:.5g}{se}"
        elif "note" not in r:
            result = json.dumps(r.get("hvp_over_grad_cpu"))
        else:
            result = ""
        if "note" in r:
            result = f"{result} ({r['note']})".strip()
        if "cpu_per_hvp" in r:
            result += f"; {r['cpu_per_hvp']:.1f} CPU s / HVP"
        tool = key.split("_")[0]
        extra = r.get("extra_bytes")
        mem = "?" if extra is None else f"{extra / 2**30:.2f} GiB"
        if extra is None and "peak_bytes" in r:
            mem = f"? (peak RSS {r['peak_bytes'] / 2**30:.2f} GiB)"
        print(
            f"| {key} | {tool} | {r.get('hvps', '')} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} "
            f"| {mem} | {result} |"
        )


CHAIN = (
    "ours_eig",
    "curvlinops_eig",
    "ours_trace",
    "pyhessian_eig",
    "pyhessian_trace",
    "curvlinops_trace",
)


def from_logs(folder: Path) -> dict:
    """The runs logged in ``folder`` as ``_table`` rows: ``TASK.json`` (a finished run's
    JSON line) or, for a run cut or still running, the last line of ``TASK.jsonl``
    (one line per HVP), marked as such."""
    names = [n for n in CHAIN if (folder / f"{n}.jsonl").exists()]
    names += sorted({p.stem for p in folder.glob("*.json*")} - set(names) - {"chain"})
    finals = {}
    for name in names:
        path = folder / f"{name}.json"
        text = path.read_text() if path.exists() else ""
        lines = [ln for ln in text.splitlines() if ln.startswith("{")]
        if lines:
            finals[name] = json.loads(lines[-1])
    # A cut run has no baseline of its own: the same model's baseline from another run.
    bases = {r.get("batch"): r["base_bytes"] for r in finals.values() if "base_bytes" in r}
    res = {}
    for name in names:
        log_path = folder / f"{name}.jsonl"
        log = (
            [json.loads(ln) for ln in log_path.read_text().splitlines()]
            if log_path.exists()
            else []
        )
        r = dict(finals.get(name, {}))
        if r and "stopped_at" in r:
            r["note"] = f"stopped at {r['stopped_at']} HVPs, not converged"
        if not r and log:
            last = log[-1]
            r = {"hvps": last["hvps"], "wall_s": last["wall_s"], "cpu_s": last["cpu_s"]}
            r["note"] = f"cut or still running at {last['hvps']} HVPs (from the per-HVP log)"
            base = last.get("base_gib", 0) * 2**30 or next(iter(bases.values()), None)
            peak = max(line["peak_gib"] for line in log) * 2**30
            r["extra_bytes"] = None if base is None else max(0, peak - base)
            r["peak_bytes"] = peak
        if not r:
            continue
        if log:
            steps = [b["cpu_s"] - a["cpu_s"] for a, b in itertools.pairwise(log)]
            r["cpu_per_hvp"] = statistics.median(steps) if steps else log[0]["cpu_s"]
        res[name] = r
    return res


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", nargs=2, metavar=("NAME", "BATCH"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--only", default=None, help="comma-separated subset of tasks")
    parser.add_argument("--quick", action="store_true", help="print, do not write RESULTS.md")
    parser.add_argument(
        "--from-progress", action="store_true", help="tabulate the tasks logged so far"
    )
    parser.add_argument(
        "--peer-python", default=os.environ.get("DLTHEORY_PEER_CURV", str(DEFAULT_PEER))
    )
    parser.add_argument(
        "--from-logs",
        default=None,
        metavar="DIR",
        help="tabulate the TASK.json / TASK.jsonl files of DIR (a chain of runs, cut or not)",
    )
    parser.add_argument("--section", default=None, help="RESULTS.md section of --from-logs")
    args = parser.parse_args()
    if args.from_logs:
        res = from_logs(Path(args.from_logs))
        run_and_record(
            args.section or f"resnet18-b{args.batch}",
            lambda: _table(res, args.batch, logs=True),
            args.quick,
        )
        return
    if args.task:
        print(json.dumps(task(args.task[0], int(args.task[1]))))
        return
    only = args.only.split(",") if args.only else None
    if args.from_progress:
        logged = [json.loads(ln) for ln in PROGRESS.read_text().splitlines()]
        res = {
            r.pop("key"): r
            for r in logged
            if r.get("batch") == args.batch or r["key"].startswith("conv")
        }
        run_and_record(
            f"resnet18-hessian-b{args.batch}", lambda: _table(res, args.batch), args.quick
        )
        return
    run_and_record(
        f"resnet18-hessian-b{args.batch}",
        lambda: report(args.batch, args.peer_python, only),
        args.quick,
    )


if __name__ == "__main__":
    main()
