"""Vector cost rules: every vector instruction decomposed into the intrinsic calls the device issues (pto-isa
`include/pto/npu/a2a3/T*.hpp`; docs/sources.md, PTC §4).

Each call costs `cycles_per_repeat x repeats`; a stream of calls pays the first call's head once and its last
call's tail when the pipe drains; an in-instruction barrier closes a stream (its tail is paid, the next call
pays a head); control calls cost `ctrl_cycles`; binary ALU calls under a partial mask or in count mode pay
the count-mode floor. Count-mode calls are charged ceil(elements / elements-per-repeat) repeats (the device
does the work the pto-isa cost model's `rep = 0` hides).

`VECTOR_RULES` at the end is the table: one entry per PTO instruction, naming its decomposition (a shape-class
function below) and the intrinsics it calls, whose head, slope and tail the hardware config gives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from npusim.dtypes import itemsize
from npusim.graph import ComputeSig, TileSig

from ..hardware import HardwareConfig
from .base import CostError, Step

BINARY_ALU = frozenset({"vadd", "vsub", "vmul", "vdiv", "vmax", "vmin"})


class VectorStream:
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


# --- shape classes -------------------------------------------------------------------------------------


def _rows_cols(t: TileSig) -> tuple[int, int, int, int]:
    """(tile rows, tile cols, valid rows, valid cols), flattening leading dims."""
    shape, valid = t.shape, t.valid
    cols, vcols = shape[-1], valid[-1]
    rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
    vrows = math.prod(valid[:-1]) if len(valid) > 1 else 1
    return rows, cols, vrows, vcols


def _lanes(t: TileSig, hw: HardwareConfig) -> int:
    """Elements per 256-B repeat for this operand's dtype (64 FP32, 128 BF16/FP16)."""
    return hw.vector.bytes_per_repeat // itemsize(t.dtype)


def _contiguous(t: TileSig) -> bool:
    _rows, cols, vrows, vcols = _rows_cols(t)
    return vcols == cols or vrows == 1


def _src(sig: ComputeSig) -> TileSig:
    """The first operand, whose shape class decides the decomposition (the result for ops without one)."""
    return sig.ins[0] if sig.ins else sig.out


def _masked_rows(vec: VectorStream, name: str, vrows: int, vcols: int, floor: bool) -> None:
    """One call, one repeat per row, masked to the valid columns (rows narrower than a repeat)."""
    vec.ctrl()
    vec.call(name, vrows, vcols, floor=floor)
    vec.ctrl()


