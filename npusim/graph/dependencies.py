"""Dependencies between tasks, from their GM footprints: a task waits for every earlier task that wrote a
region it reads or writes (RAW, WAW) and for every earlier reader of a region it writes (WAR), on
overlapping rectangles; statement order means nothing, as in PyPTO's runtime (simpler's TensorMap)."""

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
    write, which already depends on them, so they add nothing. Large logs are also kept as numpy arrays,
    appended to in place (capacity doubling), for vectorised overlap queries."""

    VECTORISE_FROM = 64
    PRUNE_FROM = 32

    def __init__(self) -> None:
        self.entries: list[tuple[tuple[int, ...], tuple[int, ...], int, bool]] = []
        self.prune_at = self.PRUNE_FROM
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._filled = 0  # entries mirrored in the arrays

    def add(self, lo: tuple[int, ...], hi: tuple[int, ...], task: int, is_write: bool) -> None:
        if is_write and len(self.entries) >= self.prune_at:
            self.entries = [e for e in self.entries if not _covers(lo, hi, e[0], e[1])]
            self.prune_at = max(self.PRUNE_FROM, 2 * len(self.entries))
            self._arrays, self._filled = None, 0
        self.entries.append((lo, hi, task, is_write))

    def _sync(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The arrays holding every entry (grown and filled in place)."""
        entries, n = self.entries, len(self.entries)
        arrays = self._arrays
        if arrays is None or len(arrays[2]) < n:
            cap = max(2 * n, self.VECTORISE_FROM)
            ndim = len(entries[0][0])
            grown = (np.empty((cap, ndim), np.int64), np.empty((cap, ndim), np.int64), np.empty(cap, np.int64),
                     np.empty(cap, bool))
            if arrays is not None:
                for new, old in zip(grown, arrays, strict=True):
                    new[: self._filled] = old[: self._filled]
            else:
                self._filled = 0
            arrays = self._arrays = grown
        if self._filled < n:
            new_entries = entries[self._filled:]
            alo, ahi, atask, awrite = arrays
            alo[self._filled:n] = [e[0] for e in new_entries]
            ahi[self._filled:n] = [e[1] for e in new_entries]
            atask[self._filled:n] = [e[2] for e in new_entries]
            awrite[self._filled:n] = [e[3] for e in new_entries]
            self._filled = n
        return arrays

    def overlapping(self, lo: tuple[int, ...], hi: tuple[int, ...], writes_only: bool) -> list[int]:
        entries = self.entries
        if len(entries) < self.VECTORISE_FROM:
            return [t for elo, ehi, t, w in entries if (w or not writes_only) and _overlaps(elo, ehi, lo, hi)]
        alo, ahi, atask, awrite = self._sync()
        n = len(entries)
        mask = np.all((alo[:n] < np.asarray(hi)) & (np.asarray(lo) < ahi[:n]), axis=1)
        if writes_only:
            mask &= awrite[:n]
        return atask[:n][mask].tolist()


def dependencies(tasks: list[Task]) -> list[tuple[int, ...]]:
    """For each task, the earlier tasks it must wait for: every earlier writer of a region it reads or
    writes (RAW, WAW) and every earlier reader of a region it writes (WAR)."""
    logs: dict[int, _TensorLog] = defaultdict(_TensorLog)
    preds: list[tuple[int, ...]] = []
    for task in tasks:
        found: set[int] = set()
        for tid, lo, hi in task.reads:
            found.update(logs[tid].overlapping(lo, hi, writes_only=True))
        for tid, lo, hi in task.writes:
            found.update(logs[tid].overlapping(lo, hi, writes_only=False))
        found.discard(task.id)
        preds.append(tuple(sorted(found)))
        for tid, lo, hi in task.reads:
            logs[tid].add(lo, hi, task.id, False)
        for tid, lo, hi in task.writes:
            logs[tid].add(lo, hi, task.id, True)
    return preds
