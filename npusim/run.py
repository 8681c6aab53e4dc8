"""One simulation run, end to end, as numbered stages: 1 load the program and the config, 2 draw the inputs,
3 interpret (values and tasks), 4 simulate the timeline, 5 check against the reference, 6 report and write
the artefacts. `compare` runs two of them side by side."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .frontend import Program, load_program
from .frontend.expressions import ExprLimits
from .frontend.inputs import initial_values
from .frontend.yaml_source import YamlLimits
from .graph import Execution
from .interp import RunLimits, check_gm_budget, execute
from .output import artefacts
from .output.compare import Comparison, compare_runs
from .output.report import Report, build_report
from .references import check as reference_check
from .references import get_reference
from .timing import CONFIG_DIR, DEFAULT_CONFIG, HardwareConfig, Timeline, load_config, simulate

TRACE_OPS_UP_TO = 100_000  # above this many ops trace.json holds task events only (unless asked for ops)


@dataclass
class RunOptions:
    program: Path
    config: str = DEFAULT_CONFIG
    preset: str | None = None
    overrides: dict[str, int | float] = field(default_factory=dict)
    inits: dict[str, str] = field(default_factory=dict)  # --init NAME=RULE: tensor init rules replaced
    seed: int = 0
    numerics: bool = True
    out: Path | None = None
    save_tensors: bool = False
    plot: bool = True
    trace: bool = True
    trace_ops: bool | None = None  # op-level trace events; None: only if the run has <= TRACE_OPS_UP_TO ops
    quiet: bool = False
    check: bool = True
    run_limits: RunLimits = field(default_factory=RunLimits)
    yaml_limits: YamlLimits = field(default_factory=YamlLimits)
    expr_limits: ExprLimits = field(default_factory=ExprLimits)


@dataclass
class RunResult:
    program: Program
    hw: HardwareConfig
    execution: Execution
    timeline: Timeline
    report: Report
    out_dir: Path | None


def tensors_read(program: Program) -> set[str]:
    """Tensors whose values steer control flow (`read(t, ...)` in expressions): a timing-only run needs them."""
    names: set[str] = set()
    stack: list[Any] = list(program.body)
    while stack:
        item = stack.pop()
        roots = [getattr(item, "expr", None), getattr(item, "cond", None), *getattr(item, "range_args", []),
                 *(v for v in getattr(item, "args", {}).values() if isinstance(v, ast.AST))]
        for root in roots:
            for node in ast.walk(root) if root is not None else ():
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "read" \
                        and node.args and isinstance(node.args[0], ast.Name):
                    names.add(node.args[0].id)
        for attr in ("body", "then", "orelse"):
            stack.extend(getattr(item, attr, []))
    return names


class Progressor:
    """A progress bar on a terminal (stderr), silent with --quiet or when stderr is not a TTY."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.progress: Progress | None = None

    @contextmanager
    def phase(self, label: str, total: int | None) -> Iterator[Any]:
        if not self.enabled:
            yield None
            return
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn()]
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task(label, total=total)
            yield lambda n: progress.advance(task, n)


def load(opts: RunOptions) -> tuple[Program, HardwareConfig]:
    program = load_program(opts.program, opts.preset, opts.overrides, opts.yaml_limits, opts.expr_limits,
                           opts.inits)
    hw = load_config(opts.config, opts.yaml_limits)
    return program, hw


def validate(opts: RunOptions) -> tuple[Program, Execution]:
    """Load and check a program without running it in full: every loop body runs once, shapes and bounds
    are checked on the way, and the kernels' buffer use is checked against the config."""
    program, hw = load(opts)
    check_gm_budget(program, opts.run_limits, numerics_on=False)
    needed = tensors_read(program)
    inputs = initial_values(program, opts.seed, only=needed)
    probe = execute(program, inputs, numerics_on=False, limits=opts.run_limits, first_iterations_only=True)
    simulate(probe.tasks, probe.instrs, hw)
    return program, probe


def _protected(program_file: str | Path) -> list[Path]:
    """Places --out must never be in: the program's folder, the configs, the package."""
    return [Path(program_file).resolve().parent, CONFIG_DIR, Path(__file__).resolve().parent]


