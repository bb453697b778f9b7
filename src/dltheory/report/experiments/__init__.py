"""The course's reproductions, one module per topic.

To add a reproduction: write ``run(quick, seed) -> Outcome`` in the topic's
module (or a new module), decorate it with
:func:`dltheory.report.registry.reproduction`, and list a new module in
``MODULES`` below (a test checks that every module here is listed). The
report runs topics in the order of ``MODULES``.
"""

from __future__ import annotations

import importlib

__all__ = ["MODULES", "load"]

MODULES = (
    "propagation",  # initialisation, information propagation
    "finite_width",  # NNGP limit: finite networks become Gaussian
    "criticality",  # critical initialisation, power-law decay at K* = 0
)


def load() -> None:
    """Import every topic module (each registers its reproductions once)."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
