"""The ``dltheory`` command line: parse -> public API -> print / save.

Commands:

* ``dltheory kernel``: infinite-width NNGP and NTK of an MLP on random inputs.
* ``dltheory criticality``: the critical (C_b, C_w, K*) of an activation, its
  universality class and susceptibilities, optionally a PNG of the kernel map.
* ``dltheory report``: run the course's reproductions, write ``results.json``
  and a self-contained ``report.html``.

Bad arguments exit with code 2 and one line on stderr; Ctrl-C exits with 130
(the report keeps every reproduction that finished).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NoReturn

import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import MLP
from ._checks import check_choice, check_int, message
from .criticality import chi_parallel, chi_perp

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


def _criticality_figure(path: Path, act, point, depth: int) -> None:
    """Left: K -> C_b + C_w E_K[s^2] minus the diagonal; right: K^(l) vs depth."""
    import numpy as np

    from .report.figures import new_figure

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
        left.axvline(point.k_star, color="black", lw=0.8, label=f"K* = {_fmt(point.k_star)}")
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
        right.plot(layers, k_layers, marker=".", ms=3, label=f"K^(1) = {_fmt(c_b + c_w * norm)}")
    if point.universality_class == "k_star_zero":
        from .criticality import k_star_zero_decay

        a_1 = k_star_zero_decay(act)
        right.plot(layers, 1.0 / (-a_1 * layers), color="black", ls="--", label="1 / (-a_1 l)")
        right.set_xscale("log")
        right.set_yscale("log")
    right.set_xlabel("layer l")
    right.set_ylabel("K^(l)")
    right.set_title(f"MLP(depth={depth}), C_b = {_fmt(c_b)}, C_w = {_fmt(c_w)}")
    right.legend(fontsize=8)
    fig.savefig(path, format="png", dpi=110)


@app.command()
def criticality(
    activation: Annotated[
        str, typer.Option(help="Activation name, e.g. relu, tanh, gelu.")
    ] = "relu",
    slope: Annotated[
        float | None, typer.Option(help="Negative-side slope (leaky_relu only).")
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Negative-side scale (elu only).")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Save a PNG: the kernel map near K* and K^(l) vs depth.")
    ] = None,
    depth: Annotated[int, typer.Option(help="Depth of the K^(l) panel of --plot.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Critical initialisation (C_b, C_w, K*) of an activation and its universality class.

    chi_parallel and chi_perp are evaluated at K* (at K = 1 for the scale-invariant
    class, where every K is fixed); the K* = 0 class also prints a_1 and the decay law
    K^(l) ~ 1 / (-a_1 l).
    """
    from .activations import activation as lookup_activation
    from .criticality import critical_point, k_star_zero_decay

    depth = check_int("depth", depth, minimum=1)
    params = {k: v for k, v in {"slope": slope, "alpha": alpha}.items() if v is not None}
    act = lookup_activation(activation, **params)
    point = critical_point(act)
    k_eval = chi_par = chi_per = a_1 = None
    if point.c_w is not None:
        k_eval = 1.0 if point.k_star is None else point.k_star
        chi_par = float(chi_parallel(act, point.c_w, k_eval))
        chi_per = float(chi_perp(act, point.c_w, k_eval))
    decay = None
    if point.universality_class == "k_star_zero":
        a_1 = k_star_zero_decay(act)
        decay = f"K^(l) ~ 1 / ({_fmt(-a_1)} l)"
    if plot is not None:
        if point.c_w is None:
            raise CliError(
                message(
                    "--activation",
                    "an activation with a critical point to plot",
                    act.name,
                    point.reason,
                ),
                2,
            )
        _criticality_figure(plot, act, point, depth)
    document = {
        "activation": act.name,
        "activation_params": params,
        "c_b": point.c_b,
        "c_w": point.c_w,
        "k_star": point.k_star,
        "universality_class": point.universality_class,
        "reason": point.reason,
        "k_evaluated": k_eval,
        "chi_parallel": chi_par,
        "chi_perp": chi_per,
        "a_1": a_1,
        "decay_law": decay,
        "plot": None if plot is None else str(plot),
    }
    if as_json:
        from .report.result import plain

        sys.stdout.write(json.dumps(plain(document), allow_nan=False) + "\n")
        return
    console = Console()
    table = Table(title=f"critical point of {escape(act.name)}", title_justify="left")
    table.add_column("quantity", style="bold")
    table.add_column("value")
    rows = [
        ("C_b", point.c_b),
        ("C_w", point.c_w),
        (
            "K*",
            "every K (scale-invariant)"
            if point.universality_class == "scale_invariant"
            else point.k_star,
        ),
        ("universality class", point.universality_class),
        (f"chi_parallel(K = {_fmt(k_eval)})" if k_eval is not None else "chi_parallel", chi_par),
        (f"chi_perp(K = {_fmt(k_eval)})" if k_eval is not None else "chi_perp", chi_per),
    ]
    if a_1 is not None:
        rows += [("a_1", a_1), ("decay law", decay)]
    for name, value in rows:
        shown = "-" if value is None else _fmt(value) if isinstance(value, float) else str(value)
        table.add_row(escape(name), escape(shown))
    console.print(table)
    console.print(escape(point.reason), soft_wrap=True)
    if plot is not None:
        console.print(f"wrote {escape(str(plot))}")


