"""Vector cost rules: every vector instruction decomposed into what the device issues for it, by ISA family
(the config's `isa`; docs/timing-model.md §4 gives each sequence with the pto-isa file and lines it follows).

A2/A3 (`isa: a2a3`, pto-isa `include/pto/npu/a2a3/T*.hpp`): an instruction is a sequence of intrinsic calls.
A call costs the intrinsic's slope (per 256-B repeat, by element type) x repeats; a stream of calls pays the
first call's head once and its last call's tail when the pipe drains; a `pipe_barrier` or a V->S->V flag round
trip closes a stream (its tail is paid) and the next call pays a head; control calls (masks, count mode) cost
`ctrl_cycles`; a binary ALU call under a partial mask or in count mode pays the count-mode floor, every such
call; count-mode calls are charged ceil(elements / elements-per-repeat) repeats; a `copy_ubuf_to_ubuf` costs
per call and per 32-B block. Which sequence runs depends on the shape class (contiguous, narrow rows, more
than 255 rows, column chunks, count mode) and on the tile kind: pto-isa decides some branches at compile time
(`Cols == ValidCol`), which a tile with a run-time valid shape (`TileSig.dynamic`) never satisfies.

A5 (`isa: a5`, `include/pto/npu/a5/`): an instruction is one vector function: a 1-D loop over the registers of
a contiguous tile, or a 2-D loop of rows x registers per row, costing `start + per-row x rows + per-register x
registers` by the class of its loop body.

`VECTOR_RULES` at the end is the table: one row per PTO instruction naming its A2/A3 decomposition (a function
below) with the intrinsics it calls, and its A5 loop shape with its vector-function class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from npusim.dtypes import itemsize
from npusim.graph import ComputeSig, TileSig

from ..hardware import HardwareConfig, Vector, VectorFunctions
from .base import CostError, Step

BINARY_ALU = frozenset({"vadd", "vsub", "vmul", "vdiv", "vmax", "vmin"})  # pay the count-mode floor (PTC §1.3)
SMALL_RPT = 4  # TBinSOp.hpp / TUnaryOp.hpp SMALL_RPT: fewer column repeats than this take per-row count mode


class VectorStream:
    """Accumulates the intrinsic calls of one A2/A3 vector instruction into a Step."""

    def __init__(self, v: Vector, dtype: str) -> None:
        self.v = v
        self.dtype = dtype  # the element type the slopes are read for
        self.body = 0.0
        self.head = 0.0
        self.open = False  # a stream is open (its tail not yet paid)
        self.started = False
        self.tail = 0.0

    def ctrl(self, n: int = 1) -> None:
        self.body += n * self.v.ctrl_cycles

    def call(self, name: str, repeats: int, floor: bool = False, dtype: str | None = None) -> None:
        """One intrinsic call of `repeats` repeats; `floor`: under a partial mask or in count mode."""
        spec = self.v.intrinsics.get(name)
        if spec is None:
            raise CostError(f"the config has no vector intrinsic {name!r}")
        if not self.open:
            if self.started:
                self.body += spec.head_cycles
            else:
                self.head = spec.head_cycles
                self.started = True
            self.open = True
        self.body += spec.slope(dtype or self.dtype) * repeats
        if floor and name in BINARY_ALU:
            self.body += self.v.count_mode_floor_cycles
        self.tail = spec.tail_cycles

    def _close(self) -> None:
        if self.open:
            self.body += self.tail
            self.open = False

    def barrier(self) -> None:
        """pipe_barrier(PIPE_V)."""
        self._close()
        self.body += self.v.barrier_cycles

    def flag_round_trip(self) -> None:
        """set_flag/wait_flag V->S, a scalar read, S->V: the vector pipe drains first."""
        self._close()
        self.body += self.v.flag_round_trip_cycles

    def ub_copy(self, nbytes: int) -> None:
        """One copy_ubuf_to_ubuf of `nbytes` (whole blocks, any number of bursts)."""
        c = self.v.ub_copy
        self.body += c.cycles_per_call + c.cycles_per_block * math.ceil(nbytes / c.block_bytes)

    def step(self) -> Step:
        return Step("vector", "aiv", self.body, self.head, self.tail if self.open else 0.0)


# --- shapes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """A tile as the decompositions see it: rows x cols (leading dims flattened), valid rows x cols, its kind
    and element size, and E, the elements of one 256-B repeat (64 FP32, 128 BF16/FP16)."""

    rows: int
    cols: int
    vrows: int
    vcols: int
    dynamic: bool
    size: int
    E: int

    @property
    def block(self) -> int:
        """Elements per 32-B block."""
        return 32 // self.size

    @property
    def full_width(self) -> bool:
        """Every valid row spans the tile's row (the valid data is one contiguous run)."""
        return self.vcols == self.cols


