"""Peers on the Hessian problem of PEERS.md; runs in benchmarks/_venvs/hessian (no dltheory).

Prints one JSON object: for each peer and task, wall and process-CPU seconds, the
Hessian-vector products counted by wrapping the peer's own product, and the result.
Called by ``hessian.py``; ``--tasks`` selects a comma-separated subset.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import numpy as np
import torch

from _digits_problem import digits_problem


class Counter:
    def __init__(self, fn):
        self.fn, self.n = fn, 0

    def __call__(self, *a, **k):
        self.n += 1
        return self.fn(*a, **k)


@contextlib.contextmanager
def timed(out: dict):
    t, c = time.perf_counter(), time.process_time()
    yield
    out["wall_s"] = time.perf_counter() - t
    out["cpu_s"] = time.process_time() - c


def pyhessian_tasks(model, loss_fn, x, y, tasks, res):
    import sys

    import pyhessian.hessian  # noqa: F401  (the package re-exports the class under this name)

    ph = sys.modules["pyhessian.hessian"]

    counter = Counter(ph.hessian_vector_product)
    ph.hessian_vector_product = counter
    for tol in (1e-3, 1e-6):
        if f"pyhessian_eig_{tol:g}" not in tasks:
            continue
        h = ph.hessian(model, loss_fn, data=(x, y), cuda=False)
        counter.n, out = 0, {}
        with timed(out):
            eigs, _ = h.eigenvalues(maxIter=100, tol=tol, top_n=5)
        out.update(eigenvalues=[float(e) for e in eigs], hvps=counter.n)
        res[f"pyhessian_eig_{tol:g}"] = out
    if "pyhessian_trace" in tasks:
        h = ph.hessian(model, loss_fn, data=(x, y), cuda=False)
        counter.n, out = 0, {}
        torch.manual_seed(0)
        with timed(out):
            tr = h.trace(maxIter=100, tol=1e-3)
        out.update(trace=float(np.mean(tr)), hvps=counter.n)
        res["pyhessian_trace"] = out
    if "pyhessian_density" in tasks:
        h = ph.hessian(model, loss_fn, data=(x, y), cuda=False)
        counter.n, out = 0, {}
        torch.manual_seed(0)
        # PEERS.md: density() calls torch.eig (removed in torch 2); on its symmetric
        # tridiagonal matrix torch.linalg.eigh is the same decomposition.
        torch.eig = lambda T, eigenvectors=True: (
            torch.stack([torch.linalg.eigh(T)[0], torch.zeros(T.shape[0], dtype=T.dtype)], 1),
            torch.linalg.eigh(T)[1],
        )
        with timed(out):
            eig_full, weight_full = h.density(iter=100, n_v=8)
        P = sum(p.numel() for p in model.parameters())
        moments = [
            float(np.sum(np.array(w) * np.array(e)))
            for e, w in zip(eig_full, weight_full, strict=True)
        ]
        out.update(trace=P * float(np.mean(moments)), hvps=counter.n, top=float(np.max(eig_full)))
        res["pyhessian_density"] = out


def eigenthings_tasks(model, loss_fn, x, y, tasks, res):
    if "eigenthings_eig" not in tasks:
        return
    from hessian_eigenthings import HessianOperator, lanczos, supervised_loss

    op = HessianOperator(model, [(x, y)], supervised_loss(loss_fn))
    counter = Counter(op.matvec)
    op.matvec = counter
    for label, max_iter in (("defaults", None), ("max_iter=30", 30)):
        counter.n, out = 0, {}
        with timed(out):
            r = lanczos(op, k=5, which="LA", seed=0, max_iter=max_iter, tol=1e-6)
        out.update(eigenvalues=sorted(map(float, r.eigenvalues), reverse=True), hvps=counter.n)
        res[f"eigenthings_eig_{label}"] = out


def curvlinops_tasks(model, loss_fn, x, y, tasks, res):
    from curvlinops import HessianLinearOperator, hutchpp_trace, lanczos_approximate_spectrum
    from scipy.sparse.linalg import LinearOperator, eigsh

    params = [p for p in model.parameters() if p.requires_grad]
    H = HessianLinearOperator(model, torch.nn.CrossEntropyLoss(), params, [(x, y)])
    P = sum(p.numel() for p in params)
    if "curvlinops_eig" in tasks:
        Hs = H.to_scipy()
        counter = Counter(Hs.matvec)
        op = LinearOperator((P, P), matvec=counter, dtype=np.float64)
        out = {}
        with timed(out):
            vals = eigsh(op, k=5, which="LA", tol=1e-6, v0=np.ones(P), return_eigenvectors=False)
        out.update(eigenvalues=sorted(map(float, vals), reverse=True), hvps=counter.n)
        res["curvlinops_eig"] = out
    count = {"n": 0}
    orig = type(H)._matmat

    def counted(self, X):
        count["n"] += X.shape[1] if X.ndim == 2 else 1
        return orig(self, X)

    type(H)._matmat = counted
    if "curvlinops_trace" in tasks:
        torch.manual_seed(0)
        out = {}
        with timed(out):
            tr = hutchpp_trace(H, 99)
        out.update(trace=float(tr), hvps=count["n"])
        res["curvlinops_trace"] = out
    if "curvlinops_density" in tasks:
        count["n"] = 0
        torch.manual_seed(0)
        np.random.seed(0)  # noqa: NPY002  (the peer draws from NumPy's global RNG)
        out = {}
        with timed(out):
            grid, density = lanczos_approximate_spectrum(H, ncv=128, num_repeats=6)
        grid, density = np.asarray(grid), np.asarray(density)
        out.update(
            trace=P * float(np.trapezoid(grid * density, grid)),
            hvps=count["n"],
            mass=float(np.trapezoid(density, grid)),
        )
        res["curvlinops_density"] = out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default="all")
    args = parser.parse_args()
    all_tasks = [
        "pyhessian_eig_0.001",
        "pyhessian_eig_1e-06",
        "pyhessian_trace",
        "pyhessian_density",
        "eigenthings_eig",
        "curvlinops_eig",
        "curvlinops_trace",
        "curvlinops_density",
    ]
    tasks = set(all_tasks if args.tasks == "all" else args.tasks.split(","))
    model, loss_fn, x, y = digits_problem()
    res: dict = {}
    for fn in (pyhessian_tasks, eigenthings_tasks, curvlinops_tasks):
        try:
            fn(model, loss_fn, x, y, tasks, res)
        except Exception as err:  # a peer failing is a result, not a crash
            res[f"{fn.__name__}_error"] = f"{type(err).__name__}: {err}"
    print(json.dumps(res))


if __name__ == "__main__":
    main()