def _row_repeats(vec: VectorStream, name: str, E: int, cols: int, vrows: int, vcols: int, floor: bool) -> None:
    """Calls with one repeat per valid row: one masked call for rows narrower than a repeat, else one call per
    E-column chunk (and a masked call for the remainder)."""
    if cols < E:
        _masked_rows(vec, name, vrows, vcols, floor)
        return
    for _ in range(vcols // E):
        vec.call(name, vrows, E)
    if vcols % E:
        vec.ctrl(2)
        vec.call(name, vrows, vcols % E, floor=floor)


# --- decompositions: (stream, config, signature, rule) -------------------------------------------------


def elementwise(vec: VectorStream, hw: HardwareConfig, sig: ComputeSig, rule: VectorRule) -> None:
    """TBinOp / TUnaryOp / TBinSOp structure (PTC §4): a masked per-row call for narrow tiles, one flat call
    (+ masked tail) for contiguous data, count mode for long or misaligned rows, per-column-chunk calls for
    non-contiguous valid regions."""
    t, name, binary = _src(sig), rule.intrinsics[0], rule.binary
    E = _lanes(t, hw)
    rows, cols, vrows, vcols = _rows_cols(t)
    floor = binary
    if binary and cols < E and rows <= hw.vector.max_repeat:
        _masked_rows(vec, name, vrows, vcols, floor)
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
    _row_repeats(vec, name, E, cols, vrows, vcols, floor)


def dup_div(vec: VectorStream, hw: HardwareConfig, sig: ComputeSig, rule: VectorRule) -> None:
    """TDivS / TRECIP: a dup of the scalar, a barrier, then the division (PTC §4); a dynamic or
    non-contiguous tile takes one such group per E-column chunk."""
    t, (dup, div) = _src(sig), rule.intrinsics
    E = _lanes(t, hw)
    _rows, cols, vrows, vcols = _rows_cols(t)
    if _contiguous(t) and not t.dynamic:
        groups = [vrows * cols if vcols == cols else vcols]
    else:
        groups = [vrows * min(E, vcols - c) for c in range(0, vcols, E)]
    for n in groups:
        reps = math.ceil(n / E)
        vec.call(dup, reps)
        vec.barrier()
        vec.call(div, reps, E)


def row_reduce(vec: VectorStream, hw: HardwareConfig, sig: ComputeSig, rule: VectorRule) -> None:
    """TROWSUM / TROWMAX / TROWMIN (PTC §4, npu/TRowReduceOps.hpp): rows of up to E columns reduce in one
    (count-mode) call; wider rows are first combined E columns at a time (a copy first below 2E columns)."""
    t, (reduce, combine, copy) = _src(sig), rule.intrinsics
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
            vec.call(copy, vrows)
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


def _expand(vec: VectorStream, hw: HardwareConfig, t: TileSig, name: str, brcb: str | None) -> None:
    """TROWEXPAND* (the [R, 1] column-major operand first broadcast with `brcb`) and TCOLEXPAND* (none)."""
    E = _lanes(t, hw)
    _rows, cols, vrows, vcols = _rows_cols(t)
    row_vector = brcb is not None
    if brcb is not None:
        vec.call(brcb, math.ceil(vrows / 8))
        vec.barrier()
    count_mode = (vcols / E > vrows) if row_vector else (t.dynamic and vcols != cols and vrows > 1)
    if count_mode:
        vec.ctrl(4)
        for _ in range(vrows):
            vec.call(name, math.ceil(vcols / E), E, floor=True)
        return
    _row_repeats(vec, name, E, cols, vrows, vcols, floor=True)


def row_expand(vec: VectorStream, hw: HardwareConfig, sig: ComputeSig, rule: VectorRule) -> None:
    brcb, name = rule.intrinsics
    _expand(vec, hw, _src(sig), name, brcb)


def col_expand(vec: VectorStream, hw: HardwareConfig, sig: ComputeSig, rule: VectorRule) -> None:
    _expand(vec, hw, _src(sig), rule.intrinsics[0], None)


def convert(vec: VectorStream, hw: HardwareConfig, sig: ComputeSig, rule: VectorRule) -> None:
    """TCVT: one conversion per row, ceil(cols / E) repeats with E set by the wider type (npu/TCvt.hpp)."""
    out, src, conv = sig.out, _src(sig), rule.intrinsics[0]
    E = hw.vector.bytes_per_repeat // max(itemsize(out.dtype), itemsize(src.dtype))
    _rows, _cols, vrows, vcols = _rows_cols(src)
    full = vcols // E
    if full:
        chunks = math.ceil(full / hw.vector.max_repeat)
        for _ in range(vrows):
            for c in range(chunks):
                vec.call(conv, min(hw.vector.max_repeat, full - c * hw.vector.max_repeat))
    if vcols % E:
        for start in range(0, vrows, hw.vector.max_repeat):
            vec.ctrl(2)
            vec.call(conv, min(hw.vector.max_repeat, vrows - start))


def count_mode(vec: VectorStream, hw: HardwareConfig, sig: ComputeSig, rule: VectorRule) -> None:
    """One count-mode call over the valid elements of the result (TEXPANDS, and the vector copies TEXTRACT /
    TINSERT); one per row for a non-contiguous valid region."""
    t, name = sig.out, rule.intrinsics[0]
    E = _lanes(t, hw)
    _rows, _cols, vrows, vcols = _rows_cols(t)
    if _contiguous(t):
        vec.ctrl(4)
        vec.call(name, math.ceil(vrows * vcols / E))
        return
    vec.ctrl(4)
    for _ in range(vrows):
        vec.call(name, math.ceil(vcols / E))


def fillpad(vec: VectorStream, hw: HardwareConfig, sig: ComputeSig, rule: VectorRule) -> None:
    """TFILLPAD (right pad): copy rows, dup the pad into the first row's tail, copy it down (npu/TFillPad.hpp)."""
    t, (copy, dup) = _src(sig), rule.intrinsics
    E = _lanes(t, hw)
    rows, cols, vrows, _vcols = _rows_cols(t)
    per_row = math.ceil(cols / E)
    vec.ctrl(8)
    vec.call(copy, vrows * per_row)
    vec.call(dup, vrows * per_row)
    vec.barrier()
    vec.call(dup, per_row)
    vec.barrier()
    vec.call(copy, max(rows - 1, 0) * per_row)
    if rows > vrows:
        vec.call(dup, per_row)


# --- the table -----------------------------------------------------------------------------------------

Decomposition = Callable[[VectorStream, HardwareConfig, ComputeSig, "VectorRule"], None]


@dataclass(frozen=True)
class VectorRule:
    """One PTO vector instruction: the decomposition its implementation follows and the intrinsics it calls."""

    decomposition: Decomposition
    intrinsics: tuple[str, ...]
    binary: bool = False  # a binary ALU op: narrow tiles take the masked per-row path, partial masks pay the floor


def rule(decomposition: Decomposition, *intrinsics: str, binary: bool = False) -> VectorRule:
    return VectorRule(decomposition, intrinsics, binary)


VECTOR_RULES: dict[str, VectorRule] = {
    # elementwise (npu/TUnaryOp.hpp, TBinOp.hpp, TBinSOp.hpp); TNEG is TMULS(src, -1)
    "TEXP": rule(elementwise, "vexp"),
    "TSQRT": rule(elementwise, "vsqrt"),
    "TRSQRT": rule(elementwise, "vrsqrt"),
    "TNEG": rule(elementwise, "vmuls"),
    "TABS": rule(elementwise, "vabs"),
    "TADD": rule(elementwise, "vadd", binary=True),
    "TSUB": rule(elementwise, "vsub", binary=True),
    "TMUL": rule(elementwise, "vmul", binary=True),
    "TDIV": rule(elementwise, "vdiv", binary=True),
    "TMAX": rule(elementwise, "vmax", binary=True),
    "TMIN": rule(elementwise, "vmin", binary=True),
    "TADDS": rule(elementwise, "vadds"),
    "TSUBS": rule(elementwise, "vadds"),
    "TMULS": rule(elementwise, "vmuls"),
    "TMAXS": rule(elementwise, "vmaxs"),
    "TMINS": rule(elementwise, "vmins"),
    # a scalar division: dup the scalar, barrier, divide (npu/TDivS.hpp); TRECIP is TDIVS(dst, 1, src)
    "TDIVS": rule(dup_div, "vector_dup", "vdiv"),
    "TRECIP": rule(dup_div, "vector_dup", "vdiv"),
    # row reductions: reduce, combine, copy (npu/TRowReduceOps.hpp)
    "TROWSUM": rule(row_reduce, "vcadd", "vadd", "vcopy"),
    "TROWMAX": rule(row_reduce, "vcmax", "vmax", "vcopy"),
    "TROWMIN": rule(row_reduce, "vcmin", "vmin", "vcopy"),
    # broadcasts (npu/TRowExpandBinOp.hpp, TColExpandBinOp.hpp)
    "TROWEXPANDADD": rule(row_expand, "vbrcb", "vadd"),
    "TROWEXPANDSUB": rule(row_expand, "vbrcb", "vsub"),
    "TROWEXPANDMUL": rule(row_expand, "vbrcb", "vmul"),
    "TROWEXPANDDIV": rule(row_expand, "vbrcb", "vdiv"),
    "TCOLEXPANDADD": rule(col_expand, "vadd"),
    "TCOLEXPANDSUB": rule(col_expand, "vsub"),
    "TCOLEXPANDMUL": rule(col_expand, "vmul"),
    "TCOLEXPANDDIV": rule(col_expand, "vdiv"),
    # conversions, fills and copies (npu/TCvt.hpp, TExpandS.hpp, TFillPad.hpp)
    "TCVT": rule(convert, "vconv"),
    "TEXPANDS": rule(count_mode, "vector_dup"),
    "TEXTRACT": rule(count_mode, "vcopy"),
    "TINSERT": rule(count_mode, "vcopy"),
    "TFILLPAD": rule(fillpad, "vcopy", "vector_dup"),
}


def vector_step(sig: ComputeSig, hw: HardwareConfig) -> Step:
    """The VECTOR-pipe cost of one vector instruction."""
    found = VECTOR_RULES.get(sig.key)
    if found is None:
        raise CostError(f"no cost rule for {sig.key}")
    vec = VectorStream(hw)
    found.decomposition(vec, hw, sig, found)
    return vec.step()
