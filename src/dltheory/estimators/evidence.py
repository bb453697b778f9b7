"""Hyperparameters of the NNGP / NTK estimators by maximum evidence (type-II likelihood).

The targets are modelled as a GP with the network's kernel plus noise,
y ~ N(0, K(c_w, c_b, depth) + noise W^-1) (W: sample weights), and
log p(y) = -y^T K_y^-1 y / 2 - log det K_y / 2 - N log(2 pi) / 2 per output column
(Rasmussen & Williams 2006, Eq. 5.8) is maximised over (log c_w, log c_b,
log noise) by L-BFGS-B, for every depth of a small grid; the best evidence wins
(their Sec. 5.4.1). The gradient is exact: the kernel recursion is written in
torch tensors of (c_w, c_b) and differentiated by autograd, together with the
Cholesky. Activations whose Gaussian maps need quadrature (and the NTK in
standard parametrisation) use central differences of the library's kernel for
dK/dc instead (relative step 1e-5, error ~1e-10).

With ``ard=True`` the input Gram is sum_i v_i x_i x'_i / n_0 with one variance
v_i per input feature (the NNGP's analogue of automatic relevance determination,
Neal 1996 Sec. 2.1.3; MacKay 1994), and the log v_i are optimised with the rest:
the gradient flows through the Gram, dL/dv_i = x_i^T (dL/dG) x_i / n_0.

For ReLU the recursion is written in correlations, K_ab = sqrt(q_a q_b) J(rho_ab)
with J(rho) = (sqrt(1 - rho^2) + (pi - arccos rho) rho) / (2 pi) (Cho & Saul
2009), and J is given its exact derivative (pi - arccos rho) / (2 pi), finite up
to rho = 1, so the diagonal needs no special case: about a tenth of the generic
path's operations per evaluation.

Integer sample weights are equivalent to repeated samples: w copies of (x, y)
give the same evidence as one copy with noise / w, up to the term
-((w - 1) log(2 pi noise) + log w) / 2 per column, which is added.

For the NTK, Theta is used as the GP covariance (the converged mean
Theta_*n (Theta + noise I)^-1 y is that GP's posterior mean).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import numpy as np
import scipy.linalg
import scipy.optimize
import torch
from sklearn.exceptions import ConvergenceWarning

from ..parallel import torch_threads
from ..spec.mlp import MLP

__all__ = ["BOUNDS", "HyperFit", "learn_hyperparameters", "loo_latent", "warn_on_bounds"]

# log-space bounds of (c_w, c_b, noise, per-feature input variances); noise is
# relative to mean(y^2).
BOUNDS = {
    "c_w": (1e-3, 1e3),
    "c_b": (1e-6, 1e3),
    "noise": (1e-6, 10.0),
    "feature_variances": (1e-5, 1e2),
}
_RHO_MAX = 1.0 - 1e-10  # off-diagonal correlations clamped here (the maps' sqrt(1 - rho^2))
_FD_STEP = 1e-5


class HyperFit(NamedTuple):
    """Result of :func:`learn_hyperparameters`.

    Attributes:
        depth, c_w, c_b, noise: the hyperparameters of the highest evidence.
        log_marginal_likelihood: log p(y | X) there (summed over output columns).
        on_bound: names of the parameters that ended on a bound.
        by_depth: {depth: log p} of the best optimum found at every depth tried.
        feature_variances: (n_0,) learned input variances v_i (``ard=True``), else None.
    """

    depth: int
    c_w: float
    c_b: float
    noise: float
    log_marginal_likelihood: float
    on_bound: tuple[str, ...]
    by_depth: dict[int, float]
    feature_variances: np.ndarray | None = None


class _ArcCos1(torch.autograd.Function):
    """J(rho) = (sqrt(1 - rho^2) + (pi - arccos rho) rho) / (2 pi);
    J'  = (pi - arccos rho) / (2 pi)."""

    @staticmethod
    def forward(ctx, rho):
        theta = torch.arccos(rho)
        ctx.save_for_backward(theta)
        sin = torch.sqrt(torch.clamp_min(1.0 - rho * rho, 0.0))
        return torch.addcmul(sin, math.pi - theta, rho).mul_(1 / (2 * math.pi))

    @staticmethod
    def backward(ctx, grad):
        (theta,) = ctx.saved_tensors
        return grad * (math.pi - theta) / (2 * math.pi)


