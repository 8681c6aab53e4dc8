"""The report: a typed model of one run, built from the timeline. `report.json` is its dump; compare, plots
and the CLI read it by attribute, and a saved report loads back into it. It holds:
- provenance: program file, preset, params and `--set` overrides, the config's name, file and the sha256
  of its resolved values, the seed and the npusim version;
- per scope (and in total): latency, tasks, DMA traffic per path, pipe busy cycles, what bounds it;
- where the time goes: per kernel (`kernels.csv`), per PTO instruction (`instructions.csv`), per source
  line (`lines.csv`), the critical path as a chain of kernels, the gaps when every core of a kind idled;
- utilisation, output digests, the reference check, and what the trace holds."""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from pydantic import BaseModel, ConfigDict

from npusim.graph import Execution
from npusim.numerics import digest
from npusim.references import CheckResult
from npusim.timing import TaskRun, Timeline, critical_path
from npusim.version import __version__
from npusim.vocabulary import PIPES, Side

from . import summaries
from .summaries import HbmShares

GAP_FRACTION = 0.01  # idle gaps reported: at least this fraction of the run


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DmaTraffic(_Model):
    """Bytes and transfers per DMA path (GM and on-chip paths alike; see `gm_read` / `gm_write`)."""

    bytes: dict[str, int]
    transfers: dict[str, int]

    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    def total_transfers(self) -> int:
        return sum(self.transfers.values())

    def gm_read(self) -> int:
        return sum(n for path, n in self.bytes.items() if path.startswith("gm_"))

    def gm_write(self) -> int:
        return sum(n for path, n in self.bytes.items() if path.endswith("_gm"))


class Summary(_Model):
    """A set of tasks: from the first start to the last end, with their traffic and pipe busy cycles."""

    start_cycle: float
    end_cycle: float
    cycles: float
    us: float
    tasks: int
    dma: DmaTraffic
    busy_cycles: dict[str, float]
    exec_cycles: float  # the tasks' run times added up (occupied core time, a mix task counted once)
    hbm_throttled_cycles: float  # of which with less HBM bandwidth than the task asked for
    bound_by: str  # "hbm", or the pipe with the most busy cycles (summaries.Bound)
    bound_share: float  # throttled fraction of exec time, or that pipe's busy share of the standalone time
    # as the device's swimlane tool counts (summaries.Swimlane): per record, one per core a task ran on
    records: int
    exec_avg_us: float  # AICore end - start
    latency_avg_us: float  # AICPU dispatch -> AICPU-observed finish
    runtime_overhead_us: float  # latency - exec: dispatch -> start and end -> finish seen
    test_time_us: float  # earliest dispatch -> latest finish (the swimlane's Total Test Time)
    l2_hit_rate: float  # of the GM read bytes, those served by L2


class ScopeSummary(Summary):
    name: str  # the scope path, nested scopes as outer/inner


class OutputDigest(_Model):
    dtype: str
    shape: list[int]
    sha256: str | None  # of the raw little-endian bytes of the final value; None without numerics


class CoreUtilisation(_Model):
    """Occupied core-cycles (a task resident) over (span x cores), per core kind; and per pipe, its busy
    cycles over the occupied core-cycles of that kind (how busy the pipes of the *active* cores were)."""

    aic: float
    aiv: float
    aic_pipes: dict[str, float]
    aiv_pipes: dict[str, float]


class ChainLink(_Model):
    """Consecutive tasks of one kernel on the critical path, from the first one's start to the last one's end."""

    kernel: str
    tasks: int
    cores: list[str]
    start_us: float
    us: float


class CriticalPath(_Model):
    tasks: int
    busy_cycles: float
    kernels: dict[str, float]  # cycles on the path per kernel, longest first
    task_ids: list[int]  # the chain, first task first
    chain: list[ChainLink]


