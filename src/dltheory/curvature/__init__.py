"""Second-order structure of real PyTorch models: the loss Hessian and its spectra.

Public API:

* :class:`HessianOperator` — matrix-free Hessian of the mean loss over a data set.
* :func:`lanczos_eigenpairs` — the project's Lanczos for any symmetric operator.
* :func:`hessian_eigenvalues` — certified extreme eigenpairs of the loss Hessian.
* :class:`GGNOperator` — the generalised Gauss-Newton matrix J^T H_out J.
* :func:`gauss_newton_parts`, :func:`gauss_newton_decomposition` — Papyan's class,
  cross-class and within-class parts of the cross-entropy GGN; outliers located.
* :func:`hutchpp_trace`, :func:`hessian_trace` — Hutch++ trace with a standard error.
* :func:`spectral_density`, :func:`hessian_spectral_density` — SLQ eigenvalue density.
* :func:`gradient_overlap`, :class:`GradientOverlap` — the gradient's share in the top-k
  Hessian eigenspace (a training-loop tracker).
* :func:`neural_collapse` — NC1-NC4 of last-layer features and classifier.
"""

from .density import SpectralDensity, hessian_spectral_density, spectral_density
from .eigenvalues import hessian_eigenvalues
from .ggn import GGNOperator
from .hessian import HessianOperator
from .lanczos import EigenResult, lanczos_eigenpairs, lanczos_tridiagonal
from .neural_collapse import NeuralCollapse, neural_collapse
from .overlap import GradientOverlap, OverlapResult, gradient_overlap
from .papyan import (
    GaussNewtonParts,
    PapyanDecomposition,
    gauss_newton_decomposition,
    gauss_newton_parts,
)
from .trace import TraceEstimate, hessian_trace, hutchpp_trace

__all__ = [
    "EigenResult",
    "GGNOperator",
    "GaussNewtonParts",
    "GradientOverlap",
    "HessianOperator",
    "NeuralCollapse",
    "OverlapResult",
    "PapyanDecomposition",
    "SpectralDensity",
    "TraceEstimate",
    "gauss_newton_decomposition",
    "gauss_newton_parts",
    "gradient_overlap",
    "hessian_eigenvalues",
    "hessian_spectral_density",
    "hessian_trace",
    "hutchpp_trace",
    "lanczos_eigenpairs",
    "lanczos_tridiagonal",
    "neural_collapse",
    "spectral_density",
]
