"""The timing engine: tasks -> timeline.

Two levels, so a full decode layer (~300 k ops) simulates in well under a second:
- Inside a kernel, pipes are scheduled analytically (`schedule_kernel`): each pipe runs its ops in program
  order; an op starts when its inputs are ready and its pipe is free; a tile's buffer slot is reused only
  after the value it held two (double-buffered) or one production(s) ago is consumed, and the live tiles
  must fit the core's buffers. The result, cached per op-list structure, is the task's standalone length,
  per-pipe busy cycles and DMA traffic.
- Across kernels, a simpy model (`simulate`) runs the orchestrator submitting tasks, the AICPU scheduler
  threads dispatching ready tasks (dependencies from GM footprints) to free cores of the right kind, per-core
  task switches, and HBM shared by every running task (max-min fair bandwidth: a task whose GM traffic
  would exceed its share is slowed).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import simpy

from .costs import PIPES, CostModel, Step
from .errors import NpusimError
from .hardware import BUFFERS, HardwareConfig
from .interpreter import InstrInfo
from .tasks import OpRecord, Task, dependencies


class CapacityError(NpusimError):
    """A kernel whose live tiles do not fit a buffer of the configured core."""


@dataclass
class OpTiming:
    """One step of one op inside its task, relative to the task's start."""

    op: int
    pipe: str
    side: str
    start: float
    end: float
    path: str = ""  # DMA path of this step, if it moves data
    nbytes: int = 0


@dataclass
class KernelSchedule:
    """A task's standalone schedule on an idle core with full bandwidth."""

    cycles: float
    busy: dict[str, float]
    dma_bytes: dict[str, int]
    dma_transfers: dict[str, int]
    gm_bytes: int
    peak_bytes: dict[str, int]
    ops: list[OpTiming]


def _liveness_peaks(ops: list[OpRecord]) -> dict[str, int]:
    """Peak live bytes per buffer: a tile lives from the op making it to its last consumer."""
    last_use = list(range(len(ops)))
    for i, op in enumerate(ops):
        for d in op.deps:
            last_use[d] = max(last_use[d], i)
    events: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, op in enumerate(ops):
        if op.buf and op.nbytes:
            events[op.buf].append((i, op.nbytes))
            events[op.buf].append((last_use[i] + 1, -op.nbytes))
    peaks: dict[str, int] = {}
    for buf, evs in events.items():
        live = peak = 0
        for _, delta in sorted(evs, key=lambda e: (e[0], e[1])):
            live += delta
            peak = max(peak, live)
        peaks[buf] = peak
    return peaks


