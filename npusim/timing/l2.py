"""L2 residency of GM data, in program order: which GM reads hit the chip's L2 (docs/timing-model.md §6.3).

The L2 is tracked per sector (`l2.sector_bytes`: a read fills the sectors it touches, not whole lines) of every
GM tensor. Every DMA op's window, read or written, is touched in program order (tasks in submission order, ops
in each task's order); a read hits when every sector of its window was touched less than `l2.bytes` of GM
traffic ago: least recently used replacement, with the distance counted in bytes moved rather than in distinct
sectors (an upper bound of the LRU stack distance, so a hit here is a hit under exact LRU; for the streaming
reads of a decode the two agree). Writes allocate. Program order stands in for time: a task that reads what an
earlier one wrote depends on it and runs after it.

The bytes moved before each window do not depend on any hit, so the whole program is decided at once, in
numpy: a sector's previous touch is the previous window over it, found by sorting (sector, window) pairs.
Sectors that every window covers together or not at all are one cell (the windows' edges cut each tensor into
cells), so a [256, 128] weight tile is one pair, not 512.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npusim.dtypes import itemsize
from npusim.graph import MovedWindows, Region, Task
from npusim.vocabulary import GmSource

from .hardware import L2

_KEY = np.int64(1) << 32  # tensor id x _KEY + coordinate: one tensor's edges sort apart from another's
SOURCES: tuple[GmSource | None, ...] = (None, "hbm", "l2")  # per op: no GM read, a miss, a hit
_INT32_BELOW = 2**31  # numbers below this fit 32 bits


@dataclass(frozen=True)
class GmWindows:
    """GM windows in program order, as arrays: tensor id, lo and hi corners (exclusive; left-padded to the
    program's largest rank with 0 and 1), and whether the window is written."""

    tid: np.ndarray  # (n,) int64
    lo: np.ndarray  # (n, rank) int64
    hi: np.ndarray  # (n, rank) int64
    write: np.ndarray  # (n,) bool

    @classmethod
    def of(cls, windows: list[tuple[Region, bool]], rank: int) -> GmWindows:
        """From (window, written) pairs."""
        lo = np.array([(0,) * (rank - len(r[1])) + r[1] for r, _ in windows], dtype=np.int64).reshape(-1, rank)
        hi = np.array([(1,) * (rank - len(r[2])) + r[2] for r, _ in windows], dtype=np.int64).reshape(-1, rank)
        return cls(np.array([r[0] for r, _ in windows], dtype=np.int64), lo, hi,
                   np.array([w for _, w in windows], dtype=bool))


def window_rank(shapes: dict[int, tuple[tuple[int, ...], str]]) -> int:
    """The rank GmWindows are padded to: the largest tensor's, at least 2 (a grid's rows and sectors are the
    last two)."""
    return max([2] + [len(shape) for shape, _ in shapes.values()])


def l2_hits(windows: GmWindows, shapes: dict[int, tuple[tuple[int, ...], str]], l2: L2) -> np.ndarray:
    """Per window, whether it is a read that hits L2 (`shapes`: every tensor's shape and dtype by id)."""
    n, rank = windows.lo.shape
    line = l2.sector_bytes
    size, dims, grid = _tensors(shapes, rank, line)
    tid, lo, hi = windows.tid, windows.lo, windows.hi
    sizes = size[tid]
    nbytes = np.prod(hi - lo, axis=1) * sizes
    clock = (np.cumsum(nbytes) - nbytes) // line  # sectors' worth of GM bytes moved before each window
    cells = _cells(_rectangles(tid, lo, hi, sizes, dims[tid], grid[tid], line))
    cell, window = _by_cell(cells, n)  # each touched cell's previous touch: the window before it
    recent = np.zeros(len(cell), dtype=bool)
    recent[1:] = (cell[1:] == cell[:-1]) & (clock[window[:-1]] >= clock[window[1:]] - l2.bytes // line)
    missed = np.bincount(window[~recent], minlength=n)
    return (missed == 0) & ~windows.write


def _by_cell(cells: _Cells, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The (cell, window) pairs in cell, then window order: as one number each, sorted, when cell x n + window
    fits 63 bits (numpy's sort of one int64 array is ~10x its lexsort of two)."""
    if cells.count * n < 2**63:
        key = cells.cell.astype(np.int64)
        key *= n
        key += cells.window
        key.sort(kind="stable")  # (see _distinct)
        return key // n, key % n
    order = np.lexsort((cells.window, cells.cell))
    return cells.cell[order], cells.window[order]


def _tensors(shapes: dict[int, tuple[tuple[int, ...], str]], rank: int, line: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """By tensor id: element bytes, shape (left-padded with 1), and whether it is a grid (2-D, its rows whole
    sectors: a window is a block of rows x sectors; else a window is a set of runs of bytes)."""
    count = max(shapes, default=-1) + 1
    size = np.ones(count, dtype=np.int64)
    dims = np.ones((count, rank), dtype=np.int64)
    grid = np.zeros(count, dtype=bool)
    for tid, (shape, dtype) in shapes.items():
        size[tid] = itemsize(dtype)
        dims[tid, rank - len(shape):] = shape
        grid[tid] = len(shape) == 2 and shape[-1] * size[tid] % line == 0
    return size, dims, grid


@dataclass(frozen=True)
class _Rectangles:
    """Each window as rectangles of (row, sector) space, one tensor's apart from another's: rows [r0, r1) x
    sectors [c0, c1) of tensor `tid`, for window `window`."""

    window: np.ndarray
    tid: np.ndarray
    r0: np.ndarray
    r1: np.ndarray
    c0: np.ndarray
    c1: np.ndarray


def _rectangles(tid: np.ndarray, lo: np.ndarray, hi: np.ndarray, size: np.ndarray, dims: np.ndarray,
                grid: np.ndarray, line: int) -> _Rectangles:
    """A grid tensor's window is one rectangle (its rows x the sectors its columns touch); any other tensor is
    one row of sectors, and its window is one run of bytes if contiguous, else a run per row (every index of
    the dimensions but the last)."""
    rank = lo.shape[1]
    ext = hi - lo
    strides = np.cumprod(dims[:, :0:-1], axis=1)[:, ::-1]  # elements per step of dims 0 .. rank-2
    strides = np.concatenate([strides, np.ones((len(lo), 1), dtype=np.int64)], axis=1)
    # contiguous: after the first dimension of extent > 1, every dimension is whole
    whole_after = np.ones_like(grid)
    contiguous = np.zeros_like(grid)
    for d in range(rank - 1, -1, -1):
        leading_ones = np.all(ext[:, :d] == 1, axis=1)
        contiguous |= leading_ones & whole_after
        whole_after &= ext[:, d] == dims[:, d]
    g = np.flatnonzero(grid)
    run = np.flatnonzero(~grid & contiguous)
    rows = np.flatnonzero(~grid & ~contiguous)
    first = np.sum(lo[run] * strides[run], axis=1)
    start, end = first * size[run], (first + np.prod(ext[run], axis=1)) * size[run]
    # a run per row of the windows that are neither: the rows' indices, unravelled from a count per window
    per = np.prod(ext[rows, :-1], axis=1)
    owner = np.repeat(rows, per)
    index = np.arange(len(owner)) - np.repeat(np.cumsum(per) - per, per)
    row = np.zeros(len(owner), dtype=np.int64)
    for d in range(rank - 2, -1, -1):
        row += (lo[owner, d] + index % ext[owner, d]) * strides[owner, d]
        index //= ext[owner, d]
    row_start, row_end = (row + lo[owner, -1]) * size[owner], (row + hi[owner, -1]) * size[owner]
    window = np.concatenate([g, run, owner])
    zeros, ones = np.zeros(len(run) + len(owner), dtype=np.int64), np.ones(len(run) + len(owner), dtype=np.int64)
    return _Rectangles(
        window, tid[window], np.concatenate([lo[g, -2], zeros]), np.concatenate([hi[g, -2], ones]),
        np.concatenate([lo[g, -1] * size[g] // line, start // line, row_start // line]),
        np.concatenate([-(-hi[g, -1] * size[g] // line), -(-end // line), -(-row_end // line)]))


@dataclass(frozen=True)
class _Cells:
    """Every (cell, window) pair: the cells each window touches, numbered 0 .. count - 1 over all tensors."""

    cell: np.ndarray
    window: np.ndarray
    count: int


def _cells(rect: _Rectangles) -> _Cells:
    """Cut each tensor's row and sector axes at every rectangle's edges: a cell of the cut is touched whole or
    not at all by every window, so it stands for its sectors. A tensor of R x C cells numbers them after the
    tensors before it."""
    r0, r1, c0, c1 = (rect.tid * _KEY + edge for edge in (rect.r0, rect.r1, rect.c0, rect.c1))
    rows, cols = _distinct(np.concatenate([r0, r1])), _distinct(np.concatenate([c0, c1]))
    i0, i1, j0, j1 = np.searchsorted(rows, r0), np.searchsorted(rows, r1), np.searchsorted(cols, c0), \
        np.searchsorted(cols, c1)
    tensors = _distinct(rect.tid)
    row_first = np.searchsorted(rows, tensors * _KEY)
    col_first = np.searchsorted(cols, tensors * _KEY)
    width = np.diff(np.append(col_first, len(cols)))  # per tensor: cells per row of cells
    cells = np.diff(np.append(row_first, len(rows))) * width
    first = np.cumsum(cells) - cells  # each tensor's first cell
    t = np.searchsorted(tensors, rect.tid)
    span = j1 - j0
    count = (i1 - i0) * span
    total = int(cells.sum())
    # the pairs' numbers in 32 bits when they fit: half the fresh memory, whose first touch costs (default layer:
    # 18 000 -> 11 400 page faults, 0.156 -> 0.138 s, median of 10 alternating with 64 bits)
    biggest = max(total, int(count.sum()), len(count), int(rect.window.max(initial=0)) + 1)
    small = np.int32 if biggest < _INT32_BELOW else np.int64
    base = (first[t] + (i0 - row_first[t]) * width[t] + j0 - col_first[t]).astype(small)  # each rectangle's first
    owner = np.repeat(np.arange(len(count), dtype=small), count)
    index = np.arange(len(owner), dtype=small) - np.repeat((np.cumsum(count) - count).astype(small), count)
    row, col = np.divmod(index, span.astype(small)[owner])
    row *= width[t].astype(small)[owner]
    row += col
    row += base[owner]
    return _Cells(row, rect.window.astype(small)[owner], total)


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The sorted distinct values (np.unique hashes; sorting is faster here). The keys come in long ascending
    runs (windows in program order, a window's cells in order), which numpy's stable sort (timsort for 64-bit
    integers) merges ~4x faster than its default introsort sorts them (default layer: 13.3 -> 3.6 ms for the
    312 520 row edges, 18 -> 5 ms for the 391 508 (cell, window) keys); sorted values are the same either way."""
    keys = np.sort(keys, kind="stable")
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys


def gm_sources(tasks: list[Task], shapes: dict[int, tuple[tuple[int, ...], str]], l2: L2
               ) -> list[tuple[GmSource | None, ...] | None]:
    """Per task, per op: where each GM read's data come from (`l2` or `hbm`; None for ops that read no GM),
    or None for a task that reads no GM."""
    rank = window_rank(shapes)
    windows, task, op = _program_windows(tasks, rank)
    hits = l2_hits(windows, shapes, l2)
    first_op = np.cumsum([0] + [len(t.ops) for t in tasks])
    code = np.zeros(first_op[-1], dtype=np.int8)
    read = ~windows.write
    code[first_op[task[read]] + op[read]] = np.where(hits[read], 2, 1)
    names = np.array(SOURCES, dtype=object)[code].tolist()
    reads = np.bincount(task[read], minlength=len(tasks)).tolist()
    bounds = first_op.tolist()
    return [tuple(names[bounds[i]:bounds[i + 1]]) if reads[i] else None for i in range(len(tasks))]


@dataclass
class _Template:
    """A replayed kernel's windows as arrays, before its group's shift and tensor: per window its op, group,
    written flag, index into `tids` (the template's tensors), lo and hi."""

    op: np.ndarray
    group: np.ndarray
    write: np.ndarray
    tids: list[int]
    tensor: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def _program_windows(tasks: list[Task], rank: int) -> tuple[GmWindows, np.ndarray, np.ndarray]:
    """Every task's windows in program order, with each window's task and op: a replayed task's are its template's
    arrays moved by its groups' shifts and put on its tensors, all tasks in one numpy pass (no loop over the
    windows of a replayed task)."""
    templates: dict[int, _Template] = {}
    used: list[_Template] = []
    owner: list[int] = []
    shifts: list[tuple[int, ...]] = []  # every task's groups' shifts, left-padded to `rank`
    first_shift: list[int] = []
    tids: list[int] = []  # every task's tensors, in its template's order
    first_tid: list[int] = []
    for i, t in enumerate(tasks):
        acc = t.accesses
        if not len(acc):
            continue
        if isinstance(acc, MovedWindows):
            tmpl = templates.get(id(acc.base))
            if tmpl is None:
                tmpl = templates[id(acc.base)] = _template(acc.base, rank)
            moves, tensors = acc.shifts, [acc.tids[x] for x in tmpl.tids]
        else:  # an interpreted task: its own template, unmoved
            tmpl = _template([(op, 0, write, region) for op, region, write in acc], rank)
            moves, tensors = [()], tmpl.tids
        used.append(tmpl)
        owner.append(i)
        first_shift.append(len(shifts))
        shifts += [(0,) * (rank - len(m)) + m for m in moves]
        first_tid.append(len(tids))
        tids += tensors
    if not used:
        empty = np.zeros(0, dtype=np.int64)
        return GmWindows.of([], rank), empty, empty
    count = np.array([len(tmpl.op) for tmpl in used])
    move = np.array(shifts, dtype=np.int64)[np.concatenate([tmpl.group for tmpl in used])
                                            + np.repeat(first_shift, count)]
    tid = np.array(tids, dtype=np.int64)[np.concatenate([tmpl.tensor for tmpl in used])
                                          + np.repeat(first_tid, count)]
    windows = GmWindows(tid, np.concatenate([tmpl.lo for tmpl in used]) + move,
                        np.concatenate([tmpl.hi for tmpl in used]) + move,
                        np.concatenate([tmpl.write for tmpl in used]))
    return windows, np.repeat(owner, count), np.concatenate([tmpl.op for tmpl in used])


def _template(base: list[tuple[int, int, bool, Region]], rank: int) -> _Template:
    """A template's windows (op, group, write, window), as arrays."""
    w = GmWindows.of([(region, write) for _, _, write, region in base], rank)
    tids = sorted({region[0] for *_, region in base})
    return _Template(np.array([b[0] for b in base], dtype=np.int64), np.array([b[1] for b in base], dtype=np.int64),
                     w.write, tids, np.searchsorted(tids, w.tid), w.lo, w.hi)
