"""Second-order structure of real PyTorch models: the loss Hessian and its spectra.

Public API:

* :class:`HessianOperator` — matrix-free Hessian of the mean loss over a data set.
* :func:`lanczos_eigenpairs` — the project's Lanczos for any symmetric operator.
* :func:`hessian_eigenvalues` — certified extreme eigenpairs of the loss Hessian.
"""

from .eigenvalues import hessian_eigenvalues
from .hessian import HessianOperator
from .lanczos import EigenResult, lanczos_eigenpairs

__all__ = [
    "EigenResult",
    "HessianOperator",
    "hessian_eigenvalues",
    "lanczos_eigenpairs",
]
