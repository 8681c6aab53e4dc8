"""The `npusim` command line: run, validate, compare, import, config show / check.

Every problem with the user's input or environment (a program, a config, a flag, a file that cannot be read
or written, a full disk, too little memory) ends as one line on stderr and exit status 2; Ctrl-C exits 130
and SIGTERM 143, leaving the output directory as it was (or complete, if the report was already committed,
which the line says); exit status 1 is kept for bugs in npusim, with a short note (the traceback only with
NPUSIM_DEBUG=1).
"""

from __future__ import annotations

import functools
import gc
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .defaults import DEFAULT_CONFIG, MAX_TRACE_BYTES, REFERENCE_ATOL, REFERENCE_RTOL, ExprLimits, RunLimits, YamlLimits
from .errors import NpusimError, interruption

if TYPE_CHECKING:
    from rich.console import Console

TABLE_WIDTH = 100  # the console tables fit this many columns (output.table.WIDTH)
FORMATS = click.Choice(["table", "csv", "json"])


def _console() -> Console:
    """A console for tables: at least TABLE_WIDTH wide (a narrower terminal wraps lines instead of cutting
    numbers), the terminal's width when it is wider. (rich is imported here, not at start-up.)"""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            """The reader of the table has gone (`npusim run ... | head`): the run is done and its report
            written, so stop printing and end normally (rich's default exits 1)."""
            self.quiet = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    return _Console(width=max(Console().width, TABLE_WIDTH)) if sys.stdout.isatty() else _Console(width=TABLE_WIDTH)


def _fail(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)


def _printable_stdout() -> None:
    """Tables and paths may hold characters the terminal's encoding lacks (or a file name's undecodable
    bytes): print them escaped rather than fail after the run."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The exception boundary of every command: npusim errors and failures of the environment become one line
    and exit 2, Ctrl-C exit 130 and SIGTERM 143 (saying whether the report was written), bugs a short note
    and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .output import artefacts  # (imported here, with numpy: `npusim --help` needs neither)

        artefacts.committed.clear()
        _printable_stdout()
        try:
            return fn(*args, **kwargs)
        except NpusimError as exc:
            _fail(f"error: {exc}", exc.exit_code)
        except KeyboardInterrupt as exc:
            _fail(*interruption(exc, [str(p) for p in artefacts.committed]))
        except MemoryError:
            _fail("error: out of memory (try a smaller preset, or --no-numerics for timing only)", 2)
        except RecursionError:
            _fail("error: input nested too deeply", 2)
        except BrokenPipeError:  # `npusim ... | head` printing with click: the reader has gone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError as exc:  # the machine, not npusim: a full disk, a missing permission, a broken pipe
            where = f"{exc.filename}: " if exc.filename else ""
            _fail(f"error: {where}{exc.strerror or exc}", 2)
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
        click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                     help="override a param: a number, or true/false for a boolean param (repeatable)"),
        click.option("--init", "inits", multiple=True, metavar="NAME=RULE",
                     help="initial values of input tensor NAME, e.g. 'uniform(-0.5, 0.5)' (repeatable); needed "
                          "where a PyPTO harness's init_value cannot be read statically"),
        click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1),
                     help="seed of the input values"),
        click.option("--max-tasks", default=RunLimits.max_tasks, show_default=True, type=click.IntRange(1)),
        click.option("--max-loop-iterations", default=RunLimits.max_loop_iterations, show_default=True,
                     type=click.IntRange(1)),
        click.option("--max-gm-bytes", default=RunLimits.max_gm_bytes, show_default=True, type=click.IntRange(1),
                     help="total GM tensor bytes a program may allocate"),
        click.option("--max-memory-bytes", default=None, type=click.IntRange(1),
                     help="refuse a run estimated to need more memory (default: what the machine has available)"),
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
    from .frontend import parse_inits, parse_overrides
    from .runner import RunOptions

    return RunOptions(
        program=Path(program),
        config=kw["config"],
        runtime=kw["runtime"],
        preset=kw["preset"],
        overrides=parse_overrides(list(kw["sets"])),
        inits=parse_inits(list(kw["inits"])),
        seed=kw["seed"],
        run_limits=RunLimits(kw["max_tasks"], kw["max_loop_iterations"], kw["max_gm_bytes"],
                             kw["max_memory_bytes"] or RunLimits.max_memory_bytes),
        yaml_limits=YamlLimits(max_bytes=kw["max_yaml_bytes"], max_nodes=kw["max_yaml_nodes"],
                               max_string_chars=kw["max_yaml_string"]),
        expr_limits=ExprLimits(max_chars=kw["max_expr_chars"], max_depth=kw["max_expr_depth"]),
        **extra,
    )


class _OneLineErrors(click.Group):
    """click's group, with its usage errors (a bad flag or value, a PROGRAM that is a directory) as one line
    `error: MESSAGE (see npusim CMD --help)` and exit 2, like every other input error."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # `npusim` alone: the help
            exc.show()
            sys.exit(2)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            click.echo(f"error: {' '.join(exc.format_message().split())}{where}", err=True)
            sys.exit(2)
        except click.Abort:  # Ctrl-C while click was still reading the command line
            click.echo(interruption(KeyboardInterrupt(), [])[0], err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--max-trace-bytes", default=MAX_TRACE_BYTES, show_default=True, type=click.IntRange(1),
              help="a larger trace drops its op slices (to a sample, then to tasks), then is not written (said on "
                   "stderr)")
