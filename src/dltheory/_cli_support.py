"""Checks and helpers of the command line, importable without torch.

Everything here validates an argument with the command-line flag's name (in
the project's one message format) or defers the heavy imports (torch, rich)
to the moment they are needed, so ``dltheory --help`` and argument errors
answer at once.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer

__all__ = [
    "ACTIVATIONS",
    "ACTIVATION_FLAGS",
    "ACT_HELP",
    "CliError",
    "available_memory",
    "check_activation",
    "check_activation_params",
    "check_int",
    "check_memory",
    "check_only",
    "check_plot_path",
    "check_variance",
    "click_errors",
    "critical_defaults",
    "criticality_figure",
    "fail",
    "flag_names",
    "fmt",
    "keep_interrupts",
    "list_reproductions",
    "load_input",
    "matrix_table",
    "message",
    "option_flags",
    "print_json",
    "read_input",
    "reproduction_names",
    "setup_torch",
    "status",
]  # fmt: skip

ACTIVATIONS = (
    "abs", "cos", "elu", "erf", "gelu", "identity", "leaky_relu", "linear", "mish", "relu",
    "sigmoid", "sign", "silu", "sin", "softplus", "step", "swish", "tanh",
)  # fmt: skip
ACT_HELP = "Activation: " + ", ".join(ACTIVATIONS) + "."
# The activation parameter behind each flag and the one activation that takes it
# (a test checks this against the registry).
ACTIVATION_FLAGS = {"--slope": ("slope", "leaky_relu"), "--alpha": ("alpha", "elu")}
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


class CliError(Exception):
    """A failure to report on one line of stderr with an exit code."""

    def __init__(self, text: str, exit_code: int = 2) -> None:
        super().__init__(text)
        self.exit_code = exit_code


def message(flag: str, constraint: str, value: Any, fix: str = "") -> str:
    """The project's one message format (as ``dltheory._checks.message``, without its imports)."""
    shown = " ".join(repr(value).split())
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    fix = fix.rstrip(".")
    tail = f" {fix}" + ("" if fix.endswith(("?", "!")) else ".") if fix else ""
    return f"{flag} must be {constraint}. Got {shown}.{tail}"


def check_int(flag: str, value: int, minimum: int) -> int:
    if value < minimum:
        raise CliError(message(flag, f"an integer >= {minimum}", value))
    return value


def check_variance(flag: str, value: float | None) -> float | None:
    if value is not None and not (value >= 0 and value != float("inf")):
        raise CliError(message(flag, "a finite variance >= 0", value))
    return value


def check_activation(value: str) -> str:
    key = value.strip().lower().replace("-", "_")
    if key not in ACTIVATIONS:
        import difflib

        close = difflib.get_close_matches(key, ACTIVATIONS, n=3, cutoff=0.5)
        hint = f"Did you mean {', '.join(close)}?" if close else ""
        raise CliError(message("--activation", f"one of {', '.join(ACTIVATIONS)}", value, hint))
    return key


def check_activation_params(activation: str, **values: float | None) -> dict[str, float]:
    """The activation's parameters from --slope / --alpha, refused where it takes none."""
    params: dict[str, float] = {}
    for flag, (name, owner) in ACTIVATION_FLAGS.items():
        value = values.get(name)
        if value is None:
            continue
        if activation != owner:
            raise CliError(message(flag, f"given only with --activation {owner}", value,
                                   f"{activation} takes no {name}; drop {flag}"))  # fmt: skip
        if value != value or value in (float("inf"), float("-inf")):
            raise CliError(message(flag, "a finite number", value))
        params[name] = value
    return params


def reproduction_names(loaded: bool = True) -> list[str]:
    """The registered reproductions' names, read from the experiments' sources without
    importing them (torch takes seconds); with ``loaded``, those registered in this
    process (a loaded registry) are added."""
    folder = Path(__file__).parent / "report" / "experiments"
    found = re.compile(r"@reproduction\(\s*[\"']([a-z][a-z0-9_]*)[\"']")
    names = [n for f in sorted(folder.glob("*.py")) for n in found.findall(f.read_text())]
    registry = sys.modules.get("dltheory.report.registry")
    if loaded and registry is not None:  # in-process callers (tests) may register more
        names += [n for n in registry.REGISTRY if n not in names]
    return names


def check_only(only: Sequence[str] | None) -> None:
    """--only names registered reproductions (checked before torch is imported)."""
    known = reproduction_names()
    for name in only or ():
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f"Did you mean {', '.join(close)}? " if close else ""
            raise CliError(message("--only", "the name of a reproduction", name,
                                   f"{hint}List them with 'dltheory report --list'"))  # fmt: skip


