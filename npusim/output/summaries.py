"""Where the time goes, worked out from the timeline: the HBM bandwidth each task was refused, what bounds
each kernel or scope, per-kernel, per-instruction and per-source-line totals, the critical path as a short
chain of kernels, and the gaps during which every core of a kind sat idle, with what they waited on.

Two measures of time are used, each where it means something:
- *work*: a task's standalone schedule (its pipe busy cycles and op steps on an idle chip with full
  bandwidth): what the per-kernel busy cycles and the per-instruction and per-line cycles count;
- *occupancy*: when tasks actually ran (stretched when HBM was shared): exec times, latencies, gaps.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from npusim.graph import Execution, Task
from npusim.timing import KernelSchedule, TaskRun, Timeline
from npusim.vocabulary import PIPES, touches_gm

MAJORITY = 0.5  # a group of tasks is HBM-bound when more than half of its exec time was throttled


# --- HBM: who was refused bandwidth, and when ------------------------------------------------------------


def demand(run: TaskRun) -> float:
    """GM bytes per cycle a task asks for while it runs at full speed (the chip's definition)."""
    sched = run.schedule
    return sched.gm_bytes / sched.cycles if sched.cycles else 0.0


@dataclass
class HbmShares:
    """Per task: cycles during which its HBM share was below its demand, and standalone cycles of progress the
    shares account for (equal to its standalone length when the sharing rule matches the chip's)."""

    throttled: list[float]
    progress: list[float]


def water_level(demands: list[float], capacity: float) -> float:
    """Max-min fair sharing of `capacity` (docs/timing-model.md, HBM): the level no share exceeds; every
    demand below it is met in full, every demand above it gets the level. Infinite when all demands fit."""
    left = capacity
    ordered = sorted(demands)
    for k, d in enumerate(ordered):
        share = left / (len(ordered) - k)
        if d > share:
            return share
        left -= d
    return math.inf


def hbm_shares(timeline: Timeline) -> HbmShares:
    """Replay the runs' intervals through max-min fair sharing: between two consecutive task starts or ends
    the set of running tasks is fixed, so is every task's share."""
    runs = timeline.runs
    capacity = timeline.hw.hbm_bytes_per_cycle
    events = sorted([(r.kernel_start, 1, r.task) for r in runs if r.end > r.kernel_start]
                    + [(r.end, -1, r.task) for r in runs if r.end > r.kernel_start])
    throttled = [0.0] * len(runs)
    progress = [0.0] * len(runs)
    wants = [demand(r) for r in runs]
    active: set[int] = set()
    now = 0.0
    for t, step, task in events:
        if t > now and active:
            level = water_level([wants[i] for i in active], capacity)
            for i in active:
                if wants[i] > level:
                    throttled[i] += t - now
                    progress[i] += (t - now) * level / wants[i]
                else:
                    progress[i] += t - now
        now = t
        if step > 0:
            active.add(task)
        else:
            active.discard(task)
    return HbmShares(throttled, progress)


@dataclass
class HbmSteps:
    """HBM bandwidth as step functions of time (cycles): at times[i] the running tasks' demand becomes
    demand[i] and the bandwidth in use min(demand, limit) (B/cycle)."""

    times: list[float]
    in_use: list[float]
    demand: list[float]


def hbm_steps(timeline: Timeline) -> HbmSteps:
    """The HBM bandwidth in use over the run, one step per distinct task start or end: with max-min fair
    sharing, the bandwidth in use is the running tasks' total demand, capped at the limit."""
    deltas: dict[float, float] = defaultdict(float)
    for r in timeline.runs:
        if r.end > r.kernel_start:
            deltas[r.kernel_start] += demand(r)
            deltas[r.end] -= demand(r)
    steps = HbmSteps([], [], [])
    level = 0.0
    for t in sorted(deltas):
        level = max(0.0, level + deltas[t])
        steps.times.append(t)
        steps.demand.append(level)
        steps.in_use.append(min(level, timeline.hw.hbm_bytes_per_cycle))
    return steps


# --- the swimlane's view: exec, latency, runtime overhead, L2 ----------------------------------------------


@dataclass
class Swimlane:
    """A set of tasks as the device's swimlane tool (simpler swimlane_converter.py) counts them, per record
    (one per core a task ran on): exec = AICore end - start, latency = AICPU dispatch -> AICPU-observed finish,
    their difference the runtime's overhead (head and tail); the test time from the earliest dispatch to the
    latest finish; and the share of GM read bytes that hit L2."""

    records: int
    exec_avg: float  # cycles
    latency_avg: float
    overhead_avg: float
    test_time: float
    l2_hit_rate: float


def swimlane(runs: list[TaskRun]) -> Swimlane:
    records = sum(r.records for r in runs)
    if not records:
        return Swimlane(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    exec_sum = sum(r.records * r.exec_cycles for r in runs)
    latency_sum = sum(r.records * r.latency_cycles for r in runs)
    reads = sum(n for r in runs for path, n in r.schedule.dma_bytes.items() if path.startswith("gm_"))
    hits = sum(r.schedule.l2_hit_bytes for r in runs)
    return Swimlane(records, exec_sum / records, latency_sum / records, (latency_sum - exec_sum) / records,
                    max(r.finish for r in runs) - min(r.dispatch for r in runs), hits / reads if reads else 0.0)


# --- what bounds a group of tasks ------------------------------------------------------------------------


@dataclass
class Bound:
    """What limits a group of tasks: `hbm` when more than half of their exec time was throttled (their
    length was then their GM bytes over their bandwidth share, whatever their pipes do), else the pipe with
    the most busy cycles in their standalone schedules. `share`: the throttled fraction of exec time, or
    that pipe's busy cycles over the standalone cycles (one AIV lane's for a split task). Hand-written kernels'
    tasks (`@pl.jit.extern`) are `hbm` by construction: `share` is the part of their exec time moving bytes."""

    by: str
    share: float
    exec_cycles: float
    throttled_cycles: float


def bound(runs: Iterable[TaskRun], throttled: list[float]) -> Bound:
    exec_cycles = throttled_cycles = standalone = 0.0
    busy = dict.fromkeys(PIPES, 0.0)
    busy_runs = list(runs)
    externs = sum(1 for r in busy_runs if r.schedule.extern_read_bytes + r.schedule.extern_write_bytes)
    for r in busy_runs:
        exec_cycles += r.end - r.start
        throttled_cycles += throttled[r.task]
        standalone += r.schedule.cycles
        # a split task's two AIV lanes are two pipes each running one lane's half: the bound is one pipe's share
        lane2 = r.schedule.aiv_busy if r.lanes == 2 else {}
        for pipe, c in r.schedule.busy.items():
            busy[pipe] += c - lane2.get(pipe, 0.0) / 2
    if exec_cycles <= 0:
        return Bound("", 0.0, 0.0, 0.0)
    if externs and externs == len(busy_runs):  # hand-written kernels: their length is their bytes over HBM
        moving = sum(r.end - r.kernel_start for r in busy_runs)
        return Bound("hbm", moving / exec_cycles, exec_cycles, throttled_cycles)
    if throttled_cycles > MAJORITY * exec_cycles:
        return Bound("hbm", throttled_cycles / exec_cycles, exec_cycles, throttled_cycles)
    pipe = max(PIPES, key=lambda p: busy[p])
    return Bound(pipe, busy[pipe] / standalone if standalone else 0.0, exec_cycles, throttled_cycles)


# --- per kernel ------------------------------------------------------------------------------------------


@dataclass
class KernelRow:
    """One kernel (an `incore` block) over all its tasks."""

    kernel: str
    scope: str
    source: str
    core: str
    runs: list[TaskRun] = field(default_factory=list)


def kernel_groups(execution: Execution, timeline: Timeline) -> list[KernelRow]:
    """Tasks grouped by kernel, in program order of their first task. A kernel is named by its `incore`
    name, with `@line` added when two kernels share a name."""
    tasks, instrs = execution.tasks, execution.instrs
    groups: dict[int, KernelRow] = {}
    for r in timeline.runs:
        task = tasks[r.task]
        row = groups.get(task.instr)
        if row is None:
            loc = instrs[task.instr].loc
            row = groups[task.instr] = KernelRow(task.kernel, task.scopes[-1] if task.scopes else "",
                                                 f"{loc.file}:{loc.line}", "")
        row.runs.append(r)
    names: dict[str, int] = defaultdict(int)
    for row in groups.values():
        names[row.kernel] += 1
    for iid, row in groups.items():
        if names[row.kernel] > 1:
            row.kernel = f"{row.kernel}@{instrs[iid].loc.line}"
        row.core = "+".join(sorted({r.kind for r in row.runs}))
        row.runs.sort(key=lambda r: r.task)
    return sorted(groups.values(), key=lambda g: g.runs[0].task)


def traffic(schedules: Iterable[KernelSchedule]) -> dict[str, int]:
    """GM read / write and on-chip bytes and transfers of a set of standalone schedules."""
    out = dict.fromkeys(("gm_read_bytes", "gm_write_bytes", "gm_transfers", "onchip_bytes", "onchip_transfers"), 0)
    for s in schedules:
        out["gm_read_bytes"] += s.extern_read_bytes
        out["gm_write_bytes"] += s.extern_write_bytes
        for path, n in s.dma_bytes.items():
            if path.startswith("gm_"):
                out["gm_read_bytes"] += n
            elif path.endswith("_gm"):
                out["gm_write_bytes"] += n
            else:
                out["onchip_bytes"] += n
        for path, n in s.dma_transfers.items():
            out["gm_transfers" if touches_gm(path) else "onchip_transfers"] += n
    return out


# --- per instruction and per source line ----------------------------------------------------------------


@dataclass
class StepTotals:
    """Op-step totals of one instruction on one pipe, or of one source line."""

    count: int = 0  # op steps
    cycles: float = 0.0  # standalone cycles of those steps
    gm_bytes: int = 0
    onchip_bytes: int = 0
    pipes: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PIPES, 0.0))
    kernels: set[str] = field(default_factory=set)

    def add(self, other: StepTotals, times: int) -> None:
        self.count += other.count * times
        self.cycles += other.cycles * times
        self.gm_bytes += other.gm_bytes * times
        self.onchip_bytes += other.onchip_bytes * times
        for pipe, c in other.pipes.items():
            self.pipes[pipe] += c * times
        self.kernels |= other.kernels