class KernelSummary(_Model):
    """One kernel (`incore` block) over all its tasks: a row of kernels.csv. Exec times are as run (HBM
    sharing included); busy cycles and traffic are its standalone schedules' (docs: summaries)."""

    kernel: str
    scope: str
    source: str
    core: str
    tasks: int
    start_us: float
    latency_us: float  # first task's start to last task's end
    exec_us: float  # the tasks' run times added up
    exec_avg_us: float
    exec_min_us: float
    exec_max_us: float
    standalone_us: float  # the same tasks alone on the chip with full HBM bandwidth
    hbm_throttled_us: float
    critical_path_us: float
    busy_cycles: dict[str, float]
    gm_read_bytes: int
    gm_write_bytes: int
    gm_transfers: int
    onchip_bytes: int
    onchip_transfers: int
    bound_by: str
    bound_share: float


class InstructionSummary(_Model):
    """One PTO instruction on one pipe: a row of instructions.csv (standalone cycles of its op steps)."""

    instruction: str
    pipe: str
    count: int
    cycles: float
    share: float  # of all op-step cycles of the run
    gm_bytes: int
    onchip_bytes: int


class LineSummary(_Model):
    """One source line: a row of lines.csv (standalone cycles of the op steps it caused, per pipe)."""

    source: str
    text: str
    kernels: list[str]
    count: int
    cycles: float
    share: float
    busy_cycles: dict[str, float]
    gm_bytes: int
    onchip_bytes: int


class IdleGap(_Model):
    """A time when every core of one kind was idle (see summaries.Gap), at least `idle_gap_min_us` long."""

    side: Side
    start_us: float
    us: float
    next_kernel: str  # the kernel whose task ended the gap
    cause: summaries.GapCause
    waits_on: str | None  # "kernel (task N on AIV 45)" when the cause is a dependency


class TraceSample(_Model):
    """Which tasks' ops the trace shows as pipe slices when it cannot show them all."""

    rule: str
    tasks: int
    of_tasks: int
    ops: int
    of_ops: int


class Report(_Model):
    """report.json (docs/sources.md DESIGN §7)."""

    npusim_version: str
    program: str
    program_file: str
    preset: str | None
    params: dict[str, int | float]
    overrides: dict[str, int | float]  # the --set values
    config: str  # the config's `name:`
    config_path: str  # the file it was read from (summaries: timing.config_label)
    config_sha256: str  # of its resolved values (timing.config_sha256)
    runtime: str  # the AICPU runtime generation the run used (the config's runtime:, or --runtime)
    seed: int
    clock_hz: float
    numerics: bool
    total: Summary
    scopes: list[ScopeSummary]
    kernels: list[KernelSummary]
    instructions: list[InstructionSummary]
    lines: list[LineSummary]
    utilisation: CoreUtilisation
    critical_path: CriticalPath
    idle_gap_min_us: float
    idle_gaps: list[IdleGap]
    ops: int
    loop_iterations: int
    outputs: dict[str, OutputDigest]
    check: CheckResult | None = None
    trace_events: Literal["ops", "sample", "tasks"] | None = None  # what the trace holds, when it was written
    trace_sample: TraceSample | None = None  # which tasks' ops it holds, when "sample"
    artefacts: list[str] = []

    def scope(self, name: str) -> ScopeSummary:
        return next(s for s in self.scopes if s.name == name)

    def title(self) -> str:
        """`program (preset p) on config`."""
        return f"{self.program}{f' (preset {self.preset})' if self.preset else ''} on {self.config}"

    def provenance(self) -> str:
        """One line saying exactly what ran: config file and hash, overrides, seed, version."""
        sets = " ".join(f"{k}={v}" for k, v in self.overrides.items())
        return (f"config {self.config} ({self.config_path}, sha256 {self.config_sha256[:12]}) · "
                f"runtime {self.runtime} · --set {sets or 'none'} · seed {self.seed} · npusim {self.npusim_version}")


