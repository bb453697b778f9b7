"""Empirical NTK by Jacobian contraction, in blocks of inputs under a memory budget.

Theta(X1, X2) = J1 J2^T with J = d f / d theta (Novak et al. 2022, "Fast finite width
neural tangent kernel", Sec. 3.1, "Jacobian contraction"). Jacobians are formed
``chunk`` inputs at a time, (chunk, k, P) each:

* samples independent of each other (no BatchNorm in train mode): per-example
  Jacobians ``vmap(jacrev(f(x_a)))``, chunk k backward passes over one sample each;
* BatchNorm in train mode: f(x_a) depends on the whole batch, so the rows of the
  Jacobian of the batched map f(X) (N k, P) are formed by vector-Jacobian products
  of f(X) with basis cotangents (vmapped), chunk k products per block. Theta is then
  the NTK of the batched map, J_{f(X1)} J_{f(X2)}^T, each map with its own batch's
  statistics.

The Jacobians of X2 are kept when they fit in half of what the budget leaves after the
output, else recomputed for every block row (time traded for memory).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.func import jacrev, vjp, vmap

from .functional_model import FunctionalModel

__all__ = ["jacobian_blocks", "jacobian_ntk", "jacobian_plan"]

#: bytes of work memory per Jacobian entry held (the block, plus vmap / autograd
#: intermediates of about the same size measured on the zoo conv nets)
_WORK_FACTOR = 3


def jacobian_blocks(
    fm: FunctionalModel, x: torch.Tensor, k: int, chunk: int, first: int = 0
) -> Iterator[tuple[int, torch.Tensor]]:
    """(i, J[i:i + c]) for i = first, first + chunk, ...: J (c, k, P), rows of inputs i..."""
    n = x.shape[0]
    if not fm.batched:

        def f(p, xi):
            return fm(p, xi[None])[0]

        jac = vmap(jacrev(f), in_dims=(None, 0))
        for i in range(first, n, chunk):
            yield i, fm.flatten(jac(fm.params, x[i : i + chunk]), lead=2)
        return
    _, pullback = vjp(lambda p: fm(p, x), fm.params)
    for i in range(first, n, chunk):
        c = min(chunk, n - i)
        cot = torch.zeros(c, k, n, k, dtype=fm.dtype, device=fm.device)
        a, o = torch.meshgrid(torch.arange(c), torch.arange(k), indexing="ij")
        cot[a, o, i + a, o] = 1.0
        (rows,) = vmap(pullback)(cot.reshape(c * k, n, k))
        yield i, fm.flatten(rows, lead=1).reshape(c, k, -1)


def activation_numel(fm: FunctionalModel, x: torch.Tensor) -> int:
    """Numbers one sample's forward pass produces (outputs of every leaf module)."""
    total = [0]

    def count(_m, _i, out):
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                total[0] += t.numel()

    leaves = [m for m in fm.model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        fm.outputs("x1", x[:2])
    finally:
        for h in hooks:
            h.remove()
    return max(total[0] // min(len(x), 2), 1)


def jacobian_plan(
    n1: int,
    n2: int,
    k: int,
    p: int,
    itemsize: int,
    output: str,
    chunk: int,
    budget: float,
    activations: int = 0,
) -> tuple[int, bool, int]:
    """(chunk that fits, whether X2's Jacobians are cached, bytes needed at chunk 1).

    Memory = output + 2 blocks of chunk k rows, each row its P Jacobian entries (times
    the work factor) and the back-propagated activations it carries (``activations``
    numbers: one sample's for per-example Jacobians, the batch's for the batched map),
    + the cached Jacobians of X2 (N2 k P) if kept.
    """
    out = n1 * n2 * (k * k if output == "full" else 1) * itemsize
    row = k * (p * _WORK_FACTOR + 2 * activations) * itemsize
    need_min = out + 2 * row
    fit = int((budget - out) // (2 * row)) if budget > out else 0
    chunk = max(min(chunk, fit, max(n1, n2)), 0)
    cache = chunk > 0 and out + 2 * chunk * row + n2 * k * p * itemsize <= budget
    return chunk, cache, need_min


def _contract(j1: torch.Tensor, j2: torch.Tensor, output: str) -> torch.Tensor:
    a, k, p = j1.shape
    b = j2.shape[0]
    if output == "full":
        return (j1.reshape(a * k, p) @ j2.reshape(b * k, p).T).reshape(a, k, b, k).transpose(1, 2)
    # sum_o J1[a, o] . J2[b, o]: one (a x kP)(kP x b) product, k times fewer flops than full
    return (j1.reshape(a, k * p) @ j2.reshape(b, k * p).T) / k


def jacobian_ntk(
    fm: FunctionalModel,
    x1: torch.Tensor,
    x2: torch.Tensor | None,
    k: int,
    output: str,
    chunk: int,
    cache: bool,
) -> torch.Tensor:
    """Theta (N1, N2) (mean over outputs) or (N1, N2, k, k) by blocked contraction."""
    same = x2 is None
    x2 = x1 if same else x2
    n1, n2 = x1.shape[0], x2.shape[0]
    shape = (n1, n2, k, k) if output == "full" else (n1, n2)
    theta = torch.empty(shape, dtype=fm.dtype, device=fm.device)
    if chunk >= max(n1, n2) and (same or cache):  # one block each: no assembly copy
        (_, j1), *_ = jacobian_blocks(fm, x1, k, chunk)
        j2 = j1 if same else next(iter(jacobian_blocks(fm, x2, k, chunk)))[1]
        return _contract(j1, j2, output)
    kept = list(jacobian_blocks(fm, x2, k, chunk)) if cache else None
    rows = kept if same and kept is not None else jacobian_blocks(fm, x1, k, chunk)
    for i, j1 in rows:
        a = j1.shape[0]
        if kept is not None:
            cols = kept
        else:  # recomputed; for a symmetric kernel only the blocks on or above the diagonal
            cols = jacobian_blocks(fm, x2, k, chunk, first=i if same else 0)
        for j, j2 in cols:
            if same and j < i:
                continue
            block = _contract(j1, j2, output)
            b = j2.shape[0]
            theta[i : i + a, j : j + b] = block
            if same and j > i:
                theta[j : j + b, i : i + a] = (
                    block.permute(1, 0, 3, 2) if output == "full" else block.T
                )
    return theta
