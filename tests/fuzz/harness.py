"""Fuzz the public API: one valid call per public callable, then one argument changed at a time.

The targets are read from ``__all__`` of every subpackage (functions, classes with a checked
constructor, and the public methods those classes define). Each target needs an example call
in :mod:`tests.fuzz.examples` or an exemption (``__fuzz_exempt__`` in its module, or
:data:`tests.fuzz.examples.EXEMPT`), else :func:`targets` raises. Every argument of the example
(and every keyword with a scalar default) is then replaced, one at a time, by the bad values of
:func:`variants`, and each call is classified:

* ``clean``: a finite result, or a one-line ``ValueError`` / ``TypeError`` raised by dltheory;
* ``sklearn``: a ``ValueError`` / ``TypeError`` raised by scikit-learn's own validation;
* ``foreign``: any other exception (NumPy, torch, Python arithmetic, ...);
* ``nan``: a result with NaN or inf entries (unless the target declares what inf means);
* ``hang``: no answer within the per-call time limit;
* ``changed``: an input array, tensor or model parameter / buffer differs after the call
  (targets whose name says they mutate, ``train``, ``*_`` and ``cholesky_in_place``, are exempt).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import inspect
import math
import numbers
import os
import signal
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

import dltheory

SUBPACKAGES = (
    "activations",
    "bayes_linear",
    "criticality",
    "curvature",
    "dynamics",
    "entropy",
    "estimators",
    "finite",
    "implicit_bias",
    "kernels",
    "random_matrices",
    "regions",
    "spec",
    "stats",
    "parallel",
    "report",
)
OUTCOMES = ("clean", "sklearn", "foreign", "nan", "hang", "changed")
MUTATING = ("train", "cholesky_in_place")
PACKAGE_DIR = os.path.dirname(dltheory.__file__)


class Call(NamedTuple):
    """An example call: positional and keyword arguments, and the instance for a method."""

    args: tuple = ()
    kwargs: dict = {}  # noqa: RUF012 (NamedTuple default, never mutated: calls copy it)
    instance: Callable[[], Any] | None = None
    then: Callable[[Any], Any] | None = None  # e.g. an estimator's fit / predict


class Target(NamedTuple):
    name: str  # "random_matrices.ProductNormLaw.sample"
    module: str  # "random_matrices"
    obj: Any  # the function, class or unbound method
    owner: type | None  # the class for a method


class Case(NamedTuple):
    target: str
    slot: str  # "" for the valid call, else the argument's name
    kind: str  # "valid" or the bad-value kind

    @property
    def key(self) -> tuple[str, str]:
        return (self.target, f"{self.slot}:{self.kind}" if self.slot else self.kind)


class Result(NamedTuple):
    case: Case
    outcome: str
    detail: str
    seconds: float


# ---------------------------------------------------------------- discovery


def _is_record(cls: type) -> bool:
    """Result records (NamedTuples, dataclasses without checks, enums) take no user input."""
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return True
    if dataclasses.is_dataclass(cls) and not hasattr(cls, "__post_init__"):
        return True
    import enum

    return issubclass(cls, enum.Enum)


def _module_exemptions(obj: Any) -> dict[str, str]:
    mod = importlib.import_module(obj.__module__)
    return getattr(mod, "__fuzz_exempt__", {})


def exemption(target: Target) -> str | None:
    """The reason a target is not fuzzed at all, or None."""
    from .examples import EXEMPT

    if target.name in EXEMPT:
        return EXEMPT[target.name]
    local = _module_exemptions(target.owner or target.obj)
    short = target.name.split(".", 1)[1]
    return local.get(short)


def case_exemptions(target: Target) -> dict[str, str]:
    """Per-case exemptions ``{"slot:kind" or "kind": reason}`` declared next to the target."""
    local = _module_exemptions(target.owner or target.obj)
    short = target.name.split(".", 1)[1]
    return local.get(short + ":cases", {})


def inf_allowed(target: Target) -> str:
    """Which non-finite outputs the target documents: "" (none), "inf" (its docstring says
    what inf means: ``"<name>:inf": reason`` in ``__fuzz_exempt__``) or "nan" (NaN too,
    ``"<name>:nan": reason``)."""
    local = _module_exemptions(target.owner or target.obj)
    short = target.name.split(".", 1)[1]
    if short + ":nan" in local:
        return "nan"
    return "inf" if short + ":inf" in local else ""


def _public_methods(cls: type) -> list[tuple[str, Any]]:
    """Public methods a class defines or inherits from dltheory classes (not from torch,
    scikit-learn or the standard library)."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("dltheory"):
            continue
        for meth_name, meth in vars(klass).items():
            if meth_name.startswith("_"):
                continue
            if isinstance(meth, classmethod | staticmethod):
                out[meth_name] = meth.__func__
            elif inspect.isfunction(meth):
                out[meth_name] = meth
    return sorted(out.items())


