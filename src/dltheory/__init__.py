"""dltheory: deep-learning theory, computable and checkable.

Notation (the course's, in ASCII): ``c_w``, ``c_b`` weight and bias variances
C_W, C_b; ``nngp`` the kernel K; ``ntk`` the neural tangent kernel Theta;
``k_star`` a fixed point K*; ``chi_parallel``, ``chi_perp`` susceptibilities;
``theta`` parameters; ``depth`` = L hidden layers; ``width`` = n.

Public API:

* activations: :class:`Activation`, :func:`activation`;
* specs: :class:`Dense`, :class:`Nonlinearity`, :class:`Serial`, :func:`MLP`,
  :func:`spec_from_module`;
* kernels: :func:`kernel`, :class:`KernelState`;
* finite networks: :func:`build_module`, :func:`empirical_ntk`,
  :func:`sample_outputs`, :class:`Estimate`;
* criticality: :func:`chi_parallel`, :func:`chi_perp`, :func:`fixed_points`,
  :func:`critical_point`, :func:`critical_init_` (module ``dltheory.criticality``:
  also depth scales, phase diagrams, profiles);
* finite width: :func:`ensemble` (module ``dltheory.finite``: also measured
  moments, ReLU path counting), :func:`finite_width_corrections`;
* training dynamics: :func:`train`, :class:`TrainState`, :class:`Trajectory`,
  :func:`linearized_prediction`, :func:`ntk_gp_prediction` (module
  ``dltheory.dynamics``: also trackers, parametrisations, coordinate checks and
  Du et al.'s convergence theory);
* large learning rates: :func:`max_stable_lr` (module ``dltheory.dynamics``:
  also the catapult recursion, quadratic models, the ``Sharpness`` tracker);
* curvature (module ``dltheory.curvature``): :class:`HessianOperator`,
  :func:`hessian_eigenvalues`, :func:`lanczos_eigenpairs` (also GGN, Papyan's
  decomposition, trace, spectral density, neural collapse, gradient overlap);
* modules ``dltheory.implicit_bias`` (diagonal nets, max margin, SGD noise),
  ``dltheory.regions`` (linear regions), ``dltheory.parallel`` (serial / Dask sweeps).
"""

from . import criticality, curvature, dynamics, implicit_bias, parallel, regions
from .activations import Activation, activation
from .criticality import chi_parallel, chi_perp, critical_init_, critical_point, fixed_points
from .curvature import HessianOperator, hessian_eigenvalues, lanczos_eigenpairs
from .dynamics import (
    TrainState,
    Trajectory,
    linearized_prediction,
    max_stable_lr,
    ntk_gp_prediction,
    train,
)
from .finite import Estimate, build_module, empirical_ntk, ensemble, sample_outputs
from .kernels import KernelState, finite_width_corrections, kernel
from .spec import MLP, Dense, Nonlinearity, Serial, spec_from_module

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "Activation",
    "Dense",
    "Estimate",
    "HessianOperator",
    "KernelState",
    "Nonlinearity",
    "Serial",
    "TrainState",
    "Trajectory",
    "activation",
    "build_module",
    "chi_parallel",
    "chi_perp",
    "critical_init_",
    "critical_point",
    "criticality",
    "curvature",
    "dynamics",
    "empirical_ntk",
    "ensemble",
    "finite_width_corrections",
    "fixed_points",
    "hessian_eigenvalues",
    "implicit_bias",
    "kernel",
    "lanczos_eigenpairs",
    "linearized_prediction",
    "max_stable_lr",
    "ntk_gp_prediction",
    "parallel",
    "regions",
    "sample_outputs",
    "spec_from_module",
    "train",
]