def _schedule_steps(task: Task, sched: KernelSchedule) -> tuple[dict[tuple[str, str], StepTotals],
                                                                 dict[int, StepTotals]]:
    """One schedule's op steps totalled per (instruction, pipe) and per instruction id (source line). The sums
    run in flat lists ([count, cycles, GM bytes, on-chip bytes], and an instruction's cycles per pipe), each
    in step order as StepTotals would add them, and become StepTotals at the end."""
    ops = task.ops
    per_key: dict[tuple[str, str], list] = {}
    per_instr: dict[int, list] = {}
    for step in sched.ops:
        record = ops[step.op]
        cycles = step.end - step.start
        pipe = step.pipe
        path = step.path
        if path is None:
            gm = onchip = 0
        else:
            gm = step.nbytes if touches_gm(path) else 0
            onchip = step.nbytes - gm
        key = (record.sig.key, pipe)
        acc = per_key.get(key)
        if acc is None:
            acc = per_key[key] = [0, 0.0, 0, 0]
        acc[0] += 1
        acc[1] += cycles
        acc[2] += gm
        acc[3] += onchip
        acc = per_instr.get(record.instr)
        if acc is None:
            acc = per_instr[record.instr] = [0, 0.0, 0, 0, dict.fromkeys(PIPES, 0.0)]
        acc[0] += 1
        acc[1] += cycles
        acc[2] += gm
        acc[3] += onchip
        acc[4][pipe] += cycles
    kernels = {task.kernel}
    by_key = {(op, pipe): StepTotals(n, c, g, o, {**dict.fromkeys(PIPES, 0.0), pipe: c}, set(kernels))
              for (op, pipe), (n, c, g, o) in per_key.items()}
    by_instr = {i: StepTotals(n, c, g, o, pipes, set(kernels)) for i, (n, c, g, o, pipes) in per_instr.items()}
    return by_key, by_instr


