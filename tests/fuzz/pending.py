"""PENDING: known fuzz failures in modules the fuzz harness's author does not own.

``{(qualified_name, "argument:kind" or "valid"): "what happens"}``. Each entry is a bug for
the module's owner; delete it when it is fixed (tests/test_fuzz.py fails on any failure not
listed here). Modules owned with the harness (bayes_linear, random_matrices,
entropy.covering, kernels.rkhs / corrections, activations, criticality, regions,
implicit_bias, stats) have no entry.
"""

from __future__ import annotations

PENDING: dict[tuple[str, str], str] = {}