def check_plot_path(path: Path | None) -> Path | None:
    """Check a figure path before any computation: suffix, directory, write permission."""
    if path is None:
        return None
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise CliError(message("--plot", "a file ending in .png, .svg or .pdf", str(path)))
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(
            message("--plot", "in an existing directory", str(path), f"Create {parent} first")
        )
    if (
        path.is_dir()
        or not os.access(parent, os.W_OK)
        or (path.exists() and not os.access(path, os.W_OK))
    ):
        raise CliError(message("--plot", "a writable file path", str(path)))
    return path


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable), or the physical memory."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 2**40


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**28 else f"{nbytes / 2**20:,.1f} MiB"


def check_memory(flag: str, value: int, needed: float, what: str) -> None:
    """Refuse, with the figure, a computation that needs more memory than is available."""
    have = available_memory()
    if needed > have:
        raise CliError(
            message(
                flag,
                f"small enough to fit in memory ({what} needs about {gib(needed)}, "
                f"{gib(have)} available)",
                value,
                "Use a smaller value",
            )
        )


def setup_torch(device: str, threads: int | None):
    """Import torch, check --device and set --threads; returns the torch.device."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise CliError(message("--device", "a torch device such as cpu or cuda", device)) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CliError(message("--device", "an available device", device, "Use --device cpu"))
    return dev


def status(text: str):
    """A spinner with elapsed time on stderr while long work runs (silent when piped)."""
    from contextlib import nullcontext

    if not sys.stderr.isatty():
        return nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(text)


def fmt(value: float) -> str:
    return f"{value:.6g}"


def print_json(document: dict) -> None:
    import json

    from .report.result import plain  # non-finite -> null: strict JSON

    sys.stdout.write(json.dumps(plain(document), allow_nan=False) + "\n")


def matrix_table(title: str, matrix, column: str = "x"):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("", style="bold")
    for j in range(matrix.shape[1]):
        table.add_column(f"{column}{j + 1}", justify="right")
    for i, row in enumerate(matrix.tolist()):
        table.add_row(f"x{i + 1}", *(fmt(v) for v in row))
    return table


def critical_defaults(act, c_w: float | None, c_b: float | None) -> tuple[float, float, str]:
    """(C_w, C_b, where they come from): ``MLP``'s own rule (the activation's critical
    point; C_w = 1, C_b = 0 where it has none), so the library and the CLI agree."""
    from .spec.mlp import default_variances

    return tuple(default_variances(act, c_w, c_b))  # type: ignore[return-value]


def _csv_rows(path: Path) -> list[list[float]]:
    """Rows of numbers of a CSV file, with the row and column of the first bad field."""
    import csv

    rows: list[list[float]] = []
    with open(path, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or (len(row) == 1 and not row[0].strip()) or row[0].startswith("#"):
                continue  # blank lines and comments, as numpy.loadtxt skips them
            try:
                rows.append([float(field) for field in row])
            except ValueError:
                bad = next(f for f in row if not _is_float(f))
                fix = "Remove the header line" if not rows else "Keep only numbers"
                raise CliError(message("--input", "a CSV file of numbers", bad,
                                       f"{path}, line {number}: {fix}")) from None  # fmt: skip
            if len(rows[-1]) != len(rows[0]):
                raise CliError(message(
                    "--input", "a CSV file with the same number of columns on every line",
                    f"{len(rows[0])} columns, then {len(rows[-1])} on line {number}",
                    f"Give every line of {path} {len(rows[0])} values",
                ))  # fmt: skip
    return rows


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_input(path: Path):
    """The user's inputs from .npy or .csv as a float64 (n, dim) NumPy array.

    Everything that can be wrong with the file is refused here, naming --input, before
    torch is imported; numpy's own messages (and their advice) are not passed on.
    """
    import numpy as np

    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv"):
        raise CliError(message("--input", "a .npy or .csv file", str(path)))
    if not path.is_file():
        raise CliError(message("--input", "an existing .npy or .csv file", str(path)))
    try:
        if suffix == ".csv":
            data = np.array(_csv_rows(path), dtype=np.float64)
        else:
            data = np.load(path, allow_pickle=False)
            if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
                raise ValueError(data.dtype)
            data = data.astype(np.float64)
    except (ValueError, OSError, EOFError, UnicodeDecodeError):
        what = "a CSV file of numbers" if suffix == ".csv" else "a NumPy array of real numbers"
        raise CliError(message("--input", f"{what} (n rows, dim columns)", str(path))) from None
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise CliError(message("--input", "an (n, dim) array with n, dim >= 1",
                                f"shape {data.shape}"))  # fmt: skip
    if not np.isfinite(data).all():
        raise CliError(message("--input", "finite numbers (no NaN or inf)", str(path)))
    return data


def read_input(path: Path):
    """The user's inputs from .npy or .csv, as a float64 (n, dim) tensor."""
    import torch

    return torch.from_numpy(load_input(path))


