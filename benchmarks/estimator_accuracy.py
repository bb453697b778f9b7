"""Out-of-the-box accuracy of the NNGP / NTK estimators against scikit-learn's GPs.

    python benchmarks/estimator_accuracy.py            # all tasks, writes RESULTS.md
    python benchmarks/estimator_accuracy.py --quick    # prints only

Tasks (inputs standardised with ``StandardScaler`` for every model, the same
train / test split for all, seeds fixed):

* diabetes (442 samples, 10 features), 30 % held out: held-out R^2;
* ``make_friedman1(n_samples=500, noise=1)``, 30 % held out: held-out R^2;
* ``make_classification(n_samples=400, flip_y=0.3)``, 30 % held out: log-loss.

Peers, in the same run: ``GaussianProcessRegressor(ConstantKernel * RBF +
WhiteKernel, n_restarts_optimizer=3, normalize_y=True)`` and
``GaussianProcessClassifier(ConstantKernel * RBF, n_restarts_optimizer=3)``.
With per-feature scales: the GPR with an ARD RBF (one length scale per
feature) against ``NNGPRegressor(feature_variances="learn")`` and the NTK's.
Ours: ``NNGPRegressor()``, ``NTKRegressor()``, ``NNGPClassifier()``,
``NTKClassifier()`` with their defaults (evidence-learned c_w, c_b, noise and
depth; calibrated temperature). Wall and CPU (``time.process_time``) seconds of
each fit; the machine is shared, so wall times are upper bounds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, make_classification, make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from dltheory.estimators import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor

try:
    from results_file import run_and_record
except ImportError:  # pragma: no cover - run from elsewhere
    from benchmarks.results_file import run_and_record


def _split(x, y, seed=0):
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.3, random_state=seed)
    scaler = StandardScaler().fit(xtr)
    return scaler.transform(xtr), scaler.transform(xte), ytr, yte


def _timed(model, x, y):
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model, time.perf_counter() - t0, time.process_time() - c0


def _gpr():
    kernel = ConstantKernel() * RBF() + WhiteKernel()
    return GaussianProcessRegressor(kernel, n_restarts_optimizer=3, normalize_y=True,
                                    random_state=0)  # fmt: skip


def _gpr_ard(d):
    kernel = ConstantKernel() * RBF(length_scale=np.ones(d)) + WhiteKernel()
    return GaussianProcessRegressor(kernel, n_restarts_optimizer=3, normalize_y=True,
                                    random_state=0)  # fmt: skip


def _gpc():
    return GaussianProcessClassifier(ConstantKernel() * RBF(), n_restarts_optimizer=3,
                                     random_state=0)  # fmt: skip


def regression_rows(name, x, y):
    xtr, xte, ytr, yte = _split(x, y)
    rows = []
    for label, model in [
        ("GaussianProcessRegressor (C*RBF+White, 3 restarts)", _gpr()),
        ("NNGPRegressor()", NNGPRegressor(random_state=0)),
        ("NTKRegressor()", NTKRegressor(random_state=0)),
        ("GaussianProcessRegressor (C*RBF(ARD)+White, 3 restarts)", _gpr_ard(x.shape[1])),
        (
            'NNGPRegressor(feature_variances="learn")',
            NNGPRegressor(random_state=0, feature_variances="learn"),
        ),
        (
            'NTKRegressor(feature_variances="learn")',
            NTKRegressor(random_state=0, feature_variances="learn"),
        ),
    ]:
        model, wall, cpu = _timed(model, xtr, ytr)
        extra = ""
        if hasattr(model, "depth_"):
            extra = (f"depth {model.depth_}, c_w {model.c_w_:.3g}, c_b {model.c_b_:.3g}, "
                     f"noise {model.alpha_:.3g}")  # fmt: skip
        rows.append((name, label, f"R^2 {model.score(xte, yte):.4f}", wall, cpu, extra))
    return rows


def classification_rows():
    x, y = make_classification(n_samples=400, flip_y=0.3, random_state=0)
    xtr, xte, ytr, yte = _split(x, y)
    rows = []
    for label, model in [
        ("GaussianProcessClassifier (C*RBF, 3 restarts)", _gpc()),
        ("NNGPClassifier()", NNGPClassifier(random_state=0)),
        ("NTKClassifier()", NTKClassifier(random_state=0)),
    ]:
        model, wall, cpu = _timed(model, xtr, ytr)
        loss = log_loss(yte, model.predict_proba(xte))
        acc = model.score(xte, yte)
        extra = f"T {model.temperature_:.3g}, depth {model.depth_}" if hasattr(
            model, "temperature_") else ""  # fmt: skip
        rows.append(("classification flip_y=0.3", label, f"log-loss {loss:.4f} (acc {acc:.3f})",
                     wall, cpu, extra))  # fmt: skip
    return rows


def main(quick: bool) -> None:
    rows = regression_rows("diabetes", *load_diabetes(return_X_y=True))
    if not quick:
        rows += regression_rows("friedman1", *make_friedman1(n_samples=500, noise=1.0,
                                                             random_state=0))  # fmt: skip
        rows += classification_rows()
    print("## Estimator accuracy out of the box (`benchmarks/estimator_accuracy.py`)\n")
    print(f"{dt.date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores shared with other jobs (1-min load "
          f"{os.getloadavg()[0]:.1f}); OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}.\n")  # fmt: skip
    print("| task | model | held-out | fit wall s | fit CPU s | learned |")
    print("|---|---|---|---|---|---|")
    for task, label, score, wall, cpu, extra in rows:
        print(f"| {task} | {label} | {score} | {wall:.1f} | {cpu:.1f} | {extra} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run_and_record("estimator_accuracy", lambda: main(args.quick), args.quick)
