"""Known spectra with repeated eigenvalues, honest float32 residuals, the Hutch++
exactness claim, and the model/data policy (Dropout, labels, inputs, NaN vectors)."""

from __future__ import annotations

import pytest
import torch

from dltheory.curvature import (
    GGNOperator,
    HessianOperator,
    gauss_newton_decomposition,
    gauss_newton_parts,
    gradient_overlap,
    hessian_eigenvalues,
    hessian_spectral_density,
    hessian_trace,
    hutchpp_trace,
    lanczos_eigenpairs,
)
from dltheory.finite.model_function import ModelState

from .zoo import dense_reference, make_case

SPECTRUM = [1.516, 1.516, 1.516, 1.055, 1.012, 0.899]


def mse(o, t):
    return 0.5 * ((o - t) ** 2).sum(1).mean()


def least_squares(dtype=torch.float64, d: int = 300, n: int = 400):
    """Linear least squares whose Hessian X^T X / N has the known spectrum
    SPECTRUM + a bulk in (0.05, 0.85): X = sqrt(N) Q diag(sqrt(lambda)) U^T."""
    g = torch.Generator().manual_seed(3)
    lam = torch.cat(
        [
            torch.tensor(SPECTRUM, dtype=torch.float64),
            0.05 + 0.8 * torch.rand(d - len(SPECTRUM), generator=g, dtype=torch.float64),
        ]
    ).double()
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    Q, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=torch.float64))
    X = n**0.5 * Q @ torch.diag(lam.sqrt()) @ U.T
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    lin = torch.nn.Linear(d, 1, bias=False).to(dtype)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(1, d, generator=g))
    return lin, X.to(dtype), y.to(dtype), lam, U


def test_triple_eigenvalue_found_with_multiplicity():
    lin, X, y, _, _ = least_squares()
    r = hessian_eigenvalues(lin, mse, (X, y), k=4, tol=1e-10, return_eigenvectors=True)
    assert r.converged
    expected = torch.tensor(SPECTRUM[:4], dtype=torch.float64)
    # Certified: each Ritz value within tol |theta| of an eigenvalue (multiplicity counted).
    assert torch.allclose(r.eigenvalues, expected, rtol=1e-9, atol=0)
    V = r.eigenvectors
    assert torch.allclose(V.T @ V, torch.eye(4, dtype=torch.float64), atol=1e-10)


def test_gradient_overlap_uses_the_whole_repeated_eigenspace():
    lin, X, y, _, U = least_squares()
    w = lin.weight.detach().double().reshape(-1)
    g = X.T @ (X @ w - y.reshape(-1)) / X.shape[0]  # the least-squares gradient
    exact = float(((U[:, :3].T @ g) ** 2).sum() / (g @ g))
    r = gradient_overlap(lin, mse, (X, y), k=3, tol=1e-10)
    # The top-3 eigenspace is exact to ~residual / gap = 1e-10 / 0.46.
    assert r.overlap == pytest.approx(exact, abs=1e-8)


def test_float32_residuals_are_true_residuals():
    lin, X, y, lam, _ = least_squares(torch.float32)
    r = hessian_eigenvalues(lin, mse, (X, y), k=4, tol=1e-10, return_eigenvectors=True)
    H = (X.double().T @ X.double()) / X.shape[0]
    V = r.eigenvectors.double()
    true = (H @ V - V * r.eigenvalues.double()).norm(dim=0)
    eps = torch.finfo(torch.float32).eps
    # Reported = true up to the float32 rounding of the products (~ a few eps ||H||),
    # never the ~1e-17 a three-term recurrence would claim.
    assert torch.allclose(r.residuals.double(), true, atol=20 * eps * 1.516)
    assert float(r.residuals.min()) > 1e-3 * eps * 1.516
    if r.converged:  # the floor is eps-level: certified pairs really are that close
        assert bool((true <= 200 * eps * 1.516).all())
    assert torch.allclose(r.eigenvalues.double(), lam[:4], atol=200 * eps * 1.516)


def test_restarted_basis_stays_bounded_and_converges():
    lam = torch.linspace(0.0, 1.0, 2000, dtype=torch.float64) ** 4
    A = torch.diag(lam)
    sizes = []

    def op(v):
        sizes.append(v.numel())
        return A @ v

    r = lanczos_eigenpairs(op, 2000, k=3, tol=1e-8, max_basis=10)
    assert r.converged and r.n_matvecs > 10  # restarted at least once
    assert torch.allclose(r.eigenvalues, lam.flip(0)[:3], rtol=1e-8)


