"""The op table: one row per tile op, naming its arguments, shape/dtype rule, numerics function, lowering,
pipe and cost-rule key.

Adding a vector op is one row here, one numerics function, one entry in the vector-rule table
(`npusim/timing/costs/vector.py`), its intrinsic's constants in the configs and its line in
docs/program-format.md. The interpreter never branches on op names: it reads `lowering`, `pipe`, each
param's `kind` and `buffer`, and `reads_valid_shape` from here.
"""

from __future__ import annotations

from functools import partial

from npusim import numerics
from npusim.dtypes import dtype_name

from .shapes import (
    accumulator_dtype,
    infer_arange,
    infer_binary,
    infer_broadcast,
    infer_cast,
    infer_col_reduce,
    infer_expand,
    infer_fillpad,
    infer_full,
    infer_matmul,
    infer_matmul_acc,
    infer_reduce,
    infer_reshape,
    infer_unary,
    infer_write,
)
from .spec import OpSpec, Param

_V = Param("x", "value")
_LHS_L0A = Param("lhs", "value", buffer="L0A")
_RHS_L0B = Param("rhs", "value", buffer="L0B")


def _binary(name: str, cost: str, scalar_cost: str, doc: str) -> OpSpec:
    fn = getattr(numerics, name)
    return OpSpec(
        name,
        (Param("lhs", "value"), Param("rhs", "value_or_scalar")),
        doc,
        infer=partial(infer_binary, name),
        compute=lambda lhs, rhs: fn(lhs, rhs),
        cost=cost,
        scalar_cost=scalar_cost,
        scalar_compute=partial(numerics.binary_scalar, name),
    )


def _unary(name: str, cost: str, doc: str, ints: bool = False) -> OpSpec:
    fn = getattr(numerics, name if name != "abs" else "abs_")
    return OpSpec(name, (_V,), doc, infer=partial(infer_unary, name, ints), compute=lambda x: fn(x), cost=cost)


def _reduce(name: str, cost: str, doc: str) -> OpSpec:
    fn = getattr(numerics, name)
    return OpSpec(name, (_V,), doc, infer=partial(infer_reduce, name), compute=lambda x: fn(x), cost=cost)


def _expand(kind: str, op: str, cost: str) -> OpSpec:
    compute = numerics.row_expand if kind == "row" else numerics.col_expand
    axis = "row: v is [M, 1]" if kind == "row" else "column: v is [1, N]"
    return OpSpec(
        f"{kind}_expand_{op}",
        (Param("t", "value"), Param("v", "value")),
        f"t {op} v broadcast along each {axis}",
        infer=partial(infer_expand, kind, f"{kind}_expand_{op}"),
        compute=lambda t, v: compute(op, t, v),
        cost=cost,
    )


