"""Lowering ops to the hardware: which buffer a tile lives in, the DMA loads and stores with their GM run
geometry, the moves between buffers an op needs, and which core kind a kernel runs on. Each op becomes an
`OpRecord` of the task being built, with a typed signature the cost rules price later."""

from __future__ import annotations

import functools
import math

import numpy as np

from npusim import numerics
from npusim.dtypes import itemsize
from npusim.graph import ComputeSig, DmaSig, MoveSig, OpRecord, OpSig, Task, TileSig, result_tile
from npusim.vocabulary import BUFFER_SIDE, Buffer, CoreKind, Place, SplitMode

from .values import GMTensor, Tile, arrived, poison, tile_sig

# Every move between places the lowering emits for a program the hardware can run: a config must give a route
# for each (timing/requirements.py checks it when the config is loaded). Other moves (an accumulator loaded
# into L0C) have no hardware path and fail, located at their instruction, when the kernel is priced.
ROUTES: frozenset[tuple[Place, Place]] = frozenset({
    ("GM", "UB"), ("GM", "L1"),  # slice in a kernel: into L1 for a matmul operand, else UB
    ("UB", "GM"), ("L0C", "GM"),  # assemble into GM: from UB (MTE3) or L0C (FIXPIPE)
    ("L1", "UB"), ("L0C", "UB"),  # a vector op, a store, a slice or an insert of an L1 or L0C tile
    ("UB", "L1"),  # a cube operand made on the vector side
    ("L1", "L0A"), ("L1", "L0B"),  # cube operands
    ("L0C", "L0A"), ("L0C", "L0B"),  # a matmul result as a cube operand
})