def shape_of(t: TileSig, repeat_bytes: int) -> Shape:
    shape, valid = t.shape, t.valid
    rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
    vrows = math.prod(valid[:-1]) if len(valid) > 1 else 1
    size = itemsize(t.dtype)
    return Shape(rows, shape[-1], vrows, valid[-1], t.dynamic, size, repeat_bytes // size)


def _src(sig: ComputeSig) -> TileSig:
    """The first operand, whose shape class decides the decomposition (the result for ops without one)."""
    return sig.ins[0] if sig.ins else sig.out


# --- A2/A3 shape classes, shared by the decompositions ------------------------------------------------------
# `emit(repeats, masked)` issues one call of the instruction's per-call sequence (one intrinsic, or TDIVS's
# dup + barrier + divide); `masked` = under a partial mask or in count mode.

Emit = Callable[[int, bool], None]


def _one_dim(vec: VectorStream, emit: Emit, s: Shape, nonvl_check: bool) -> None:
    """The valid data as one run (*1LCountMode / *1LNormMode): count mode if the row is not a whole number of
    repeats (`nonvl_check`: C > E and C % E) or the run is over 255 repeats, else one call of n // E repeats and
    a masked one-repeat call for the remainder. A call of zero repeats (a run shorter than one repeat) does no
    work and is not charged: no device point shows what its issue costs."""
    n = s.vrows * s.vcols
    nonvl = nonvl_check and s.vcols > s.E and s.vcols % s.E != 0
    if nonvl or math.ceil(n / s.E) > vec.v.max_repeat:
        vec.ctrl(2)
        emit(math.ceil(n / s.E), True)
        vec.ctrl(2)
        return
    if n // s.E:
        emit(n // s.E, False)
    if n % s.E:
        vec.ctrl()
        emit(1, True)
        vec.ctrl()


def _per_row_count(vec: VectorStream, emit: Emit, s: Shape) -> None:
    """*2LCountMode: one count-mode call per valid row."""
    vec.ctrl(2)
    for _ in range(s.vrows):
        emit(math.ceil(s.vcols / s.E), True)
    vec.ctrl(2)


def _row_repeat(vec: VectorStream, emit: Emit, s: Shape, row_stride_blocks: int) -> None:
    """*2LNormModeRowRpt: one repeat per row. Up to 255 rows (and row strides up to 255 blocks): one call of
    vrows repeats per E-column chunk, and a masked one for the remainder columns. Otherwise Head (when the
    tile has more rows than E): per row, its full chunks in calls of up to 255 repeats; then Tail: the
    remainder columns masked, one call per 255 rows, or one per row when the row stride overflows."""
    cap = vec.v.max_repeat
    if s.rows <= cap and row_stride_blocks <= cap:
        for _ in range(s.vcols // s.E):
            emit(s.vrows, False)
        if s.vcols % s.E:
            vec.ctrl()
            emit(s.vrows, True)
            vec.ctrl()
        return
    remain = s.vcols
    if s.rows > s.E:
        per_line, remain = divmod(s.vcols, s.E)
        for _ in range(s.vrows if per_line else 0):
            for start in range(0, per_line, cap):
                emit(min(cap, per_line - start), False)
    if remain:
        vec.ctrl()
        if row_stride_blocks > cap:
            for _ in range(s.vrows):
                emit(1, True)
        else:
            for start in range(0, s.vrows, cap):
                emit(min(cap, s.vrows - start), True)
        vec.ctrl()


def _two_dim(vec: VectorStream, emit: Emit, s: Shape) -> None:
    """A valid region that is not one run (*2LProcess, TBinSInstr's non-contiguous branch): per-row count mode
    for tiles of fewer than SMALL_RPT column repeats in all, or with fewer rows than column repeats and a
    partial last repeat; one call per row of its full repeats when there are fewer rows than column repeats;
    otherwise one repeat per row (`_row_repeat`)."""
    ncr = s.cols // s.E
    if ncr > 1 and s.rows * ncr < SMALL_RPT:
        _per_row_count(vec, emit, s)
    elif s.rows < ncr + 1:
        if s.vcols % s.E:
            _per_row_count(vec, emit, s)
        else:
            for _ in range(s.vrows):
                emit(s.vcols // s.E, False)
    else:
        _row_repeat(vec, emit, s, s.cols // s.block)


def _single(vec: VectorStream, name: str) -> Emit:
    return lambda repeats, masked: vec.call(name, repeats, floor=masked)


def _sub_exp(vec: VectorStream, sub: str, exp: str) -> Emit:
    """TColExpandExpdif.hpp ColExpandExpdifOp L22-35: each call is vsub, pipe_barrier, vexp over the same repeats."""

    def emit(repeats: int, masked: bool) -> None:
        vec.call(sub, repeats, floor=masked)
        vec.barrier()
        vec.call(exp, repeats)

    return emit


# --- A2/A3 decompositions: (stream, signature, rule) ---------------------------------------------


def tile_tile(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TBinOp.hpp BinaryInstr (TADD TSUB TMUL TDIV TMAX TMIN): rows narrower than a repeat (C < E, up to 255
    rows; decided at compile time for either kind) take one masked call of one repeat per row; a valid region
    that is one run (full-width rows, or one row: checked at run time, so both kinds) one flat call; else the
    2-D classes."""
    s = shape_of(_src(sig), vec.v.bytes_per_repeat)
    emit = _single(vec, rule.intrinsics[0])
    if s.rows <= vec.v.max_repeat and s.cols < s.E:
        vec.ctrl()
        emit(s.vrows, True)
        vec.ctrl()
    elif s.full_width or s.vrows == 1:
        _one_dim(vec, emit, s, nonvl_check=True)
    else:
        _two_dim(vec, emit, s)


def _tile_scalar_shape(vec: VectorStream, emit: Emit, s: Shape) -> None:
    """TBinSOp.hpp TBinSInstr L180-236: the merge test `Cols == ValidCol || Rows == 1` is a compile-time
    constant, and the run-time branch tests the same constant, so a dynamic multi-row tile always takes the
    2-D classes, even with a full valid shape."""
    if s.rows == 1 or (not s.dynamic and s.full_width):
        _one_dim(vec, emit, s, nonvl_check=True)
    else:
        _two_dim(vec, emit, s)


def tile_scalar(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TADDS TSUBS TMULS TMAXS TMINS, and TNEG = TMULS(src, -1): one intrinsic per call."""
    s = shape_of(_src(sig), vec.v.bytes_per_repeat)
    _tile_scalar_shape(vec, _single(vec, rule.intrinsics[0]), s)


def scalar_division(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TDivS.hpp (TDIVS, and TRECIP = TDIVS(dst, 1, src)): TBinSInstr's shape classes, each call being
    vector_dup of the scalar, pipe_barrier, vdiv (DivSOp / SDivOp L56-166)."""
    dup, div = rule.intrinsics
    s = shape_of(_src(sig), vec.v.bytes_per_repeat)

    def emit(repeats: int, masked: bool) -> None:
        vec.call(dup, repeats)
        vec.barrier()
        vec.call(div, repeats, floor=masked)

    _tile_scalar_shape(vec, emit, s)


def unary(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TUnaryOp.hpp L192-241 (TEXP TSQRT TRSQRT TABS): one run when the valid rows are full width or there is
    one row (tested at run time for same-shape operands, so both kinds), count mode over 255 repeats; else the
    2-D classes (Unary2LProcess)."""
    s = shape_of(_src(sig), vec.v.bytes_per_repeat)
    emit = _single(vec, rule.intrinsics[0])
    if s.full_width or s.vrows == 1:
        _one_dim(vec, emit, s, nonvl_check=False)
    else:
        _two_dim(vec, emit, s)


def row_reduce(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TRowReduceOps.hpp TRowReduceInstr L271-332 (TROWSUM TROWMAX TROWMIN, float types): rows of up to E
    columns reduce in one call (count mode of vrows repeats at exactly E, masked per 255 rows below); wider
    rows are first combined E columns at a time into a scratch tile (copied in first between E and 2E columns;
    TROWSUM pairs the chunks in a tree, TROWMAX/MIN chain them), each combine a count-mode call and a
    barrier, then reduced."""
    reduce, combine = rule.intrinsics
    s = shape_of(_src(sig), vec.v.bytes_per_repeat)
    cap = vec.v.max_repeat

    def counted(name: str) -> None:
        vec.ctrl(2)
        vec.call(name, s.vrows, floor=True)
        vec.ctrl(2)
        vec.barrier()

    if s.vcols < s.E:
        vec.ctrl()
        for start in range(0, s.vrows, cap):
            vec.call(reduce, min(cap, s.vrows - start))
            vec.barrier()
        vec.ctrl()
        return
    chunks = s.vcols // s.E
    if s.vcols > s.E:
        if s.vcols < 2 * s.E:
            vec.ub_copy(s.vrows * vec.v.bytes_per_repeat)
            vec.barrier()
        # the chunk combines: TROWSUM's pairwise tree and TROWMAX's chain both take chunks - 1 of them
        for _ in range(chunks - 1):
            counted(combine)
        if s.vcols % s.E:
            vec.ctrl()
            vec.call(combine, s.vrows, floor=True)
            vec.ctrl()
            vec.barrier()
    counted(reduce)


def col_reduce(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TColReduceOps.hpp ColReduceInstr L49-73 (TCOLMAX TCOLMIN): copy row 0 into the result
    (copy_ubuf_to_ubuf) and a barrier; then per further row one count-mode call over the full repeats and a
    barrier, and per row one masked call for the remainder columns and a barrier."""
    name = rule.intrinsics[0]
    s = shape_of(_src(sig), vec.v.bytes_per_repeat)
    vec.ub_copy(s.vcols * s.size)
    vec.barrier()
    if s.vrows == 1:
        return
    if s.vcols // s.E:
        vec.ctrl(2)
        for _ in range(s.vrows - 1):
            vec.call(name, s.vcols // s.E, floor=True)
            vec.barrier()
        vec.ctrl(2)
    if s.vcols % s.E:
        vec.ctrl()
        for _ in range(s.vrows - 1):
            vec.call(name, 1, floor=True)
            vec.barrier()
        vec.ctrl()
    vec.barrier()


def col_sum(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TColSum.hpp TColSum L52-84: one valid row is a copy and a barrier. With a scratch tile (the binary
    path), rows are added in pairs level by level (BinarySum: floor(n/2) count-mode vadds, a barrier, an odd
    row added and a barrier; an extra barrier after each later level), then row 0 of the scratch is copied
    out; without one, row 0 is copied and every further row added in turn, each vadd followed by a barrier."""
    name = rule.intrinsics[0]
    s = shape_of(_src(sig), vec.v.bytes_per_repeat)
    nbytes, repeats = s.vcols * s.size, math.ceil(s.vcols / s.E)
    if s.vrows == 1:
        vec.ub_copy(nbytes)
        vec.barrier()
        return
    if len(sig.ins) < 2:
        vec.ub_copy(nbytes)
        vec.barrier()
        vec.ctrl(2)
        for _ in range(s.vrows - 1):
            vec.call(name, repeats, floor=True)
            vec.barrier()
        vec.ctrl(2)
        return

    def level(n: int) -> None:
        vec.ctrl(2)
        for _ in range(n // 2):
            vec.call(name, repeats, floor=True)
        vec.barrier()
        if n % 2:
            vec.call(name, repeats, floor=True)
            vec.barrier()
        vec.ctrl(2)

    level(s.vrows)
    n = s.vrows // 2
    while n > 1:
        level(n)
        vec.barrier()
        n //= 2
    vec.ub_copy(nbytes)
    vec.barrier()


def row_broadcast(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TRowExpand.hpp TROWEXPAND_IMPL L78-136: a static [M, 1] -> [M, 32 B] broadcast is vbrcb (M/8 repeats
    in calls of up to 254); every other case (any dynamic tile) the generic loop L20-48: count mode, and per
    row a V->S->V flag round trip around the scalar read of the row's value, then a count-mode vector_dup of
    the row."""
    brcb, dup = rule.intrinsics
    out = shape_of(sig.out, vec.v.bytes_per_repeat)
    src = _src(sig)
    static = not out.dynamic and not src.dynamic and out.full_width and src.valid == src.shape
    if static and out.cols * out.size == 32:
        repeats = out.rows // 8
        for start in range(0, repeats, 254):
            vec.call(brcb, min(254, repeats - start))
        return
    vec.ctrl(2)
    for _ in range(out.vrows):
        vec.flag_round_trip()
        vec.call(dup, math.ceil(out.vcols / out.E))
    vec.ctrl(2)


def col_broadcast(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TColExpand.hpp TCOLEXPAND_IMPL / TColExpand L22-36 (a2a3): per valid row of the result one
    copy_ubuf_to_ubuf of the [1, N] row (one burst of its valid columns in whole 32-B blocks)."""
    out = shape_of(sig.out, vec.v.bytes_per_repeat)
    for _ in range(out.vrows):
        vec.ub_copy(out.vcols * out.size)


def row_expand(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TRowExpandBinOp.hpp TRowExpandBinaryInstr L94-132 (TROWEXPANDADD/SUB/MUL/DIV): the [M, 1] operand is
    broadcast into a scratch tile with vbrcb (ceil(M/8) repeats) and a barrier; then, decided at run time,
    per row one count-mode call when a row holds more repeats than there are rows, else one repeat per row."""
    brcb, name = rule.intrinsics
    s = shape_of(_src(sig), vec.v.bytes_per_repeat)
    vec.call(brcb, math.ceil(s.vrows / 8))
    vec.barrier()
    emit = _single(vec, name)
    if s.vcols / s.E > s.vrows:
        _per_row_count(vec, emit, s)
    elif s.cols < s.E:
        vec.ctrl()
        emit(s.vrows, True)
        vec.ctrl()
    else:
        _row_repeat(vec, emit, s, s.cols // s.block)


def col_expand(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TColExpandBinOp.hpp ColExpandBinaryInstr L64-83 (TCOLEXPANDADD/SUB/MUL/DIV/EXPDIF): a compile-time contiguous
    tile (full-width static, or one row) takes one repeat per row per chunk with the [1, N] operand's repeat
    stride 0; every other tile, dynamic ones included, one count-mode call per row."""
    s = shape_of(_src(sig), vec.v.bytes_per_repeat)
    emit = _single(vec, rule.intrinsics[0]) if len(rule.intrinsics) == 1 else _sub_exp(vec, *rule.intrinsics)
    if s.rows == 1 or (not s.dynamic and s.full_width):
        if s.cols < s.E:
            vec.ctrl()
            emit(s.vrows, True)
            vec.ctrl()
        else:
            _row_repeat(vec, emit, s, s.cols // s.block)
    else:
        _per_row_count(vec, emit, s)


def convert(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TCvt.hpp TCvt L1125-1148: saturation mode set and restored (get_ctrl + set_ctrl each), one conversion
    per row of C/E repeats (E of the wider type, L1186-1214), the remainder columns masked, one call per 255
    rows."""
    conv = rule.intrinsics[0]
    out, src = sig.out, _src(sig)
    E = vec.v.bytes_per_repeat // max(itemsize(out.dtype), itemsize(src.dtype))
    s = shape_of(src, vec.v.bytes_per_repeat)
    cap = vec.v.max_repeat
    vec.ctrl(2)
    full = s.vcols // E
    for _ in range(s.vrows if full else 0):
        for start in range(0, full, cap):
            vec.call(conv, min(cap, full - start))
    if s.vcols % E:
        vec.ctrl()
        for start in range(0, s.vrows, cap):
            vec.call(conv, min(cap, s.vrows - start))
        vec.ctrl()
    vec.ctrl(2)


def fill(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TExpandS.hpp TExpandS L43-74 (TEXPANDS, `full`): one count-mode vector_dup over the tile when it is
    contiguous at compile time (static full width, or one row); a dynamic multi-row tile one per row."""
    dup = rule.intrinsics[0]
    s = shape_of(sig.out, vec.v.bytes_per_repeat)
    vec.ctrl(2)
    if s.rows == 1 or s.vrows == 1 or not s.dynamic:
        vec.call(dup, math.ceil(s.vrows * s.vcols / s.E))
    else:
        for _ in range(s.vrows):
            vec.call(dup, math.ceil(s.vcols / s.E))
    vec.ctrl(2)


def tile_copy(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TExtract.hpp L74-139 / TInsert.hpp L129-160 (TEXTRACT, TINSERT between UB tiles): copy_ubuf_to_ubuf.
    The aligned path (a static tile, keyed on TEXTRACT's destination and TINSERT's source, whose valid row is a
    whole number of 32-B blocks) copies the rows as one call; the unaligned path (every dynamic tile) copies
    their whole blocks as one multi-burst call and the remaining bytes of each row with a count-mode vcopy
    per 255 rows."""
    vcopy = rule.intrinsics[0]
    s = shape_of(sig.out, vec.v.bytes_per_repeat)  # TEXTRACT's destination, TINSERT's source (lower.insert)
    row_bytes = s.vcols * s.size
    aligned = not s.dynamic and row_bytes % 32 == 0
    whole = row_bytes if aligned else row_bytes // 32 * 32
    if whole:
        vec.ub_copy(s.vrows * whole)
    if row_bytes > whole:
        cap = vec.v.max_repeat
        vec.ctrl(2)
        for start in range(0, s.vrows, cap):
            vec.call(vcopy, min(cap, s.vrows - start))
        vec.ctrl(2)


def fillpad(vec: VectorStream, sig: ComputeSig, rule: VectorRule) -> None:
    """TFillPad.hpp L155-224 (right pad): copy rows, dup the pad into the first row's tail, copy it down."""
    copy, dup = rule.intrinsics
    s = shape_of(_src(sig), vec.v.bytes_per_repeat)
    per_row = math.ceil(s.cols / s.E)
    vec.ctrl(8)
    vec.call(copy, s.vrows * per_row)
    vec.call(dup, s.vrows * per_row)
    vec.barrier()
    vec.call(dup, per_row)
    vec.barrier()
    vec.call(copy, max(s.rows - 1, 0) * per_row)
    if s.rows > s.vrows:
        vec.call(dup, per_row)


# --- A5: vector functions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loop:
    """The register loop of one A5 vector function: 1-D over `registers`, or 2-D of `rows` x `registers`."""

    two_dim: bool
    rows: int
    registers: int


def vf_elementwise(vf: VectorFunctions, sig: ComputeSig) -> Loop:
    """npu/a5 TBinOp.hpp BinaryInstr L233-257, TUnaryOp.hpp L111-125, TBinSOp.hpp L282-301: every operand
    full width at compile time (static) or one row: the 1-D loop; otherwise (a dynamic multi-row tile, or a
    partial valid width) the 2-D loop."""
    tiles = (*sig.ins, sig.out)
    s = shape_of(_src(sig), vf.register_bytes)
    if s.rows == 1 or all(not t.dynamic and t.valid[-1] == t.shape[-1] for t in tiles):
        return Loop(False, 1, math.ceil(s.vrows * s.vcols / s.E))
    return Loop(True, s.vrows, math.ceil(s.vcols / s.E))


def vf_rows(vf: VectorFunctions, sig: ComputeSig) -> Loop:
    """A per-row vector function (row and column reductions, broadcasts of a row value, fill-pad, copies):
    rows x registers per row."""
    s = shape_of(_src(sig), vf.register_bytes)
    return Loop(True, s.vrows, math.ceil(s.vcols / s.E))


def vf_convert(vf: VectorFunctions, sig: ComputeSig) -> Loop:
    """npu/a5 TCvt.hpp: the elementwise loop choice; a register holds 256 B of the wider type in the 1-D loop
    and of the destination type in the 2-D loop (pto-isa costmodel/a5/vf_costmodel.hpp L128-146)."""
    loop = vf_elementwise(vf, sig)
    src, out = _src(sig), sig.out
    s = shape_of(src, vf.register_bytes)
    if loop.two_dim:
        return Loop(True, s.vrows, math.ceil(s.vcols / (vf.register_bytes // itemsize(out.dtype))))
    E = vf.register_bytes // max(itemsize(src.dtype), itemsize(out.dtype))
    return Loop(False, 1, math.ceil(s.vrows * s.vcols / E))


def _cvt_class(sig: ComputeSig) -> str:
    """TCVT's vector-function class by the widths: narrowing, same width, widening."""
    src, out = itemsize(_src(sig).dtype), itemsize(sig.out.dtype)
    return "cvt_narrow" if out < src else "cvt_widen" if out > src else "cvt_same"


def vf_step(hw: HardwareConfig, sig: ComputeSig, rule: VectorRule) -> Step:
    """The VECTOR-pipe cost of one A5 vector function: start + per-row x rows + per-register x registers.
    The function's drain is its tail (it overlaps a following function); the rest of its start is its head."""
    vf = hw.vector_functions
    assert vf is not None
    loop = rule.a5_loop(vf, sig)
    name = _cvt_class(sig) if rule.a5_class == "cvt" else rule.a5_class
    found = vf.classes.get(name)
    if found is None:
        raise CostError(f"the config has no vector-function class {name!r} (for {sig.key})")
    c = found.loop(_src(sig).dtype)
    if loop.two_dim:
        start = c.start_2d_cycles
        body = loop.rows * (c.cycles_per_row_2d + c.cycles_per_register_2d * loop.registers)
    else:
        start, body = c.start_1d_cycles, c.cycles_per_register_1d * loop.registers
    drain = min(vf.drain_cycles, start)
    return Step("vector", "aiv", body, start - drain, drain)


# --- the table -----------------------------------------------------------------------------------------

Decomposition = Callable[[VectorStream, ComputeSig, "VectorRule"], None]
LoopShape = Callable[[VectorFunctions, ComputeSig], Loop]


@dataclass(frozen=True)
class VectorRule:
    """One PTO vector instruction: its A2/A3 decomposition and the intrinsics it calls, and its A5 loop shape
    and vector-function class (`cvt`: chosen by the conversion's widths)."""

    decomposition: Decomposition
    intrinsics: tuple[str, ...]
    a5_loop: LoopShape
    a5_class: str


def rule(decomposition: Decomposition, *intrinsics: str, a5: tuple[LoopShape, str]) -> VectorRule:
    return VectorRule(decomposition, intrinsics, *a5)


_ALU = (vf_elementwise, "alu")
_ALU_SCALAR = (vf_elementwise, "alu_scalar")
_SFU = (vf_elementwise, "sfu")

VECTOR_RULES: dict[str, VectorRule] = {
    # tile-tile elementwise (npu/a2a3/TBinOp.hpp)
    "TADD": rule(tile_tile, "vadd", a5=_ALU),
    "TSUB": rule(tile_tile, "vsub", a5=_ALU),
    "TMUL": rule(tile_tile, "vmul", a5=_ALU),
    "TDIV": rule(tile_tile, "vdiv", a5=_SFU),
    "TMAX": rule(tile_tile, "vmax", a5=_ALU),
    "TMIN": rule(tile_tile, "vmin", a5=_ALU),
    # tile-scalar (TBinSOp.hpp); TNEG is TMULS(src, -1) (TUnaryOp.hpp L447-452)
    "TADDS": rule(tile_scalar, "vadds", a5=_ALU_SCALAR),
    "TSUBS": rule(tile_scalar, "vadds", a5=_ALU_SCALAR),
    "TMULS": rule(tile_scalar, "vmuls", a5=_ALU_SCALAR),
    "TMAXS": rule(tile_scalar, "vmaxs", a5=_ALU_SCALAR),
    "TMINS": rule(tile_scalar, "vmins", a5=_ALU_SCALAR),
    "TNEG": rule(tile_scalar, "vmuls", a5=_ALU_SCALAR),
    # a scalar division: dup, barrier, divide (TDivS.hpp); TRECIP is TDIVS(dst, 1, src); one VF on A5
    "TDIVS": rule(scalar_division, "vector_dup", "vdiv", a5=_SFU),
    "TRECIP": rule(scalar_division, "vector_dup", "vdiv", a5=_SFU),
    # unary (TUnaryOp.hpp); A5 TRSQRT is vsqrt + vdiv per register (npu/a5/TRsqrt.hpp)
    "TEXP": rule(unary, "vexp", a5=_SFU),
    "TSQRT": rule(unary, "vsqrt", a5=_SFU),
    "TRSQRT": rule(unary, "vrsqrt", a5=(vf_elementwise, "rsqrt")),
    "TABS": rule(unary, "vabs", a5=_ALU_SCALAR),
    # reductions (TRowReduceOps.hpp, TColReduceOps.hpp, TColSum.hpp)
    "TROWSUM": rule(row_reduce, "vcadd", "vadd", a5=(vf_rows, "reduce")),
    "TROWMAX": rule(row_reduce, "vcmax", "vmax", a5=(vf_rows, "reduce")),
    "TROWMIN": rule(row_reduce, "vcmin", "vmin", a5=(vf_rows, "reduce")),
    "TCOLMAX": rule(col_reduce, "vmax", a5=(vf_rows, "alu")),
    "TCOLMIN": rule(col_reduce, "vmin", a5=(vf_rows, "alu")),
    "TCOLSUM": rule(col_sum, "vadd", a5=(vf_rows, "alu")),
    # broadcasts (TRowExpand.hpp, TRowExpandBinOp.hpp, TColExpandBinOp.hpp)
    "TROWEXPAND": rule(row_broadcast, "vbrcb", "vector_dup", a5=(vf_rows, "copy")),
    "TROWEXPANDADD": rule(row_expand, "vbrcb", "vadd", a5=_ALU),
    "TROWEXPANDSUB": rule(row_expand, "vbrcb", "vsub", a5=_ALU),
    "TROWEXPANDMUL": rule(row_expand, "vbrcb", "vmul", a5=_ALU),
    "TROWEXPANDDIV": rule(row_expand, "vbrcb", "vdiv", a5=_SFU),
    "TCOLEXPAND": rule(col_broadcast, a5=(vf_rows, "copy")),
    "TCOLEXPANDADD": rule(col_expand, "vadd", a5=_ALU),
    "TCOLEXPANDSUB": rule(col_expand, "vsub", a5=_ALU),
    "TCOLEXPANDMUL": rule(col_expand, "vmul", a5=_ALU),
    "TCOLEXPANDDIV": rule(col_expand, "vdiv", a5=_SFU),
    "TCOLEXPANDEXPDIF": rule(col_expand, "vsub", "vexp", a5=_SFU),
    # conversions, fills and copies (TCvt.hpp, TExpandS.hpp, TExtract.hpp, TInsert.hpp, TFillPad.hpp)
    "TCVT": rule(convert, "vconv", a5=(vf_convert, "cvt")),
    "TEXPANDS": rule(fill, "vector_dup", a5=_ALU_SCALAR),
    "TEXTRACT": rule(tile_copy, "vcopy", a5=(vf_rows, "copy")),
    "TINSERT": rule(tile_copy, "vcopy", a5=(vf_rows, "copy")),
    "TFILLPAD": rule(fillpad, "vcopy", "vector_dup", a5=(vf_rows, "copy")),
}


def vector_step(sig: ComputeSig, hw: HardwareConfig) -> Step:
    """The VECTOR-pipe cost of one vector instruction on the config's ISA family."""
    found = VECTOR_RULES.get(sig.key)
    if found is None:
        raise CostError(f"no cost rule for {sig.key}")
    if hw.isa == "a5":
        return vf_step(hw, sig, found)
    assert hw.vector is not None  # the config validator ties isa a2a3 to a vector section
    vec = VectorStream(hw.vector, _src(sig).dtype)
    found.decomposition(vec, sig, found)
    return vec.step()
