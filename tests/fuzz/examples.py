"""One valid, small, fast example call per public callable (the fuzz harness's seeds).

Each entry builds fresh arguments (the harness calls it once per case). A new public name
without an entry here (or an exemption next to it, ``__fuzz_exempt__`` in its module) makes
``tests/test_fuzz.py`` fail. :data:`EXEMPT` holds the exemptions of modules whose files the
fuzz harness does not own (report, parallel, plotting, torch ``forward`` hooks).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import dltheory
from dltheory import (
    activations,
    bayes_linear,
    criticality,
    curvature,
    dynamics,
    estimators,
    finite,
    implicit_bias,
    kernels,
    random_matrices,
    regions,
    spec,
)

from .harness import Call

F64 = torch.float64

EXEMPT = {
    # report/: experiment bookkeeping and file output, not numerical API (run by tests/report)
    **{
        f"report.{name}": "report bookkeeping / file output; exercised by tests/report"
        for name in (
            "Outcome",
            "Outcome.largest_z",
            "Quantity",
            "Quantity.from_dict",
            "Quantity.to_dict",
            "Reproduction",
            "Result.from_dict",
            "Result.from_error",
            "Result.from_outcome",
            "Result.to_dict",
            "Table",
            "Table.from_dict",
            "Table.to_dict",
            "atomic_write",
            "load_report",
            "new_figure",
            "png_bytes",
            "registered",
            "render_html",
            "reproduction",
            "run_one",
            "run_report",
            "select",
            "svg_bytes",
            "write_html",
            "write_json",
        )
    },
    # parallel.py: schedulers and context managers; they run user functions, not numbers
    **{
        f"parallel.{name}": "scale-out plumbing (runs user callables); tests/test_parallel.py"
        for name in (
            "Pool",
            "Pool.map",
            "Pool.scatter",
            "Pool.placement",
            "Pool.workers",
            "configure",
            "pool",
            "sweep",
            "torch_threads",
        )
    },
    # plots: matplotlib output, the numbers they draw are fuzzed through their producers
    "criticality.plot_analysis": "matplotlib figure of an Analysis record",
    "criticality.plot_phase_diagram": "matplotlib figure of a PhaseDiagram record",
    "regions.plot_regions_2d": "matplotlib figure of a Regions2D record",
    "dynamics.CoordCheck.plot": "matplotlib figure of a CoordCheck record",
    "dynamics.Trajectory.plot": "matplotlib figure of a Trajectory record",
    # torch module hooks: called by torch with tensors the library built itself
    "finite.ActivationModule.forward": "nn.Module.forward, called by torch inside the library",
    "finite.ActivationModule.extra_repr": "nn.Module repr hook, no input",
    "finite.FiniteDense": "built by build_module from a checked spec, not by users",
    "finite.FiniteDense.forward": "nn.Module.forward, called by torch inside the library",
    "finite.FiniteDense.extra_repr": "nn.Module repr hook, no input",
    "finite.Ensemble.forward": "nn.Module.forward; Ensemble.preactivations is fuzzed",
    "kernels.PairState.k11": "state of the graph interpreter, built by the library",
    "kernels.PairState.k22": "state of the graph interpreter, built by the library",
    "kernels.PairState.with_": "state of the graph interpreter, built by the library",
    "kernels.PairState.own_pairs": "state of the graph interpreter, built by the library",
    "parallel.Pool.persist": "scale-out plumbing (keeps user data on the workers); "
    "tests/test_parallel.py",
    "report.check_text": "report bookkeeping (formats a Result); exercised by tests/report",
    "report.report_problems": "report lint of a rendered page; exercised by tests/report",
    "spec.Layer": "abstract base of the layer kinds (each kind is fuzzed)",
    "kernels.KernelState.to": "torch's Tensor.to signature, forwarded to each field",
    "estimators.InfiniteNetworkEstimator": "abstract base class of the four estimators",
    # slow Monte-Carlo drivers (seconds per valid call): covered by their own tests
    "criticality.analyze": "trains no model but samples 8 networks per call: seconds each",
    "criticality.measured_correlation_scale": "Monte-Carlo over 64 deep networks: seconds",
    "implicit_bias.challenge_walk": "20000-walker simulation: seconds per call",
}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def x_data(n: int = 6, d: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=_gen(seed), dtype=F64)


def y_data(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, generator=_gen(seed), dtype=F64)


def model(d: int = 3, h: int = 4, out: int = 2, act: type = nn.Tanh) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, h), act(), nn.Linear(h, out)).double()


def relu_model(d: int = 3, h: int = 4, out: int = 1) -> nn.Module:
    return model(d, h, out, nn.ReLU)


def residual_spec() -> dltheory.Serial:
    """Dense, a residual ReLU block with alpha = 1/2, ReLU, readout."""
    block = spec.Residual((spec.Nonlinearity("relu"), spec.Dense(2.0, 0.0)), alpha=0.5)
    return spec.Serial(spec.Dense(2.0, 0.0), block, spec.Nonlinearity("relu"), spec.Dense(2.0, 0.0))


def mlp_spec() -> dltheory.Serial:
    return dltheory.MLP(2, "relu", c_w=2.0, c_b=0.1)


def psd(n: int = 5, seed: int = 2) -> torch.Tensor:
    a = torch.randn(n, n + 2, generator=_gen(seed), dtype=F64)
    return a @ a.T / (n + 2) + 0.1 * torch.eye(n, dtype=F64)


def _matvec(n: int = 6) -> Callable[[torch.Tensor], torch.Tensor]:
    a = psd(n)
    return lambda v: a @ v


def _mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out - target) ** 2).mean()


def curv_data() -> tuple[torch.Tensor, torch.Tensor]:
    return x_data(8, 3), torch.randn(8, 2, generator=_gen(3), dtype=F64)


def class_data() -> tuple[torch.Tensor, torch.Tensor]:
    return x_data(8, 3), torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])


def sep_data() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [3.0, 0.5], [2.0, -0.5]], dtype=F64)
    return x, torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=F64)


def mixed_labels() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[2.0, 1.0], [1.5, -1.0], [-2.0, 0.5], [-1.0, -0.5]], dtype=F64)
    return x, torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=F64)


def under_data() -> tuple[torch.Tensor, torch.Tensor]:
    return x_data(2, 4, seed=4), torch.tensor([1.0, -0.5], dtype=F64)


def _quadratic() -> dynamics.QuadraticModel:
    phi = torch.randn(3, 4, generator=_gen(5), dtype=F64)
    psi = 0.1 * torch.randn(3, 4, 4, generator=_gen(6), dtype=F64)
    psi = 0.5 * (psi + psi.transpose(1, 2))
    return dynamics.QuadraticModel(phi, psi)


def _theta() -> torch.Tensor:
    return 0.1 * torch.ones(4, dtype=F64)


def _ensemble() -> finite.Ensemble:
    return finite.ensemble(mlp_spec(), width=8, n_networks=4, in_dim=3, dtype=F64)


def _posterior() -> bayes_linear.DeepLinearPosterior:
    x, y = under_data()
    return bayes_linear.deep_linear_posterior(x, y, (5, 5))


def _regions2d() -> regions.Regions2D:
    return regions.regions_2d(relu_model(2, 3, 1), [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-1.0, 1.0))


def _trajectory() -> dynamics.Trajectory:
    x, y = curv_data()
    return dynamics.train(model(), x, y, lr=0.1, steps=2)


def _coord_check() -> dynamics.CoordCheck:
    return dynamics.coord_check(mlp_spec(), [8, 16], 1, n_seeds=1)


def _plnet() -> regions.PiecewiseLinearNet:
    return regions.piecewise_linear_layers(relu_model())


def _mercer() -> kernels.MercerDecomposition:
    return kernels.mercer_eigen(psd(), 3)


def _chol() -> kernels.Cholesky:
    return kernels.cholesky_in_place(np.asfortranarray(psd().numpy()))


def _fd() -> implicit_bias.FluctuationDissipation:
    x, y = under_data()
    x, y = x_data(6, 2, 7), y_data(6, 8)
    return implicit_bias.sgd_fluctuation_dissipation(x, y, 0.05, 2, 50, chains=8)


def _estimator_fit(cls: type, classifier: bool, **params) -> Call:
    x = x_data(6, 3).numpy()
    y = np.array([0, 1, 0, 1, 1, 0]) if classifier else y_data(6).numpy()
    return Call((), dict(params), then=lambda est: est.fit(x, y).predict(x))


def _estimator_method(cls: type, classifier: bool, method: str) -> Call:
    x = x_data(6, 3).numpy()
    y = np.array([0, 1, 0, 1, 1, 0]) if classifier else y_data(6).numpy()
    if method == "fit":
        return Call((x, y), {}, instance=cls)
    return Call((x,), {}, instance=lambda: cls().fit(x, y))


def _estimator_entries() -> dict[str, Callable[[], Call]]:
    out: dict[str, Callable[[], Call]] = {}
    for name in ("NNGPRegressor", "NTKRegressor", "NNGPClassifier", "NTKClassifier"):
        cls = getattr(estimators, name)
        classifier = "Classifier" in name
        params = {"depth": 2, "c_w": 2.0, "c_b": 0.1, "alpha": 1e-6}
        out[f"estimators.{name}"] = lambda c=cls, k=classifier, p=params: _estimator_fit(c, k, **p)
        methods = ["fit", "predict"] + (
            ["decision_function", "predict_proba"] if classifier else []
        )
        for m in methods:
            out[f"estimators.{name}.{m}"] = lambda c=cls, k=classifier, m=m: _estimator_method(
                c, k, m
            )
    return out


def _c(*args, instance=None, **kwargs) -> Callable[[], Call]:
    """A fixed example: the arguments are rebuilt by deep copy for each case."""
    import copy

    return lambda: Call(copy.deepcopy(args), copy.deepcopy(kwargs), instance)


def _mk(fn: Callable[[], tuple]) -> Callable[[], Call]:
    """An example whose arguments come from a builder returning (args, kwargs[, instance])."""

    def build() -> Call:
        out = fn()
        return Call(out[0], out[1], out[2] if len(out) > 2 else None)

    return build


EXAMPLES: dict[str, Callable[[], Call]] = {
    # activations
    "activations.Activation": _c("cube", lambda x: x**3),
    "activations.Activation.from_callable": _c(torch.tanh, "my_tanh"),
    "activations.Activation.nngp_map": _mk(
        lambda: (
            (
                torch.tensor([1.0], dtype=F64),
                torch.tensor([0.5], dtype=F64),
                torch.tensor([1.2], dtype=F64),
            ),
            {},
            lambda: activations.activation("tanh"),
        )
    ),
    "activations.Activation.ntk_map": _mk(
        lambda: (
            (
                torch.tensor([1.0], dtype=F64),
                torch.tensor([0.5], dtype=F64),
                torch.tensor([1.2], dtype=F64),
            ),
            {},
            lambda: activations.activation("tanh"),
        )
    ),
    "activations.Activation.map_error": _mk(
        lambda: (
            (
                torch.tensor([1.0], dtype=F64),
                torch.tensor([0.5], dtype=F64),
                torch.tensor([1.2], dtype=F64),
            ),
            {"kind": "nngp"},
            lambda: activations.activation("tanh"),
        )
    ),
    "activations.Activation.second_moment": _mk(
        lambda: ((torch.tensor([1.0, 2.0], dtype=F64),), {}, lambda: activations.activation("gelu"))
    ),
    "activations.Activation.derivative_second_moment": _mk(
        lambda: ((torch.tensor([1.0, 2.0], dtype=F64),), {}, lambda: activations.activation("tanh"))
    ),
    "activations.Activation.square_second_derivative": _mk(
        lambda: ((torch.tensor([1.0, 2.0], dtype=F64),), {}, lambda: activations.activation("tanh"))
    ),
    "activations.activation": _c("tanh"),
    "activations.names": _c(),
    # bayes_linear
    "bayes_linear.deep_linear_posterior": _mk(lambda: ((*under_data(), (5, 5)), {"sigma2": 1.0})),
    "bayes_linear.effective_depth_limit": _mk(lambda: ((*under_data(), (50, 50)), {"sigma2": 1.0})),
    "bayes_linear.log_meijer_g": _c(math.log(2.0), [0.5]),
    "bayes_linear.log_meijer_g_normalised": _c(math.log(2.0), [0.0, 3.5], [1.0, 3.0]),
    "bayes_linear.monte_carlo_posterior": _mk(
        lambda: ((*under_data(), (4, 4)), {"sigma2": 1.0, "n_samples": 50, "seed": 0})
    ),
    "bayes_linear.optimal_sigma2": _mk(lambda: ((*under_data(), (5, 5)), {})),
    "bayes_linear.DeepLinearPosterior.perp_variance_moment": _c(2.0, instance=_posterior),
    "bayes_linear.DeepLinearPosterior.predict": _mk(
        lambda: ((x_data(3, 4, 9),), {"full_cov": False}, _posterior)
    ),
    # criticality
    "criticality.CriticalPoint": _c(0.0, 2.0, 0.0, "scale_invariant", "relu"),
    "criticality.DepthProfile": _mk(
        lambda: ((torch.ones(3, 2, dtype=F64), torch.ones(3, 2, dtype=F64)), {})
    ),
    "criticality.DepthScales": _c(1.0, 1.0, 1.0, 1.0, 1.0, 10.0, 10.0, "critical"),
    "criticality.FixedPoint": _c(1.0, 1.0, 1.0, "stable"),
    "criticality.PhaseDiagram": _mk(
        lambda: (
            (np.ones(2), np.ones(2), np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2)), np.ones(2)),
            {},
        )
    ),
    "criticality.chi_parallel": _c("tanh", 1.0, 0.5),
    "criticality.chi_perp": _c("tanh", 1.0, 0.5),
    "criticality.compare_correlation_profile": _c(
        "tanh", 1.0, 0.05, 0.5, width=16, depth=3, n_networks=4, n_pairs=2
    ),
    "criticality.correlation_map": _c("tanh", 1.0, 0.05, 0.5, 0.5),
    "criticality.correlation_samples": _mk(
        lambda: (("tanh", 1.0, 0.05, x_data(2, 3)), {"width": 16, "depth": 3, "n_networks": 4})
    ),
    "criticality.CorrelationSamples.estimate": _c(
        instance=lambda: criticality.correlation_samples(
            "tanh", 1.0, 0.05, x_data(2, 3), width=16, depth=3, n_networks=4
        )
    ),
    "criticality.critical_init_": _mk(lambda: ((model(),), {"seed": 0})),
    "criticality.critical_point": _c("tanh"),
    "criticality.depth_profile": _mk(lambda: (("tanh", 1.0, 0.05, x_data(2, 3), 4), {})),
    "criticality.depth_scales": _c("tanh", 1.0, 0.05),
    "criticality.fit_correlation_scale": _mk(
        lambda: (
            (
                1
                - torch.exp(-torch.arange(1, 21, dtype=F64) / 4.0)
                * (1 + 0.01 * torch.randn(8, 20, generator=_gen(0), dtype=F64)),
            ),
            {"start": 1, "rho_star": 1.0},
        )
    ),
    "criticality.fixed_points": _c("tanh", 1.0, 0.05),
    "criticality.k_star_zero_decay": _c("tanh"),
    "criticality.measured_depth_profile": _mk(
        lambda: (("tanh", 1.0, 0.05, x_data(2, 3), 3, 16, 4), {})
    ),
    "criticality.pair_inputs": _c(2.0, 0.5, 1.5, 0.6, 2),
    "criticality.phase_diagram": _c("tanh", [0.5, 1.5], [0.0, 0.1]),
    # curvature
    "curvature.GGNOperator": _mk(lambda: ((model(), _mse, curv_data()), {})),
    "curvature.GGNOperator.matvec": _mk(
        lambda: (
            (torch.ones(26, dtype=F64),),
            {},
            lambda: curvature.GGNOperator(model(), _mse, curv_data()),
        )
    ),
    "curvature.GGNOperator.dense": _c(
        instance=lambda: curvature.GGNOperator(model(), _mse, curv_data())
    ),
    "curvature.GradientOverlap": _c(3, tol=1e-3),
    "curvature.HessianOperator": _mk(lambda: ((model(), _mse, curv_data()), {})),
    **{
        f"curvature.HessianOperator.{m}": _c(
            instance=lambda: curvature.HessianOperator(model(), _mse, curv_data())
        )
        for m in ("gradient", "loss", "dense", "cached_bytes_estimate")
    },
    "curvature.HessianOperator.matvec": _mk(
        lambda: (
            (torch.ones(26, dtype=F64),),
            {},
            lambda: curvature.HessianOperator(model(), _mse, curv_data()),
        )
    ),
    "curvature.HessianOperator.unflatten": _mk(
        lambda: (
            (torch.ones(26, dtype=F64),),
            {},
            lambda: curvature.HessianOperator(model(), _mse, curv_data()),
        )
    ),
    "curvature.SpectralDensity.moment": _c(
        2, instance=lambda: curvature.spectral_density(_matvec(), 6, n_probes=2, n_steps=6)
    ),
    "curvature.gauss_newton_decomposition": _mk(lambda: ((model(), class_data()), {"k": 2})),
    "curvature.gauss_newton_parts": _mk(lambda: ((model(), class_data()), {})),
    "curvature.gradient_overlap": _mk(lambda: ((model(), _mse, curv_data(), 2), {})),
    "curvature.hessian_eigenvalues": _mk(lambda: ((model(), _mse, curv_data(), 2), {})),
    "curvature.hessian_spectral_density": _mk(
        lambda: ((model(), _mse, curv_data()), {"n_probes": 2, "n_steps": 8})
    ),
    "curvature.hessian_trace": _mk(lambda: ((model(), _mse, curv_data(), 9), {})),
    "curvature.hutchpp_trace": _mk(lambda: ((_matvec(), 6, 9), {})),
    "curvature.lanczos_eigenpairs": _mk(lambda: ((_matvec(), 6), {"k": 2})),
    "curvature.lanczos_tridiagonal": _mk(lambda: ((_matvec(), torch.ones(6, dtype=F64), 4), {})),
    "curvature.neural_collapse": _mk(lambda: (class_data(), {})),
    "curvature.spectral_density": _mk(lambda: ((_matvec(), 6), {"n_probes": 2, "n_steps": 6})),
    # dynamics
    "dynamics.QuadraticModel": _mk(
        lambda: ((torch.ones(3, 4, dtype=F64), torch.zeros(3, 4, 4, dtype=F64)), {"eps": 1.0})
    ),
    "dynamics.QuadraticModel.from_model": _mk(lambda: ((model(3, 4, 1), x_data(3, 3)), {})),
    "dynamics.QuadraticModel.outputs": _mk(lambda: ((_theta(),), {}, _quadratic)),
    "dynamics.QuadraticModel.features": _mk(lambda: ((_theta(),), {}, _quadratic)),
    "dynamics.QuadraticModel.ntk": _mk(lambda: ((_theta(),), {}, _quadratic)),
    "dynamics.QuadraticModel.gradient": _mk(lambda: ((_theta(), y_data(3)), {}, _quadratic)),
    "dynamics.QuadraticModel.gradient_descent": _mk(lambda: ((y_data(3), 0.05, 5), {}, _quadratic)),
    "dynamics.QuadraticModel.first_order_solution": _mk(lambda: ((y_data(3), 0.3), {}, _quadratic)),
    "dynamics.Sharpness": _c(every=1, tol=1e-4),
    "dynamics.TrainState.params": _c(
        instance=lambda: dynamics.TrainState(0, model(), *curv_data(), _mse, 0.1, {}, 0.0)
    ),
    "dynamics.Trajectory.from_json": _mk(lambda: ((_trajectory().to_json(),), {})),
    "dynamics.Trajectory.to_dict": _c(instance=_trajectory),
    "dynamics.Trajectory.to_json": _c(instance=_trajectory),
    "dynamics.CoordCheck.slopes": _c(instance=_coord_check),
    "dynamics.catapult_divergence_threshold": _c(0.3, 2.0, 100, steps=200),
    "dynamics.catapult_phase_diagram": _mk(
        lambda: ((0.5, 2.0, 100), {"eta_lambda0": np.array([1.0, 3.0]), "steps": 200})
    ),
    "dynamics.catapult_recursion": _c(0.5, 2.0, 1.5, 100, steps=200),
    "dynamics.catapult_scan": _mk(
        lambda: (
            (mlp_spec(), x_data(4, 3), y_data(4)),
            {"width": 16, "factors": [0.5, 1.5], "steps": 10, "seeds": 1},
        )
    ),
    "dynamics.coord_check": _c(mlp_spec(), [8, 16], 1, n_seeds=1),
    "dynamics.du_prediction": _c(0.5, 1.0, 2, 100, 1.0, 2),
    "dynamics.du_two_layer_spec": _c(2),
    "dynamics.edge_of_stability_summary": _c(
        [0, 1, 2, 3], [1.0, 1.9, 2.05, 1.98], [1.0, 0.8, 0.7, 0.6], 1.0
    ),
    "dynamics.lambda_0": _mk(
        lambda: ((dynamics.du_two_layer_spec(2), torch.eye(2, dtype=F64)), {})
    ),
    "dynamics.linearized_outputs": _mk(
        lambda: ((model(3, 4, 1), x_data(4, 3), y_data(4)[:, None]), {"lr": 0.5, "t": 3.0})
    ),
    "dynamics.linearized_prediction": _mk(
        lambda: ((psd(4), y_data(4), torch.zeros(4, dtype=F64)), {"lr": 0.25, "t": 2.0})
    ),
    "dynamics.max_stable_lr": _mk(lambda: ((model(3, 4, 1), x_data(4, 3), y_data(4)[:, None]), {})),
    "dynamics.mse_loss": _mk(lambda: ((y_data(4), torch.zeros(4, dtype=F64)), {})),
    "dynamics.ntk_gp_prediction": _mk(lambda: ((psd(4), psd(4)[:2], y_data(4)), {"t": 2.0})),
    "dynamics.train": _mk(lambda: ((model(), *curv_data()), {"lr": 0.1, "steps": 3})),
    "dynamics.width_condition_notes": _c(2, 1.0, 0.5),
    "dynamics.width_condition_paper": _c(2, 1.0, 0.5),
    # entropy
    "entropy.covering_number": _mk(lambda: ((x_data(10, 2), 0.5), {"metric": "l2"})),
    "entropy.greedy_net": _mk(lambda: ((x_data(10, 2), 0.5), {"metric": "l2"})),
    "entropy.jl_dimension": _c(100, 0.5),
    "entropy.jl_distortion": _mk(lambda: ((x_data(5, 4), x_data(5, 3, 1)), {})),
    "entropy.jl_failure_bound": _c(100, 50, 0.5),
    "entropy.random_projection": _mk(lambda: ((x_data(5, 8), 3), {"seed": 0})),
    "entropy.volumetric_bounds": _c(2, 1.0, 0.5),
    # estimators: constructor + fit + predict, and each method
    **_estimator_entries(),
    # finite
    "finite.ActivationModule": _mk(lambda: ((activations.activation("tanh"),), {})),
    "finite.Estimate": _c(1.0, 0.1, 10),
    "finite.Estimate.from_samples": _mk(lambda: ((y_data(10),), {})),
    "finite.Estimate.zscore": _c(1.5, instance=lambda: finite.Estimate(1.0, 0.1, 10)),
    "finite.Estimate.agrees": _c(1.2, instance=lambda: finite.Estimate(1.0, 0.1, 10)),
    "finite.Ensemble.batches": _mk(lambda: ((x_data(3, 3),), {}, _ensemble)),
    "finite.Ensemble.network": _c(1, instance=_ensemble),
    "finite.Ensemble.preactivations": _mk(lambda: ((x_data(3, 3),), {}, _ensemble)),
    "finite.Ensemble.weights": _c(0, instance=_ensemble),
    "finite.ReluJacobianMoments.log_moment": _c(
        2, instance=lambda: finite.relu_jacobian_moments(3, [8, 8])
    ),
    "finite.ReluJacobianMoments.moment": _c(
        2, instance=lambda: finite.relu_jacobian_moments(3, [8, 8])
    ),
    "finite.build_module": _c(mlp_spec(), 8, in_dim=3, seed=0),
    "finite.empirical_ntk": _mk(lambda: ((model(), x_data(4, 3)), {})),
    "finite.ensemble": _c(mlp_spec(), 8, 4, in_dim=3),
    "finite.finite_width_corrections": _mk(lambda: ((mlp_spec(), x_data(3, 3), 16), {})),
    "finite.layer_samples": _mk(lambda: ((_ensemble(), x_data(3, 3)), {})),
    "finite.preactivation_moments": _mk(lambda: ((_ensemble(), x_data(3, 3)), {})),
    "finite.preactivations": _mk(
        lambda: ((mlp_spec().sample(8, in_dim=3, seed=0, dtype=F64), x_data(3, 3)), {})
    ),
    "finite.relu_jacobian_moments": _c(3, [8, 8]),
    "finite.relu_ntk_mean": _mk(lambda: ((x_data(3, 3), [8, 8]), {})),
    "finite.relu_ntk_second_moment": _mk(lambda: ((x_data(3, 3), [8, 8]), {})),
    "finite.sample_outputs": _mk(lambda: ((mlp_spec(), x_data(3, 3), 8, 4), {})),
    "finite.sample_relu_jacobians": _c(3, [8, 8], 4),
    "finite.second_moment": _mk(lambda: ((x_data(4, 3),), {})),
    # implicit_bias
    "implicit_bias.FluctuationDissipation.holds": _c(instance=_fd),
    "implicit_bias.diagonal_flow": _mk(lambda: ((*under_data(), 0.5, [0.1, 1.0]), {})),
    "implicit_bias.diagonal_flow_limit": _mk(lambda: ((*under_data(), 1.0), {})),
    "implicit_bias.gradient_noise": _mk(lambda: ((x_data(6, 3), 2), {})),
    "implicit_bias.lattice_slow_mass": _c(40),
    "implicit_bias.linear_regression_gradients": _mk(
        lambda: ((x_data(4, 2), y_data(4), torch.ones(2, dtype=F64)), {})
    ),
    "implicit_bias.logistic_gd": _mk(lambda: ((*sep_data(), 0.5, 100), {"n_log": 5})),
    "implicit_bias.max_margin": _mk(lambda: (mixed_labels(), {})),
    "implicit_bias.max_margin_direction": _mk(lambda: (mixed_labels(), {})),
    "implicit_bias.min_l1_interpolant": _mk(lambda: (under_data(), {})),
    "implicit_bias.min_weighted_l2_interpolant": _mk(lambda: (under_data(), {})),
    "implicit_bias.q_alpha_argmin": _mk(lambda: ((*under_data(), 1.0), {})),
    "implicit_bias.q_function": _mk(lambda: ((torch.tensor([0.0, 0.5, -2.0], dtype=F64),), {})),
    "implicit_bias.q_potential": _mk(lambda: ((torch.tensor([1.0, -2.0], dtype=F64), 1.0), {})),
    "implicit_bias.separable_dataset": _c(10, 3, 0.25),
    "implicit_bias.sgd_fluctuation_dissipation": _mk(
        lambda: ((x_data(6, 2, 7), y_data(6, 8), 0.05, 2, 50), {"chains": 8})
    ),
    "implicit_bias.soudry_asymptotics": _mk(lambda: ((*sep_data(), 1.0), {})),
    "implicit_bias.valley_drift_prediction": _c(2.0, 0.1, 100, noise=1.0),
    "implicit_bias.valley_sgd": _c(2.0, 0.1, 20, chains=10, n_log=5),
    "implicit_bias.walk_density": _c(1.0),
    # kernels
    "kernels.Cholesky.logdet": _c(instance=_chol),
    "kernels.Cholesky.solve": _mk(lambda: ((np.ones(5),), {}, _chol)),
    "kernels.Cholesky.solve_lower": _mk(lambda: ((np.ones(5),), {}, _chol)),
    "kernels.MercerDecomposition.eigenfunctions": _mk(lambda: ((psd()[:2].numpy(),), {}, _mercer)),
    "kernels.cholesky_in_place": _mk(lambda: ((np.asfortranarray(psd().numpy()),), {})),
    "kernels.fit_exact": _mk(lambda: ((mlp_spec(), x_data(5, 3), y_data(5)), {"ridge": 1e-3})),
    "kernels.fit_falkon": _mk(
        lambda: ((mlp_spec(), x_data(8, 3), y_data(8)), {"ridge": 1e-3, "n_inducing": 4})
    ),
    "kernels.fit_pcg": _mk(
        lambda: ((mlp_spec(), x_data(8, 3), y_data(8)), {"ridge": 1e-3, "rank": 4})
    ),
    "kernels.gp_posterior": _mk(lambda: ((psd(4), psd(4)[:2], y_data(4)), {"noise": 0.01})),
    "kernels.gram_matrix": _mk(lambda: ((mlp_spec(), x_data(4, 3)), {})),
    "kernels.kernel": _mk(lambda: ((mlp_spec(), x_data(4, 3)), {})),
    "kernels.kernel_product": _mk(
        lambda: ((mlp_spec(), x_data(4, 3), x_data(4, 3), y_data(4)), {})
    ),
    "kernels.kernel_ridge": _mk(lambda: ((psd(4), psd(4)[:2], y_data(4)), {"ridge": 0.01})),
    "kernels.layer_kinds": _c(),
    "kernels.log_marginal_likelihood": _mk(lambda: ((psd(4), y_data(4)), {"noise": 0.01})),
    "kernels.maximize_evidence": _mk(
        lambda: ((x_data(5, 3), y_data(5)), {"depths": (1, 2), "max_iter": 5})
    ),
    "kernels.mercer_eigen": _mk(lambda: ((psd(),), {"n_components": 3})),
    "kernels.propagate": _mk(lambda: ((mlp_spec(), x_data(3, 3) @ x_data(3, 3).T, 3), {})),
    "kernels.rkhs_norm": _mk(lambda: ((psd(4), y_data(4)), {})),
    "kernels.sphere_spectrum": _c(mlp_spec(), 3, 6),
    # random_matrices
    "random_matrices.ProductNormLaw": _c((3, 4, 5), 1.0),
    "random_matrices.ProductNormLaw.log_cumulant": _c(
        2, instance=lambda: random_matrices.ProductNormLaw((3, 4, 5))
    ),
    "random_matrices.ProductNormLaw.lognormal": _c(
        instance=lambda: random_matrices.ProductNormLaw((3, 4, 5))
    ),
    "random_matrices.ProductNormLaw.log_cdf": _mk(
        lambda: (
            (torch.tensor([-0.5, 0.0, 0.5], dtype=F64),),
            {},
            lambda: random_matrices.ProductNormLaw((3, 4, 5)),
        )
    ),
    "random_matrices.ProductNormLaw.sample": _c(
        10, seed=0, method="matrices", instance=lambda: random_matrices.ProductNormLaw((3, 4, 5))
    ),
    "random_matrices.marchenko_pastur_cdf": _mk(
        lambda: ((torch.tensor([0.1, 1.0, 2.0], dtype=F64), 0.5), {})
    ),
    "random_matrices.marchenko_pastur_density": _mk(
        lambda: ((torch.tensor([0.1, 1.0, 2.0], dtype=F64), 0.5), {})
    ),
    "random_matrices.marchenko_pastur_edges": _c(0.25, 1.0),
    "random_matrices.marchenko_pastur_ks": _mk(
        lambda: ((random_matrices.sample_marchenko_pastur(20, 40, seed=1), 0.5), {})
    ),
    "random_matrices.marchenko_pastur_moment": _c(3, 0.5, 1.0),
    "random_matrices.sample_marchenko_pastur": _c(8, 16, n_matrices=2, seed=0),
    # regions
    "regions.Pieces1D.packed_patterns": _c(
        instance=lambda: regions.count_pieces_1d(relu_model(1, 3, 1), -1.0, 1.0)
    ),
    "regions.PiecewiseLinearNet.affine": _mk(
        lambda: ((_plnet().hidden[0], x_data(2, 3)), {}, _plnet)
    ),
    "regions.PiecewiseLinearNet.check_input_dim": _c(3, "origin", instance=_plnet),
    "regions.PiecewiseLinearNet.readout": _mk(lambda: ((torch.ones(2, 4, dtype=F64),), {}, _plnet)),
    "regions.PiecewiseLinearNet.widths": _c(3, instance=_plnet),
    "regions.Regions2D.to_input": _mk(lambda: ((torch.zeros(2, 2, dtype=F64),), {}, _regions2d)),
    "regions.count_pieces_1d": _mk(
        lambda: ((relu_model(), -torch.ones(3, dtype=F64), torch.ones(3, dtype=F64)), {})
    ),
    "regions.density_prediction": _c([8], 2, n_quad=16),
    "regions.one_layer_1d_bound": _c(7),
    "regions.pattern_bound": _c(4),
    "regions.piecewise_linear_layers": _mk(lambda: ((relu_model(),), {})),
    "regions.region_density": _c([8], 2, n_lines=10, seed=0),
    "regions.regions_2d": _mk(
        lambda: ((relu_model(2, 3, 1), [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], (-1.0, 1.0)), {})
    ),
    "regions.sawtooth": _c(2),
    "regions.sawtooth_reference": _mk(lambda: ((3, torch.tensor([0.0625, 0.125], dtype=F64)), {})),
    "regions.zaslavsky_count": _c(2, 3),
    # spec
    "spec.MLP": _c(2, "relu", 2.0, 0.1),
    "spec.Conv": _c(4, 3),
    "spec.Conv.learning_rates": _c(27, instance=lambda: spec.Conv(4, 3)),
    "spec.AvgPool": _c(2),
    "spec.LayerNorm": _c(),
    "spec.LayerNorm.ntk_shift": _c(instance=lambda: spec.LayerNorm()),
    "spec.Residual": _c((spec.Nonlinearity("relu"), spec.Dense(2.0, 0.0)), 0.5),
    "spec.conv_layer_from_module": _c(nn.Conv2d(3, 4, 3)),
    "spec.SelfAttention": _c(8, mechanism="identity"),
    "criticality.spec_criticality": _mk(lambda: ((residual_spec(),), {})),
    "criticality.measured_apjn": _mk(
        lambda: (([residual_spec().sample(8, in_dim=3, seed=s) for s in (0, 1)], x_data(4, 3)), {})
    ),
    "dynamics.NTKEigenvalue": _c("largest", every=1),
    "spec.Dense": _c(2.0, 0.1),
    "spec.Dense.learning_rates": _c(4, instance=lambda: spec.Dense(2.0, 0.1)),
    "spec.Serial.check_network": _c(instance=mlp_spec),
    "spec.Serial.check_chain": _c(instance=mlp_spec),
    "spec.Serial.kernel": _mk(lambda: ((x_data(3, 3),), {}, mlp_spec)),
    "spec.Serial.sample": _c(8, in_dim=3, seed=0, instance=mlp_spec),
    "spec.is_pass_through": _c(nn.Identity()),
    "spec.module_activation": _c(nn.Tanh()),
    "spec.spec_from_module": _mk(lambda: ((model(),), {})),
    # parallel
    "parallel.grid": _c(0, a=[1, 2], b=[0.5]),
    "parallel.task_seeds": _c(0, 3),
}


def names_listed() -> set[str]:
    """Every name with an example or an exemption here."""
    return set(EXAMPLES) | set(EXEMPT)
