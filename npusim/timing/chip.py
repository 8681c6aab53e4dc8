"""The chip and its AICPU runtime, as a simpy model (docs/timing-model.md §6).

The runtime is the config's `runtime` generation (simpler): an orchestrator thread submits the dispatches in
program order (an SPMD dispatch's blocks with one submit); scheduler threads, each owning a contiguous block of
clusters (an AIC and its AIVs), handle the completions of their cores (CPU time per subtask, then the consumers
whose last producer this was become ready) and dispatch ready tasks to their free cores (CPU time per subtask),
idle cores first and, when the generation pre-dispatches, then busy cores without a pending task: such a task
starts when the running one ends. A mix task, split or not, takes a whole cluster. A task starts a dispatch
latency after its dispatch (or a task switch after its predecessor's end), spends the runtime's fixed per-task
time, then its kernel's ops; its cores' completions are seen a finish latency after its end. Dependencies come
from GM footprints and explicit edges; GM traffic that misses L2 shares the chip's HBM bandwidth (`hbm.py`).
Each task's own length comes from its kernel's pipe schedule (`kernel.py`, both AIV lanes of a split kernel
from `lanes.py`), its GM reads' sources from the L2 model (`l2.py`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import simpy

from npusim.graph import InstrInfo, Task, dependencies
from npusim.vocabulary import CoreKind, GmSource, Side

from .costs import CostError, CostModel
from .hardware import HardwareConfig
from .hbm import SharedHBM
from .kernel import KernelSchedule, extern_schedule, schedule_kernel
from .l2 import gm_sources
from .lanes import both_lanes

Core = tuple[Side, int]


@dataclass
class TaskRun:
    """Where and when one task ran, with the AICPU's view of it (the device swimlane's stamps)."""

    task: int
    kind: CoreKind
    aic: int | None
    aiv: int | None  # the (first) AIV; a mix task holds its cluster's other AIVs too (`cores`)
    submit: float  # the orchestrator submitted it
    ready: float  # its last producer's completion was handled
    start: float  # AICore start stamp
    end: float  # AICore end stamp
    schedule: KernelSchedule
    dispatch: float = 0.0  # a scheduler thread wrote it to its core(s)
    finish: float = 0.0  # the scheduler thread saw its (last) completion
    kernel_start: float = 0.0  # start + the runtime's fixed per-task time: its ops begin
    cores: tuple[Core, ...] = ()  # every core it occupied: one swimlane record each
    lanes: int = 1  # AIV lanes running the task's vector work: 2 for a split mix kernel

    @property
    def exec_cycles(self) -> float:
        """The swimlane's exec: AICore end - start."""
        return self.end - self.start

    @property
    def latency_cycles(self) -> float:
        """The swimlane's latency: AICPU dispatch -> AICPU-observed finish."""
        return self.finish - self.dispatch

    @property
    def records(self) -> int:
        """Swimlane records: one per core the task ran on."""
        return len(self.cores) or 1

    @property
    def stretch(self) -> float:
        """Actual length of its ops over their standalone length (> 1 when HBM bandwidth was shared)."""
        return (self.end - self.kernel_start) / self.schedule.cycles if self.schedule.cycles else 1.0


@dataclass
class Timeline:
    runs: list[TaskRun]
    deps: list[tuple[int, ...]]
    cycles: float
    hw: HardwareConfig
    distinct_kernels: int = 0  # kernels with different op lists (each scheduled once)


class _CoreState:
    """One core as the scheduler thread owning it sees it: the task running (until its completion is handled)
    and the task waiting in its pending slot."""

    __slots__ = ("pending", "running")

    def __init__(self) -> None:
        self.running: int | None = None
        self.pending: int | None = None


