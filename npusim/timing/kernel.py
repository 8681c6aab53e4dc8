"""The pipe schedule of one kernel: each task's ops on the pipes of its core(s), analytically.

Each pipe runs its ops in program order; an op starts when its inputs are ready and its pipe is free; a DMA's
data are usable its latency after its pipe is done with it (the pipe takes the next transfer meanwhile); the
tiles one instruction produces share F buffer slots, F being the stages the program's loop asks for (1 unless
`pipeline(..., stage=F)`), so a tile's slot is reused only after the value it held F productions ago is
consumed; the live tiles, with those extra copies, must fit the core's buffers. The result, computed once per
distinct op list (and GM-read sources), is the task's standalone length, per-pipe busy cycles and DMA traffic.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from npusim.dtypes import itemsize
from npusim.errors import NpusimError
from npusim.graph import ComputeSig, InstrInfo, OpRecord, Task
from npusim.vocabulary import BUFFERS, PIPES, Buffer, GmSource, PathName, Pipe, Side

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
    gm_bytes: int  # bytes crossing HBM: GM reads that miss L2, and GM writes
    peak_bytes: dict[Buffer, int]  # live tiles at their peak, with the extra copies of pipelined slots
    ops: list[OpTiming]
    aiv_busy: dict[Pipe, float] = field(default_factory=dict)  # the part of `busy` on the AIV side
    l2_hit_bytes: int = 0  # GM read bytes served by L2
    aiv_gm_bytes: int = 0  # the part of `gm_bytes` moved by AIV-side paths
    aiv_l2_hit_bytes: int = 0  # the part of `l2_hit_bytes` read by AIV-side paths
    extern_read_bytes: int = 0  # a hand-written kernel's GM bytes (no DMA path of it is known; in `gm_bytes`)
    extern_write_bytes: int = 0


# Ops whose result may not take an operand's buffer (pypto e2d0f78ae src/ir/op/tile_ops: `not_inplace_safe()`
# row_sum/max/min, recip, rsqrt, extract, move, ...), and the broadcasts whose vector operand it may not take
# (`forbid_output_alias(1)`: row_expand*, col_expand*)
_NOT_IN_PLACE = ("TROWSUM", "TROWMAX", "TROWMIN", "TRECIP", "TRSQRT", "TEXTRACT", "MOVE")
_FIRST_ONLY = ("TROWEXPAND", "TCOLEXPAND")


def _may_alias(op: OpRecord, dep: int) -> bool:
    """Whether op's result may be written over its operand made by op `dep` (its last use is this op):
    pypto's MemoryReuse lets lifetimes that touch share a buffer, "within a single statement, inputs are
    consumed before outputs are produced" (memory_reuse_pass.cpp LifetimesOverlap), except for the ops above
    and dtype-widening casts."""
    key = op.sig.key
    if key in _NOT_IN_PLACE or op.sig.__class__ is not ComputeSig:
        return False
    if key == "TCVT" and itemsize(op.sig.out.dtype) > itemsize(op.sig.ins[0].dtype):  # type: ignore[union-attr]
        return False
    if key.startswith(_FIRST_ONLY):
        return len(op.deps) > 1 and dep == op.deps[0]
    return True


def _liveness_peaks(ops: list[OpRecord]) -> dict[str, int]:
    """Peak live bytes per buffer: a tile lives from the op making it to its last consumer, and the buffer is free
    for that consumer's own result when the consumer may write in place (`_may_alias`)."""
    last_use = list(range(len(ops)))
    for i, op in enumerate(ops):
        for d in op.deps:  # (an op reads only earlier ops' results: the last reader is the latest i)
            last_use[d] = i
    events: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, op in enumerate(ops):
        if op.buf and op.nbytes:
            events[op.buf].append((i, op.nbytes))
            user = ops[last_use[i]]
            in_place = last_use[i] != i and user.buf == op.buf and _may_alias(user, i)
            events[op.buf].append((last_use[i] + (0 if in_place else 1), -op.nbytes))
    peaks: dict[str, int] = {}
    for buf, evs in events.items():
        live = peak = 0
        for _, delta in sorted(evs):  # (by op, then the frees before the allocations)
            live += delta
            if live > peak:
                peak = live
        peaks[buf] = peak
    return peaks


