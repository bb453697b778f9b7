"""The ``dltheory`` command line: parse -> public API -> print / save.

Commands:

* ``dltheory kernel``: infinite-width NNGP and NTK of an MLP on random inputs.
* ``dltheory report``: run the course's reproductions, write ``results.json``
  and a self-contained ``report.html``.

Bad arguments exit with code 2 and one line on stderr; Ctrl-C exits with 130
(the report keeps every reproduction that finished).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import MLP
from ._checks import check_int, message

__all__ = ["app", "main"]

app = typer.Typer(
    name="dltheory",
    help="Deep-learning theory, computable and checkable.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class CliError(Exception):
    """A failure to report on one line of stderr with an exit code."""

    def __init__(self, text: str, exit_code: int) -> None:
        super().__init__(text)
        self.exit_code = exit_code


def _click_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(usage errors, aborts) of the click that typer runs on.

    typer >= 0.2x vendors click (its usage errors subclass ``typer.TyperException``);
    older typer runs on click itself.
    """
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


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _matrix_table(title: str, matrix: torch.Tensor, column: str = "x") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("", style="bold")
    for j in range(matrix.shape[1]):
        table.add_column(f"{column}{j + 1}", justify="right")
    for i, row in enumerate(matrix.tolist()):
        table.add_row(f"x{i + 1}", *(_fmt(v) for v in row))
    return table


@app.command()
def kernel(
    activation: Annotated[
        str, typer.Option(help="Activation name, e.g. relu, tanh, erf.")
    ] = "relu",
    depth: Annotated[int, typer.Option(help="Number of hidden layers L (>= 1).")] = 3,
    c_w: Annotated[float, typer.Option("--c-w", help="Weight variance C_w.")] = 2.0,
    c_b: Annotated[float, typer.Option("--c-b", help="Bias variance C_b.")] = 0.0,
    n: Annotated[int, typer.Option("--n", help="Number of random inputs.")] = 5,
    dim: Annotated[int, typer.Option(help="Input dimension n_0.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the Gaussian inputs.")] = 0,
    slope: Annotated[
        float | None, typer.Option(help="Negative-side slope (leaky_relu only).")
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Negative-side scale (elu only).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """NNGP and NTK of an MLP (NTK parametrisation) on n Gaussian inputs x ~ N(0, I_dim).

    The inputs come from torch.randn(n, dim) with a torch.Generator seeded with --seed.
    """
    n = check_int("n", n, minimum=1)
    dim = check_int("dim", dim, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    params = {k: v for k, v in {"slope": slope, "alpha": alpha}.items() if v is not None}
    spec = MLP(depth, activation, c_w=c_w, c_b=c_b, **params)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    k = spec.kernel(x)
    act_name = spec.layers[1].activation.name
    described = {
        "activation": act_name,
        "activation_params": params,
        "depth": depth,
        "c_w": c_w,
        "c_b": c_b,
        "parametrization": "ntk",
    }
    if as_json:
        from .report.result import plain  # non-finite -> null: strict JSON

        document = {"inputs": x, "nngp": k.nngp, "ntk": k.ntk, "spec": described, "seed": seed}
        sys.stdout.write(json.dumps(plain(document), allow_nan=False) + "\n")
        return
    console = Console()
    console.print(
        f"[bold]MLP(depth={depth}, {act_name})[/], C_w = {_fmt(c_w)}, C_b = {_fmt(c_b)}, "
        f"NTK parametrisation; {n} inputs x ~ N(0, I_{dim}), seed {seed}"
    )
    console.print(_matrix_table("inputs (rows) and their features", x, column="feature "))
    console.print(_matrix_table("NNGP K^(L+1)", k.nngp))
    console.print(_matrix_table("NTK Theta^(L+1)", k.ntk))


@app.command()
def report(
    out: Annotated[
        Path | None, typer.Option(help="Directory for results.json and report.html.")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Small sizes: seconds, not minutes.")] = False,
    only: Annotated[
        list[str] | None, typer.Option(help="Run only this reproduction (repeatable).")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the reproductions and exit.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every reproduction.")] = 0,
) -> None:
    """Run the course's reproductions: prediction vs measurement, verdict, figure.

    DIR/results.json and DIR/report.html are rewritten after every reproduction, so an
    interrupted run keeps the finished ones.
    """
    from .report import registered, run_report, select

    if list_:
        table = Table(title="reproductions")
        for column in ("name", "topic", "title"):
            table.add_column(column)
        for rep in select(only, registered()):
            table.add_row(escape(rep.name), escape(rep.topic), escape(rep.title))
        Console().print(table)
        return
    if out is None:
        raise CliError(message("--out", "a directory path", None, "Pass --out DIR (or --list)"), 2)
    try:
        run = run_report(out, quick=quick, only=only, progress=True, seed=seed)
    except KeyboardInterrupt:
        raise CliError(f"interrupted; finished reproductions are saved in {out}", 130) from None
    console = Console()
    table = Table(title=f"dltheory report ({'quick' if quick else 'full'}, seed {seed})")
    for column in ("reproduction", "verdict", "seconds", "summary"):
        table.add_column(column)
    for result in run.results:
        style = {"pass": "green", "fail": "red", "error": "magenta"}[result.status]
        summary = result.error if result.error else result.summary
        table.add_row(
            escape(result.name),
            f"[{style}]{result.status}[/]",
            f"{result.seconds:.1f}",
            escape(summary),
        )
    console.print(table)
    console.print(f"wrote {escape(str(run.json_path))} and {escape(str(run.html_path))}")
    errors = sum(result.status == "error" for result in run.results)
    if errors:
        raise CliError(f"{errors} reproduction(s) raised an error; see {run.html_path}", 1)


def _fail(text: str, exit_code: int) -> NoReturn:
    line = " ".join(text.split())
    sys.stderr.write(f"dltheory: error: {line}\n")
    sys.exit(exit_code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``dltheory`` script (``argv`` defaults to ``sys.argv[1:]``).

    Exit codes: 0 success; 1 a reproduction raised or an OS error; 2 bad arguments
    (one line on stderr, no traceback); 130 interrupted.
    """
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    usage_errors, aborts = _click_errors()
    try:
        code = command.main(args=args, prog_name="dltheory", standalone_mode=False)
    except CliError as err:
        _fail(str(err), err.exit_code)
    except usage_errors as err:
        if not args:  # no command: the group asks for help
            typer.echo(command.get_help(typer.Context(command)))
            sys.exit(0)
        text = err.format_message().rstrip()
        text += "" if text.endswith((".", "?", "!")) else "."
        ctx = getattr(err, "ctx", None)
        where = ctx.command_path if ctx is not None else "dltheory"
        _fail(f"{text} Try '{where} --help'.", getattr(err, "exit_code", 2))
    except (ValueError, TypeError) as err:
        _fail(str(err), 2)
    except aborts:
        _fail("interrupted", 130)
    except OSError as err:
        _fail(str(err), 1)
    if code == 130:  # typer turned a KeyboardInterrupt into exit code 130
        _fail("interrupted", 130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