@click.option("--quiet", "-q", is_flag=True, help="no progress and no table")
@guarded
def run(program: str, out: str | None, no_numerics: bool, save_tensors: bool, no_plot: bool, no_trace: bool,
        trace_detail: str, expect: str | None, rtol: float, atol: float, fmt: str, max_trace_bytes: int,
        quiet: bool, **kw: Any) -> None:
    """Simulate PROGRAM: print the per-scope and per-kernel tables and the critical path, and write report.json,
    kernels.csv, instructions.csv, lines.csv, plots and a Perfetto trace."""
    # the collector is off while the imports and the run make what lives until the process exits (the run leaves
    # a caller's collector off, runner.collector_off); then all of it is frozen, out of every later collection
    # (the one at exit too), and the collector is on again if it was. Turned on before the freeze, it scanned
    # everything the run made: 0.05 s of the default layer's timing-only run, 0.44 s of its numerics run
    # (measured with gc.callbacks, 2026-12-02)
    enabled = gc.isenabled()
    gc.disable()
    try:
        from .output.table import print_summary, report_json, scopes_csv
        from .runner import run as run_program

        opts = make_options(program, kw, out=Path(out) if out else None, numerics=not no_numerics,
                            save_tensors=save_tensors, plot=not no_plot, trace=not no_trace,
                            trace_detail=trace_detail, expect=Path(expect) if expect else None, rtol=rtol,
                            atol=atol, quiet=quiet, max_trace_bytes=max_trace_bytes)
        result = run_program(opts)
        gc.freeze()
    finally:
        if enabled:
            gc.enable()
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
    from .runner import validate as validate_program

    prog, quick = validate_program(make_options(program, kw))
    if quick.execution is None:
        assert quick.stopped is not None
        click.echo(f"{prog.file}: ok up to {quick.stopped.location}: the rest depends on values its kernels "
                   "compute (a read), which only a run with numerics has")
        return
    probe = quick.execution
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
    from .runner import Side
    from .runner import compare as compare_sides

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


@main.command("import")
@click.argument("program", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="the YAML file to write (default: print it)")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="override a param before importing")
@click.option("--init", "inits", multiple=True, metavar="NAME=RULE", help="initial values of input tensor NAME")
@guarded
def import_(program: str, output: str | None, sets: tuple[str, ...], inits: tuple[str, ...]) -> None:
    """Write the YAML program equivalent to the PyPTO program PROGRAM (.py, never executed)."""
    from .errors import ProgramError
    from .frontend import parse_inits, parse_overrides
    from .frontend.pypto import import_pypto
    from .frontend.pypto.to_yaml import to_yaml
    from .output.artefacts import write_atomic

    if Path(program).suffix != ".py":
        raise ProgramError(f"{program}: npusim import reads a PyPTO program (.py)")
    text = to_yaml(import_pypto(program, parse_overrides(list(sets)), parse_inits(list(inits))))
    if output is None:
        click.echo(text, nl=False)
        return
    target = Path(output)
    if target.resolve() == Path(program).resolve():
        raise ProgramError(f"{output}: refusing to overwrite the program being imported")
    if not target.parent.is_dir():
        raise ProgramError(f"{output}: no such directory {str(target.parent)!r}")
    write_atomic(target, lambda fh: fh.write(text.encode()))
    click.echo(f"{output}: written ({text.count(chr(10))} lines)")


