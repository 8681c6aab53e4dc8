"""One simulation run, end to end, as numbered stages: 1 load the program and the config, 2 draw the inputs,
3 interpret (values and tasks), 4 simulate the timeline, 5 check against the reference, 6 report and write
the artefacts. `compare` runs two of them side by side."""

from __future__ import annotations

import ast
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
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
from .interp import RunLimits, check_gm_budget, check_memory, execute
from .interp.values import NeedsNumerics
from .output import artefacts
from .output.compare import Comparison, compare_runs
from .output.report import Report, build_report
from .references import check as reference_check
from .references import check_fits, get_reference
from .timing import CONFIG_DIR, DEFAULT_CONFIG, HardwareConfig, Timeline, load_config, resolve_config_path, simulate

TRACE_OPS_UP_TO = 100_000  # above this many ops trace.json holds task events only (unless asked for ops)
# Bytes per trace.json event, to size a trace before it is written: measured on the Qwen3 tiny trace (139 task
# slices of 375 B, 4486 op slices of 321 B, 518 dependency arrows of 227 B, 806 metadata events of 79 B for
# its 72 cores; 1 672 499 bytes in all)
TRACE_EVENT_BYTES = {"task": 380, "op": 320, "flow": 230, "core": 900}


@dataclass
class RunOptions:
    program: Path
    config: str = DEFAULT_CONFIG
    preset: str | None = None
    overrides: dict[str, int | float] = field(default_factory=dict)
    seed: int = 0
    numerics: bool = True
    out: Path | None = None
    save_tensors: bool = False
    plot: bool = True
    trace: bool = True
    trace_ops: bool | None = None  # op-level trace events; None: only if the run has <= TRACE_OPS_UP_TO ops
    quiet: bool = False
    check: bool = True
    max_trace_bytes: int = artefacts.MAX_TRACE_BYTES
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


def note(message: str) -> None:
    """A line on stderr about what a run does differently from what was asked (always shown, even with -q)."""
    print(f"npusim: {message}", file=sys.stderr, flush=True)


class Progressor:
    """Progress on stderr: a bar on a terminal; elsewhere (a log, a pipe) a line every LINE_EVERY_S seconds of
    a phase that lasts that long, so a long run is never silent; nothing with --quiet."""

    LINE_EVERY_S = 10.0

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and sys.stderr.isatty()
        self.lines = not quiet and not self.enabled
        self.progress: Progress | None = None

    @contextmanager
    def phase(self, label: str, total: int | None) -> Iterator[Any]:
        if self.lines:
            yield self._line_ticker(label, total)
            return
        if not self.enabled:
            yield None
            return
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn()]
        with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task(label, total=total)
            yield lambda n: progress.advance(task, n)

    def _line_ticker(self, label: str, total: int | None) -> Any:
        start = time.monotonic()
        state = {"done": 0, "next": start + self.LINE_EVERY_S}

        def tick(n: int) -> None:
            state["done"] += n
            now = time.monotonic()
            if now >= state["next"]:
                state["next"] = now + self.LINE_EVERY_S
                of = f"/{total}" if total else ""
                note(f"{label}: {state['done']}{of} tasks, {now - start:.0f} s")

        return tick


def load(opts: RunOptions) -> tuple[Program, HardwareConfig]:
    program = load_program(opts.program, opts.preset, opts.overrides, opts.yaml_limits, opts.expr_limits)
    hw = load_config(opts.config, opts.yaml_limits)
    if program.reference:
        ref = get_reference(program.reference, program.reference_loc)
        check_fits(ref, {n: t.role for n, t in program.tensors.items()}, program.consts, program.reference_loc)
    return program, hw


@dataclass
class Probe:
    """The quick pass: every loop body once, without arithmetic (None where the program reads values that
    only numerics have, and the pass stopped there)."""

    execution: Execution | None
    stopped: NeedsNumerics | None = None


def probe(program: Program, inputs: dict[str, np.ndarray], opts: RunOptions, numerics_later: bool) -> Probe:
    """Run every loop body once without arithmetic (on `inputs`, the values of the tensors the program reads):
    a shape or bounds error in the last kernel is found in milliseconds, and the run's tasks and ops are
    estimated. A `read` of values only numerics has ends it early when numerics follow (the run checks the
    rest), and is the error otherwise."""
    try:
        return Probe(execute(program, inputs, numerics_on=False, limits=opts.run_limits, first_iterations_only=True))
    except NeedsNumerics as exc:
        if not numerics_later:
            raise
        return Probe(None, exc)


def validate(opts: RunOptions) -> tuple[Program, Probe]:
    """Load and check a program without running it in full: every loop body runs once, shapes and bounds
    are checked on the way, and the kernels' buffer use is checked against the config."""
    program, hw = load(opts)
    check_gm_budget(program, opts.run_limits, numerics_on=False)
    quick = probe(program, initial_values(program, opts.seed, only=tensors_read(program)), opts,
                  numerics_later=True)
    if quick.execution is not None:
        simulate(quick.execution.tasks, quick.execution.instrs, hw)
    return program, quick


def _protected() -> list[Path]:
    """Places --out must never be in, hold or be held by: the configs (npusim's and ./configs), the package."""
    places = [CONFIG_DIR, Path(__file__).resolve().parent]
    return places + ([Path("configs")] if Path("configs").is_dir() else [])