def _span(runs: list[TaskRun], timeline: Timeline, shares: HbmShares) -> dict:
    paths = list(timeline.hw.dma)
    dma_bytes, transfers = dict.fromkeys(paths, 0), dict.fromkeys(paths, 0)
    busy = dict.fromkeys(PIPES, 0.0)
    for r in runs:
        for path, n in r.schedule.dma_bytes.items():
            dma_bytes[path] += n
        for path, n in r.schedule.dma_transfers.items():
            transfers[path] += n
        for pipe, c in r.schedule.busy.items():
            busy[pipe] += c
    ext_read = sum(r.schedule.extern_read_bytes for r in runs)
    ext_write = sum(r.schedule.extern_write_bytes for r in runs)
    if ext_read or ext_write:  # hand-written kernels' bytes, on no DMA path npusim knows (`gm_` / `_gm` as GM)
        dma_bytes.update(gm_extern=ext_read, extern_gm=ext_write)
        transfers.update(gm_extern=0, extern_gm=0)
    start = min((r.start for r in runs), default=0.0)
    end = max((r.end for r in runs), default=0.0)
    cycles = end - start
    limit = summaries.bound(runs, shares.throttled)
    lane = summaries.swimlane(runs)
    us = 1e6 / timeline.hw.clock_hz
    return {
        "start_cycle": round(start, 3),
        "end_cycle": round(end, 3),
        "cycles": round(cycles, 3),
        "us": round(cycles / timeline.hw.clock_hz * 1e6, 4),
        "tasks": len(runs),
        "dma": DmaTraffic(bytes=dma_bytes, transfers=transfers),
        "busy_cycles": {p: round(c, 3) for p, c in busy.items()},
        "exec_cycles": round(limit.exec_cycles, 3),
        "hbm_throttled_cycles": round(limit.throttled_cycles, 3),
        "bound_by": limit.by,
        "bound_share": round(limit.share, 4),
        "records": lane.records,
        "exec_avg_us": round(lane.exec_avg * us, 4),
        "latency_avg_us": round(lane.latency_avg * us, 4),
        "runtime_overhead_us": round(lane.overhead_avg * us, 4),
        "test_time_us": round(lane.test_time * us, 4),
        "l2_hit_rate": round(lane.l2_hit_rate, 4),
    }


def output_sha256s(execution: Execution, roles: dict[str, str]) -> dict[str, str | None]:
    """The sha256 of the final value of every output and inout tensor (None without numerics)."""
    return {name: digest(t.data) if t.data is not None else None
            for name, t in execution.tensors.items() if roles.get(name) in ("output", "inout")}


def outputs_digest(execution: Execution, sha256s: dict[str, str | None]) -> dict[str, OutputDigest]:
    """dtype, shape and sha256 of the final value of every output and inout tensor."""
    return {name: OutputDigest(dtype=execution.tensors[name].dtype, shape=list(execution.tensors[name].shape),
                               sha256=sha) for name, sha in sha256s.items()}


def kernel_summaries(execution: Execution, timeline: Timeline, shares: HbmShares, chain: list[int]
                     ) -> list[KernelSummary]:
    """One row per kernel, in program order."""
    us = 1e6 / timeline.hw.clock_hz
    on_path = set(chain)
    rows = []
    for group in summaries.kernel_groups(execution, timeline):
        runs = group.runs
        lengths = [r.end - r.start for r in runs]
        limit = summaries.bound(runs, shares.throttled)
        busy = dict.fromkeys(PIPES, 0.0)
        for r in runs:
            for pipe, c in r.schedule.busy.items():
                busy[pipe] += c
        start = min(r.start for r in runs)
        rows.append(KernelSummary(
            kernel=group.kernel, scope=group.scope, source=group.source, core=group.core, tasks=len(runs),
            start_us=round(start * us, 4), latency_us=round((max(r.end for r in runs) - start) * us, 4),
            exec_us=round(sum(lengths) * us, 4), exec_avg_us=round(sum(lengths) / len(runs) * us, 4),
            exec_min_us=round(min(lengths) * us, 4), exec_max_us=round(max(lengths) * us, 4),
            standalone_us=round(sum(r.schedule.cycles for r in runs) * us, 4),
            hbm_throttled_us=round(limit.throttled_cycles * us, 4),
            critical_path_us=round(sum(r.end - r.start for r in runs if r.task in on_path) * us, 4),
            busy_cycles={p: round(c, 3) for p, c in busy.items()},
            **summaries.traffic(r.schedule for r in runs),
            bound_by=limit.by, bound_share=round(limit.share, 4),
        ))
    return rows


