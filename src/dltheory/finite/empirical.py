"""Measurements on finite networks: empirical NTK and sampled outputs."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from .._checks import as_float_tensor, check_choice, check_int, message
from ..spec.layers import Serial
from .modules import FiniteDense, build_module
from .ntk_structured import dense_layers, expected_in_features, structured_ntk
from .ntk_vector_products import ntvp_ntk

__all__ = ["empirical_ntk", "preactivations", "sample_outputs"]


def _inputs(name: str, x: Any, model: nn.Module) -> torch.Tensor:
    param = next(iter(model.parameters()), None)
    if param is None:
        param = next(iter(model.buffers()), None)
    dtype = param.dtype if param is not None else None
    device = param.device if param is not None else None
    return as_float_tensor(name, x, ndim=2, dtype=dtype, device=device)


def _check_width(model: nn.Module, name: str, x: torch.Tensor) -> None:
    """A clear error for inputs of the wrong width (instead of a torch shape error)."""
    width = expected_in_features(model)
    if width is not None:
        if x.shape[1] != width:
            raise ValueError(
                message(
                    name,
                    f"inputs with {width} features (the model's input width)",
                    f"shape {tuple(x.shape)}",
                )
            )
        return
    try:
        with torch.no_grad():
            model(x[:1])
    except RuntimeError as err:
        raise ValueError(
            message(name, "inputs the model accepts", f"shape {tuple(x.shape)}", str(err))
        ) from err


def _jacobian(model: nn.Module, x: torch.Tensor, params, buffers) -> dict[str, torch.Tensor]:
    def f(p, xi):
        return functional_call(model, (p, buffers), (xi[None],))[0]

    return vmap(jacrev(f), in_dims=(None, 0))(params, x)


def empirical_ntk(
    model: nn.Module,
    x1: Any,
    x2: Any = None,
    *,
    output: Literal["trace", "full"] = "trace",
    chunk_size: int = 64,
    method: Literal["auto", "jacobian", "structured", "ntvp"] = "auto",
) -> torch.Tensor:
    """Empirical NTK Theta_ab = sum_p dz(x_a)/dtheta_p dz(x_b)/dtheta_p.

    Sums over every trainable parameter (``requires_grad``), identity metric.
    Methods (Novak et al. 2022, "Fast finite width neural tangent kernel"):
    ``"jacobian"``: per-example Jacobians from ``torch.func.vmap(jacrev(...))`` in
    chunks of ``chunk_size`` inputs, contracted; ``"structured"``: per dense layer,
    Gram of back-propagated signals times Gram of layer inputs (for Sequentials of
    ``nn.Linear`` / ``FiniteDense`` and elementwise activations; see
    :mod:`dltheory.finite.ntk_structured`); ``"ntvp"``: NTK-vector products
    (vjp then jvp) against basis vectors, any model; ``"auto"``: structured when
    the model supports it, else jacobian.

    Args:
        model: maps (N, n_0) -> (N, out).
        x1, x2: inputs (``x2=None``: the symmetric kernel of ``x1``).
        output: ``"trace"`` averages over outputs (N1, N2), the per-unit kernel
            that the infinite-width NTK describes; ``"full"`` gives (N1, N2, out, out).

    >>> from dltheory import MLP
    >>> net = MLP(depth=1, activation="identity").sample(width=4, in_dim=2, seed=0)
    >>> empirical_ntk(net, torch.eye(2)).shape
    torch.Size([2, 2])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(message("model", "a torch.nn.Module", type(model).__name__))
    check_choice("output", output, ("trace", "full"))
    check_choice("method", method, ("auto", "jacobian", "structured", "ntvp"))
    chunk_size = check_int("chunk_size", chunk_size, minimum=1)
    x1 = _inputs("x1", x1, model)
    same = x2 is None
    x2 = x1 if same else _inputs("x2", x2, model)
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    if not params:
        raise ValueError(message("model", "a module with trainable parameters", model))
    _check_width(model, "x1", x1)
    if not same:
        _check_width(model, "x2", x2)
    if x2.shape[1] != x1.shape[1]:
        raise ValueError(message("x2", f"inputs with {x1.shape[1]} features", tuple(x2.shape)))
    layers = dense_layers(model) if method in ("auto", "structured") else None
    if method == "structured" and layers is None:
        raise ValueError(
            message(
                "method",
                "'structured' only for Sequentials of nn.Linear / FiniteDense and "
                "parameter-free elementwise activations",
                type(model).__name__,
                "Use method='jacobian' or 'ntvp' (or 'auto')",
            )
        )
    if layers is not None:
        return structured_ntk(layers, x1, None if same else x2, output)
    if method == "ntvp":
        return ntvp_ntk(model, x1, None if same else x2, output, chunk_size)
    buffers = dict(model.named_buffers())

    def flat(x):
        return torch.cat(
            [j.flatten(2) for j in _jacobian(model, x, params, buffers).values()], dim=2
        )

    rows = []
    for i in range(0, len(x1), chunk_size):
        j1 = flat(x1[i : i + chunk_size])
        cols = []
        for j in range(0, len(x2), chunk_size):
            j2 = j1 if x2 is x1 and i == j else flat(x2[j : j + chunk_size])
            cols.append(torch.einsum("aop,bqp->aboq", j1, j2))
        rows.append(torch.cat(cols, dim=1))
    full = torch.cat(rows, dim=0)
    if output == "full":
        return full
    return full.diagonal(dim1=2, dim2=3).mean(-1)


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

    Network ``i`` uses seed ``seed + i``, so a sweep can be split and resumed.
    """
    n_networks = check_int("n_networks", n_networks, minimum=1)
    x = as_float_tensor("x", x, ndim=2, dtype=dtype)
    outs = []
    with torch.no_grad():
        for i in range(n_networks):
            net = build_module(spec, width, in_dim=x.shape[1], seed=seed + i, dtype=dtype)
            outs.append(net(x))
    return torch.stack(outs)


def preactivations(net: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The preactivations z^(l)(x), (N, n_l), after every Dense layer of a sampled net.

    Runs ``net`` (from ``spec.sample``) module by module without gradients, so
    every layer's z^(l) = b^(l) + W^(l) s(z^(l-1)) can be measured.
    """
    if not isinstance(net, nn.Sequential):
        raise TypeError(
            message("net", "a torch.nn.Sequential from spec.sample", type(net).__name__)
        )
    out, h = [], x
    with torch.no_grad():
        for module in net:
            h = module(h)
            if isinstance(module, FiniteDense):
                out.append(h)
    return out
