"""One simulation run, end to end, as numbered stages: 1 load the program and the config, 2 draw the inputs,
3 interpret (values and tasks), 4 simulate the timeline, 5 check against the reference (or the user's
saved outputs, --expect), 6 report and write the artefacts. `compare` sets two runs or saved reports side
by side."""

from __future__ import annotations

import ast
import gc
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .beside import Beside, Drawn, beside, can_fork
from .defaults import MAX_TRACE_BYTES
from .dtypes import np_dtype
from .errors import NpusimError
from .frontend import Program, load_program
from .frontend.expressions import ExprLimits
from .frontend.inputs import filler, initial_values
from .frontend.program import ScalarAssign
from .frontend.yaml_source import YamlLimits
from .graph import Execution, Task, dependencies
from .interp import RunLimits, check_gm_budget, check_memory, execute
from .interp.heap import keep_freed_memory
from .interp.values import NeedsNumerics
from .output import artefacts
from .references import REFERENCE_ATOL, REFERENCE_RTOL, Reference, check_fits, compute_expected, get_reference
from .references import check as reference_check
from .timing import (
    CONFIG_DIR,
    DEFAULT_CONFIG,
    HardwareConfig,
    Timeline,
    config_label,
    config_sha256,
    critical_path,
    load_config,
    resolve_config_path,
    simulate,
)

if TYPE_CHECKING:
    from .output.compare import Comparison
    from .output.report import Report, TraceSample

# A run of at least this many tasks finds their dependencies in a forked process (waits_of): forking and
# handing them back cost ~3 ms (measured 2026-12-04 in a process that had imported the runner), finding them
# ~0.05 ms a task (the default layer: 70 ms for 1503 tasks, beside 0.22 s of L2 sources and schedules)
FORK_DEPENDENCIES_FROM = 256
TRACE_OPS_UP_TO = 100_000  # above this many ops the trace holds the ops of a sample of tasks (unless asked)
PROGRESS_EVERY_S = 10.0  # progress lines on a stderr that is not a terminal: one per this many seconds
TraceDetail = Literal["auto", "ops", "sample", "tasks"]
# Bytes of JSON per trace event as trace.event_count counts them (metadata included), to size a trace before it
# is written: measured with every op, Qwen3 tiny 1 788 061 B / 6 217 events = 288, softmax 283, matmul 328
TRACE_BYTES_PER_EVENT = 300


@dataclass
class RunOptions:
    program: Path
    config: str = DEFAULT_CONFIG
    runtime: str | None = None  # a runtime generation of the config other than its `runtime:`
    preset: str | None = None
    overrides: dict[str, int | float] = field(default_factory=dict)
    inits: dict[str, str] = field(default_factory=dict)  # --init NAME=RULE: tensor init rules replaced
    seed: int = 0
    numerics: bool = True
    out: Path | None = None
    save_tensors: bool = False
    plot: bool = True
    trace: bool = True
    trace_detail: TraceDetail = "auto"  # auto: every op up to TRACE_OPS_UP_TO ops, a sample above
    quiet: bool = False
    check: bool = True
    expect: Path | None = None  # saved outputs to check against instead of the program's reference
    rtol: float = REFERENCE_RTOL
    atol: float = REFERENCE_ATOL
    max_trace_bytes: int = MAX_TRACE_BYTES
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
    """Tensors whose values steer control flow (`read(t, ...)` in expressions, through second names `t2 = t`): a
    timing-only run needs them."""
    names: set[str] = set()
    aliases: dict[str, set[str]] = {}  # `a = b` of a tensor: a read of a is a read of b
    stack: list[Any] = list(program.body)
    while stack:
        item = stack.pop()
        if isinstance(item, ScalarAssign) and isinstance(item.expr, ast.Name):
            aliases.setdefault(item.target, set()).add(item.expr.id)
        roots = [getattr(item, "expr", None), getattr(item, "cond", None), *getattr(item, "range_args", []),
                 *(v for v in getattr(item, "args", {}).values() if isinstance(v, ast.AST))]
        for root in roots:
            for node in ast.walk(root) if root is not None else ():
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "read" \
                        and node.args and isinstance(node.args[0], ast.Name):
                    names.add(node.args[0].id)
        for attr in ("body", "then", "orelse"):
            stack.extend(getattr(item, attr, []))
    todo = list(names)
    while todo:
        for source in aliases.get(todo.pop(), ()):
            if source not in names:
                names.add(source)
                todo.append(source)
    return names


