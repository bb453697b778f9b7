"""Tests of dltheory.report (a package, so that basenames like test_registry.py stay unique)."""
