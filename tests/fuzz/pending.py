# ruff: noqa: E501
"""PENDING: known fuzz failures in modules the fuzz harness's author does not own.

``{(qualified_name, "argument:kind" or "valid"): "what happens"}``, grouped by owner. Each entry is
a bug for that module's owner: delete it when it is fixed (``tests/test_fuzz.py`` fails on any
failure not listed here, and skips the listed ones in its sample). The modules fixed with the
harness (activations, bayes_linear, criticality, entropy.covering, implicit_bias, kernels.rkhs /
corrections, random_matrices, regions, stats) have no entry.
"""

from __future__ import annotations

# fmt: off
PENDING: dict[tuple[str, str], str] = {
    # ---- curvature / dynamics / finite (issue 19): 231 ----
    ('dynamics.catapult_scan', 'steps:1e12'): 'hang: no answer in 5 s',
    ('dynamics.catapult_scan', 'x:x1e300'): 'foreign: _LinAlgError: linalg.eigh: The algorithm failed to converge because the input matrix is ill-conditioned or has',
    # ---- estimators / gp / solvers / cholesky / gram / parallel (issue 24): 72 ----
    ('estimators.NNGPClassifier', 'depth:1e12'): 'foreign: MemoryError:  at mlp.py:28',
    ('estimators.NNGPRegressor', 'depth:1e12'): 'foreign: MemoryError:  at mlp.py:28',
    ('estimators.NTKClassifier', 'depth:1e12'): 'foreign: MemoryError:  at mlp.py:28',
    ('estimators.NTKRegressor', 'depth:1e12'): 'foreign: MemoryError:  at mlp.py:28',
    ('kernels.maximize_evidence', 'y:x1e300'): 'nan: non-finite log_marginal_likelihood.-inf',
    # ---- report / cli / Johnson-Lindenstrauss (issue 22): 3 ----
    # ---- spec / kernels blocked, recursion, state, fused (issues 20, 21): 7 ----
}
# fmt: on
