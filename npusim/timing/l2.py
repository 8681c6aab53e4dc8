"""L2 residency of GM data, in program order: which GM reads hit the chip's L2 (docs/timing-model.md §6.3).

The L2 is tracked per sector (`l2.sector_bytes`: a read fills the sectors it touches, not whole lines) of every
GM tensor. Every DMA op's window, read or written, is touched in program order (tasks in submission order, ops
in each task's order); a read hits when every sector of its window was touched less than `l2.bytes` of GM
traffic ago: least recently used replacement, with the distance counted in bytes moved rather than in distinct
sectors (an upper bound of the LRU stack distance, so a hit here is a hit under exact LRU; for the streaming
reads of a decode the two agree). Writes allocate. Program order stands in for time: a task that reads what an
earlier one wrote depends on it and runs after it.
"""

from __future__ import annotations

import math

import numpy as np

from npusim.dtypes import itemsize
from npusim.graph import Region, Task
from npusim.vocabulary import GmSource

from .hardware import L2

NEVER = np.iinfo(np.int32).min  # last touch of a sector no op has touched


class _Grid:
    """A 2-D tensor's sectors as cells of `rows` rows x `cols` sectors: every window touched so far starts and
    ends on cell boundaries, so all sectors of a cell share one last touch and a cell stands for them all (a
    [256, 128] weight tile is one cell, not 512 sectors). A window off the boundaries splits the cells to the
    common divisor first (np.repeat: the same values, finer), so the answers are the per-sector ones."""

    def __init__(self, shape: tuple[int, ...], size: int, line: int) -> None:
        self.size, self.line = size, line
        self.rows, self.cols = shape[0], shape[1] * size // line
        self.cells = np.full((1, 1), NEVER, dtype=np.int32)

    def touch(self, lo: tuple[int, ...], hi: tuple[int, ...], clock: int, horizon: int) -> tuple[bool, int]:
        """Touch a window at `clock`: (whether every cell under it was last touched at `horizon` or later, the
        window's bytes). A one-cell window, the common case (a weight tile), takes scalar access: a numpy
        reduction over one element costs more than the rest of the touch."""
        r0, r1 = lo[0], hi[0]
        size, line = self.size, self.line
        c0, c1 = lo[1] * size // line, -(-hi[1] * size // line)
        if r0 % self.rows or r1 % self.rows:
            rows = math.gcd(self.rows, r0, r1)
            self.cells = np.repeat(self.cells, self.rows // rows, axis=0)
            self.rows = rows
        if c0 % self.cols or c1 % self.cols:
            cols = math.gcd(self.cols, c0, c1)
            self.cells = np.repeat(self.cells, self.cols // cols, axis=1)
            self.cols = cols
        i0, i1, j0, j1 = r0 // self.rows, r1 // self.rows, c0 // self.cols, c1 // self.cols
        nbytes = (r1 - r0) * (hi[1] - lo[1]) * size
        if i1 - i0 == 1 and j1 - j0 == 1:
            recent = self.cells.item(i0, j0) >= horizon
            self.cells[i0, j0] = clock
        else:
            cells = self.cells[i0:i1, j0:j1]
            recent = int(cells.min()) >= horizon
            cells.fill(clock)
        return recent, nbytes


class L2Residency:
    """Per sector of every GM tensor, when it was last touched, in sectors' worth of GM traffic so far."""

    def __init__(self, l2: L2, shapes: dict[int, tuple[tuple[int, ...], str]]) -> None:
        self.line = l2.sector_bytes
        self.capacity = l2.bytes // self.line  # in sectors
        self.shapes = {tid: (shape, itemsize(dtype)) for tid, (shape, dtype) in shapes.items()}
        self.last: dict[int, np.ndarray] = {}
        self.grids: dict[int, _Grid | None] = {}  # a 2-D tensor of whole-sector rows, as a grid of cells
        self.clock = 0  # sectors' worth of GM bytes moved so far, reads and writes
        self.moved = 0  # GM bytes moved so far

    def _lines(self, region: Region) -> tuple[np.ndarray, slice | np.ndarray, int]:
        """A tensor that is no grid: its sector array, the sectors the window covers, and the window's bytes."""
        tid, lo, hi = region
        shape, size = self.shapes[tid]
        lines = self.last.get(tid)
        if lines is None:
            lines = self.last[tid] = np.full(-(-math.prod(shape) * size // self.line), NEVER, dtype=np.int32)
        row_len = shape[-1]
        c0, c1 = lo[-1], hi[-1]
        if len(shape) == 1 or (len(shape) == 2 and c1 - c0 == row_len):  # one run of bytes
            r0, r1 = (lo[0], hi[0]) if len(shape) == 2 else (0, 1)
            first, end = (r0 * row_len + c0) * size, ((r1 - 1) * row_len + c1) * size
            return lines, slice(first // self.line, -(-end // self.line)), (end - first)
        if len(shape) == 2:
            rows = np.arange(lo[0], hi[0], dtype=np.int64)
        else:
            axes = np.meshgrid(*[np.arange(a, b, dtype=np.int64) for a, b in zip(lo[:-1], hi[:-1], strict=True)],
                               indexing="ij")
            rows = np.ravel_multi_index(axes, shape[:-1]).ravel()  # type: ignore[call-overload]
        nbytes = len(rows) * (c1 - c0) * size
        first = (rows * row_len + c0) * size // self.line
        last = ((rows * row_len + c1) * size - 1) // self.line
        if c1 - c0 == row_len and rows[-1] - rows[0] == len(rows) - 1:  # whole consecutive rows: one run
            return lines, slice(int(first[0]), int(last[-1]) + 1), nbytes
        span = last - first
        if span.min() == span.max():
            return lines, (first[:, None] + np.arange(int(span[0]) + 1)).ravel(), nbytes
        return lines, np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last, strict=True)]), nbytes

    def _grid(self, tid: int) -> _Grid | None:
        """A 2-D tensor whose rows are whole sectors is a grid (its windows are blocks of it), else None."""
        shape, size = self.shapes[tid]
        grid = self.grids[tid] = _Grid(shape, size, self.line) \
            if len(shape) == 2 and shape[-1] * size % self.line == 0 else None
        return grid

    def touch(self, region: Region, write: bool) -> bool:
        """Touch a window; for a read, whether it hit L2."""
        tid = region[0]
        grid = self.grids[tid] if tid in self.grids else self._grid(tid)
        if grid is not None:
            recent, nbytes = grid.touch(region[1], region[2], self.clock, self.clock - self.capacity)
            hit = recent and not write
        else:
            lines, idx, nbytes = self._lines(region)
            if idx.__class__ is slice and idx.stop - idx.start == 1:  # one sector: a scalar
                hit = not write and lines.item(idx.start) >= self.clock - self.capacity
                lines[idx.start] = self.clock
            else:
                hit = not write and int(lines[idx].min()) >= self.clock - self.capacity
                lines[idx] = self.clock
        self.moved += nbytes
        self.clock = self.moved // self.line
        return hit

    def sources(self, task: Task) -> tuple[GmSource | None, ...] | None:
        """Touch a task's windows in op order: where each of its ops' GM reads come from, or None if it reads
        no GM."""
        sources: list[GmSource | None] | None = None
        for op, region, write in task.accesses:
            hit = self.touch(region, write)
            if not write:
                if sources is None:
                    sources = [None] * len(task.ops)
                sources[op] = "l2" if hit else "hbm"
        return tuple(sources) if sources is not None else None


def gm_sources(tasks: list[Task], shapes: dict[int, tuple[tuple[int, ...], str]], l2: L2
               ) -> list[tuple[GmSource | None, ...] | None]:
    """Per task, per op: where each GM read's data come from (`l2` or `hbm`; None for ops that read no GM),
    or None for a task that reads no GM."""
    residency = L2Residency(l2, shapes)
    return [residency.sources(task) for task in tasks]