class Progressor:
    """Progress on stderr: a bar on a terminal; elsewhere (a CI log, a pipe) a line every PROGRESS_EVERY_S
    seconds while a phase runs and one when a phase that printed ends, so a long run is never silent;
    nothing with --quiet."""

    def __init__(self, quiet: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet = quiet
        self.terminal = sys.stderr.isatty()
        self.clock = clock

    @contextmanager
    def phase(self, label: str, total: int | None) -> Iterator[Any]:
        if self.quiet:
            yield None
        elif self.terminal:
            from rich.console import Console  # rich only for a bar on a terminal (start-up time)
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn()]
            with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task(label, total=total)
                yield lambda n: progress.advance(task, n)
        else:
            lines = _ProgressLines(label, total, self.clock)
            yield lines.tick
            lines.finish()


class _ProgressLines:
    """Periodic `npusim: <phase>: N[/total] tasks, T s` lines on stderr."""

    def __init__(self, label: str, total: int | None, clock: Callable[[], float]) -> None:
        self.label, self.total, self.clock = label, total, clock
        self.begin = self.last = clock()
        self.done = 0
        self.printed = False

    def _say(self, what: str) -> None:
        print(f"npusim: {self.label}: {what}, {self.clock() - self.begin:.0f} s", file=sys.stderr, flush=True)
        self.printed = True

    def tick(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            self._say(f"{self.done}{f'/{self.total}' if self.total else ''} tasks")

    def finish(self) -> None:
        if self.printed:
            self._say(f"done ({self.done} tasks)")


def note(message: str) -> None:
    """A line on stderr about what a run does differently from what was asked (always shown, even with -q)."""
    print(f"npusim: {message}", file=sys.stderr, flush=True)


def load(opts: RunOptions) -> tuple[Program, HardwareConfig]:
    program = load_program(opts.program, opts.preset, opts.overrides, opts.yaml_limits, opts.expr_limits,
                           opts.inits)
    hw = load_config(opts.config, opts.yaml_limits)
    if opts.runtime is not None:
        hw = hw.with_runtime(opts.runtime)
    if program.reference:
        ref = get_reference(program.reference, program.reference_loc)
        check_fits(ref, {n: t.role for n, t in program.tensors.items()}, program.consts, program.reference_loc)
    return program, hw


def _slug(text: str) -> str:
    """A file-name-safe form of a name or value."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text).strip("._") or "x"


def run_key(opts: RunOptions, config_digest: str) -> str:
    """8 hex digits that tell runs apart: the program file (where it is), preset, overrides, the config's
    resolved values and the seed. A rerun of the same thing gets the same key; a copied program, an edited
    config that keeps its name or a different --set does not."""
    ident = {"program": str(Path(opts.program).resolve()), "preset": opts.preset,
             "overrides": sorted(opts.overrides.items()), "config": config_digest, "seed": opts.seed}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]


def default_out_dir(program: Program, opts: RunOptions, hw: HardwareConfig) -> Path:
    """reports/<program>[-<preset>][-<name>=<value>...]-<config>[-timing]-<key>: the name says what ran
    (`timing` for --no-numerics), the key (`run_key`) what the name cannot show; the overrides are left to
    the key when they would make the name long."""
    sets = "-".join(f"{k}={v}" for k, v in opts.overrides.items())
    key = run_key(opts, config_sha256(hw))
    parts = [program.name, opts.preset or "", sets if len(sets) <= 48 else "", hw.name, opts.runtime or "",
             "" if opts.numerics else "timing", key]
    return Path("reports") / artefacts.safe_component("-".join(_slug(p) for p in parts if p))


@dataclass
class Probe:
    """The quick pass: every loop body once, without arithmetic (None where the program reads values that
    only numerics have, and the pass stopped there)."""

    execution: Execution | None
    stopped: NeedsNumerics | None = None


def inputs_drawn_beside(program: Program, seed: int, quick_inputs: dict[str, np.ndarray], quick: Probe,
                        inouts_too: bool) -> tuple[dict[str, np.ndarray], Drawn]:
    """The inputs of a numerics run whose inputs a forked process draws (`Drawn`), in the order the quick pass
    first moved them, and with them the inouts if `inouts_too` (the interpreter changes those in place, in its
    copy-on-write mapping: the process still sees their initial values); the other inouts are drawn here, now.
    The tensors the quick pass read are the ones it was given."""
    inputs = dict(quick_inputs)
    if not inouts_too:
        inputs |= initial_values(program, seed, only=[n for n, t in program.tensors.items()
                                                      if t.role == "inout" and n not in quick_inputs])
    names = list(program.tensors)
    first: dict[str, int] = {}
    first_task: dict[str, int] = {}  # the task that first moves it: those one task first moves are drawn together
    for task in quick.execution.tasks if quick.execution is not None else ():
        for _, (tid, _, _), _ in task.accesses:
            if tid < len(names):
                first.setdefault(names[tid], len(first))
                first_task.setdefault(names[tid], task.id)
    later = sorted((n for n, t in program.tensors.items() if t.role in ("input", "inout") and n not in inputs),
                   key=lambda n: first.get(n, len(first)))  # (stable: the unmoved ones in declaration order)
    drawn = Drawn([(n, program.tensors[n].shape, np_dtype(program.tensors[n].dtype)) for n in later],
                  filler(program, seed), inputs, frozenset(n for n in later if program.tensors[n].role == "inout"),
                  together=[first_task.get(n, n) for n in later])
    return inputs, drawn


def dependency_arrays(tasks: list[Task]) -> dict[str, np.ndarray]:
    """The tasks' dependencies (graph.dependencies) as arrays a forked process hands back: how many each task
    waits for, and all of them in task order."""
    waits = dependencies(tasks)
    counts = np.fromiter(map(len, waits), dtype=np.int64, count=len(waits))
    return {"counts": counts,
            "waits": np.fromiter(chain.from_iterable(waits), dtype=np.int64, count=int(counts.sum()))}


def waits_of(finding: Beside) -> list[tuple[int, ...]]:
    """The dependencies `dependency_arrays` found in a forked process, as graph.dependencies gives them."""
    arrays = finding.result()
    flat, ends = arrays["waits"].tolist(), np.cumsum(arrays["counts"]).tolist()
    return [tuple(flat[begin:end]) for begin, end in zip([0, *ends[:-1]], ends, strict=True)]


def _no_values() -> dict[str, np.ndarray]:
    """The computation of a process that only draws inputs."""
    return {}


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
        simulate(quick.execution.tasks, quick.execution.instrs, hw, gm_shapes=quick.execution.gm_shapes)
    return program, quick


def protected_places() -> list[Path]:
    """Places --out must never be in, hold or be held by: the configs (npusim's and ./configs), the package."""
    places = [CONFIG_DIR, Path(__file__).resolve().parent]
    return places + ([Path("configs")] if Path("configs").is_dir() else [])


def output_dir(opts: RunOptions, program: Program, hw: HardwareConfig) -> artefacts.OutputDir | None:
    """The run's output directory (checked and locked on entering), or None when the run writes nothing. Its
    inputs (program, config, --expect file) may not lie in it."""
    if opts.out is None and not (opts.plot or opts.trace or opts.save_tensors):
        return None
    out = opts.out or default_out_dir(program, opts, hw)
    inputs = [Path(program.file), resolve_config_path(opts.config), *([opts.expect] if opts.expect else [])]
    return artefacts.OutputDir(out, inputs, protected_places())


def run(opts: RunOptions) -> RunResult:
    # 1. load (and the user's saved outputs, so a bad file fails before the run); lock the output directory
    # before any work (a second run into it is refused at once)
    program, hw = load(opts)
    expected = None
    if opts.expect is not None:
        if not opts.numerics:
            raise NpusimError("--expect compares computed outputs: it needs numerics (drop --no-numerics)")
        from .output.expect import load_expected

        expected = load_expected(opts.expect, program)
    target = output_dir(opts, program, hw)
    with target if target is not None else nullcontext(), collector_off():
        return _run(opts, program, hw, expected, target)


@contextmanager
def collector_off() -> Iterator[None]:
    """A run builds hundreds of thousands of long-lived, acyclic records (ops, windows, task runs): CPython's
    collector scans each of them as it is made and again as it ages. Off for the run (the few cycles a run makes
    are collected once it is done, when the collector is on again), the default layer's timing-only run took
    1.30 -> 1.18 s and its numerics run's peak RSS 2281 -> 2328 MB (benchmarks/README.md, round six)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run(opts: RunOptions, program: Program, hw: HardwareConfig, expected: dict[str, np.ndarray] | None,
         target: artefacts.OutputDir | None) -> RunResult:
    # 2. inputs: the GM budget first, then the quick pass (every loop body once, no arithmetic: a shape or
    # bounds error in the last kernel is reported in milliseconds), which also estimates the run's memory
    check_gm_budget(program, opts.run_limits, opts.numerics)
    quick_inputs = initial_values(program, opts.seed, only=tensors_read(program))
    quick = probe(program, quick_inputs, opts, numerics_later=opts.numerics)
    if quick.execution is not None:
        check_memory(program, quick.execution, opts.run_limits, opts.numerics)
    if opts.numerics:
        keep_freed_memory()  # before the inputs: drawing them, the interpreter and the reference churn the heap

    # the check's reference (the user's saved outputs with --expect, else the program's own) is computed beside
    # the interpreter, on the other core: it needs only the inputs. Where that is a forked process, it first
    # draws the inputs and inouts for the interpreter too, which waits only for those not yet drawn
    from .output.expect import expectation
    from .output.report import build_report, output_sha256s  # (pydantic models: only for a run, not to validate)

    reference: Reference | None = None
    if expected is not None and opts.expect is not None:
        reference = expectation(opts.expect, expected, opts.rtol, opts.atol)
    elif program.reference:
        reference = get_reference(program.reference)
    checked = opts.numerics and opts.check and reference is not None
    computed = checked and expected is None  # (saved outputs need no computing)
    drawn: Drawn | None = None
    if not opts.numerics:
        inputs = quick_inputs
    elif can_fork():  # (inputs.npz needs the inouts' initial values: then they are drawn now, and copied)
        inputs, drawn = inputs_drawn_beside(program, opts.seed, quick_inputs, quick, not opts.save_tensors)
    else:
        inputs = initial_values(program, opts.seed)
    pending = beside(compute_expected, reference, inputs, program.consts, program.reference_loc,
                     what="the reference check's process", drawn=drawn) if computed else \
        beside(_no_values, what="the process drawing the inputs", drawn=drawn) if drawn is not None else None
    finding: Beside | None = None
    try:
        # 3. interpret, 4. simulate
        bar = Progressor(opts.quiet)
        with bar.phase("interpreting kernels", None) as tick:
            # inout tensors are changed in place when nothing reads their initial values afterwards: no
            # reference, or a forked one with its copy-on-write snapshot, and no inputs.npz
            in_place = (pending is None or pending.snapshot) and not opts.save_tensors
            execution = execute(program, inputs, numerics_on=opts.numerics, limits=opts.run_limits, progress=tick,
                                copy_inouts=not in_place,
                                arriving={name: partial(drawn.wait, name) for name in drawn.arrays} if drawn else None)
            if drawn is not None:
                drawn.wait_all()  # (every input is read later: the check, inputs.npz)
        # the dependencies are found in a forked process beside the L2 sources and schedules when nothing else
        # runs beside (a numerics run's reference is still busy on the other core), before any thread starts
        if pending is None and len(execution.tasks) >= FORK_DEPENDENCIES_FROM and can_fork():
            finding = beside(dependency_arrays, execution.tasks, what="the process finding the dependencies")
        # the outputs' sha256 are computed beside the simulation (hashlib releases the GIL): 0.3 s of the default
        # layer's 268 MB of caches
        roles = {name: t.role for name, t in program.tensors.items()}
        from concurrent.futures import ThreadPoolExecutor

        hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="npusim-sha256")
        sha256s = hashing.submit(output_sha256s, execution, roles)
        hashing.shutdown(wait=False)  # its one job still runs
        with bar.phase("simulating tasks", len(execution.tasks)) as tick:
            timeline = simulate(execution.tasks, execution.instrs, hw, progress=tick, gm_shapes=execution.gm_shapes,
                                waits=partial(waits_of, finding) if finding is not None else None)

        # 5. check: against the user's saved outputs (--expect), else the program's reference
        check = None
        if checked and reference is not None:
            finals = {name: t.data for name, t in execution.tensors.items() if t.data is not None}
            with bar.phase("checking outputs", None):
                check = reference_check(reference, inputs, program.consts, finals, where=program.reference_loc,
                                        expected=pending.result() if computed and pending is not None else None)
    finally:
        for process in (pending, finding):
            if process is not None:
                process.close()

    # 6. report and artefacts: the report lists what is about to be written; all are staged, then put in
    # place together
    chain = critical_path(timeline)
    plan = _artefact_plan(opts, execution, timeline) if target is not None else _Plan()
    report = build_report(
        program_file=program.file, params=program.params, overrides=opts.overrides, config_name=hw.name,
        config_path=config_label(resolve_config_path(opts.config)), config_sha256=config_sha256(hw), runtime=hw.runtime,
        seed=opts.seed,
        execution=execution, timeline=timeline, roles=roles, check=check, trace_events=plan.trace_events,
        trace_sample=plan.trace_sample, artefacts=plan.files, sha256s=sha256s.result(),
    )
    hashing.shutdown()  # (its thread is done: a process may be forked to draw plots)
    if target is not None:
        with target.writing() as stage:
            write_artefacts(stage, plan, program, execution, timeline, report, inputs, chain, bar)
        target.commit("report.json")
    return RunResult(program, hw, execution, timeline, report, target.shown if target is not None else None)


@dataclass
class _Plan:
    """Which artefacts a run writes."""

    files: list[str] = field(default_factory=list)
    trace_events: Literal["ops", "sample", "tasks"] | None = None
    trace_file: str | None = None
    trace_sample: TraceSample | None = None


SUMMARY_CSVS = ["kernels.csv", "instructions.csv", "lines.csv"]
PLOTS = ["timeline.png", "utilisation.png", "kernels.png"]
_LESS_DETAIL = {"ops": "sample", "sample": "tasks", "tasks": None}  # how a trace over the size limit is reduced


def _artefact_plan(opts: RunOptions, execution: Execution, timeline: Timeline) -> _Plan:
    plan = _Plan(files=list(SUMMARY_CSVS))
    if opts.plot:
        plan.files += PLOTS
    if opts.trace:
        _plan_trace(opts, execution, timeline, plan)
    if opts.save_tensors and opts.numerics:
        plan.files += ["inputs.npz", "outputs.npz"]
    return plan


def _plan_trace(opts: RunOptions, execution: Execution, timeline: Timeline, plan: _Plan) -> None:
    """The trace's detail and file: as asked (auto: every op up to TRACE_OPS_UP_TO ops, else a sample), less
    while it would be larger than --max-trace-bytes (each step said on stderr), or no trace at all."""
    from .output import trace

    detail: Literal["ops", "sample", "tasks"] | None = (
        opts.trace_detail if opts.trace_detail != "auto" else "ops" if execution.op_count <= TRACE_OPS_UP_TO
        else "sample")
    while detail is not None:
        with_ops = trace.op_tasks(execution, timeline, detail)
        size = trace.event_count(timeline, with_ops) * TRACE_BYTES_PER_EVENT
        if size <= opts.max_trace_bytes:
            break
        reduced = _LESS_DETAIL[detail]
        note(f"the trace with {detail} detail would take about {size >> 20} MB, more than --max-trace-bytes "
             f"({opts.max_trace_bytes >> 20} MB): " + (f"{reduced} detail instead" if reduced else "not written"))
        detail = reduced
    else:
        return
    plan.trace_events = detail
    if detail == "sample":
        from .output.report import TraceSample

        plan.trace_sample = TraceSample(
            rule=trace.SAMPLE_RULE, tasks=len(with_ops), of_tasks=len(timeline.runs),
            ops=sum(len(timeline.runs[t].schedule.ops) for t in with_ops),
            of_ops=sum(len(r.schedule.ops) for r in timeline.runs))
    plan.trace_file = trace.file_name(timeline, with_ops)
    plan.files.append(plan.trace_file)


def _provenance(report: Report) -> dict[str, Any]:
    """What the trace's metadata says about the run (the report's provenance fields)."""
    return {k: getattr(report, k) for k in ("npusim_version", "program", "program_file", "preset", "overrides",
                                            "config", "config_path", "config_sha256", "runtime", "seed", "numerics")}


def write_artefacts(out_dir: Path, plan: _Plan, program: Program, execution: Execution, timeline: Timeline,
                    report: Report, inputs: dict[str, np.ndarray], chain: list[int],
                    bar: Progressor | None = None) -> None:
    """Every artefact of the plan into `out_dir` (a fresh staging directory); report.json's bytes are made
    first, so a report JSON cannot hold fails before anything is drawn. Where a process can be forked, it
    draws the timeline and utilisation plots meanwhile (the default layer's three plots take ~1.5 s, its
    trace ~0.6 s): forked before the progress bar's thread starts."""
    from .output.table import csv_text

    report_bytes = artefacts.json_bytes(report)
    drawing = None
    if "timeline.png" in plan.files:
        from .output import plots  # matplotlib is slow to import: only when drawing

        if can_fork():
            drawing = beside(_draw_timelines, out_dir, execution, timeline, report,
                             what="the process drawing the plots")
        else:
            _draw_timelines(out_dir, execution, timeline, report)
    try:
        with (bar or Progressor(quiet=True)).phase("writing the report", None):
            for name, rows in (("kernels.csv", report.kernels), ("instructions.csv", report.instructions),
                               ("lines.csv", report.lines)):
                text = csv_text(rows).encode()
                artefacts.write_atomic(out_dir / name, lambda fh, text=text: fh.write(text))
            if "kernels.png" in plan.files:
                plots.write_kernels(out_dir / "kernels.png", report)
            if plan.trace_events is not None and plan.trace_file is not None:
                from .output import trace

                trace.write_trace(out_dir / plan.trace_file, execution, timeline, chain, plan.trace_events,
                                  _provenance(report))
            if "inputs.npz" in plan.files:
                roles = {name: t.role for name, t in program.tensors.items()}
                artefacts.write_npz(out_dir / "inputs.npz", inputs)
                finals = {n: t.data for n, t in execution.tensors.items() if roles.get(n) in ("output", "inout")}
                artefacts.write_npz(out_dir / "outputs.npz", finals)
            if drawing is not None:
                drawing.result()  # (raises what drawing raised)
    finally:
        if drawing is not None:
            drawing.close()
    artefacts.write_atomic(out_dir / "report.json", lambda fh: fh.write(report_bytes))


def _draw_timelines(out_dir: Path, execution: Execution, timeline: Timeline, report: Report
                    ) -> dict[str, np.ndarray]:
    """timeline.png and utilisation.png (no values to hand back)."""
    from .output import plots

    plots.write_timeline(out_dir / "timeline.png", execution, timeline, report)
    plots.write_utilisation(out_dir / "utilisation.png", execution, timeline, report)
    return {}


# --- compare ---------------------------------------------------------------------------------------------


@dataclass
class Side:
    """One side of a comparison: a program run with its options, or a saved report.json (read once)."""

    options: RunOptions | None = None
    report_file: Path | None = None
    saved: Report | None = None

    def identity(self) -> dict[str, Any]:
        """What this side is, for the output directory's key."""
        if self.report_file is not None:
            return {"report": str(self.report_file.resolve())}
        o = self.options
        assert o is not None
        return {"program": str(Path(o.program).resolve()), "preset": o.preset, "config": o.config,
                "overrides": sorted(o.overrides.items()), "seed": o.seed}

    def describe(self) -> dict[str, str]:
        """Short descriptions of what can differ between two sides."""
        if self.report_file is not None:
            r = self.report()
            return {"program": Path(r.program_file).stem, "preset": r.preset or "", "config": r.config,
                    "set": " ".join(f"{k}={v}" for k, v in r.overrides.items()), "seed": f"seed {r.seed}",
                    "report": self.report_file.parent.name or self.report_file.name}
        o = self.options
        assert o is not None
        return {"program": Path(o.program).stem, "preset": o.preset or "", "config": Path(o.config).stem,
                "set": " ".join(f"{k}={v}" for k, v in o.overrides.items()), "seed": f"seed {o.seed}"}

    def inputs(self) -> list[Path]:
        """The files this side reads (its report, or its program, config and --expect file)."""
        if self.report_file is not None:
            return [self.report_file]
        o = self.options
        assert o is not None
        return [Path(o.program), resolve_config_path(o.config), *([o.expect] if o.expect else [])]

    def report(self) -> Report:
        if self.report_file is not None:
            if self.saved is None:
                from .output.compare import load_report  # (imports rich: only when comparing)

                self.saved = load_report(self.report_file)
            return self.saved
        assert self.options is not None
        return run(self.options).report


def labels(a: Side, b: Side) -> tuple[str, str]:
    """Each side named by what differs between them (program, preset, config, --set, seed; for saved
    reports that differ in none of these, their directories); A and B when nothing that shows does."""
    da, db = a.describe(), b.describe()
    keys = [k for k in dict.fromkeys([*da, *db]) if k != "report" and da.get(k, "") != db.get(k, "")]
    if not keys and da.get("report", "") != db.get("report", ""):
        keys = ["report"]
    la = " ".join(da.get(k, "") or "-" for k in keys)
    lb = " ".join(db.get(k, "") or "-" for k in keys)
    return (la, lb) if keys and la != lb else ("A", "B")


def compare(a: Side, b: Side, out: Path | None) -> Comparison:
    """Two sides scope by scope (compare.json, compare.png), into reports/compare-<a>-vs-<b>-<key> by default,
    staged and put in place together like a run's artefacts; no side's program, config or report may lie in
    the output directory."""
    from .output.compare import compare_runs

    label_a, label_b = labels(a, b)
    if out is None:
        key = hashlib.sha256(json.dumps([a.identity(), b.identity()], sort_keys=True).encode()).hexdigest()[:8]
        name = f"compare-{_slug(label_a)[:40]}-vs-{_slug(label_b)[:40]}-{key}"
        out = Path("reports") / artefacts.safe_component(name)
    inputs = [p for s in (a, b) for p in s.inputs()]
    with artefacts.OutputDir(out, inputs, protected_places()) as target:
        with target.writing() as stage:
            result = compare_runs(a.report, b.report, (label_a, label_b), stage)
        target.commit("compare.json")
    result.out_dir = target.shown
    return result
