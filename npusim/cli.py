"""The `npusim` command line: run, validate, compare, config show / check.

Every problem with the user's input ends as one line on stderr and exit status 2; Ctrl-C exits 130 leaving
no partial report; an internal error prints a short note (the traceback only with NPUSIM_DEBUG=1).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console

from .errors import NpusimError
from .frontend import parse_overrides
from .frontend.expressions import ExprLimits
from .frontend.yaml_source import YamlLimits
from .interp import RunLimits
from .references import REFERENCE_ATOL, REFERENCE_RTOL
from .timing import DEFAULT_CONFIG, load_config, resolve_config_path

TABLE_WIDTH = 100  # the console tables fit this many columns (output.table.WIDTH)
FORMATS = click.Choice(["table", "csv", "json"])


def _console() -> Console:
    """A console for tables: at least TABLE_WIDTH wide (a narrower terminal wraps lines instead of cutting
    numbers), the terminal's width when it is wider."""
    return Console(width=max(Console().width, TABLE_WIDTH)) if sys.stdout.isatty() else Console(width=TABLE_WIDTH)


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn npusim errors into one line and exit 2, Ctrl-C into exit 130, bugs into a short note."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NpusimError as exc:
            _fail(f"error: {exc}", exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted: no report written", 130)
        except MemoryError:
            _fail("error: out of memory (try a smaller preset, or --no-numerics for timing only)", 2)
        except RecursionError:
            _fail("error: input nested too deeply", 2)
        except Exception as exc:  # a bug in npusim, not in the input
            if os.environ.get("NPUSIM_DEBUG"):
                traceback.print_exc()
            _fail(f"internal error: {type(exc).__name__}: {exc} (set NPUSIM_DEBUG=1 for the traceback; "
                  "please report it)", 1)

    return wrapper


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by run, validate and compare."""
    decorators = [
        click.option("--config", "config", default=DEFAULT_CONFIG, show_default=True,
                     help="hardware config: a name in configs/ or a path to a YAML file"),
        click.option("--runtime", default=None, metavar="NAME",
                     help="the AICPU runtime generation: one of the config's runtimes (default its runtime:)"),
        click.option("--preset", default=None, help="a preset of the program's params (e.g. tiny)"),
        click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="override a param (repeatable)"),
        click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1),
                     help="seed of the input values"),
        click.option("--max-tasks", default=RunLimits.max_tasks, show_default=True, type=click.IntRange(1)),
        click.option("--max-loop-iterations", default=RunLimits.max_loop_iterations, show_default=True,
                     type=click.IntRange(1)),
        click.option("--max-gm-bytes", default=RunLimits.max_gm_bytes, show_default=True, type=click.IntRange(1),
                     help="total GM tensor bytes a program may allocate"),
        click.option("--max-yaml-bytes", default=YamlLimits.max_bytes, show_default=True, type=click.IntRange(1)),
        click.option("--max-yaml-nodes", default=YamlLimits.max_nodes, show_default=True, type=click.IntRange(1)),
        click.option("--max-yaml-string", default=YamlLimits.max_string_chars, show_default=True,
                     type=click.IntRange(1), help="longest string a YAML file may hold"),
        click.option("--max-expr-chars", default=ExprLimits.max_chars, show_default=True, type=click.IntRange(1)),
        click.option("--max-expr-depth", default=ExprLimits.max_depth, show_default=True, type=click.IntRange(1)),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def make_options(program: str, kw: dict[str, Any], **extra: Any):
    from .run import RunOptions

    return RunOptions(
        program=Path(program),
        config=kw["config"],
        runtime=kw["runtime"],
        preset=kw["preset"],
        overrides=parse_overrides(list(kw["sets"])),
        seed=kw["seed"],
        run_limits=RunLimits(kw["max_tasks"], kw["max_loop_iterations"], kw["max_gm_bytes"]),
        yaml_limits=YamlLimits(max_bytes=kw["max_yaml_bytes"], max_nodes=kw["max_yaml_nodes"],
                               max_string_chars=kw["max_yaml_string"]),
        expr_limits=ExprLimits(max_chars=kw["max_expr_chars"], max_depth=kw["max_expr_depth"]),
        **extra,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="npusim")
def main() -> None:
    """npusim: a cycle-approximate Ascend NPU simulator for tile-op decode programs."""


@main.command()
@click.argument("program", type=click.Path(dir_okay=False))
@run_options
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="directory for the report (default reports/<program>[-<preset>][-<sets>]-<config>-<key>)")
@click.option("--no-numerics", is_flag=True, help="timing only: skip the arithmetic (same timeline)")
@click.option("--save-tensors", is_flag=True, help="also write inputs.npz and outputs.npz")
@click.option("--no-plot", is_flag=True, help="do not draw timeline.png / utilisation.png / kernels.png")
@click.option("--no-trace", is_flag=True, help="do not write trace.json")
@click.option("--trace-detail", type=click.Choice(["auto", "ops", "sample", "tasks"]), default="auto",
              show_default=True, help="pipe slices in the trace: for every op, for every op of the first and last "
              "task of each kernel, or none (tasks only); auto = every op up to 100 000 ops, else the sample")
@click.option("--expect", type=click.Path(dir_okay=False), default=None,
              help="check the outputs against saved values (an .npz as --save-tensors writes; docs/program-format.md)"
                   " instead of the program's reference")
@click.option("--rtol", type=click.FloatRange(0, 1e6), default=REFERENCE_RTOL, show_default=True,
              help="relative tolerance of --expect")
@click.option("--atol", type=click.FloatRange(0, 1e30), default=REFERENCE_ATOL, show_default=True,
              help="absolute tolerance of --expect")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
              help="stdout: the tables, the scope table as CSV, or report.json")
@click.option("--quiet", "-q", is_flag=True, help="no progress and no table")
@guarded
def run(program: str, out: str | None, no_numerics: bool, save_tensors: bool, no_plot: bool, no_trace: bool,
        trace_detail: str, expect: str | None, rtol: float, atol: float, fmt: str, quiet: bool, **kw: Any) -> None:
    """Simulate PROGRAM: print the per-scope and per-kernel tables and the critical path, and write report.json,
    kernels.csv, instructions.csv, lines.csv, plots and a Perfetto trace."""
    from .output.table import print_summary, report_json, scopes_csv
    from .run import run as run_program

    opts = make_options(program, kw, out=Path(out) if out else None, numerics=not no_numerics,
                        save_tensors=save_tensors, plot=not no_plot, trace=not no_trace, trace_detail=trace_detail,
                        expect=Path(expect) if expect else None, rtol=rtol, atol=atol, quiet=quiet)
    result = run_program(opts)
    report = result.report
    if fmt == "csv":
        click.echo(scopes_csv(report), nl=False)
    elif fmt == "json":
        click.echo(report_json(report))
    elif not quiet:
        print_summary(report, _console())
    if result.out_dir is not None and not quiet:
        click.echo(f"report: {result.out_dir / 'report.json'}", err=fmt != "table")
    if report.check is not None and not report.check.passed:
        if fmt != "table":
            click.echo(f"check against {report.check.reference} FAILED", err=True)
        sys.exit(3)


@main.command()
@click.argument("program", type=click.Path(dir_okay=False))
@run_options
@guarded
def validate(program: str, **kw: Any) -> None:
    """Check PROGRAM without running it in full (syntax, names, shapes, bounds, buffer capacity)."""
    from .run import validate as validate_program

    prog, probe = validate_program(make_options(program, kw))
    click.echo(f"{prog.file}: ok ({len(prog.tensors)} tensors, {len(probe.instrs)} instructions, "
               f"{len(probe.tasks)} kernels checked on their first iterations)")


def _is_report(path: str) -> bool:
    return path.endswith(".json")


@main.command()
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False), required=False)
@run_options
@click.option("--config-a", default=None, help="config of side A (default --config)")
@click.option("--config-b", default=None, help="config of side B (default --config)")
@click.option("--set-a", "sets_a", multiple=True, metavar="NAME=VALUE", help="a param override of side A only")
@click.option("--set-b", "sets_b", multiple=True, metavar="NAME=VALUE", help="a param override of side B only")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="directory for compare.json and compare.png (default reports/compare-<a>-vs-<b>-<key>)")
@click.option("--no-numerics", is_flag=True, help="timing only (outputs cannot be compared)")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
              help="stdout: the tables, one CSV row per scope, or compare.json without the two reports")
@click.option("--quiet", "-q", is_flag=True, help="no progress")
@guarded
def compare(a: str, b: str | None, config_a: str | None, config_b: str | None, sets_a: tuple[str, ...],
            sets_b: tuple[str, ...], out: str | None, no_numerics: bool, fmt: str, quiet: bool, **kw: Any) -> None:
    """Compare two runs scope by scope: latency, GM and on-chip traffic, output bits, checks.

    A and B are programs or saved report.json files. One program with --config-a/--config-b or
    --set-a/--set-b compares it with itself on two configs or with two param variants. Exit status 3 when
    either side fails its check."""
    from .output.compare import comparison_csv, print_comparison
    from .run import Side
    from .run import compare as compare_sides

    varied = bool(config_a or config_b or sets_a or sets_b)
    if b is None:
        if _is_report(a) or not varied:
            raise NpusimError("compare needs two programs, two report.json files, or one program with "
                              "--config-a/--config-b or --set-a/--set-b")
        b = a

    def side(path: str, config: str | None, sets: tuple[str, ...], name: str) -> Side:
        if _is_report(path):
            if config or sets:
                raise NpusimError(f"--config-{name}/--set-{name} vary a program's run; {name.upper()} ({path}) "
                                  "is a saved report")
            return Side(report_file=Path(path))
        opts = make_options(path, {**kw, "config": config or kw["config"], "sets": (*kw["sets"], *sets)},
                            numerics=not no_numerics, plot=False, trace=False, quiet=quiet)
        return Side(options=opts)

    result = compare_sides(side(a, config_a, sets_a, "a"), side(b, config_b, sets_b, "b"), Path(out) if out else None)
    data = result.data
    if fmt == "csv":
        click.echo(comparison_csv(data), nl=False)
    elif fmt == "json":
        click.echo(json.dumps({k: v for k, v in data.items() if k != "reports"}, indent=2, allow_nan=False))
    else:
        print_comparison(result, _console())
    if data["failed_checks"]:
        failed = ", ".join(f"{k.upper()} ({data[k]['label']})" for k in data["failed_checks"])
        click.echo(f"check FAILED on {failed}", err=True)
        sys.exit(3)


@main.group()
def config() -> None:
    """Show or check hardware configs."""


@config.command("show")
@click.argument("name_or_file", default=DEFAULT_CONFIG)
@guarded
def config_show(name_or_file: str) -> None:
    """Print a config with every value resolved."""
    hw = load_config(name_or_file)
    click.echo(f"# {resolve_config_path(name_or_file)}")
    click.echo(yaml.safe_dump(hw.model_dump(), sort_keys=False, width=120), nl=False)


@config.command("check")
@click.argument("file")
@guarded
def config_check(file: str) -> None:
    """Validate a config file (exit status 2 with the first problem)."""
    hw = load_config(file)
    click.echo(f"{file}: ok ({hw.name}: {hw.num_aic} AIC + {hw.num_aiv} AIV at {hw.clock_hz / 1e9:g} GHz)")


if __name__ == "__main__":
    main()
