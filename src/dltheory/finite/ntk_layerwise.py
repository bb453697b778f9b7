"""Empirical NTK of any per-example model with dense and conv layers taken layer by layer.

A ``nn.Linear`` or ``nn.Conv1d`` / ``nn.Conv2d`` (groups 1, zero padding) layer is a
matrix W (d_out, d_in) applied at S positions: the tokens of a Linear on (N, ..., d_in)
inputs, the output pixels of a conv on its input patches (``unfold``: d_in =
C_in * kernel size). With delta_{a,o}(s) = d f_o(x_a) / d z_a(s) the back-propagated
signal at position s and h_a(s) the layer's input there (a 1 appended for a bias),

    d f_o(x_a) / d W = sum_s delta_{a,o}(s) h_a(s)^T,
    Theta_ab^{op} [W] = sum_{s, t} (delta_{a,o}(s) . delta_{b,p}(t)) (h_a(s) . h_b(t))

(Novak et al. 2022, "Fast finite width neural tangent kernel", Sec. 4, "structured
derivatives"). Per layer, the cheaper of two evaluations is taken by operation count:

* ``"gram"``: the right-hand side, Grams of signals and of inputs over position pairs,
  O(N1 N2 S^2 (k^2 d_out + d_in)) (S = 1: a dense layer on vectors, late conv layers);
* ``"grad"``: the per-example weight gradients formed from (delta, h) by one einsum and
  contracted like Jacobians, O(N k S d_out d_in + N1 N2 k^2 d_out d_in).

Normalisation affines (BatchNorm with running statistics, GroupNorm, LayerNorm) are
taken the same way: d f / d gamma = sum_pos delta x_hat, d f / d beta = sum_pos delta.

The signals are derivatives with respect to a zero added to every such layer's output.
When these layers hold all the parameters they come from k backward passes of the
batched map (per-example model: the sum over the batch separates); otherwise from one
``vmap(jacrev(...))`` pass that also differentiates each sample's outputs with respect
to the remaining parameters (embeddings, attention, ...), whose Jacobian blocks are
contracted as in :mod:`dltheory.finite.ntk_jacobian`. A layer is taken this way only if
its parameters
are used by it alone, once per forward pass; the plan checks this on one sample (the
weight gradient assembled from signals equals autograd's), else the layer's
parameters join the Jacobian blocks. Per-example maps only (BatchNorm in train mode couples
the samples: not here).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import jacrev, vmap

from .functional_model import FunctionalModel

__all__ = [
    "LAYER_TYPES",
    "LayerwisePlan",
    "layerwise_bytes",
    "layerwise_ntk",
    "layerwise_plan",
]

#: modules whose NTK term is computed from signals and inputs (exact types: a subclass
#: may change ``forward``)
LAYER_TYPES: tuple[type, ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)
#: normalisations whose affine parameters (gamma, beta) are taken from signals and the
#: normalised input x_hat: d f / d gamma = sum_pos delta x_hat, d f / d beta = sum_pos delta
#: (BatchNorm only with running statistics in eval mode: then a per-example map)
AFFINE_TYPES: tuple[type, ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.GroupNorm,
    nn.LayerNorm,
)


@dataclass
class _Layer:
    module: nn.Module
    weight: str  # parameter name in fm.params
    bias: str | None  # trainable bias name, or None
    kind: str = "dense"  # "dense" (Linear / conv) or "affine" (a normalisation)
    positions: int = 0  # S
    d_in: int = 0  # with the bias column
    d_out: int = 0
    out_shape: tuple[int, ...] = ()


@dataclass
class LayerwisePlan:
    """Which layers are taken from signals and which parameters by Jacobian blocks."""

    layers: list[_Layer]
    rest: list[str]  # names of the parameters contracted as Jacobian blocks
    n_structured: int  # parameters covered by the layers


def _supported(m: nn.Module) -> bool:
    if type(m) in AFFINE_TYPES:
        w = getattr(m, "weight", None)
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (
            m.training or m.running_mean is None
        ):
            return False
        return isinstance(w, nn.Parameter) and w.requires_grad
    if type(m) not in LAYER_TYPES:
        return False
    if isinstance(m, nn.Conv1d | nn.Conv2d):
        if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
            return False
    w = m.weight
    return isinstance(w, nn.Parameter) and w.requires_grad


def _record(fm: FunctionalModel, modules: list[nn.Module], x: torch.Tensor):
    """A no-grad forward pass: per module, (input, output shape, number of calls)."""
    seen: dict[int, list] = {id(m): [None, None, 0] for m in modules}

    def hook(m, args, out):
        rec = seen[id(m)]
        rec[0], rec[1], rec[2] = args[0].detach(), tuple(out.shape), rec[2] + 1

    hooks = [m.register_forward_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            fm(fm.params, x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _verified(fm: FunctionalModel, layers: list[_Layer], x0: torch.Tensor) -> list[_Layer]:
    """The layers whose parameters act only through their one call on ``x0`` (1, ...).

    One forward and one backward pass of r . f(x0) (r fixed, all entries non-zero):
    a layer is kept when it was called once and autograd's gradient of its weight and
    bias equals sum_s delta(s) h(s)^T built from its signal and input, i.e. the weight
    is not also used elsewhere (tied, or read directly in ``forward``).
    """
    covered = [n for c in layers for n in (c.weight, c.bias) if n is not None]
    cov = {n: fm.params[n].clone().requires_grad_(True) for n in covered}
    others = {n: t for n, t in fm.params.items() if n not in cov}
    seen: dict[int, list] = {id(c.module): [] for c in layers}

    def hook(m, args, out):
        seen[id(m)].append((args[0].detach(), out))

    hooks = [c.module.register_forward_hook(hook) for c in layers]
    try:
        with torch.enable_grad():
            y = fm({**others, **cov}, x0)[0]
    finally:
        for h in hooks:
            h.remove()
    once = [c for c in layers if len(seen[id(c.module)]) == 1]
    if not once:
        return []
    r = torch.linspace(1.0, 2.0, y.numel(), dtype=y.dtype, device=y.device)
    outs = [seen[id(c.module)][0][1] for c in once]
    grads = torch.autograd.grad((y * r).sum(), [*cov.values(), *outs], allow_unused=True)
    g = dict(zip(cov, grads[: len(cov)], strict=True))
    eps = torch.finfo(fm.dtype).eps
    kept = []
    for c, out, d in zip(once, outs, grads[len(cov) :], strict=True):
        c.out_shape = tuple(out.shape[1:])
        c.d_out = c.module.weight.shape[0]
        c.d_in = c.module.weight[0].numel() + (c.bias is not None)
        c.positions = out[0].numel() // c.d_out
        h = _inputs(c, seen[id(c.module)][0][0])
        d = torch.zeros_like(out) if d is None else d
        assembled = _grads(c, h, _signals(c, d[:, None]))[0, 0]
        if c.kind == "dense":
            parts = [c.weight] + ([c.bias] if c.bias is not None else [])
            want = torch.cat(
                [
                    torch.zeros_like(fm.params[n]).reshape(c.d_out, -1)
                    if g[n] is None
                    else g[n].reshape(c.d_out, -1)
                    for n in parts
                ],
                dim=1,
            ).reshape(-1)
        else:
            parts = [c.weight] + ([c.bias] if c.bias is not None else [])
            want = torch.cat(
                [
                    torch.zeros_like(fm.params[n]).reshape(-1) if g[n] is None else g[n].reshape(-1)
                    for n in parts
                ]
            )
        scale = float(want.norm()) + float(assembled.norm())
        if float((assembled - want).norm()) <= 1e3 * eps * scale:
            kept.append(c)
    return kept


def layerwise_plan(fm: FunctionalModel, x: torch.Tensor) -> LayerwisePlan | None:
    """The layers taken from signals on inputs like ``x``, or None if there are none.

    Excluded (their parameters go to the Jacobian blocks): a layer whose weight or bias
    another slot shares (tied weights), a layer called other than once per forward, a
    layer whose weight is also read outside its call (:func:`_verified`, on ``x[:1]``).
    """
    if fm.batched:
        return None
    model = fm.model
    name_of = {id(p): n for n, p in fm.model.named_parameters() if p.requires_grad}
    slots = Counter(id(p) for _, p in model.named_parameters(remove_duplicate=False))
    candidates = []
    for m in model.modules():
        if not _supported(m) or slots[id(m.weight)] != 1 or id(m.weight) not in name_of:
            continue
        b = m.bias
        bias = name_of.get(id(b)) if b is not None and b.requires_grad else None
        if b is not None and slots[id(b)] != 1:
            continue
        kind = "affine" if type(m) in AFFINE_TYPES else "dense"
        candidates.append(_Layer(m, name_of[id(m.weight)], bias, kind))
    layers = _verified(fm, candidates, x[:1]) if candidates else []
    if not layers:
        return None
    covered = {c.weight for c in layers} | {c.bias for c in layers if c.bias}
    rest = [n for n in fm.names if n not in covered]
    n_structured = sum(fm.params[n].numel() for n in covered)
    return LayerwisePlan(layers, rest, n_structured)


def _inputs(layer: _Layer, inp: torch.Tensor) -> torch.Tensor:
    """The layer's input at each of its S positions, (N, S, d_in) (bias column: 1)."""
    m, n = layer.module, inp.shape[0]
    if layer.kind == "affine":  # x_hat, the normalised input (N, *out)
        if isinstance(m, nn.GroupNorm):
            return F.group_norm(inp, m.num_groups, None, None, m.eps)
        if isinstance(m, nn.LayerNorm):
            return F.layer_norm(inp, m.normalized_shape, None, None, m.eps)
        return F.batch_norm(inp, m.running_mean, m.running_var, None, None, False, 0.0, m.eps)
    if isinstance(m, nn.Linear):
        h = inp.reshape(n, -1, m.in_features)
    else:
        two = isinstance(m, nn.Conv2d)
        img = inp if two else inp[:, :, None, :]

        def pair(v):
            return tuple(v) if two else (1, v[0])

        cols = F.unfold(
            img,
            pair(m.kernel_size),
            dilation=pair(m.dilation),
            padding=pair(m.padding) if two else (0, m.padding[0]),
            stride=pair(m.stride),
        )
        h = cols.transpose(1, 2)
    if layer.bias is not None:
        h = torch.cat([h, torch.ones_like(h[..., :1])], dim=-1)
    return h