def output_dir(opts: RunOptions, program: Program, inputs: list[Path]) -> artefacts.OutputDir | None:
    """The run's output directory (checked, not yet locked), or None when the run writes nothing."""
    if opts.out is None and not (opts.plot or opts.trace or opts.save_tensors):
        return None
    out = opts.out or artefacts.default_out_dir(program.name, opts.preset)
    return artefacts.OutputDir(out, [*inputs, resolve_config_path(opts.config)], _protected())


def run(opts: RunOptions) -> RunResult:
    # 1. load, and lock the output directory before any work (a second run into it is refused at once)
    program, hw = load(opts)
    target = output_dir(opts, program, [Path(program.file)])
    with target if target is not None else nullcontext():
        return _run(opts, program, hw, target)


def _run(opts: RunOptions, program: Program, hw: HardwareConfig, target: artefacts.OutputDir | None) -> RunResult:
    # 2. inputs: the GM budget first, then the quick pass, which also estimates the run's memory
    check_gm_budget(program, opts.run_limits, opts.numerics)
    quick_inputs = initial_values(program, opts.seed, only=tensors_read(program))
    quick = probe(program, quick_inputs, opts, numerics_later=opts.numerics)
    if quick.execution is not None:
        check_memory(program, quick.execution, opts.run_limits, opts.numerics)
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
        check = reference_check(get_reference(program.reference), inputs, program.consts, finals,
                                where=program.reference_loc)

    # 6. report and artefacts: the report lists what is about to be written; all are staged, then put in
    # place together
    plan = _artefact_plan(opts, execution, timeline) if target is not None else _Plan()
    report = build_report(
        program_file=program.file, params=program.params, config_name=hw.name, seed=opts.seed, execution=execution,
        timeline=timeline, roles=roles, check=check, trace_events=plan.trace_events, artefacts=plan.files,
    )
    if target is not None:
        with target.writing() as stage:
            write_artefacts(stage, plan, program, execution, timeline, report, inputs)
        target.commit("report.json")
    return RunResult(program, hw, execution, timeline, report, target.shown if target is not None else None)


@dataclass
class _Plan:
    """Which artefacts a run writes."""

    files: list[str] = field(default_factory=list)
    trace_events: Literal["ops", "tasks"] | None = None


def trace_bytes(timeline: Timeline, op_events: bool) -> int:
    """The size trace.json will have, from its event counts."""
    tasks = sum((r.aic is not None) + (r.aiv is not None) for r in timeline.runs)
    ops = sum(len(r.schedule.ops) for r in timeline.runs) if op_events else 0
    flows = sum(len(d) for d in timeline.deps)
    cores = timeline.hw.num_aic + timeline.hw.num_aiv
    return (tasks * TRACE_EVENT_BYTES["task"] + ops * TRACE_EVENT_BYTES["op"] + flows * TRACE_EVENT_BYTES["flow"]
            + cores * TRACE_EVENT_BYTES["core"])


def _artefact_plan(opts: RunOptions, execution: Execution, timeline: Timeline) -> _Plan:
    plan = _Plan()
    if opts.plot:
        plan.files += ["timeline.png", "utilisation.png"]
    if opts.trace:
        op_events = opts.trace_ops if opts.trace_ops is not None else execution.op_count <= TRACE_OPS_UP_TO
        limit = opts.max_trace_bytes
        if op_events and (size := trace_bytes(timeline, True)) > limit:
            note(f"trace.json with op events would take about {size >> 20} MB, more than --max-trace-bytes "
                 f"({limit >> 20} MB): it holds task events only")
            op_events = False
        if not op_events and (size := trace_bytes(timeline, False)) > limit:
            note(f"trace.json would take about {size >> 20} MB even with task events only, more than "
                 f"--max-trace-bytes ({limit >> 20} MB): not written")
        else:
            plan.trace_events = "ops" if op_events else "tasks"
            plan.files.append("trace.json")
    if opts.save_tensors and opts.numerics:
        plan.files += ["inputs.npz", "outputs.npz"]
    return plan


def write_artefacts(out_dir: Path, plan: _Plan, program: Program, execution: Execution, timeline: Timeline,
                    report: Report, inputs: dict[str, np.ndarray]) -> None:
    """Every artefact of the plan into `out_dir` (a fresh staging directory); report.json's bytes are made
    first, so a report JSON cannot hold fails before anything is drawn."""
    report_bytes = artefacts.json_bytes(report)
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
    artefacts.write_atomic(out_dir / "report.json", lambda fh: fh.write(report_bytes))


def compare(opts_a: RunOptions, opts_b: RunOptions, out: Path | None) -> Comparison:
    """Run two programs with the same options and compare them scope by scope (compare.json, compare.png),
    staged and put in place together like a run's artefacts."""
    name_a, name_b = opts_a.program.stem, opts_b.program.stem
    suffix = f"-{opts_a.preset}" if opts_a.preset else ""
    default = Path("reports") / artefacts.safe_component(f"compare-{name_a}-vs-{name_b}{suffix}")
    inputs = [opts_a.program, opts_b.program, resolve_config_path(opts_a.config)]
    with artefacts.OutputDir(out or default, inputs, _protected()) as target:
        with target.writing() as stage:
            result = compare_runs(lambda: run(opts_a).report, lambda: run(opts_b).report, (name_a, name_b), stage)
        target.commit("compare.json")
    result.out_dir = target.shown
    return result