def buffer_depths(ops: list[OpRecord], instrs: list[InstrInfo]) -> dict[tuple[int, Buffer], int]:
    """Slots per tile slot (the tiles one instruction produces): a GM load in a loop of `pipeline(..., stage=F)`
    gets F (`InstrInfo.stages`), every other tile one. PyPTO's MemoryReuse gives only load buffers per-stage
    privacy and lets a pipeline's compute tiles share buffers across stages (pypto 3df906957, #1852, "role-aware
    stage separation")."""
    return {(op.instr, op.buf): instrs[op.instr].stages if op.sig.key == "TLOAD" else 1
            for op in ops if op.buf is not None}


def check_capacity(task: Task, peaks: dict[Buffer, int], depth: dict[tuple[int, Buffer], int], ops: list[OpRecord],
                   hw: HardwareConfig, instrs: list[InstrInfo]) -> dict[Buffer, int]:
    """The kernel's live tiles, plus F - 1 more copies of every tile a pipelined loop of F stages loads, must
    fit every buffer of the configured core. Returns the bytes needed per buffer."""
    extra: dict[Buffer, int] = defaultdict(int)
    largest: dict[tuple[int, Buffer], int] = {}
    for op in ops:
        if op.buf is not None and depth[(op.instr, op.buf)] > 1:
            slot = (op.instr, op.buf)
            largest[slot] = max(largest.get(slot, 0), op.nbytes)
    for (iid, buf), nbytes in largest.items():
        extra[buf] += (depth[(iid, buf)] - 1) * nbytes
    need_all = {buf: peaks.get(buf, 0) + extra[buf] for buf in BUFFERS}
    for buf in BUFFERS:
        need, have = need_all[buf], hw.buffer_bytes(buf)
        if need > have:
            staged = [iid for (iid, b) in largest if b == buf]
            why = ""
            if extra[buf] and staged:
                first = instrs[staged[0]]
                why = (f" ({extra[buf]} of them for the extra buffer slots that pipelined loops ask for, e.g. "
                       f"{first.stages} for line {first.loc.line}: ask for fewer stages)")
            raise CapacityError(
                f"kernel {task.kernel}: its live tiles need {need} bytes of {buf}{why}, the {hw.name} core has "
                f"{have} (tile the data smaller or reuse buffers)",
                instrs[task.instr].loc,
            )
    return {buf: n for buf, n in need_all.items() if n}


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
        self.gm = self.aiv_gm = 0
        self.l2_hit = self.aiv_l2_hit = 0
        self.timings: list[OpTiming] = []
        self.finish = 0.0

    def place_vector(self, op: int, step: Step, t: float) -> float:
        """A vector step continues the open stream if it is ready when the stream's last call ends (no head);
        otherwise the stream drains (its tail is paid) and the step pays a head. Returns its end."""
        if self.v_open and t <= self.v_end:
            begin = self.v_end
            end = begin + step.cycles
            cycles = step.cycles
        else:
            self.drain()
            after = self.v_end + (self.v_tail if self.v_open else 0.0)
            begin = t if t >= after else after
            end = begin + step.head + step.cycles
            cycles = step.head + step.cycles
        self.busy["vector"] += cycles  # (the vector pipe is the AIV's)
        self.aiv_busy["vector"] += cycles
        tail = step.tail
        self.v_end, self.v_tail, self.v_open = end, tail, tail > 0
        self.timings.append(OpTiming(op, "vector", step.side, begin, end))
        return end

    def place(self, op: int, step: Step, t: float) -> float:
        """A step of an in-order pipe: it starts when ready and the pipe is free. Returns its end."""
        side, pipe, cycles, path = step.side, step.pipe, step.cycles, step.path
        key = (side, pipe)
        free = self.free[key]
        begin = t if t >= free else free
        end = begin + cycles
        self.free[key] = end
        self.busy[pipe] += cycles
        if side == "aiv":
            self.aiv_busy[pipe] += cycles
        self.timings.append(OpTiming(op, pipe, side, begin, end, path, step.nbytes))
        if path is not None:
            self.dma_bytes[path] += step.nbytes
            self.dma_transfers[path] += 1
            self.gm += step.gm_bytes
            hit = step.nbytes if step.source == "l2" else 0
            self.l2_hit += hit
            if side == "aiv":
                self.aiv_gm += step.gm_bytes
                self.aiv_l2_hit += hit
        return end

    def drain(self) -> None:
        """Pay the open vector stream's tail."""
        if self.v_open:
            self.busy["vector"] += self.v_tail
            self.aiv_busy["vector"] += self.v_tail
            self.finish = max(self.finish, self.v_end + self.v_tail)


