"""The pipe schedule of one kernel: each task's ops on the pipes of its core(s), analytically.

Each pipe runs its ops in program order; an op starts when its inputs are ready and its pipe is free; a tile's
buffer slot is reused only after the value it held two (double-buffered) or one production(s) ago is
consumed; the live tiles must fit the core's buffers. The result, computed once per distinct op list, is the
task's standalone length, per-pipe busy cycles and DMA traffic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from npusim.errors import NpusimError
from npusim.graph import InstrInfo, OpRecord, Task
from npusim.vocabulary import BUFFERS, PIPES, Buffer, PathName, Pipe, Side

from .costs import CostModel, Step


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


