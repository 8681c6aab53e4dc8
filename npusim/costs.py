"""Cost rules: what one op costs on one pipe, from the hardware config. All formulas live here and are
written up in docs/timing-model.md.

Vector instructions are priced by decomposing them into the intrinsic calls the device issues (pto-isa
`include/pto/npu/a2a3/T*.hpp`, as summarised in pto_tile_costs.md §4): each call costs
`cycles_per_repeat x repeats`, a stream of calls pays the first call's head once and its last call's tail
when the pipe drains, an in-instruction barrier closes a stream (its tail is paid, the next call pays a
head), control calls cost `ctrl_cycles`, and binary ALU calls under a partial mask or in count mode pay the
count-mode floor. Count-mode calls are charged ceil(elements / elements-per-repeat) repeats (the device
does the work the cost model's `rep = 0` hides).

DMA transfers cost `startup + charged_bytes / bytes_per_cycle` per hop of the route the config gives,
where each contiguous run is charged in whole `dma_block_bytes` blocks. CUBE costs
`head + cycles_per_fractal x ceil(M/16) ceil(K/k0) ceil(N/16)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .dtypes import itemsize
from .errors import NpusimError
from .hardware import PATHS, HardwareConfig
from .tasks import OpSig, TileSig

PIPES = ("mte2", "mte1", "cube", "fixpipe", "vector", "mte3", "scalar")
BINARY_ALU = frozenset({"vadd", "vsub", "vmul", "vdiv", "vmax", "vmin"})


@dataclass(frozen=True)
class Step:
    """One pipe's share of an op. A vector step pays `head` only when it starts a new stream and `tail`
    when the pipe drains after it; `cycles` is everything in between."""

    pipe: str
    side: str  # "aic" or "aiv": which core of the pair runs it
    cycles: float
    head: float = 0.0
    tail: float = 0.0
    path: str = ""  # DMA path name, for the traffic tables
    nbytes: int = 0  # bytes moved on `path`
    gm_bytes: int = 0  # bytes crossing HBM


class CostError(NpusimError):
    """An op the config cannot price: never silently 0."""


# --- vector decompositions -----------------------------------------------------------------------------


class _Vec:
    """Accumulates the intrinsic calls of one vector instruction into a Step."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.v = hw.vector
        self.body = 0.0
        self.head = 0.0
        self.open = False  # a stream is open (its tail not yet paid)
        self.started = False
        self.tail = 0.0

    def ctrl(self, n: int = 1) -> None:
        self.body += n * self.v.ctrl_cycles

    def call(self, name: str, repeats: float, active: int | None = None, floor: bool = False) -> None:
        """One intrinsic call of `repeats` repeats; `active` = active elements per repeat when the slope is
        per element group; `floor` = partial mask / count mode on a binary ALU op."""
        spec = self.v.intrinsics.get(name)
        if spec is None:
            raise CostError(f"the config has no vector intrinsic {name!r}")
        slope = spec.cycles_per_repeat
        if spec.elements_per_slope and active is not None:
            slope *= active / spec.elements_per_slope
        if not self.open:
            if self.started:
                self.body += spec.head_cycles
            else:
                self.head = spec.head_cycles
                self.started = True
            self.open = True
        self.body += slope * repeats
        if floor and name in BINARY_ALU:
            self.body += self.v.count_mode_floor_cycles
        self.tail = spec.tail_cycles

    def barrier(self) -> None:
        if self.open:
            self.body += self.tail
            self.open = False
        self.body += self.v.barrier_cycles

    def step(self) -> Step:
        return Step("vector", "aiv", self.body, self.head, self.tail if self.open else 0.0)


def _rows_cols(t: TileSig) -> tuple[int, int, int, int]:
    """(tile rows, tile cols, valid rows, valid cols), flattening leading dims."""
    shape, valid = t.shape, t.valid
    cols, vcols = shape[-1], valid[-1]
    rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
    vrows = math.prod(valid[:-1]) if len(valid) > 1 else 1
    return rows, cols, vrows, vcols


def _lanes(t: TileSig, hw: HardwareConfig, dtype: str | None = None) -> int:
    """Elements per 256-B repeat for this operand's dtype (64 FP32, 128 BF16/FP16)."""
    return hw.vector.bytes_per_repeat // itemsize(dtype or t.dtype)


def _contiguous(t: TileSig) -> bool:
    _rows, cols, vrows, vcols = _rows_cols(t)
    return vcols == cols or vrows == 1


