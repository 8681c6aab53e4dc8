"""The task graph as the interpreter records it and every later stage reads it: the instruction table, one
task per kernel execution (its ops in program order and its GM footprint), and the execution record.

Everything here is independent of the hardware config: the timing stage prices it later.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from npusim.errors import Location
from npusim.vocabulary import Buffer, CoreKind, SplitMode

from .signatures import OpSig


class OpRecord(NamedTuple):
    """One op of one task, in program order."""

    sig: OpSig
    instr: int  # index into the instruction table (source line, text, op name)
    deps: tuple[int, ...]  # indices (in this task) of the ops whose results this op reads
    buf: Buffer | None  # buffer the result lives in; None for none (stores)
    nbytes: int  # size of the result in that buffer


Region = tuple[int, tuple[int, ...], tuple[int, ...]]  # (tensor id, lo corner, hi corner exclusive)


class ExternWork(NamedTuple):
    """What a task running a hand-written kernel (`@pl.jit.extern`) is known to do: the kernel's name, the bytes
    of the GM views it reads and writes (the whole dispatch's, over all of its blocks), and the AIV lanes it
    occupies. npusim prices it from these alone (docs/timing-model.md §6)."""

    name: str
    read_bytes: int
    write_bytes: int
    lanes: int


# The GM window one DMA op of a task reads or writes (what decides whether a read hits L2): (index of the op in
# its task, window, whether it writes). A plain tuple: a replayed decode layer makes ~150 000 of them per run.
GmAccess = tuple[int, Region, bool]


class MovedWindows:
    """A replayed task's GM windows, made as they are read (the L2 model reads them once per simulation): its
    template's windows, each moved by its group's shift and onto the tensor its group maps to. Iterates, and
    compares, as the list of GmAccess an interpreted task has."""

    __slots__ = ("base", "shifts", "tids")

    def __init__(self, base: list[tuple[int, int, bool, Region]], shifts: list[tuple[int, ...]],
                 tids: dict[int, int]) -> None:
        self.base, self.shifts, self.tids = base, shifts, tids  # base: (op, group, write, window) in op order

    def __len__(self) -> int:
        return len(self.base)

    def __iter__(self) -> Iterator[GmAccess]:
        shifts, tids = self.shifts, self.tids
        for op, g, write, (tid, lo, hi) in self.base:
            s = shifts[g]
            if len(s) == 2:  # nearly every window: unrolled
                s0, s1 = s
                yield op, (tids[tid], (lo[0] + s0, lo[1] + s1), (hi[0] + s0, hi[1] + s1)), write
            else:
                yield op, (tids[tid], tuple([a + b for a, b in zip(lo, s, strict=True)]),
                           tuple([a + b for a, b in zip(hi, s, strict=True)])), write

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, MovedWindows | list) else NotImplemented

    __hash__ = None  # type: ignore[assignment]


@dataclass
class Task:
    """One execution of one kernel (`incore` block) on its core(s): a dispatch (one runtime task, submitted
    once), or one block of an SPMD dispatch of `blocks` blocks. Each block is scheduled on its own core; the
    dispatch's dependencies hold for all of its blocks, and a later dispatch waits for all of them."""

    id: int
    kernel: str
    scopes: tuple[str, ...]  # every enclosing scope path, outermost first
    instr: int  # instruction id of the incore block
    context: str  # loop variable values, e.g. "b=3, gi=1"
    core: CoreKind = "aiv"  # aic (cube side only), aiv (vector only) or mix (an AIC+AIV pair)
    ops: list[OpRecord] = field(default_factory=list)
    reads: list[Region] = field(default_factory=list)
    writes: list[Region] = field(default_factory=list)
    accesses: list[GmAccess] | MovedWindows = field(default_factory=list)  # every DMA op's GM window, in op order
    dispatch: int = -1  # the dispatch this task is (a block of), in submission order; -1: the task's own id
    block: int = 0  # its block index in an SPMD dispatch
    blocks: int = 1  # the dispatch's block count (pl.spmd(n)); 1 for a plain kernel
    split: SplitMode = "none"  # a mix task whose vector work is halved across both AIV lanes (pl.split)
    after: tuple[int, ...] = ()  # explicit dependencies (deps=): dispatches this one waits for
    manual: bool = False  # submitted in a manual scope: no dependencies from GM footprints, not tracked
    extern: ExternWork | None = None  # a hand-written kernel's task: no ops, priced from its views' bytes

    def __post_init__(self) -> None:
        if self.dispatch < 0:
            self.dispatch = self.id

    @property
    def lanes(self) -> int:
        """AIV lanes the task occupies with the same work: 2 for a split mix task (or a mixed extern kernel with
        dual AIV dispatch), else 1."""
        if self.extern is not None:
            return self.extern.lanes
        return 2 if self.split != "none" and self.core == "mix" else 1


@dataclass
class InstrInfo:
    """One instruction of the program: where it is, its text, and its op (or `incore` for a kernel). `stages`:
    the buffer slots of the tiles it produces, from the innermost `pipeline(..., stage=F)` loop of its kernel
    around it (1 when there is none)."""

    loc: Location
    text: str
    op: str
    stages: int = 1


@dataclass
class FinalTensor:
    """A GM tensor after the run: its values (None without numerics)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    data: np.ndarray | None


@dataclass
class Execution:
    """What running a program produced: final GM tensors, tasks, instruction table, scopes."""

    program: str  # the program's name
    preset: str | None
    tensors: dict[str, FinalTensor]
    tasks: list[Task]
    instrs: list[InstrInfo]
    scopes: list[str]  # scope paths in program order of first entry
    numerics: bool
    loop_iterations: int = 0
    op_count: int = 0
    gm_shapes: dict[int, tuple[tuple[int, ...], str]] = field(default_factory=dict)  # tensor id -> (shape, dtype)
    estimated_tasks: int = 0  # of a quick pass (first iterations only): the tasks and ops of the whole run,
    estimated_ops: int = 0  # each loop's first iteration counted for all its iterations
