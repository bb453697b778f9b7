"""The registry of reproductions and the ``@reproduction`` decorator.

A reproduction is a function ``run(quick: bool, seed: int) -> Outcome`` in a
topic module of :mod:`dltheory.report.experiments`, registered with::

    @reproduction(
        "fan_in_variance",
        title="He initialisation preserves the preactivation variance",
        claim="With C_w = 2, C_b = 0 a ReLU MLP keeps K^(l)_aa = 2 |x|^2 / n_0 at every layer.",
        topic="initialisation",
    )
    def fan_in_variance(quick: bool = False, seed: int = 0) -> Outcome: ...

``quick=True`` asks for a small run (seconds) that still exercises every step.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._checks import message

if TYPE_CHECKING:
    from .result import Outcome

__all__ = ["REGISTRY", "Reproduction", "registered", "reproduction", "select"]

Run = Callable[..., "Outcome"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Reproduction:
    """A registered reproduction.

    Attributes:
        name: unique snake_case identifier (``--only NAME``).
        title: a short headline.
        claim: the theoretical statement it checks, in one or two sentences.
        run: ``run(quick=..., seed=...) -> Outcome``.
        topic: the topic (one page of the documentation's Topics), for grouping.
        reference: where the claim comes from.
    """

    name: str
    title: str
    claim: str
    run: Run
    topic: str = ""
    reference: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(
                message("name", "a snake_case identifier such as 'fan_in_variance'", self.name)
            )
        for attr in ("title", "claim"):
            if not isinstance(getattr(self, attr), str) or not getattr(self, attr).strip():
                raise ValueError(message(attr, "a non-empty string", getattr(self, attr)))
        if not callable(self.run):
            raise TypeError(message("run", "callable as run(quick=..., seed=...)", self.run))


REGISTRY: dict[str, Reproduction] = {}


def reproduction(
    name: str,
    *,
    title: str,
    claim: str,
    topic: str = "",
    reference: str = "",
    registry: MutableMapping[str, Reproduction] = REGISTRY,
) -> Callable[[Run], Run]:
    """Register the decorated ``run(quick, seed) -> Outcome`` under ``name``.

    The function is returned unchanged, so it can still be called directly.

    Raises:
        ValueError: ``name`` is not snake_case or is already registered.

    >>> from dltheory.report.result import Outcome
    >>> mine = {}
    >>> @reproduction("demo", title="Demo", claim="1 = 1.", registry=mine)
    ... def demo(quick=False, seed=0):
    ...     ...
    >>> list(mine)
    ['demo']
    """

    def register(run: Run) -> Run:
        rep = Reproduction(name, title, claim, run, topic, reference)
        if name in registry:
            where = getattr(registry[name].run, "__module__", "?")
            raise ValueError(
                message("name", "unique among reproductions", name, f"{where} registers it already")
            )
        registry[name] = rep
        return run

    return register


def registered() -> dict[str, Reproduction]:
    """Every registered reproduction, in report order (imports the topic modules).

    Report order is the order of ``experiments.MODULES``, then definition order
    within a module; reproductions registered elsewhere come last.
    """
    from . import experiments

    experiments.load()
    rank = {f"{experiments.__name__}.{m}": i for i, m in enumerate(experiments.MODULES)}
    ordered = sorted(REGISTRY.values(), key=lambda rep: rank.get(rep.run.__module__, len(rank)))
    return {rep.name: rep for rep in ordered}


def select(
    only: str | Iterable[str] | None, registry: Mapping[str, Reproduction]
) -> list[Reproduction]:
    """The reproductions named by ``only`` (all when ``None``), in registry order.

    Raises:
        ValueError: a name that is not registered (the message lists the known ones).
    """
    if only is None:
        return list(registry.values())
    names = [only] if isinstance(only, str) else list(only)
    if not names:
        return list(registry.values())
    for name in names:
        if name not in registry:
            known = ", ".join(registry) or "(none registered)"
            raise ValueError(
                message(
                    "only",
                    f"names of registered reproductions ({known})",
                    name,
                    "List them with 'dltheory report --list'",
                )
            )
    wanted = set(names)
    return [rep for rep in registry.values() if rep.name in wanted]