def step_summaries(execution: Execution, timeline: Timeline) -> tuple[list[InstructionSummary], list[LineSummary]]:
    """Per (instruction, pipe), most cycles first; per source line, in source order."""
    by_key, by_instr = summaries.step_totals(execution, timeline)
    total = sum(t.cycles for t in by_key.values()) or 1.0
    instructions = [
        InstructionSummary(instruction=key, pipe=pipe, count=t.count, cycles=round(t.cycles, 3),
                           share=round(t.cycles / total, 6), gm_bytes=t.gm_bytes, onchip_bytes=t.onchip_bytes)
        for (key, pipe), t in sorted(by_key.items(), key=lambda kv: (-kv[1].cycles, kv[0]))
    ]
    merged: dict[tuple[str, int], tuple[str, summaries.StepTotals]] = {}
    for iid, totals in by_instr.items():
        info = execution.instrs[iid]
        key = (info.loc.file, info.loc.line or 0)
        text, line = merged.get(key, (info.text, summaries.StepTotals()))
        line.add(totals, 1)
        merged[key] = (text, line)
    lines = [
        LineSummary(source=f"{file}:{line}", text=text, kernels=sorted(t.kernels), count=t.count,
                    cycles=round(t.cycles, 3), share=round(t.cycles / total, 6),
                    busy_cycles={p: round(c, 3) for p, c in t.pipes.items()}, gm_bytes=t.gm_bytes,
                    onchip_bytes=t.onchip_bytes)
        for (file, line), (text, t) in sorted(merged.items())
    ]
    return instructions, lines


def utilisation(timeline: Timeline, span: float) -> CoreUtilisation:
    """Occupied fraction of each core kind, and each pipe's busy share of the occupied core time (op steps as
    run: stretched like their task)."""
    hw = timeline.hw
    occupied = {"aic": 0.0, "aiv": 0.0}
    pipes: dict[str, dict[str, float]] = {"aic": dict.fromkeys(PIPES, 0.0), "aiv": dict.fromkeys(PIPES, 0.0)}
    steps: dict[int, dict[tuple[str, str], float]] = {}
    for r in timeline.runs:
        for kind, _ in r.cores:
            occupied[kind] += r.end - r.start
        per = steps.get(id(r.schedule))
        if per is None:
            per = steps[id(r.schedule)] = defaultdict(float)
            for op in r.schedule.ops:
                per[(op.side, op.pipe)] += op.end - op.start
        lanes = r.lanes  # a split task's second AIV lane runs the same steps
        for (side, pipe), c in per.items():
            pipes[side][pipe] += c * r.stretch * (lanes if side == "aiv" else 1)
    share = {k: {p: round(c / occupied[k], 4) for p, c in pipes[k].items() if c} if occupied[k] else {}
             for k in ("aic", "aiv")}
    return CoreUtilisation(aic=round(occupied["aic"] / (span * hw.num_aic), 4),
                           aiv=round(occupied["aiv"] / (span * hw.num_aiv), 4),
                           aic_pipes=share["aic"], aiv_pipes=share["aiv"])


def critical_chain(execution: Execution, timeline: Timeline, chain: list[int]) -> CriticalPath:
    us = 1e6 / timeline.hw.clock_hz
    tasks = execution.tasks
    per_kernel: dict[str, float] = defaultdict(float)
    for t in chain:
        per_kernel[tasks[t].kernel] += timeline.runs[t].end - timeline.runs[t].start
    links = [ChainLink(kernel=link.kernel, tasks=len(link.tasks), cores=link.cores, start_us=round(link.start * us, 4),
                       us=round((link.end - link.start) * us, 4))
             for link in summaries.chain_links(execution, timeline, chain)]
    return CriticalPath(
        tasks=len(chain),
        busy_cycles=round(sum(per_kernel.values()), 3),
        kernels={k: round(v, 3) for k, v in sorted(per_kernel.items(), key=lambda kv: -kv[1])},
        task_ids=chain,
        chain=links,
    )