def schedule_kernel(task: Task, cost: CostModel, instrs: list[InstrInfo]) -> KernelSchedule:
    """Schedule one task's ops on the pipes of its core(s); raises CapacityError if its tiles do not fit."""
    hw = cost.hw
    ops = task.ops
    peaks = _liveness_peaks(ops)
    for buf in BUFFERS:
        need, have = peaks.get(buf, 0), hw.buffer_bytes(buf)
        if need > have:
            where = instrs[task.instr].loc
            raise CapacityError(
                f"kernel {task.kernel}: its live tiles need {need} bytes of {buf}, the {hw.name} core has {have} "
                f"(tile the data smaller or reuse buffers)",
                where,
            )
    # Double-buffer a tile slot (the tiles one instruction produces) when a second copy fits beside the peak.
    depth: dict[tuple[int, str], int] = {}
    extra: dict[str, int] = defaultdict(int)
    for op in ops:
        slot = (op.instr, op.buf)
        if op.buf and slot not in depth:
            fits = peaks.get(op.buf, 0) + extra[op.buf] + op.nbytes <= hw.buffer_bytes(op.buf)
            depth[slot] = 2 if fits else 1
            extra[op.buf] += op.nbytes if fits else 0

    n = len(ops)
    ready_other = [0.0] * n  # result usable by another pipe (vector results after the drain)
    ready_same = [0.0] * n  # result usable by the next op of the same vector stream
    last_consumer_end = [0.0] * n
    is_vector = [False] * n
    pipe_free: dict[tuple[str, str], float] = defaultdict(float)
    v_end = v_tail = 0.0
    v_open = False
    busy: dict[str, float] = dict.fromkeys(PIPES, 0.0)
    dma_bytes: dict[str, int] = defaultdict(int)
    dma_transfers: dict[str, int] = defaultdict(int)
    gm = 0
    timings: list[OpTiming] = []
    history: dict[tuple[int, str], list[int]] = defaultdict(list)
    finish = 0.0
    for i, op in enumerate(ops):
        steps: tuple[Step, ...] = cost.steps(op.sig)
        first_vector = steps[0].pipe == "vector"
        t = 0.0
        for d in op.deps:
            t = max(t, ready_same[d] if first_vector and is_vector[d] else ready_other[d])
        if op.buf:
            slot = (op.instr, op.buf)
            past = history[slot]
            if len(past) >= depth[slot]:
                t = max(t, last_consumer_end[past[-depth[slot]]])
            past.append(i)
        end = t
        for step in steps:
            if step.pipe == "vector":
                if v_open and t <= v_end:
                    begin = v_end
                    end = begin + step.cycles
                    busy["vector"] += step.cycles
                else:
                    if v_open:
                        busy["vector"] += v_tail
                        finish = max(finish, v_end + v_tail)
                    begin = max(t, v_end + (v_tail if v_open else 0.0))
                    end = begin + step.head + step.cycles
                    busy["vector"] += step.head + step.cycles
                v_end, v_tail, v_open = end, step.tail, step.tail > 0
                ready_same[i] = end
                timings.append(OpTiming(i, "vector", step.side, begin, end))
                t = end + step.tail
            else:
                key = (step.side, step.pipe)
                begin = max(t, pipe_free[key])
                end = begin + step.cycles
                pipe_free[key] = end
                busy[step.pipe] += step.cycles
                timings.append(OpTiming(i, step.pipe, step.side, begin, end, step.path, step.nbytes))
                ready_same[i] = end
                t = end
            if step.path:
                dma_bytes[step.path] += step.nbytes
                dma_transfers[step.path] += 1
                gm += step.gm_bytes
        is_vector[i] = steps[-1].pipe == "vector"
        ready_other[i] = t
        finish = max(finish, t)
        for d in op.deps:
            last_consumer_end[d] = max(last_consumer_end[d], end)
    if v_open:
        busy["vector"] += v_tail
        finish = max(finish, v_end + v_tail)
    return KernelSchedule(finish, busy, dict(dma_bytes), dict(dma_transfers), gm, peaks, timings)


def _structure_key(task: Task) -> tuple:
    return tuple(task.ops)


# --- the chip -----------------------------------------------------------------------------------------


class SharedHBM:
    """HBM bandwidth shared by all running tasks as a fluid: each task has standalone work (cycles) and a
    demand (GM bytes per cycle at full speed); bandwidth is split max-min fairly and a task progresses at
    the fraction of its demand it receives."""

    def __init__(self, env: simpy.Environment, bytes_per_cycle: float) -> None:
        self.env = env
        self.capacity = bytes_per_cycle
        self.jobs: dict[int, list] = {}  # id -> [remaining work, demand, done event, rate]
        self.clock = 0.0
        self.wake = env.event()
        env.process(self._loop())

    def run(self, job: int, work: float, demand: float) -> simpy.Event:
        self._advance()
        done = self.env.event()
        if work <= 0:
            done.succeed()
            return done
        self.jobs[job] = [work, demand, done, 1.0]
        self._share()
        if not self.wake.triggered:
            self.wake.succeed()
        return done

    def _advance(self) -> None:
        dt = self.env.now - self.clock
        if dt > 0:
            for job in self.jobs.values():
                job[0] -= dt * job[3]
        self.clock = self.env.now

    def _share(self) -> None:
        left, jobs = self.capacity, sorted(self.jobs.values(), key=lambda j: j[1])
        for k, job in enumerate(jobs):
            share = left / (len(jobs) - k)
            if job[1] <= share:
                job[3] = 1.0
                left -= job[1]
            else:
                job[3] = share / job[1]
                left -= share

    def _loop(self):
        while True:
            if not self.jobs:
                yield self.wake
                self.wake = self.env.event()
                continue
            horizon = min(job[0] / job[3] for job in self.jobs.values())
            yield self.wake | self.env.timeout(max(horizon, 0.0))
            if self.wake.triggered:
                self.wake = self.env.event()
            self._advance()
            for key in [k for k, job in self.jobs.items() if job[0] <= 1e-6]:
                self.jobs.pop(key)[2].succeed()
            self._share()


@dataclass
class TaskRun:
    """Where and when one task ran."""

    task: int
    kind: str
    aic: int | None
    aiv: int | None
    submit: float
    ready: float
    start: float
    end: float
    schedule: KernelSchedule

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


