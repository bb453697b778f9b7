"""Criticality of any spec: the variance map and the susceptibilities layer by layer.

One rule per layer kind (``CRITICALITY_RULES``) maps a ``Signal``: the variance K of
the representation, its mean feature m (LayerNorm subtracts it) and the two
susceptibilities accumulated so far, chi_parallel = dK^(l)/dK^(0) along the diagonal
and chi_perp = the slope of the off-diagonal map at coincident inputs, which is also
the averaged partial Jacobian norm J^(l0,l) = E ||d h^(l) / d h^(l0)||_F^2 / n_l of
Doshi, He & Gromov (ICLR 2023, Eq. 2) at infinite width:

* Dense: K' = C_b + C_w K, both susceptibilities times C_w;
* activation: K' = E_K[s^2], chi_parallel times E_K[(s^2)'']/2, chi_perp times E_K[s'^2]
  (Roberts, Yaida & Hanin 2022, Eqs. (5.50), (5.51));
* LayerNorm: K' = V / (V + eps) with V = K - m^2: chi_parallel times eps / (V + eps)^2
  (the variance is pinned) and chi_perp times 1 / (V + eps);
* Residual gamma S + alpha F: K' = gamma^2 S(K) + alpha^2 F(K), each susceptibility
  gamma^2 chi_S + alpha^2 chi_F (for a ReLU branch (relu, Dense):
  chi = gamma^2 + alpha^2 C_w / 2; Yang & Schoenholz 2017; Hayou et al. 2021).

With gamma = 1 a block's chi_perp is >= 1: a plain residual net is never ordered; it
is critical (J^(0,L) bounded) when alpha^2 chi_F ~ 1/L ("stable ResNet", Hayou et
al. 2021: J^(0,L) -> e^(chi_F)), at alpha = 0 (SkipInit / Fixup: J = 1), and with
pre-LayerNorm branches at any initialisation: K grows linearly in depth, so
chi_perp = 1 + O(1/l) and J grows as a power of l (Doshi, He & Gromov 2023, Sec. 4).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import check_int, check_nonnegative, message
from ..spec.layers import Dense, Layer, Nonlinearity, Serial
from ..spec.normalization import LayerNorm
from ..spec.residual import Residual

__all__ = [
    "CRITICALITY_RULES",
    "Signal",
    "SpecCriticality",
    "measured_apjn",
    "spec_criticality",
]


@dataclass(frozen=True)
class Signal:
    """Variance k, mean feature m, and the susceptibilities accumulated since the start."""

    k: float
    m: float = 0.0
    chi_parallel: float = 1.0
    chi_perp: float = 1.0

    def times(self, k: float, m: float, chi_parallel: float, chi_perp: float) -> Signal:
        return Signal(k, m, self.chi_parallel * chi_parallel, self.chi_perp * chi_perp)


def _dense(layer: Dense, s: Signal) -> Signal:
    return s.times(layer.c_b + layer.c_w * s.k, 0.0, layer.c_w, layer.c_w)


def _nonlinearity(layer: Nonlinearity, s: Signal) -> Signal:
    from ..kernels.normalization import activation_mean

    act, k = layer.activation, torch.tensor(s.k, dtype=torch.float64)
    k2 = float(act.second_moment(k))
    par = 0.5 * float(act.square_second_derivative(k))
    perp = float(act.derivative_second_moment(k))
    return s.times(k2, float(activation_mean(act, k)), par, perp)


def _layer_norm(layer: LayerNorm, s: Signal) -> Signal:
    v = s.k - s.m * s.m
    return s.times(v / (v + layer.eps), 0.0, layer.eps / (v + layer.eps) ** 2, 1 / (v + layer.eps))


def _run(layers: tuple[Layer, ...], s: Signal) -> Signal:
    for layer in layers:
        s = CRITICALITY_RULES[type(layer)](layer, s)
    return s


def _residual(layer: Residual, s: Signal) -> Signal:
    start = Signal(s.k, s.m)
    skip = _run(layer.skip, start)
    branch = _run(layer.branch, start)
    g2, a2 = layer.gamma**2, layer.alpha**2
    return s.times(
        g2 * skip.k + a2 * branch.k,
        layer.gamma * skip.m,
        g2 * skip.chi_parallel + a2 * branch.chi_parallel,
        g2 * skip.chi_perp + a2 * branch.chi_perp,
    )


def _conv(layer, s: Signal) -> Signal:
    """Conv at an interior pixel of a pixel-uniform variance: K' = C_b + C_w K, like Dense."""
    return s.times(layer.c_b + layer.c_w * s.k, 0.0, layer.c_w, layer.c_w)


def _flatten(layer, s: Signal) -> Signal:
    return s


def _pooling(layer, s: Signal) -> Signal:
    raise ValueError(
        message(
            "spec",
            "made of layers whose variance map is per pixel",
            type(layer).__name__,
            "Pooling averages pixel pairs: its variance needs the pixel-pair covariance, "
            "use spec.kernel on images instead",
        )
    )


