"""Invariants of ``kernel`` over random specs and inputs (hypothesis).

Every expected value here is a second computation of the same kernel along
another route (a transposed matrix, one input at a time, another block size,
another backend, a larger joint matrix), so the tests hold whatever the values.

Properties are checked on both backends ("torch": tensor ops in blocks;
"fused": one compiled loop per pair), and the backends against each other.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dltheory import MLP, Dense
from dltheory.activations import REGISTRY

CLOSED_FORM = ("relu", "leaky_relu", "abs", "erf", "sin", "cos", "identity", "step", "sign")
QUADRATURE = ("tanh", "gelu")

FAST = settings(max_examples=40, deadline=None)
SLOW = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# Strategies -----------------------------------------------------------------------------


@st.composite
def specs(draw: st.DrawFn, activations: tuple[str, ...], max_depth: int = 4):
    """MLP of depth 1-4 with c_w in [0.1, 3], c_b in [0, 1] (shared or per layer)."""
    depth = draw(st.integers(1, max_depth))
    name = draw(st.sampled_from(activations))

    def variances(lo: float, hi: float):
        one = st.floats(lo, hi)
        return draw(st.one_of(one, st.lists(one, min_size=depth + 1, max_size=depth + 1)))

    return MLP(depth, name, c_w=variances(0.1, 3.0), c_b=variances(0.0, 1.0))


def arrays(n_rows: st.SearchStrategy[int], n0: int) -> st.SearchStrategy[np.ndarray]:
    elements = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
    return n_rows.flatmap(lambda n: hnp.arrays(np.float64, (n, n0), elements=elements))


@st.composite
def inputs(draw: st.DrawFn, n_sets: int = 1, max_rows: int = 6):
    """``n_sets`` float64 tensors (1-6 inputs each) sharing n0 in 1-5."""
    n0 = draw(st.integers(1, 5))
    rows = st.integers(1, max_rows)
    out = [torch.from_numpy(draw(arrays(rows, n0))) for _ in range(n_sets)]
    return out[0] if n_sets == 1 else out


# Helpers --------------------------------------------------------------------------------


def assert_close(actual: torch.Tensor, expected: torch.Tensor, rtol: float) -> None:
    """Elementwise relative tolerance, with an absolute floor at the matrix's scale."""
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale)


def assert_states_close(actual, expected, rtol: float) -> None:
    assert_close(actual.nngp, expected.nngp, rtol)
    assert_close(actual.ntk, expected.ntk, rtol)


def assert_psd(matrix: torch.Tensor) -> None:
    eig = torch.linalg.eigvalsh(matrix)
    assert float(eig.min()) >= -1e-10 * float(eig.abs().max()) - 1e-12, eig


def check_symmetric_psd(k) -> None:
    for matrix in (k.nngp, k.ntk):
        assert matrix.dtype == torch.float64
        assert_close(matrix, matrix.T, 1e-14)  # exact: see test_symmetric_kernel_is_exact
        assert_psd(matrix)


def check_diagonal(spec, x: torch.Tensor, k, backend: str, rtol: float = 1e-12) -> None:
    assert torch.equal(k.cov1, k.nngp.diagonal())
    assert torch.equal(k.cov2, k.cov1)
    for i in range(len(x)):
        alone = spec.kernel(x[i : i + 1], backend=backend)
        assert_close(alone.nngp[0, 0], k.nngp[i, i], rtol)
        assert_close(alone.ntk[0, 0], k.ntk[i, i], rtol)


def check_cross_block(spec, x1: torch.Tensor, x2: torch.Tensor, backend: str) -> None:
    cross = spec.kernel(x1, x2, backend=backend)
    joint = spec.kernel(torch.cat([x1, x2]), backend=backend)
    n1 = len(x1)
    assert cross.shape == (n1, len(x2))
    assert_close(cross.nngp, joint.nngp[:n1, n1:], 1e-10)
    assert_close(cross.ntk, joint.ntk[:n1, n1:], 1e-10)
    assert_close(cross.cov1, joint.cov1[:n1], 1e-10)
    assert_close(cross.cov2, joint.cov1[n1:], 1e-10)


BACKENDS = st.sampled_from(["torch", "fused"])


# Closed-form activations ----------------------------------------------------------------


@FAST
@given(spec=specs(CLOSED_FORM), x=inputs(), backend=BACKENDS)
def test_closed_form_kernels_symmetric_and_psd(spec, x, backend):
    check_symmetric_psd(spec.kernel(x, backend=backend))


@FAST
@given(spec=specs(CLOSED_FORM), x=inputs(), backend=BACKENDS)
def test_closed_form_diagonal_is_the_one_input_kernel(spec, x, backend):
    check_diagonal(spec, x, spec.kernel(x, backend=backend), backend=backend)


