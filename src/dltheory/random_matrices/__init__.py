"""Random-matrix laws the course uses: Marchenko-Pastur spectra and Gaussian product norms."""

from .marchenko_pastur import (
    KSResult,
    marchenko_pastur_cdf,
    marchenko_pastur_density,
    marchenko_pastur_edges,
    marchenko_pastur_ks,
    marchenko_pastur_moment,
    sample_marchenko_pastur,
)
from .product_norm import ProductNormLaw

__all__ = [
    "KSResult",
    "ProductNormLaw",
    "marchenko_pastur_cdf",
    "marchenko_pastur_density",
    "marchenko_pastur_edges",
    "marchenko_pastur_ks",
    "marchenko_pastur_moment",
    "sample_marchenko_pastur",
]
