"""Shape and dtype rules of the tile ops: given the operands' types, the result's shape and dtype, or an
OpError saying what is wrong (the interpreter adds file, line and column)."""

from __future__ import annotations

from npusim.dtypes import CUBE_OPERAND_DTYPES, FLOAT_DTYPES, VECTOR_DTYPES, promote

from .spec import OpError, TileType


def _fmt(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _need_float(op: str, t: TileType) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise OpError(f"{op} needs a floating-point tile, got {t.dtype}")


def _need_vector(op: str, *tiles: TileType | float) -> None:
    """Vector arithmetic is defined on bf16, fp16, fp32 and int32; the storage types need a cast first."""
    for t in tiles:
        if isinstance(t, TileType) and t.dtype not in VECTOR_DTYPES:
            raise OpError(f"{op} is not defined on {t.dtype} (the vector unit computes in "
                          f"{', '.join(VECTOR_DTYPES)}): cast it first")


def _need_2d(op: str, name: str, t: TileType) -> None:
    if len(t.shape) != 2:
        raise OpError(f"{op} needs a 2-D {name}, got shape {_fmt(t.shape)}")


def infer_binary(op: str, lhs: TileType, rhs: TileType | float) -> tuple[tuple[int, ...], str]:
    _need_vector(op, lhs, rhs)
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
    _need_vector(op, x)
    if not ints:
        _need_float(op, x)
    return x.shape, x.dtype


def infer_reduce(op: str, x: TileType) -> tuple[tuple[int, ...], str]:
    _need_vector(op, x)
    _need_2d(op, "tile", x)
    return (x.shape[0], 1), x.dtype


def infer_col_reduce(op: str, x: TileType, tmp_tile: TileType | None = None) -> tuple[tuple[int, ...], str]:
    """A column reduction [M, N] -> [1, N]; col_sum's optional scratch tile has the operand's shape and dtype."""
    _need_vector(op, x)
    _need_2d(op, "tile", x)
    if tmp_tile is not None and (tmp_tile.shape != x.shape or tmp_tile.dtype != x.dtype):
        raise OpError(f"the scratch tile must be {x.dtype} {_fmt(x.shape)} like the operand, got "
                      f"{tmp_tile.dtype} {_fmt(tmp_tile.shape)}")
    return (1, x.shape[1]), x.dtype


def _vector_along(kind: str, t: TileType, v: TileType) -> None:
    """v is t's row vector [M, 1] (kind "row") or its column vector [1, N] (kind "col")."""
    want = (t.shape[0], 1) if kind == "row" else (1, t.shape[1])
    if v.shape != want:
        what = "row" if kind == "row" else "column"
        raise OpError(f"the {what} vector must be {_fmt(want)} for a {_fmt(t.shape)} tile, got {_fmt(v.shape)}")


def infer_broadcast(kind: str, op: str, t: TileType, v: TileType) -> tuple[tuple[int, ...], str]:
    """row_expand / col_expand: v [M, 1] / [1, N] over the shape of t [M, N]; the device's TROWEXPAND and
    TCOLEXPAND keep one dtype."""
    _need_vector(op, t, v)
    _need_2d(op, "tile", t)
    _vector_along(kind, t, v)
    if v.dtype != t.dtype:
        raise OpError(f"t is {t.dtype} but v is {v.dtype}; cast one of them first")
    return t.shape, v.dtype


def infer_expand(kind: str, op: str, t: TileType, v: TileType) -> tuple[tuple[int, ...], str]:
    """t OP v with v broadcast along each row ([M, 1]) or down each column ([1, N])."""
    _need_vector(op, t, v)
    _need_2d(op, "tile", t)
    _vector_along(kind, t, v)
    return t.shape, promote(t.dtype, v.dtype)


def infer_cast(op: str, x: TileType, target_type: str, mode: str) -> tuple[tuple[int, ...], str]:
    return x.shape, target_type


def infer_full(op: str, shape: tuple[int, ...], dtype: str, value: float) -> tuple[tuple[int, ...], str]:
    if dtype.startswith("int") and float(value) != int(value):
        raise OpError(f"value {value} is not an integer, as an {dtype} tile needs")
    return shape, dtype


def infer_arange(op: str, start: float, shape: tuple[int, ...], dtype: str, descending: bool
                 ) -> tuple[tuple[int, ...], str]:
    """arange (TCI): a [1, N] tile of int32 (pto-isa TCI.hpp: leading dims 1, N > 1; npusim has no int16)."""
    if len(shape) != 2 or shape[0] != 1 or shape[1] < 2:
        raise OpError(f"the shape must be [1, N] with N > 1 (TCI fills one row), got {_fmt(shape)}")
    if dtype != "int32":
        raise OpError(f"arange makes int32 (TCI's 16-bit form is int16, which npusim has not), not {dtype}")
    if float(start) != int(start):
        raise OpError(f"start {start} is not an integer")
    return shape, dtype


def infer_write(op: str, t: TileType, index: tuple[int, ...], value: float) -> tuple[tuple[int, ...], str]:
    """write: t with one element replaced (TSETVAL); the index gives every dimension."""
    if len(index) != len(t.shape):
        raise OpError(f"the index has {len(index)} entries for a {len(t.shape)}-D tile")
    return t.shape, t.dtype


def infer_reshape(op: str, t: TileType, shape: tuple[int, ...]) -> tuple[tuple[int, ...], str]:
    old, new = _prod(t.shape), _prod(shape)
    if old != new:
        raise OpError(f"cannot reshape {_fmt(t.shape)} ({old} elements) to {_fmt(shape)} ({new} elements)")
    return shape, t.dtype


def infer_fillpad(op: str, t: TileType, pad_value: str) -> tuple[tuple[int, ...], str]:
    _need_vector(op, t)
    return t.shape, t.dtype


def matmul_dims(lhs: TileType, rhs: TileType, b_trans: bool, a_trans: bool = False) -> tuple[int, int, int]:
    """(M, K, N) of a matmul, checking the operands (a is [K, M] with a_trans, b is [N, K] with b_trans)."""
    if len(lhs.shape) != 2 or len(rhs.shape) != 2:
        raise OpError(f"matmul needs 2-D operands, got {_fmt(lhs.shape)} and {_fmt(rhs.shape)}")
    k, m = lhs.shape if a_trans else lhs.shape[::-1]
    n, k2 = rhs.shape if b_trans else rhs.shape[::-1]
    if k != k2:
        aside = "a (transposed) is" if a_trans else "a is"
        side = "b (transposed) is" if b_trans else "b is"
        raise OpError(f"inner dimensions differ: {aside} {_fmt(lhs.shape)}, {side} {_fmt(rhs.shape)}")
    if lhs.dtype != rhs.dtype:
        raise OpError(f"operand dtypes differ: a is {lhs.dtype}, b is {rhs.dtype}")
    if lhs.dtype not in CUBE_OPERAND_DTYPES:
        raise OpError(f"{lhs.dtype} matmul is not supported (the cube takes {', '.join(CUBE_OPERAND_DTYPES)})")
    return m, k, n


def accumulator_dtype(operand: str) -> str:
    """What the cube accumulates in (L0C): int32 for int8 operands, fp32 for every float type."""
    return "int32" if operand == "int8" else "fp32"


def infer_matmul(op: str, lhs: TileType, rhs: TileType, out_dtype: str | None, b_trans: bool, a_trans: bool = False):
    """[M, N] in `out_dtype`, the accumulator's type when not given (FP32; int32 for int8 operands), as the
    numerics do."""
    m, _, n = matmul_dims(lhs, rhs, b_trans, a_trans)
    acc = accumulator_dtype(lhs.dtype)
    if out_dtype is not None and (out_dtype == "int32") != (acc == "int32"):
        raise OpError(f"out_dtype {out_dtype} does not fit {lhs.dtype} operands (their sums are {acc})")
    if out_dtype is not None and out_dtype not in ("int32", *FLOAT_DTYPES):
        raise OpError(f"out_dtype {out_dtype} is not a matmul result type (int32, {', '.join(FLOAT_DTYPES)})")
    return (m, n), out_dtype or acc


def infer_matmul_acc(op: str, acc: TileType, lhs: TileType, rhs: TileType, b_trans: bool, a_trans: bool = False):
    m, _, n = matmul_dims(lhs, rhs, b_trans, a_trans)
    want = accumulator_dtype(lhs.dtype)
    if acc.dtype != want or acc.shape != (m, n):
        raise OpError(f"accumulator must be {want} [{m}, {n}], got {acc.dtype} {_fmt(acc.shape)}")
    return (m, n), want


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