def _signals(layer: _Layer, d: torch.Tensor) -> torch.Tensor:
    """(N, k, 1, *out_shape) signals -> (N, k, S, d_out) ((N, k, *out) for affine)."""
    n, k = d.shape[:2]
    if layer.kind == "affine":
        return d.reshape(n, k, *layer.out_shape)
    if isinstance(layer.module, nn.Linear):
        return d.reshape(n, k, -1, layer.d_out)
    return d.reshape(n, k, layer.d_out, -1).transpose(2, 3)


def _grads(layer: _Layer, h: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Per-example gradients (N, k, n_params) of the layer's weight (and bias)."""
    n, k = d.shape[:2]
    if layer.kind == "dense":
        return torch.einsum("aosc,asi->aoci", d, h).flatten(2)
    size = layer.module.weight.numel()
    if isinstance(layer.module, nn.LayerNorm):  # parameters over the trailing dims
        g = (d * h[:, None]).reshape(n, k, -1, size).sum(2)
        b = d.reshape(n, k, -1, size).sum(2)
    else:  # one parameter per channel, dim 1 of the output
        g = (d * h[:, None]).reshape(n, k, size, -1).sum(-1)
        b = d.reshape(n, k, size, -1).sum(-1)
    return torch.cat([g, b], dim=2) if layer.bias is not None else g


def _mode(layer: _Layer, n1: int, n2: int, k: int, output: str, item: int, budget: float):
    if layer.kind == "affine":
        return "grad"
    kk = k * k if output == "full" else k
    s, di, do = layer.positions, layer.d_in, layer.d_out
    gram = n1 * n2 * s * s * (kk * do + di)
    grads = (n1 + n2) * k * s * do * di + n1 * n2 * kk * do * di
    fits = n1 * n2 * s * s * (kk + 1) * item <= budget / 4
    return "gram" if gram < grads and fits else "grad"


def _batched_signals(fm, plan, x):
    """{layer: (h, delta)} by k backward passes of the batched map (no vmap): for a
    per-example model, d (sum_b f_o(x_b)) / d z_a = d f_o(x_a) / d z_a."""
    layers = plan.layers
    eps = {
        id(c.module): torch.zeros(
            x.shape[0], *c.out_shape, dtype=fm.dtype, device=fm.device, requires_grad=True
        )
        for c in layers
    }
    inputs: dict[int, torch.Tensor] = {}

    def hook(m, args, out):
        inputs[id(m)] = args[0].detach()
        return out + eps[id(m)]

    hooks = [c.module.register_forward_hook(hook) for c in layers]
    leaves = list(eps.values())
    try:
        with torch.enable_grad():
            y = fm(fm.params, x)
            k = y.shape[1]
            d = [t.new_zeros(t.shape[0], k, *t.shape[1:]) for t in leaves]
            for o in range(k):
                grads = torch.autograd.grad(
                    y[:, o].sum(), leaves, retain_graph=o < k - 1, allow_unused=True
                )
                for di, g in zip(d, grads, strict=True):
                    if g is not None:
                        di[:, o] = g
    finally:
        for h in hooks:
            h.remove()
    return {
        id(c.module): (_inputs(c, inputs[id(c.module)]), _signals(c, di[:, :, None]))
        for c, di in zip(layers, d, strict=True)
    }


def _features(fm, plan, x, chunk):
    """Per example: rest-parameter Jacobian (N, k, P_rest), {layer: (h, delta)}."""
    if not plan.rest:
        return None, _batched_signals(fm, plan, x)
    layers = plan.layers
    state: dict[str, Any] = {"eps": None}

    def hook(m, _args, out):
        eps = state["eps"]
        return None if eps is None else out + eps[id(m)]

    hooks = [c.module.register_forward_hook(hook) for c in layers]
    fixed = {n: t for n, t in fm.params.items() if n not in plan.rest}
    rest = {n: fm.params[n] for n in plan.rest}

    def f(r, eps, xi):
        state["eps"] = eps
        try:
            return fm({**fixed, **r}, xi[None])[0]
        finally:
            state["eps"] = None

    jac = vmap(jacrev(f, argnums=(0, 1)), in_dims=(None, 0, 0))
    seen = _record(fm, [c.module for c in layers], x)  # inputs of the whole batch
    try:
        jr, js = [], {id(c.module): [] for c in layers}
        for i in range(0, x.shape[0], chunk):
            xc = x[i : i + chunk]
            eps = {
                id(c.module): torch.zeros(
                    len(xc), 1, *c.out_shape, dtype=fm.dtype, device=fm.device
                )
                for c in layers
            }
            j_rest, j_eps = jac(rest, eps, xc)
            if plan.rest:
                jr.append(torch.cat([j_rest[n].flatten(2) for n in plan.rest], dim=2))
            for key, t in j_eps.items():
                js[key].append(t)
    finally:
        for h in hooks:
            h.remove()
    j_rest = torch.cat(jr) if jr else None
    parts = {
        id(c.module): (_inputs(c, seen[id(c.module)][0]), _signals(c, torch.cat(js[id(c.module)])))
        for c in layers
    }
    return j_rest, parts


def _contract(j1, j2, output):
    a, k, p = j1.shape
    b = j2.shape[0]
    if output == "full":
        return (j1.reshape(a * k, p) @ j2.reshape(b * k, p).T).reshape(a, k, b, k).transpose(1, 2)
    return (j1.reshape(a, k * p) @ j2.reshape(b, k * p).T) / k


def _gram(h1, d1, h2, d2, output):
    hg = torch.einsum("asi,bti->abst", h1, h2)
    if h1.shape[1] == 1:  # one position: a product of two Grams
        if output == "full":
            gram = torch.einsum("aoc,bpc->abop", d1[:, :, 0], d2[:, :, 0])
            return gram.mul_(hg[:, :, 0, 0, None, None])  # in place: one (N1, N2, k, k)
        k = d1.shape[1]
        return (
            (d1[:, :, 0].reshape(len(d1), -1) @ d2[:, :, 0].reshape(len(d2), -1).T)
            * hg[..., 0, 0]
            / k
        )
    if output == "full":
        return torch.einsum("aosc,bptc,abst->abop", d1, d2, hg)
    return torch.einsum("aosc,botc,abst->ab", d1, d2, hg) / d1.shape[1]


def layerwise_ntk(
    fm: FunctionalModel,
    plan: LayerwisePlan,
    x1: torch.Tensor,
    x2: torch.Tensor | None,
    output: str,
    budget: float,
    chunk: int,
) -> torch.Tensor:
    """Theta (N1, N2) (mean over outputs) or (N1, N2, k, k)."""
    j1, p1 = _features(fm, plan, x1, chunk)
    j2, p2 = (j1, p1) if x2 is None else _features(fm, plan, x2, chunk)
    n1, n2 = x1.shape[0], (x1 if x2 is None else x2).shape[0]
    k = next(iter(p1.values()))[1].shape[1]
    item = torch.empty((), dtype=fm.dtype).element_size()
    f1, f2 = [] if j1 is None else [j1], [] if j2 is None else [j2]
    total = None
    for c in plan.layers:
        (h1, d1), (h2, d2) = p1[id(c.module)], p2[id(c.module)]
        if _mode(c, n1, n2, k, output, item, budget) == "gram":
            term = _gram(h1, d1, h2, d2, output)
            total = term if total is None else total.add_(term)
            del term
        else:  # per-example gradients, (N, k, d_out d_in), contracted with the rest
            f1.append(_grads(c, h1, d1))
            if x2 is not None:
                f2.append(_grads(c, h2, d2))
    if f1:
        g1 = torch.cat(f1, dim=2) if len(f1) > 1 else f1[0]
        g2 = g1 if x2 is None else (torch.cat(f2, dim=2) if len(f2) > 1 else f2[0])
        term = _contract(g1, g2, output)
        total = term if total is None else total.add_(term)
    return total


def layerwise_bytes(
    fm: FunctionalModel, plan: LayerwisePlan, n1: int, n2: int, k: int, output: str
) -> int:
    """Bytes the layerwise path holds: Jacobian blocks of the rest (with their work
    memory), signals, inputs, per-example gradients and the output."""
    item = torch.empty((), dtype=fm.dtype).element_size()
    n = n1 + n2
    p_rest = fm.n_params - plan.n_structured
    per = 3 * k * p_rest
    for c in plan.layers:
        per += 2 * k * c.positions * c.d_out + c.positions * c.d_in + k * c.d_out * c.d_in
    out = n1 * n2 * (k * k if output == "full" else 1)
    return (n * per + out) * item