def criticality_figure(path: Path, act, point, depth: int) -> None:
    """Left: K -> C_b + C_w E_K[s^2] minus the diagonal; right: K^(l) vs depth."""
    import numpy as np
    import torch

    from .report.figures import new_figure
    from .spec import MLP

    c_b, c_w = point.c_b, point.c_w
    around = point.k_star if point.k_star else 1.0  # K = 1 for K* = 0 or scale-invariant
    # Close to K*: the map's departure from the diagonal there is tiny (second order).
    lo, hi = (0.7 * around, 1.3 * around) if point.k_star else (0.0, 2.0)
    ks = torch.linspace(lo, hi, 201, dtype=torch.float64)
    mapped = c_b + c_w * act.second_moment(ks)
    fig, (left, right) = new_figure(2)
    # The map minus the diagonal: a half-stable K* is a tangency from one side.
    left.plot(ks.numpy(), (mapped - ks).numpy(), label="C_b + C_w E_K[s^2] - K")
    left.axhline(0.0, color="gray", ls="--", label="diagonal (fixed points)")
    if point.k_star is not None:
        left.axvline(point.k_star, color="black", lw=0.8, label=f"K* = {fmt(point.k_star)}")
    left.set_xlabel("K")
    left.set_ylabel("K^(l+1) - K^(l)")
    left.set_title(f"{act.name}: single-input map at criticality")
    left.legend(fontsize=8)
    starts = [0.5 * around, around, 1.5 * around] if point.k_star else [0.5, 1.0, 2.0]
    layers = np.arange(1, depth + 2)
    for k_1 in starts:
        norm = max((k_1 - c_b) / c_w, 0.0)  # |x|^2 / n_0 giving K^(1) = k_1
        x = torch.full((1, 1), norm**0.5, dtype=torch.float64)
        state = MLP(depth, act, c_w=c_w, c_b=c_b).kernel(x, return_layers=True)
        k_layers = [float(layer.cov1[0]) for layer in state.layers]
        right.plot(layers, k_layers, marker=".", ms=3, label=f"K^(1) = {fmt(c_b + c_w * norm)}")
    if point.universality_class == "k_star_zero":
        from .criticality import k_star_zero_decay

        a_1 = k_star_zero_decay(act)
        right.plot(layers, 1.0 / (-a_1 * layers), color="black", ls="--", label="1 / (-a_1 l)")
        right.set_xscale("log")
        right.set_yscale("log")
    right.set_xlabel("layer l")
    right.set_ylabel("K^(l)")
    right.set_title(f"MLP(depth={depth}), C_b = {fmt(c_b)}, C_w = {fmt(c_w)}")
    right.legend(fontsize=8)
    fig.savefig(path, dpi=220)


def flag_names(text: str, flags: dict[str, str]) -> str:
    """Name the command-line flag in a library message ("depth must" -> "--depth must")."""
    match = re.match(r"([a-z_]+) must be", text)
    if match and match.group(1) in flags:
        return flags[match.group(1)] + text[len(match.group(1)) :]
    return text


def click_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(usage errors, aborts) of the click that typer runs on."""
    usage = [getattr(typer, "TyperException", None)]
    aborts = [typer.Abort]
    try:
        import click
    except ImportError:  # pragma: no cover
        pass
    else:
        usage.append(click.ClickException)
        aborts.append(click.exceptions.Abort)
    return tuple(c for c in usage if c is not None), tuple(aborts)


def fail(text: str, exit_code: int) -> NoReturn:
    line = " ".join(text.split())
    sys.stderr.write(f"dltheory: error: {line}\n")
    sys.exit(exit_code)


def keep_interrupts() -> None:
    """Ctrl-C always stops: a KeyboardInterrupt swallowed by a callback is raised again.

    Python reports an exception raised in a weakref callback or ``__del__`` as
    "unraisable" and carries on; for a KeyboardInterrupt that would ignore the
    user's Ctrl-C, so the hook interrupts the main thread once more.
    """
    import _thread

    previous = sys.unraisablehook
    if getattr(previous, "dltheory_keeps_interrupts", False):
        return  # installed already (main() called again in the same process)

    def hook(info) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt):
            _thread.interrupt_main()
            return
        previous(info)

    hook.dltheory_keeps_interrupts = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def option_flags(command, args: Sequence[str]) -> dict[str, str]:
    """Python parameter name -> its command-line flag, for the subcommand in ``args``."""
    sub = getattr(command, "commands", {}).get(args[0]) if args else None
    flags: dict[str, str] = {}
    for param in getattr(sub, "params", []):
        longs = [o for o in param.opts if o.startswith("--")]
        if longs:
            flags[param.name] = longs[0]
            flags[longs[0][2:].replace("-", "_")] = longs[0]
    return flags


def list_reproductions(only: list[str] | None) -> None:
    from .report import registered, select

    reps = select(only, registered())
    if not sys.stdout.isatty():  # plain, one per line, never cut: for grep and scripts
        for rep in reps:
            sys.stdout.write(f"{rep.name}\t{rep.topic}\t{rep.title}\n")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="reproductions")
    table.add_column("name", no_wrap=True, overflow="fold")
    table.add_column("topic", overflow="fold")
    table.add_column("title", overflow="fold")
    for rep in reps:
        table.add_row(escape(rep.name), escape(rep.topic), escape(rep.title))
    Console().print(table)
