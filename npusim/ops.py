"""The ops table: for every tile op, its arguments, shape/dtype rule, numerics, pipe and cost rule.

Adding an op means adding one entry here (and, if it needs a new device decomposition, one cost rule in
`costs.py` under the key named here). The interpreter never branches on op names for compute ops; it reads
this table. Data-movement ops (`slice`, `assemble`, `create_tensor`, `reshape`, `read`) are listed too, with
their context-dependent cost keys (a `slice` of GM inside a kernel is a TLOAD, of a tile a TEXTRACT).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import numerics
from .dtypes import FLOAT_DTYPES, promote

REQUIRED = object()


class OpError(Exception):
    """A shape/dtype/argument problem in one op; the interpreter adds file, line and column."""


@dataclass(frozen=True)
class TileType:
    """What a shape rule sees of an operand: shape, dtype and valid shape (None = all valid)."""

    shape: tuple[int, ...]
    dtype: str
    valid: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Param:
    """One argument of an op.

    kind: `value` (tile or GM tensor), `value_or_scalar`, `shape` (list of expressions), `shape_opt`,
    `dtype`, `dtype_opt`, `scalar`, `choice` (a string from `choices`), `flag` (True/False).
    """

    name: str
    kind: str
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpSpec:
    """One row of the ops table."""

    name: str
    params: tuple[Param, ...]
    doc: str
    where: str = "kernel"  # kernel | orchestration | both
    infer: Callable[..., tuple[tuple[int, ...], str]] | None = None  # (**args) -> (shape, dtype)
    compute: Callable[..., Any] | None = None  # (**args as numpy/values) -> ndarray
    pipe: str = "vector"  # vector | cube | dma | scalar
    cost: str | dict[str, str] = ""  # cost-rule key(s) in costs.py
    scalar_cost: str = ""  # cost key of the tile-scalar form, for binary ops
    scalar_compute: Callable[..., Any] | None = None  # numerics of the tile-scalar form

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


# --- shape/dtype rules --------------------------------------------------------------------------------


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _need_float(op: str, t: TileType) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise OpError(f"{op} needs a floating-point tile, got {t.dtype}")


def _need_2d(op: str, name: str, t: TileType) -> None:
    if len(t.shape) != 2:
        raise OpError(f"{op} needs a 2-D {name}, got shape {_fmt(t.shape)}")


def infer_binary(op: str, lhs: TileType, rhs: TileType | float) -> tuple[tuple[int, ...], str]:
    if not isinstance(rhs, TileType):
        return lhs.shape, promote(lhs.dtype, "fp32")
    if lhs.shape != rhs.shape:
        raise OpError(
            f"shapes differ: lhs is {_fmt(lhs.shape)}, rhs is {_fmt(rhs.shape)} "
            "(use row_expand_*/col_expand_* to broadcast a [M, 1] or [1, N] tile)"
        )
    return lhs.shape, promote(lhs.dtype, rhs.dtype)


def infer_unary(op: str, x: TileType) -> tuple[tuple[int, ...], str]:
    if op != "neg":
        _need_float(op, x)
    return x.shape, x.dtype


def infer_reduce(op: str, x: TileType) -> tuple[tuple[int, ...], str]:
    _need_2d(op, "tile", x)
    return (x.shape[0], 1), x.dtype


def infer_row_expand(op: str, t: TileType, v: TileType) -> tuple[tuple[int, ...], str]:
    _need_2d(op, "tile", t)
    if v.shape != (t.shape[0], 1):
        raise OpError(f"the row vector must be [{t.shape[0]}, 1] for a {_fmt(t.shape)} tile, got {_fmt(v.shape)}")
    return t.shape, promote(t.dtype, v.dtype)


def infer_col_expand(op: str, t: TileType, v: TileType) -> tuple[tuple[int, ...], str]:
    _need_2d(op, "tile", t)
    if v.shape != (1, t.shape[1]):
        raise OpError(f"the column vector must be [1, {t.shape[1]}] for a {_fmt(t.shape)} tile, got {_fmt(v.shape)}")
    return t.shape, promote(t.dtype, v.dtype)


def infer_cast(op: str, x: TileType, target_type: str, mode: str) -> tuple[tuple[int, ...], str]:
    return x.shape, target_type


def infer_full(op: str, shape: tuple[int, ...], dtype: str, value: float) -> tuple[tuple[int, ...], str]:
    if dtype == "int32" and float(value) != int(value):
        raise OpError(f"value {value} is not an integer, as an int32 tile needs")
    return shape, dtype


def infer_reshape(op: str, t: TileType, shape: tuple[int, ...]) -> tuple[tuple[int, ...], str]:
    old, new = _prod(t.shape), _prod(shape)
    if old != new:
        raise OpError(f"cannot reshape {_fmt(t.shape)} ({old} elements) to {_fmt(shape)} ({new} elements)")
    return shape, t.dtype


def infer_fillpad(op: str, t: TileType, pad_value: str) -> tuple[tuple[int, ...], str]:
    return t.shape, t.dtype


def matmul_dims(lhs: TileType, rhs: TileType, b_trans: bool) -> tuple[int, int, int]:
    """(M, K, N) of a matmul, checking the operands."""
    if len(lhs.shape) != 2 or len(rhs.shape) != 2:
        raise OpError(f"matmul needs 2-D operands, got {_fmt(lhs.shape)} and {_fmt(rhs.shape)}")
    m, k = lhs.shape
    n, k2 = rhs.shape if b_trans else rhs.shape[::-1]
    if k != k2:
        side = "b (transposed) is" if b_trans else "b is"
        raise OpError(f"inner dimensions differ: a is {_fmt(lhs.shape)}, {side} {_fmt(rhs.shape)}")
    if lhs.dtype != rhs.dtype:
        raise OpError(f"operand dtypes differ: a is {lhs.dtype}, b is {rhs.dtype}")
    if lhs.dtype == "int32":
        raise OpError("int32 matmul is not supported")
    return m, k, n


def infer_matmul(op: str, lhs: TileType, rhs: TileType, out_dtype: str | None, b_trans: bool):
    m, _, n = matmul_dims(lhs, rhs, b_trans)
    return (m, n), out_dtype or lhs.dtype


def infer_matmul_acc(op: str, acc: TileType, lhs: TileType, rhs: TileType, b_trans: bool):
    m, _, n = matmul_dims(lhs, rhs, b_trans)
    if acc.dtype != "fp32" or acc.shape != (m, n):
        raise OpError(f"accumulator must be fp32 [{m}, {n}], got {acc.dtype} {_fmt(acc.shape)}")
    return (m, n), "fp32"


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# --- the table ----------------------------------------------------------------------------------------

_V = Param("x", "value")


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


def _unary(name: str, cost: str, doc: str) -> OpSpec:
    fn = getattr(numerics, name)
    return OpSpec(name, (_V,), doc, infer=partial(infer_unary, name), compute=lambda x: fn(x), cost=cost)


def _reduce(name: str, cost: str, doc: str) -> OpSpec:
    fn = getattr(numerics, name)
    return OpSpec(name, (_V,), doc, infer=partial(infer_reduce, name), compute=lambda x: fn(x), cost=cost)


def _expand(kind: str, op: str, cost: str) -> OpSpec:
    infer = infer_row_expand if kind == "row" else infer_col_expand
    compute = numerics.row_expand if kind == "row" else numerics.col_expand
    axis = "row: v is [M, 1]" if kind == "row" else "column: v is [1, N]"
    return OpSpec(
        f"{kind}_expand_{op}",
        (Param("t", "value"), Param("v", "value")),
        f"t {op} v broadcast along each {axis}",
        infer=partial(infer, f"{kind}_expand_{op}"),
        compute=lambda t, v: compute(op, t, v),
        cost=cost,
    )


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in [
        OpSpec(
            "create_tensor",
            (Param("shape", "shape"), Param("dtype", "dtype")),
            "allocate a GM tensor (orchestration only); it starts uninitialised (NaN / INT32_MIN)",
            where="orchestration",
            pipe="scalar",
        ),
        OpSpec(
            "slice",
            (
                Param("t", "value"),
                Param("shape", "shape"),
                Param("offset", "shape"),
                Param("valid_shape", "shape_opt", None),
            ),
            "a [shape] window of t at offset: a zero-copy view in orchestration, a DMA load of GM in a kernel "
            "(into L1 when it feeds a matmul, else UB), a vector copy of a tile",
            where="both",
            pipe="dma",
            cost={"gm": "TLOAD", "tile": "TEXTRACT"},
        ),
        OpSpec(
            "assemble",
            (Param("target", "value"), Param("source", "value"), Param("offset", "shape")),
            "write source into target at offset: a DMA store into GM (MTE3 from UB, FIXPIPE from L0C), "
            "or a vector insert into a tile",
            pipe="dma",
            cost={"gm": "TSTORE", "tile": "TINSERT"},
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
            "the same elements in a new shape (metadata only, SCALAR pipe)",
            infer=partial(infer_reshape, "reshape"),
            compute=lambda t, shape: t.reshape(shape),
            pipe="scalar",
            cost="TRESHAPE",
        ),
        OpSpec(
            "matmul",
            (
                Param("lhs", "value"),
                Param("rhs", "value"),
                Param("out_dtype", "dtype_opt", None),
                Param("b_trans", "flag", False),
            ),
            "[M, K] x [K, N] (or [N, K] with b_trans) on the cube: exact products, exact K-sum, one rounding",
            infer=partial(infer_matmul, "matmul"),
            compute=lambda lhs, rhs, out_dtype, b_trans: numerics.matmul(
                lhs, rhs, b_trans=b_trans, out_dtype=out_dtype or "fp32"
            ),
            pipe="cube",
            cost="TMATMUL",
        ),
        OpSpec(
            "matmul_acc",
            (Param("acc", "value"), Param("lhs", "value"), Param("rhs", "value"), Param("b_trans", "flag", False)),
            "acc + matmul(lhs, rhs) in FP32, the accumulator staying in L0C",
            infer=partial(infer_matmul_acc, "matmul_acc"),
            compute=lambda acc, lhs, rhs, b_trans: numerics.matmul_acc(acc, lhs, rhs, b_trans=b_trans),
            pipe="cube",
            cost="TMATMUL_ACC",
        ),
        _binary("add", "TADD", "TADDS", "elementwise lhs + rhs (rhs a tile of the same shape or a scalar)"),
        _binary("sub", "TSUB", "TSUBS", "elementwise lhs - rhs"),
        _binary("mul", "TMUL", "TMULS", "elementwise lhs * rhs"),
        _binary("div", "TDIV", "TDIVS", "elementwise lhs / rhs"),
        _binary("maximum", "TMAX", "TMAXS", "elementwise max(lhs, rhs)"),
        _binary("minimum", "TMIN", "TMINS", "elementwise min(lhs, rhs)"),
        _unary("neg", "TNEG", "-x"),
        _unary("exp", "TEXP", "e^x, computed in float64 and rounded once"),
        _unary("sqrt", "TSQRT", "IEEE square root"),
        _unary("recip", "TRECIP", "1 / x, a division as on the device"),
        _unary("rsqrt", "TRSQRT", "1 / sqrt(x), computed in float64 and rounded once"),
        _reduce("row_sum", "TROWSUM", "sum of each row to [M, 1], a fixed pairwise tree (see numerics.row_sum)"),
        _reduce("row_max", "TROWMAX", "max of each row to [M, 1]"),
        _reduce("row_min", "TROWMIN", "min of each row to [M, 1]"),
        _expand("row", "add", "TROWEXPANDADD"),
        _expand("row", "sub", "TROWEXPANDSUB"),
        _expand("row", "mul", "TROWEXPANDMUL"),
        _expand("row", "div", "TROWEXPANDDIV"),
        _expand("col", "add", "TCOLEXPANDADD"),
        _expand("col", "sub", "TCOLEXPANDSUB"),
        _expand("col", "mul", "TCOLEXPANDMUL"),
        _expand("col", "div", "TCOLEXPANDDIV"),
        OpSpec(
            "fillpad",
            (Param("t", "value"), Param("pad_value", "choice", "zero", ("zero", "max", "min"))),
            "fill the elements outside the valid shape with 0, +inf (max) or -inf (min); valid becomes full",
            infer=partial(infer_fillpad, "fillpad"),
            compute=lambda t, pad_value, valid: numerics.fill_pad(t, valid, pad_value),
            cost="TFILLPAD",
        ),
        OpSpec(
            "read",
            (Param("t", "value"), Param("indices", "shape")),
            "a scalar from a GM tensor, read by the orchestrator; used inside scalar expressions",
            where="orchestration",
            pipe="scalar",
        ),
    ]
}