def _broadcast(kind: str, cost: str) -> OpSpec:
    compute = numerics.row_broadcast if kind == "row" else numerics.col_broadcast
    along = "v [M, 1] copied along each row" if kind == "row" else "v [1, N] copied down each column"
    return OpSpec(
        f"{kind}_expand",
        (Param("t", "value"), Param("v", "value")),
        f"{along} into a tile of t's shape [M, N] (t gives the shape only)",
        infer=partial(infer_broadcast, kind, f"{kind}_expand"),
        compute=lambda t, v: compute(t, v),
        cost=cost,
    )


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in [
        OpSpec(
            "create_tensor",
            (Param("shape", "shape"), Param("dtype", "dtype"), Param("fill", "scalar", None),
             Param("untracked", "flag", False)),
            "allocate a GM tensor (orchestration only); it starts uninitialised (NaN / INT32_MIN), or filled with "
            "`fill` by the scheduler before any kernel (not priced); `untracked`: its accesses give no dependencies",
            where="orchestration",
            lowering="create_tensor",
            pipe=None,
        ),
        OpSpec(
            "set_validshape",
            (Param("t", "value"), Param("rows", "scalar"), Param("cols", "scalar")),
            "the same 2-D tile whose valid part is its first rows x cols (metadata only, no instruction: pypto "
            "tile.set_validshape); a run-time rows or cols makes it a dynamic tile",
            lowering="validshape",
            pipe=None,
        ),
        OpSpec(
            "uninit",
            (Param("shape", "shape"), Param("dtype", "dtype")),
            "an uninitialised tile (PyPTO's create_tensor inside a kernel): no instruction runs; it reads as NaN "
            "(an integer type's minimum) and sits in whichever buffer its first reader needs",
            lowering="uninit",
            pipe=None,
        ),
        OpSpec(
            "slice",
            (
                Param("t", "value"),
                Param("shape", "shape"),
                Param("offset", "shape"),
                Param("valid_shape", "shape_opt", None),
            ),
            "a [shape] window of t: a zero-copy view in orchestration, a DMA load of GM in a kernel "
            "(into L1 when it feeds a matmul, else UB; TLOAD), a vector copy of a tile (TEXTRACT)",
            where="both",
            lowering="slice",
            pipe=None,
        ),
        OpSpec(
            "assemble",
            (Param("target", "value"), Param("source", "value"), Param("offset", "shape"),
             Param("atomic", "choice", "none", ("none", "add"))),
            "write source into target at offset: a DMA store into GM (TSTORE: MTE3 from UB, FIXPIPE from L0C), "
            "or a vector insert into a tile (TINSERT); atomic=\"add\": the store adds into GM (the store's cost)",
            lowering="assemble",
            pipe=None,
        ),
        OpSpec(
            "full",
            (Param("shape", "shape"), Param("dtype", "dtype"), Param("value", "scalar")),
            "a tile filled with one value (pto.texpands, a vector dup)",
            infer=partial(infer_full, "full"),
            compute=lambda shape, dtype, value: numerics.full(shape, dtype, value),
            cost="TEXPANDS",
        ),
        OpSpec(
            "arange",
            (Param("start", "scalar"), Param("shape", "shape"), Param("dtype", "dtype"),
             Param("descending", "flag", False)),
            "start, start + 1, ... (start - k with descending) along a [1, N] int32 tile (TCI: a scalar loop)",
            infer=partial(infer_arange, "arange"),
            compute=lambda start, shape, dtype, descending: numerics.arange(start, shape, descending),
            pipe="scalar",
            cost="TCI",
        ),
        OpSpec(
            "write",
            (Param("t", "value"), Param("index", "index"), Param("value", "scalar")),
            "t with the element at index set to value, rounded to t's dtype (TSETVAL: one scalar store into UB)",
            infer=partial(infer_write, "write"),
            compute=lambda t, index, value: numerics.write(t, index, value),
            pipe="scalar",
            cost="TSETVAL",
        ),
        OpSpec(
            "cast",
            (_V, Param("target_type", "dtype"), Param("mode", "choice", "round", numerics.CAST_MODES)),
            "convert to target_type; mode round (nearest, ties away: the default), rint, floor, ceil, trunc",
            infer=partial(infer_cast, "cast"),
            compute=lambda x, target_type, mode: numerics.cast(x, target_type, mode),
            cost="TCVT",
        ),
        OpSpec(
            "reshape",
            (Param("t", "value"), Param("shape", "shape")),
            "the same elements in a new shape (metadata only, SCALAR pipe); outside a kernel a zero-copy view of a "
            "contiguous GM tensor or window",
            where="both",
            infer=partial(infer_reshape, "reshape"),
            compute=lambda t, shape: t.reshape(shape),
            pipe="scalar",
            cost="TRESHAPE",
        ),
        OpSpec(
            "matmul",
            (_LHS_L0A, _RHS_L0B, Param("out_dtype", "dtype_opt", None), Param("b_trans", "flag", False),
             Param("a_trans", "flag", False)),
            "[M, K] x [K, N] (lhs [K, M] with a_trans, rhs [N, K] with b_trans) on the cube: exact products, exact "
            "K-sum, one rounding",
            infer=partial(infer_matmul, "matmul"),
            compute=lambda lhs, rhs, out_dtype, b_trans, a_trans: numerics.matmul(
                lhs, rhs, a_trans=a_trans, b_trans=b_trans,
                out_dtype=out_dtype or accumulator_dtype(dtype_name(lhs.dtype)),
            ),
            pipe="cube",
            cost="TMATMUL",
        ),
        OpSpec(
            "matmul_acc",
            (Param("acc", "value", buffer="L0C"), _LHS_L0A, _RHS_L0B, Param("b_trans", "flag", False),
             Param("a_trans", "flag", False)),
            "acc + matmul(lhs, rhs) in FP32 (int32 for int8 operands), the accumulator staying in L0C",
            infer=partial(infer_matmul_acc, "matmul_acc"),
            compute=lambda acc, lhs, rhs, b_trans, a_trans: numerics.matmul_acc(acc, lhs, rhs, a_trans=a_trans,
                                                                             b_trans=b_trans),
            chain_compute=lambda acc, lhs, rhs, b_trans, a_trans: numerics.matmul_acc_chain(
                acc, lhs, rhs, a_trans=a_trans, b_trans=b_trans),
            pipe="cube",
            cost="TMATMUL_ACC",
        ),
        _binary("add", "TADD", "TADDS", "elementwise lhs + rhs (rhs a tile of the same shape or a scalar)"),
        _binary("sub", "TSUB", "TSUBS", "elementwise lhs - rhs"),
        _binary("mul", "TMUL", "TMULS", "elementwise lhs * rhs"),
        _binary("div", "TDIV", "TDIVS", "elementwise lhs / rhs"),
        _binary("maximum", "TMAX", "TMAXS", "elementwise max(lhs, rhs)"),
        _binary("minimum", "TMIN", "TMINS", "elementwise min(lhs, rhs)"),
        _unary("neg", "TNEG", "-x", ints=True),
        _unary("abs", "TABS", "|x| (the sign cleared)", ints=True),
        _unary("exp", "TEXP", "e^x, computed in float64 and rounded once"),
        _unary("sqrt", "TSQRT", "IEEE square root"),
        _unary("recip", "TRECIP", "1 / x, a division as on the device"),
        _unary("rsqrt", "TRSQRT", "1 / sqrt(x), computed in float64 and rounded once"),
        _reduce("row_sum", "TROWSUM", "sum of each row to [M, 1], a fixed pairwise tree (see numerics.row_sum)"),
        _reduce("row_max", "TROWMAX", "max of each row to [M, 1]"),
        _reduce("row_min", "TROWMIN", "min of each row to [M, 1]"),
        OpSpec(
            "col_sum",
            (_V, Param("tmp_tile", "value", None)),
            "sum of each column to [1, N]: row after row, or with a scratch tile tmp_tile (the operand's shape "
            "and dtype) in pairs of rows level by level (see numerics.col_sum)",
            infer=partial(infer_col_reduce, "col_sum"),
            compute=lambda x, tmp_tile=None: numerics.col_sum(x, binary=tmp_tile is not None),
            cost="TCOLSUM",
        ),
        OpSpec("col_max", (_V,), "max of each column to [1, N]", infer=partial(infer_col_reduce, "col_max"),
               compute=lambda x: numerics.col_max(x), cost="TCOLMAX"),
        OpSpec("col_min", (_V,), "min of each column to [1, N]", infer=partial(infer_col_reduce, "col_min"),
               compute=lambda x: numerics.col_min(x), cost="TCOLMIN"),
        _broadcast("row", "TROWEXPAND"),
        _expand("row", "add", "TROWEXPANDADD"),
        _expand("row", "sub", "TROWEXPANDSUB"),
        _expand("row", "mul", "TROWEXPANDMUL"),
        _expand("row", "div", "TROWEXPANDDIV"),
        _broadcast("col", "TCOLEXPAND"),
        _expand("col", "add", "TCOLEXPANDADD"),
        _expand("col", "sub", "TCOLEXPANDSUB"),
        _expand("col", "mul", "TCOLEXPANDMUL"),
        _expand("col", "div", "TCOLEXPANDDIV"),
        OpSpec(
            "col_expand_expdif",
            (Param("t", "value"), Param("v", "value")),
            "exp(t - v), v [1, N] broadcast down each column: the difference rounded to the dtype, then its exp "
            "(TCOLEXPANDEXPDIF: vsub, barrier, vexp per call)",
            infer=partial(infer_expand, "col", "col_expand_expdif"),
            compute=lambda t, v: numerics.exp(numerics.col_expand("sub", t, v)),
            cost="TCOLEXPANDEXPDIF",
        ),
        OpSpec(
            "fillpad",
            (Param("t", "value"), Param("pad_value", "choice", "zero", numerics.PAD_VALUES)),
            "fill the elements outside the valid shape with 0, +inf (max) or -inf (min); valid becomes full",
            infer=partial(infer_fillpad, "fillpad"),
            compute=lambda t, pad_value, valid: numerics.fill_pad(t, valid, pad_value),
            cost="TFILLPAD",
            reads_valid_shape=True,
        ),
        OpSpec(
            "read",
            (Param("t", "value"), Param("indices", "shape")),
            "a scalar from a GM tensor, read by the orchestrator; used inside scalar expressions",
            where="orchestration",
            lowering="read",
            pipe=None,
        ),
    ]
}
