"""Falkon keeping K_nm at N = 200,000, d = 64, m = 5,000 (the kernel_regression workload).

    python benchmarks/falkon_200k.py                          # N = 200,000, m = 5,000, float32
    python benchmarks/falkon_200k.py --n 20000 --m 2000 --quick
    python benchmarks/falkon_200k.py --dtype float64 --jsonl out.jsonl --no-record

Data and kernel of ``benchmarks/kernel_regression.py`` (x ~ N(0, I_64), its f*,
noise 0.5; ``MLP(3, "relu", c_w=2, c_b=0.1)`` NNGP, ridge 0.25; error = test MSE
against f* / Var f* on 2,000 test points). ``fit_falkon(..., cross_dtype=...)``
serially with the process's threads (2 here). Phases are timed by wrapping the
solver's K_nm builder and its stored product: K_nm (s), the mean CG iteration
(one K_nm^T K_nm u pass plus four m x m triangular solves), set-up (the rest:
K_mm, its two Cholesky factors, K_nm^T y). Peak memory is the increase of the
process's maximum resident set over the one after imports, data and warm-up,
next to the 4 or 8 N m bytes of K_nm. Wall and CPU seconds and the 1-minute load
average: the machine is shared, so wall times are upper bounds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dltheory import MLP
from dltheory.kernels import fit_falkon, kernel_product, solvers
from kernel_regression import DEPTH, RIDGE, _data
from results_file import run_and_record


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n: int, m: int, dtype: str, tol: float, max_iter: int) -> dict:
    spec = MLP(DEPTH, "relu", c_w=2.0, c_b=0.1)
    x, y, xs, fs = _data(n)
    tx = torch.from_numpy(x)
    # Compile the kernels and the stored product outside the timing.
    fit_falkon(spec, tx[:600], y[:600], ridge=RIDGE, n_inducing=50, cross_dtype=dtype)
    times: dict[str, list[float]] = {"cross": [], "product": []}
    build, product = solvers._cross_matrix, solvers._stored_normal

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            times[key].append(time.perf_counter() - t0)
            return out

        return wrapper

    solvers._cross_matrix = timed("cross", build)
    solvers._stored_normal = timed("product", product)
    base = _rss_mb()
    out = {"n": n, "m": m, "dtype": dtype, "tol": tol, "threads": torch.get_num_threads(),
           "load_start": os.getloadavg()[0]}  # fmt: skip
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        fit = fit_falkon(spec, tx, y, ridge=RIDGE, n_inducing=m, tol=tol, max_iter=max_iter,
                         seed=0, cross_dtype=dtype)  # fmt: skip
    finally:
        solvers._cross_matrix, solvers._stored_normal = build, product
    out["t_fit"], out["cpu_fit"] = time.perf_counter() - t0, time.process_time() - c0
    out["peak_mb"] = _rss_mb() - base
    out["t_cross"] = times["cross"][0]
    iters = times["product"][1:]  # the first call is K_nm^T y
    out["t_iter"] = float(np.mean(iters)) if iters else None
    out["iterations"], out["converged"] = fit.iterations, fit.converged
    out["t_setup"] = out["t_fit"] - out["t_cross"] - sum(times["product"])
    t1 = time.perf_counter()
    pred = kernel_product(spec, torch.from_numpy(xs), fit.centres, torch.from_numpy(fit.alpha))
    out["t_predict"] = time.perf_counter() - t1
    pred = pred.numpy().reshape(-1)
    out["test_error"] = float(np.mean((pred - fs) ** 2) / np.var(fs))
    out["cross_mb"] = np.dtype(dtype).itemsize * n * m / 2**20
    out["load_end"] = os.getloadavg()[0]
    out["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return out


def _f(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def render(rows: list[dict]) -> None:
    print("## Falkon keeping K_nm at N = 200,000 (`benchmarks/falkon_200k.py`)\n")
    print(f"{rows[0]['date']}; x86_64, 2 cores shared with other jobs (1-minute load average "
          "per row: wall times are upper bounds, CPU time beside them), torch "
          f"{torch.__version__}. Workload of `kernel_regression.py`: d = 64, `MLP(3, 'relu', "
          "c_w=2, c_b=0.1)` NNGP, ridge 0.25, error = test MSE / Var f* on 2,000 test points; "
          "exact fit at N = 20,000: 0.1423. Serial, the process's threads.\n")  # fmt: skip
    print(
        "| N | m | K_nm dtype | K_nm (s) | set-up (s) | s / CG iter | iters | fit wall (s) "
        "| fit CPU (s) | peak (MB) | K_nm (MB) | test error | load start / end |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {r['m']} | {r['dtype']} | {r['t_cross']:.1f} | {r['t_setup']:.1f} "
              f"| {_f(r['t_iter'], '.3f')} | {r['iterations']} | {r['t_fit']:.1f} "
              f"| {r['cpu_fit']:.1f} | {r['peak_mb']:.0f} | {r['cross_mb']:.0f} "
              f"| {r['test_error']:.4f} "
              f"| {r['load_start']:.1f} / {r['load_end']:.1f} |")  # fmt: skip
    print("\nK_nm: the kernel evaluated in float64 row blocks and stored (float32: rounded on "
          "store; every product accumulates in float64). 's / CG iter': one pass of "
          "K_nm^T (K_nm u) over the stored matrix; the four m x m triangular solves of the "
          "preconditioner are in 'set-up' with K_mm and its factors.")  # fmt: skip
    for r in rows:
        print(f"\nN = {r['n']}, {r['dtype']}: {r['cpu_fit']:.0f} CPU s over {r['threads']} "
              f"threads, i.e. {r['cpu_fit'] / r['threads']:.0f} s of wall on {r['threads']} "
              "idle cores if every phase keeps both busy (the kernel, the stored product and "
              "the BLAS set-up are threaded); the wall column is what the shared machine "
              f"gave. Prediction of the 2,000 test points: {r['t_predict']:.1f} s.")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--m", type=int, default=5_000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--jsonl", help="append the row to this file")
    parser.add_argument("--render", nargs="*", help="tabulate rows of earlier runs (JSONL)")
    parser.add_argument("--quick", action="store_true", help="print, do not write RESULTS")
    args = parser.parse_args()
    if args.render:
        rows = [json.loads(ln) for f in args.render for ln in open(f) if ln.strip()]
    else:
        rows = [run(args.n, args.m, args.dtype, args.tol, args.max_iter)]
        print(json.dumps(rows[0]), file=sys.stderr, flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as fh:
                fh.write(json.dumps(rows[0]) + "\n")
    run_and_record("falkon_200k", lambda: render(rows), args.quick)
