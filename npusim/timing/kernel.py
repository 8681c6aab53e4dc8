"""The pipe schedule of one kernel: each task's ops on the pipes of its core(s), analytically.

Each pipe runs its ops in program order; an op starts when its inputs are ready and its pipe is free; a tile's
buffer slot is reused only after the value it held two (double-buffered) or one production(s) ago is
consumed; the live tiles must fit the core's buffers. The result, computed once per distinct op list, is the
task's standalone length, per-pipe busy cycles and DMA traffic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from npusim.errors import NpusimError
from npusim.graph import InstrInfo, OpRecord, Task
from npusim.vocabulary import BUFFERS, PIPES, Buffer, PathName, Pipe, Side

from .costs import CostModel, Step
from .hardware import HardwareConfig


class CapacityError(NpusimError):
    """A kernel whose live tiles do not fit a buffer of the configured core."""


@dataclass
class OpTiming:
    """One step of one op inside its task, relative to the task's start."""

    op: int
    pipe: Pipe
    side: Side
    start: float
    end: float
    path: PathName | None = None  # DMA path of this step, if it moves data
    nbytes: int = 0


@dataclass
class KernelSchedule:
    """A task's standalone schedule on an idle core with full bandwidth."""

    cycles: float
    busy: dict[Pipe, float]
    dma_bytes: dict[PathName, int]
    dma_transfers: dict[PathName, int]
    gm_bytes: int
    peak_bytes: dict[Buffer, int]
    ops: list[OpTiming]
    aiv_busy: dict[Pipe, float] = field(default_factory=dict)  # the part of `busy` on the AIV side


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


def check_capacity(task: Task, peaks: dict[Buffer, int], hw: HardwareConfig, instrs: list[InstrInfo]) -> None:
    """The kernel's live tiles must fit every buffer of the configured core."""
    for buf in BUFFERS:
        need, have = peaks.get(buf, 0), hw.buffer_bytes(buf)
        if need > have:
            raise CapacityError(
                f"kernel {task.kernel}: its live tiles need {need} bytes of {buf}, the {hw.name} core has {have} "
                f"(tile the data smaller or reuse buffers)",
                instrs[task.instr].loc,
            )


def buffer_depths(ops: list[OpRecord], peaks: dict[Buffer, int], hw: HardwareConfig) -> dict[tuple[int, Buffer], int]:
    """Slots per tile slot (the tiles one instruction produces): two (double-buffered) when a second copy fits
    beside the peak, else one."""
    depth: dict[tuple[int, Buffer], int] = {}
    extra: dict[Buffer, int] = defaultdict(int)
    for op in ops:
        if op.buf is None:
            continue
        slot = (op.instr, op.buf)
        if slot not in depth:
            fits = peaks.get(op.buf, 0) + extra[op.buf] + op.nbytes <= hw.buffer_bytes(op.buf)
            depth[slot] = 2 if fits else 1
            extra[op.buf] += op.nbytes if fits else 0
    return depth


class _Pipes:
    """The pipes of one core pair while a kernel is scheduled: when each is free, the open vector stream
    (its end and pending tail), busy cycles, DMA traffic and every placed step."""

    def __init__(self) -> None:
        self.free: dict[tuple[Side, Pipe], float] = defaultdict(float)
        self.v_end = self.v_tail = 0.0
        self.v_open = False
        self.busy: dict[Pipe, float] = dict.fromkeys(PIPES, 0.0)
        self.aiv_busy: dict[Pipe, float] = dict.fromkeys(PIPES, 0.0)
        self.dma_bytes: dict[PathName, int] = defaultdict(int)
        self.dma_transfers: dict[PathName, int] = defaultdict(int)
        self.gm = 0
        self.timings: list[OpTiming] = []
        self.finish = 0.0

    def place_vector(self, op: int, step: Step, t: float) -> float:
        """A vector step continues the open stream if it is ready when the stream's last call ends (no head);
        otherwise the stream drains (its tail is paid) and the step pays a head. Returns its end."""
        if self.v_open and t <= self.v_end:
            begin = self.v_end
            end = begin + step.cycles
            self._busy("vector", "aiv", step.cycles)
        else:
            self.drain()
            begin = max(t, self.v_end + (self.v_tail if self.v_open else 0.0))
            end = begin + step.head + step.cycles
            self._busy("vector", "aiv", step.head + step.cycles)
        self.v_end, self.v_tail, self.v_open = end, step.tail, step.tail > 0
        self.timings.append(OpTiming(op, "vector", step.side, begin, end))
        return end

    def place(self, op: int, step: Step, t: float) -> float:
        """A step of an in-order pipe: it starts when ready and the pipe is free. Returns its end."""
        key = (step.side, step.pipe)
        begin = max(t, self.free[key])
        end = begin + step.cycles
        self.free[key] = end
        self._busy(step.pipe, step.side, step.cycles)
        self.timings.append(OpTiming(op, step.pipe, step.side, begin, end, step.path, step.nbytes))
        if step.path is not None:
            self.dma_bytes[step.path] += step.nbytes
            self.dma_transfers[step.path] += 1
            self.gm += step.gm_bytes
        return end

    def drain(self) -> None:
        """Pay the open vector stream's tail."""
        if self.v_open:
            self._busy("vector", "aiv", self.v_tail)
            self.finish = max(self.finish, self.v_end + self.v_tail)

    def _busy(self, pipe: Pipe, side: Side, cycles: float) -> None:
        self.busy[pipe] += cycles
        if side == "aiv":
            self.aiv_busy[pipe] += cycles


def schedule_kernel(task: Task, cost: CostModel, instrs: list[InstrInfo]) -> KernelSchedule:
    """Schedule one task's ops on the pipes of its core(s); raises CapacityError if its tiles do not fit."""
    hw = cost.hw
    ops = task.ops
    peaks = _liveness_peaks(ops)
    check_capacity(task, peaks, hw, instrs)
    depth = buffer_depths(ops, peaks, hw)
    n = len(ops)
    ready_other = [0.0] * n  # result usable by another pipe (vector results after the drain)
    ready_same = [0.0] * n  # result usable by the next op of the same vector stream
    last_consumer_end = [0.0] * n
    is_vector = [False] * n
    history: dict[tuple[int, Buffer], list[int]] = defaultdict(list)
    pipes = _Pipes()
    for i, op in enumerate(ops):
        steps: tuple[Step, ...] = cost.steps(op.sig)
        first_vector = steps[0].pipe == "vector"
        t = 0.0
        for d in op.deps:
            t = max(t, ready_same[d] if first_vector and is_vector[d] else ready_other[d])
        if op.buf is not None:  # the slot's previous tenant (one or two productions ago) must be consumed
            past = history[(op.instr, op.buf)]
            slots = depth[(op.instr, op.buf)]
            if len(past) >= slots:
                t = max(t, last_consumer_end[past[-slots]])
            past.append(i)
        end = t
        for step in steps:
            if step.pipe == "vector":
                end = ready_same[i] = pipes.place_vector(i, step, t)
                t = end + step.tail
            else:
                end = ready_same[i] = t = pipes.place(i, step, t)
        is_vector[i] = steps[-1].pipe == "vector"
        ready_other[i] = t
        pipes.finish = max(pipes.finish, t)
        for d in op.deps:
            last_consumer_end[d] = max(last_consumer_end[d], end)
    pipes.drain()
    return KernelSchedule(pipes.finish, pipes.busy, dict(pipes.dma_bytes), dict(pipes.dma_transfers), pipes.gm, peaks,
                          pipes.timings, pipes.aiv_busy)