def discover() -> list[Target]:
    """Every public callable of the package, once (re-exports are deduplicated)."""
    seen: set[int] = set()
    out: list[Target] = []
    for sub in SUBPACKAGES:
        mod = importlib.import_module(f"dltheory.{sub}")
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or id(obj) in seen:
                continue
            if not callable(obj) or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            seen.add(id(obj))
            if inspect.isclass(obj):
                if not _is_record(obj):  # records are built by the library, not by users
                    out.append(Target(f"{sub}.{name}", sub, obj, None))
                for meth_name, func in _public_methods(obj):
                    out.append(Target(f"{sub}.{name}.{meth_name}", sub, func, obj))
            else:
                out.append(Target(f"{sub}.{name}", sub, obj, None))
    # top-level names that are not re-exports of a subpackage
    for name in dltheory.__all__:
        obj = getattr(dltheory, name)
        if inspect.ismodule(obj) or id(obj) in seen:
            continue
        seen.add(id(obj))
        out.append(Target(name, "dltheory", obj, None))
    return out


def targets() -> list[tuple[Target, Callable[[], Call]]]:
    """The fuzzed targets with their example; raises for a target with neither."""
    from .examples import EXAMPLES

    missing = []
    out = []
    for target in discover():
        if exemption(target) is not None:
            continue
        example = EXAMPLES.get(target.name)
        if example is None:
            missing.append(target.name)
            continue
        out.append((target, example))
    if missing:
        raise LookupError(
            "public callables without a fuzz example: "
            + ", ".join(missing)
            + ". Add a valid example call to tests/fuzz/examples.py (EXAMPLES), or an exemption "
            "with its reason next to the function (a module-level __fuzz_exempt__ dict)."
        )
    return out


def stale_examples() -> list[str]:
    """Examples (and exemptions) for names that are no longer public."""
    from .examples import names_listed

    return sorted(set(names_listed()) - {t.name for t in discover()})


# ---------------------------------------------------------------- bad values


def _noncontiguous(t: torch.Tensor) -> torch.Tensor:
    if t.ndim == 0:
        return t
    wide = torch.stack([t, t], dim=-1)
    return wide[..., 0]


def _set_entry(v: Any, index: int, bad: float) -> Any:
    if isinstance(v, torch.Tensor):
        out = v.detach().clone()
        out.view(-1)[index] = bad
        return out
    out = np.array(v, dtype=np.float64, copy=True)
    out.reshape(-1)[index] = bad
    return out


Transform = Callable[[Any], Any]


def _array_variants(value: Any) -> Iterator[tuple[str, Transform]]:
    is_torch = isinstance(value, torch.Tensor)

    def as_t(v: Any) -> torch.Tensor:
        return v.detach() if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))

    def back(v: Any, t: torch.Tensor) -> Any:
        return t if isinstance(v, torch.Tensor) else t.numpy()

    t = as_t(value)
    if t.is_floating_point():
        yield "nan", lambda v: _set_entry(v, 0, float("nan"))
        yield "inf", lambda v: _set_entry(v, -1, float("inf"))
        yield "x1e30", lambda v: v * 1e30
        yield "x1e300", lambda v: v * 1e300
        if t.dtype == torch.float64:
            yield "float32", lambda v: v.float() if is_torch else np.asarray(v, np.float32)
    yield "int", lambda v: back(v, as_t(v).round().to(torch.int64))
    yield "bool", lambda v: back(v, as_t(v) != 0)
    yield "complex", lambda v: back(v, as_t(v).to(torch.complex128) * (1 + 1j))
    yield "object", lambda v: np.asarray(as_t(v).numpy(), dtype=object)
    yield "str", lambda v: "abc"
    if t.is_floating_point() and is_torch:
        yield "requires_grad", lambda v: v.detach().clone().requires_grad_(True)
    if t.ndim >= 1:
        yield "0rows", lambda v: v[:0]
        if t.shape[0] > 1:
            yield "1row", lambda v: v[:1]
            yield "droprow", lambda v: v[:-1]
            if t.shape[0] > 2:
                yield (
                    "duprows",
                    lambda v: (
                        torch.cat([v[:1], v[:1], v[2:]])
                        if isinstance(v, torch.Tensor)
                        else np.concatenate([v[:1], v[:1], v[2:]])
                    ),
                )
        yield "missingdim", lambda v: v[0]
    yield "extradim", lambda v: v[..., None]
    yield "list", lambda v: as_t(v).tolist()
    yield "None", lambda v: None
    if is_torch and t.ndim >= 1:
        yield "noncontiguous", _noncontiguous
        yield "numpy", lambda v: v.detach().numpy().copy()


