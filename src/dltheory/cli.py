"""The ``dltheory`` command line: parse -> public API -> print / save.

Commands:

* ``dltheory kernel``: infinite-width NNGP and NTK of an MLP on Gaussian inputs
  or the user's own (``--input FILE``).
* ``dltheory criticality``: the critical (C_b, C_w, K*) of an activation, its
  universality class and susceptibilities, optionally a figure of the kernel map.
* ``dltheory analyze``: criticality, depth scales and a measured depth profile
  of one MLP.
* ``dltheory report``: run the reproductions, merging into ``results.json`` and
  a self-contained ``report.html``.

Arguments are checked before anything heavy is imported (torch alone takes
seconds), so ``--help`` and a bad argument answer at once. Every failure is one
line on stderr naming the command-line flag, with exit code 2 (bad arguments,
a plot path that cannot be written, a computation that would not fit in
memory); 1 for a reproduction that raised or an OS error; Ctrl-C exits with
130 (the report keeps every reproduction that finished).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from ._cli_support import (
    ACT_HELP,
    ACTIVATIONS,
    CliError,
    check_activation,
    check_activation_params,
    check_int,
    check_memory,
    check_only,
    check_plot_path,
    check_variance,
    click_errors,
    critical_defaults,
    criticality_figure,
    fail,
    flag_names,
    fmt,
    keep_interrupts,
    list_reproductions,
    load_input,
    matrix_table,
    message,
    option_flags,
    print_json,
    setup_torch,
    status,
)

__all__ = ["ACTIVATIONS", "app", "main"]

# The registry's names (dltheory.activations.names(); a test checks they agree),
# spelled out so that --help needs no import of the library.
app = typer.Typer(
    name="dltheory",
    help="Deep-learning theory, computable and checkable: infinite-width kernels, "
    "criticality, and their measurements on finite PyTorch networks.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"dltheory {__version__}")
        raise typer.Exit()


@app.callback()
def _main_options(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_version,
                     is_eager=True),
    ] = False,
) -> None:  # fmt: skip
    """Deep-learning theory, computable and checkable."""


_Activation = Annotated[str, typer.Option(help=ACT_HELP)]
_Slope = Annotated[float | None, typer.Option(help="Negative-side slope (leaky_relu only).")]
_Alpha = Annotated[float | None, typer.Option(help="Negative-side scale (elu only).")]
_Json = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
_Device = Annotated[str, typer.Option(help="Torch device for the computation: cpu, cuda, cuda:1.")]
_Threads = Annotated[int | None, typer.Option(help="Torch CPU threads (default: torch's choice).")]
_Plot = Annotated[Path | None, typer.Option(help="Save the figure to this .png, .svg or .pdf.")]
_TABLE_MAX = 12  # print matrices up to this many inputs; larger ones go to --json


@app.command(
    short_help="Infinite-width NNGP and NTK of an MLP.",
    help="Infinite-width NNGP and NTK of an MLP on n inputs: Gaussian x ~ N(0, I_dim) drawn "
    "with --seed, or the rows of --input FILE. C_w and C_b default to the activation's "
    "critical point (shown in the output).",
)
def kernel(
    activation: _Activation = "relu",
    depth: Annotated[int, typer.Option(help="Number of hidden layers L (>= 1).")] = 3,
    c_w: Annotated[
        float | None, typer.Option("--c-w", help="Weight variance C_w (default: critical).")
    ] = None,
    c_b: Annotated[
        float | None, typer.Option("--c-b", help="Bias variance C_b (default: critical).")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="Number of Gaussian inputs.")] = 5,
    dim: Annotated[int, typer.Option(help="Input dimension n_0 of the Gaussian inputs.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the Gaussian inputs.")] = 0,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="Your inputs: an (n, dim) array in a .npy or .csv file."),
    ] = None,
    parametrization: Annotated[
        str, typer.Option(help="ntk (default) or standard (raw-parameter NTK; needs --width).")
    ] = "ntk",
    width: Annotated[
        int | None,
        typer.Option(help="Hidden width n, for --parametrization standard (its NTK grows with n)."),
    ] = None,
    slope: _Slope = None,
    alpha: _Alpha = None,
    device: _Device = "cpu",
    threads: _Threads = None,
    as_json: _Json = False,
) -> None:
    activation = check_activation(activation)
    depth = check_int("--depth", depth, 1)
    n, dim, seed = check_int("--n", n, 1), check_int("--dim", dim, 1), check_int("--seed", seed, 0)
    c_w, c_b = check_variance("--c-w", c_w), check_variance("--c-b", c_b)
    if parametrization not in ("ntk", "standard"):
        raise CliError(message("--parametrization", "one of 'ntk', 'standard'", parametrization))
    if threads is not None:
        check_int("--threads", threads, 1)
    if width is not None:
        check_int("--width", width, 1)
    elif parametrization == "standard":
        raise CliError(message("--width", "given with --parametrization standard", None,
                               "The standard-parametrisation NTK grows with the width: pass "
                               "--width N, or use --parametrization ntk"))  # fmt: skip
    params = check_activation_params(activation, slope=slope, alpha=alpha)
    data = None
    if input_file is None:
        check_memory("--n", n, 40.0 * n * n, f"a {n} x {n} kernel")
    else:  # the file is read and checked before torch is imported
        data = load_input(input_file)
        n, dim = data.shape
        check_memory("--input", str(input_file), 40.0 * n * n, f"a {n} x {n} kernel")
    dev = setup_torch(device, threads)
    import torch

    from .activations import activation as lookup_activation
    from .spec import MLP

    act = lookup_activation(activation, **params)
    c_w, c_b, source = critical_defaults(act, c_w, c_b)
    if data is not None:
        x = torch.from_numpy(data)
    else:
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    extra = {} if width is None else {"width": width}
    spec = MLP(depth, act, c_w=c_w, c_b=c_b, parametrization=parametrization, **extra)
    with status(f"kernel of {n} inputs through {depth} layers"):
        k = spec.kernel(x.to(dev))
    nngp, ntk = k.nngp.cpu(), k.ntk.cpu()
    described = {"activation": act.name, "activation_params": params, "depth": depth,
                 "c_w": c_w, "c_b": c_b, "c_source": source,
                 "parametrization": parametrization, "width": width}  # fmt: skip
    if as_json:
        origin = str(input_file) if input_file is not None else "gaussian"
        print_json({"inputs": x, "nngp": nngp, "ntk": ntk, "spec": described, "seed": seed,
                     "input": origin})  # fmt: skip
        return
    from rich.console import Console

    console = Console()
    where = f"inputs from {input_file}" if input_file else f"x ~ N(0, I_{dim}), seed {seed}"
    console.print(
        f"MLP(depth={depth}, {act.name}), C_w = {fmt(c_w)}, C_b = {fmt(c_b)} ({source}), "
        f"{parametrization.upper()} parametrisation; {n} inputs, {where}",
        markup=False, soft_wrap=True,
    )  # fmt: skip
    if n > _TABLE_MAX:
        console.print(f"{n} x {n} kernels: use --json for the matrices; diagonal means "
                      f"NNGP {fmt(nngp.diagonal().mean())}, NTK {fmt(ntk.diagonal().mean())}",
                      markup=False)  # fmt: skip
        return
    if dim <= _TABLE_MAX:
        console.print(matrix_table("inputs (rows) and their features", x, column="feature "))
    console.print(matrix_table("NNGP K^(L+1)", nngp))
    console.print(matrix_table("NTK Theta^(L+1)", ntk))


@app.command(
    short_help="Critical point and universality class of an activation.",
    help="Critical initialisation (C_b, C_w, K*) of an activation and its universality class. "
    "chi_parallel and chi_perp are evaluated at K* (at K = 1 for the scale-invariant class, "
    "where every K is fixed); the K* = 0 class also prints a_1 and the decay law "
    "K^(l) ~ 1 / (-a_1 l).",
)
def criticality(
    activation: _Activation = "relu",
    slope: _Slope = None,
    alpha: _Alpha = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Save a figure (.png/.svg/.pdf): the kernel map near K* and K^(l) "
                     "vs depth."),
    ] = None,
    depth: Annotated[int, typer.Option(help="Depth of the K^(l) panel of --plot.")] = 50,
    as_json: _Json = False,
) -> None:  # fmt: skip
    activation = check_activation(activation)
    depth = check_int("--depth", depth, 1)
    plot = check_plot_path(plot)
    params = check_activation_params(activation, slope=slope, alpha=alpha)
    from .activations import activation as lookup_activation
    from .criticality import chi_parallel, chi_perp, critical_point, k_star_zero_decay

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
        decay = f"K^(l) ~ 1 / ({fmt(-a_1)} l)"
    if plot is not None:
        if point.c_w is None:
            raise CliError(message("--activation", "an activation with a critical point to plot",
                                    act.name, point.reason))  # fmt: skip
        criticality_figure(plot, act, point, depth)
    document = {
        "activation": act.name, "activation_params": params, "c_b": point.c_b,
        "c_w": point.c_w, "k_star": point.k_star,
        "universality_class": point.universality_class, "reason": point.reason,
        "k_evaluated": k_eval, "chi_parallel": chi_par, "chi_perp": chi_per, "a_1": a_1,
        "decay_law": decay, "plot": None if plot is None else str(plot),
    }  # fmt: skip
    if as_json:
        print_json(document)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title=f"critical point of {escape(act.name)}", title_justify="left")
    table.add_column("quantity", style="bold")
    table.add_column("value")
    scale_invariant = point.universality_class == "scale_invariant"
    rows = [
        ("C_b", point.c_b),
        ("C_w", point.c_w),
        ("K*", "every K (scale-invariant)" if scale_invariant else point.k_star),
        ("universality class", point.universality_class),
        (f"chi_parallel(K = {fmt(k_eval)})" if k_eval is not None else "chi_parallel", chi_par),
        (f"chi_perp(K = {fmt(k_eval)})" if k_eval is not None else "chi_perp", chi_per),
    ]
    if a_1 is not None:
        rows += [("a_1", a_1), ("decay law", decay)]
    for name, value in rows:
        shown = "-" if value is None else fmt(value) if isinstance(value, float) else str(value)
        table.add_row(escape(name), escape(shown))
    console.print(table)
    console.print(escape(point.reason), soft_wrap=True)
    if plot is not None:
        console.print(f"wrote {escape(str(plot))}")


@app.command(
    short_help="Criticality, depth scales and measured depth profile of one MLP.",
    help="Practitioner's summary of one MLP: criticality, depth scales, and the depth profile "
    "of the kernel measured on --networks sampled networks. C_w and C_b default to the "
    "activation's critical point.",
)
def analyze(
    activation: _Activation = "relu",
    depth: Annotated[int, typer.Option(help="Hidden layers L (>= 1).")] = 10,
    width: Annotated[int, typer.Option(help="Width n of the hidden layers.")] = 256,
    c_w: Annotated[float | None, typer.Option("--c-w", help="C_w (default: critical).")] = None,
    c_b: Annotated[float | None, typer.Option("--c-b", help="C_b (default: critical).")] = None,
    networks: Annotated[int, typer.Option(help="Sampled networks for the profile.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the sampled networks.")] = 0,
    plot: _Plot = None,
    threads: _Threads = None,
    as_json: _Json = False,
) -> None:
    activation = check_activation(activation)
    depth, width = check_int("--depth", depth, 1), check_int("--width", width, 1)
    networks, seed = check_int("--networks", networks, 1), check_int("--seed", seed, 0)
    c_w, c_b = check_variance("--c-w", c_w), check_variance("--c-b", c_b)
    if threads is not None:
        check_int("--threads", threads, 1)
    plot = check_plot_path(plot)
    # The sampled networks hold one layer's weights for all of them at once (float64).
    check_memory("--width", width, 8.0 * networks * width * width,
                  f"{networks} networks of width {width}")  # fmt: skip
    setup_torch("cpu", threads)
    from .criticality.analysis import analyze as run_analysis
    from .criticality.analysis import plot_analysis

    with status(f"analysing depth {depth}, width {width}, {networks} networks"):
        a = run_analysis(activation, depth, width, c_w, c_b, n_networks=networks, seed=seed)
    if plot is not None:
        plot_analysis(a).savefig(plot, dpi=220)
    s = a.scales
    from dataclasses import asdict

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
        print_json(document)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{escape(a.activation)} MLP, depth {depth}, width {width}",
                  title_justify="left")  # fmt: skip
    table.add_column("quantity", style="bold")
    table.add_column("value")
    for key in ("c_w", "c_b", "critical_c_w", "critical_c_b", "universality_class", "phase",
                "k_star", "chi_parallel", "chi_perp", "xi_q", "xi_c", "verdict"):  # fmt: skip
        value = document[key]
        table.add_row(key, fmt(value) if isinstance(value, float) else escape(str(value)))
    table.add_row("K^(L+1) theory / measured",
                  f"{fmt(document['variance_theory'][-1])} / "
                  f"{fmt(document['variance_measured'][-1])} "
                  f"± {fmt(document['variance_stderr'][-1])}")  # fmt: skip
    labels = {
        "output_kurtosis": "output excess kurtosis (1/n order)",
        "output_shift": "output variance shift / K (1/n order)",
        "beta": "ReLU path counting beta = 5 L / n",
        "region_density": "linear pieces per unit length",
    }
    for key, value in (document["finite_width"] or {}).items():
        if value is not None:
            table.add_row(labels.get(key, key), fmt(value))
    Console().print(table)
    if plot is not None:
        Console().print(f"wrote {escape(str(plot))}")


@app.command(
    short_help="Run the reproductions and write the HTML report.",
    help="Run the reproductions: prediction vs measurement, verdict, figure. DIR/results.json "
    "and DIR/report.html are rewritten after every reproduction; a run into a directory that "
    "holds a report merges into it (--only replaces just the reproductions it runs).",
)
def report(
    out: Annotated[
        Path | None, typer.Option(help="Directory for results.json and report.html.")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes: seconds, not minutes.")
    ] = False,
    only: Annotated[
        list[str] | None, typer.Option(help="Run only this reproduction (repeatable).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip reproductions already finished in --out "
                           "(same size and seed).")
    ] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the reproductions and exit.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every reproduction.")] = 0,
    backend: Annotated[
        str, typer.Option(help="Where sweeps inside reproductions run: serial or dask.")
    ] = "serial",
    address: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Workers of the local Dask cluster.")] = 2,
    threads: _Threads = None,
) -> None:  # fmt: skip
    if backend not in ("serial", "dask"):
        raise CliError(message("--backend", "one of 'serial', 'dask'", backend))
    if address is not None and backend != "dask":
        raise CliError(message("--address", "given only with --backend dask", address))
    check_int("--workers", workers, 1)
    check_int("--seed", seed, 0)
    if threads is not None:
        check_int("--threads", threads, 1)
    check_only(only)
    if list_:
        list_reproductions(only)
        return
    if out is None:
        raise CliError(message("--out", "a directory path", None, "Pass --out DIR (or --list)"))
    if out.exists() and not out.is_dir():
        raise CliError(message("--out", "a directory", str(out), "Pass a directory path"))
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise CliError(message("--out", "a writable directory", str(out)))
    setup_torch("cpu", threads)
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from .report import load_report, registered, run_report, select

    try:
        select(only, registered())
        load_report(out)  # a foreign results.json: refuse before running anything
    except ValueError as err:
        raise CliError(flag_names(str(err), {"only": "--only", "out_dir": "--out"})) from None
    try:
        run = run_report(out, quick=quick, only=only, progress=True, seed=seed, resume=resume,
                         backend=backend, address=address, workers=workers)  # fmt: skip
    except KeyboardInterrupt:
        raise CliError(f"interrupted; finished reproductions are saved in {out}", 130) from None
    console = Console()
    table = Table(title=f"dltheory report ({'quick' if quick else 'full'}, seed {seed})")
    from .report import check_text

    for column in ("reproduction", "verdict", "check", "seconds", "summary"):
        table.add_column(column, overflow="fold")
    ran = [r for r in run.results if r.name in set(run.ran)]
    for result in ran:
        style = {"pass": "green", "fail": "red", "error": "magenta"}[result.status]
        summary = result.error if result.error else result.summary
        table.add_row(escape(result.name), f"[{style}]{result.status}[/]",
                      escape(check_text(result)),
                      f"{result.seconds:.1f}", escape(summary))  # fmt: skip
    console.print(table)
    kept = len(run.results) - len(ran)
    console.print(
        f"wrote {escape(str(run.json_path))} and {escape(str(run.html_path))}"
        + (f" ({len(ran)} run, {kept} kept from before)" if kept else "")
    )
    errors = sum(result.status == "error" for result in ran)
    if errors:
        raise CliError(f"{errors} reproduction(s) raised an error; see {run.html_path}", 1)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``dltheory`` script (``argv`` defaults to ``sys.argv[1:]``).

    Exit codes: 0 success; 1 a reproduction raised or an OS error; 2 bad arguments
    (one line on stderr naming the flag, no traceback); 130 interrupted.
    """
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    usage_errors, aborts = click_errors()
    keep_interrupts()
    try:
        code = command.main(args=args, prog_name="dltheory", standalone_mode=False)
    except CliError as err:
        fail(str(err), err.exit_code)
    except usage_errors as err:
        if not args:  # no command: the group asks for help
            typer.echo(command.get_help(typer.Context(command)))
            sys.exit(0)
        text = err.format_message().rstrip()
        text += "" if text.endswith((".", "?", "!")) else "."
        ctx = getattr(err, "ctx", None)
        where = ctx.command_path if ctx is not None else "dltheory"
        fail(f"{text} Try '{where} --help'.", getattr(err, "exit_code", 2))
    except (ValueError, TypeError) as err:
        fail(flag_names(str(err), option_flags(command, args)), 2)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except aborts:
        fail("interrupted", 130)
    except MemoryError:
        fail("out of memory; use smaller sizes (--n, --width, --networks)", 2)
    except OSError as err:
        fail(str(err), 1)
    if code == 130:  # typer turned a KeyboardInterrupt into exit code 130
        fail("interrupted", 130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