@FAST
@given(spec=specs(CLOSED_FORM), x=inputs(), backend=BACKENDS)
def test_closed_form_kernel_of_x_with_itself_is_the_symmetric_kernel(spec, x, backend):
    both = spec.kernel(x, x, backend=backend)
    one = spec.kernel(x, backend=backend)
    assert_states_close(both, one, 1e-10)
    assert_close(both.cov2, one.cov1, 1e-10)


@FAST
@given(spec=specs(CLOSED_FORM), x=inputs(), block=st.sampled_from([1, 2, 3]))
def test_closed_form_blocked_equals_unblocked(spec, x, block):
    whole = spec.kernel(x, backend="torch")
    assert_states_close(spec.kernel(x, backend="torch", block_size=block), whole, 1e-12)
    layered = spec.kernel(x, backend="torch", block_size=block, return_layers=True)
    assert_states_close(layered, whole, 1e-12)
    assert len(layered.layers) == spec.depth + 1
    assert_states_close(layered.layers[-1], whole, 1e-12)


@FAST
@given(spec=specs(CLOSED_FORM), xs=inputs(n_sets=2), block=st.sampled_from([None, 1, 2]))
def test_closed_form_cross_kernel_is_the_joint_off_diagonal_block(spec, xs, block):
    x1, x2 = xs
    assert_states_close(
        spec.kernel(x1, x2, backend="torch", block_size=block),
        spec.kernel(x1, x2, backend="torch"),
        1e-12,
    )
    check_cross_block(spec, x1, x2, backend="torch")
    check_cross_block(spec, x1, x2, backend="fused")


@FAST
@given(spec=specs(CLOSED_FORM), xs=inputs(n_sets=2))
def test_closed_form_torch_backend_equals_fused_and_auto(spec, xs):
    x1, x2 = xs
    reference = spec.kernel(x1, backend="torch")
    for backend in ("fused", "auto"):
        other = spec.kernel(x1, backend=backend)
        assert_states_close(other, reference, 1e-12)
        assert_close(other.cov1, reference.cov1, 1e-12)
    reference = spec.kernel(x1, x2, backend="torch", return_layers=True)
    for backend in ("fused", "auto"):
        other = spec.kernel(x1, x2, backend=backend, return_layers=True)
        assert_states_close(other, reference, 1e-12)
        assert len(other.layers) == len(reference.layers) == spec.depth + 1
        for mine, theirs in zip(other.layers, reference.layers, strict=True):
            assert_states_close(mine, theirs, 1e-12)


@pytest.mark.parametrize("backend", ["torch", "fused"])
def test_symmetric_kernel_is_exactly_symmetric(backend):
    # A BLAS Gram x @ x.T is not exactly symmetric for n0 = 5 (1.8e-15 apart here);
    # the kernel of one set of inputs must still be, as the mirrored blocks are.
    x = torch.tensor(
        [
            [-1.8, -2.1, -0.1, 2.5, 0.4],
            [-0.1, 1.8, -0.8, -1.4, -2.8],
            [1.5, -0.9, 0.2, -0.2, 2.2],
            [-2.8, 3.0, 2.3, 1.6, -1.5],
            [-1.9, 2.9, 1.7, -0.8, 0.4],
        ],
        dtype=torch.float64,
    )
    k = MLP(1, "relu").kernel(x, backend=backend)
    assert torch.equal(k.nngp, k.nngp.T)
    assert torch.equal(k.ntk, k.ntk.T)


@pytest.mark.parametrize("name", ["relu", "erf", "sign"])
def test_auto_backend_on_a_large_problem_equals_torch(name, rtol=1e-12):
    # Enough pairs x layers for "auto" to choose the fused loop; rows checked in a strip.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 4, generator=g, dtype=torch.float64)
    spec = MLP(2, name, c_w=1.7, c_b=0.2)
    auto = spec.kernel(x)
    strip = spec.kernel(x[:4], x, backend="torch")
    assert_close(auto.nngp[:4], strip.nngp, rtol)
    assert_close(auto.ntk[:4], strip.ntk, rtol)
    check_symmetric_psd(auto)


# Quadrature activations ----------------------------------------------------------------
# A torch-backend kernel costs ~0.1-0.5 s here (Hermite tables up to degree 128), so one
# test checks every invariant on each of a few examples.