def _relu_kernel(depth: int, kind: str, c_w, c_b, gram, diag) -> torch.Tensor:
    """``_torch_kernel`` for ReLU in correlations (module docstring): the same values."""
    eye = torch.eye(len(gram), dtype=torch.bool, device=gram.device)
    nngp, q, ntk = gram, diag, torch.zeros_like(gram)
    for _ in range(depth):
        if kind == "ntk":
            ntk = c_w * ntk + c_w * nngp + c_b
        nngp, q = c_w * nngp + c_b, c_w * q + c_b
        root = torch.sqrt(q)
        outer = root[:, None] * root[None, :]
        rho = torch.clamp(nngp / outer, -1.0, 1.0)
        if kind == "ntk":  # E[s' s'] = (pi - theta) / (2 pi); 1/2 on the diagonal
            theta = torch.arccos(torch.clamp(rho, -_RHO_MAX, _RHO_MAX))
            ntk = ntk * torch.where(eye, 0.5, (math.pi - theta) / (2 * math.pi))
        nngp, q = outer * _ArcCos1.apply(rho), q / 2
    if kind == "ntk":
        return c_w * ntk + c_w * nngp + c_b
    return c_w * nngp + c_b


def _torch_kernel(act, depth: int, kind: str, c_w, c_b, gram, diag) -> torch.Tensor:
    """K (or Theta, NTK parametrisation) of ``MLP(depth, act, c_w, c_b)`` on the input Gram.

    Off-diagonal pairs use the activation's 2-D maps with the correlation clamped
    to |rho| <= 1 - 1e-10; the diagonal uses its 1-D moments (exact, finite gradients).
    """
    eye = torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    off = 1.0 - eye
    nngp, ntk = gram, torch.zeros_like(gram)
    d_nngp, d_ntk = diag, torch.zeros_like(diag)
    for _ in range(depth):
        ntk, d_ntk = c_w * ntk + c_w * nngp + c_b, c_w * d_ntk + c_w * d_nngp + c_b
        nngp, d_nngp = c_w * nngp + c_b, c_w * d_nngp + c_b
        scale = torch.sqrt(d_nngp[:, None] * d_nngp[None, :])
        rho = torch.clamp(nngp / scale, -_RHO_MAX, _RHO_MAX)
        k12 = rho * scale
        k11, k22 = d_nngp[:, None].expand_as(k12), d_nngp[None, :].expand_as(k12)
        if kind == "ntk":
            ntk = off * act.ntk_map(k11, k12, k22) * ntk + torch.diag(
                act.derivative_second_moment(d_nngp) * d_ntk
            )
            d_ntk = act.derivative_second_moment(d_nngp) * d_ntk
        nngp = off * act.nngp_map(k11, k12, k22) + torch.diag(act.second_moment(d_nngp))
        d_nngp = act.second_moment(d_nngp)
    if kind == "ntk":
        return c_w * ntk + c_w * nngp + c_b
    return c_w * nngp + c_b


def _lml(k, y, noise, weights) -> torch.Tensor:
    """log p(y) for K_y = K + noise W^-1 (torch, differentiable), weights as repeats."""
    n, cols = y.shape
    ky = k + torch.diag(noise / weights)
    chol, info = torch.linalg.cholesky_ex(ky)
    if int(info) != 0:
        return torch.tensor(-math.inf, dtype=k.dtype)
    a = torch.cholesky_solve(y, chol)
    value = -0.5 * (y * a).sum() - cols * torch.log(torch.diagonal(chol)).sum()
    value = value - 0.5 * cols * n * math.log(2 * math.pi)
    # w copies of one sample: the (w - 1) extra noise factors of repeated data.
    repeats = (weights - 1.0).sum() * torch.log(2 * math.pi * noise) + torch.log(weights).sum()
    return value - 0.5 * cols * repeats


