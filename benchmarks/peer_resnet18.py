"""curvlinops (+ scipy eigsh) and PyHessian on the ResNet-18 problem; one task per process.

Runs in the peers' venv (no dltheory): ``python peer_resnet18.py TASK BATCH`` prints one
JSON object (wall / CPU seconds, HVPs counted by wrapping the peer's own product, peak
extra memory over one forward/backward, the result). Called by ``resnet18_hessian.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

from _resnet18_problem import baseline_gradient, peak_rss_bytes, problem

TOL = 1e-3
_T0 = [time.perf_counter(), time.process_time()]


class Capped(Exception):
    """Raised after ``$DLTHEORY_MAX_HVPS`` products: the run is reported as stopped."""


def progress(n: int) -> None:
    """One JSON line per HVP to ``$DLTHEORY_PROGRESS`` (a long run's partial timings);
    stops the run after ``$DLTHEORY_MAX_HVPS`` products (a cap that already settles a
    comparison)."""
    path = os.environ.get("DLTHEORY_PROGRESS")
    if path:
        wall, cpu = time.perf_counter() - _T0[0], time.process_time() - _T0[1]
        with open(path, "a") as fh:
            rss = peak_rss_bytes() / 2**30
            fh.write(json.dumps({"hvps": n, "wall_s": wall, "cpu_s": cpu, "peak_gib": rss}) + "\n")
    cap = os.environ.get("DLTHEORY_MAX_HVPS")
    if cap and n >= int(cap):
        raise Capped(n)


def main() -> None:
    task, batch = sys.argv[1], int(sys.argv[2])
    out: dict = {"task": task, "batch": batch}
    try:
        _measure(task, batch, out)
    except Capped as cap:
        out.update(stopped_at=cap.args[0], converged=False, hvps=cap.args[0])
        out["wall_s"] = time.perf_counter() - _T0[0]
        out["cpu_s"] = time.process_time() - _T0[1]
        out["extra_bytes"] = max(0, peak_rss_bytes() - out["base_bytes"])
    print(json.dumps(out))


def _measure(task: str, batch: int, out: dict) -> None:
    torch.set_num_threads(1)
    model, x, y = problem("resnet18", batch)
    base = baseline_gradient(model, x, y)
    out["base_bytes"] = base
    t, c = time.perf_counter(), time.process_time()
    _T0[:] = []
    _T0.extend((t, c))
    if task.startswith("curvlinops"):
        from curvlinops import HessianLinearOperator, hutchpp_trace

        params = [p for p in model.parameters() if p.requires_grad]
        H = HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), params, [(x, y)])
        P = sum(p.numel() for p in params)
        count = {"n": 0}
        orig = type(H)._matmat

        def counted(self, X):
            first = X[0] if isinstance(X, list | tuple) else X
            count["n"] += first.shape[-1] if first.ndim >= 2 else 1
            out = orig(self, X)
            progress(count["n"])
            return out

        type(H)._matmat = counted
        if task == "curvlinops_eig":
            from scipy.sparse.linalg import eigsh

            v0 = np.random.default_rng(0).standard_normal(P).astype(np.float32)
            vals = eigsh(H.to_scipy(), k=5, which="LA", tol=TOL, v0=v0, return_eigenvectors=False)
            out["eigenvalues"] = sorted(map(float, vals), reverse=True)
        else:
            torch.manual_seed(0)
            out["trace"] = float(hutchpp_trace(H, 30))
        out["hvps"] = count["n"]
    else:
        import pyhessian.hessian  # noqa: F401

        ph = sys.modules["pyhessian.hessian"]
        n = {"hvps": 0}
        orig = ph.hessian_vector_product

        def counted(*a, **k):
            n["hvps"] += 1
            out = orig(*a, **k)
            progress(n["hvps"])
            return out

        ph.hessian_vector_product = counted
        h = ph.hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        torch.manual_seed(0)
        if task == "pyhessian_eig":
            eigs, _ = h.eigenvalues(maxIter=100, tol=TOL, top_n=5)
            out["eigenvalues"] = [float(e) for e in eigs]
        else:
            out["trace"] = float(np.mean(h.trace(maxIter=30, tol=TOL)))
        out["hvps"] = n["hvps"]
    out["wall_s"] = time.perf_counter() - t
    out["cpu_s"] = time.process_time() - c
    out["extra_bytes"] = max(0, peak_rss_bytes() - base)


if __name__ == "__main__":
    main()
