"""SelfAttention kernels (NNGP + NTK) against neural-tangents' GlobalSelfAttention.

Problem: N sequences ``default_rng(0).standard_normal((N, C, T))`` (N = 100, C = 8,
T = 16), the stack Conv(1), ReLU, SelfAttention (softmax, tied Q / K, b_std 0.1),
ReLU, Conv(1), GlobalAvgPool, Dense(1) (C_w = 2, C_b = 0.1 for the convs), NTK
parametrisation, float64. neural-tangents runs ``peer_nt_attention_cases.py time`` in
its own venv (``NT_PYTHON``, default ``benchmarks/_peer/venv/bin/python``) in the same
run: jitted, one warm-up call, then timed calls.

    .venv/bin/python benchmarks/attention_kernels.py           # rewrites its RESULTS.md section
    .venv/bin/python benchmarks/attention_kernels.py --quick   # N = 30, prints only
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

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "kernels"))
from results_file import run_and_record  # noqa: E402

NT_PYTHON = os.environ.get("NT_PYTHON", str(HERE / "_peer" / "venv" / "bin" / "python"))


def spec():
    from dltheory import Dense, Nonlinearity, Serial
    from dltheory.spec import Conv, GlobalAvgPool, SelfAttention

    conv = Conv(8, (1,), c_w=2.0, c_b=0.1)
    relu = Nonlinearity("relu")
    att = SelfAttention(b_std=0.1)
    return Serial(conv, relu, att, relu, conv, GlobalAvgPool(), Dense(width=1), in_dim=8)


def timed(fn, repeats: int) -> dict:
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return {"wall": sorted(walls), "cpu": sorted(cpus)}


def peer(n: int, c: int, t: int, repeats: int) -> dict:
    if not Path(NT_PYTHON).exists():
        return {"error": f"no peer venv at {NT_PYTHON}"}
    cmd = [NT_PYTHON, str(HERE / "peer_nt_attention_cases.py"), "time", str(n), str(c), str(t)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    proc = subprocess.run([*cmd, str(repeats)], capture_output=True, text=True, env=env)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(quick: bool) -> None:
    n, c, t = (30, 8, 16) if quick else (100, 8, 16)
    repeats = 3 if quick else 5
    x = torch.tensor(np.random.default_rng(0).standard_normal((n, c, t)))
    s = spec()
    ours = timed(lambda: s.kernel(x), repeats)
    k = s.kernel(x)
    nt = peer(n, c, t, repeats)
    med = lambda r, key: r[key][len(r[key]) // 2]  # noqa: E731
    print("## SelfAttention kernels vs neural-tangents (issue 21)\n")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
          f"{os.cpu_count()} cores shared with other jobs (load average "
          f"{os.getloadavg()[0]:.1f}; timings are noisy: CPU time beside wall time), torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads). N = {n} sequences, "
          f"C = {c}, T = {t}; Conv(1), ReLU, SelfAttention (softmax), ReLU, Conv(1), "
          "GlobalAvgPool, Dense; float64 NNGP + NTK; median of the timed calls.\n")  # fmt: skip
    print("| engine | wall s | CPU s |")
    print("|---|---|---|")
    print(f"| dltheory (graph rules, full position pairs) | {med(ours, 'wall'):.3f} | "
          f"{med(ours, 'cpu'):.3f} |")  # fmt: skip
    if "error" in nt:
        print(f"| neural-tangents | {nt['error']} | |")
    else:
        agree = abs(nt["nngp00"] - float(k.nngp[0, 0])) / abs(nt["nngp00"])
        print(f"| neural-tangents 0.6.5 (jit) | {med(nt, 'wall'):.3f} | {med(nt, 'cpu'):.3f} |")
        print(f"\nSpeed-up (median wall): {med(nt, 'wall') / med(ours, 'wall'):.1f}x; "
              f"NNGP[0, 0] relative difference {agree:.1e}.")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run_and_record("attention_kernels", lambda: main(args.quick), args.quick)