class _Objective:
    """-log p and its gradient in (log c_w, log c_b, log noise[, log v_1..v_n0]) at one depth."""

    def __init__(
        self, x, y, weights, act, depth, kind, parametrization, width, activation, ard=False
    ):
        self.y = torch.from_numpy(y)
        self.w = torch.from_numpy(weights)
        self.x = torch.from_numpy(x)
        self.gram = self.x @ self.x.T / x.shape[1]
        self.diag = (self.x * self.x).sum(1) / x.shape[1]
        self.act, self.depth, self.kind, self.ard = act, depth, kind, ard
        self.spec_args = (activation, parametrization, width)
        self.autograd = act.has_closed_form and (kind == "nngp" or parametrization == "ntk")
        self.relu = self.autograd and act.name == "relu"

    def _library_kernel(self, c_w: float, c_b: float, v=None) -> torch.Tensor:
        activation, parametrization, width = self.spec_args
        spec = MLP(
            self.depth, activation, c_w=c_w, c_b=c_b, width=width, parametrization=parametrization
        )
        x = self.x if v is None else self.x * torch.sqrt(torch.as_tensor(v))
        return getattr(spec.kernel(x), self.kind)

    def _inputs(self, t):
        """The input Gram and its diagonal (weighted by exp(t[3:]) with ``ard``)."""
        if not self.ard:
            return self.gram, self.diag
        v = torch.exp(t[3:])
        return (self.x * v) @ self.x.T / self.x.shape[1], (self.x * self.x) @ v / self.x.shape[1]

    def __call__(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        c_w, c_b, noise = torch.exp(t[:3])
        if self.autograd:
            gram, diag = self._inputs(t)
            kernel = _relu_kernel if self.relu else functools.partial(_torch_kernel, self.act)
            k = kernel(self.depth, self.kind, c_w, c_b, gram, diag)
        else:  # K(p0) + sum_i (p_i - p0_i) dK/dp_i: exact value and gradient at p0
            p0 = np.exp(p)
            k = self._library_kernel(p0[0], p0[1], p0[3:] if self.ard else None)
            for i in [0, 1, *range(3, len(p))]:
                up, down = p0.copy(), p0.copy()
                up[i] *= math.exp(_FD_STEP)
                down[i] *= math.exp(-_FD_STEP)
                vu, vd = (up[3:], down[3:]) if self.ard else (None, None)
                dk = (
                    self._library_kernel(up[0], up[1], vu)
                    - self._library_kernel(down[0], down[1], vd)
                ) / (2 * _FD_STEP)
                k = k + (t[i] - float(p[i])) * dk
        value = _lml(k, self.y, noise, self.w)
        if not torch.isfinite(value):
            return math.inf, np.zeros(len(p))
        (grad,) = torch.autograd.grad(value, t)
        return -float(value.detach()), -grad.numpy()


def learn_hyperparameters(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray | None,
    *,
    activation,
    depths: tuple[int, ...],
    kind: str,
    parametrization: str,
    width: int | None,
    start: tuple[float, float, float],
    n_restarts: int,
    rng: np.random.RandomState,
    max_iter: int = 200,
    ard: bool = False,
) -> HyperFit:
    """Maximise the evidence over (c_w, c_b, noise) at each depth; keep the best.

    Args:
        x: (N, n_0) inputs; y: (N, k) targets; weights: (N,) sample weights > 0 or None.
        activation: name or Activation; depths: the depth grid.
        kind: ``"nngp"`` or ``"ntk"``; parametrization, width: as in ``MLP``.
        start: first (c_w, c_b, noise) (clipped into :data:`BOUNDS`).
        n_restarts: further starts, log-uniform within the bounds (from ``rng``).
        rng: a NumPy RandomState.
        max_iter: L-BFGS-B iterations per start.
        ard: also learn one input variance per feature (start 1, bounds
            ``BOUNDS["feature_variances"]``).
    """
    act = MLP(1, activation).layers[1].activation
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    scale = float(np.average((y * y).mean(1), weights=w)) or 1.0
    bounds = [BOUNDS["c_w"], BOUNDS["c_b"], tuple(scale * b for b in BOUNDS["noise"])]
    n_features = x.shape[1]
    if ard:
        bounds += [BOUNDS["feature_variances"]] * n_features
        start = (*start, *([1.0] * n_features))
    log_bounds = np.log(np.array(bounds))
    first = np.clip(np.log(start), log_bounds[:, 0], log_bounds[:, 1])
    starts = [first] + [rng.uniform(log_bounds[:, 0], log_bounds[:, 1]) for _ in range(n_restarts)]
    best, by_depth = None, {}
    for depth in depths:
        objective = _Objective(x, y, w, act, depth, kind, parametrization, width, activation,
                               ard)  # fmt: skip
        for p0 in starts:
            # One torch thread: the recursion is many small element-wise operations,
            # which several threads only slow down (and numba may have raised the count).
            with warnings.catch_warnings(), torch_threads(1):
                warnings.simplefilter("ignore", UserWarning)
                res = scipy.optimize.minimize(
                    objective, p0, jac=True, method="L-BFGS-B", bounds=log_bounds,
                    options={"maxiter": max_iter},
                )  # fmt: skip
            if not math.isfinite(res.fun):
                continue
            if -res.fun > by_depth.get(depth, -math.inf):
                by_depth[depth] = float(-res.fun)
            if best is None or -res.fun > best[0]:
                best = (float(-res.fun), depth, res.x)
    if best is None:
        raise ValueError(
            "The evidence could not be evaluated at any start (K + noise I not positive "
            "definite). Pass optimizer=None with a larger alpha."
        )
    lml, depth, p = best
    names = ("c_w", "c_b", "noise", *(f"feature_variances[{i}]" for i in range(len(p) - 3)))
    span = log_bounds[:, 1] - log_bounds[:, 0]
    near = np.minimum(p - log_bounds[:, 0], log_bounds[:, 1] - p) <= 1e-3 * span
    on_bound = tuple(n for n, hit in zip(names, near, strict=True) if hit)
    c_w, c_b, noise = map(float, np.exp(p[:3]))
    variances = np.exp(p[3:]) if ard else None
    return HyperFit(depth, c_w, c_b, noise, lml, on_bound, by_depth, variances)


def warn_on_bounds(fit: HyperFit, owner: str) -> None:
    """A ConvergenceWarning naming each hyperparameter that ended on a bound."""
    for name in fit.on_bound:
        key = name.split("[")[0]
        if key == "feature_variances":
            value = float(fit.feature_variances[int(name[len(key) + 1 : -1])])
        else:
            value = {"c_w": fit.c_w, "c_b": fit.c_b, "noise": fit.noise}[name]
        warnings.warn(
            f"{owner}: the evidence optimum of {name} = {value:.3g} lies on a bound of its "
            f"search range ({key}: {BOUNDS[key]}{', times mean(y^2)' if key == 'noise' else ''}"
            "); the evidence may keep increasing beyond it.",
            ConvergenceWarning,
            stacklevel=3,
        )


def loo_latent(k: np.ndarray, y: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Leave-one-out predictive means of kernel ridge / GP regression, all at once.

    mu_-i = y_i - [K_y^-1 y]_i / [K_y^-1]_ii with K_y = K + diag(noise)
    (Rasmussen & Williams 2006, Eq. 5.12): (N, k) held-out predictions from one factor.
    """
    ky = k + np.diag(noise)
    inv = scipy.linalg.cho_solve(scipy.linalg.cho_factor(ky, lower=True), np.eye(len(k)))
    return y - (inv @ y) / np.diagonal(inv)[:, None]
