"""Second-order structure of real PyTorch models: the loss Hessian and its spectra.

Public API:

* :class:`HessianOperator` — matrix-free Hessian of the mean loss over a data set.
* :func:`lanczos_eigenpairs` — the project's Lanczos for any symmetric operator.
* :func:`hessian_eigenvalues` — certified extreme eigenpairs of the loss Hessian.
* :class:`GGNOperator` — the generalised Gauss-Newton matrix J^T H_out J.
* :func:`gauss_newton_parts`, :func:`gauss_newton_decomposition` — Papyan's class,
  cross-class and within-class parts of the cross-entropy GGN; outliers located.
* :func:`neural_collapse` — NC1-NC4 of last-layer features and classifier.
"""

from .eigenvalues import hessian_eigenvalues
from .ggn import GGNOperator
from .hessian import HessianOperator
from .lanczos import EigenResult, lanczos_eigenpairs
from .neural_collapse import NeuralCollapse, neural_collapse
from .papyan import (
    GaussNewtonParts,
    PapyanDecomposition,
    gauss_newton_decomposition,
    gauss_newton_parts,
)

__all__ = [
    "EigenResult",
    "GGNOperator",
    "GaussNewtonParts",
    "HessianOperator",
    "NeuralCollapse",
    "PapyanDecomposition",
    "gauss_newton_decomposition",
    "gauss_newton_parts",
    "hessian_eigenvalues",
    "lanczos_eigenpairs",
    "neural_collapse",
]
