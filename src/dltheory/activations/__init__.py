"""Activations: torch functions beside their Gaussian expectations.

>>> from dltheory.activations import activation
>>> activation("erf").has_closed_form
True
"""

from .base import Activation
from .registry import REGISTRY, activation, names

__all__ = ["REGISTRY", "Activation", "activation", "names"]