class Chip:
    """The cores, the AICPU threads and the shared HBM of one chip, running one task graph."""

    def __init__(self, hw: HardwareConfig, tasks: list[Task], schedules: list[KernelSchedule],
                 deps: list[tuple[int, ...]], progress: Callable[[int], None] | None) -> None:
        self.hw, self.rt = hw, hw.active_runtime
        self.tasks, self.schedules, self.deps, self.progress = tasks, schedules, deps, progress
        self.env = env = simpy.Environment()
        self.us = hw.us_to_cycles
        self.per_cluster = max(1, hw.num_aiv // hw.num_aic)
        threads = min(self.rt.scheduler_threads, hw.num_aic)
        self.clusters = [range(k * hw.num_aic // threads, (k + 1) * hw.num_aic // threads) for k in range(threads)]
        self.owner = {c: k for k, block in enumerate(self.clusters) for c in block}
        self.state: dict[Core, _CoreState] = {("aic", c): _CoreState() for c in range(hw.num_aic)}
        self.state.update({("aiv", v): _CoreState() for v in range(hw.num_aiv)})
        self.consumers: list[list[int]] = [[] for _ in tasks]
        for i, ds in enumerate(deps):
            for p in ds:
                self.consumers[p].append(i)
        self.waiting = [len(ds) for ds in deps]  # producers not yet complete
        self.submitted = [False] * len(tasks)
        self.ready: dict[CoreKind, deque[int]] = {"mix": deque(), "aic": deque(), "aiv": deque()}
        self.fins: list[deque[tuple[int, Core]]] = [deque() for _ in self.clusters]
        self.wake: list[simpy.Event | None] = [None] * len(self.clusters)
        self.left = [0] * len(tasks)  # subtasks whose completion is not yet handled
        self.done = [env.event() for _ in tasks]  # the task's AICore end
        self.hbm = SharedHBM(env, hw.hbm_bytes_per_cycle)
        self.runs: list[TaskRun | None] = [None] * len(tasks)
        self.times: dict[str, list[float]] = {k: [0.0] * len(tasks) for k in ("submit", "ready", "dispatch")}

    # -- the orchestrator ----------------------------------------------------------------------------------
    def orchestrator(self):
        step = self.us(self.rt.orchestrator_submit_us)
        for i, task in enumerate(self.tasks):
            if i == 0 or task.dispatch != self.tasks[i - 1].dispatch:  # an SPMD dispatch's blocks: one submit
                yield self.env.timeout(step)
            self.submitted[i] = True
            self.times["submit"][i] = self.env.now
            if self.waiting[i] == 0:
                self._make_ready(i)

    def _make_ready(self, i: int) -> None:
        self.times["ready"][i] = self.env.now
        self.ready[self.tasks[i].core].append(i)
        for k in range(len(self.clusters)):
            self._wake(k)

    def _wake(self, k: int) -> None:
        event = self.wake[k]
        if event is not None and not event.triggered:
            event.succeed()

    # -- the scheduler threads -----------------------------------------------------------------------------
    def _cores_of(self, c: int, kind: CoreKind) -> list[Core]:
        aivs = [("aiv", c * self.per_cluster + j) for j in range(self.per_cluster)]
        return [("aic", c), *aivs] if kind == "mix" else [("aic", c)] if kind == "aic" else aivs  # type: ignore[list-item]

    def _free(self, k: int, kind: CoreKind, pending: bool) -> list[Core] | None:
        """Cores of thread k that can take a task of `kind`: idle ones, or (pending) busy ones with a free
        pending slot; a mix task needs a whole cluster (simpler's MIX shape), at least one of it busy when
        pending."""
        for c in self.clusters[k]:
            cores = self._cores_of(c, kind)
            if kind == "mix":
                states = [self.state[x] for x in cores]
                if all(s.pending is None for s in states) and any(s.running is not None for s in states) == pending:
                    return cores
                continue
            for x in cores:
                s = self.state[x]
                if s.pending is None and (s.running is not None) == pending:
                    return [x]
        return None

    def scheduler(self, k: int):
        env, rt = self.env, self.rt
        phases = (False, True) if rt.pre_dispatch else (False,)
        while True:
            progressed = False
            while self.fins[k]:
                i, core = self.fins[k].popleft()
                run = self.runs[i]
                assert run is not None
                run.finish = max(run.finish, env.now)
                yield env.timeout(self.us(rt.completion_us))
                self._complete(i, core)
                progressed = True
            for kind in ("mix", "aic", "aiv"):
                for pending in phases:
                    while self.ready[kind]:
                        cores = self._free(k, kind, pending)  # type: ignore[arg-type]
                        if cores is None:
                            break
                        i = self.ready[kind].popleft()
                        after: list[int] = []  # tasks still running on cores it is pre-dispatched to
                        for x in cores:  # reserve them now: the dispatch takes CPU time
                            s = self.state[x]
                            if s.running is None:
                                s.running = i
                            else:
                                s.pending = i
                                after.append(s.running)
                        yield env.timeout(self.us(rt.dispatch_us) * len(cores))
                        self.times["dispatch"][i] = env.now
                        env.process(self.execute(i, cores, after))
                        progressed = True
            if not progressed:
                self.wake[k] = env.event()
                yield self.wake[k]
                self.wake[k] = None

    def _complete(self, i: int, core: Core) -> None:
        """A subtask's completion handled: its core takes its pending task (if any) as running; when it was the
        task's last subtask, its consumers may become ready."""
        s = self.state[core]
        s.running, s.pending = s.pending, None
        self.left[i] -= 1
        if self.left[i] == 0:
            if self.progress:
                self.progress(1)
            for j in self.consumers[i]:
                self.waiting[j] -= 1
                if self.waiting[j] == 0 and self.submitted[j]:
                    self._make_ready(j)

    # -- a task on its cores -------------------------------------------------------------------------------
    def execute(self, i: int, cores: list[Core], after: list[int]):
        """Run task i on `cores`; `after`: the tasks running on the cores it was pre-dispatched to (it starts a
        task switch after the last of them ends)."""
        env, rt = self.env, self.rt
        dispatch = env.now
        start = dispatch + self.us(rt.dispatch_latency_us)
        if after:
            yield simpy.AllOf(env, [self.done[p] for p in after])
            ends = [self.runs[p].end for p in after]  # type: ignore[union-attr]
            start = max(start, max(ends) + self.us(rt.task_switch_us))
        yield env.timeout(start - env.now)
        yield env.timeout(self.us(rt.exec_fixed_us))
        kernel_start = env.now
        sched = self.schedules[i]
        demand = sched.gm_bytes / sched.cycles if sched.cycles else 0.0
        yield self.hbm.run(i, sched.cycles, demand)
        end = env.now
        task = self.tasks[i]
        aic = next((c for side, c in cores if side == "aic"), None)
        aiv = next((c for side, c in cores if side == "aiv"), None)
        self.runs[i] = TaskRun(i, task.core, aic, aiv, self.times["submit"][i], self.times["ready"][i], start, end,
                               sched, dispatch, 0.0, kernel_start, tuple(cores), task.lanes)
        self.left[i] = len(cores)
        self.done[i].succeed()
        seen = end + self.us(rt.finish_latency_us)
        for x in cores:
            env.process(self._finish(i, x, seen))

    def _finish(self, i: int, core: Core, seen: float):
        yield self.env.timeout(seen - self.env.now)
        k = self.owner[core[1] // (self.per_cluster if core[0] == "aiv" else 1)]
        self.fins[k].append((i, core))
        self._wake(k)

    def run(self) -> list[TaskRun]:
        self.env.process(self.orchestrator())
        for k in range(len(self.clusters)):
            self.env.process(self.scheduler(k))
        self.env.run()
        finished = [r for r in self.runs if r is not None]
        if len(finished) != len(self.tasks) or any(self.left):
            raise AssertionError("the timing engine left tasks unfinished")
        return finished


def _located(exc: CostError, task: Task, cost: CostModel, instrs: list[InstrInfo]) -> CostError:
    """An op the config cannot price, at the instruction of the op that failed."""
    if exc.location is not None:
        return exc
    for op in task.ops:
        try:
            cost.steps(op.sig)
        except CostError:
            info = instrs[op.instr]
            return CostError(f"{info.op}: {exc.message} (kernel {task.kernel})", info.loc)
    return CostError(f"kernel {task.kernel}: {exc.message}", instrs[task.instr].loc)


def schedules_of(tasks: list[Task], instrs: list[InstrInfo], hw: HardwareConfig,
                 sources: list[tuple[GmSource | None, ...] | None]) -> tuple[list[KernelSchedule], int]:
    """Each task's standalone schedule, computed once per distinct op list and GM-read sources."""
    cost = CostModel(hw)
    cache: dict[tuple, KernelSchedule] = {}
    # replayed tasks share their template's op list: each list object is hashed once (all stay alive here), and
    # equal lists get one number
    distinct: dict[tuple, int] = {}
    op_lists: dict[int, int] = {}
    schedules: list[KernelSchedule] = []
    for task, src in zip(tasks, sources, strict=True):
        if task.extern is not None:
            schedules.append(extern_schedule(task, hw))
            continue
        ops = op_lists.get(id(task.ops))
        if ops is None:
            ops = op_lists[id(task.ops)] = distinct.setdefault(tuple(task.ops), len(distinct))
        key = (ops, src, task.lanes)
        sched = cache.get(key)
        if sched is None:
            try:
                sched = schedule_kernel(task, cost, instrs, src)
            except CostError as exc:
                raise _located(exc, task, cost, instrs) from None
            cache[key] = sched = both_lanes(sched) if task.lanes == 2 else sched
        schedules.append(sched)
    return schedules, len(cache)


def simulate(tasks: list[Task], instrs: list[InstrInfo], hw: HardwareConfig,
             progress: Callable[[int], None] | None = None,
             gm_shapes: dict[int, tuple[tuple[int, ...], str]] | None = None,
             waits: Callable[[], list[tuple[int, ...]]] | None = None) -> Timeline:
    """Run the task graph on the chip described by `hw` under its runtime generation: find which GM reads hit
    L2 (`gm_shapes`: every tensor's shape and dtype by id; without it every read goes to HBM), schedule each
    distinct kernel once, find the dependencies (or take them from `waits`, called once the schedules are made,
    when another process finds them meanwhile), run the chip."""
    sources: list[tuple[GmSource | None, ...] | None] = [None] * len(tasks)
    if gm_shapes is not None:
        sources = gm_sources(tasks, gm_shapes, hw.l2)
    schedules, distinct = schedules_of(tasks, instrs, hw, sources)
    deps = waits() if waits is not None else dependencies(tasks)
    runs = Chip(hw, tasks, schedules, deps, progress).run()
    total = max((r.end for r in runs), default=0.0)
    return Timeline(runs, deps, total, hw, distinct)
