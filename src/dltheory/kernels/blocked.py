"""``kernel``: infinite-width NNGP / NTK of a spec, in blocks under a memory budget.

A diagonal pass first gives every input's variance at every layer (O(N L)).
Then each (rows, columns) block of pairs runs through all layers at once, so
the working set of one block stays small and the result is the same, bit for
bit, as one big block. Without ``x2`` only blocks on and above the diagonal are
computed and the matrix is mirrored.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import torch

from .._checks import as_float_tensor, check_choice, check_int, message
from ..spec.layers import Dense, Nonlinearity, Serial
from . import fused
from .graph import graph_kernel
from .recursion import Propagation, propagate
from .state import KernelState

__all__ = ["DEFAULT_MEMORY_BUDGET", "kernel"]

DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of working memory for one block
_ARRAYS_PER_PAIR = 12  # float64 N1 x N2 arrays alive at once inside one layer
_FUSED_MIN_WORK = 50_000  # pairs x layers above which "auto" picks the fused loop


def _check_spec(spec: Serial) -> None:
    if not isinstance(spec, Serial):
        raise TypeError(message("spec", "a dltheory Serial/MLP spec", type(spec).__name__))
    spec.check_network()  # the one network rule that every interpreter applies


def _block_size(n1: int, n2: int, budget: int, collect: int) -> int:
    per_pair = 8 * (_ARRAYS_PER_PAIR + 2 * collect)
    side = min(512, int(math.sqrt(max(budget, per_pair) / per_pair)))
    return max(1, min(max(n1, n2), side))


def kernel(
    spec: Serial,
    x1: Any,
    x2: Any = None,
    *,
    return_layers: bool = False,
    memory_budget: int | None = None,
    block_size: int | None = None,
    backend: Literal["auto", "fused", "torch"] = "auto",
    input_shape: tuple[int, ...] | None = None,
    progress: bool = False,
) -> KernelState:
    """Infinite-width NNGP and NTK of the output of ``spec`` (float64).

    K^(1)_ab = C_b + C_w x_a.x_b / n_0, K^(l+1)_ab = C_b + C_w E[s(u) s(v)];
    Theta^(1) = lambda_b + lambda_w x_a.x_b / n_0,
    Theta^(l+1) = lambda_b + lambda_w E[s s] + C_w E[s' s'] Theta^(l)
    (Neal 1996; Lee et al. 2018; Jacot et al. 2018; docs/conventions.md).

    Args:
        spec: a ``Serial`` (e.g. from ``MLP``).
        x1: (N1, n_0) inputs (torch or NumPy; converted to float64 on their device).
        x2: (N2, n_0) inputs, or ``None`` for the symmetric kernel of ``x1``.
        return_layers: also return K^(1..L+1) (one ``KernelState`` per Dense layer).
        memory_budget: bytes of working memory per block (default 1 GiB).
        block_size: side of a block of pairs (overrides ``memory_budget``).
        backend: ``"fused"`` (CPU: each pair runs through all layers in one
            compiled loop), ``"torch"`` (tensor ops per layer, any device, with
            2-D quadrature for pairs the Mehler series cannot certify) or
            ``"auto"`` (fused where it applies, torch otherwise).
        input_shape: (C, H, W) or (C, L) when image inputs come as flattened rows
            (default ``spec.input_shape``); images may also be passed as torch lays
            them out, (N, C, H, W) or (N, C, L), to specs with conv layers.
        progress: a progress bar over the blocks (specs beyond the MLP chain).

    Returns:
        ``KernelState`` with ``nngp`` and ``ntk`` of shape (N1, N2).

    >>> import torch
    >>> from dltheory import MLP
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    >>> k = MLP(depth=5, activation="relu", c_w=2.0).kernel(x)
    >>> [round(float(v), 12) for v in k.nngp.diagonal()]  # 2|x|^2 / n_0 at every depth
    [1.0, 4.0]
    """
    _check_spec(spec)
    check_choice("backend", backend, ("auto", "fused", "torch"))
    if not spec.is_chain:  # conv, residual, normalisation, ...: the graph interpreter
        if return_layers:
            raise ValueError(
                message(
                    "return_layers",
                    "False for specs beyond the MLP chain",
                    return_layers,
                    "Per-layer kernels are returned for Dense/Nonlinearity specs only",
                )
            )
        budget = (
            DEFAULT_MEMORY_BUDGET
            if memory_budget is None
            else check_int("memory_budget", memory_budget, minimum=1)
        )
        return graph_kernel(
            spec,
            x1,
            x2,
            memory_budget=budget,
            block_size=block_size,
            input_shape=input_shape,
            progress=progress,
            backend=backend,
        )
    x1 = as_float_tensor("x1", x1, ndim=2, dtype=torch.float64)
    symmetric = x2 is None
    x2 = x1 if symmetric else as_float_tensor("x2", x2, ndim=2, dtype=torch.float64)
    n0 = x1.shape[1]
    if x2.shape[1] != n0:
        raise ValueError(
            message("x2", f"a 2-D array with {n0} features like x1", f"shape {tuple(x2.shape)}")
        )
    if spec.in_dim is not None and n0 != spec.in_dim:
        raise ValueError(
            message("x1", f"inputs with in_dim={spec.in_dim} features", f"shape {tuple(x1.shape)}")
        )
    if x2.device != x1.device:
        raise ValueError(message("x2", f"on the device of x1 ({x1.device})", str(x2.device)))
    n_dense = sum(isinstance(layer, Dense) for layer in spec.layers)
    collect = n_dense if return_layers else 0
    if block_size is None:
        budget = (
            DEFAULT_MEMORY_BUDGET
            if memory_budget is None
            else check_int("memory_budget", memory_budget, minimum=1)
        )
        block_size = _block_size(len(x1), len(x2), budget, collect)
    else:
        block_size = check_int("block_size", block_size, minimum=1)

    diag1 = _diagonal_pass(spec, x1, n0)
    diag2 = diag1 if symmetric else _diagonal_pass(spec, x2, n0)
    n1, n2 = len(x1), len(x2)
    # Small problems: the torch ops cost less than loading the compiled loop.
    big = n1 * n2 * len(spec.layers) >= _FUSED_MIN_WORK
    use_fused = backend == "fused" or (backend == "auto" and big)
    if use_fused and fused.available(spec, x1.device):
        result = _fused(spec, x1, x2, n0, diag1, diag2, symmetric, collect, backend, block_size)
    elif backend == "fused":
        raise ValueError(
            message(
                "backend",
                "'auto' or 'torch' here",
                backend,
                "The fused backend needs numba and CPU tensors",
            )
        )
    else:
        result = _torch_blocks(spec, x1, x2, n0, diag1, diag2, symmetric, collect, block_size)
    nngp, ntk, layer_out = result

    if symmetric:  # the diagonal pass is the exact 1-D recursion
        nngp.diagonal().copy_(diag1.nngp[-1])
        ntk.diagonal().copy_(diag1.ntk[-1])
        for (a, b), da, db in zip(layer_out, diag1.nngp, diag1.ntk, strict=False):
            a.diagonal().copy_(da)
            b.diagonal().copy_(db)
    layers = tuple(
        KernelState(a, b, d1a, d2a)
        for (a, b), d1a, d2a in zip(layer_out, diag1.nngp, diag2.nngp, strict=False)
    )
    return KernelState(nngp, ntk, diag1.nngp[-1], diag2.nngp[-1], layers)


def _fused(spec, x1, x2, n0, diag1, diag2, symmetric, collect, backend, block_size):
    gram = x1 @ x2.T / n0
    if symmetric:
        gram.diagonal().copy_(diag1.gram)
    tol = _series_tolerance(spec)
    *out, failed = fused.fused_kernel(
        spec,
        gram,
        n0,
        diag1.variances,
        diag2.variances,
        symmetric=symmetric,
        collect=bool(collect),
        tol=tol,
    )
    arrays = [torch.from_numpy(a) for a in out]
    nngp, ntk = arrays[0], arrays[1]
    layer_out = [(arrays[2][i], arrays[3][i]) for i in range(collect)]
    if symmetric:
        for a in [out[0], out[1], *out[2], *out[3]] if collect else out[:2]:
            fused.mirror_upper(a)
    rows = torch.from_numpy(failed).nonzero().flatten()
    if len(rows):
        if backend == "fused":
            raise ValueError(
                message(
                    "backend",
                    "'auto' or 'torch' for these inputs",
                    backend,
                    "Some pairs need the 2-D quadrature of the torch backend",
                )
            )
        # Rows with a pair the series could not certify: the torch interpreter.
        sub = _torch_blocks(
            spec, x1[rows], x2, n0, diag1.subset(rows), diag2, False, collect, block_size
        )
        for full, part in zip(
            [nngp, ntk, *[m for p in layer_out for m in p]],
            [sub[0], sub[1], *[m for p in sub[2] for m in p]],
            strict=True,
        ):
            full[rows] = part
            if symmetric:
                full[:, rows] = part.T
    return nngp, ntk, layer_out


def _mirror_upper(a: torch.Tensor) -> None:
    """Make a square matrix exactly symmetric from its upper triangle."""
    upper = torch.triu(a, diagonal=1)
    a.copy_(upper + upper.T + torch.diag(a.diagonal()))


def _series_tolerance(spec) -> float:
    """Relative tolerance of the Mehler series: the activations' smallest ``tol``.

    Relative to sqrt(E f^2 E g^2) of each pair, not to the largest kernel entry:
    a large first-layer K (inputs ~ 1e4) must not loosen every later map.
    """
    tols = [layer.activation.tol for layer in spec.layers if isinstance(layer, Nonlinearity)]
    return min(tols, default=1e-12)


def _torch_blocks(spec, x1, x2, n0, diag1, diag2, symmetric, collect, block_size):
    n1, n2 = len(x1), len(x2)
    new = lambda: torch.empty(n1, n2, dtype=torch.float64, device=x1.device)  # noqa: E731
    nngp, ntk = new(), new()
    layer_out = [(new(), new()) for _ in range(collect)]
    for i in range(0, n1, block_size):
        rows = slice(i, min(i + block_size, n1))
        for j in range(i if symmetric else 0, n2, block_size):
            cols = slice(j, min(j + block_size, n2))
            gram = x1[rows] @ x2[cols].T / n0
            if symmetric and i == j:
                gram.diagonal().copy_(diag1.gram[rows])

            def store(index: int, state: Propagation, rows=rows, cols=cols) -> None:
                layer_out[index][0][rows, cols] = state.nngp
                layer_out[index][1][rows, cols] = state.ntk

            final = propagate(
                spec,
                gram,
                n0,
                var1=[v[rows] for v in diag1.variances],
                var2=[v[cols] for v in diag2.variances],
                on_dense=store if collect else None,
            )
            nngp[rows, cols], ntk[rows, cols] = final.nngp, final.ntk
            if symmetric and j == i:  # a BLAS Gram block is not exactly symmetric
                for a in [nngp, ntk, *[m for p in layer_out for m in p]]:
                    _mirror_upper(a[rows, cols])
            if symmetric and j != i:
                nngp[cols, rows], ntk[cols, rows] = final.nngp.T, final.ntk.T
                for a, b in layer_out:
                    a[cols, rows], b[cols, rows] = a[rows, cols].T, b[rows, cols].T
    return nngp, ntk, layer_out


def _check_range(
    index: int, n_dense: int, state: Propagation, previous: torch.Tensor | None
) -> None:
    """Raise when K^(l) or Theta^(l) leaves float64 range; warn when the network makes
    K^(l) underflow (a normal K^(l-1) becoming subnormal; tiny inputs are the user's).

    Off-diagonal entries are bounded by the diagonal (|K_ab| <= sqrt(K_aa K_bb)),
    so the diagonal pass decides for the whole kernel.
    """
    for name, value in (("K", state.nngp), ("Theta", state.ntk)):
        if not bool(torch.isfinite(value).all()):
            raise ValueError(
                message(
                    "spec",
                    "a network whose kernels stay within float64 range",
                    f"{name}^({index + 1}) = {float(value.abs().max()):g} at Dense layer "
                    f"{index + 1} of {n_dense}",
                    "Lower c_w (or the input scale): the variance grows by about "
                    "C_w E[s^2] / K per layer",
                )
            )
        tiny = torch.finfo(torch.float64).tiny
        if name == "Theta" or previous is None:
            continue
        if bool(((value != 0) & (value.abs() < tiny) & (previous.abs() >= tiny)).any()):
            warnings.warn(
                f"{name}^({index + 1}) underflows float64 (below {tiny:.3g}) at Dense layer "
                f"{index + 1} of {n_dense}: from there kernels lose precision and correlations "
                "are meaningless. Raise c_w or c_b.",
                RuntimeWarning,
                stacklevel=4,
            )
            return


class _Diagonal:
    """Per-input variances before each nonlinearity, and the diagonal kernels."""

    def __init__(self, gram: torch.Tensor) -> None:
        self.gram = gram
        self.variances: list[torch.Tensor] = []
        self.nngp: list[torch.Tensor] = []
        self.ntk: list[torch.Tensor] = []

    def subset(self, rows: torch.Tensor) -> _Diagonal:
        out = _Diagonal(self.gram[rows])
        out.variances = [v[rows] for v in self.variances]
        out.nngp = [v[rows] for v in self.nngp]
        out.ntk = [v[rows] for v in self.ntk]
        return out


def _diagonal_pass(spec: Serial, x: torch.Tensor, n0: int) -> _Diagonal:
    # |x|^2 / n_0 scaled by the largest entry: finite whenever the result is.
    scale = x.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    out = _Diagonal((x / scale).square().sum(-1) / n0 * scale[:, 0] ** 2)
    n_dense = sum(isinstance(layer, Dense) for layer in spec.layers)

    def dense(index: int, state: Propagation) -> None:
        _check_range(index, n_dense, state, out.nngp[-1] if out.nngp else None)
        out.nngp.append(state.nngp)
        out.ntk.append(state.ntk)

    propagate(
        spec,
        out.gram.clone(),
        n0,
        on_dense=dense,
        on_nonlinearity=lambda index, var: out.variances.append(var),
    )
    return out