_INT_BAD = (
    ("0", 0),
    ("-1", -1),
    ("nan", float("nan")),
    ("inf", float("inf")),
    ("1e30", 1e30),
    ("None", None),
    ("str", "3"),
    ("bool", True),
    ("nonint", 1.5),
    ("1e12", 10**12),
)
_FLOAT_BAD = (
    ("0", 0.0),
    ("-1", -1.0),
    ("nan", float("nan")),
    ("inf", float("inf")),
    ("1e30", 1e30),
    ("1e-300", 1e-300),
    ("None", None),
    ("str", "0.5"),
    ("bool", True),
    ("1e12", 10**12),
)


def _constants(table: tuple) -> list[tuple[str, Transform]]:
    return [(kind, lambda v, b=bad: b) for kind, bad in table]


def _sequence_variants(value: Any) -> Iterator[tuple[str, Transform]]:
    yield "empty", lambda v: type(v)()
    yield "None", lambda v: None
    yield "str", lambda v: "abc"
    if len(value):
        for kind, bad in (
            ("entry0", 0),
            ("entry-1", -1),
            ("entrynan", float("nan")),
            ("entryfloat", 2.5),
            ("entrybool", True),
            ("entry1e12", 10**12),
        ):
            yield kind, lambda v, b=bad: type(v)([b, *list(v)[1:]])


def _linears(m: nn.Module) -> list[nn.Linear]:
    return [x for x in m.modules() if isinstance(x, nn.Linear)]


def _model_variants(model: nn.Module) -> Iterator[tuple[str, Transform]]:
    params = list(model.parameters())
    dtype = params[0].dtype if params else None
    yield "noparams", lambda v: nn.Identity()
    yield "lambda", lambda v: lambda x: x
    yield "None", lambda v: None
    if _linears(model):

        def wrong_in(v: nn.Module) -> nn.Module:
            m = copy.deepcopy(v)
            lin = _linears(m)[0]
            _replace(m, lin, nn.Linear(lin.in_features + 1, lin.out_features, dtype=dtype))
            return m

        def wrong_out(v: nn.Module) -> nn.Module:
            m = copy.deepcopy(v)
            lin = _linears(m)[-1]
            _replace(m, lin, nn.Linear(lin.in_features, lin.out_features + 1, dtype=dtype))
            return m

        def batchnorm(v: nn.Module) -> nn.Module:
            m = copy.deepcopy(v)
            lin = _linears(m)[0]
            bn = nn.BatchNorm1d(lin.out_features, dtype=dtype)
            _replace(m, lin, nn.Sequential(lin, bn))
            return m

        yield "wrong_in", wrong_in
        yield "wrong_out", wrong_out
        yield "batchnorm", batchnorm
    if dtype == torch.float64:
        yield "float32", lambda v: copy.deepcopy(v).float()

    def frozen(v: nn.Module) -> nn.Module:
        m = copy.deepcopy(v)
        for p in m.parameters():
            p.requires_grad_(False)
        return m

    def nan_weight(v: nn.Module) -> nn.Module:
        m = copy.deepcopy(v)
        with torch.no_grad():
            for p in m.parameters():
                p.view(-1)[0] = float("nan")
                break
        return m

    if params:
        yield "frozen", frozen
        yield "nan_weight", nan_weight


