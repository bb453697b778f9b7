"""Ensemble sampling + forward throughput against the machine's own matmul throughput.

    python benchmarks/ensemble.py            # widths 64..1024 (prints a RESULTS.md section)
    python benchmarks/ensemble.py --quick    # small smoke run

Workload per width n: ``dltheory.finite.ensemble(MLP(depth, "relu", c_w=2, c_b=0.1), n,
E, in_dim=n)`` on N inputs (float32): every network's weights are drawn
(``torch.randn``) and the batch is run layer by layer (batched matmul).
Useful work = 2 E N sum_l n_l n_{l-1} flops (the matmuls; activations and bias
adds are not counted). The peer, measured in the same run on the same shapes,
is the machine's matmul throughput: ``torch.matmul`` of pre-drawn weights of the
same shapes (no sampling), i.e. what the forward pass would cost if weights
were free. Times: median of repeats after one warm-up.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

import torch

from dltheory import MLP
from dltheory.finite import ensemble


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cpu_time(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def measure(width: int, depth: int, n_networks: int, n_inputs: int, repeats: int) -> dict:
    spec = MLP(depth, "relu", c_w=2.0, c_b=0.1)
    x = torch.randn(n_inputs, width, generator=torch.Generator().manual_seed(0))
    networks = ensemble(spec, width, n_networks, in_dim=width, seed=0, batch_size=n_networks)
    flops = (
        2.0
        * n_networks
        * n_inputs
        * sum(a * b for a, b in zip(networks.widths[:-1], networks.widths[1:], strict=True))
    )
    t_ensemble = _median_time(lambda: networks.forward(x), repeats)

    # Peer: the same matmuls on weights drawn once, outside the timing.
    weights = networks.weights(0) if networks.n_batches == 1 else None
    if weights is None:
        raise SystemExit("choose n_networks so that one batch holds the ensemble")
    dense = [w for w in weights if w is not None]
    h0 = x.T.unsqueeze(0).expand(n_networks, -1, -1).contiguous()

    def matmuls() -> torch.Tensor:
        h = h0
        for w, _ in dense:
            h = torch.bmm(w, h)
        return h

    t_matmul = _median_time(matmuls, repeats)
    return {
        "width": width,
        "depth": depth,
        "n_networks": n_networks,
        "n_inputs": n_inputs,
        "gflops_ensemble": flops / t_ensemble / 1e9,
        "gflops_matmul": flops / t_matmul / 1e9,
        "t_ensemble": t_ensemble,
        "t_matmul": t_matmul,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        cases = [(64, 4, 16, 256), (256, 4, 4, 256)]
        repeats = 2
    else:
        cases = [
            (64, 8, 256, 512),
            (256, 8, 32, 256),
            (256, 8, 32, 1024),
            (512, 8, 8, 1024),
            (1024, 4, 4, 1024),
        ]
        repeats = 5
    rows = [measure(*case, repeats=repeats) for case in cases]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("# Benchmark: ensemble sampling + forward throughput (`python benchmarks/ensemble.py`)\n")
    print(
        f"Measured {now}, {platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), load average {load:.1f}; "
        "float32, ReLU MLP, C_w = 2, C_b = 0.1, n_0 = width.\n"
    )
    print("| width | depth | networks E | inputs N | ensemble GFLOP/s | matmul GFLOP/s "
          "(same shapes, weights pre-drawn) | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['width']} | {r['depth']} | {r['n_networks']} | {r['n_inputs']} | "
            f"{r['gflops_ensemble']:.1f} | {r['gflops_matmul']:.1f} | "
            f"{r['gflops_ensemble'] / r['gflops_matmul']:.2f} |"
        )

    # Ensemble.network(i): draws network i's own stream only (it used to redraw its batch).
    spec = MLP(3, "relu", c_w=2.0, c_b=0.1)
    big = ensemble(spec, 256, 243, in_dim=256, seed=0)
    one_wall, one_cpu = (
        _median_time(lambda: big.network(7), repeats),
        _cpu_time(lambda: big.network(7)),
    )
    batch_wall = _median_time(lambda: big.weights(0), repeats)
    print(
        f"\n`Ensemble.network(i)` at width 256, depth 3, n_0 = 256 (batch of "
        f"{big.batch_size} networks): {one_wall * 1e3:.0f} ms wall, {one_cpu * 1e3:.0f} ms CPU; "
        f"drawing its whole batch (what `network(i)` did before): {batch_wall * 1e3:.0f} ms."
    )

    wide = [r for r in rows if r["width"] >= 256]
    met = [r for r in wide if r["gflops_ensemble"] >= 0.5 * r["gflops_matmul"]]
    missed = [r for r in wide if r not in met]
    print(
        f"\nTarget: >= 0.5 of the matmul throughput at width >= 256: met in {len(met)} of "
        f"{len(wide)} cases"
        + (
            "; missed at "
            + ", ".join(f"width {r['width']} with N = {r['n_inputs']} inputs" for r in missed)
            + " (each layer draws n^2 normals per network, which costs as much as a "
            "matmul with few input columns)."
            if missed
            else "."
        )
    )


if __name__ == "__main__":
    import sys

    from results_file import run_and_record  # beside this script

    run_and_record("ensemble", main, quick="--quick" in sys.argv)
