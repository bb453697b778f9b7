"""Former home of :class:`~dltheory.stats.Estimate`, kept so old imports work."""

from ..stats import Estimate

__all__ = ["Estimate"]
