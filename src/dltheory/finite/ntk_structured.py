"""Empirical NTK of a dense network by per-layer Gram products (no parameter Jacobian).

For z^(l) = b_mult b + w_mult W h^(l) (``nn.Linear``: both multipliers 1), the
gradient of output f_o with respect to W is w_mult * delta_o^(l) h^(l)^T, with
delta_o^(l) = d f_o / d z^(l) the back-propagated signal. Hence

    Theta_ab^{op} = sum_l (delta_{a,o}^(l) . delta_{b,p}^(l))
                          (w_mult^2 h_a^(l) . h_b^(l) + b_mult^2),

a Gram of signals times a Gram of layer inputs per layer (the "structured
derivatives" view of Novak et al. 2022, "Fast finite width neural tangent kernel",
Sec. 4). Costs O(N^2 n) per layer instead of O(N^2 P).

Shared parameters (one ``nn.Linear`` used at several places, or one weight tensor in
two modules): the gradient with respect to a shared W is the sum over its uses u of
w_mult_u delta^(u) h^(u)^T, so its kernel term is the double sum over pairs of uses,
sum_{u, v} w_mult_u w_mult_v (delta_a^(u) . delta_b^(v)) (h_a^(u) . h_b^(v)), cross
terms u != v included (and likewise for a shared bias).
"""

from __future__ import annotations

import torch
from torch import nn

from .modules import ActivationModule, FiniteDense

__all__ = ["ELEMENTWISE", "dense_layers", "expected_in_features", "structured_ntk"]

#: Modules applied elementwise without trainable parameters (the structured path's
#: activations); ``ActivationModule`` wraps any dltheory activation.
ELEMENTWISE: tuple[type, ...] = (
    ActivationModule,
    nn.ReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.SiLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.LeakyReLU,
    nn.Softplus,
    nn.Softsign,
    nn.Mish,
    nn.Hardtanh,
    nn.Identity,
    nn.Tanhshrink,
)


def _leaves(model: nn.Module) -> list[nn.Module] | None:
    if isinstance(model, nn.Sequential):
        out: list[nn.Module] = []
        for child in model:
            sub = _leaves(child)
            if sub is None:
                return None
            out.extend(sub)
        return out
    return [model]


def _is_elementwise(module: nn.Module) -> bool:
    return isinstance(module, ELEMENTWISE) and not any(p.requires_grad for p in module.parameters())


def dense_layers(model: nn.Module) -> list[nn.Module] | None:
    """The leaf modules of ``model`` if the structured path supports it, else None.

    Supported: (nested) ``nn.Sequential`` of ``nn.Linear``, ``FiniteDense`` and
    parameter-free elementwise activations (:data:`ELEMENTWISE`), at least one dense.
    """
    leaves = _leaves(model)
    if leaves is None:
        return None
    ok = all(isinstance(m, nn.Linear | FiniteDense) or _is_elementwise(m) for m in leaves)
    if not ok or not any(isinstance(m, nn.Linear | FiniteDense) for m in leaves):
        return None
    return leaves


def expected_in_features(model: nn.Module) -> int | None:
    """The input width of a Sequential whose first parametrised leaf is dense, else None."""
    leaves = _leaves(model)
    for m in leaves or ():
        if isinstance(m, nn.Linear | FiniteDense):
            return m.in_features
        if not _is_elementwise(m):
            return None
    return None


def _factors(m: nn.Module) -> tuple[torch.Tensor, float, float, int | None, int | None]:
    """(effective weight, weight multiplier, bias multiplier, id of the trainable weight
    and bias parameters (None when frozen or absent))."""
    if isinstance(m, FiniteDense):
        w_mult, b_mult, weight, bias = m.w_mult, m.b_mult, m.weight, m.bias
    else:
        w_mult, b_mult, weight, bias = 1.0, 1.0, m.weight, m.bias
    wid = id(weight) if isinstance(weight, nn.Parameter) and weight.requires_grad else None
    bid = id(bias) if isinstance(bias, nn.Parameter) and bias.requires_grad else None
    return weight.detach() * w_mult, float(w_mult), float(b_mult), wid, bid


def _signals(layers: list[nn.Module], x: torch.Tensor):
    """Per use of a dense layer: (input h (N, n_in), signal delta (N, k, n_out), w_mult,
    b_mult, weight id, bias id)."""
    h, records = x, []
    with torch.no_grad():
        for m in layers:
            if isinstance(m, nn.Linear | FiniteDense):
                records.append(("dense", m, h))
                h = m(h)
            else:
                with torch.enable_grad():
                    z = h.detach().requires_grad_(True)
                    out = m(z)
                    (deriv,) = torch.autograd.grad(out.sum(), z)  # s'(z): elementwise
                records.append(("act", deriv, None))
                h = out.detach()
    n, k = h.shape
    delta = torch.eye(k, dtype=h.dtype, device=h.device).expand(n, k, k)
    uses = []
    first_dense = next(i for i, r in enumerate(records) if r[0] == "dense")
    for i in range(len(records) - 1, first_dense - 1, -1):
        kind, obj, inp = records[i]
        if kind == "act":
            delta = delta * obj[:, None, :]
            continue
        weight, w_mult, b_mult, wid, bid = _factors(obj)
        if wid is not None or bid is not None:
            uses.append((inp, delta, w_mult, b_mult, wid, bid))
        if i > first_dense:  # the signal below the first dense layer is never used
            delta = delta @ weight
    return uses


def _signal_gram(d1: torch.Tensor, d2: torch.Tensor, output: str) -> torch.Tensor:
    if output == "full":
        return torch.einsum("aon,bpn->abop", d1, d2)
    k = d1.shape[1]
    return d1[:, 0, :] @ d2[:, 0, :].T if k == 1 else torch.einsum("aon,bon->ab", d1, d2) / k


def structured_ntk(
    layers: list[nn.Module], x1: torch.Tensor, x2: torch.Tensor | None, output: str
) -> torch.Tensor:
    """Theta (N1, N2) (mean over outputs) or (N1, N2, k, k) from per-layer Grams.

    Sums over pairs of uses (u, v) that share a trainable weight or bias; without
    sharing only u = v pairs remain (one term per layer).
    """
    s1 = _signals(layers, x1)
    s2 = s1 if x2 is None else _signals(layers, x2)
    total = None
    for h1, d1, w1, b1, wid1, bid1 in s1:
        for h2, d2, w2, b2, wid2, bid2 in s2:
            shared_w = wid1 is not None and wid1 == wid2
            shared_b = bid1 is not None and bid1 == bid2
            if not (shared_w or shared_b):
                continue
            if shared_w:
                feat = (h1 @ h2.T) * (w1 * w2) + (b1 * b2 if shared_b else 0.0)
            else:
                feat = torch.full(
                    (h1.shape[0], h2.shape[0]), b1 * b2, dtype=h1.dtype, device=h1.device
                )
            gram = _signal_gram(d1, d2, output)
            term = gram * (feat[:, :, None, None] if output == "full" else feat)
            total = term if total is None else total + term
    return total
