"""Dependencies between tasks, from their GM footprints: a task waits for every earlier task that wrote a
region it reads or writes (RAW, WAW) and for every earlier reader of a region it writes (WAR), on
overlapping rectangles; statement order means nothing, as in PyPTO's runtime (simpler's TensorMap). Explicit
edges (PyPTO `deps=`) are added, and a manual scope turns the footprint tracking off (pypto e2d0f78ae
docs/en/user/tasks/01-scopes.md: "the runtime skips the OverlapMap lookup and insert for every submit")."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .tasks import Region, Task


def _merge(a: Region, b: Region) -> Region | None:
    """a and b as one rectangle, if they are of one tensor, abut or overlap along one axis and match in the
    others; else None."""
    tid, lo, hi = a
    if b[0] != tid or len(b[1]) != len(lo):
        return None
    blo, bhi = b[1], b[2]
    if len(lo) == 2:  # the common case, spelled out
        if lo[1] == blo[1] and hi[1] == bhi[1] and blo[0] <= hi[0] and lo[0] <= bhi[0]:
            return (tid, (min(lo[0], blo[0]), lo[1]), (max(hi[0], bhi[0]), hi[1]))
        if lo[0] == blo[0] and hi[0] == bhi[0] and blo[1] <= hi[1] and lo[1] <= bhi[1]:
            return (tid, (lo[0], min(lo[1], blo[1])), (hi[0], max(hi[1], bhi[1])))
        return None
    axis = -1
    for i in range(len(lo)):
        if lo[i] != blo[i] or hi[i] != bhi[i]:
            if axis >= 0:
                return None
            axis = i
    if axis < 0:
        return a
    if blo[axis] > hi[axis] or lo[axis] > bhi[axis]:
        return None
    new_lo = (*lo[:axis], min(lo[axis], blo[axis]), *lo[axis + 1:])
    new_hi = (*hi[:axis], max(hi[axis], bhi[axis]), *hi[axis + 1:])
    return (tid, new_lo, new_hi)


def coalesce(regions: list[Region]) -> list[Region]:
    """Merge rectangles that abut along an axis and match in the others, and drop duplicates: a kernel
    storing 64 consecutive row blocks, or one row in two halves, gives one region. Regions come in program
    order, so merging each with the last kept one catches the common cases in one pass."""
    out: list[Region] = []
    for region in regions:
        if out:
            merged = _merge(out[-1], region)
            if merged is not None:
                out[-1] = merged
                continue
        out.append(region)
    if len(out) > 1:
        out = sorted(set(out))
        again: list[Region] = [out[0]]
        for region in out[1:]:
            merged = _merge(again[-1], region)
            if merged is not None:
                again[-1] = merged
            else:
                again.append(region)
        out = again
    return out


def _overlaps(alo: tuple[int, ...], ahi: tuple[int, ...], blo: tuple[int, ...], bhi: tuple[int, ...]) -> bool:
    return all(not (a >= d or c >= b) for a, b, c, d in zip(alo, ahi, blo, bhi, strict=True))


def _covers(lo: tuple[int, ...], hi: tuple[int, ...], elo: tuple[int, ...], ehi: tuple[int, ...]) -> bool:
    return all(not (c < a or b < d) for a, b, c, d in zip(lo, hi, elo, ehi, strict=True))


class _TensorLog:
    """Per tensor: the rectangles read and written so far and by which task. Each time the log has doubled,
    the next write prunes the entries it covers (amortised O(1) per access): later accesses depend on that
    write, which already depends on them, so they add nothing."""

    VECTORISE_FROM = 64
    PRUNE_FROM = 32

    def __init__(self) -> None:
        self.entries: list[tuple[tuple[int, ...], tuple[int, ...], int, bool]] = []
        self.prune_at = self.PRUNE_FROM
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, lo: tuple[int, ...], hi: tuple[int, ...], task: int, is_write: bool) -> None:
        if is_write and len(self.entries) >= self.prune_at:
            self.entries = [e for e in self.entries if not _covers(lo, hi, e[0], e[1])]
            self.prune_at = max(self.PRUNE_FROM, 2 * len(self.entries))
        self.entries.append((lo, hi, task, is_write))
        self._arrays = None

    def overlapping(self, lo: tuple[int, ...], hi: tuple[int, ...], writes_only: bool) -> list[int]:
        entries = self.entries
        if len(entries) < self.VECTORISE_FROM:
            return [t for elo, ehi, t, w in entries if (w or not writes_only) and _overlaps(elo, ehi, lo, hi)]
        if self._arrays is None:
            self._arrays = (
                np.array([e[0] for e in entries], dtype=np.int64),
                np.array([e[1] for e in entries], dtype=np.int64),
                np.array([e[2] for e in entries], dtype=np.int64),
                np.array([e[3] for e in entries], dtype=bool),
            )
        alo, ahi, atask, awrite = self._arrays
        mask = np.all((alo < np.asarray(hi)) & (np.asarray(lo) < ahi), axis=1)
        if writes_only:
            mask &= awrite
        return atask[mask].tolist()


def dependencies(tasks: list[Task]) -> list[tuple[int, ...]]:
    """For each task, the earlier tasks it must wait for.

    Dependencies are between dispatches (a plain kernel execution, or all blocks of an SPMD dispatch, whose
    footprint is the union of its blocks'): a dispatch waits for every earlier writer of a region it reads or
    writes (RAW, WAW), every earlier reader of a region it writes (WAR), and the dispatches its explicit
    `after` names; a dispatch in a manual scope neither looks its footprint up nor enters it (PyPTO
    `pl.manual_scope`: only explicit edges order it). Each task waits for every task of the dispatches its
    own dispatch waits for."""
    logs: dict[int, _TensorLog] = defaultdict(_TensorLog)
    members: dict[int, list[int]] = defaultdict(list)  # dispatch -> its tasks
    preds: list[tuple[int, ...]] = []
    i = 0
    while i < len(tasks):
        group = [tasks[i]]
        while i + len(group) < len(tasks) and tasks[i + len(group)].dispatch == group[0].dispatch:
            group.append(tasks[i + len(group)])
        d, manual = group[0].dispatch, group[0].manual
        found: set[int] = set(group[0].after)
        if not manual:
            for task in group:
                for tid, lo, hi in task.reads:
                    found.update(logs[tid].overlapping(lo, hi, writes_only=True))
                for tid, lo, hi in task.writes:
                    found.update(logs[tid].overlapping(lo, hi, writes_only=False))
        found.discard(d)
        waits = tuple(sorted(t for p in found for t in members[p]))
        for task in group:
            preds.append(waits)
            members[d].append(task.id)
        if not manual:
            for task in group:
                for tid, lo, hi in task.reads:
                    logs[tid].add(lo, hi, d, False)
                for tid, lo, hi in task.writes:
                    logs[tid].add(lo, hi, d, True)
        i += len(group)
    return preds
