"""The chip and its runtime, as a simpy model: the orchestrator submitting dispatches in program order (an
SPMD dispatch's blocks at once), the AICPU scheduler threads dispatching ready tasks (dependencies from GM
footprints and explicit edges) to free cores of the right kind (a split mix task takes an AIC and both AIVs of
its cluster), per-core task switches, and HBM shared by every running task (a task whose GM traffic would
exceed its share is slowed). Each task's own length comes from its kernel's pipe schedule (`kernel.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import simpy

from npusim.graph import InstrInfo, Task, dependencies
from npusim.vocabulary import CoreKind, Side

from .costs import CostError, CostModel
from .hardware import HardwareConfig
from .hbm import SharedHBM
from .kernel import KernelSchedule, schedule_kernel
from .lanes import both_lanes


@dataclass
class TaskRun:
    """Where and when one task ran (`aiv2`: the second AIV lane of a split mix task)."""

    task: int
    kind: CoreKind
    aic: int | None
    aiv: int | None
    submit: float
    ready: float
    start: float
    end: float
    schedule: KernelSchedule
    aiv2: int | None = None

    def cores(self) -> list[tuple[Side, int]]:
        """Every core the task occupied, AIC first."""
        return [(kind, core) for kind, core in (("aic", self.aic), ("aiv", self.aiv), ("aiv", self.aiv2))
                if core is not None]

    @property
    def stretch(self) -> float:
        """Actual length over standalone length (> 1 when HBM bandwidth was shared)."""
        return (self.end - self.start) / self.schedule.cycles if self.schedule.cycles else 1.0


@dataclass
class Timeline:
    runs: list[TaskRun]
    deps: list[tuple[int, ...]]
    cycles: float
    hw: HardwareConfig
    distinct_kernels: int = 0  # kernels with different op lists (each scheduled once)


class Chip:
    """The cores, the AICPU scheduler threads and the shared HBM of one chip, running one task graph. Each
    task is a simpy process (`run_task`)."""

    def __init__(self, hw: HardwareConfig, tasks: list[Task], schedules: list[KernelSchedule],
                 deps: list[tuple[int, ...]], progress: Callable[[int], None] | None) -> None:
        self.hw, self.tasks, self.schedules, self.deps, self.progress = hw, tasks, schedules, deps, progress
        self.env = env = simpy.Environment()
        self.threads = simpy.Resource(env, capacity=hw.scheduler.scheduler_threads)
        self.pools: dict[Side, simpy.Store] = {"aic": simpy.Store(env), "aiv": simpy.FilterStore(env)}
        self.aiv_per_aic = max(1, hw.num_aiv // hw.num_aic)
        for c in range(hw.num_aic):
            self.pools["aic"].put(c)
        for c in range(hw.num_aiv):
            self.pools["aiv"].put(c)
        self.last_end: dict[tuple[Side, int], float] = {}
        self.hbm = SharedHBM(env, hw.hbm_bytes_per_cycle)
        self.done = [env.event() for _ in tasks]
        self.runs: list[TaskRun | None] = [None] * len(tasks)

    def run_task(self, i: int):
        """Submit, wait for dependencies, take a scheduler thread to dispatch, take cores, run, release. The
        orchestrator submits each dispatch once (all blocks of an SPMD dispatch together); each block is then
        dispatched to its own core(s)."""
        env, s, cyc = self.env, self.hw.scheduler, self.hw.us_to_cycles
        task, sched, deps = self.tasks[i], self.schedules[i], self.deps[i]
        submit = (task.dispatch + 1) * cyc(s.orchestrator_submit_us)
        yield env.timeout(submit)
        if deps:
            yield simpy.AllOf(env, [self.done[p] for p in deps])
            ready = max(submit, max(self.runs[p].end for p in deps) + cyc(s.completion_latency_us))  # type: ignore[union-attr]
            yield env.timeout(max(0.0, ready - env.now))
        ready = env.now
        with self.threads.request() as req:
            yield req
            yield env.timeout(cyc(s.dispatch_cpu_us))
        cores: list[tuple[Side, int]] = []
        if task.core == "mix":  # an AIC and one (two for a split kernel) of the AIVs of its cluster
            aic = yield self.pools["aic"].get()
            cores.append(("aic", aic))
            for _ in range(task.lanes):
                aiv = yield self.pools["aiv"].get(lambda v, c=aic: v // self.aiv_per_aic == c)
                cores.append(("aiv", aiv))
        else:
            core = yield self.pools[task.core].get()
            cores.append((task.core, core))
        start = env.now + cyc(s.dispatch_latency_us)
        for kind, core in cores:
            if (kind, core) in self.last_end:
                start = max(start, self.last_end[(kind, core)] + cyc(s.task_switch_us))
        yield env.timeout(start - env.now)
        demand = sched.gm_bytes / sched.cycles if sched.cycles else 0.0
        yield self.hbm.run(i, sched.cycles, demand)
        end = env.now
        for kind, core in cores:
            self.last_end[(kind, core)] = end
            self.pools[kind].put(core)
        aics = [c for k, c in cores if k == "aic"]
        aivs = [c for k, c in cores if k == "aiv"]
        self.runs[i] = TaskRun(i, task.core, aics[0] if aics else None, aivs[0] if aivs else None, submit, ready,
                               start, end, sched, aivs[1] if len(aivs) > 1 else None)
        self.done[i].succeed()
        if self.progress:
            self.progress(1)

    def run(self) -> list[TaskRun]:
        for i in range(len(self.tasks)):
            self.env.process(self.run_task(i))
        self.env.run()
        finished = [r for r in self.runs if r is not None]
        if len(finished) != len(self.tasks):
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


def simulate(tasks: list[Task], instrs: list[InstrInfo], hw: HardwareConfig,
             progress: Callable[[int], None] | None = None) -> Timeline:
    """Run the task graph on the chip described by `hw`: schedule each distinct kernel once, find the
    dependencies, run the chip."""
    cost = CostModel(hw)
    cache: dict[tuple, KernelSchedule] = {}
    schedules: list[KernelSchedule] = []
    for task in tasks:
        key = (tuple(task.ops), task.lanes)
        sched = cache.get(key)
        if sched is None:
            try:
                sched = schedule_kernel(task, cost, instrs)
            except CostError as exc:
                raise _located(exc, task, cost, instrs) from None
            cache[key] = sched = both_lanes(sched) if task.lanes == 2 else sched
        schedules.append(sched)
    deps = dependencies(tasks)
    runs = Chip(hw, tasks, schedules, deps, progress).run()
    total = max((r.end for r in runs), default=0.0)
    return Timeline(runs, deps, total, hw, len(cache))
