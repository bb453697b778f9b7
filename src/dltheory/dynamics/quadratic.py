"""Quadratic models z = z0 + Phi theta + (eps/2) theta^T Psi theta and their GD.

Zhu, Liu, Radhakrishnan & Belkin (2022), "Quadratic models for understanding
neural network dynamics": the second-order Taylor expansion of a network in its
parameters at initialisation keeps the catapult that the linearisation loses.
For the N training points, Phi is the (N, P) Jacobian and Psi the stack of N
(P, P) output Hessians. A dense Psi is accepted for small models; a real network's
Psi is never formed: ``from_model`` uses Hessian-vector products of the outputs
(torch.func: forward-over-reverse and forward-over-forward).

The loss is the project's MSE, L = ||z - y||^2 / (2N). GD from theta_0 converges,
to first order in eps, to theta^F + eps theta^I with theta^F the GD limit of the
linear model and

    Phi theta^I = -q / 2,   q_i = theta^F^T Psi_i theta^F      (row-space part),
    P_perp theta^I = -(eta/N) sum_t P_perp sum_i r_i(t) Psi_i theta_t (null-space part),

r(t), theta_t the linear model's GD trajectory (the null-space part depends on
the optimiser; Zhu et al. 2022, Sec. 3, and Sec. 4 of the same paper for the
feature change Phi^E(theta_inf) - Phi^E(theta_0) = eps Psi (theta^F - theta_0) + O(eps^2)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import jacrev, jvp

from .._checks import as_float_tensor, check_bytes, check_int, check_positive, check_real, message
from ..finite.functional_model import FunctionalModel

__all__ = ["FirstOrderSolution", "QuadraticModel", "QuadraticTrajectory"]


class _DensePsi:
    """Psi given as an (N, P, P) symmetric tensor."""

    def __init__(self, psi: torch.Tensor) -> None:
        self.psi = psi

    def rows(self, theta):  # (N, P): Psi_i theta
        return self.psi @ theta


class _ModelPsi:
    """Psi of a network's outputs at theta_0, matrix-free through torch.func."""

    def __init__(self, fn, theta0: torch.Tensor) -> None:
        self.fn, self.theta0 = fn, theta0

    def rows(self, theta):  # (N, P): d/ds J(theta_0 + s theta), forward-over-reverse
        return jvp(jacrev(self.fn), (self.theta0,), (theta,))[1]


@dataclass(frozen=True)
class QuadraticTrajectory:
    """GD on a quadratic model.

    Attributes:
        theta: final parameters (displacement from the expansion point), shape (P,).
        loss: training loss ||z - y||^2 / (2N) at steps 0..T, shape (T + 1,).
        ntk_max: largest eigenvalue of the NTK (J J^T) at steps 0..T, shape (T + 1,).
        diverged: whether the loss became non-finite or exceeded 1e30 times its start.
    """

    theta: torch.Tensor
    loss: torch.Tensor
    ntk_max: torch.Tensor
    diverged: bool


@dataclass(frozen=True)
class FirstOrderSolution:
    """The GD limit of a quadratic model to first order in eps.

    Attributes:
        theta_f: the linear model's GD limit theta^F, shape (P,).
        theta_i: the first-order correction theta^I, shape (P,).
        theta: theta^F + eps theta^I.
        feature_change: eps Psi_i (theta^F - theta_0), the first-order change of the
            tangent features on the training points, shape (N, P).
    """

    theta_f: torch.Tensor
    theta_i: torch.Tensor
    theta: torch.Tensor
    feature_change: torch.Tensor