def test_hutchpp_is_exact_only_when_the_sketch_spans_everything():
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=torch.float64))
    A = Q @ torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64)) @ Q.T
    # 2 k >= dim with k < dim (n = 18, k = 6): an estimate, not exact.
    z = []
    for seed in range(30):
        r = hutchpp_trace(lambda v: A @ v, 10, n_matvecs=18, seed=seed)
        assert r.stderr > 0
        z.append((r.estimate - 55.0) / r.stderr)
    z = torch.tensor(z)
    assert bool((z.abs() < 6).all())  # honest errors (t with 5 d.o.f.: |t| > 6 has p < 0.2 %)
    exact = hutchpp_trace(lambda v: A @ v, 10, n_matvecs=30)  # k = 10 = dim
    assert exact.stderr == 0.0 and exact.estimate == pytest.approx(55.0, rel=1e-12)


PUBLIC = {
    "HessianOperator": lambda m, f, d: HessianOperator(m, f, d),
    "GGNOperator": lambda m, f, d: GGNOperator(m, f, d),
    "hessian_eigenvalues": lambda m, f, d: hessian_eigenvalues(m, f, d, k=1, tol=1e-3),
    "hessian_trace": lambda m, f, d: hessian_trace(m, f, d, n_matvecs=6),
    "hessian_spectral_density": lambda m, f, d: hessian_spectral_density(
        m, f, d, n_probes=2, n_steps=3
    ),
    "gradient_overlap": lambda m, f, d: gradient_overlap(m, f, d, k=1, tol=1e-3),
    "gauss_newton_parts": lambda m, f, d: gauss_newton_parts(m, d),
    "gauss_newton_decomposition": lambda m, f, d: gauss_newton_decomposition(m, d, k=1, tol=1e-3),
}


@pytest.mark.parametrize("fn", list(PUBLIC), ids=list(PUBLIC))
def test_dropout_in_train_mode_refused_in_one_line(fn):
    case = make_case("dropout_mlp", torch.float64, train=True)
    before = ModelState.of(case.model)
    with pytest.raises(
        ValueError, match=r"Dropout at '3' in train mode\"\. Call model\.eval\(\)"
    ) as e:
        PUBLIC[fn](case.model, case.loss_fn, (case.x, case.y))
    assert "\n" not in str(e.value)
    assert before.changes(case.model) == []


@pytest.mark.parametrize("fn", list(PUBLIC), ids=list(PUBLIC))
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_bad_data_one_line_and_nothing_changed(fn, train):
    case = make_case("conv_bn", torch.float64, train=train)
    before = ModelState.of(case.model)
    x, y = case.x, case.y
    bad = [
        ((x, y + 3), ValueError, r"data targets must be class indices in 0\.\.2"),
        ((x, y == 1), ValueError, r"data targets must be integer class indices"),
        ((x, y[:, None]), ValueError, r"data targets must be class indices of shape \(n,\)"),
        ((x.to(torch.complex128), y), TypeError, r"data inputs must be a real or integer"),
        ((x[0, 0, 0, 0], y), ValueError, r"data must be batches with at least one sample"),
    ]
    for data, err, pattern in bad:
        with pytest.raises(err, match=pattern) as e:
            PUBLIC[fn](case.model, case.loss_fn, data)
        assert "\n" not in str(e.value)
    PUBLIC[fn](case.model, case.loss_fn, (x, y))  # and the good data runs
    assert before.changes(case.model) == []


def test_integer_tokens_reach_the_model_as_integers():
    case = make_case("transformer", torch.float32)
    seen = []
    case.model.embed.register_forward_pre_hook(lambda mod, args: seen.append(args[0].dtype))
    HessianOperator(case.model, case.loss_fn, (case.x, case.y))
    assert seen and set(seen) == {torch.int64}


@pytest.mark.parametrize("cls", [HessianOperator, GGNOperator])
def test_nan_vector_refused(cls):
    case = make_case("group_norm", torch.float64)
    op = cls(case.model, case.loss_fn, (case.x, case.y))
    v = torch.zeros(op.shape[0], dtype=torch.float64)
    v[3] = float("nan")
    with pytest.raises(ValueError, match=r"v must be finite \(no NaN or inf\)"):
        op @ v


@pytest.mark.parametrize(("name", "train"), [("conv_bn", True), ("transformer", False)])
def test_both_product_methods_match_the_dense_hessian(name, train):
    case = make_case(name, torch.float64, train=train)
    H, _, _ = dense_reference(case)
    V = torch.randn(H.shape[0], 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    before = ModelState.of(case.model)
    for method in ("linearize", "vjp"):
        op = HessianOperator(case.model, case.loss_fn, (case.x, case.y), method=method)
        # float64 products of the same derivatives: rounding level, 1e-12 ||H||.
        assert torch.allclose(op @ V, H @ V, atol=1e-12 * float(H.abs().max()) * H.shape[0])
        assert op.method == method
    assert before.changes(case.model) == []