def gaps(execution: Execution, timeline: Timeline) -> tuple[float, list[IdleGap]]:
    """The idle gaps of at least GAP_FRACTION of the run."""
    us = 1e6 / timeline.hw.clock_hz
    min_cycles = GAP_FRACTION * timeline.cycles
    found = [
        IdleGap(side=g.side, start_us=round(g.start * us, 4), us=round((g.end - g.start) * us, 4),  # type: ignore[arg-type]
                next_kernel=execution.tasks[g.next_task].kernel, cause=g.cause,
                waits_on=summaries.describe_task(execution, timeline, g.waits_on) if g.waits_on is not None else None)
        for g in summaries.idle_gaps(timeline, min_cycles) if min_cycles > 0
    ]
    return round(min_cycles * us, 4), found


def build_report(
    *,
    program_file: str,
    params: dict[str, int | float],
    overrides: dict[str, int | float],
    config_name: str,
    config_path: str,
    config_sha256: str,
    runtime: str,
    seed: int,
    execution: Execution,
    timeline: Timeline,
    roles: dict[str, str],
    check: CheckResult | None,
    trace_events: Literal["ops", "sample", "tasks"] | None = None,
    trace_sample: TraceSample | None = None,
    artefacts: list[str] | None = None,
    sha256s: dict[str, str | None] | None = None,
) -> Report:
    """The report of one run, complete: the artefacts it lists are those the run is about to write.
    `sha256s`: output_sha256s, if already computed (a run hashes its outputs while it simulates)."""
    tasks = execution.tasks
    by_scope: dict[str, list[TaskRun]] = defaultdict(list)
    for run in timeline.runs:
        for scope in tasks[run.task].scopes:
            by_scope[scope].append(run)
    shares = summaries.hbm_shares(timeline)
    total = Summary(**_span(timeline.runs, timeline, shares))
    chain = critical_path(timeline)
    instructions, lines = step_summaries(execution, timeline)
    gap_min_us, idle = gaps(execution, timeline)
    return Report(
        npusim_version=__version__,
        program=execution.program,
        program_file=program_file,
        preset=execution.preset,
        params=params,
        overrides=dict(overrides),
        config=config_name,
        config_path=config_path,
        config_sha256=config_sha256,
        runtime=runtime,
        seed=seed,
        clock_hz=timeline.hw.clock_hz,
        numerics=execution.numerics,
        total=total,
        scopes=[ScopeSummary(name=name, **_span(by_scope[name], timeline, shares)) for name in execution.scopes],
        kernels=kernel_summaries(execution, timeline, shares, chain),
        instructions=instructions,
        lines=lines,
        utilisation=utilisation(timeline, total.cycles or 1.0),
        critical_path=critical_chain(execution, timeline, chain),
        idle_gap_min_us=gap_min_us,
        idle_gaps=idle,
        ops=execution.op_count,
        loop_iterations=execution.loop_iterations,
        outputs=outputs_digest(execution, sha256s if sha256s is not None else output_sha256s(execution, roles)),
        check=check,
        trace_events=trace_events,
        trace_sample=trace_sample,
        artefacts=sorted(artefacts or []),
    )


def merge_gaps(gaps: list[IdleGap]) -> list[list[IdleGap]]:
    """Consecutive gaps of one core kind waiting on the same kernel (or for the same cause), as one group."""
    groups: list[list[IdleGap]] = []
    for side in ("aic", "aiv"):
        for g in (g for g in gaps if g.side == side):
            what = (g.waits_on or g.cause).split(" ")[0]
            last = groups[-1] if groups and groups[-1][0].side == side else None
            if last is not None and (last[0].waits_on or last[0].cause).split(" ")[0] == what:
                last.append(g)
            else:
                groups.append([g])
    return groups
