"""Falkon with K_nm kept on two Dask worker processes: memory per worker, equality with serial.

    python benchmarks/falkon_dask_memory.py                   # N = 40,000, m = 1,000
    python benchmarks/falkon_dask_memory.py --n 8000 --m 400 --quick

Data and kernel of ``benchmarks/kernel_regression.py`` (d = 64, depth-3 ReLU NNGP,
ridge 0.25). ``fit_falkon(..., pool=p)`` on ``pool("dask", n_workers=2)``: a
LocalCluster of two single-threaded worker processes, each computing and keeping
its row blocks of K_nm (float64); every CG iteration sends u to the workers and
gets one (m, k) partial sum per block back. While the fit runs, a thread of the
client polls every worker (``Client.run``) for its resident set (RSS) and for the
bytes of the numpy arrays it holds (the K_nm blocks and their weights); the
table gives each worker's RSS before the fit (after start-up and a warm-up fit),
its peak during the fit, and its peak held bytes, next to 8 N m / 2, the
even share of K_nm. The same fit serially (the process's threads) checks that
the two agree bitwise. Wall and CPU seconds (client process only: the workers'
CPU is theirs) and the load average: the machine is shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from dltheory import MLP
from dltheory.kernels import fit_falkon
from dltheory.parallel import pool
from kernel_regression import DEPTH, RIDGE, _data
from results_file import run_and_record


def _worker_memory(dask_worker=None) -> tuple[int, int]:
    """(RSS bytes, bytes of numpy arrays held) of the worker this runs on."""
    import psutil

    held = 0
    if dask_worker is not None:
        for value in list(dask_worker.data.values()):
            if isinstance(value, np.ndarray):
                held += value.nbytes
    return psutil.Process().memory_info().rss, held


def run(n: int, m: int, tol: float, max_iter: int) -> dict:
    spec = MLP(DEPTH, "relu", c_w=2.0, c_b=0.1)
    x, y, _, _ = _data(n)
    tx = torch.from_numpy(x)
    kw = {"ridge": RIDGE, "n_inducing": m, "tol": tol, "max_iter": max_iter}
    fit_falkon(spec, tx[:600], y[:600], ridge=RIDGE, n_inducing=50)  # compile here
    t0, c0 = time.perf_counter(), time.process_time()
    serial = fit_falkon(spec, tx, y, **kw)
    serial_s = (time.perf_counter() - t0, time.process_time() - c0)
    with pool("dask", n_workers=2) as p:
        client = p._client
        fit_falkon(spec, tx[:600], y[:600], ridge=RIDGE, n_inducing=50, pool=p)  # warm-up
        before = client.run(_worker_memory)
        peak = {w: [0, 0] for w in before}
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                for w, (rss, held) in client.run(_worker_memory).items():
                    peak[w] = [max(peak[w][0], rss), max(peak[w][1], held)]
                stop.wait(0.25)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        t0, c0 = time.perf_counter(), time.process_time()
        dist = fit_falkon(spec, tx, y, pool=p, **kw)
        dist_s = (time.perf_counter() - t0, time.process_time() - c0)
        stop.set()
        poller.join()
    return {
        "n": n,
        "m": m,
        "iterations": dist.iterations,
        "serial_s": serial_s,
        "dask_s": dist_s,
        "bitwise": bool(np.array_equal(serial.alpha, dist.alpha)),
        "max_rel": float(np.abs(serial.alpha - dist.alpha).max() / np.abs(serial.alpha).max()),
        "workers": [
            (before[w][0] / 2**20, peak[w][0] / 2**20, peak[w][1] / 2**20) for w in sorted(before)
        ],
        "share_mb": 8 * n * m / 2 / 2**20,
        "load": os.getloadavg()[0],
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def render(r: dict) -> None:
    print("## Falkon with K_nm kept on two Dask workers (`benchmarks/falkon_dask_memory.py`)\n")
    print(
        f"{r['when']}; x86_64, 2 cores shared with other jobs (load average {r['load']:.1f} "
        f"at the end: wall times are upper bounds), torch {torch.__version__}. Workload of "
        f"`kernel_regression.py` (d = 64, depth-3 ReLU NNGP, ridge 0.25), N = {r['n']:,}, "
        f"m = {r['m']:,}, K_nm float64 ({8 * r['n'] * r['m'] / 2**20:.0f} MB in all), "
        f"LocalCluster of 2 single-threaded worker processes.\n"
    )
    print("| worker | RSS before fit (MB) | peak RSS in fit (MB) | peak arrays held (MB) "
          "| even share of K_nm (MB) |")  # fmt: skip
    print("|---|---|---|---|---|")
    for i, (rss0, rss, held) in enumerate(r["workers"]):
        print(f"| {i} | {rss0:.0f} | {rss:.0f} | {held:.0f} | {r['share_mb']:.0f} |")
    print(
        f"\nFit: {r['iterations']} CG iterations; serial {r['serial_s'][0]:.1f} s wall / "
        f"{r['serial_s'][1]:.1f} s CPU, Dask {r['dask_s'][0]:.1f} s wall "
        f"(client CPU {r['dask_s'][1]:.1f} s). Dask alpha equal to serial bitwise: "
        f"{r['bitwise']} (max relative difference {r['max_rel']:.1e}). Held arrays: the "
        "worker's K_nm blocks and their weight slices, polled every 0.25 s."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40_000)
    parser.add_argument("--m", type=int, default=1_000)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="print, do not write RESULTS")
    args = parser.parse_args()
    row = run(args.n, args.m, args.tol, args.max_iter)
    run_and_record("falkon_dask_memory", lambda: render(row), args.quick)


if __name__ == "__main__":
    main()
