"""Tests of dltheory.implicit_bias."""
