"""Measurements on finite networks: empirical NTK and sampled outputs."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import nn

from .._checks import (
    as_float_tensor,
    check_bytes,
    check_choice,
    check_finite_result,
    check_int,
    check_positive,
    message,
)
from ..spec.layers import Serial
from .ensemble import ensemble
from .functional_model import FunctionalModel
from .modules import FiniteDense
from .ntk_jacobian import activation_numel, jacobian_ntk, jacobian_plan
from .ntk_layerwise import layerwise_bytes, layerwise_ntk, layerwise_plan
from .ntk_structured import dense_layers, expected_in_features, structured_ntk
from .ntk_vector_products import ntvp_ntk

__all__ = ["DEFAULT_MEMORY_BUDGET", "empirical_ntk", "preactivations", "sample_outputs"]

#: bytes ``empirical_ntk`` may use by default (output plus work memory): 2 GiB
DEFAULT_MEMORY_BUDGET = 2 * 2**30


def _check_width(name: str, x: torch.Tensor, width: int | None) -> None:
    """A clear error for inputs of the wrong width (instead of a torch shape error)."""
    if width is not None and (x.ndim != 2 or x.shape[1] != width):
        raise ValueError(
            message(
                name,
                f"inputs with {width} features (the model's input width)",
                f"shape {tuple(x.shape)}",
            )
        )


def _refuse(need: float, budget: float, n1: int, n2: int, k: int, p: int, output: str):
    raise ValueError(
        message(
            "memory_budget",
            f"at least {math.ceil(need)} bytes ({need / 2**30:.3g} GiB) for this NTK "
            f"(N1={n1}, N2={n2}, k={k}, P={p}, output={output!r})",
            f"{budget:.3g}",
            "Raise memory_budget or pass fewer inputs"
            + (", or use output='trace'" if output == "full" else ""),
        )
    )


def empirical_ntk(
    model: nn.Module,
    x1: Any,
    x2: Any = None,
    *,
    output: Literal["trace", "full"] = "trace",
    chunk_size: int | None = None,
    method: Literal["auto", "jacobian", "structured", "ntvp"] = "auto",
    memory_budget: float | None = None,
) -> torch.Tensor:
    """Empirical NTK Theta_ab = sum_p dz(x_a)/dtheta_p dz(x_b)/dtheta_p.

    Sums over every trainable parameter (``requires_grad``; a tied parameter once, with
    the contributions of all its uses), identity metric. Methods (Novak et al. 2022,
    "Fast finite width neural tangent kernel"):

    * ``"jacobian"``: Jacobians ``chunk_size`` inputs at a time (per-example
      ``vmap(jacrev(...))``), contracted block by block; memory about output +
      2 chunk k 3 P numbers (+ 2 chunk k A, A the activations of the whole batch's
      forward, for train-mode BatchNorm), the chunk sized to ``memory_budget``;
    * ``"structured"``: per dense layer, Gram of back-propagated signals times Gram of
      layer inputs (Sequentials of ``nn.Linear`` / ``FiniteDense`` and elementwise
      activations on (N, n_0) inputs, shared layers included: cross terms between
      uses are summed; see :mod:`dltheory.finite.ntk_structured`); on other models
      (images, tokens, any ``nn.Module`` evaluated per example) the ``nn.Linear`` /
      ``nn.Conv1d`` / ``nn.Conv2d`` layers used once each by signals and inputs
      (unfolded patches for convs) and the other parameters by Jacobian blocks (see
      :mod:`dltheory.finite.ntk_layerwise`);
    * ``"ntvp"``: NTK-vector products (vjp then jvp) against basis vectors, any model,
      N2 k products, memory O(chunk_size (N k + P)) beside the output;
    * ``"auto"``: structured when the model supports it (layerwise: when those layers
      hold at least a quarter of the parameters and it fits the budget), else jacobian
      (ntvp when the jacobian blocks do not fit the budget).

    Inputs are batch-first of any shape and dtype (images (N, C, H, W), integer token
    ids (N, T), ...), passed to the model as given (floating ones in the model's
    dtype). The model is never modified (buffers are copied). BatchNorm in train
    mode: every method returns the NTK of the batched map, Theta = J_{f(X1)}
    J_{f(X2)}^T with each batch normalised by its own statistics (jacobian: rows of
    the batched Jacobian by vector-Jacobian products, chunk k per block). Dropout in
    train mode is refused (``model.eval()``).

    Args:
        model: maps (N, ...) inputs to (N,) or (N, k) outputs (others are flattened).
        x1, x2: inputs (``x2=None``: the symmetric kernel of ``x1``).
        output: ``"trace"`` averages over outputs (N1, N2), the per-unit kernel
            that the infinite-width NTK describes; ``"full"`` gives (N1, N2, k, k).
        chunk_size: inputs (jacobian) or products (ntvp) per vectorised block
            (default: as many as ``memory_budget`` allows for jacobian, 64 for ntvp).
        method: see above.
        memory_budget: bytes the call may use (default :data:`DEFAULT_MEMORY_BUDGET`,
            2 GiB); when even one input per block does not fit, a one-line
            ``ValueError`` gives the bytes needed.

    >>> from dltheory import MLP
    >>> net = MLP(depth=1, activation="identity").sample(width=4, in_dim=2, seed=0)
    >>> empirical_ntk(net, torch.eye(2)).shape
    torch.Size([2, 2])
    """
    fm = FunctionalModel(model)
    if not all(bool(torch.isfinite(t).all()) for t in fm.params.values()):
        raise ValueError(message("model", "a module with finite parameters", "NaN or inf"))
    check_choice("output", output, ("trace", "full"))
    check_choice("method", method, ("auto", "jacobian", "structured", "ntvp"))
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget
    budget = check_positive("memory_budget", budget)
    x1 = fm.inputs("x1", x1)
    same = x2 is None
    x2 = x1 if same else fm.inputs("x2", x2)
    width = expected_in_features(model)
    _check_width("x1", x1, width)
    if not same:
        _check_width("x2", x2, width)
    # two rows check that the model takes inputs of this shape and give k, cheaply
    k = fm.outputs("x1", x1[:2]).shape[1]
    if not same and fm.outputs("x2", x2[:2]).shape[1] != k:
        raise ValueError(message("x2", f"inputs giving {k} outputs per row, as x1", x2.shape))
    plain = x1.ndim == 2 and x1.is_floating_point()
    layers = dense_layers(model) if method in ("auto", "structured") and plain else None
    n1, n2, p = x1.shape[0], x2.shape[0], fm.n_params
    item = torch.empty((), dtype=fm.dtype).element_size()
    out_bytes = n1 * n2 * (k * k if output == "full" else 1) * item
    if layers is not None:
        widest = max(getattr(m, "out_features", 0) for m in layers)
        need = out_bytes + 2 * (n1 + n2) * k * widest * item * len(layers)
        if need > budget:
            _refuse(need, budget, n1, n2, k, p, output)
        return _finite(structured_ntk(layers, x1, None if same else x2, output))
    plan = layerwise_plan(fm, x1) if method in ("auto", "structured") else None
    if method == "structured" and plan is None:
        raise ValueError(
            message(
                "method",
                "'structured' only for models with trainable nn.Linear / nn.Conv1d / "
                "nn.Conv2d layers (groups=1) used once each, without BatchNorm in train "
                "mode, or Sequentials of FiniteDense and elementwise activations",
                type(model).__name__,
                "Use method='jacobian' or 'ntvp' (or 'auto')",
            )
        )
    # auto: the layerwise path when its layers hold a real share of the parameters
    if plan is not None and (method == "structured" or plan.n_structured * 4 >= p):
        acts = activation_numel(fm, x1)
        need = layerwise_bytes(fm, plan, n1, n2, k, output) + 2 * k * acts * max(n1, n2) * item
        if need <= budget:
            chunk = max(n1, n2) if chunk_size is None else chunk_size
            return _finite(layerwise_ntk(fm, plan, x1, None if same else x2, output, budget, chunk))
        if method == "structured":
            _refuse(need, budget, n1, n2, k, p, output)
        method = "auto"  # over budget: the blocked contraction
    # ntvp: chunk products of (N1 + N2) k outputs and P tangents, a few copies each
    ntvp_row = 3 * ((n1 + n2) * k + p) * item
    ntvp_want = 64 if chunk_size is None else chunk_size
    ntvp_chunk = int(min(ntvp_want, (budget - out_bytes) // ntvp_row)) if budget > out_bytes else 0
    jac_want = max(n1, n2) if chunk_size is None else chunk_size
    # per-example rows carry one sample's activations (small beside P, in the work
    # factor); a row of the batched map carries the whole batch's: counted
    acts = activation_numel(fm, x1) * max(n1, n2) if fm.batched else 0
    chunk, cache, need = jacobian_plan(n1, n2, k, p, item, output, jac_want, budget, acts)
    if method == "auto":
        method = "jacobian" if chunk >= 1 else "ntvp"
    if method == "ntvp":
        if ntvp_chunk < 1:
            _refuse(out_bytes + ntvp_row, budget, n1, n2, k, p, output)
        return _finite(ntvp_ntk(fm, x1, None if same else x2, output, ntvp_chunk))
    if chunk < 1:
        _refuse(need, budget, n1, n2, k, p, output)
    return _finite(jacobian_ntk(fm, x1, None if same else x2, k, output, chunk, cache))


def sample_outputs(
    spec: Serial,
    x: Any,
    width: int,
    n_networks: int,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Outputs (n_networks, N, out) of independently sampled finite networks.

    The networks are ``ensemble(spec, width, n_networks, seed=seed,
    in_dim=x.shape[1], dtype=dtype)`` run in batches: network ``i`` draws from
    its own stream ``SeedSequence(seed, spawn_key=(i,))``, so runs with
    different seeds share no network, and a larger ``n_networks`` extends a
    smaller one (a sweep can be split and resumed by network index).

    >>> from dltheory import MLP
    >>> z = sample_outputs(MLP(1, "relu", c_w=2.0), torch.ones(1, 2), 16, 4000, seed=0)
    >>> abs(float(z.square().mean()) - 2.0) < 0.3  # E[z^2] = C_w |x|^2 / n_0 = 2, s.e. ~0.05
    True
    """
    n_networks = check_int("n_networks", n_networks, minimum=1)
    x = as_float_tensor("x", x, ndim=2, dtype=dtype)
    width = check_int("width", width, minimum=1)
    item = torch.empty((), dtype=dtype).element_size()
    check_bytes("width", item * float(width) * (width + x.shape[1]), fix="Use a smaller width")
    if not isinstance(spec, Serial):
        raise TypeError(message("spec", "a dltheory Serial/MLP spec", type(spec).__name__))
    out_dim = spec.out_dim or width
    check_bytes("n_networks", item * float(n_networks) * len(x) * out_dim, fix="Use fewer networks")
    networks = ensemble(spec, width, n_networks, seed=seed, in_dim=x.shape[1], dtype=dtype)
    return networks.forward(x)