@functools.lru_cache(maxsize=4096)
def dma_runs(tensor_shape: tuple[int, ...], rect: tuple[int, ...]) -> tuple[int, int]:
    """(number of contiguous runs, elements per run) of a row-major rectangle of a tensor."""
    run = 1
    i = len(rect) - 1
    while i >= 0:
        run *= rect[i]
        if rect[i] != tensor_shape[i]:
            break
        i -= 1
    total = math.prod(rect)
    return (total // run if run else 0), run


def dma_calls(tensor_shape: tuple[int, ...], rect: tuple[int, ...]) -> tuple[int, int, int]:
    """(DMA calls, contiguous runs per call, elements per run) of a window: the device issues one DMA call
    per slab of the window's outer dimensions (pto-isa tload_common.hpp TLoadGm2ubNd2nd L71-83, the TStore
    counterpart), each moving the slab's last two dimensions."""
    if len(rect) <= 2:
        return (1, *dma_runs(tensor_shape, rect))
    return (math.prod(rect[:-2]), *dma_runs(tensor_shape[-2:], rect[-2:]))


def core_kind(ops: list[OpRecord]) -> CoreKind:
    """A kernel touching only UB runs on an AIV, one touching only L1/L0* on an AIC, one touching both on an
    AIC + AIV pair."""
    sides = set()
    for op in ops:
        if op.buf is not None:
            sides.add(BUFFER_SIDE[op.buf])
        if op.sig.__class__ is DmaSig:
            sides.add(BUFFER_SIDE[op.sig.buf])
    if len(sides) == 2:
        return "mix"
    return "aic" if "aic" in sides else "aiv"


class Lowering:
    """Emits the records of loads, stores, moves and computed tiles into a task, caching the signatures of
    data movement (the same load or store recurs thousands of times in a decode layer)."""

    def __init__(self, numerics: bool) -> None:
        self.numerics = numerics
        self.sig_cache: dict[tuple, tuple[TileSig, OpSig, int] | OpSig] = {}

    def load(self, task: Task, tensor: GMTensor, offset: tuple[int, ...], shape: tuple[int, ...],
             valid: tuple[int, ...] | None, dynamic: bool, buf: Buffer, iid: int) -> Tile:
        """A DMA load GM -> UB/L1 of the valid part of a window; the rest of the tile is left poisoned."""
        if valid == shape:
            valid = None
        moved = valid or shape
        hi = tuple([o + v for o, v in zip(offset, moved, strict=True)])
        data = None
        if self.numerics and tensor.data is not None:
            if tensor.arriving is not None and 0 not in moved:
                arrived(tensor, hi)
            region = tuple([slice(o, h) for o, h in zip(offset, hi, strict=True)])
            if valid is None:  # a window of a read-only tensor (role input) is its value; others change later
                data = tensor.data[region] if not tensor.data.flags.writeable else np.array(tensor.data[region])
            else:
                data = poison(shape, tensor.dtype)
                data[tuple(slice(0, v) for v in valid)] = tensor.data[region]
        if 0 not in moved:
            region = tensor.region(offset, hi)
            if not tensor.untracked:  # (a manual-dependency tensor orders no task; its traffic still meets L2)
                task.reads.append(region)
            task.accesses.append((len(task.ops), region, False))
        key = ("load", tensor.shape, tensor.dtype, shape, valid, dynamic, buf)
        info = self.sig_cache.get(key)
        if info is None:
            calls, runs, run_elems = dma_calls(tensor.shape, moved)
            tsig = tile_sig(shape, tensor.dtype, valid, dynamic)
            dma = DmaSig("TLOAD", tsig, buf, runs, run_elems * itemsize(tensor.dtype), calls)
            info = self.sig_cache[key] = (tsig, dma, math.prod(shape) * itemsize(tensor.dtype))
        tsig, dma, nbytes = info  # type: ignore[misc]
        tile = Tile(data, tsig, buf, len(task.ops), task.id)
        task.ops.append(OpRecord(dma, iid, (), buf, nbytes))
        return tile

    def store(self, task: Task, tensor: GMTensor, offset: tuple[int, ...], source: Tile,
              written: tuple[int, ...], iid: int, atomic: bool = False) -> None:
        """A DMA store of the valid part of a tile into GM: MTE3 from UB, FIXPIPE from L0C. `atomic`: the store
        adds into GM (the DMA engine's atomic-add mode; the same transfer, so the same cost)."""
        if source.buf not in ("UB", "L0C"):
            source = self.move(task, source, "UB", iid)
        deps = (source.op,) if source.op >= 0 else ()
        hi = tuple([o + w for o, w in zip(offset, written, strict=True)])
        if self.numerics and tensor.data is not None and source.data is not None:
            if tensor.arriving is not None and 0 not in written:
                arrived(tensor, hi)
            window = tuple([slice(o, h) for o, h in zip(offset, hi, strict=True)])
            part = source.data[tuple([slice(0, w) for w in written])]
            tensor.data[window] = numerics.add(tensor.data[window], part) if atomic else part
        if 0 not in written:
            region = tensor.region(offset, hi)
            if not tensor.untracked:  # (a manual-dependency tensor orders no task; its traffic still meets L2)
                task.writes.append(region)
            task.accesses.append((len(task.ops), region, True))
        key = ("store", source.sig, source.buf, tensor.shape)
        dma = self.sig_cache.get(key)
        if dma is None:
            calls, runs, run_elems = dma_calls(tensor.shape, written)
            dma = self.sig_cache[key] = DmaSig("TSTORE", source.sig, source.buf, runs,
                                               run_elems * itemsize(tensor.dtype), calls)
        task.ops.append(OpRecord(dma, iid, deps, None, 0))  # type: ignore[arg-type]

    def move(self, task: Task, tile: Tile, buf: Buffer, iid: int) -> Tile:
        """Move a tile between on-chip buffers (e.g. L1 -> L0A for the cube, L0C -> UB for a vector op).
        The route (direct, or through GM on A2/A3) is priced by the timing stage from the config. An
        uninitialised tile (no producing op) is simply taken to be in `buf`: nothing moves."""
        if tile.buf == buf:
            return tile
        if tile.op < 0:
            return Tile(tile.data, tile.sig, buf, -1, tile.owner)
        key = ("move", tile.sig, tile.buf, buf)
        sig = self.sig_cache.get(key)
        if sig is None:
            sig = self.sig_cache[key] = MoveSig("MOVE", tile.sig, tile.buf, buf)
        return self.emit(task, tile.data, tile.sig, sig, iid, (tile.op,), buf)  # type: ignore[arg-type]

    def extract(self, task: Task, src: Tile, shape: tuple[int, ...], offset: tuple[int, ...],
                valid: tuple[int, ...] | None, dynamic: bool, iid: int) -> Tile:
        """slice of a tile: a vector copy of a window (TEXTRACT, Vec -> Vec) into a tile of the given kind."""
        src = self.move(task, src, "UB", iid)
        data = None
        if src.data is not None:
            data = np.array(src.data[tuple([slice(o, o + n) for o, n in zip(offset, shape, strict=True)])])
        sig = tile_sig(shape, src.dtype, valid if valid != shape else None, dynamic)
        return self.emit(task, data, sig, ComputeSig("TEXTRACT", sig, (src.sig,)), iid, (src.op,), "UB")

    def insert(self, task: Task, target: Tile, source: Tile, offset: tuple[int, ...], iid: int) -> Tile:
        """assemble into a tile: a vector copy into a window of a new tile (TINSERT)."""
        target = self.move(task, target, "UB", iid)
        source = self.move(task, source, "UB", iid)
        data = None
        if target.data is not None and source.data is not None:
            data = np.array(target.data)
            data[tuple([slice(o, o + n) for o, n in zip(offset, source.shape, strict=True)])] = source.data
        return self.emit(task, data, target.sig, ComputeSig("TINSERT", source.sig, (target.sig,)), iid,
                         (target.op, source.op), "UB")

    @staticmethod
    def emit(task: Task, data: np.ndarray | None, sig: TileSig, opsig: OpSig, iid: int, deps: tuple[int, ...],
             buf: Buffer) -> Tile:
        """Record an op producing a tile in `buf` and return the tile."""
        nbytes = math.prod(sig.shape) * itemsize(sig.dtype)
        tile = Tile(data, sig, buf, len(task.ops), task.id)
        task.ops.append(OpRecord(opsig, iid, tuple(d for d in deps if d >= 0), buf, nbytes))
        return tile


_CUBE_KEYS = frozenset({"TMATMUL", "TMATMUL_ACC"})


def lane_ops(ops: list[OpRecord], mode: SplitMode) -> list[OpRecord]:
    """One AIV lane's view of a split mix kernel (PyPTO `pl.split`, LowerAutoVectorSplit): every AIV-side op
    works on its half of the tile along the split axis (rows for up_down, columns for left_right; a tile of
    extent 1 there is a broadcast, kept whole), with its DMA runs re-cut to the half window; a cube <-> vector
    hand-off moves one half per lane; cube ops are unchanged. Raises ValueError where PyPTO rejects the split
    (an odd extent, a reduction along the split axis)."""
    axis = -2 if mode == "up_down" else -1
    out: list[OpRecord] = []
    for op in ops:
        sig = op.sig
        if sig.__class__ is DmaSig and BUFFER_SIDE[sig.buf] == "aiv":
            tile = _half(sig.tile, axis)
            sig = sig._replace(tile=tile, **_half_runs(sig, tile, axis))
        elif sig.__class__ is MoveSig and BUFFER_SIDE[sig.src] != BUFFER_SIDE[sig.dst]:
            sig = sig._replace(tile=_half(sig.tile, axis), lanes=2)
        elif sig.__class__ is ComputeSig and sig.key not in _CUBE_KEYS and op.buf == "UB":
            if sig.out.shape[axis] == 1 and any(len(t.shape) >= -axis and t.shape[axis] > 1 for t in sig.ins):
                raise ValueError(f"{sig.key} reduces along the split axis ({mode}), which the two lanes cannot "
                                 "share; split the other way or drop the split")
            sig = sig._replace(out=_half(sig.out, axis), ins=tuple(_half(t, axis) for t in sig.ins))
        else:
            out.append(op)
            continue
        nbytes = math.prod(result_tile(sig).shape) * itemsize(result_tile(sig).dtype) if op.nbytes else 0
        out.append(op._replace(sig=sig, nbytes=nbytes))
    return out


def _half(t: TileSig, axis: int) -> TileSig:
    """A tile's lane half along `axis` (lane 0's, the one with the larger valid part); extent 1 is kept."""
    if len(t.shape) < -axis or t.shape[axis] == 1:
        return t
    n = t.shape[axis]
    if n % 2:
        raise ValueError(f"a {list(t.shape)} tile has an odd extent {n} along the split axis")
    shape = list(t.shape)
    shape[axis] = n // 2
    valid = list(t.valid)
    valid[axis] = min(valid[axis], n // 2)
    return TileSig(tuple(shape), t.dtype, tuple(valid), t.dynamic)


def _half_runs(sig: DmaSig, half: TileSig, axis: int) -> dict[str, int]:
    """The contiguous GM runs of one lane's half window: a window moved as one run of whole rows stays one run
    (up_down) or becomes one run per row (left_right); row-by-row runs halve in number (up_down) or in length
    (left_right)."""
    moved, lane = sig.tile.valid, half.valid
    rows, cols = (moved[-2], moved[-1]) if len(moved) >= 2 else (1, moved[-1])
    lrows, lcols = (lane[-2], lane[-1]) if len(lane) >= 2 else (1, lane[-1])
    if sig.runs == 0 or rows * cols == 0 or (rows, cols) == (lrows, lcols):
        return {"runs": sig.runs, "run_bytes": sig.run_bytes}
    elem = sig.runs * sig.run_bytes // (rows * cols)
    if axis == -1:
        return {"runs": lrows, "run_bytes": lcols * elem}
    if sig.runs == 1:
        return {"runs": 1, "run_bytes": lrows * lcols * elem}
    return {"runs": lrows, "run_bytes": lcols * elem}
