"""Empirical NTK and linearised-prediction benchmarks against neural-tangents.

1. Empirical NTK of a width-512, depth-3 ReLU nn.Sequential, N = 256, d = 100,
   float64: dltheory's structured path vs the torch.func Jacobian contraction (same
   run) and neural-tangents' STRUCTURED_DERIVATIVES / JACOBIAN_CONTRACTION (peer venv,
   same weights and inputs). Targets: >= 100x faster than torch.func, not slower
   than neural-tangents' structured path.
2. Linearised gradient-flow prediction at N = 2,000 train / 500 test points:
   dltheory.dynamics.linearized_prediction vs nt.predict.gradient_descent_mse on the
   same kernels; same numbers to 1e-8, times side by side.

Usage: python benchmarks/dynamics.py [--quick]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dltheory import MLP, empirical_ntk
from dltheory.dynamics import linearized_prediction

HERE = Path(__file__).parent
PEER = HERE / "_peer"
PEER_PY = PEER / "venv" / "bin" / "python"


def _time(fn, repeats):
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {
        "median": float(np.median(walls)),
        "best": float(min(walls)),
        "cpu": float(np.median(cpus)),
    }


def _peer(job: dict) -> dict | None:
    if not PEER_PY.exists():
        return None
    path = PEER / f"job_{job['kind']}.json"
    path.write_text(json.dumps(job))
    res = subprocess.run(
        [str(PEER_PY), str(HERE / "peer_nt_dynamics.py"), str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if res.returncode != 0:
        print(f"<!-- peer failed: {res.stderr[-500:]} -->")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def _row(name, t):
    return f"| {name} | {t['median']:.4f} | {t['best']:.4f} | {t['cpu']:.4f} |"


def ntk_benchmark(quick: bool) -> None:
    n, d, width = (64, 20, 128) if quick else (256, 100, 512)
    gen = torch.Generator().manual_seed(0)
    layers, fan_in = [], d
    for _ in range(3):
        layers += [torch.nn.Linear(fan_in, width), torch.nn.ReLU()]
        fan_in = width
    layers.append(torch.nn.Linear(width, 1))
    net = torch.nn.Sequential(*layers).double()
    with torch.no_grad():
        for m in net:
            if isinstance(m, torch.nn.Linear):
                m.weight.normal_(0, (2 / m.in_features) ** 0.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    PEER.mkdir(exist_ok=True)
    arrays = {"x": x.numpy()}
    for i, m in enumerate(m for m in net if isinstance(m, torch.nn.Linear)):
        arrays[f"W{i}"], arrays[f"b{i}"] = m.weight.detach().numpy(), m.bias.detach().numpy()
    np.savez(PEER / "ntk_inputs.npz", **arrays)

    load = os.getloadavg()[0]
    out = {}
    ours = _time(lambda: out.__setitem__("k", empirical_ntk(net, x, method="structured")), 7)
    jac = _time(
        lambda: out.__setitem__("j", empirical_ntk(net, x, method="jacobian")),
        1 if not quick else 2,
    )
    err_jac = float((out["k"] - out["j"]).abs().max() / out["j"].abs().max())
    peer = _peer(
        {"kind": "ntk", "npz": str(PEER / "ntk_inputs.npz"), "out_dir": str(PEER), "repeats": 7}
    )
    print("## Empirical NTK (dynamics.py)\n")
    print(
        f"Width-{width}, depth-3 ReLU `nn.Sequential` (4 `nn.Linear`), N = {n}, d = {d}, "
        f"float64, trace over the one output. 1-min load average at start: {load:.2f} "
        f"(2 cores, shared machine). Wall seconds (median, best) and process CPU seconds.\n"
    )
    print("| implementation | median (s) | best (s) | CPU (s) |\n|---|---|---|---|")
    print(_row("dltheory `method='structured'`", ours))
    print(_row("torch.func Jacobian contraction (`method='jacobian'`)", jac))
    if peer is not None:
        print(_row("neural-tangents STRUCTURED_DERIVATIVES (jit)", peer["structured"]))
        print(_row("neural-tangents JACOBIAN_CONTRACTION (jit)", peer["jacobian"]))
        k_nt = torch.from_numpy(np.load(PEER / "nt_ntk_structured.npy"))
        err_nt = float((out["k"] - k_nt).abs().max() / k_nt.abs().max())
        print(f"\nPeer load average at its start: {peer['loadavg_1min']:.2f}.")
    print(f"\nMax relative difference, structured vs torch.func Jacobian: {err_jac:.1e}.")
    speed = jac["median"] / ours["median"]
    verdict = "met" if speed >= 100 else "NOT met"
    print(f"Speed-up over torch.func: {speed:.0f}x (target >= 100x: {verdict}).")
    if peer is not None:
        ratio = peer["structured"]["median"] / ours["median"]
        print(
            f"vs neural-tangents structured: {ratio:.2f}x (>1: dltheory faster; target >= 1: "
            f"{'met' if ratio >= 1 else 'NOT met'}); max relative difference {err_nt:.1e}."
        )
    else:
        print("neural-tangents not installed (benchmarks/_peer/venv): peer not measured.")


def gd_benchmark(quick: bool) -> None:
    n, n_test, d = (300, 100, 10) if quick else (2000, 500, 10)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n + n_test, d, generator=gen, dtype=torch.float64)
    k = MLP(3, "relu", c_w=2.0, c_b=0.1).kernel(x).ntk
    k_tt, k_st = k[:n, :n].contiguous(), k[n:, :n].contiguous()
    y = torch.sin(x[:n, :1])
    f0 = 0.1 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    f0t = 0.1 * torch.randn(n_test, 1, generator=gen, dtype=torch.float64)
    lr, t = 1.0, 50.0
    np.savez(
        PEER / "gd_inputs.npz", k_tt=k_tt.numpy(), k_st=k_st.numpy(), y=y.numpy(),
        f0_train=f0.numpy(), f0_test=f0t.numpy(), lr=lr, t=t,
    )  # fmt: skip
    load = os.getloadavg()[0]
    res = {}

    def ours():
        res["p"] = linearized_prediction(
            k_tt, y, f0, ntk_test_train=k_st, f0_test=f0t, lr=lr, t=t, dynamics="flow"
        )

    timing = _time(ours, 3)
    peer = _peer(
        {"kind": "gd_mse", "npz": str(PEER / "gd_inputs.npz"), "out_dir": str(PEER), "repeats": 3}
    )
    print("\n## Linearised prediction vs `nt.predict.gradient_descent_mse` (dynamics.py)\n")
    print(
        f"N = {n} train, {n_test} test, infinite-width NTK of a depth-3 ReLU MLP (float64), "
        f"gradient flow to t = {t} at lr = {lr} (both libraries: exp(-(lr/N) Theta t) for one "
        f"output). Load average at start: {load:.2f}.\n"
    )
    print("| implementation | median (s) | best (s) | CPU (s) |\n|---|---|---|---|")
    print(_row("dltheory `linearized_prediction(dynamics='flow')`", timing))
    if peer is None:
        print("\nneural-tangents not installed: peer not measured.")
        return
    print(_row("neural-tangents `predict.gradient_descent_mse`", peer))
    tr = torch.from_numpy(np.load(PEER / "nt_gd_train.npy"))
    te = torch.from_numpy(np.load(PEER / "nt_gd_test.npy"))
    d_tr = float((res["p"].train - tr).abs().max())
    d_te = float((res["p"].test - te).abs().max())
    verdict = "met" if max(d_tr, d_te) <= 1e-8 else "NOT met"
    print(
        f"\nMax |difference|: train {d_tr:.1e}, test {d_te:.1e} (outputs are O(1); "
        f"target <= 1e-8: {verdict}). Peer load average at its start: {peer['loadavg_1min']:.2f}."
    )


def main(quick: bool = False) -> None:
    ntk_benchmark(quick)
    gd_benchmark(quick)


if __name__ == "__main__":
    from results_file import run_and_record  # beside this script

    q = "--quick" in sys.argv
    run_and_record("dynamics", lambda: main(q), quick=q)
