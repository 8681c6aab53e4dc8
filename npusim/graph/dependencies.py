"""Dependencies between tasks, from their GM footprints: a task waits for every earlier task that wrote a
region it reads or writes (RAW, WAW) and for every earlier reader of a region it writes (WAR), on
overlapping rectangles; statement order means nothing, as in PyPTO's runtime (simpler's TensorMap). Explicit
edges (PyPTO `deps=`) are added, and a manual scope turns the footprint tracking off (pypto e2d0f78ae
docs/en/user/tasks/01-scopes.md: "the runtime skips the OverlapMap lookup and insert for every submit")."""

from __future__ import annotations

from collections import defaultdict

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


class _Entry:
    """One access in a tensor's log: a rectangle, the task, and whether it wrote."""

    __slots__ = ("hi", "is_write", "lo", "task")

    def __init__(self, lo: tuple[int, ...], hi: tuple[int, ...], task: int, is_write: bool) -> None:
        self.lo, self.hi, self.task, self.is_write = lo, hi, task, is_write


class _Index:
    """Entries bucketed by their interval on one axis (buckets `width` wide); an entry spanning more than
    MAX_SPAN buckets is kept in a short list that every query scans. A query looks only at the buckets its
    own interval touches."""

    MAX_SPAN = 4

    def __init__(self, axis: int, width: int) -> None:
        self.axis, self.width = axis, width
        self.buckets: dict[int, list[_Entry]] = defaultdict(list)
        self.wide: list[_Entry] = []

    def add(self, e: _Entry) -> None:
        first, last = e.lo[self.axis] // self.width, (e.hi[self.axis] - 1) // self.width
        if last - first >= self.MAX_SPAN:
            self.wide.append(e)
            return
        for b in range(first, last + 1):
            self.buckets[b].append(e)

    def overlapping(self, lo: tuple[int, ...], hi: tuple[int, ...], found: set[int]) -> None:
        first, last = lo[self.axis] // self.width, (hi[self.axis] - 1) // self.width
        buckets = self.buckets
        if last - first < len(buckets):
            lists = [buckets[b] for b in range(first, last + 1) if b in buckets]
        else:
            lists = [entries for b, entries in buckets.items() if first <= b <= last]
        if len(lo) == 2:  # the common case, spelled out
            lo0, lo1 = lo
            hi0, hi1 = hi
            for entries in (*lists, self.wide):
                for e in entries:
                    if e.task not in found:
                        elo, ehi = e.lo, e.hi
                        if elo[0] < hi0 and lo0 < ehi[0] and elo[1] < hi1 and lo1 < ehi[1]:
                            found.add(e.task)
            return
        for entries in (*lists, self.wide):
            for e in entries:
                if e.task not in found and _overlaps(e.lo, e.hi, lo, hi):
                    found.add(e.task)


class _TensorLog:
    """Per tensor: the rectangles read and written so far and by which task, indexed (reads and writes apart)
    by their interval on the tensor's most telling axis. Each time the log has doubled, the next write prunes
    the entries it covers (amortised O(1) per access): later accesses depend on that write, which already
    depends on them, so they add nothing."""

    PRUNE_FROM = 32

    def __init__(self, axis: int, width: int) -> None:
        self.axis, self.width = axis, width
        self.entries: list[_Entry] = []
        self.prune_at = self.PRUNE_FROM
        self.reads, self.writes = _Index(axis, width), _Index(axis, width)

    def add(self, lo: tuple[int, ...], hi: tuple[int, ...], task: int, is_write: bool) -> None:
        if is_write and len(self.entries) >= self.prune_at:
            self.entries = [e for e in self.entries if not _covers(lo, hi, e.lo, e.hi)]
            self.prune_at = max(self.PRUNE_FROM, 2 * len(self.entries))
            self.reads, self.writes = _Index(self.axis, self.width), _Index(self.axis, self.width)
            for e in self.entries:
                (self.writes if e.is_write else self.reads).add(e)
        e = _Entry(lo, hi, task, is_write)
        self.entries.append(e)
        (self.writes if is_write else self.reads).add(e)

    def overlapping(self, lo: tuple[int, ...], hi: tuple[int, ...], writes_only: bool, found: set[int]) -> None:
        """Add to `found` every task with an entry overlapping the rectangle (written ones only if asked)."""
        self.writes.overlapping(lo, hi, found)
        if not writes_only:
            self.reads.overlapping(lo, hi, found)


def _layout(tasks: list[Task]) -> dict[int, tuple[int, int]]:
    """Per tensor, the axis its accesses differ most along (the most distinct intervals) and a bucket width
    on it (the median access extent), from every access of the run."""
    spans: dict[int, list[list[tuple[int, int]]]] = {}
    for task in tasks:
        for tid, lo, hi in (*task.reads, *task.writes):
            axes = spans.get(tid)
            if axes is None:
                axes = spans[tid] = [[] for _ in lo]
            for axis, a, b in zip(axes, lo, hi, strict=False):
                axis.append((a, b))
    layout = {}
    for tid, axes in spans.items():
        axis = max(range(len(axes)), key=lambda a: (len(set(axes[a])), -a))
        extents = sorted(h - lo for lo, h in axes[axis])
        layout[tid] = (axis, max(1, extents[len(extents) // 2]))
    return layout


def dependencies(tasks: list[Task]) -> list[tuple[int, ...]]:
    """For each task, the earlier tasks it must wait for.

    Dependencies are between dispatches (a plain kernel execution, or all blocks of an SPMD dispatch, whose
    footprint is the union of its blocks'): a dispatch waits for every earlier writer of a region it reads or
    writes (RAW, WAW), every earlier reader of a region it writes (WAR), and the dispatches its explicit
    `after` names; a dispatch in a manual scope neither looks its footprint up nor enters it (PyPTO
    `pl.manual_scope`: only explicit edges order it). Each task waits for every task of the dispatches its
    own dispatch waits for. Near-linear in the accesses: each query looks at the entries of the buckets its
    interval touches."""
    layout = _layout(tasks)
    logs: dict[int, _TensorLog] = {tid: _TensorLog(*axis_width) for tid, axis_width in layout.items()}
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
                    logs[tid].overlapping(lo, hi, True, found)
                for tid, lo, hi in task.writes:
                    logs[tid].overlapping(lo, hi, False, found)
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
