"""Exact kernel ridge fit at N = 20,000 against torch's float64 Cholesky of the same Gram.

Workload of ``kernel_regression.py`` (d = 64, depth-3 ReLU NNGP, ridge 0.25). Each
variant runs in its own process (its own peak memory), 2 torch threads:

* ``cg``: ``fit_exact(..., factor=False)`` (coefficients only: CG on the stored Gram,
  Nystrom-preconditioned; falls back to the factorisation when it would be slower);
* ``mixed``: ``fit_exact(..., precision="mixed")`` (float32 factor + float64 refinement,
  the factor kept for posterior variances and the evidence);
* ``chol64``: the Gram (not timed), then ``torch.linalg.cholesky`` in float64 of the
  same Gram alone (timed) and its solve: the reference time and coefficients.

The ratio is (whole fit, Gram included) / (float64 Cholesky alone); 'vs float64' is the
largest prediction difference on 2,000 test points relative to the largest prediction.
Run::

    python benchmarks/exact_fit_20k.py            # N = 20,000, writes RESULTS.md
    python benchmarks/exact_fit_20k.py --quick    # N = 4,000, prints only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kernel_regression import RIDGE, _data
from results_file import run_and_record


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(variant: str, n: int, out_dir: str) -> dict:
    import torch

    from dltheory import MLP
    from dltheory.kernels import fit_exact, gram_matrix, kernel_product

    torch.set_num_threads(2)
    spec = MLP(3, "relu", c_w=2.0, c_b=0.1)
    x, y, xs, _ = _data(n)
    tx, txs = torch.from_numpy(x), torch.from_numpy(xs)
    gram_matrix(spec, tx[:256], block_rows=64)  # compile outside the timing
    base = _rss_mb()
    out: dict = {"variant": variant, "n": n, "load_start": os.getloadavg()[0]}
    t, c = time.perf_counter(), time.process_time()
    if variant == "chol64":
        buf = gram_matrix(spec, tx)
        buf[np.diag_indices(n)] += RIDGE
        t, c = time.perf_counter(), time.process_time()
        low, info = torch.from_numpy(buf), torch.empty((), dtype=torch.int32)
        torch.linalg.cholesky_ex(low, out=(low, info))  # potrf in place
        out["wall"], out["cpu"] = time.perf_counter() - t, time.process_time() - c
        alpha = torch.cholesky_solve(torch.from_numpy(y[:, None]), low).numpy()
    else:
        kw = {"factor": False} if variant == "cg" else {"precision": "mixed"}
        fit = fit_exact(spec, tx, y, ridge=RIDGE, **kw)
        out["wall"], out["cpu"] = time.perf_counter() - t, time.process_time() - c
        out.update(precision=fit.precision, iterations=fit.iterations)
        alpha = fit.alpha
    out["peak_mb"] = _rss_mb() - base
    out["gram_mb"] = n * n * 8 / 2**20
    pred = kernel_product(spec, txs, tx, torch.from_numpy(alpha.reshape(n, -1))).numpy()
    np.save(Path(out_dir) / f"{variant}.npy", pred.reshape(-1))
    out["load_end"] = os.getloadavg()[0]
    return out


def render(rows: list[dict], n: int) -> None:
    by = {r["variant"]: r for r in rows}
    ref = by.get("chol64", {})
    print(f"## Exact fit at N = {n:,} against the float64 Cholesky (`exact_fit_20k.py`)\n")
    print(
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on a 2-core x86_64 "
        "(2 torch threads), d = 64, depth-3 ReLU NNGP, ridge 0.25; one process per row. "
        "'ratio' = whole fit (Gram included) / float64 Cholesky of the same Gram alone, "
        "same run; 'peak / Gram' = peak resident memory above the process's start over "
        "the float64 Gram's bytes.\n"
    )
    print("| variant | what ran | wall s | CPU s | ratio | peak / Gram | vs float64 | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["wall"] / ref["wall"] if ref.get("wall") else float("nan")
        what = r.get("precision", "Cholesky (potrf)")
        if r.get("iterations"):
            what += f", {r['iterations']} iterations"
        diff = r.get("max_rel_diff")
        print(
            f"| {r['variant']} | {what} | {r['wall']:.2f} | {r['cpu']:.2f} | {ratio:.2f} "
            f"| {r['peak_mb'] / r['gram_mb']:.2f} | {'-' if diff is None else f'{diff:.1e}'} "
            f"| {r['load_start']:.1f} / {r['load_end']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "N", "DIR"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.child[2])))
        return
    n = 4000 if args.quick else 20_000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("chol64", "cg", "mixed"):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", variant, str(n), tmp],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        ref = np.load(Path(tmp) / "chol64.npy")
        for r in rows[1:]:
            pred = np.load(Path(tmp) / f"{r['variant']}.npy")
            r["max_rel_diff"] = float(np.abs(pred - ref).max() / np.abs(ref).max())
    run_and_record("exact_fit_20k", lambda: render(rows, n), args.quick)


if __name__ == "__main__":
    main()
