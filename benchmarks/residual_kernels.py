"""Residual and LayerNorm MLP kernels against neural-tangents, and tracing a 50-block model.

Problem (the peer facts of the project): N = 1000 inputs
``default_rng(0).standard_normal((1000, 100))``, depth 10, every Dense C_w = 2,
C_b = 0.1, NTK parametrisation, float64, NNGP and NTK:

* residual: Dense, [h + Dense(relu(h))] * 10, relu, Dense(1)
  (neural-tangents: ``FanOut(2)``, ``parallel(serial(Relu(), Dense), Identity())``, ``FanInSum()``);
* layernorm: [Dense, LayerNorm, relu] * 10, Dense(1) (``stax.LayerNorm(axis=-1)``).

Ours: ``spec.kernel(x)`` (the fused loop of ``kernels/fused_graph.py``) and, for
reference, ``backend="torch"`` (the per-rule graph interpreter). neural-tangents runs
``benchmarks/peer_nt_residual.py time`` in its own venv (``NT_PYTHON``, default
``benchmarks/_peer/venv/bin/python``) in the same run: jitted, one warm-up call, then
timed calls. Also: ``spec_from_module`` on a plain 50-block residual ``nn.Module``.

    .venv/bin/python benchmarks/residual_kernels.py           # rewrites its RESULTS.md section
    .venv/bin/python benchmarks/residual_kernels.py --quick   # N = 200, prints only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch
from torch import nn

from dltheory import spec_from_module
from dltheory.spec import MLP, Dense, LayerNorm, Nonlinearity, Residual, Serial

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from results_file import run_and_record  # noqa: E402

NT_PYTHON = os.environ.get("NT_PYTHON", str(HERE / "_peer" / "venv" / "bin" / "python"))


def specs(depth: int) -> dict[str, Serial]:
    relu = Nonlinearity("relu")

    def dense(**kw) -> Dense:
        return Dense(2.0, 0.1, **kw)

    norm = LayerNorm(affine=False, eps=1e-12)
    return {
        "plain (MLP, for scale)": MLP(depth, "relu", c_w=2.0, c_b=0.1),
        "residual": Serial(dense(), *[Residual((relu, dense()))] * depth, relu, dense(width=1)),
        "layernorm": Serial(*[m for _ in range(depth) for m in (dense(), norm, relu)], dense()),
    }


def timed(fn, repeats: int) -> dict:
    fn()  # warm-up (numba cache load, allocations)
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return {"wall": sorted(walls), "cpu": sorted(cpus)}


def peer(n: int, d: int, depth: int, repeats: int) -> dict:
    if not Path(NT_PYTHON).exists():
        return {"error": f"no peer venv at {NT_PYTHON}"}
    cmd = [NT_PYTHON, str(HERE / "peer_nt_residual.py"), "time", str(n), str(d), str(depth)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    proc = subprocess.run([*cmd, str(repeats)], capture_output=True, text=True, env=env)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + 0.5 * self.fc2(torch.relu(self.fc1(self.norm(h))))


def main(quick: bool) -> None:
    n, d, depth = (200, 100, 10) if quick else (1000, 100, 10)
    repeats = 3 if quick else 7
    x = torch.tensor(np.random.default_rng(0).standard_normal((n, d)))
    rows = []
    nt = peer(n, d, depth, repeats)
    for name, spec in specs(depth).items():
        fused = timed(lambda spec=spec: spec.kernel(x), repeats)
        rules = timed(lambda spec=spec: spec.kernel(x, backend="torch"), max(2, repeats // 3))
        rows.append((name, fused, rules, nt.get(name.split()[0], nt)))
    model = nn.Sequential(nn.Linear(d, 256), *[Block(256) for _ in range(50)], nn.Linear(256, 1))
    start = time.perf_counter()
    spec_from_module(model)
    cold = time.perf_counter() - start
    lift = timed(lambda: spec_from_module(model), repeats)

    print("## Residual and LayerNorm MLP kernels (issue 21)\n")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
          f"{os.cpu_count()} cores shared with other jobs (load average "
          f"{os.getloadavg()[0]:.1f} at the end; timings are noisy: CPU time beside wall "
          f"time; our loops run on {numba.get_num_threads()} numba threads, torch "
          f"{torch.get_num_threads()} threads), torch {torch.__version__}. "
          f"N = {n}, d = {d}, depth {depth}, "
          "C_w = 2, C_b = 0.1, float64, NNGP + NTK; median (best) of the timed calls; "
          "the plain MLP row (the blocked fused engine) calibrates "
          "the load.\n")  # fmt: skip
    print("| network | ours, fused: wall s | CPU s | ours, graph rules: wall s | "
          "neural-tangents: wall s | CPU s | speed-up (median wall) | "
          "speed-up (median CPU) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, fused, rules, theirs in rows:
        med = lambda r, key="wall": r[key][len(r[key]) // 2]  # noqa: E731
        if "error" in theirs:
            peer_cells, ratio, cpu_ratio = f"{theirs['error']} | |", "n/a", "n/a"
        else:
            peer_cells = f"{med(theirs):.3f} ({theirs['wall'][0]:.3f}) | {med(theirs, 'cpu'):.3f}"
            ratio = f"{med(theirs) / med(fused):.1f}x"
            cpu_ratio = f"{med(theirs, 'cpu') / med(fused, 'cpu'):.1f}x"
        print(f"| {name} | {med(fused):.4f} ({fused['wall'][0]:.4f}) | {med(fused, 'cpu'):.4f} | "
              f"{med(rules):.3f} | {peer_cells} | {ratio} | {cpu_ratio} |")  # fmt: skip
    print(f"\nTracing and lifting a 50-block pre-LN residual `nn.Module` (width 256): "
          f"{lift['wall'][len(lift['wall']) // 2]:.3f} s median wall "
          f"({lift['cpu'][len(lift['cpu']) // 2]:.3f} s CPU); first call in the process "
          f"{cold:.2f} s (imports of torch.fx included). Target: under 1 s.")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run_and_record("residual_kernels", lambda: main(args.quick), args.quick)
