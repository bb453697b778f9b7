"""Hard-margin SVM through the origin: ``dltheory.implicit_bias.max_margin`` against its old solver.

    python benchmarks/max_margin.py           # n up to 10,000 (writes a RESULTS.md section)
    python benchmarks/max_margin.py --quick   # small smoke run

Workload: ``separable_dataset(n, d=5, margin=0.25)`` (known w_hat = u / margin)
with its rows shuffled, and Gaussian points labelled by a random hyperplane
with the points inside a slab of half-width 0.05 removed (support vectors
unknown in advance). Target: n = 10,000, d = 5 in under 2 s with KKT
residuals below 1e-8.

Baseline, measured in the same run: the previous solver (L-BFGS-B on the
n-dimensional dual with a dense n x n Gram matrix, then the same active-set
polish), copied below, at sizes it can finish. Times: median of repeats after
one warm-up; the load average and the process CPU time are recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

import numpy as np
import scipy
import torch
from scipy.optimize import minimize

from dltheory.implicit_bias.margin import _check_separable, _polish, max_margin, separable_dataset


def old_max_margin(X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The previous solver (dltheory before issue 15): dual L-BFGS-B, then the polish."""
    Z = (y[:, None] * X).numpy()
    _check_separable(Z)
    gram = Z @ Z.T
    res = minimize(
        lambda a: (0.5 * a @ gram @ a - a.sum(), gram @ a - 1.0),
        np.zeros(Z.shape[0]), jac=True, method="L-BFGS-B", bounds=[(0, None)] * Z.shape[0],
        options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 10_000},
    )  # fmt: skip
    return _polish(Z, np.maximum(res.x, 0.0))


def slab_dataset(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian points, labels sign(v . x), points with |v . x| < 0.05 dropped."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(d, generator=g, dtype=torch.float64)
    v /= v.norm()
    x = torch.randn(3 * n, d, generator=g, dtype=torch.float64) + 0.5 * v  # not through 0 only
    score = x @ v
    x = x[score.abs() >= 0.05][:n]
    return x, torch.sign(x @ v)


def kkt_residual(X: torch.Tensor, y: torch.Tensor, w: np.ndarray, a: np.ndarray) -> float:
    """max of primal violation, dual violation, complementarity, |w - sum a_i z_i|."""
    Z = (y[:, None] * X).numpy()
    m = Z @ w
    return float(
        max(
            max(0.0, 1.0 - m.min()),
            max(0.0, -a.min()),
            np.abs(a * (m - 1.0)).max(),
            np.abs(w - Z.T @ a).max() / max(1.0, np.abs(w).max()),
        )
    )


def _time(fn, repeats: int) -> tuple[float, float, object]:
    out = fn()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), out


def measure(kind: str, n: int, d: int, repeats: int, old: bool) -> dict:
    if kind == "known":
        X, y, w_hat = separable_dataset(n, d, margin=0.25, seed=0)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))
        X, y = X[perm], y[perm]
    else:
        X, y = slab_dataset(n, d, seed=0)
        w_hat = None
    wall, cpu, res = _time(lambda: max_margin(X, y), repeats)
    row = {
        "kind": kind,
        "n": X.shape[0],
        "d": d,
        "wall": wall,
        "cpu": cpu,
        "kkt": kkt_residual(X, y, res.w.numpy(), res.dual.numpy()),
        "err": float((res.w - w_hat).abs().max()) if w_hat is not None else float("nan"),
        "support": int(res.support.numel()),
    }
    if old:
        old_wall, old_cpu, a = _time(lambda: old_max_margin(X, y), 1)
        Z = (y[:, None] * X).numpy()
        row |= {
            "old_wall": old_wall,
            "old_cpu": old_cpu,
            "old_kkt": kkt_residual(X, y, Z.T @ a, a),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        cases = [("known", 200, 5, True), ("slab", 1000, 5, False)]
        repeats = 1
    else:
        cases = [
            ("known", 200, 5, True),
            ("slab", 200, 5, True),
            ("known", 500, 5, True),
            ("known", 1000, 5, True),
            ("known", 10_000, 5, False),
            ("slab", 10_000, 5, False),
            ("slab", 10_000, 20, False),
            ("known", 100_000, 5, False),
        ]
        repeats = 3
    load_before = os.getloadavg()
    rows = [measure(kind, n, d, repeats, old) for kind, n, d, old in cases]
    load_after = os.getloadavg()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print("# Benchmark: hard-margin SVM through the origin (`python benchmarks/max_margin.py`)\n")
    print(
        f"Measured {now}, {platform.machine()}, {os.cpu_count()} cores, numpy "
        f"{np.__version__}, scipy {scipy.__version__}; load average (1, 5, 15 min) "
        f"{tuple(round(v, 1) for v in load_before)} before, "
        f"{tuple(round(v, 1) for v in load_after)} after (a shared machine: wall times are "
        "noisy, CPU times less so). Median of "
        f"{repeats} runs after a warm-up; the old solver once.\n"
    )
    print(
        "| data | n | d | support | wall (s) | CPU (s) | KKT residual | max abs w error | "
        "old solver wall (s) | old CPU (s) | old KKT residual |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        old = (
            f"{r['old_wall']:.2f} | {r['old_cpu']:.2f} | {r['old_kkt']:.1e}"
            if "old_wall" in r
            else "not run (dense n x n Gram; n = 3,000 ran > 5 min in issue 15) | | "
        )
        print(
            f"| {r['kind']} | {r['n']} | {r['d']} | {r['support']} | {r['wall']:.3f} | "
            f"{r['cpu']:.3f} | {r['kkt']:.1e} | {r['err']:.1e} | {old} |"
        )
    target = [r for r in rows if r["n"] == 10_000 and r["d"] == 5]
    met = all(r["wall"] < 2.0 and r["kkt"] < 1e-8 for r in target)
    print(
        "\nData: `known` is `separable_dataset(n, d, margin=0.25)` shuffled (w error against "
        "its exact w_hat); `slab` is Gaussian points labelled by a random hyperplane with a "
        "gap of 0.1. Target (n = 10,000, d = 5: under 2 s, KKT residual < 1e-8): "
        + ("met." if met else "missed.")
    )


if __name__ == "__main__":
    import sys

    from results_file import run_and_record  # beside this script

    run_and_record("max_margin", main, quick="--quick" in sys.argv)
