"""The course's reproductions, one module per topic.

To add a reproduction: write ``run(quick, seed) -> Outcome`` in the topic's
module (or a new module), decorate it with
:func:`dltheory.report.registry.reproduction`, and list a new module in
``MODULES`` below (a test checks that every module here is listed). The
report runs topics in the order of ``MODULES``.
"""

from __future__ import annotations

import importlib

__all__ = ["MODULES", "load"]

MODULES = (
    "propagation",  # initialisation, information propagation
    "finite_width",  # NNGP limit: finite networks become Gaussian
    "finite_corrections",  # finite width: 1/n corrections
    "path_counting",  # ReLU path counting: Jacobian moments, log-normal law, NTK diagonal
    "criticality",  # critical initialisation, power-law decay at K* = 0
    "depth_scales",  # xi_c off criticality, the measured order/chaos phase diagram
    "dynamics",  # kernel regime: lazy training, linearisation, muP, Du et al.
    "implicit_bias",  # diagonal nets, max margin, SGD noise
    "regions",  # linear regions: density at init, sawtooth, 2-D region map
    "bayes_linear",  # deep linear Bayesian nets, random matrices, JL and covering numbers
    "large_learning_rates",  # 2/lambda threshold, catapult, quadratic models, edge of stability
    "edge_of_stability_conv",  # edge of stability on a conv net with BatchNorm (digits images)
    "curvature",  # loss Hessian outliers, neural collapse, gradient in the top subspace
    "kernel_methods",  # NNGP/NTK kernel machines on real data; trained nets vs NTK
    "residual",  # residual nets and LayerNorm: branch scaling, pre-LN criticality, LN kernel
    "conv_kernels",  # CNN-GP / CNTK on digit images; a critical 100-layer CNN
)


def load() -> None:
    """Import every topic module (each registers its reproductions once)."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