def simulate(tasks: list[Task], instrs: list[InstrInfo], hw: HardwareConfig,
             progress: Callable[[int], None] | None = None) -> Timeline:
    """Run the task graph on the chip described by `hw`."""
    cost = CostModel(hw)
    cache: dict[tuple, KernelSchedule] = {}
    schedules: list[KernelSchedule] = []
    for task in tasks:
        key = _structure_key(task)
        sched = cache.get(key)
        if sched is None:
            sched = cache[key] = schedule_kernel(task, cost, instrs)
        schedules.append(sched)
    deps = dependencies(tasks)

    env = simpy.Environment()
    s = hw.scheduler
    cyc = hw.us_to_cycles
    threads = simpy.Resource(env, capacity=s.scheduler_threads)
    pools = {"aic": simpy.Store(env), "aiv": simpy.FilterStore(env)}
    aiv_per_aic = max(1, hw.num_aiv // hw.num_aic)
    for c in range(hw.num_aic):
        pools["aic"].put(c)
    for c in range(hw.num_aiv):
        pools["aiv"].put(c)
    last_end: dict[tuple[str, int], float] = {}
    hbm = SharedHBM(env, hw.hbm_bytes_per_cycle)
    done = [env.event() for _ in tasks]
    runs: list[TaskRun | None] = [None] * len(tasks)

    def run_task(i: int):
        task, sched = tasks[i], schedules[i]
        submit = (i + 1) * cyc(s.orchestrator_submit_us)
        yield env.timeout(submit)
        if deps[i]:
            yield simpy.AllOf(env, [done[p] for p in deps[i]])
            ready = max(submit, max(runs[p].end for p in deps[i]) + cyc(s.completion_latency_us))  # type: ignore[union-attr]
            yield env.timeout(max(0.0, ready - env.now))
        ready = env.now
        with threads.request() as req:
            yield req
            yield env.timeout(cyc(s.dispatch_cpu_us))
        cores: dict[str, int] = {}
        if task.core == "mix":  # an AIC and one of the AIVs of its cluster (cube_vector_combine = split)
            cores["aic"] = yield pools["aic"].get()
            cores["aiv"] = yield pools["aiv"].get(lambda aiv, c=cores["aic"]: aiv // aiv_per_aic == c)
        else:
            cores[task.core] = yield pools[task.core].get()
        start = env.now + cyc(s.dispatch_latency_us)
        for kind, core in cores.items():
            if (kind, core) in last_end:
                start = max(start, last_end[(kind, core)] + cyc(s.task_switch_us))
        yield env.timeout(start - env.now)
        demand = sched.gm_bytes / sched.cycles if sched.cycles else 0.0
        yield hbm.run(i, sched.cycles, demand)
        end = env.now
        for kind, core in cores.items():
            last_end[(kind, core)] = end
            pools[kind].put(core)
        runs[i] = TaskRun(i, task.core, cores.get("aic"), cores.get("aiv"), submit, ready, start, end, sched)
        done[i].succeed()
        if progress:
            progress(1)

    for i in range(len(tasks)):
        env.process(run_task(i))
    env.run()
    finished = [r for r in runs if r is not None]
    if len(finished) != len(tasks):
        raise AssertionError("the timing engine left tasks unfinished")
    total = max((r.end for r in finished), default=0.0)
    return Timeline(finished, deps, total, hw, len(cache))


def critical_path(timeline: Timeline) -> list[int]:
    """The chain of tasks that ends last, walking back through the predecessor (dependency or earlier task
    on the same core) that finished latest before each task started."""
    if not timeline.runs:
        return []
    by_core: dict[tuple[str, int], list[TaskRun]] = defaultdict(list)
    for r in timeline.runs:
        for kind, core in (("aic", r.aic), ("aiv", r.aiv)):
            if core is not None:
                by_core[(kind, core)].append(r)
    prev_on_core: dict[int, int] = {}
    for lst in by_core.values():
        lst.sort(key=lambda r: r.start)
        for a, b in itertools.pairwise(lst):
            prev_on_core[b.task] = a.task
    runs = timeline.runs
    current = max(runs, key=lambda r: r.end).task
    chain = [current]
    while True:
        candidates = list(timeline.deps[current])
        if current in prev_on_core:
            candidates.append(prev_on_core[current])
        if not candidates:
            break
        current = max(candidates, key=lambda t: runs[t].end)
        chain.append(current)
    chain.reverse()
    return chain