@SLOW
@given(
    spec=specs(QUADRATURE, max_depth=2),
    xs=inputs(n_sets=2, max_rows=3),
    pick=st.integers(0),
    block=st.sampled_from([1, 2, 3]),
)
def test_quadrature_kernel_invariants(spec, xs, pick, block):
    x1, x2 = xs
    x, n1 = torch.cat([x1, x2]), len(x1)
    k = spec.kernel(x, backend="torch")
    check_symmetric_psd(k)
    assert torch.equal(k.cov1, k.nngp.diagonal())
    # blocked == unblocked
    assert_states_close(spec.kernel(x, backend="torch", block_size=block), k, 1e-12)
    # diagonal == the kernel of one input
    i = pick % len(x)
    alone = spec.kernel(x[i : i + 1], backend="torch")
    assert_close(alone.nngp[0, 0], k.nngp[i, i], 1e-12)
    assert_close(alone.ntk[0, 0], k.ntk[i, i], 1e-12)
    # kernel(x1, x1) == kernel(x1); kernel(x1, x2) == off-diagonal block of kernel(x)
    same = spec.kernel(x1, x1, backend="torch")
    assert_close(same.nngp, k.nngp[:n1, :n1], 1e-10)
    assert_close(same.ntk, k.ntk[:n1, :n1], 1e-10)
    cross = spec.kernel(x1, x2, backend="torch")
    assert_close(cross.nngp, k.nngp[:n1, n1:], 1e-10)
    assert_close(cross.ntk, k.ntk[:n1, n1:], 1e-10)
    # the fused Mehler series agrees wherever it certifies every pair
    for args, reference in (((x,), k), ((x1, x2), cross)):
        try:
            fused = spec.kernel(*args, backend="fused")
        except ValueError as err:
            assert str(err).startswith("backend must be "), err
            continue
        assert_states_close(fused, reference, 1e-9)
        if len(args) == 1:
            check_symmetric_psd(fused)


# Malformed inputs: only ValueError / TypeError, one line, naming the argument ------------

GOOD = np.ones((3, 2))


def _kernel(x1, x2=None):
    return lambda: MLP(1, "relu").kernel(x1, x2, backend="torch")


finite = st.floats(-3.0, 3.0, allow_nan=False)
positions = st.tuples(st.integers(0, 2), st.integers(0, 1))
which = st.sampled_from(["x1", "x2"])


def _as(name: str, x):
    """A kernel call with ``x`` in the named slot and a good array in the other."""
    return (name, _kernel(x) if name == "x1" else _kernel(GOOD, x))


wrong_ndim = st.tuples(which, st.sampled_from([(3,), (1, 3, 2), (2, 1, 1, 2)])).map(
    lambda t: _as(t[0], np.ones(t[1]))
)
non_finite = st.tuples(which, positions, st.sampled_from([np.nan, np.inf, -np.inf])).map(
    lambda t: _as(t[0], np.where(np.arange(6).reshape(3, 2) == 2 * t[1][0] + t[1][1], t[2], 1.0))
)
mismatched = (
    st.integers(1, 5).filter(lambda n: n != 2).map(lambda n: ("x2", _kernel(GOOD, np.ones((2, n)))))
)
empty = st.tuples(which, st.sampled_from([(0, 2), (3, 0), (0, 0)])).map(
    lambda t: _as(t[0], np.ones(t[1]))
)
strings = st.tuples(which, st.text(max_size=8)).map(lambda t: _as(*t))
ragged = (
    st.tuples(which, st.lists(st.lists(finite, min_size=1, max_size=4), min_size=2, max_size=4))
    .filter(lambda t: len({len(row) for row in t[1]}) > 1)
    .map(lambda t: _as(*t))
)
complex_tensors = st.tuples(which, st.complex_numbers(max_magnitude=3)).map(
    lambda t: _as(t[0], torch.full((3, 2), t[1], dtype=torch.complex128))
)
variance_name = st.sampled_from(["c_w", "c_b"])
boolean_variances = st.tuples(variance_name, st.booleans(), st.booleans()).map(
    lambda t: (
        t[0],
        (lambda: MLP(2, **{t[0]: t[1]})) if t[2] else (lambda: Dense(**{t[0]: t[1]})),
    )
)
negative = st.one_of(st.floats(max_value=0.0, exclude_max=True), st.integers(max_value=-1))
negative_variances = st.tuples(variance_name, negative, st.booleans()).map(
    lambda t: (
        t[0],
        (lambda: MLP(2, **{t[0]: [1.0, t[1], 1.0]})) if t[2] else (lambda: Dense(**{t[0]: t[1]})),
    )
)
bad_depth = st.integers(max_value=0).map(lambda d: ("depth", lambda: MLP(d)))
non_integer_width = st.tuples(
    st.one_of(st.floats(allow_nan=True), st.text(max_size=4), st.just(True), st.just(2.0)),
    st.booleans(),
).map(lambda t: ("width", (lambda: MLP(2, width=t[0])) if t[1] else (lambda: Dense(width=t[0]))))
unknown_activation = (
    st.text(max_size=12)
    .filter(lambda s: s.strip().lower().replace("-", "_") not in REGISTRY)
    .map(lambda s: ("activation", lambda: MLP(2, s)))
)

MALFORMED = st.one_of(
    wrong_ndim,
    non_finite,
    mismatched,
    empty,
    strings,
    ragged,
    complex_tensors,
    boolean_variances,
    negative_variances,
    bad_depth,
    non_integer_width,
    unknown_activation,
)


@settings(max_examples=40, deadline=None)
@given(case=MALFORMED)
def test_malformed_inputs_raise_one_line_messages_naming_the_argument(case):
    name, call = case
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    text = str(info.value)
    assert "\n" not in text, text
    assert text.startswith(f"{name} must be "), text
