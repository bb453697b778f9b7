"""Papyan's class / cross-class / within-class decomposition of the cross-entropy GGN.

For mean cross-entropy over N samples x_i of class c (softmax p_i of the logits f_i),
the Gauss-Newton matrix is G = (1/N) sum_i J_i^T (diag p_i - p_i p_i^T) J_i, and since
diag p - p p^T = sum_c' p_c' (e_c' - p)(e_c' - p)^T,

    G = sum_{i, c'} w_{i c c'} g_{i c c'} g_{i c c'}^T,  g_{icc'} = J_i^T (e_c' - p_i),
    w_{icc'} = p_{ic'} / N

(Papyan 2019, "Measurements of three-level hierarchical structure in the outliers in
the spectrum of deepnet Hessians", Sec. 3; Papyan 2020, "Traces of class/cross-class
structure pervade deep learning spectra"). With weighted means
g_{cc'} = sum_i w_{icc'} g_{icc'} / W_{cc'} (W_{cc'} = sum_i w_{icc'}, i in class c) and
class means g_c = sum_{c' != c} W_{cc'} g_{cc'} / W_c (W_c = sum_{c' != c} W_{cc'}):

    G = G_0 + G_1 + G_2 + G_{c=c'}
    G_0 = sum_c W_c g_c g_c^T                          (class means: C outliers)
    G_1 = sum_{c != c'} W_{cc'} (g_{cc'} - g_c)(.)^T     (cross-class: C(C-1) mini-outliers)
    G_2 = sum_{i, c != c'} w_{icc'} (g_{icc'} - g_{cc'})(.)^T   (within-class: the bulk)
    G_{c=c'} = sum_i w_{icc} g_{icc} g_{icc}^T           (the true-class term)

G_0 + G_1 + G_2 is Papyan's G_{c != c'}; the c = c' term is kept separate, as in
Papyan (2019) (it vanishes as p_{ic} -> 1). Every identity above is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from .._checks import check_int, check_positive, message
from ._data import FlatParameters, prepare
from .ggn import GGNOperator
from .hessian import HessianOperator
from .lanczos import lanczos_eigenpairs

__all__ = [
    "GaussNewtonParts",
    "PapyanDecomposition",
    "gauss_newton_decomposition",
    "gauss_newton_parts",
]


class GaussNewtonParts(NamedTuple):
    """The four exact parts of the cross-entropy GGN (module docstring).

    Attributes:
        class_factor: (P, C), columns sqrt(W_c) g_c, so G_0 = A A^T.
        cross_factor: (P, C(C-1)), columns sqrt(W_cc') (g_cc' - g_c), so G_1 = B B^T.
        within: v -> G_2 v (matrix-free).
        same_class: v -> G_{c=c'} v (matrix-free).
        ggn: v -> G v (:class:`GGNOperator` with mean cross-entropy).
        cross_means: (C, C, P) g_cc'; class_means: (C, P) g_c; weights: (C, C) W_cc'.
    """

    class_factor: torch.Tensor
    cross_factor: torch.Tensor
    within: Callable[[torch.Tensor], torch.Tensor]
    same_class: Callable[[torch.Tensor], torch.Tensor]
    ggn: GGNOperator
    cross_means: torch.Tensor
    class_means: torch.Tensor
    weights: torch.Tensor


def gauss_newton_parts(model: Any, data: Any) -> GaussNewtonParts:
    """Papyan's exact parts G_0, G_1, G_2, G_{c=c'} of the cross-entropy GGN.

    Args:
        model: a classifier returning logits (n, C).
        data: ``(inputs, labels)`` or an iterable of such batches; labels are class
            indices in 0..C-1.

    Returns:
        :class:`GaussNewtonParts`; the four parts sum to the GGN of the mean
        cross-entropy exactly.

    Memory: the explicit factors hold (C^2 + C) P numbers (small models);
    :func:`gauss_newton_decomposition` needs none of them (matrix-free).

    >>> lin = torch.nn.Linear(2, 2, bias=False).double()
    >>> x = torch.eye(2, dtype=torch.float64)
    >>> parts = gauss_newton_parts(lin, (x, torch.tensor([0, 1])))
    >>> tuple(parts.class_factor.shape), tuple(parts.cross_factor.shape)
    ((4, 2), (4, 2))
    """
    flat, batches, C = _classifier(model, data)
    P = flat.dim
    n_total = sum(x.shape[0] for x, _ in batches)
    sums = torch.zeros(C, C, P, dtype=flat.dtype, device=flat.device)  # sum_i w g_icc'
    weights = torch.zeros(C, C, dtype=flat.dtype, device=flat.device)
    eye = torch.eye(C, dtype=flat.dtype, device=flat.device)
    linearised = []
    for x, y in batches:
        f = flat.output_fn(x)
        out, vjp_fn = torch.func.vjp(f, flat.theta)
        jvp_fn = _jvp(f, flat.theta)
        p = torch.softmax(out.detach(), dim=1)
        onehot = eye[y]  # (n, C)
        w = p / n_total  # w_{i c'} for sample i (its class c = y_i)
        weights += onehot.T @ w
        # Cotangent of pair (c, c'): 1[y_i = c] w_{ic'} (e_c' - p_i), shape (C, C, n, C).
        diff = eye[None, :, :] - p[:, None, :]  # (n, C', C): e_c' - p_i
        cot = onehot.T[:, None, :, None] * (w.T[None, :, :, None] * diff.permute(1, 0, 2)[None])
        g = torch.func.vmap(lambda u, fn=vjp_fn: fn(u)[0], chunk_size=C)(
            cot.reshape(C * C, *out.shape)
        )
        sums += g.reshape(C, C, P)
        linearised.append((jvp_fn, vjp_fn, p, onehot, n_total))
    safe = torch.where(weights > 0, weights, torch.ones_like(weights))
    cross_means = sums / safe[:, :, None]
    off = 1.0 - eye
    w_class = (weights * off).sum(1)  # W_c
    class_means = (sums * off[:, :, None]).sum(1) / torch.where(
        w_class > 0, w_class, torch.ones_like(w_class)
    )[:, None]
    class_factor = (w_class.sqrt()[:, None] * class_means).T
    dev = cross_means - class_means[:, None, :]
    mask = off.bool()
    cross_factor = (weights.sqrt()[:, :, None] * dev)[mask].T  # (P, C(C-1))
    ggn = GGNOperator(model, torch.nn.functional.cross_entropy, batches)

    def same_class(v: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(v)
        for jvp_fn, vjp_fn, p, onehot, n in linearised:
            r = onehot - p  # e_{y_i} - p_i
            a = (r * jvp_fn(v)).sum(1, keepdim=True)
            wt = (onehot * p).sum(1, keepdim=True) / n  # w_{i c c} = p_{i y_i} / N
            out += vjp_fn(wt * a * r)[0]
        return out

    def within(v: torch.Tensor) -> torch.Tensor:
        low_rank = class_factor @ (class_factor.T @ v) + cross_factor @ (cross_factor.T @ v)
        return ggn.matvec(v) - same_class(v) - low_rank

    return GaussNewtonParts(
        class_factor, cross_factor, within, same_class, ggn, cross_means, class_means, weights
    )


@dataclass(frozen=True)
class PapyanDecomposition:
    """Spectra of the Hessian and of Papyan's parts, and where the outliers live.

    Attributes:
        hessian_eigenvalues: (k,) top eigenvalues of the loss Hessian H.
        class_eigenvalues: (C,) spectrum of G_0 (descending).
        cross_eigenvalues: (C(C-1),) spectrum of G_1 (descending).
        within_eigenvalues: (k,) top eigenvalues of G_2.
        same_class_eigenvalues: (k,) top eigenvalues of G_{c=c'}.
        shares: part -> tr(V^T X V) / tr(V^T H V) over the top-k eigenvectors V of H,
            for X in "class", "cross", "within", "same_class" and "residual"
            (E = H - G); they sum to 1.
        class_overlap: (k,) ||P_0 v_j||^2, the part of each top eigenvector of H in
            span{g_c} (the class means).
        class_cross_overlap: (k,) the same for span{g_c, g_cc'}.
        n_matvecs: Hessian and GGN products used.
    """

    hessian_eigenvalues: torch.Tensor
    class_eigenvalues: torch.Tensor
    cross_eigenvalues: torch.Tensor
    within_eigenvalues: torch.Tensor
    same_class_eigenvalues: torch.Tensor
    shares: dict[str, float]
    class_overlap: torch.Tensor
    class_cross_overlap: torch.Tensor
    n_matvecs: int


def gauss_newton_decomposition(
    model: Any, data: Any, *, k: int | None = None, tol: float = 1e-4, seed: int = 0
) -> PapyanDecomposition:
    """Locate the Hessian's outliers with Papyan's class-mean decomposition.

    The top-k eigenvectors V of the cross-entropy loss Hessian (k = C by default)
    are compared with the parts of G: the share of the curvature tr(V^T H V) each
    part carries, and how much of each eigenvector lies in the span of the class
    means g_c (Papyan 2019: the C outliers of H are the eigenvalues of G_0).

    Args:
        model: classifier returning logits (n, C).
        data: ``(inputs, labels)`` or an iterable of batches.
        k: number of top Hessian eigenpairs (default C).
        tol: Lanczos relative residual tolerance.
        seed: Lanczos start.

    Returns:
        :class:`PapyanDecomposition`.

    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Linear(3, 2).double()
    >>> x = torch.randn(20, 3, dtype=torch.float64)
    >>> d = gauss_newton_decomposition(net, (x, (x[:, 0] > 0).long()), k=2)
    >>> round(sum(d.shares.values()), 12)
    1.0
    """
    tol = check_positive("tol", tol)
    factors = _Factors(model, data)
    C, P = factors.n_classes, factors.dim
    k = C if k is None else check_int("k", k, minimum=1)
    if k > P:
        raise ValueError(message("k", f"at most the number of parameters {P}", k))
    H = HessianOperator(model, torch.nn.functional.cross_entropy, factors.batches)
    opts = dict(k=k, tol=tol, seed=seed, dtype=H.dtype, device=H.device)
    top = lanczos_eigenpairs(H, P, **opts)
    V = top.eigenvectors
    within = lanczos_eigenpairs(factors.within, P, **opts, return_eigenvectors=False)
    same = lanczos_eigenpairs(factors.same_class, P, **opts, return_eigenvectors=False)
    # X^T V: one Jacobian-vector product per eigenvector; A^T V = Ma^T X^T V, etc.
    XtV = torch.stack([factors.project(V[:, j]) for j in range(k)], 1)  # (C^2, k)
    G_V = torch.stack([factors.ggn.matvec(V[:, j]) for j in range(k)], 1)
    S_V = torch.stack([factors.same_class(V[:, j]) for j in range(k)], 1)
    gram = factors.gram()  # X^T X, (C^2, C^2)
    Ma, Mb = factors.Ma, factors.Mb
    total = float(top.eigenvalues.sum())
    quad = {
        "class": float(((Ma.T @ XtV) ** 2).sum()),
        "cross": float(((Mb.T @ XtV) ** 2).sum()),
        "same_class": float((V * S_V).sum()),
    }
    g_total = float((V * G_V).sum())
    quad["within"] = g_total - quad["class"] - quad["cross"] - quad["same_class"]
    quad["residual"] = total - g_total
    shares = {name: value / total for name, value in quad.items()}
    Mab = torch.cat([Ma, Mb], 1)
    return PapyanDecomposition(
        hessian_eigenvalues=top.eigenvalues,
        class_eigenvalues=_spectrum(Ma.T @ gram @ Ma),
        cross_eigenvalues=_spectrum(Mb.T @ gram @ Mb),
        within_eigenvalues=within.eigenvalues,
        same_class_eigenvalues=same.eigenvalues,
        shares=shares,
        class_overlap=_projected_norms(Ma.T @ gram @ Ma, Ma.T @ XtV).to(V.dtype),
        class_cross_overlap=_projected_norms(Mab.T @ gram @ Mab, Mab.T @ XtV).to(V.dtype),
        n_matvecs=top.n_matvecs + within.n_matvecs + same.n_matvecs + 2 * k,
    )


class _Factors:
    """Papyan's factors through X = [x_cc'] (P, C^2), x_cc' = W_cc' g_cc', matrix-free.

    ``project(v)`` = X^T v costs one Jacobian-vector product per batch, ``combine(a)``
    = X a one vector-Jacobian product; A = X Ma (class means) and B = X Mb
    (cross-class deviations) for small (C^2, C) and (C^2, C(C-1)) matrices. Memory:
    the linearisations of the batches and a few vectors of size P.
    """

    def __init__(self, model: Any, data: Any) -> None:
        flat, self.batches, C = _classifier(model, data)
        self.n_classes, self.dim = C, flat.dim
        dtype, device = flat.dtype, flat.device
        n_total = sum(x.shape[0] for x, _ in self.batches)
        eye = torch.eye(C, dtype=dtype, device=device)
        self._lin = []
        W = torch.zeros(C, C, dtype=dtype, device=device)
        for x, y in self.batches:
            f = flat.output_fn(x)
            out, vjp_fn = torch.func.vjp(f, flat.theta)
            p = torch.softmax(out.detach(), dim=1)
            onehot = eye[y]
            W += onehot.T @ (p / n_total)
            self._lin.append((_jvp(f, flat.theta), vjp_fn, p, onehot, p / n_total))
        self.weights = W
        off = 1.0 - eye
        w_class = (W * off).sum(1)
        inv_sqrt = lambda t: torch.where(t > 0, t, torch.ones_like(t)).rsqrt() * (t > 0)  # noqa: E731
        # A column c: x_cc' / sqrt(W_c) over c' != c (sqrt(W_c) g_c).
        Ma = torch.zeros(C, C, C, dtype=dtype, device=device)
        for c in range(C):
            Ma[c, :, c] = off[c] * inv_sqrt(w_class[c])
        # B column (c, c'): sqrt(W_cc') (g_cc' - g_c) = x_cc' / sqrt(W_cc')
        #   - sqrt(W_cc') / W_c sum_{c'' != c} x_cc''.
        pairs = [(c, d) for c in range(C) for d in range(C) if c != d]
        Mb = torch.zeros(C, C, len(pairs), dtype=dtype, device=device)
        for j, (c, d) in enumerate(pairs):
            Mb[c, :, j] = -off[c] * W[c, d].sqrt() * inv_sqrt(w_class[c]) ** 2
            Mb[c, d, j] += inv_sqrt(W[c, d])
        self.Ma, self.Mb = Ma.reshape(C * C, C), Mb.reshape(C * C, len(pairs))
        self._low = self.Ma @ self.Ma.T + self.Mb @ self.Mb.T
        self.ggn = GGNOperator(model, torch.nn.functional.cross_entropy, self.batches)

    @staticmethod
    def _residual_dirs(p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """(e_c' - p_i)^T u_i for every c': u - (p . u), shape (n, C)."""
        return u - (p * u).sum(1, keepdim=True)

    def project(self, v: torch.Tensor) -> torch.Tensor:
        """X^T v, flattened (C^2,): entry (c, c') = W_cc' g_cc'^T v."""
        out = 0.0
        for jvp_fn, _, p, onehot, w in self._lin:
            out = out + onehot.T @ (w * self._residual_dirs(p, jvp_fn(v)))
        return out.reshape(-1)

    def _cotangent(self, a: torch.Tensor, p, onehot, w) -> torch.Tensor:
        """Output cotangent of X a: sample i of class c gets sum_c' a_cc' w_ic' (e_c' - p_i)."""
        C = self.n_classes
        coef = (onehot @ a.reshape(C, C)) * w  # (n, C): a_{y_i c'} w_ic'
        return coef - p * coef.sum(1, keepdim=True)

    def combine(self, a: torch.Tensor) -> torch.Tensor:
        """X a for a of shape (C^2,)."""
        out = torch.zeros(self.dim, dtype=a.dtype, device=a.device)
        for _, vjp_fn, p, onehot, w in self._lin:
            out += vjp_fn(self._cotangent(a, p, onehot, w))[0]
        return out

    def gram(self) -> torch.Tensor:
        """X^T X (C^2, C^2) by C^2 pairs of products (no (C^2, P) array)."""
        n = self.n_classes**2
        eye = torch.eye(n, dtype=self.Ma.dtype, device=self.Ma.device)
        G = torch.stack([self.project(self.combine(eye[j])) for j in range(n)], 1)
        return 0.5 * (G + G.T)

    def same_class(self, v: torch.Tensor) -> torch.Tensor:
        """G_{c=c'} v = sum_i w_icc (e_c - p_i)(e_c - p_i)^T J_i v."""
        out = torch.zeros_like(v)
        for jvp_fn, vjp_fn, p, onehot, w in self._lin:
            r = onehot - p
            a = (r * jvp_fn(v)).sum(1, keepdim=True)
            out += vjp_fn((onehot * w).sum(1, keepdim=True) * a * r)[0]
        return out

    def within(self, v: torch.Tensor) -> torch.Tensor:
        """G_2 v = G v - G_{c=c'} v - (A A^T + B B^T) v."""
        low = self.combine(self._low @ self.project(v))
        return self.ggn.matvec(v) - self.same_class(v) - low


def _classifier(model: Any, data: Any) -> tuple[FlatParameters, list, int]:
    """Checked (flat parameters, batches, C) of a classifier with class-index labels."""
    flat, batches = prepare(model, torch.nn.functional.cross_entropy, data)
    C = _n_classes(flat.output(batches[0][0]))
    for _, y in batches:
        if y.dtype == torch.bool:
            raise ValueError(message("labels", "integer class indices", "dtype torch.bool"))
        if y.is_floating_point() or y.ndim != 1:
            raise TypeError(message("labels", "a 1-D tensor of integer class indices", y.dtype))
    return flat, batches, C


def _spectrum(gram: torch.Tensor) -> torch.Tensor:
    """Non-zero spectrum of A A^T from the small Gram matrix A^T A (descending)."""
    return torch.linalg.eigvalsh(gram).flip(0).clamp_min(0.0)


def _projected_norms(gram: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """||P v_j||^2 = z_j^T (A^T A)^+ z_j for z = A^T V (P the projector onto range A)."""
    lam, U = torch.linalg.eigh(gram)
    keep = lam > lam.max().clamp_min(0) * gram.shape[0] * 10 * torch.finfo(gram.dtype).eps
    y = U[:, keep].T @ z
    return ((y**2) / lam[keep, None]).sum(0)


def _jvp(f: Callable, theta: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda v: torch.func.jvp(f, (theta,), (v,))[1]


def _n_classes(out: torch.Tensor) -> int:
    if out.ndim != 2 or out.shape[1] < 2:
        raise ValueError(
            message(
                "model",
                "a classifier returning logits of shape (n, C) with C >= 2",
                tuple(out.shape),
            )
        )
    return int(out.shape[1])
