"""Hessian spectra, trace and density: dltheory.curvature next to PyHessian,
hessian-eigenthings and curvlinops on the problem of PEERS.md (load_digits, MLP
64-128-128-10 tanh, 300 Adam steps, float64, mean cross-entropy over 1797 samples).

Run: ``.venv/bin/python benchmarks/hessian.py`` (peers from benchmarks/_venvs/hessian,
see README.md; ``--peer-json FILE`` reuses a peer run of ``peer_hessian.py``;
``--quick`` prints without writing RESULTS.md). Rewrites the ``hessian`` section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from _digits_problem import REFERENCE_TOP5, REFERENCE_TRACE, digits_problem
from dltheory.curvature import (
    HessianOperator,
    hessian_spectral_density,
    hessian_trace,
    lanczos_eigenpairs,
)
from results_file import run_and_record

HERE = Path(__file__).resolve().parent
PEER_PY = HERE / "_venvs" / "hessian" / "bin" / "python"


def _timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def _rel_top5(values) -> float:
    ref = torch.tensor(REFERENCE_TOP5, dtype=torch.float64)
    got = torch.tensor(sorted(values, reverse=True)[:5], dtype=torch.float64)
    return float(((got - ref).abs() / ref).max())


def ours(quick: bool) -> dict:
    model, loss_fn, x, y = digits_problem()
    res: dict = {}
    H = HessianOperator(model, loss_fn, (x, y))
    v = torch.randn(H.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    H.matvec(v)  # builds the gradient's vjp once

    def grad():
        model.zero_grad()
        loss_fn(model(x), y).backward()

    grad()
    reps = 3 if quick else 10
    hvp = [_timed(lambda: H.matvec(v))[1:] for _ in range(reps)]
    grd = [_timed(grad)[1:] for _ in range(reps)]
    res["hvp_over_grad_wall"] = statistics.median(a for a, _ in hvp) / statistics.median(
        a for a, _ in grd
    )
    res["hvp_over_grad_cpu"] = statistics.median(b for _, b in hvp) / statistics.median(
        b for _, b in grd
    )
    res["hvp_wall_s"] = statistics.median(a for a, _ in hvp)
    for tol in (1e-4, 1e-6):
        H.n_matvecs = 0
        r, wall, cpu = _timed(lambda tol=tol: lanczos_eigenpairs(H, H.shape[0], k=5, tol=tol))
        res[f"eig_{tol:g}"] = dict(
            wall_s=wall,
            cpu_s=cpu,
            hvps=r.n_matvecs,
            converged=r.converged,
            rel_error=_rel_top5(r.eigenvalues.tolist()),
            max_residual_ratio=float((r.residuals / r.eigenvalues.abs()).max()),
        )
    seeds = range(1 if quick else 5)
    traces = []
    for seed in seeds:
        t, wall, cpu = _timed(
            lambda seed=seed: hessian_trace(model, loss_fn, (x, y), 99, seed=seed)
        )
        traces.append(
            dict(trace=t.estimate, stderr=t.stderr, hvps=t.n_matvecs, wall_s=wall, cpu_s=cpu)
        )
    res["trace"] = traces
    if not quick:
        d, wall, cpu = _timed(
            lambda: hessian_spectral_density(
                model, loss_fn, (x, y), n_probes=7, n_steps=110, deflate=10, seed=0
            )
        )
        m1, se1 = d.moment(1)
        P = H.shape[0]
        res["density"] = dict(
            trace=P * m1,
            stderr=P * se1,
            hvps=d.n_matvecs,
            wall_s=wall,
            cpu_s=cpu,
            top=float(d.nodes.max()),
            mass=float(torch.trapezoid(d.density, d.grid)),
        )
    return res


def peers(peer_json: str | None, quick: bool) -> dict:
    if peer_json:
        return json.loads(Path(peer_json).read_text())
    if not PEER_PY.exists():
        return {"error": f"no peer venv at {PEER_PY} (see benchmarks/README.md)"}
    tasks = "pyhessian_eig_0.001,curvlinops_eig" if quick else "all"
    out = subprocess.run(
        [str(PEER_PY), str(HERE / "peer_hessian.py"), "--tasks", tasks],
        capture_output=True,
        text=True,
        cwd=HERE,
        check=False,
    )
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": out.stderr[-2000:]}


def report(quick: bool, peer_json: str | None, ours_json: str | None = None) -> None:
    load0 = os.getloadavg()
    t0 = time.process_time()
    if ours_json and Path(ours_json).exists():
        mine = json.loads(Path(ours_json).read_text())
    else:
        mine = ours(quick)
        if ours_json:
            Path(ours_json).write_text(json.dumps(mine))
    other = peers(peer_json, quick)
    load1 = os.getloadavg()
    print("## Hessian spectra, trace, density (`benchmarks/hessian.py`)\n")
    print(
        f"Problem of PEERS.md (P = 26,506 parameters, N = 1797, float64). Load average "
        f"{load0[0]:.1f} at start, {load1[0]:.1f} at end (2 cores, shared); our process CPU "
        f"{time.process_time() - t0:.0f} s. Wall times are noisy under this load: compare "
        f"HVP counts and CPU seconds first. Peers measured "
        f"{'in the same run' if not peer_json else 'by peer_hessian.py at the same time'}.\n"
    )
    print(
        f"One HVP / one gradient (autograd backward on the same batch): "
        f"{mine['hvp_over_grad_cpu']:.2f}x by CPU time, {mine['hvp_over_grad_wall']:.2f}x wall "
        f"(median of repeats; HVP {mine['hvp_wall_s']:.2f} s wall).\n"
    )
    print("| top-5 eigenvalues | HVPs | wall s | CPU s | max rel. error vs reference |")
    print("|---|---|---|---|---|")
    for tol in ("0.0001", "1e-06"):
        r = mine[f"eig_{tol}"]
        print(
            f"| dltheory `lanczos_eigenpairs` tol {tol} (certified: residual <= tol |theta|; "
            f"converged {r['converged']}) | {r['hvps']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
            f"| {r['rel_error']:.1e} |"
        )
    for key, label in (
        ("pyhessian_eig_0.001", "PyHessian 0.1 `eigenvalues(tol=1e-3)`"),
        ("pyhessian_eig_1e-06", "PyHessian 0.1 `eigenvalues(tol=1e-6)`"),
        ("eigenthings_eig_defaults", "hessian-eigenthings 1.0.0a5 `lanczos` defaults"),
        ("eigenthings_eig_max_iter=30", "hessian-eigenthings `lanczos(max_iter=30)`"),
        ("curvlinops_eig", "curvlinops 3.0.1 + scipy `eigsh(tol=1e-6)`"),
    ):
        if key in other:
            r = other[key]
            print(
                f"| {label} | {r['hvps']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
                f"| {_rel_top5(r['eigenvalues']):.1e} |"
            )
    print("\n| trace | HVPs | estimate | rel. error | stated s.e. |")
    print("|---|---|---|---|---|")
    for i, t in enumerate(mine["trace"]):
        err = abs(t["trace"] - REFERENCE_TRACE) / REFERENCE_TRACE
        print(
            f"| dltheory `hessian_trace` (Hutch++, seed {i}) | {t['hvps']} | {t['trace']:.4f} "
            f"| {err:.2%} | {t['stderr'] / REFERENCE_TRACE:.2%} |"
        )
    for key, label in (
        ("pyhessian_trace", "PyHessian `trace()`"),
        ("curvlinops_trace", "curvlinops `hutchpp_trace(99)`"),
    ):
        if key in other:
            t = other[key]
            err = abs(t["trace"] - REFERENCE_TRACE) / REFERENCE_TRACE
            print(f"| {label} | {t['hvps']} | {t['trace']:.4f} | {err:.2%} | none |")
    print(
        "\nSpectral density: the exact spectrum of a 26,506-square Hessian is out of reach here, "
        "so accuracy is measured by the trace the density implies, P * integral of lambda "
        "p(lambda), against the reference tr H (and the largest node against lambda_1).\n"
    )
    print("| density | HVPs | implied trace rel. error | stated s.e. | wall s |")
    print("|---|---|---|---|---|")
    if "density" in mine:
        d = mine["density"]
        print(
            f"| dltheory SLQ, 10 deflated + 7 probes x 110 steps (top node {d['top']:.6f}) | "
            f"{d['hvps']} | {abs(d['trace'] - REFERENCE_TRACE) / REFERENCE_TRACE:.2%} | "
            f"{d['stderr'] / REFERENCE_TRACE:.2%} | {d['wall_s']:.0f} |"
        )
    for key, label in (
        ("pyhessian_density", "PyHessian `density(iter=100, n_v=8)` (torch.eig patched)"),
        ("curvlinops_density", "curvlinops `lanczos_approximate_spectrum(ncv=128, num_repeats=6)`"),
    ):
        if key in other:
            d = other[key]
            print(
                f"| {label} | {d['hvps']} "
                f"| {abs(d['trace'] - REFERENCE_TRACE) / REFERENCE_TRACE:.2%} "
                f"| none | {d['wall_s']:.0f} |"
            )
    errors = {k: v for k, v in other.items() if "error" in k}
    if errors:
        print(f"\nPeer errors: {errors}")
    print(f"\nReference (PEERS.md): top-5 {REFERENCE_TOP5}, tr H = {REFERENCE_TRACE}.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--peer-json", default=None)
    parser.add_argument(
        "--ours-json", default=None, help="cache of our numbers (reused if present)"
    )
    args = parser.parse_args()
    run_and_record(
        "hessian", lambda: report(args.quick, args.peer_json, args.ours_json), args.quick
    )


if __name__ == "__main__":
    sys.exit(main())