class QuadraticModel:
    """z(theta) = z0 + Phi theta + (eps/2) theta^T Psi theta on N training points.

    Args:
        phi: (N, P) features (the Jacobian at the expansion point).
        psi: (N, P, P) symmetric second-order features.
        eps: the quadratic term's scale (finite, may be 0: the linear model).
        z0: (N,) outputs at theta = 0 (default zeros).

    >>> import torch
    >>> qm = QuadraticModel(torch.eye(2, dtype=torch.float64),
    ...                     torch.stack([torch.eye(2), -torch.eye(2)]).double(), eps=0.5)
    >>> qm.outputs(torch.tensor([1.0, 2.0], dtype=torch.float64)).tolist()  # z_1 = 1 + 1.25
    [2.25, 0.75]
    """

    def __init__(self, phi, psi, eps: float = 1.0, z0=None) -> None:
        phi = as_float_tensor("phi", phi, ndim=2, dtype=torch.float64)
        if isinstance(psi, _DensePsi | _ModelPsi):
            self._psi = psi
        else:
            psi = as_float_tensor("psi", psi, ndim=3, dtype=torch.float64)
            n, p = phi.shape
            if psi.shape != (n, p, p):
                raise ValueError(
                    message("psi", f"of shape (N, P, P) = ({n}, {p}, {p})", tuple(psi.shape))
                )
            if not torch.allclose(psi, psi.transpose(1, 2), rtol=1e-10, atol=1e-12):
                raise ValueError(message("psi", "symmetric in its last two axes", "asymmetric"))
            self._psi = _DensePsi(psi)
        self.phi = phi
        self.eps = check_real("eps", eps)
        n = phi.shape[0]
        if z0 is None:
            z0 = torch.zeros(n, dtype=torch.float64)
        z0 = as_float_tensor("z0", z0, ndim=1, dtype=torch.float64)
        if z0.shape[0] != n:
            raise ValueError(message("z0", f"of length N = {n}", tuple(z0.shape)))
        self.z0 = z0

    @classmethod
    def from_model(cls, model: nn.Module, x, eps: float = 1.0) -> QuadraticModel:
        """The second-order Taylor expansion of ``model`` at its current parameters.

        z(theta) = f(x; theta_0) + J theta + (eps/2) theta^T H theta, theta the
        displacement theta - theta_0 (all parameters, flattened in
        ``named_parameters`` order); eps = 1 is the exact expansion. Phi = J is
        formed (N x P); Psi is used only through Hessian-vector products.

        Args:
            model: a module with one output per input row (output shape (N,) or (N, 1)),
                never modified (BatchNorm in train mode: the batched map, with the
                batch's statistics; Dropout in train mode refused).
            x: batch-first inputs of any shape and dtype (integer tokens stay integer).
            eps: scale of the second-order term.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(message("model", "a torch.nn.Module", type(model).__name__))
        fm = FunctionalModel(model)
        checked = fm.inputs("x", x)
        fm.outputs("x", checked)  # a clear error for inputs the model refuses
        if checked.is_floating_point():  # the caller's values, not their model-dtype copy
            x = torch.as_tensor(np.asarray(x) if isinstance(x, list | tuple) else x)
            x = x.detach().to(device=checked.device, dtype=torch.float64)
        else:
            x = checked
        # the expansion in float64, whatever the model's dtype (buffers cast alike)
        fm.buffers = {
            n: b.to(torch.float64) if b is not None and b.is_floating_point() else b
            for n, b in fm.buffers.items()
        }
        theta0 = fm.flat().to(torch.float64)

        def fn(flat):
            return fm(fm.unflatten(flat), x).reshape(-1)

        with torch.no_grad():
            out = fn(theta0)
        if out.shape[0] != x.shape[0]:
            raise ValueError(
                message(
                    "model",
                    "a module with one output per input row",
                    f"output shape {tuple(out.shape)} for {x.shape[0]} inputs",
                )
            )
        phi = jacrev(fn)(theta0)
        return cls(phi, _ModelPsi(fn, theta0), eps=eps, z0=out.detach())

    @property
    def n_points(self) -> int:
        """N, the number of training points."""
        return self.phi.shape[0]

    @property
    def n_params(self) -> int:
        """P, the number of parameters."""
        return self.phi.shape[1]

    def _theta(self, theta) -> torch.Tensor:
        theta = as_float_tensor("theta", theta, ndim=1, dtype=torch.float64)
        if theta.shape[0] != self.n_params:
            raise ValueError(message("theta", f"of length P = {self.n_params}", theta.shape[0]))
        return theta

    def _y(self, y) -> torch.Tensor:
        y = as_float_tensor("y", y, dtype=torch.float64).reshape(-1)
        if y.shape[0] != self.n_points:
            raise ValueError(message("y", f"of length N = {self.n_points}", y.shape[0]))
        return y

    def _state(self, theta, y):
        """(residual, tangent features) at theta: one Psi product, shared by both."""
        rows = self._psi.rows(theta)
        z = self.z0 + self.phi @ theta + 0.5 * self.eps * (rows @ theta)
        return z - y, self.phi + self.eps * rows

    def outputs(self, theta) -> torch.Tensor:
        """z(theta), shape (N,)."""
        theta = self._theta(theta)
        return _finite("theta", self._state(theta, 0.0)[0])

    def features(self, theta) -> torch.Tensor:
        """Tangent features dz/dtheta = Phi + eps Psi theta, shape (N, P)."""
        theta = self._theta(theta)
        return _finite("theta", self.phi + self.eps * self._psi.rows(theta))

    def ntk(self, theta) -> torch.Tensor:
        """The model's NTK at theta, features @ features^T, shape (N, N)."""
        j = self.features(theta)
        return _finite("theta", j @ j.T)

    def gradient(self, theta, y) -> torch.Tensor:
        """grad of ||z - y||^2 / (2N): (Phi + eps Psi theta)^T r / N."""
        r, j = self._state(self._theta(theta), self._y(y))
        return _finite("theta or y", j.T @ r / self.n_points)

    def gradient_descent(
        self, y, lr: float, steps: int, theta0=None, track_ntk: bool = False
    ) -> QuadraticTrajectory:
        """Full-batch GD theta <- theta - lr grad L from theta0 (default 0).

        ``track_ntk`` records lambda_max(J J^T) at every step (an N x N eigenproblem).
        Divergence (non-finite loss, or 1e30 times the initial loss) ends the run.
        """
        y = self._y(y)
        lr = check_positive("lr", lr)
        steps = check_int("steps", steps, minimum=1)
        check_bytes("steps", 16.0 * (steps + 1), fix="Use fewer steps")
        theta = torch.zeros(self.n_params, dtype=torch.float64) if theta0 is None else theta0
        theta = self._theta(theta).clone()
        n = self.n_points
        losses, tops, diverged = [], [], False
        for t in range(steps + 1):
            r, j = self._state(theta, y)
            loss = float(r @ r) / (2 * n)
            if t == 0:
                _finite("y or theta0", torch.tensor(loss))  # diverged before the first step
            losses.append(loss)
            if track_ntk:
                tops.append(float(torch.linalg.eigvalsh(j @ j.T)[-1]))
            if not torch.isfinite(r).all() or loss > 1e30 * max(losses[0], 1e-300):
                diverged = True
                break
            if t < steps:
                theta = theta - (lr / n) * (j.T @ r)
        return QuadraticTrajectory(
            theta=theta,
            loss=torch.tensor(losses, dtype=torch.float64),
            ntk_max=torch.tensor(tops, dtype=torch.float64),
            diverged=diverged,
        )

    def first_order_solution(
        self, y, lr: float, theta0=None, max_steps: int = 100_000
    ) -> FirstOrderSolution:
        """theta^F + eps theta^I, the GD limit to first order in eps (module docstring).

        Needs N <= P and Phi of full row rank (the linear model interpolates) and
        lr < 2N / lambda_max(Phi Phi^T) (linear GD converges).
        """
        y = self._y(y)
        lr = check_positive("lr", lr)
        max_steps = check_int("max_steps", max_steps, minimum=1)
        theta0 = torch.zeros(self.n_params) if theta0 is None else theta0
        theta0 = self._theta(theta0)
        n, phi = self.n_points, self.phi
        u, s, vh = torch.linalg.svd(phi, full_matrices=False)
        if n > self.n_params or s[-1] <= s[0] * 1e-10:
            raise ValueError(
                message("phi", "of full row rank with N <= P (the linear model interpolates)", s)
            )
        top = float(s[0] ** 2)
        if lr >= 2 * n / top:
            raise ValueError(message("lr", f"< 2N / lambda_max(Phi Phi^T) = {2 * n / top:.6g}", lr))
        # linear GD's slowest mode contracts by (1 - lr s_min^2 / N) per step and must fall
        # by 1e15 (ln 1e15 = 34.5) when the residual has a component along it: refuse,
        # before looping, a run that would need 10x max_steps (the factor leaves room for
        # residuals orthogonal to the slowest mode, which the loop then finds faster)
        rate = lr * float(s[-1]) ** 2 / n
        if 34.6 / -math.log1p(-min(rate, 0.5)) > 10 * max_steps:
            raise ValueError(
                message(
                    "lr",
                    f"large enough for linear GD to converge in max_steps = {max_steps} steps "
                    f"(about {34.6 / max(rate, 1e-300):.3g} needed)",
                    lr,
                )
            )
        pinv = vh.T @ torch.diag(1 / s) @ u.T  # Phi^+, (P, N)
        theta_f = theta0 + pinv @ (y - self.z0 - phi @ theta0)
        row_part = -0.5 * (pinv @ (self._psi.rows(theta_f) @ theta_f))
        # null-space part: sum the linear trajectory's eps-force projected off the row space
        theta, acc = theta0.clone(), torch.zeros_like(theta0)
        r0 = float((self.z0 + phi @ theta0 - y).norm())
        for _ in range(max_steps):
            r = self.z0 + phi @ theta - y
            if float(r.norm()) <= 1e-15 * max(r0, 1e-300):
                break
            acc += self._psi.rows(theta).T @ r
            theta = theta - (lr / n) * (phi.T @ r)
        else:
            raise ValueError(
                message("max_steps", "enough steps for linear GD to converge", max_steps)
            )
        acc = -(lr / n) * acc
        null_part = acc - vh.T @ (vh @ acc)
        theta_i = row_part + null_part
        _finite("y", theta_f + self.eps * theta_i)
        return FirstOrderSolution(
            theta_f=theta_f,
            theta_i=theta_i,
            theta=theta_f + self.eps * theta_i,
            feature_change=self.eps * self._psi.rows(theta_f - theta0),
        )


def _finite(name: str, value: torch.Tensor) -> torch.Tensor:
    """``value`` if finite; else a one-line error: the expansion overflowed at these inputs."""
    if not bool(torch.isfinite(value).all()):
        raise ValueError(
            message(name, "small enough for the quadratic expansion to stay finite", "overflow")
        )
    return value
