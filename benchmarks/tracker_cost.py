"""Cost of the ntk_lambda_max tracker during training: Lanczos vs a full NTK per call.

300 full-batch GD steps (MSE) on the first N = 100 scikit-learn digits (k = 10 outputs,
so the NTK is 1,000 x 1,000), tracking every step:

* ``loss`` only (the baseline run);
* ``ntk_lambda_max``: Lanczos on NTK-vector products, warm-started from the previous
  eigenvector (this library);
* the former tracker, a full ``empirical_ntk(output="full")`` and ``eigvalsh`` per call
  (run as a custom tracker every 10 steps; its per-call time is reported and times 300).

Models: the tanh MLP 64-64-64-10 of the edge-of-stability reproduction and the test
zoo's conv net (Conv2d + BatchNorm2d in train mode + ReLU + pooling + Linear) on the
8 x 8 images, float32, one torch thread. The values of both trackers agree to the
Lanczos tolerance (checked at every 10th step).

Usage: python benchmarks/tracker_cost.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dltheory import empirical_ntk, train
from dltheory.dynamics import NTKEigenvalue
from results_file import run_and_record


def _digits(n: int, images: bool):
    from sklearn.datasets import load_digits

    data, labels = load_digits(return_X_y=True)
    x = torch.tensor(data[:n] / 16.0, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 0.1)
    y = nn.functional.one_hot(torch.tensor(labels[:n]), 10).float()
    return (x.reshape(n, 1, 8, 8) if images else x), y


def _mlp():
    return nn.Sequential(
        nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10)
    )


def _conv():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 16, 10),
    )  # fmt: skip


class FullNTKMax:
    """The former tracker: a full NTK and a dense eigensolver per call."""

    name = "full_ntk_max"

    def __init__(self, every: int) -> None:
        self.every, self.seconds, self.calls = every, 0.0, 0

    def __call__(self, state):
        if state.step % self.every:
            return float("nan")
        c0 = time.process_time()
        full = empirical_ntk(state.model, state.x, output="full")
        n, k = full.shape[0], full.shape[2]
        top = float(torch.linalg.eigvalsh(full.permute(0, 2, 1, 3).reshape(n * k, n * k))[-1])
        self.seconds += time.process_time() - c0
        self.calls += 1
        return top


def _run(build, x, y, track, steps, lr):
    torch.manual_seed(0)
    net = build()
    c0, t0 = time.process_time(), time.perf_counter()
    traj = train(net, x, y, lr=lr, steps=steps, track=track)
    return traj, time.process_time() - c0, time.perf_counter() - t0


def main(quick: bool) -> None:
    torch.set_num_threads(1)
    steps = 30 if quick else 300
    n = 40 if quick else 100
    print("## Cost of the NTK eigenvalue trackers (benchmarks/tracker_cost.py)\n")
    print(
        f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, CPU, one torch thread, a "
        "2-core machine shared with other jobs (CPU seconds; wall in brackets). "
        f"{steps} GD steps, N = {n} digits, k = 10, float32, trackers every step.\n"
    )
    print(
        "| model | loss only (s) | + ntk_lambda_max, Lanczos (s) | NTK products per call "
        "| former full-NTK tracker: s per call | x steps (s) | max rel. diff |"
    )
    print("|---|---|---|---|---|---|---|")
    models = (
        ("MLP 64-64-64-10", _mlp, False, 0.3),
        ("conv + BatchNorm (train mode)", _conv, True, 0.1),
    )
    for name, build, images, lr in models:
        x, y = _digits(n, images)
        _run(build, x, y, ("loss", NTKEigenvalue("largest")), 3, lr)  # warm-up
        _, c_loss, w_loss = _run(build, x, y, ("loss",), steps, lr)
        old = FullNTKMax(every=10)
        lanczos = NTKEigenvalue("largest")
        traj, c_new, _ = _run(build, x, y, ("loss", lanczos, old), steps, lr)
        per_call = old.seconds / max(old.calls, 1)
        new, ref = traj["ntk_lambda_max"], traj["full_ntk_max"]
        ok = np.isfinite(ref)
        diff = float(np.max(np.abs(new[ok] - ref[ok]) / np.abs(ref[ok])))
        tracker = c_new - old.seconds - c_loss
        products = f"{lanczos.n_matvecs / (steps + 1):.1f}"
        print(
            f"| {name} | {c_loss:.2f} [{w_loss:.2f}] | {c_loss + tracker:.2f} (tracker "
            f"{tracker:.2f}) | {products} | {per_call:.3f} | {per_call * (steps + 1):.1f} | "
            f"{diff:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    run_and_record("tracker_cost", lambda: main(quick), quick)