def run(opts: RunOptions) -> RunResult:
    # 1. load
    program, hw = load(opts)
    out_dir = None
    if opts.out is not None or opts.plot or opts.trace or opts.save_tensors:
        out = opts.out or artefacts.default_out_dir(program.name, opts.preset)
        out_dir = artefacts.prepare_out_dir(out, _protected(program.file))

    # 2. inputs: the GM budget first, then a quick pass (every loop body once, no arithmetic), so a shape or
    # bounds error in the last kernel is reported in milliseconds rather than after the whole run
    check_gm_budget(program, opts.run_limits, opts.numerics)
    needed = tensors_read(program)
    quick_inputs = initial_values(program, opts.seed, only=needed)
    execute(program, quick_inputs, numerics_on=False, limits=opts.run_limits, first_iterations_only=True)
    inputs = initial_values(program, opts.seed) if opts.numerics else quick_inputs

    # 3. interpret, 4. simulate
    bar = Progressor(opts.quiet)
    with bar.phase("interpreting kernels", None) as tick:
        execution = execute(program, inputs, numerics_on=opts.numerics, limits=opts.run_limits, progress=tick)
    with bar.phase("simulating tasks", len(execution.tasks)) as tick:
        timeline = simulate(execution.tasks, execution.instrs, hw, progress=tick)

    # 5. check
    roles = {name: t.role for name, t in program.tensors.items()}
    check = None
    if opts.numerics and opts.check and program.reference:
        finals = {name: t.data for name, t in execution.tensors.items() if t.data is not None}
        check = reference_check(get_reference(program.reference), inputs, program.consts, finals)

    # 6. report and artefacts: the report lists what is about to be written, and is written last
    plan = _artefact_plan(opts, execution) if out_dir is not None else _Plan()
    report = build_report(
        program_file=program.file, params=program.params, config_name=hw.name, seed=opts.seed, execution=execution,
        timeline=timeline, roles=roles, check=check, trace_events=plan.trace_events, artefacts=plan.files,
    )
    if out_dir is not None:
        write_artefacts(out_dir, plan, program, execution, timeline, report, inputs)
    return RunResult(program, hw, execution, timeline, report, out_dir)


@dataclass
class _Plan:
    """Which artefacts a run writes."""

    files: list[str] = field(default_factory=list)
    trace_events: Literal["ops", "tasks"] | None = None


_ALL_ARTEFACTS = ["timeline.png", "utilisation.png", "trace.json", "inputs.npz", "outputs.npz"]


def _artefact_plan(opts: RunOptions, execution: Execution) -> _Plan:
    plan = _Plan()
    if opts.plot:
        plan.files += ["timeline.png", "utilisation.png"]
    if opts.trace:
        op_events = opts.trace_ops if opts.trace_ops is not None else execution.op_count <= TRACE_OPS_UP_TO
        plan.trace_events = "ops" if op_events else "tasks"
        plan.files.append("trace.json")
    if opts.save_tensors and opts.numerics:
        plan.files += ["inputs.npz", "outputs.npz"]
    return plan


def write_artefacts(out_dir: Path, plan: _Plan, program: Program, execution: Execution, timeline: Timeline,
                    report: Report, inputs: dict[str, np.ndarray]) -> None:
    """Plots, trace and tensors first, report.json last: a directory with a report.json is complete."""
    artefacts.remove_stale(out_dir, ["report.json"])
    if "timeline.png" in plan.files:
        from .output import plots  # matplotlib is slow to import: only when drawing

        plots.write_timeline(out_dir / "timeline.png", execution, timeline)
        plots.write_utilisation(out_dir / "utilisation.png", execution, timeline)
    if plan.trace_events is not None:
        from .output import trace

        trace.write_trace(out_dir / "trace.json", execution, timeline, op_events=plan.trace_events == "ops")
    if "inputs.npz" in plan.files:
        roles = {name: t.role for name, t in program.tensors.items()}
        artefacts.write_npz(out_dir / "inputs.npz", inputs)
        finals = {n: t.data for n, t in execution.tensors.items() if roles.get(n) in ("output", "inout")}
        artefacts.write_npz(out_dir / "outputs.npz", finals)
    artefacts.remove_stale(out_dir, [s for s in _ALL_ARTEFACTS if s not in plan.files])
    artefacts.write_json(out_dir / "report.json", report)


def compare(opts_a: RunOptions, opts_b: RunOptions, out: Path | None) -> Comparison:
    """Run two programs with the same options and compare them scope by scope (compare.json, compare.png)."""
    name_a, name_b = opts_a.program.stem, opts_b.program.stem
    suffix = f"-{opts_a.preset}" if opts_a.preset else ""
    out_dir = artefacts.prepare_out_dir(out or Path("reports") / f"compare-{name_a}-vs-{name_b}{suffix}",
                                        _protected(opts_a.program))
    return compare_runs(lambda: run(opts_a).report, lambda: run(opts_b).report, (name_a, name_b), out_dir)
