"""RKHS tools for NNGP / NTK kernels: norms, kernel ridge, Mercer spectra.

* ``rkhs_norm``: the minimum-norm interpolant f = K(., X) K^-1 y has
  ||f||_H^2 = y^T K^-1 y (Scholkopf & Smola 2002, representer theorem).
* ``kernel_ridge``: f* = K_*n (K + lambda I)^-1 y in representer form.
* ``mercer_eigen``: eigenpairs of the integral operator estimated from data:
  mu_i ~ lambda_i(K) / N and the Nystrom extension
  phi_i(x) = sqrt(N) K(x, X) u_i / lambda_i (Williams & Seeger 2001).
* ``sphere_spectrum``: for inputs uniform on the sphere of radius sqrt(d) an
  MLP kernel depends on t = x.x' / d only, and its Mercer eigenvalues are the
  Gegenbauer coefficients mu_l = c_d int k(t) P_l(t) (1 - t^2)^((d-3)/2) dt,
  each with multiplicity N(d, l) (Smola, Ovari & Williamson 2001; Bietti &
  Mairal 2019 for the NTK's decay).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import scipy.special
import torch

from .._checks import (
    as_float_tensor,
    check_bytes,
    check_choice,
    check_finite_result,
    check_int,
    check_nonnegative,
    message,
)
from ..spec.layers import Serial
from .blocked import kernel
from .cholesky import as_fortran_copy, cholesky_in_place

__all__ = [
    "KernelRidgeSolution",
    "MercerDecomposition",
    "SphereSpectrum",
    "kernel_ridge",
    "mercer_eigen",
    "rkhs_norm",
    "sphere_spectrum",
]

__fuzz_exempt__ = {
    "sphere_spectrum:nan": "decay_exponent is NaN when fewer than two tail eigenvalues are "
    "non-zero (documented: no decay to fit)"
}


def _square(name: str, k: Any) -> np.ndarray:
    k = as_float_tensor(name, k, ndim=2, dtype=torch.float64, detach=True).numpy()
    if k.shape[0] != k.shape[1]:
        raise ValueError(message(name, "a square kernel matrix", k.shape))
    return k


def _targets(y: Any, n: int) -> np.ndarray:
    y = as_float_tensor("y", y, dtype=torch.float64, detach=True).numpy()
    if y.ndim not in (1, 2) or len(y) != n:
        raise ValueError(message("y", f"of shape ({n},) or ({n}, k)", y.shape))
    return y


def rkhs_norm(k_train_train: Any, y: Any) -> float:
    """||f||_H = sqrt(y^T K^-1 y), the RKHS norm of the interpolant of (X, y).

    Summed over output columns for (N, k) targets. The Cholesky uses the
    smallest jitter that works (see :func:`cholesky_in_place`).

    >>> round(rkhs_norm([[2.0, 0.0], [0.0, 8.0]], [2.0, 4.0]), 12)  # sqrt(4/2 + 16/8)
    2.0
    """
    k = _square("k_train_train", k_train_train)
    y = _targets(y, len(k))
    chol = cholesky_in_place(as_fortran_copy(k))
    out = float(math.sqrt(max(float((y * chol.solve(y)).sum()), 0.0)))
    check_finite_result("k_train_train, y", out)
    return out


class KernelRidgeSolution(NamedTuple):
    """f* = K_*n alpha with alpha = (K + lambda I)^-1 y.

    Attributes:
        alpha: (N,) or (N, k) representer coefficients.
        prediction: (M,) or (M, k) f* at the test inputs.
        rkhs_norm: ||f*||_H = sqrt(alpha^T K alpha).
    """

    alpha: np.ndarray
    prediction: np.ndarray
    rkhs_norm: float


def kernel_ridge(
    k_train_train: Any, k_test_train: Any, y: Any, *, ridge: float = 0.0
) -> KernelRidgeSolution:
    """Kernel ridge regression in representer form, f* = K_*n (K + ridge I)^-1 y.

    >>> sol = kernel_ridge([[1.0]], [[0.5]], [2.0], ridge=1.0)
    >>> tuple(round(float(v), 12) for v in (sol.alpha[0], sol.prediction[0], sol.rkhs_norm))
    (1.0, 0.5, 1.0)
    """
    k = _square("k_train_train", k_train_train)
    k_sn = as_float_tensor(
        "k_test_train", k_test_train, ndim=2, dtype=torch.float64, detach=True
    ).numpy()
    if k_sn.shape[1] != len(k):
        raise ValueError(message("k_test_train", f"of shape (M, {len(k)})", k_sn.shape))
    y = _targets(y, len(k))
    chol = cholesky_in_place(as_fortran_copy(k), shift=check_nonnegative("ridge", ridge))
    alpha = chol.solve(y)
    norm2 = float((alpha * (k @ alpha)).sum())
    out = KernelRidgeSolution(alpha, k_sn @ alpha, math.sqrt(max(norm2, 0.0)))
    check_finite_result("k_train_train, k_test_train, y", tuple(out))
    return out


class MercerDecomposition(NamedTuple):
    """Leading Mercer eigenpairs of a kernel, estimated on N samples.

    Attributes:
        eigenvalues: (r,) operator eigenvalues mu_i = lambda_i(K) / N, descending.
        eigenvectors: (N, r) orthonormal eigenvectors u_i of the Gram matrix.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray

    def eigenfunctions(self, k_new_train: Any) -> np.ndarray:
        """phi_i(x) = K(x, X) u_i / (sqrt(N) mu_i) at new points: (M, r) (Nystrom extension)."""
        k = as_float_tensor(
            "k_new_train", k_new_train, ndim=2, dtype=torch.float64, detach=True
        ).numpy()
        n = len(self.eigenvectors)
        if k.shape[1] != n:
            raise ValueError(message("k_new_train", f"of shape (M, {n})", k.shape))
        return k @ self.eigenvectors / (math.sqrt(n) * self.eigenvalues)