# One row per layer kind (tests check it covers dltheory.spec.LAYER_KINDS).
CRITICALITY_RULES: dict[type[Layer], Callable[[Any, Signal], Signal]] = {
    Dense: _dense,
    Nonlinearity: _nonlinearity,
    Residual: _residual,
    LayerNorm: _layer_norm,
}
try:  # the conv engine's kinds (dltheory.spec.conv)
    from ..spec.conv import AvgPool, Conv, Flatten, GlobalAvgPool

    CRITICALITY_RULES.update(
        {Conv: _conv, Flatten: _flatten, AvgPool: _pooling, GlobalAvgPool: _pooling}
    )
except ImportError:  # pragma: no cover
    pass


try:  # self-attention mixes positions: its variance map needs position pairs
    from ..spec.attention import SelfAttention

    CRITICALITY_RULES[SelfAttention] = _pooling
except ImportError:  # pragma: no cover
    pass


@dataclass(frozen=True)
class SpecCriticality:
    """Layer-by-layer criticality of a spec (see :func:`spec_criticality`).

    Attributes:
        kinds: the top-level layer kinds, in order.
        variance: (L,) K after each top-level layer.
        chi_parallel: (L,) each layer's own parallel susceptibility.
        chi_perp: (L,) each layer's own perpendicular susceptibility (Jacobian factor).
        apjn: (L,) J^(1,l): the averaged partial Jacobian norm from the first layer's
            output to layer l's output (1 at l = 1).
        phase: "critical" (|log J^(1,L)| <= 2 log L + 2: bounded or a power of the
            depth, as for pre-LN nets), "chaotic" (exponential growth) or "ordered"
            (exponential decay).
        verdict: one sentence.
    """

    kinds: tuple[str, ...]
    variance: torch.Tensor
    chi_parallel: torch.Tensor
    chi_perp: torch.Tensor
    apjn: torch.Tensor
    phase: str
    verdict: str


def spec_criticality(spec: Serial, k0: float = 1.0) -> SpecCriticality:
    """Variance, susceptibilities and APJN through the top-level layers of ``spec``.

    Args:
        spec: any ``Serial`` whose kinds have criticality rules (Dense, activations,
            Residual, LayerNorm).
        k0: the input's second moment |x|^2 / n_0.

    >>> from dltheory.spec import Dense, Nonlinearity, Residual, Serial
    >>> block = Residual((Nonlinearity("relu"), Dense(2.0)), alpha=0.125)  # alpha^2 = 1/64
    >>> c = spec_criticality(Serial(Dense(1.0), *[block] * 64, Dense(1.0)))
    >>> round(float(c.apjn[-2]), 6) == round((1 + 1 / 64) ** 64, 6), c.phase
    (True, 'critical')
    """
    if not isinstance(spec, Serial):
        raise TypeError(message("spec", "a dltheory Serial spec", type(spec).__name__))
    k0 = check_nonnegative("k0", k0)
    for layer in spec.layers:
        if type(layer) not in CRITICALITY_RULES:
            raise ValueError(
                message("spec", "made of kinds with a criticality rule", type(layer).__name__)
            )
    s = Signal(k0)
    rows = []
    for layer in spec.layers:
        new = CRITICALITY_RULES[type(layer)](layer, Signal(s.k, s.m))
        rows.append((new.k, new.chi_parallel, new.chi_perp))
        s = new
    variance, par, perp = (
        torch.tensor(col, dtype=torch.float64) for col in zip(*rows, strict=True)
    )
    apjn = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(perp[1:], 0)])
    total = float(apjn[-1])
    # Power law (at most L^2 e^2 either way) is critical; faster is exponential.
    bound = 2 * math.log(max(len(spec.layers), 1)) + 2
    log_total = math.log(total) if total > 0 else -math.inf
    if log_total > bound:
        phase = "chaotic"
        verdict = f"chaotic: the Jacobian norm grows exponentially, to {total:.3g} over the depth"
    elif log_total < -bound:
        phase = "ordered"
        verdict = f"ordered: the Jacobian norm decays exponentially, to {total:.3g} over the depth"
    else:
        phase = "critical"
        verdict = f"critical: the Jacobian norm changes at most as a power of depth ({total:.3g})"
    kinds = tuple(type(layer).__name__ for layer in spec.layers)
    return SpecCriticality(kinds, variance, par, perp, apjn, phase, verdict)


def _cut_nodes(graph) -> list:
    """The graph's cut nodes: tensors that every path from the input to the output reads.

    In topological order a node at position p is a cut when no edge jumps over it
    (from before p to after p); parameters read in forward (get_attr) are constants.
    """
    nodes = [n for n in graph.nodes if n.op != "get_attr"]
    pos = {n: i for i, n in enumerate(nodes)}
    reach, cuts = -1, []
    for i, n in enumerate(nodes):
        if 0 < i < len(nodes) - 1 and reach <= i and n.op.startswith("call"):
            cuts.append(n)
        users = [pos[u] for u in n.users if u in pos]
        reach = max(reach, *users) if users else reach
    return cuts


