"""Shape and dtype rules of the tile ops: given the operands' types, the result's shape and dtype, or an
OpError saying what is wrong (the interpreter adds file, line and column)."""

from __future__ import annotations

from npusim.dtypes import FLOAT_DTYPES, promote

from .spec import OpError, TileType


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


def infer_unary(op: str, ints: bool, x: TileType) -> tuple[tuple[int, ...], str]:
    """Same shape and dtype; a float operand unless the op is defined on integers too (`ints`)."""
    if not ints:
        _need_float(op, x)
    return x.shape, x.dtype


def infer_reduce(op: str, x: TileType) -> tuple[tuple[int, ...], str]:
    _need_2d(op, "tile", x)
    return (x.shape[0], 1), x.dtype


def infer_col_reduce(op: str, x: TileType, tmp_tile: TileType | None = None) -> tuple[tuple[int, ...], str]:
    """A column reduction [M, N] -> [1, N]; col_sum's optional scratch tile has the operand's shape and dtype."""
    _need_2d(op, "tile", x)
    if tmp_tile is not None and (tmp_tile.shape != x.shape or tmp_tile.dtype != x.dtype):
        raise OpError(f"the scratch tile must be {x.dtype} {_fmt(x.shape)} like the operand, got "
                      f"{tmp_tile.dtype} {_fmt(tmp_tile.shape)}")
    return (1, x.shape[1]), x.dtype


def infer_row_broadcast(op: str, t: TileType, v: TileType) -> tuple[tuple[int, ...], str]:
    """row_expand: v [M, 1] over the shape of t [M, N]; the device's TROWEXPAND keeps one dtype."""
    _need_2d(op, "tile", t)
    if v.shape != (t.shape[0], 1):
        raise OpError(f"the row vector must be [{t.shape[0]}, 1] for a {_fmt(t.shape)} tile, got {_fmt(v.shape)}")
    if v.dtype != t.dtype:
        raise OpError(f"t is {t.dtype} but v is {v.dtype}; cast one of them first")
    return t.shape, v.dtype


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
    """[M, N] in `out_dtype`, FP32 when not given: the cube accumulates in FP32 (L0C), as the numerics do."""
    m, _, n = matmul_dims(lhs, rhs, b_trans)
    return (m, n), out_dtype or "fp32"


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