def mercer_eigen(k_train_train: Any, n_components: int | None = None) -> MercerDecomposition:
    """Mercer eigenvalues and eigenvectors of a kernel from its Gram matrix on data.

    >>> import numpy as np
    >>> dec = mercer_eigen(np.diag([4.0, 2.0]), 1)
    >>> dec.eigenvalues.tolist()  # lambda_max / N
    [2.0]
    """
    k = _square("k_train_train", k_train_train)
    n = len(k)
    r = n if n_components is None else min(check_int("n_components", n_components, minimum=1), n)
    lam, u = np.linalg.eigh((k + k.T) / 2)
    lam, u = lam[::-1][:r], u[:, ::-1][:, :r]
    return MercerDecomposition(lam / n, np.ascontiguousarray(u))


class SphereSpectrum(NamedTuple):
    """Mercer spectrum of a dot-product kernel on the sphere of radius sqrt(d).

    Attributes:
        degrees: (D + 1,) l = 0..D.
        eigenvalues: (D + 1,) mu_l (one per spherical harmonic of degree l).
        multiplicities: (D + 1,) N(d, l), the number of harmonics of degree l.
        decay_exponent: s in mu_l ~ l^-s, fitted on the non-zero eigenvalues of the
            upper half of the degrees (NaN if fewer than two are non-zero).
    """

    degrees: np.ndarray
    eigenvalues: np.ndarray
    multiplicities: np.ndarray
    decay_exponent: float


def _multiplicity(d: int, ell: np.ndarray) -> np.ndarray:
    """N(d, l) = (2l + d - 2)/l * C(l + d - 3, d - 2) (N(d, 0) = 1)."""
    ell = ell.astype(np.float64)
    out = np.ones_like(ell)
    pos = ell > 0
    le = ell[pos]
    out[pos] = (2 * le + d - 2) / le * scipy.special.comb(le + d - 3, d - 2)
    return out


def sphere_spectrum(
    spec: Serial,
    dim: int,
    max_degree: int = 20,
    *,
    kind: str = "nngp",
    n_quadrature: int | None = None,
) -> SphereSpectrum:
    """Mercer eigenvalues mu_l, l <= max_degree, of an MLP's kernel on S^(d-1)(sqrt(d)).

    mu_l = Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)) int_-1^1 k(t) P_l(t) (1-t^2)^((d-3)/2) dt,
    P_l the Gegenbauer polynomial C_l^((d-2)/2) normalised to P_l(1) = 1, by
    Gauss-Jacobi quadrature; k(t) from the spec's kernel on pairs at x.x'/d = t.
    Then sum_l N(d, l) mu_l = k(1) (the trace), a check the tests use.

    Args:
        spec: the network; dim: input dimension d >= 3.
        max_degree: highest degree l.
        kind: ``"nngp"`` or ``"ntk"``.
        n_quadrature: quadrature nodes (default 4 max_degree + 400).

    >>> from dltheory import MLP
    >>> s = sphere_spectrum(MLP(depth=1, activation="identity", c_w=1.0), dim=5, max_degree=2)
    >>> [round(float(v), 12) for v in s.eigenvalues]  # k(t) = t: mu_1 = 1/d
    [0.0, 0.2, 0.0]
    """
    check_choice("kind", kind, ("nngp", "ntk"))
    d = check_int("dim", dim, minimum=3)
    max_degree = check_int("max_degree", max_degree, minimum=0)
    q = 4 * max_degree + 400 if n_quadrature is None else check_int("n_quadrature", n_quadrature, 2)
    check_bytes("dim, max_degree, n_quadrature", 8.0 * q * (3 * d + max_degree + 8))
    a = (d - 3) / 2
    t, w = scipy.special.roots_jacobi(q, a, a)
    x0 = torch.zeros(1, d, dtype=torch.float64)
    x0[0, 0] = math.sqrt(d)
    xt = torch.zeros(q, d, dtype=torch.float64)
    xt[:, 0] = torch.from_numpy(t) * math.sqrt(d)
    xt[:, 1] = torch.from_numpy(np.sqrt(np.clip(1 - t * t, 0, None))) * math.sqrt(d)
    k = getattr(kernel(spec, x0, xt), kind).numpy()[0]
    ell = np.arange(max_degree + 1)
    lam = (d - 2) / 2
    poly = scipy.special.eval_gegenbauer(ell[:, None], lam, t[None, :])
    poly /= scipy.special.eval_gegenbauer(ell, lam, 1.0)[:, None]
    const = math.exp(math.lgamma(d / 2) - math.lgamma((d - 1) / 2)) / math.sqrt(math.pi)
    mu = const * (poly * (w * k)[None, :]).sum(1)
    scale = max(float(np.abs(mu).max()), 1e-300)
    mu[np.abs(mu) < 1e-13 * scale] = 0.0
    tail = (ell >= max(1, max_degree // 2)) & (mu > 0)
    if tail.sum() >= 2:
        slope = np.polyfit(np.log(ell[tail]), np.log(mu[tail]), 1)[0]
        decay = float(-slope)
    else:
        decay = float("nan")
    return SphereSpectrum(ell, mu, _multiplicity(d, ell), decay)
