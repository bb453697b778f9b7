"""Falkon with K_nm kept against scikit-learn's Nystroem + Ridge on a teacher network.

    python benchmarks/falkon_teacher.py                 # N = 50,000, m = 2,000
    python benchmarks/falkon_teacher.py --n 5000 --m 500 --quick

Data: x ~ N(0, I_16), y = a random two-layer ReLU teacher (width 64, He
initialisation, seeded) plus N(0, 0.1^2 Var f) noise; 5,000 test points; held-out
R^2. Ours: ``NNGPRegressor(solver="cg", n_inducing=m, depth=2,
max_evidence_samples=1000)`` (c_w, c_b, noise learned by evidence on 1,000
points, then Falkon with K_nm computed once and kept). Peer, same run:
``make_pipeline(Nystroem(RBF, gamma=1/16, n_components=m), RidgeCV)``. Wall and CPU
seconds; the machine is shared (load average printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dltheory.estimators import NNGPRegressor

try:
    from results_file import run_and_record
except ImportError:  # pragma: no cover
    from benchmarks.results_file import run_and_record


def teacher_data(n: int, n_test: int, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((d, 64)) * np.sqrt(2.0 / d)
    w2 = rng.standard_normal(64) * np.sqrt(2.0 / 64)
    x = rng.standard_normal((n + n_test, d))
    f = np.maximum(x @ w1, 0.0) @ w2
    y = f + 0.1 * f.std() * rng.standard_normal(len(f))
    return x[:n], x[n:], y[:n], y[n:]


def _timed(model, x, y):
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return time.perf_counter() - t0, time.process_time() - c0


def main(n: int, m: int) -> None:
    xtr, xte, ytr, yte = teacher_data(n, 5000)
    peer = make_pipeline(
        StandardScaler(),
        Nystroem(kernel="rbf", gamma=1.0 / 16, n_components=m, random_state=0),
        RidgeCV(alphas=np.logspace(-6, 2, 9)),
    )
    ours = NNGPRegressor(solver="cg", n_inducing=m, depth=2, max_evidence_samples=1000,
                         random_state=0, max_iter=200, tol=1e-6)  # fmt: skip
    rows = []
    for label, model in [("Nystroem(RBF) + RidgeCV", peer), ("NNGPRegressor Falkon", ours)]:
        wall, cpu = _timed(model, xtr, ytr)
        rows.append((label, model.score(xte, yte), wall, cpu))
    print("## Falkon keeping K_nm vs Nystroem + Ridge (`benchmarks/falkon_teacher.py`)\n")
    load = os.getloadavg()[0]
    print(f"{dt.date.today()}, N = {n}, m = {m}, d = 16 teacher; 2 cores shared (1-min "
          f"load {load:.1f}); K_nm {8 * n * m / 2**20:.0f} MiB kept in memory.\n")  # fmt: skip
    print("| model | held-out R^2 | fit wall s | fit CPU s |")
    print("|---|---|---|---|")
    for label, r2, wall, cpu in rows:
        print(f"| {label} | {r2:.4f} | {wall:.1f} | {cpu:.1f} |")
    learned = f"c_w {ours.c_w_:.3g}, c_b {ours.c_b_:.3g}, noise {ours.alpha_:.3g}"
    print(f"\nFalkon: {ours.n_iter_} CG iterations, converged {ours.converged_}, "
          f"learned {learned}.")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--m", type=int, default=2_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run_and_record("falkon_teacher", lambda: main(args.n, args.m), args.quick)