def _replace(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for parent in root.modules():
        for key, child in parent.named_children():
            if child is old:
                setattr(parent, key, new)
                return


def variants(value: Any) -> list[tuple[str, Transform]]:
    """The bad-value kinds for one argument, from the type of its valid value: a list of
    (kind, transform), where transform maps a fresh valid value to the bad one."""
    if isinstance(value, bool):
        return [("None", lambda v: None), ("str", lambda v: "yes"), ("int", lambda v: 2)]
    if isinstance(value, numbers.Integral):
        return _constants(_INT_BAD)
    if isinstance(value, numbers.Real):
        return _constants(_FLOAT_BAD)
    if isinstance(value, str):
        return [("bogus", lambda v: "bogus"), ("None", lambda v: None), ("int", lambda v: 1)]
    if isinstance(value, torch.Tensor | np.ndarray):
        return list(_array_variants(value))
    if isinstance(value, nn.Module):
        return list(_model_variants(value))
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        return list(_sequence_variants(value))
    if (
        isinstance(value, list | tuple)
        and value
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    ):
        arr = list(_array_variants(np.asarray(value, dtype=np.float64)))
        return [(k, lambda v, f=f: f(np.asarray(v, dtype=np.float64))) for k, f in arr]
    if callable(value):
        return [("None", lambda v: None), ("str", lambda v: "abc"), ("int", lambda v: 3)]
    return [("None", lambda v: None), ("str", lambda v: "abc")]


# ---------------------------------------------------------------- cases


def _signature(target: Target) -> inspect.Signature | None:
    try:
        return inspect.signature(target.obj)
    except (TypeError, ValueError):
        return None


def slots(target: Target, call: Call) -> dict[str, Any]:
    """The argument slots the fuzzer changes: every argument of the example call, and every
    keyword parameter with a scalar default."""
    out: dict[str, Any] = {}
    sig = _signature(target)
    params = list(sig.parameters.values()) if sig else []
    if (
        target.owner is not None
        and params
        and not isinstance(
            inspect.getattr_static(target.owner, target.obj.__name__, None), staticmethod
        )
    ):
        params = params[1:]  # self / cls
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for i, value in enumerate(call.args):
        name = positional[i].name if i < len(positional) else f"arg{i}"
        out[name] = value
    out.update(call.kwargs)
    for p in params:
        if p.name in out or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if isinstance(p.default, bool | int | float | str) and p.default is not None:
            out[p.name] = p.default
    return out


def cases(target: Target, example: Callable[[], Call]) -> list[tuple[Case, Callable[[], Call]]]:
    """The valid call and every one-argument change of it; each case builds fresh arguments."""
    call = example()
    out = [(Case(target.name, "", "valid"), example)]
    sig = _signature(target)
    params = list(sig.parameters.values()) if sig else []
    if target.owner is not None and params and params[0].name in ("self", "cls"):
        params = params[1:]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    exempt = case_exemptions(target)
    for slot, value in slots(target, call).items():
        for kind, transform in variants(value):
            if f"{slot}:{kind}" in exempt or kind in exempt:
                continue

            def build(slot=slot, transform=transform) -> Call:
                fresh = example()
                args = list(fresh.args)
                kwargs = dict(fresh.kwargs)
                idx = positional.index(slot) if slot in positional else None
                if idx is not None and idx < len(args):
                    args[idx] = transform(args[idx])
                elif slot in kwargs:
                    kwargs[slot] = transform(kwargs[slot])
                else:  # a keyword left at its scalar default
                    kwargs[slot] = transform(slots(target, fresh)[slot])
                return Call(tuple(args), kwargs, fresh.instance, fresh.then)

            out.append((Case(target.name, slot, kind), build))
    return out


# ---------------------------------------------------------------- running


class Hang(BaseException):
    """Raised by the alarm inside a call that ran past the time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def handler(signum, frame):
        raise Hang

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _snapshot(value: Any, depth: int = 0) -> Any:
    if depth > 3:
        return None
    if isinstance(value, torch.Tensor):
        return ("tensor", value.detach().clone(), value.requires_grad)
    if isinstance(value, np.ndarray):
        return ("array", value.copy())
    if isinstance(value, nn.Module):
        state = {k: v.detach().clone() for k, v in value.state_dict(keep_vars=True).items()}
        flags = tuple(p.requires_grad for p in value.parameters())
        return ("module", state, flags, value.training)
    if isinstance(value, list | tuple):
        return ("seq", type(value), len(value), [_snapshot(v, depth + 1) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: _snapshot(v, depth + 1) for k, v in value.items()})
    return None


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.equal(a, b) or ((a == b) | (a.isnan() & b.isnan())).all())
    return bool(torch.equal(a, b))


def _changed(before: Any, value: Any) -> str | None:
    if before is None:
        return None
    kind = before[0]
    if kind == "tensor":
        if not _same_tensor(before[1], value.detach()):
            return "tensor values"
        if before[2] != value.requires_grad:
            return "requires_grad"
    elif kind == "array":
        a, b = before[1], value
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
            return "array values"
    elif kind == "module":
        state = value.state_dict(keep_vars=True)
        if set(state) != set(before[1]):
            return "module state keys"
        for key, old in before[1].items():
            if not _same_tensor(old, state[key].detach()):
                return f"module {key}"
        if tuple(p.requires_grad for p in value.parameters()) != before[2]:
            return "module requires_grad"
        if value.training != before[3]:
            return "module training flag"
    elif kind == "seq":
        if len(value) != before[2]:
            return "sequence length"
        for old, new in zip(before[3], value, strict=False):
            why = _changed(old, new)
            if why:
                return why
    elif kind == "dict":
        for key, old in before[1].items():
            if key not in value:
                return "dict keys"
            why = _changed(old, value[key])
            if why:
                return why
    return None


def nonfinite(value: Any, depth: int = 0) -> str | None:
    """Where a result holds NaN or inf, or None."""
    if depth > 4:
        return None
    if isinstance(value, bool | int | str) or value is None:
        return None
    if isinstance(value, float | np.floating | complex | np.complexfloating):
        return None if np.isfinite(value) else repr(value)
    if isinstance(value, torch.Tensor):
        if (value.is_floating_point() or value.is_complex()) and value.numel():
            if not bool(torch.isfinite(value.detach()).all()):
                return "tensor"
        return None
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc" and value.size and not np.isfinite(value).all():
            return "array"
        return None
    if isinstance(value, nn.Module):
        for name, p in value.named_parameters():
            if not bool(torch.isfinite(p.detach()).all()):
                return f"parameter {name}"
        return None
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))[:64]
        if hasattr(value, "_fields"):
            items = list(zip(value._fields, value, strict=False))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    else:
        return None
    for key, item in items:
        where = nonfinite(item, depth + 1)
        if where:
            return f"{key}.{where}" if where not in ("tensor", "array") else f"{key} ({where})"
    return None


def _origin(err: BaseException) -> str:
    """Which package raised: the file of the innermost Python frame."""
    tb = traceback.extract_tb(err.__traceback__)
    if not tb:
        return "?"
    path = tb[-1].filename
    if path.startswith(PACKAGE_DIR):
        return "dltheory"
    if f"{os.sep}sklearn{os.sep}" in path:
        return "sklearn"
    return path


def _is_own_error(err: BaseException) -> bool:
    """A dltheory validation error: ValueError / TypeError raised in dltheory, in the house
    format ("x must be ... Got ...") or re-raised by dltheory with a one-line message."""
    if not isinstance(err, ValueError | TypeError):
        return False
    if _origin(err) != "dltheory":
        return False
    text = str(err)
    return "\n" not in text.strip() and len(text) > 0


def run_case(target: Target, call: Call, case: Case, timeout: float) -> Result:
    """Run one call and classify it."""
    import time

    bound = target.obj
    if target.owner is not None:
        inst = call.instance() if call.instance is not None else None
        raw = inspect.getattr_static(target.owner, target.obj.__name__)
        if isinstance(raw, classmethod):
            bound = getattr(target.owner, target.obj.__name__)
        elif isinstance(raw, staticmethod):
            bound = raw.__func__
        else:
            bound = getattr(inst, target.obj.__name__)
    snaps = [(_snapshot(a), a) for a in call.args] + [
        (_snapshot(v), v) for v in call.kwargs.values()
    ]
    if case.kind == "valid":  # first calls import, compile (numba) and warm caches
        timeout = 4 * timeout
    start = time.perf_counter()
    try:
        with time_limit(timeout), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = bound(*call.args, **call.kwargs)
            if call.then is not None:
                out = call.then(out)
    except Hang:
        return Result(case, "hang", f"no answer in {timeout:g} s", time.perf_counter() - start)
    except Exception as err:
        took = time.perf_counter() - start
        head = f"{type(err).__name__}: {' '.join(str(err).split())[:160]}"
        if _is_own_error(err):
            outcome = "clean"
        elif isinstance(err, ValueError | TypeError) and _origin(err) == "sklearn":
            outcome = "sklearn"
        else:
            frame = traceback.extract_tb(err.__traceback__)
            where = (
                f" at {os.path.basename(frame[-1].filename)}:{frame[-1].lineno}" if frame else ""
            )
            return Result(case, "foreign", head + where, took)
        why = None if _mutates(target) else _first_change(snaps)
        if why:
            return Result(case, "changed", f"{why} (then {head})", took)
        return Result(case, outcome, head, took)
    took = time.perf_counter() - start
    why = None if _mutates(target) else _first_change(snaps)
    if why:
        return Result(case, "changed", why, took)
    where = nonfinite(out)
    allowed = inf_allowed(target)
    if where and not allowed:
        return Result(case, "nan", f"non-finite {where}", took)
    if where and allowed == "inf" and _has_nan(out):
        return Result(case, "nan", f"NaN in {where}", took)
    return Result(case, "clean", "ok", took)


def _has_nan(value: Any) -> bool:
    text = nonfinite(value)
    if text is None:
        return False
    # crude but sufficient: inf is allowed, NaN is not
    flat = []

    def walk(v: Any, depth: int = 0) -> None:
        if depth > 4:
            return
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            flat.append(bool(torch.isnan(v.detach()).any()))
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
            flat.append(bool(np.isnan(v).any()))
        elif isinstance(v, float):
            flat.append(math.isnan(v))
        elif isinstance(v, list | tuple):
            for x in v:
                walk(x, depth + 1)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            for f in dataclasses.fields(v):
                walk(getattr(v, f.name), depth + 1)

    walk(value)
    return any(flat)


def _mutates(target: Target) -> bool:
    last = target.name.rsplit(".", 1)[-1]
    return last in MUTATING or last.endswith("_")


def _first_change(snaps: list[tuple[Any, Any]]) -> str | None:
    for before, value in snaps:
        why = _changed(before, value)
        if why:
            return why
    return None


def all_cases() -> list[tuple[Target, Case, Callable[[], Call]]]:
    out = []
    for target, example in targets():
        for case, build in cases(target, example):
            out.append((target, case, build))
    return out


def summarize(results: list[Result]) -> dict[str, dict[str, int]]:
    """Counts per module: {module: {outcome: n}} plus "tried"."""
    table: dict[str, dict[str, int]] = {}
    for res in results:
        module = res.case.target.split(".", 1)[0]
        row = table.setdefault(module, {"tried": 0, **{o: 0 for o in OUTCOMES}})
        row["tried"] += 1
        row[res.outcome] += 1
    return dict(sorted(table.items()))


FAILURES = ("foreign", "nan", "hang", "changed", "broken", "crash")


def read_results(path: str) -> list[dict]:
    """The results written by :mod:`tests.fuzz.run` (one dict per finished case)."""
    import json

    with open(path) as fh:
        recs = [json.loads(line) for line in fh if line.strip()]
    return [rec for rec in recs if "outcome" in rec]


def case_key(row: dict) -> tuple[str, str]:
    return Case(*row["case"]).key


def count_table(rows: list[dict]) -> str:
    """Markdown table: calls and outcomes per module."""
    cols = ("clean", "sklearn", "foreign", "nan", "hang", "changed", "broken", "crash")
    table: dict[str, dict[str, int]] = {}
    for row in rows:
        module = row["case"][0].split(".", 1)[0]
        entry = table.setdefault(module, dict.fromkeys(("tried", *cols), 0))
        entry["tried"] += 1
        entry[row["outcome"]] += 1
    total = dict.fromkeys(("tried", *cols), 0)
    lines = [
        "| module | tried | clean | clean (scikit-learn) | foreign exception | silent NaN / inf "
        "| hang | input changed | example broken | process died |",
        "|---|" + "---:|" * 9,
    ]
    for module, entry in sorted(table.items()):
        for k, v in entry.items():
            total[k] += v
        lines.append(f"| {module} | " + " | ".join(str(entry[k]) for k in ("tried", *cols)) + " |")
    lines.append("| **all** | " + " | ".join(f"**{total[k]}**" for k in ("tried", *cols)) + " |")
    return "\n".join(lines)