def _stages(net: torch.nn.Module):
    """(run(x, first=None), names): the outputs of a model's stages, by tracing.

    ``nn.Sequential``: its top-level modules. Any other module: the cut nodes of its
    ``torch.fx`` graph (each residual sum, and each op of the main path).
    ``run(x, first)`` returns the stage outputs, with the first stage's output replaced
    by ``first`` when given.
    """
    if isinstance(net, torch.nn.Sequential):
        modules = list(net)

        def run_sequential(x, first=None):
            h = modules[0](x) if first is None else first
            out = [h]
            for module in modules[1:]:
                h = module(h)
                out.append(h)
            return out

        return run_sequential
    from torch import fx

    try:
        gm = fx.symbolic_trace(net)
    except Exception as err:
        raise ValueError(
            message(
                "nets",
                "torch.nn.Sequential networks or modules whose forward torch.fx can trace",
                type(net).__name__,
                f"Tracing failed ({type(err).__name__}); data-dependent control flow cannot "
                "be traced",
            )
        ) from err
    cuts = _cut_nodes(gm.graph)
    if len(cuts) < 2:
        raise ValueError(
            message(
                "nets",
                "modules with at least two stages on their main path",
                type(net).__name__,
                "The APJN compares the first stage's output with later ones",
            )
        )

    class _Probe(fx.Interpreter):
        def __init__(self, first):
            super().__init__(gm)
            self.first, self.values = first, []

        def run_node(self, n):
            out = self.first if n is cuts[0] and self.first is not None else super().run_node(n)
            if n in cut_set:
                self.values.append(out)
            return out

    cut_set = set(cuts)

    def run_traced(x, first=None):
        probe = _Probe(first)
        probe.run(x)
        return probe.values

    return run_traced


def measured_apjn(
    nets: list[torch.nn.Module] | torch.nn.Module,
    x: torch.Tensor,
    *,
    n_probes: int = 4,
    seed: int = 0,
):
    """Measured J^(1,l) and second moments of each stage's output, with errors.

    The stages of an ``nn.Sequential`` are its top-level modules; of any other module
    whose forward ``torch.fx`` traces (a ResNet with a for-loop of blocks), the cut
    nodes of its graph: the values every path from the input passes through (each
    residual sum and each op on the main path, not the ops inside a branch).
    J^(1,l) = ||d h^(l) / d h^(1)||_F^2 / n_l per input, estimated without forming the
    Jacobian: for v ~ N(0, I), E ||J v||^2 = ||J||_F^2, and J v at every layer comes
    from one pair of forward passes from h^(1) +- eps v (central differences, float64:
    exact for piecewise-linear nets away from kinks, O(eps^2) otherwise; a plain
    forward pass avoids forward-mode autograd, whose linear rule loads torch's compiler).
    Averaged over inputs, probes and networks; the standard errors are over networks.

    Returns:
        (apjn, variance): two ``Estimate`` of shape (L,), l = 1..L (J^(1,1) = 1).
    """
    from ..finite.functional_model import FunctionalModel
    from ..finite.model_function import model_inputs
    from ..stats import Estimate

    nets = [nets] if isinstance(nets, torch.nn.Module) else list(nets)
    if len(nets) < 2 or not all(isinstance(net, torch.nn.Module) for net in nets):
        raise ValueError(
            message(
                "nets",
                "at least 2 torch.nn.Module networks (the standard errors are over nets)",
                f"{len(nets)} object(s)",
                "Sample several: [spec.sample(width, seed=s) for s in range(8)]",
            )
        )
    n_probes = check_int("n_probes", n_probes, minimum=1)
    if n_probes > 100_000:  # the probes' spread falls as 1/sqrt(n_probes): more is waste
        raise ValueError(message("n_probes", "an integer in [1, 100000]", n_probes))
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    per_net_j, per_net_k = [], []
    with torch.no_grad():
        for net in nets:
            run = _stages(net)
            xin = model_inputs("x", x, net)
            if not xin.is_floating_point():
                raise TypeError(
                    message("x", "floating inputs (the APJN is a derivative in them)", xin.dtype)
                )
            FunctionalModel(net).outputs("x", xin)  # a model that refuses x: one line
            hs = run(xin)
            h1 = hs[0]
            if len({len(per) for per in per_net_k} | {len(hs)}) != 1:
                raise ValueError(
                    message("nets", "networks of one architecture", f"{len(hs)} stages")
                )
            eps = 1e-6 * float(h1.square().mean().sqrt()) + 1e-300
            js = torch.zeros(len(hs), dtype=torch.float64)
            ks = [float(h.square().mean()) for h in hs]
            for _ in range(n_probes):
                v = torch.randn(h1.shape, generator=generator, dtype=h1.dtype)
                plus, minus = run(xin, h1 + eps * v), run(xin, h1 - eps * v)
                rows = [float(v.square().mean())]
                rows += [
                    float(((p - m) / (2 * eps)).square().mean())
                    for p, m in zip(plus[1:], minus[1:], strict=True)
                ]
                js += torch.tensor(rows, dtype=torch.float64) / n_probes
            per_net_j.append(js)
            per_net_k.append(torch.tensor(ks, dtype=torch.float64))
    return Estimate.from_samples(torch.stack(per_net_j)), Estimate.from_samples(
        torch.stack(per_net_k)
    )
