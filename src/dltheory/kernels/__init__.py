"""Infinite-width kernels (NNGP, NTK) of a spec, and kernel methods with them."""

from .blocked import DEFAULT_MEMORY_BUDGET, kernel
from .cholesky import Cholesky, cholesky_in_place
from .corrections import FiniteWidthCorrections, finite_width_corrections
from .gp import EvidenceFit, GPPosterior, gp_posterior, log_marginal_likelihood, maximize_evidence
from .gram import gram_matrix, kernel_product
from .graph import GRAPH_RULES, PairState
from .recursion import RULES, layer_kinds, propagate
from .rkhs import (
    KernelRidgeSolution,
    MercerDecomposition,
    SphereSpectrum,
    kernel_ridge,
    mercer_eigen,
    rkhs_norm,
    sphere_spectrum,
)
from .solvers import KernelRidgeFit, fit_exact, fit_falkon, fit_pcg
from .state import KernelState

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "GRAPH_RULES",
    "RULES",
    "Cholesky",
    "EvidenceFit",
    "FiniteWidthCorrections",
    "GPPosterior",
    "KernelRidgeFit",
    "KernelRidgeSolution",
    "KernelState",
    "MercerDecomposition",
    "PairState",
    "SphereSpectrum",
    "cholesky_in_place",
    "finite_width_corrections",
    "fit_exact",
    "fit_falkon",
    "fit_pcg",
    "gp_posterior",
    "gram_matrix",
    "kernel",
    "kernel_product",
    "kernel_ridge",
    "layer_kinds",
    "log_marginal_likelihood",
    "maximize_evidence",
    "mercer_eigen",
    "propagate",
    "rkhs_norm",
    "sphere_spectrum",
]