def _elementwise(vec: _Vec, hw: HardwareConfig, t: TileSig, name: str, binary: bool) -> None:
    """TBinOp / TUnaryOp / TBinSOp structure (pto_tile_costs.md §4): a masked per-row call for narrow tiles,
    one flat call (+ masked tail) for contiguous data, count mode for long or misaligned rows, per-column-
    chunk calls for non-contiguous valid regions."""
    E = _lanes(t, hw)
    rows, cols, vrows, vcols = _rows_cols(t)
    floor = binary
    if binary and cols < E and rows <= hw.vector.max_repeat:
        vec.ctrl()
        vec.call(name, vrows, vcols, floor=floor)
        vec.ctrl()
        return
    if _contiguous(t):
        n = vrows * cols if vcols == cols else vcols
        misaligned = binary and cols > E and cols % E != 0
        if misaligned or math.ceil(n / E) > hw.vector.max_repeat:
            vec.ctrl(4)
            vec.call(name, math.ceil(n / E), E, floor=floor)
            return
        if n // E:
            vec.call(name, n // E, E)
        if n % E:
            vec.ctrl(2)
            vec.call(name, 1, n % E, floor=floor)
        return
    if cols < E:
        vec.ctrl()
        vec.call(name, vrows, vcols, floor=floor)
        vec.ctrl()
        return
    for _ in range(vcols // E):
        vec.call(name, vrows, E)
    if vcols % E:
        vec.ctrl(2)
        vec.call(name, vrows, vcols % E, floor=floor)


def _dup_div(vec: _Vec, hw: HardwareConfig, t: TileSig) -> None:
    """TDivS / TRECIP: vector_dup of the scalar, a barrier, then the division (pto_tile_costs.md §4); a
    dynamic or non-contiguous tile takes one such group per E-column chunk."""
    E = _lanes(t, hw)
    _rows, cols, vrows, vcols = _rows_cols(t)
    if _contiguous(t) and not t.dynamic:
        groups = [vrows * cols if vcols == cols else vcols]
    else:
        groups = [vrows * min(E, vcols - c) for c in range(0, vcols, E)]
    for n in groups:
        reps = math.ceil(n / E)
        vec.call("vector_dup", reps)
        vec.barrier()
        vec.call("vdiv", reps, E)


def _row_reduce(vec: _Vec, hw: HardwareConfig, t: TileSig, reduce: str, combine: str) -> None:
    """TROWSUM / TROWMAX / TROWMIN (pto_tile_costs.md §4, npu/TRowReduceOps.hpp): rows of up to E columns
    reduce in one (count-mode) call; wider rows are first combined E columns at a time."""
    E = _lanes(t, hw)
    _rows, _cols, vrows, vcols = _rows_cols(t)
    if vcols < E:
        for start in range(0, vrows, hw.vector.max_repeat):
            vec.ctrl()
            vec.call(reduce, min(hw.vector.max_repeat, vrows - start))
            vec.barrier()
        vec.ctrl()
        return
    if vcols > E:
        if vcols < 2 * E:
            vec.call("vcopy", vrows)
            vec.barrier()
        if vcols % E:
            vec.ctrl()
            vec.call(combine, vrows, vcols % E, floor=True)
            vec.ctrl()
            vec.barrier()
        for _ in range(vcols // E - 1):
            vec.ctrl(4)
            vec.call(combine, vrows, E, floor=True)
            vec.barrier()
    vec.ctrl(4)
    vec.call(reduce, vrows)
    vec.barrier()


def _expand(vec: _Vec, hw: HardwareConfig, t: TileSig, name: str, row_vector: bool) -> None:
    """TROWEXPAND* (a [R, 1] column-major operand is first broadcast with vbrcb) and TCOLEXPAND*."""
    E = _lanes(t, hw)
    _rows, cols, vrows, vcols = _rows_cols(t)
    if row_vector:
        vec.call("vbrcb", math.ceil(vrows / 8))
        vec.barrier()
    count_mode = (vcols / E > vrows) if row_vector else (t.dynamic and vcols != cols and vrows > 1)
    if count_mode:
        vec.ctrl(4)
        for _ in range(vrows):
            vec.call(name, math.ceil(vcols / E), E, floor=True)
        return
    if cols < E:
        vec.ctrl()
        vec.call(name, vrows, vcols, floor=True)
        vec.ctrl()
        return
    for _ in range(vcols // E):
        vec.call(name, vrows, E)
    if vcols % E:
        vec.ctrl(2)
        vec.call(name, vrows, vcols % E, floor=True)


def _convert(vec: _Vec, hw: HardwareConfig, out: TileSig, src: TileSig) -> None:
    """TCVT: one vconv per row, ceil(cols / E) repeats with E set by the wider type (pto npu/TCvt.hpp)."""
    E = hw.vector.bytes_per_repeat // max(itemsize(out.dtype), itemsize(src.dtype))
    _rows, _cols, vrows, vcols = _rows_cols(src)
    full = vcols // E
    if full:
        chunks = math.ceil(full / hw.vector.max_repeat)
        for _ in range(vrows):
            for c in range(chunks):
                vec.call("vconv", min(hw.vector.max_repeat, full - c * hw.vector.max_repeat))
    if vcols % E:
        for start in range(0, vrows, hw.vector.max_repeat):
            vec.ctrl(2)
            vec.call("vconv", min(hw.vector.max_repeat, vrows - start))


def _count_mode(vec: _Vec, hw: HardwareConfig, t: TileSig, name: str) -> None:
    """One count-mode call over the valid elements (TEXPANDS, and vector copies TEXTRACT/TINSERT)."""
    E = _lanes(t, hw)
    _rows, _cols, vrows, vcols = _rows_cols(t)
    if _contiguous(t):
        vec.ctrl(4)
        vec.call(name, math.ceil(vrows * vcols / E))
        return
    vec.ctrl(4)
    for _ in range(vrows):
        vec.call(name, math.ceil(vcols / E))


def _fillpad(vec: _Vec, hw: HardwareConfig, t: TileSig) -> None:
    """TFILLPAD (right pad): copy rows, dup the pad into the first row's tail, copy it down (npu/TFillPad.hpp)."""
    E = _lanes(t, hw)
    rows, cols, vrows, _vcols = _rows_cols(t)
    per_row = math.ceil(cols / E)
    vec.ctrl(8)
    vec.call("vcopy", vrows * per_row)
    vec.call("vector_dup", vrows * per_row)
    vec.barrier()
    vec.call("vector_dup", per_row)
    vec.barrier()
    vec.call("vcopy", max(rows - 1, 0) * per_row)
    if rows > vrows:
        vec.call("vector_dup", per_row)


_UNARY = {"TEXP": "vexp", "TSQRT": "vsqrt", "TRSQRT": "vrsqrt", "TNEG": "vmuls"}
_BINARY = {"TADD": "vadd", "TSUB": "vsub", "TMUL": "vmul", "TDIV": "vdiv", "TMAX": "vmax", "TMIN": "vmin"}
_SCALAR = {"TADDS": "vadds", "TSUBS": "vadds", "TMULS": "vmuls", "TMAXS": "vmaxs", "TMINS": "vmins"}
_ROW_EXPAND = {"TROWEXPANDADD": "vadd", "TROWEXPANDSUB": "vsub", "TROWEXPANDMUL": "vmul", "TROWEXPANDDIV": "vdiv"}
_COL_EXPAND = {"TCOLEXPANDADD": "vadd", "TCOLEXPANDSUB": "vsub", "TCOLEXPANDMUL": "vmul", "TCOLEXPANDDIV": "vdiv"}
_ROW_REDUCE = {"TROWSUM": ("vcadd", "vadd"), "TROWMAX": ("vcmax", "vmax"), "TROWMIN": ("vcmin", "vmin")}


def vector_step(sig: OpSig, hw: HardwareConfig) -> Step:
    """The VECTOR-pipe cost of one vector instruction."""
    key, out = sig.key, sig.out
    vec = _Vec(hw)
    src = sig.ins[0] if sig.ins else out
    if key in _UNARY:
        _elementwise(vec, hw, src, _UNARY[key], binary=False)
    elif key in _BINARY:
        _elementwise(vec, hw, src, _BINARY[key], binary=True)
    elif key in _SCALAR:
        _elementwise(vec, hw, src, _SCALAR[key], binary=False)
    elif key in ("TDIVS", "TRECIP"):
        _dup_div(vec, hw, src)
    elif key in _ROW_REDUCE:
        _row_reduce(vec, hw, src, *_ROW_REDUCE[key])
    elif key in _ROW_EXPAND:
        _expand(vec, hw, src, _ROW_EXPAND[key], row_vector=True)
    elif key in _COL_EXPAND:
        _expand(vec, hw, src, _COL_EXPAND[key], row_vector=False)
    elif key == "TCVT":
        _convert(vec, hw, out, src)
    elif key == "TEXPANDS":
        _count_mode(vec, hw, out, "vector_dup")
    elif key in ("TEXTRACT", "TINSERT"):
        _count_mode(vec, hw, out, "vcopy")
    elif key == "TFILLPAD":
        _fillpad(vec, hw, src)
    else:
        raise CostError(f"no cost rule for {key}")
    return vec.step()


# --- data movement, cube, scalar -----------------------------------------------------------------------


def _hop(hw: HardwareConfig, path: str, nbytes: int, charged: int) -> Step:
    dma = hw.dma[path]
    pipe, side = PATHS[path]
    gm = nbytes if path.startswith("gm_") or path.endswith("_gm") else 0
    return Step(pipe, side, dma.startup_cycles + charged / dma.bytes_per_cycle, path=path, nbytes=nbytes, gm_bytes=gm)


def route_steps(hw: HardwareConfig, src: str, dst: str, nbytes: int, charged: int | None = None) -> list[Step]:
    """The hops moving `nbytes` from buffer `src` to `dst` (GM included), per the config's routes, with a
    cross-core sync where the data changes core (AIC <-> AIV through GM on A2/A3)."""
    hops = hw.routes.get(f"{src}->{dst}")
    if hops is None:
        raise CostError(f"{hw.name} has no data path from {src} to {dst}")
    steps: list[Step] = []
    for hop in hops:
        if steps and PATHS[hop][1] != steps[-1].side:
            steps.append(Step("scalar", PATHS[hop][1], hw.scheduler.cross_core_sync_cycles))
        steps.append(_hop(hw, hop, nbytes, charged if charged is not None else nbytes))
    return steps


def _dma(sig: OpSig, hw: HardwareConfig, src: str, dst: str) -> list[Step]:
    _, runs, run_bytes = sig.attrs
    block = hw.dma_block_bytes
    charged = runs * (-(-run_bytes // block) * block)
    return route_steps(hw, src, dst, runs * run_bytes, charged)


def cube_step(sig: OpSig, hw: HardwareConfig) -> Step:
    """TMATMUL / TMATMUL_ACC: one mad on the cube (pto_tile_costs.md §4)."""
    lhs = sig.ins[-2]
    m, k = lhs.shape
    n = sig.out.shape[1]
    c = hw.cube
    if lhs.dtype not in c.cycles_per_fractal:
        raise CostError(f"no cube rule for {lhs.dtype} operands")
    k0 = c.fractal_k_bytes // itemsize(lhs.dtype)
    fractals = math.ceil(m / c.fractal_m) * math.ceil(k / k0) * math.ceil(n / c.fractal_n)
    return Step("cube", "aic", c.head_cycles + c.cycles_per_fractal[lhs.dtype] * fractals)


class CostModel:
    """Prices op signatures for one hardware config; results are cached per signature."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.hw = hw
        self._cache: dict[OpSig, tuple[Step, ...]] = {}

    def steps(self, sig: OpSig) -> tuple[Step, ...]:
        cached = self._cache.get(sig)
        if cached is None:
            cached = self._cache[sig] = tuple(self._price(sig))
        return cached

    def _price(self, sig: OpSig) -> list[Step]:
        key, hw = sig.key, self.hw
        if key == "TLOAD":
            return _dma(sig, hw, "GM", sig.attrs[0])
        if key == "TSTORE":
            return _dma(sig, hw, sig.attrs[0], "GM")
        if key == "MOVE":
            dst, src = sig.attrs
            nbytes = math.prod(sig.out.shape) * itemsize(sig.out.dtype)
            return route_steps(hw, src, dst, nbytes)
        if key in ("TMATMUL", "TMATMUL_ACC"):
            return [cube_step(sig, hw)]
        if key == "TRESHAPE":
            return [Step("scalar", "aiv", hw.reshape_cycles)]
        return [vector_step(sig, hw)]

    def isolated_cycles(self, sig: OpSig) -> float:
        """The cost of one op alone on an idle core: every head and tail paid (what a profiler measures)."""
        return sum(s.head + s.cycles + s.tail for s in self.steps(sig))