def preactivations(net: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The preactivations z^(l)(x), (N, n_l), after every Dense layer of a sampled net.

    Runs ``net`` (from ``spec.sample``) module by module without gradients, so
    every layer's z^(l) = b^(l) + W^(l) s(z^(l-1)) can be measured.
    """
    if not isinstance(net, nn.Sequential):
        raise TypeError(
            message("net", "a torch.nn.Sequential from spec.sample", type(net).__name__)
        )
    first = next((m for m in net if isinstance(m, FiniteDense)), None)
    if first is None:
        raise ValueError(message("net", "a network with Dense layers (from spec.sample)", net))
    x = as_float_tensor("x", x, ndim=2, dtype=first.weight.dtype)
    if x.shape[1] != first.in_features:
        raise ValueError(
            message("x", f"(N, {first.in_features}) inputs for this net", tuple(x.shape))
        )
    out, h = [], x
    with torch.no_grad():
        for module in net:
            h = module(h)
            if isinstance(module, FiniteDense):
                out.append(h)
    check_finite_result("net", tuple(out), "Check the weights and rescale x")
    return out


def _finite(ntk: torch.Tensor) -> torch.Tensor:
    """The NTK, or a one-line error when it overflowed (inputs near the float limit)."""
    check_finite_result("x1", ntk, "The NTK overflows at these inputs: rescale them")
    return ntk
