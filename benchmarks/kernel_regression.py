"""Kernel regression with the depth-3 ReLU NNGP: exact in place, Falkon CG, scikit-learn.

    python benchmarks/kernel_regression.py                # N = 2,000 / 20,000 / 200,000
    python benchmarks/kernel_regression.py --quick        # N = 2,000 only; prints only
    python benchmarks/kernel_regression.py --sizes 2000 20000 --timeout 1500
    python benchmarks/kernel_regression.py --sizes 20000 --kinds exact-mixed \
        --section kernel_regression-mixed             # float32 factor + float64 refinement

Data: x ~ N(0, I_64), f*(x) = tanh(2 x.w1 / 8) + (x.w2 / 8)^2 / 2, y = f* + N(0, 0.5^2)
(seeded); 2,000 test points; the error is the test MSE against f* relative to Var f*.
Kernel: ``MLP(3, "relu", c_w=2, c_b=0.1)`` NNGP, ridge 0.25 (= the noise variance).

Each job runs in its own process, so its peak resident memory (``ru_maxrss``) is
its own: ``peak`` is the increase over the process after imports and data, shown
next to the Gram's 8 N^2 bytes. Jobs:

* ``exact``: ``gram_matrix`` (one Fortran-ordered N x N buffer in panels), then
  ``cholesky_in_place`` and ``potrs``; predictions by blocked products. Up to
  N = 5,000 the same job then builds the dense reference (``spec.kernel`` +
  ``numpy.linalg.solve``) after the peak was recorded, and reports the largest
  prediction difference relative to the largest prediction.
* ``exact-mixed``: the path of ``fit_exact(precision="mixed")``, timed by parts:
  ``gram_matrix``, ``mixed_cholesky`` (float32 copy and torch's float32 LAPACK
  Cholesky, in place), then CG in float64 preconditioned by it (``refine``).
  After its peak memory is recorded, the same process times
  ``torch.linalg.cholesky`` on the same float64 Gram (+ ridge) alone, the issue's
  yardstick (as ``cholesky_ex`` with the Gram as its output: the same LAPACK
  ``potrf`` without the copy, so no second N x N array on a shared machine), and
  compares predictions and log-determinants with that float64 solve.
* ``sklearn``: ``KernelRidge(kernel="precomputed")`` fitted on the same Gram
  (its build not timed), the peer the issue names.
* ``falkon``: ``fit_falkon`` with m centres, serially (the process's threads) or on
  a 2-worker ``LocalCluster`` (one thread each): set-up, time per CG iteration.

Every job records the 1-minute load average and the process CPU time: this
machine is shared, so wall times are upper bounds of the quiet-machine ones.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

D, DEPTH, RIDGE, NOISE, N_TEST = 64, 3, 0.25, 0.5, 2000


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(12345).standard_normal((2, D))
    x = rng.standard_normal((n + N_TEST, D))
    f = np.tanh(2 * x @ w[0] / np.sqrt(D)) + 0.5 * (x @ w[1] / np.sqrt(D)) ** 2
    y = f + NOISE * rng.standard_normal(len(x))
    return x[:n], y[:n], x[n:], f[n:]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _job(spec_json: str) -> dict:
    import torch

    from dltheory import MLP
    from dltheory.kernels import cholesky_in_place, fit_falkon, gram_matrix, kernel_product
    from dltheory.kernels.cholesky import mixed_cholesky
    from dltheory.parallel import pool

    job = json.loads(spec_json)
    n = job["n"]
    spec = MLP(DEPTH, "relu", c_w=2.0, c_b=0.1)
    x, y, xs, fs = _data(n)
    tx, txs = torch.from_numpy(x), torch.from_numpy(xs)
    # Load the compiled kernels (fused loop, symmetric and cross panels) outside the timing.
    gram_matrix(spec, tx[:256], block_rows=64)
    base = _rss_mb()
    out = {**job, "load_start": os.getloadavg()[0]}
    cpu0, t0 = time.process_time(), time.perf_counter()
    if job["kind"] == "gram":  # --gram-only: the Gram of the exact fit, nothing else
        gram_matrix(spec, tx)
        out["t_gram"], out["cpu"] = time.perf_counter() - t0, time.process_time() - cpu0
        out["threads"] = [torch.get_num_threads(), __import__("numba").get_num_threads()]
        return {**out, "load_end": os.getloadavg()[0], "peak_mb": _rss_mb() - base}
    if job["kind"] == "exact":
        buf = gram_matrix(spec, tx)
        out["t_gram"] = time.perf_counter() - t0
        chol = cholesky_in_place(buf, shift=RIDGE)
        alpha = chol.solve(y)
        out["t_fit"] = time.perf_counter() - t0
        pred = kernel_product(spec, txs, tx, torch.from_numpy(alpha)).numpy()
        out["t_predict"] = time.perf_counter() - t0 - out["t_fit"]
        out["jitter"] = chol.jitter
        out["peak_mb"] = _rss_mb() - base
        if n <= 5000:
            del buf, chol
            k = spec.kernel(tx).nngp.numpy()
            ref_alpha = np.linalg.solve(k + RIDGE * np.eye(n), y)
            ref = spec.kernel(txs, tx).nngp.numpy() @ ref_alpha
            out["max_rel_diff"] = float(np.abs(pred - ref).max() / np.abs(ref).max())
    elif job["kind"] == "exact-mixed":
        buf = gram_matrix(spec, tx)
        out["t_gram"], out["cpu_gram"] = time.perf_counter() - t0, time.process_time() - cpu0
        c1, t1 = time.process_time(), time.perf_counter()
        mixed = mixed_cholesky(buf, shift=RIDGE)
        out["t_factor"], out["cpu_factor"] = time.perf_counter() - t1, time.process_time() - c1
        c1, t1 = time.process_time(), time.perf_counter()
        refined = mixed.refine(y)
        out["t_refine"], out["cpu_refine"] = time.perf_counter() - t1, time.process_time() - c1
        out["t_fit"] = time.perf_counter() - t0
        out["iterations"], out["converged"] = refined.iterations, refined.converged
        out["backward_error"], out["condition_est"] = refined.residuals[-1], mixed.condition
        alpha = refined.x
        pred = kernel_product(spec, txs, tx, torch.from_numpy(alpha)).numpy()
        out["peak_mb"] = _rss_mb() - base
        out["cpu"] = time.process_time() - cpu0
        logdet = mixed.logdet()
        del mixed, refined
        buf[np.diag_indices(n)] += RIDGE
        load0, c1, t1 = os.getloadavg()[0], time.process_time(), time.perf_counter()
        low, info = torch.from_numpy(buf), torch.empty((), dtype=torch.int32)
        torch.linalg.cholesky_ex(low, out=(low, info))  # potrf in place: no 2nd N x N array
        out["t_chol64"], out["cpu_chol64"] = time.perf_counter() - t1, time.process_time() - c1
        out["load_chol64"] = (load0, os.getloadavg()[0])
        alpha64 = torch.cholesky_solve(torch.from_numpy(y[:, None]), low).numpy()
        out["logdet_diff"] = logdet - 2.0 * float(torch.log(low.diagonal()).sum())
        pred64 = kernel_product(spec, txs, tx, torch.from_numpy(alpha64)).numpy()
        pred, pred64 = pred.reshape(-1), pred64.reshape(-1)
        out["max_rel_diff"] = float(np.abs(pred - pred64).max() / np.abs(pred64).max())
    elif job["kind"] == "sklearn":
        from sklearn.kernel_ridge import KernelRidge

        buf = gram_matrix(spec, tx)
        base, cpu0, t0 = _rss_mb(), time.process_time(), time.perf_counter()
        model = KernelRidge(alpha=RIDGE, kernel="precomputed").fit(buf, y)
        out["t_fit"] = time.perf_counter() - t0
        out["peak_mb"] = _rss_mb() - base
        pred = model.predict(spec.kernel(txs, tx).nngp.numpy())
    else:
        backend = job["backend"]
        with pool(backend, n_workers=2) as p:
            t0 = time.perf_counter()
            fit = fit_falkon(spec, tx, y, ridge=RIDGE, n_inducing=job["m"], tol=job["tol"],
                             max_iter=job["max_iter"], seed=0,
                             pool=p if backend == "dask" else None)  # fmt: skip
            out["t_fit"] = time.perf_counter() - t0
            out["iterations"], out["converged"] = fit.iterations, fit.converged
            pred = kernel_product(spec, txs, fit.centres, torch.from_numpy(fit.alpha)).numpy()
        out["peak_mb"] = _rss_mb() - base
    pred = pred.reshape(-1)
    out["test_error"] = float(np.mean((pred - fs) ** 2) / np.var(fs))
    out.setdefault("cpu", time.process_time() - cpu0)
    out["load_end"] = os.getloadavg()[0]
    out["gram_mb"] = 8 * n * n / 2**20
    return out


def _mixed_table(rows: list[dict]) -> None:
    """Mixed precision against torch.linalg.cholesky on the same float64 Gram (same run)."""
    if not rows:
        return
    print(
        "\nExact fit in mixed precision (float32 Cholesky, float64 CG preconditioned by it), "
        "against `torch.linalg.cholesky` of the same float64 Gram alone, timed in the same "
        "process. Wall (CPU) seconds; 'ratio' = (Gram + factor + refine) / float64 Cholesky; "
        "'f+r ratio' leaves the Gram out.\n"
    )
    print(
        "| N | Gram (s) | f32 factor (s) | refine (s) | iters | backward error | float64 "
        "Cholesky (s) | ratio | f+r ratio | peak / Gram | vs float64 | logdet diff | "
        "test error | load start/end |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['n']} | {r['error']} |" + " |" * 12)
            continue
        fr = r["t_factor"] + r["t_refine"]
        print(f"| {r['n']} | {r['t_gram']:.2f} ({r['cpu_gram']:.1f}) "
              f"| {r['t_factor']:.2f} ({r['cpu_factor']:.1f}) "
              f"| {r['t_refine']:.2f} ({r['cpu_refine']:.1f}) | {r['iterations']} "
              f"| {r['backward_error']:.1e} | {r['t_chol64']:.2f} ({r['cpu_chol64']:.1f}) "
              f"| {r['t_fit'] / r['t_chol64']:.2f} | {fr / r['t_chol64']:.2f} "
              f"| {r['peak_mb'] / r['gram_mb']:.2f} | {r['max_rel_diff']:.1e} "
              f"| {r['logdet_diff']:.1e} | {r['test_error']:.4f} "
              f"| {r['load_start']:.1f} / {r['load_end']:.1f} |")  # fmt: skip


def _run(job: dict, timeout: float) -> dict:
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--job", json.dumps(job)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {**job, "error": f"not finished within {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {**job, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(lines[-1])


def _fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def _jobs(sizes: list[int], m: int, kinds: list[str], big_iters: int) -> list[dict]:
    """Exact and scikit-learn first, then Falkon serially, then Dask (time per iteration)."""
    jobs = []
    for n in sizes:
        if n <= 40_000 and "exact" in kinds:
            jobs.append({"kind": "exact", "n": n})
        if n <= 40_000 and "exact-mixed" in kinds:
            jobs.append({"kind": "exact-mixed", "n": n})
        if n <= 20_000 and "sklearn" in kinds:
            jobs.append({"kind": "sklearn", "n": n})
    for backend in ("serial", "dask"):
        for n in sizes:
            mm = min(n, m if n > 2000 else 500)
            iters = 30 if n <= 2000 or (n <= 20_000 and backend == "serial") else big_iters
            if f"falkon-{backend}" in kinds:
                jobs.append({"kind": "falkon", "n": n, "m": mm, "backend": backend,
                             "tol": 1e-6, "max_iter": iters})  # fmt: skip
    return jobs


def main(results: list[dict], seconds: float, notes: str = "") -> None:
    import sklearn
    import torch

    import dltheory

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        "# Benchmark: kernel regression with the NNGP (exact in place, Falkon CG, scikit-learn)\n"
    )
    print(f"Generated by `python benchmarks/kernel_regression.py` on {now} "
          f"(jobs total {seconds:.0f} s).\n")  # fmt: skip
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"Python {platform.python_version()}, torch {torch.__version__}, numpy "
          f"{np.__version__}, scikit-learn {sklearn.__version__}, dltheory "
          f"{dltheory.__version__}. Shared machine: load average per job.\n")  # fmt: skip
    print(f"Workload: d = {D}, `MLP({DEPTH}, 'relu', c_w=2, c_b=0.1)` NNGP, ridge {RIDGE}, "
          f"{N_TEST} test points; error = test MSE / Var f* (script docstring).\n")  # fmt: skip
    print(
        "| N | method | backend | Gram (s) | fit (s) | s / CG iter | iters | CPU (s) | "
        "peak (MB) | Gram (MB) | peak / Gram | test error | vs dense | load start/end |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r["kind"] == "exact-mixed":
            continue
        method = {"exact": "dltheory exact (in place)", "sklearn": "sklearn KernelRidge",
                  "falkon": f"dltheory Falkon m={r.get('m')}"}[r["kind"]]  # fmt: skip
        if "error" in r:
            print(f"| {r['n']} | {method} | {r.get('backend', 'serial')} | {r['error']} |"
                  + " |" * 10)  # fmt: skip
            continue
        per_iter = r["t_fit"] / r["iterations"] if r.get("iterations") else None
        print(f"| {r['n']} | {method} | {r.get('backend', 'serial')} | {_fmt(r.get('t_gram'))} "
              f"| {_fmt(r['t_fit'])} | {_fmt(per_iter)} | {r.get('iterations', '-')} "
              f"| {_fmt(r['cpu'], '.1f')} | {_fmt(r['peak_mb'], '.0f')} | {r['gram_mb']:.0f} "
              f"| {r['peak_mb'] / r['gram_mb']:.2f} | {r['test_error']:.4f} "
              f"| {_fmt(r.get('max_rel_diff'), '.1e')} "
              f"| {r['load_start']:.1f} / {r['load_end']:.1f} |")  # fmt: skip
    print(
        "\nFalkon's fit time includes its set-up (K_mm, two m x m Cholesky factors, "
        "K_nm^T y); 's / CG iter' divides the whole fit by the iterations, so it is an "
        "upper bound. Runs with 'iters' at the cap (--big-iters) measure time per iteration "
        "and memory only: their test error is not converged. 'peak' excludes the "
        "process's imports and the data."
    )
    _mixed_table([r for r in results if r["kind"] == "exact-mixed"])
    if notes:
        print("\n" + notes.strip())  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--job")
    parser.add_argument("--sizes", type=int, nargs="*", default=[2000, 20_000, 200_000])
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--m", type=int, default=2000)
    parser.add_argument("--big-iters", type=int, default=30, help="Falkon iterations at N > 20k")
    parser.add_argument("--kinds", nargs="*", default=["exact", "exact-mixed", "sklearn",
                        "falkon-serial", "falkon-dask"])  # fmt: skip
    parser.add_argument("--jsonl", help="append each job's result to this file")
    parser.add_argument("--render", nargs="*", help="JSONL files of earlier jobs to tabulate")
    parser.add_argument("--notes", help="markdown file appended to the section")
    parser.add_argument("--no-record", action="store_true", help="print, do not write RESULTS")
    parser.add_argument("--gram-only", action="store_true", help="time gram_matrix per size")
    parser.add_argument("--section", default="kernel_regression",
                        help="RESULTS.md section, e.g. kernel_regression-mixed")  # fmt: skip
    args = parser.parse_args()
    if args.job:
        print(json.dumps(_job(args.job)))
        sys.exit(0)
    if args.gram_only:  # one process per size; prints one JSON line per run
        for n in args.sizes:
            print(json.dumps(_run({"kind": "gram", "n": n}, args.timeout)), flush=True)
        sys.exit(0)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from results_file import run_and_record

    if args.render:  # a table from jobs run earlier (e.g. in parallel processes)
        results = [json.loads(ln) for f in args.render for ln in open(f) if ln.strip()]
        seconds = sum(r.get("wall", 0.0) for r in results)
    else:
        results, seconds = [], 0.0
        sizes = [2000] if args.quick else args.sizes
        for job in _jobs(sizes, args.m, args.kinds, args.big_iters):
            t = time.time()
            res = {**_run(job, args.timeout), "wall": time.time() - t}
            seconds += res["wall"]
            results.append(res)
            print(json.dumps(res), file=sys.stderr, flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as fh:
                    fh.write(json.dumps(res) + "\n")
    run_and_record(
        args.section,
        lambda: main(results, seconds, open(args.notes).read() if args.notes else ""),
        quick=args.quick or args.no_record,
    )