def step_totals(execution: Execution, timeline: Timeline) -> tuple[dict[tuple[str, str], StepTotals],
                                                                    dict[int, StepTotals]]:
    """Every task's op steps, totalled per (instruction, pipe) and per instruction id. Tasks with the same op
    list share a schedule, so each distinct schedule is walked once and counted once per task using it."""
    uses: dict[int, tuple[Task, KernelSchedule, int]] = {}
    for r in timeline.runs:
        key = id(r.schedule)
        task, sched, n = uses.get(key, (execution.tasks[r.task], r.schedule, 0))
        uses[key] = (task, sched, n + 1)
    by_key: dict[tuple[str, str], StepTotals] = defaultdict(StepTotals)
    by_instr: dict[int, StepTotals] = defaultdict(StepTotals)
    for task, sched, n in uses.values():
        keys, instrs = _schedule_steps(task, sched)
        for k, totals in keys.items():
            by_key[k].add(totals, n)
        for i, totals in instrs.items():
            by_instr[i].add(totals, n)
    return by_key, by_instr


# --- the critical path as a chain of kernels ------------------------------------------------------------


@dataclass
class Link:
    """Consecutive tasks of one kernel on the critical path."""

    kernel: str
    tasks: list[int]
    cores: list[str]
    start: float
    end: float