def l0_blocks(ops: list[OpRecord], cost: CostModel) -> dict[int, int]:
    """The K slabs of every matmul too large for L0 (CostModel.l0_blocks), and of the L1 -> L0A / L0B moves
    feeding it: op index -> slabs, for the ops that are K-tiled."""
    out: dict[int, int] = {}
    for i, op in enumerate(ops):
        n = cost.l0_blocks(op.sig)
        if n > 1:
            out[i] = n
            for d in op.deps:
                if ops[d].buf in ("L0A", "L0B") and ops[d].sig.key == "MOVE":
                    out[d] = max(out.get(d, 1), n)
    return out


def schedule_kernel(task: Task, cost: CostModel, instrs: list[InstrInfo],
                    sources: tuple[GmSource | None, ...] | None = None) -> KernelSchedule:
    """Schedule one task's ops on the pipes of its core(s); raises CapacityError if its tiles do not fit.
    `sources[i]`: where op i's GM data come from (HBM when not given)."""
    hw = cost.hw
    ops = task.ops
    blocks = l0_blocks(ops, cost)
    sized = [op._replace(nbytes=2 * op.nbytes // blocks[i]) if i in blocks and op.buf in ("L0A", "L0B") else op
             for i, op in enumerate(ops)]  # a K-tiled operand holds two slabs of L0 (the K-loop's ping-pong)
    depth = buffer_depths(ops, instrs)
    peaks = check_capacity(task, _liveness_peaks(sized), depth, sized, hw, instrs)
    n = len(ops)
    ready_other = [0.0] * n  # result usable by another pipe (vector results after the drain, DMA data on arrival)
    ready_same = [0.0] * n  # result usable by the next op of the same vector stream
    last_consumer_end = [0.0] * n
    is_vector = [False] * n
    history: dict[tuple[int, Buffer], list[int]] = defaultdict(list)
    pipes = _Pipes()
    for i, op in enumerate(ops):
        steps: tuple[Step, ...] = cost.sliced_steps(op.sig, blocks[i]) if i in blocks else \
            cost.steps(op.sig, sources[i] if sources is not None else None)
        first_vector = steps[0].pipe == "vector"
        t = 0.0
        for d in op.deps:
            r = ready_same[d] if first_vector and is_vector[d] else ready_other[d]
            if r > t:
                t = r
        if op.buf is not None:  # the slot's tenant of F productions ago must have been consumed
            past = history[(op.instr, op.buf)]
            slots = depth[(op.instr, op.buf)]
            if len(past) >= slots and last_consumer_end[past[-slots]] > t:
                t = last_consumer_end[past[-slots]]
            past.append(i)
        end = t
        for step in steps:
            if step.pipe == "vector":
                end = ready_same[i] = pipes.place_vector(i, step, t)
                t = end + step.tail
            else:  # the next step (a further slab or hop) and the consumers wait for the data, the pipe does not
                end = ready_same[i] = pipes.place(i, step, t)
                t = end + step.latency
        is_vector[i] = steps[-1].pipe == "vector"
        ready_other[i] = t
        if t > pipes.finish:
            pipes.finish = t
        for d in op.deps:
            if end > last_consumer_end[d]:
                last_consumer_end[d] = end
    pipes.drain()
    return KernelSchedule(pipes.finish, pipes.busy, dict(pipes.dma_bytes), dict(pipes.dma_transfers), pipes.gm, peaks,
                          pipes.timings, aiv_busy=pipes.aiv_busy, l2_hit_bytes=pipes.l2_hit, aiv_gm_bytes=pipes.aiv_gm,
                          aiv_l2_hit_bytes=pipes.aiv_l2_hit)


def extern_schedule(task: Task, hw: HardwareConfig) -> KernelSchedule:
    """A hand-written kernel's task (`@pl.jit.extern`), which npusim cannot see into: its block streams its share
    (1 / blocks) of the bytes of the GM views the kernel is passed, each read view once and each written view
    once, at the chip's achievable HBM bandwidth (`hbm.read_bytes_per_s`; the config has no separate write
    rate), so that alone it takes the whole HBM and beside other tasks it shares it. The runtime's fixed time per
    task is added by the chip, as for every task. No pipe is known to be busy (docs/timing-model.md §6)."""
    work = task.extern
    assert work is not None
    blocks = max(task.blocks, 1)
    reads, writes = -(-work.read_bytes // blocks), -(-work.write_bytes // blocks)
    return KernelSchedule((reads + writes) / hw.hbm_bytes_per_cycle, dict.fromkeys(PIPES, 0.0), {}, {}, reads + writes,
                          {}, [], aiv_busy=dict.fromkeys(PIPES, 0.0), extern_read_bytes=reads,
                          extern_write_bytes=writes)
