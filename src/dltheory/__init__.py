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
  :func:`sample_outputs`; measurements: :class:`Estimate` (module ``dltheory.stats``);
* criticality: :func:`chi_parallel`, :func:`chi_perp`, :func:`fixed_points`,
  :func:`critical_point`, :func:`critical_init_` (module ``dltheory.criticality``:
  also depth scales, phase diagrams, profiles);
* finite width: :func:`ensemble` (module ``dltheory.finite``: also measured
  moments, ReLU path counting), :func:`finite_width_corrections`;
* deep linear Bayesian nets: :func:`deep_linear_posterior` (module
  ``dltheory.bayes_linear``: also Monte-Carlo evidence, effective-depth limit, optimal prior);
* random matrices: :class:`ProductNormLaw`, :func:`marchenko_pastur_density` (module
  ``dltheory.random_matrices``); entropy: :func:`jl_dimension`, :func:`covering_number`
  (module ``dltheory.entropy``);
* training dynamics: :func:`train`, :class:`TrainState`, :class:`Trajectory`,
  :func:`linearized_prediction`, :func:`ntk_gp_prediction` (module
  ``dltheory.dynamics``: also trackers, parametrisations, coordinate checks and
  Du et al.'s convergence theory);
* kernel methods: :class:`NNGPRegressor`, :class:`NTKRegressor`,
  :class:`NNGPClassifier`, :class:`NTKClassifier` (module ``dltheory.estimators``,
  scikit-learn compatible); exact GP inference, RKHS tools and the in-place / CG
  solvers in ``dltheory.kernels``;
* large learning rates: :func:`max_stable_lr` (module ``dltheory.dynamics``:
  also the catapult recursion, quadratic models, the ``Sharpness`` tracker);
* curvature (module ``dltheory.curvature``): :class:`HessianOperator`,
  :func:`hessian_eigenvalues`, :func:`lanczos_eigenpairs` (also GGN, Papyan's
  decomposition, trace, spectral density, neural collapse, gradient overlap);
* modules ``dltheory.implicit_bias`` (diagonal nets, max margin, SGD noise),
  ``dltheory.regions`` (linear regions), ``dltheory.parallel`` (serial / Dask sweeps).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Exports are loaded on first use (PEP 562), so `import dltheory` and the
# command line's `--help` stay fast (torch alone takes seconds to import).
# To export a name, add it to _EXPORTS (name -> submodule) and to __all__.
_EXPORTS = {
    "max_stable_lr": "dynamics",
    "NTKRegressor": "estimators",
    "NTKClassifier": "estimators",
    "NNGPRegressor": "estimators",
    "NNGPClassifier": "estimators",
    "estimators": "estimators",
    "train": "dynamics",
    "ntk_gp_prediction": "dynamics",
    "linearized_prediction": "dynamics",
    "Trajectory": "dynamics",
    "TrainState": "dynamics",
    "dynamics": "dynamics",
    "lanczos_eigenpairs": "curvature",
    "hessian_eigenvalues": "curvature",
    "HessianOperator": "curvature",
    "curvature": "curvature",
    "criticality": "criticality",
    "implicit_bias": "implicit_bias",
    "parallel": "parallel",
    "regions": "regions",
    "bayes_linear": "bayes_linear",
    "entropy": "entropy",
    "random_matrices": "random_matrices",
    "deep_linear_posterior": "bayes_linear",
    "covering_number": "entropy",
    "jl_dimension": "entropy",
    "ProductNormLaw": "random_matrices",
    "marchenko_pastur_density": "random_matrices",
    "Activation": "activations",
    "activation": "activations",
    "chi_parallel": "criticality",
    "chi_perp": "criticality",
    "critical_init_": "criticality",
    "critical_point": "criticality",
    "fixed_points": "criticality",
    "Estimate": "stats",
    "build_module": "finite",
    "empirical_ntk": "finite",
    "ensemble": "finite",
    "sample_outputs": "finite",
    "KernelState": "kernels",
    "finite_width_corrections": "kernels",
    "kernel": "kernels",
    "MLP": "spec",
    "Dense": "spec",
    "Nonlinearity": "spec",
    "Serial": "spec",
    "spec_from_module": "spec",
    "Residual": "spec",
    "LayerNorm": "spec",
    "spec_criticality": "criticality",
    "measured_apjn": "criticality",
    "Conv": "spec",
    "AvgPool": "spec",
    "GlobalAvgPool": "spec",
    "Flatten": "spec",
    "SelfAttention": "spec",
}

if TYPE_CHECKING:  # what the lazy exports are, for type checkers and IDEs
    from . import (
        bayes_linear,
        criticality,
        curvature,
        dynamics,
        entropy,
        estimators,
        implicit_bias,
        parallel,
        random_matrices,
        regions,
    )
    from .activations import Activation, activation
    from .bayes_linear import deep_linear_posterior
    from .criticality import (
        chi_parallel,
        chi_perp,
        critical_init_,
        critical_point,
        fixed_points,
        measured_apjn,
        spec_criticality,
    )
    from .curvature import (
        HessianOperator,
        hessian_eigenvalues,
        lanczos_eigenpairs,
    )
    from .dynamics import (
        TrainState,
        Trajectory,
        linearized_prediction,
        max_stable_lr,
        ntk_gp_prediction,
        train,
    )
    from .entropy import covering_number, jl_dimension
    from .estimators import (
        NNGPClassifier,
        NNGPRegressor,
        NTKClassifier,
        NTKRegressor,
    )
    from .finite import build_module, empirical_ntk, ensemble, sample_outputs
    from .kernels import KernelState, finite_width_corrections, kernel
    from .random_matrices import ProductNormLaw, marchenko_pastur_density
    from .spec import (
        MLP,
        AvgPool,
        Conv,
        Dense,
        Flatten,
        GlobalAvgPool,
        LayerNorm,
        Nonlinearity,
        Residual,
        SelfAttention,
        Serial,
        spec_from_module,
    )
    from .stats import Estimate


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dltheory' has no attribute {name!r}")
    sub = importlib.import_module(f".{module}", __name__)
    value = sub if name == module else getattr(sub, name)
    globals()[name] = value  # the next access skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "MLP",
    "Activation",
    "AvgPool",
    "Conv",
    "Dense",
    "Estimate",
    "Flatten",
    "GlobalAvgPool",
    "HessianOperator",
    "KernelState",
    "LayerNorm",
    "NNGPClassifier",
    "NNGPRegressor",
    "NTKClassifier",
    "NTKRegressor",
    "Nonlinearity",
    "ProductNormLaw",
    "Residual",
    "SelfAttention",
    "Serial",
    "TrainState",
    "Trajectory",
    "activation",
    "bayes_linear",
    "build_module",
    "chi_parallel",
    "chi_perp",
    "covering_number",
    "critical_init_",
    "critical_point",
    "criticality",
    "curvature",
    "deep_linear_posterior",
    "dynamics",
    "empirical_ntk",
    "ensemble",
    "entropy",
    "estimators",
    "finite_width_corrections",
    "fixed_points",
    "hessian_eigenvalues",
    "implicit_bias",
    "jl_dimension",
    "kernel",
    "lanczos_eigenpairs",
    "linearized_prediction",
    "marchenko_pastur_density",
    "max_stable_lr",
    "measured_apjn",
    "ntk_gp_prediction",
    "parallel",
    "random_matrices",
    "regions",
    "sample_outputs",
    "spec_criticality",
    "spec_from_module",
    "train",
]
