"""The tiled fused loops (``gram_matrix``, residual / LayerNorm MLPs) against the torch
interpreters, fdlibm's rational arccos against mpmath, and torch's thread count."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from dltheory import MLP, _fastmath
from dltheory.kernels import gram_matrix
from dltheory.spec import Dense, LayerNorm, Nonlinearity, Residual, Serial

# Each of the few layers adds a few ulps of rounding (the fused loops multiply by
# 1 / sqrt(K_aa) where the torch forms divide, and use another arccos): 1e-13 of the
# largest entry leaves a margin of ~100x over 3-12 layers of ~1e-16 each.
RTOL = 1e-13


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    # 131 rows: three 64-row tiles, the last one partial.
    return torch.from_numpy(np.random.default_rng(3).standard_normal((131, 6)))


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=0, atol=RTOL * np.abs(b).max())


@pytest.mark.parametrize("activation", ["relu", "erf", "leaky_relu", "sin"])
@pytest.mark.parametrize("kind", ["nngp", "ntk"])
@pytest.mark.parametrize("tile", [None, 1, 7, 64, 200])
def test_tiled_gram_equals_the_torch_interpreter(x, activation, kind, tile):
    spec = MLP(3, activation, c_w=1.5, c_b=0.1)
    ref = getattr(spec.kernel(x, backend="torch"), kind).numpy()
    out = gram_matrix(spec, x, kind=kind, block_rows=tile)
    _close(out, ref)
    np.testing.assert_array_equal(out, out.T)  # each tile written with its mirror
    np.testing.assert_array_equal(np.diagonal(out), np.diagonal(ref))  # the 1-D recursion


def test_gram_of_a_series_activation_still_runs_in_panels(x):
    spec = MLP(2, "tanh", c_w=1.5, c_b=0.1)  # no scalar closed form: Mehler series
    ref = spec.kernel(x, backend="torch").nngp.numpy()
    out = gram_matrix(spec, x)
    # The series is certified to the activation's tolerance (1e-12 relative per map).
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-11 * np.abs(ref).max())
    np.testing.assert_array_equal(out, out.T)


def test_tiled_gram_refuses_inputs_of_the_wrong_width(x):
    spec = MLP(2, "relu", in_dim=5)
    with pytest.raises(ValueError, match="in_dim=5"):
        gram_matrix(spec, x)


def _residual_specs() -> dict[str, Serial]:
    relu = Nonlinearity("relu")
    dense = Dense(2.0, 0.1)
    norm = LayerNorm(affine=False, eps=1e-12)
    return {
        "residual": Serial(dense, *[Residual((relu, dense))] * 4, relu, Dense(2.0, 0.1, width=1)),
        "scaled": Serial(dense, *[Residual((relu, dense), gamma=0.8, alpha=0.6)] * 3, relu, dense),
        "layernorm": Serial(*[m for _ in range(4) for m in (dense, norm, relu)], dense),
        "erf": Serial(dense, *[Residual((Nonlinearity("erf"), dense))] * 3, dense),
        "two branches": Serial(
            dense, Residual((relu, dense), skip=(Nonlinearity("erf"), dense)), dense
        ),
    }


@pytest.mark.parametrize("name", list(_residual_specs()))
def test_tiled_residual_and_layernorm_loops_equal_the_graph_rules(x, name):
    spec = _residual_specs()[name]
    ref = spec.kernel(x, backend="torch")
    for got, want in ((spec.kernel(x), ref), (spec.kernel(x[:70], x[50:]), None)):
        want_k = ref.nngp.numpy() if want is not None else ref.nngp.numpy()[:70, 50:]
        want_t = ref.ntk.numpy() if want is not None else ref.ntk.numpy()[:70, 50:]
        _close(got.nngp.numpy(), want_k)
        _close(got.ntk.numpy(), want_t)
    full = spec.kernel(x)
    np.testing.assert_array_equal(full.nngp.numpy(), full.nngp.numpy().T)
    np.testing.assert_array_equal(full.ntk.numpy(), full.ntk.numpy().T)


def test_numba_loops_leave_torch_thread_count_alone(x):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        MLP(3, "relu").kernel(x)  # the fused chain loop
        gram_matrix(MLP(3, "relu"), x)  # the tiled Gram
        _residual_specs()["residual"].kernel(x)  # the fused graph loop
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def _acos_points() -> np.ndarray:
    rng = np.random.default_rng(0)
    near_one = 1 - np.logspace(-16, -0.3, 300)
    special = [0.0, 0.5, -0.5, np.nextafter(0.5, 0), np.nextafter(-0.5, 0), 1.0, -1.0]
    special += [np.nextafter(1.0, 0), np.nextafter(-1.0, 0), 1e-300, -1e-300, 5e-324]
    tiny = np.logspace(-300, -1, 100)
    pts = np.concatenate([rng.uniform(-1, 1, 2000), near_one, -near_one, tiny, -tiny, special])
    return np.clip(pts, -1, 1)


def test_rational_acos_against_mpmath():
    mpmath.mp.prec = 120
    pts = _acos_points()
    compiled = np.array([_fastmath.acos_rational(float(p)) for p in pts])
    worst = 0.0
    for p, got in zip(pts, compiled, strict=True):
        want = mpmath.acos(mpmath.mpf(float(p)))
        worst = max(worst, float(abs((mpmath.mpf(got) - want) / want)) if want else abs(got))
    # fdlibm's approximant errs below 2^-58.75 on |x| <= 1/2; with the roundings of
    # sqrt, the two additions and the final sum: within 2 ulps (2 * 2^-52 = 4.4e-16).
    assert worst <= 2 * 2.0**-52, worst
    assert _fastmath.acos_rational(1.0) == 0.0
    assert _fastmath.acos_rational(-1.0) == math.pi
    assert _fastmath.acos_rational(0.0) == math.pi / 2


def test_rational_acos_python_and_compiled_agree():
    py = getattr(_fastmath.acos_rational, "py_func", _fastmath.acos_rational)
    for p in _acos_points()[::7]:
        assert py(float(p)) == _fastmath.acos_rational(float(p))