def _explore_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by sweep and tune."""
    decorators = [
        click.option("--preset", default=None, help="a preset of the program's params"),
        click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="a param override of every variant"),
        click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1),
                     help="seed of the input values (and of --sample / the search)"),
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="a local process pool, or a Ray cluster"),
        click.option("--address", default=None, help="with --engine ray: the cluster (default: a local Ray instance)"),
        click.option("--jobs", "workers", type=click.IntRange(1), default=None,
                     help="local worker processes (default: cores, as memory allows)"),
        click.option("--cache", type=click.Path(file_okay=False), default=None,
                     help="where results are cached by content (default reports/.cache/variants)"),
        click.option("--no-cache", is_flag=True, help="compute every variant anew"),
        click.option("--out", type=click.Path(file_okay=False), default=None, help="directory for the results"),
        click.option("--quiet", "-q", is_flag=True, help="no progress and no table"),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


def _cache_dir(cache: str | None, no_cache: bool) -> Path | None:
    from .explore.sweep import DEFAULT_CACHE

    return None if no_cache else Path(cache) if cache else DEFAULT_CACHE


@main.command()
@click.argument("program", type=click.Path(dir_okay=False))
@click.option("--grid", "grids", multiple=True, metavar="NAME=V1,V2,...", help="values of a param (repeatable)")
@click.option("--config", "configs", multiple=True, metavar="CONFIG", help="a config to run on (repeatable)")
@click.option("--sample", type=click.IntRange(1), default=None, help="run N random variants of the grid")
@click.option("--numerics", is_flag=True, help="compute values too (default: timing only)")
@_explore_options
@guarded
def sweep(program: str, grids: tuple[str, ...], configs: tuple[str, ...], sample: int | None, numerics: bool,
          preset: str | None, sets: tuple[str, ...], seed: int, engine: str, address: str | None,
          workers: int | None, cache: str | None, no_cache: bool, out: str | None, quiet: bool) -> None:
    """Run variants of PROGRAM over a grid of params and configs; write sweep.csv, sweep.json, sweep.png."""
    from .explore.sweep import SweepSpec
    from .explore.sweep import sweep as run_sweep
    from .explore.variants import parse_grid
    from .frontend import parse_overrides
    from .output.sweep import sweep_table

    spec = SweepSpec(Path(program), parse_grid(list(grids)), list(configs) or [DEFAULT_CONFIG], preset,
                     parse_overrides(list(sets)), numerics, seed, sample, engine, address, workers,  # type: ignore[arg-type]
                     _cache_dir(cache, no_cache))
    result = run_sweep(spec, Path(out) if out else None)
    if not quiet:
        console = _console()
        console.print(sweep_table(result.rows))
        infeasible = sum(r.status != "ok" for r in result.rows)
        console.print(f"{len(result.rows)} variants ({infeasible} infeasible): {result.computed} run, "
                      f"{result.cached} from the cache, {result.duplicates} identical to another, "
                      f"in {result.wall_s:.1f} s on the {engine} engine")
        console.print(f"written: {result.out_dir}/sweep.csv, sweep.json, sweep.png")


@main.command()
@click.argument("program", type=click.Path(dir_okay=False))
@click.option("--param", "params", multiple=True, required=True, metavar="NAME[=V1,V2,...]",
              help="a param to tune: its default times powers of two, or the values given (repeatable)")
@click.option("--config", "config", default=DEFAULT_CONFIG, show_default=True, help="the config to tune for")
@click.option("--trials", type=click.IntRange(1), default=30, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=4, show_default=True,
              help="trials per round (run in parallel; the same search on any machine)")
@_explore_options
@guarded
def tune(program: str, params: tuple[str, ...], config: str, trials: int, batch: int, preset: str | None,
         sets: tuple[str, ...], seed: int, engine: str, address: str | None, workers: int | None, cache: str | None,
         no_cache: bool, out: str | None, quiet: bool) -> None:
    """Search PROGRAM's params for the lowest latency (optuna TPE, timing-only); print the best tiling."""
    from .explore.tune import TuneSpec, parse_params
    from .explore.tune import tune as run_tune
    from .frontend import parse_overrides

    spec = TuneSpec(Path(program), parse_params(list(params)), config, preset, parse_overrides(list(sets)), trials,
                    seed, batch, engine, address, workers, _cache_dir(cache, no_cache))  # type: ignore[arg-type]
    result = run_tune(spec, Path(out) if out else None)
    if quiet:
        return
    best, default = result.best, result.default

    def tiling(values: dict) -> str:
        return ", ".join(f"{k}={v}" for k, v in values.items())

    feasible = sum(r.status == "ok" for r in result.trials)
    click.echo(f"search space: {tiling({k: '|'.join(map(str, v)) for k, v in result.search_space.items()})}")
    click.echo(f"{len(result.trials)} trials ({feasible} feasible) in {result.wall_s:.1f} s")
    click.echo(f"defaults: {tiling(default.params)}: {default.total_us:.2f} µs")
    click.echo(f"best:     {tiling(best.params)}: {best.total_us:.2f} µs ({result.gain_pct:.1f}% faster)")
    if result.why:
        click.echo(f"why: {result.why}")
    click.echo(f"written: {result.out_dir}/tune.json")


@main.group()
def config() -> None:
    """Show or check hardware configs."""


@config.command("show")
@click.argument("name_or_file", default=DEFAULT_CONFIG)
@guarded
def config_show(name_or_file: str) -> None:
    """Print a config with every value resolved."""
    import yaml

    from .timing import load_config, resolve_config_path

    hw = load_config(name_or_file)
    click.echo(f"# {resolve_config_path(name_or_file)}")
    click.echo(yaml.safe_dump(hw.model_dump(), sort_keys=False, width=120), nl=False)


@config.command("check")
@click.argument("file")
@guarded
def config_check(file: str) -> None:
    """Validate a config file (exit status 2 with the first problem)."""
    from .timing import load_config

    hw = load_config(file)
    click.echo(f"{file}: ok ({hw.name}: {hw.num_aic} AIC + {hw.num_aiv} AIV at {hw.clock_hz / 1e9:g} GHz)")


if __name__ == "__main__":
    main()