def _core_names(run: TaskRun) -> list[str]:
    return [f"{kind.upper()} {core}" for kind, core in run.cores]


def chain_links(execution: Execution, timeline: Timeline, chain: list[int]) -> list[Link]:
    """The critical path with consecutive tasks of the same kernel merged into one link."""
    links: list[Link] = []
    for t in chain:
        run, name = timeline.runs[t], execution.tasks[t].kernel
        if links and links[-1].kernel == name:
            link = links[-1]
            link.tasks.append(t)
            link.end = run.end
            link.cores += [c for c in _core_names(run) if c not in link.cores]
        else:
            links.append(Link(name, [t], _core_names(run), run.start, run.end))
    return links


# --- idle gaps -------------------------------------------------------------------------------------------


GapCause = Literal["dependency", "submission", "dispatch"]


@dataclass
class Gap:
    """An interval during which every core of one kind was idle, the task that ended it, and why that task
    had not started earlier: a `dependency` (the predecessor `waits_on` that finished last), its
    `submission` (the orchestrator had not submitted it yet), or its `dispatch` (it was ready before the gap
    began; the scheduler took that long to start it)."""

    side: str
    start: float
    end: float
    next_task: int
    cause: GapCause
    waits_on: int | None


def idle_gaps(timeline: Timeline, min_cycles: float) -> list[Gap]:
    """Gaps of at least `min_cycles` with no task on any AIC (or on any AIV), from the run's start to the last
    task of that kind (the idle tail after a kind's last task waits on nothing)."""
    gaps: list[Gap] = []
    runs_all = timeline.runs
    for side in ("aic", "aiv"):
        runs = sorted((r for r in runs_all if getattr(r, side) is not None), key=lambda r: r.start)
        busy_until = 0.0
        for r in runs:
            if r.start - busy_until >= min_cycles:
                preds = timeline.deps[r.task]
                last = max(preds, key=lambda p: runs_all[p].end) if preds else None
                if r.ready <= busy_until:
                    gaps.append(Gap(side, busy_until, r.start, r.task, "dispatch", None))
                elif last is not None and runs_all[last].end >= r.submit:
                    gaps.append(Gap(side, busy_until, r.start, r.task, "dependency", last))
                else:
                    gaps.append(Gap(side, busy_until, r.start, r.task, "submission", None))
            busy_until = max(busy_until, r.end)
    return sorted(gaps, key=lambda g: (g.start, g.side))


def describe_task(execution: Execution, timeline: Timeline, task: int) -> str:
    """`kernel (task N on AIV 45)`."""
    return f"{execution.tasks[task].kernel} (task {task} on {' + '.join(_core_names(timeline.runs[task]))})"