@app.command()
def analyze(
    activation: Annotated[str, typer.Option(help="Activation name, e.g. relu, tanh, gelu.")],
    depth: Annotated[int, typer.Option(help="Hidden layers L.")],
    width: Annotated[int, typer.Option(help="Width of the hidden layers.")],
    c_w: Annotated[float | None, typer.Option(help="C_w (default: critical).")] = None,
    c_b: Annotated[float | None, typer.Option(help="C_b (default: critical).")] = None,
    networks: Annotated[int, typer.Option(help="Sampled networks for the profile.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the sampled networks.")] = 0,
    plot: Annotated[Path | None, typer.Option(help="Save the depth-profile figure (PNG).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Practitioner's summary of one MLP: criticality, depth scales, depth profile."""
    from .criticality.analysis import analyze as run_analysis
    from .criticality.analysis import plot_analysis

    a = run_analysis(activation, depth, width, c_w, c_b, n_networks=networks, seed=seed)
    if plot is not None:
        plot_analysis(a).savefig(plot, dpi=110)
    s = a.scales
    document = {
        "activation": a.activation, "depth": a.depth, "width": a.width, "c_w": a.c_w,
        "c_b": a.c_b, "critical_c_w": a.critical.c_w, "critical_c_b": a.critical.c_b,
        "universality_class": a.critical.universality_class, "verdict": a.verdict,
        "phase": None if s is None else s.phase,
        "k_star": None if s is None else s.k_star,
        "chi_parallel": None if s is None else s.chi_parallel,
        "chi_perp": None if s is None else s.chi_perp,
        "xi_q": None if s is None else s.xi_q, "xi_c": None if s is None else s.xi_c,
        "variance_theory": a.profile.variance[:, 0].tolist(),
        "variance_measured": a.measured.variance[:, 0].tolist(),
        "variance_stderr": a.measured.variance_se[:, 0].tolist(),
        "correlation_theory": a.profile.correlation.tolist(),
        "correlation_measured": a.measured.correlation.tolist(),
        "correlation_stderr": a.measured.correlation_se.tolist(),
        "finite_width": None if a.finite_width is None else asdict(a.finite_width),
    }  # fmt: skip
    if as_json:
        from .report.result import plain

        sys.stdout.write(json.dumps(plain(document)) + "\n")
        return
    table = Table(title=f"{escape(a.activation)} MLP, depth {depth}, width {width}",
                  title_justify="left")  # fmt: skip
    table.add_column("quantity", style="bold")
    table.add_column("value")
    for key in ("c_w", "c_b", "critical_c_w", "critical_c_b", "universality_class", "phase",
                "k_star", "chi_parallel", "chi_perp", "xi_q", "xi_c", "verdict"):  # fmt: skip
        value = document[key]
        table.add_row(key, _fmt(value) if isinstance(value, float) else escape(str(value)))
    table.add_row("K^(L+1) theory / measured",
                  f"{_fmt(document['variance_theory'][-1])} / "
                  f"{_fmt(document['variance_measured'][-1])} "
                  f"± {_fmt(document['variance_stderr'][-1])}")  # fmt: skip
    labels = {
        "output_kurtosis": "output excess kurtosis (1/n order)",
        "output_shift": "output variance shift / K (1/n order)",
        "beta": "ReLU path counting beta = 5 L / n",
        "region_density": "linear pieces per unit length",
    }
    for key, value in (document["finite_width"] or {}).items():
        if value is not None:
            table.add_row(labels[key], _fmt(value))
    Console().print(table)


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
    backend: Annotated[
        str, typer.Option(help="Where sweeps inside reproductions run: serial or dask.")
    ] = "serial",
    address: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Workers of the local Dask cluster.")] = 2,
) -> None:
    """Run the course's reproductions: prediction vs measurement, verdict, figure.

    DIR/results.json and DIR/report.html are rewritten after every reproduction, so an
    interrupted run keeps the finished ones.
    """
    from .parallel import configure
    from .report import registered, run_report, select

    check_choice("--backend", backend, ("serial", "dask"))
    if address is not None and backend != "dask":
        raise CliError(message("--address", "given only with --backend dask", address), 2)
    check_int("--workers", workers, minimum=1)

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
        with configure(backend, address=address, n_workers=workers):
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
