"""The task graph: what the interpreter records for every kernel execution, and the dependencies between
tasks derived from their GM footprints (RAW, WAR, WAW on overlapping rectangles; statement order means
nothing, as in PyPTO's runtime).

Everything here is independent of the hardware config: the timing engine prices it later.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class TileSig(NamedTuple):
    """An operand as a cost rule sees it."""

    shape: tuple[int, ...]
    dtype: str
    valid: tuple[int, ...]
    dynamic: bool  # valid shape known only at run time (the device takes its dynamic-shape code paths)


class OpSig(NamedTuple):
    """Everything a cost rule may depend on: equal signatures cost the same (costs are cached by it).

    key: cost-rule key (a PTO instruction such as TEXP, TLOAD, TMATMUL, or MOVE);
    out: the result (or the transferred tile); ins: tile operands; attrs: op-specific details, e.g.
    ("UB",) destination buffer and (runs, run_bytes) for DMA, the cast mode, b_trans.
    """

    key: str
    out: TileSig
    ins: tuple[TileSig, ...]
    attrs: tuple


class OpRecord(NamedTuple):
    """One op of one task, in program order."""

    sig: OpSig
    instr: int  # index into the interpreter's instruction table (source line, text, op name)
    deps: tuple[int, ...]  # indices (in this task) of the ops whose results this op reads
    buf: str  # buffer the result lives in ("UB", "L1", "L0A", "L0B", "L0C"), "" for none (stores)
    nbytes: int  # size of the result in that buffer


Region = tuple[int, tuple[int, ...], tuple[int, ...]]  # (tensor id, lo corner, hi corner exclusive)


@dataclass
class Task:
    """One execution of one kernel (`incore` block)."""

    id: int
    kernel: str
    scopes: tuple[str, ...]  # every enclosing scope path, outermost first
    instr: int  # instruction id of the incore block
    context: str  # loop variable values, e.g. "b=3, gi=1"
    core: str = "aiv"  # aic (cube side only), aiv (vector only) or mix (an AIC+AIV pair)
    ops: list[OpRecord] = field(default_factory=list)
    reads: list[Region] = field(default_factory=list)
    writes: list[Region] = field(default_factory=list)

def coalesce(regions: list[Region]) -> list[Region]:
    """Merge rectangles of one tensor that abut along the first axis and match in the others, and drop
    exact duplicates: a kernel storing 64 consecutive row blocks gives one region, not 64."""
    if len(regions) < 2:
        return regions
    out: list[Region] = []
    for tid, lo, hi in sorted(set(regions)):
        if out:
            ptid, plo, phi = out[-1]
            if ptid == tid and plo[1:] == lo[1:] and phi[1:] == hi[1:] and plo[0] <= lo[0] <= phi[0]:
                out[-1] = (tid, plo, (max(phi[0], hi[0]), *phi[1:]))
                continue
        out.append((tid, lo, hi))
    return out


class _TensorLog:
    """Per tensor: the rectangles written and read so far, with the task that touched each."""

    def __init__(self, ndim: int) -> None:
        self.ndim = ndim
        self.lo: list[tuple[int, ...]] = []
        self.hi: list[tuple[int, ...]] = []
        self.task: list[int] = []
        self.is_write: list[bool] = []
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, lo: tuple[int, ...], hi: tuple[int, ...], task: int, is_write: bool) -> None:
        self.lo.append(lo)
        self.hi.append(hi)
        self.task.append(task)
        self.is_write.append(is_write)
        self._arrays = None

    def overlapping(self, lo: tuple[int, ...], hi: tuple[int, ...], writes_only: bool) -> np.ndarray:
        if not self.task:
            return np.empty(0, dtype=np.int64)
        if self._arrays is None:
            self._arrays = (
                np.asarray(self.lo, dtype=np.int64),
                np.asarray(self.hi, dtype=np.int64),
                np.asarray(self.task, dtype=np.int64),
                np.asarray(self.is_write, dtype=bool),
            )
        alo, ahi, atask, awrite = self._arrays
        mask = np.all((alo < np.asarray(hi)) & (np.asarray(lo) < ahi), axis=1)
        if writes_only:
            mask &= awrite
        return atask[mask]


def dependencies(tasks: list[Task]) -> list[tuple[int, ...]]:
    """For each task, the earlier tasks it must wait for: every earlier writer of a region it reads or
    writes (RAW, WAW) and every earlier reader of a region it writes (WAR)."""
    logs: dict[int, _TensorLog] = defaultdict(lambda: _TensorLog(0))
    preds: list[tuple[int, ...]] = []
    for task in tasks:
        found: set[int] = set()
        for tid, lo, hi in task.reads:
            found.update(logs[tid].overlapping(lo, hi, writes_only=True).tolist())
        for tid, lo, hi in task.writes:
            found.update(logs[tid].overlapping(lo, hi, writes_only=False).tolist())
        found.discard(task.id)
        preds.append(tuple(sorted(found)))
        for tid, lo, hi in task.reads:
            logs[tid].add(lo, hi, task.id, False)
        for tid, lo, hi in task.writes:
            logs[tid].add(lo, hi, task.id, True)
    return preds
