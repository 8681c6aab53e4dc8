"""Elementwise arithmetic: tile-tile and tile-scalar `add sub mul div maximum minimum`, `neg sqrt recip`,
the row and column broadcasts, `full` and `fill_pad`. IEEE in the operand dtype (bf16/fp16 through fp32 and
one correct rounding), canonical NaNs, IEEE 754-2019 maximum/minimum.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from npusim.dtypes import VECTOR_DTYPES, np_dtype

from .cast import cast
from .formats import (
    FMTS,
    INT32_MAX,
    INT32_MIN,
    INT_RANGES,
    bits_of,
    canonical_nan_f32,
    check_2d,
    dtype_of,
    float_only,
    from_bits,
    narrow,
    round_f64,
    same_dtype,
    scalar_f64,
    to_f32,
)

BINARY_OPS = ("add", "sub", "mul", "div", "maximum", "minimum")
EXPAND_OPS = ("add", "sub", "mul", "div")
PAD_VALUES = ("zero", "max", "min")

UFUNCS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


def f32_binary(op: str, a: np.ndarray | np.float32, b: np.ndarray | np.float32) -> np.ndarray:
    """IEEE single-precision `op` (numpy's), with IEEE 754-2019 maximum/minimum and canonical NaNs."""
    with np.errstate(all="ignore"):
        r = np.asarray(UFUNCS[op](a, b))  # a fresh float32 array: at least one operand is an array
    if op in ("maximum", "minimum"):
        both_zero = (a == 0) & (b == 0)
        if np.any(both_zero):
            sa, sb = np.signbit(a), np.signbit(b)
            neg = (sa & sb) if op == "maximum" else (sa | sb)
            r = np.where(both_zero, np.where(neg, np.float32(-0.0), np.float32(0.0)), r).astype(np.float32)
    return canonical_nan_f32(r)


def _binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if op not in UFUNCS:
        raise ValueError(f"unknown binary op {op!r}; expected one of {BINARY_OPS}")
    if a.__class__ is np.ndarray and b.__class__ is np.ndarray and a.dtype == b.dtype == np.float32:
        return f32_binary(op, a, b)  # fp32 tiles (most vector ops): the general path below does just this
    dt = same_dtype(op, a, b)
    if dt not in VECTOR_DTYPES:
        raise ValueError(f"{op}: not defined for {dt}")
    if dt == "int32":
        if op == "div":
            raise ValueError("div: not defined for int32")
        with np.errstate(over="ignore"):
            return np.asarray(UFUNCS[op](np.asarray(a), np.asarray(b)), dtype=np.int32)  # wraps
    return narrow(f32_binary(op, to_f32(a), to_f32(b)), dt)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b elementwise (numpy broadcasting), IEEE in the operand dtype; int32 wraps."""
    return _binary("add", a, b)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a - b elementwise, IEEE in the operand dtype; int32 wraps."""
    return _binary("sub", a, b)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b elementwise, IEEE in the operand dtype; int32 wraps."""
    return _binary("mul", a, b)


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b elementwise, IEEE in the operand dtype; int32 is an error."""
    return _binary("div", a, b)


def maximum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise maximum: NaN propagates (canonical), max(+0, -0) = +0 in either order."""
    return _binary("maximum", a, b)


def minimum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise minimum: NaN propagates (canonical), min(+0, -0) = -0 in either order."""
    return _binary("minimum", a, b)


def neg(x: np.ndarray) -> np.ndarray:
    """-x: a sign-bit flip for floats (exact, also for NaN and 0); int32 wraps (-INT32_MIN = INT32_MIN)."""
    dt = dtype_of(x)
    if dt == "int32":
        return np.negative(np.asarray(x))
    return from_bits(bits_of(x, dt) ^ FMTS[dt].uint(1 << (FMTS[dt].width - 1)), dt).reshape(np.shape(x))


def abs_(x: np.ndarray) -> np.ndarray:
    """|x|: the sign bit cleared for floats (exact, also for NaN and -0); int32 wraps (|INT32_MIN| = INT32_MIN)."""
    dt = dtype_of(x)
    if dt == "int32":
        return np.abs(np.asarray(x))
    return from_bits(bits_of(x, dt) & FMTS[dt].uint((1 << (FMTS[dt].width - 1)) - 1), dt).reshape(np.shape(x))


def sqrt(x: np.ndarray) -> np.ndarray:
    """IEEE square root in the operand dtype (sqrt(-0) = -0, negative -> canonical NaN)."""
    dt = dtype_of(x)
    float_only("sqrt", dt)
    with np.errstate(invalid="ignore"):
        r = np.sqrt(to_f32(x))
    return narrow(canonical_nan_f32(np.array(r, dtype=np.float32)), dt)


def recip(x: np.ndarray) -> np.ndarray:
    """1 / x as an IEEE division in the operand dtype (the device implements recip as a division)."""
    dt = dtype_of(x)
    float_only("recip", dt)
    return div(np.ones(np.shape(x), dtype=np_dtype(dt)), x)

def binary_scalar(op_name: str, x: np.ndarray, scalar: float, scalar_first: bool = False) -> np.ndarray:
    """Tile OP scalar (or scalar OP tile), the PyPTO ``*s`` form: result is fp32.

    The scalar becomes an fp32 constant (nearest-even, as np.float32(scalar)); a bf16/fp16 tile is widened
    exactly to fp32, an int32 tile is converted to fp32 nearest-even; then the fp32 op.
    """
    if op_name not in UFUNCS:
        raise ValueError(f"unknown binary op {op_name!r}; expected one of {BINARY_OPS}")
    dt = dtype_of(x)
    xf = cast(x, "fp32", "rint") if dt == "int32" else to_f32(x)
    with np.errstate(over="ignore"):
        s = np.float32(scalar_f64(scalar))  # one nearest-even rounding (overflow -> inf)
    return f32_binary(op_name, s, xf) if scalar_first else f32_binary(op_name, xf, s)


def _expand(kind: str, op_name: str, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    if op_name not in EXPAND_OPS:
        raise ValueError(f"{kind}: unknown op {op_name!r}; expected one of {EXPAND_OPS}")
    check_2d(kind, t)
    m, n = np.shape(t)
    vector_shape = (m, 1) if kind == "row_expand" else (1, n)
    if np.shape(v) != vector_shape:
        raise ValueError(f"{kind}: v must be {list(vector_shape)}, got {list(np.shape(v))}")
    return _binary(op_name, t, v)


def row_expand(op_name: str, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """t [M,N] OP v [M,1], v broadcast along each row; op_name in add, sub, mul, div."""
    return _expand("row_expand", op_name, t, v)


def _broadcast(op_name: str, t: np.ndarray, v: np.ndarray, axis: int) -> np.ndarray:
    """v ([M,1] for axis 1, [1,N] for axis 0) repeated along `axis` to t's shape [M,N] (a bit copy)."""
    check_2d(op_name, t)
    shape = np.shape(t)
    want = [shape[0], 1] if axis == 1 else [1, shape[1]]
    if list(np.shape(v)) != want:
        raise ValueError(f"{op_name}: v must be {want}, got {list(np.shape(v))}")
    return np.repeat(np.asarray(v), shape[axis], axis=axis)


def row_broadcast(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v [M,1] copied into every column of a tile of t's shape [M,N] (a bit copy: NaN payloads kept)."""
    return _broadcast("row_expand", t, v, axis=1)


def col_broadcast(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v [1,N] copied into every row of a tile of t's shape [M,N] (a bit copy: NaN payloads kept)."""
    return _broadcast("col_expand", t, v, axis=0)


def col_expand(op_name: str, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """t [M,N] OP v [1,N], v broadcast down each column; op_name in add, sub, mul, div."""
    return _expand("col_expand", op_name, t, v)


def arange(start: int, shape: tuple[int, ...] | list[int], descending: bool = False) -> np.ndarray:
    """int32 start + k (start - k when descending) at column k of a [1, N] tile, wrapping as int32 does."""
    n = int(shape[-1])
    k = np.arange(n, dtype=np.int64)
    values = int(start) - k if descending else int(start) + k
    return ((values + 2**31) % 2**32 - 2**31).astype(np.int32).reshape(1, n)


def write(t: np.ndarray, index: tuple[int, ...] | list[int], value: float | int) -> np.ndarray:
    """A copy of t with t[index] = value rounded once to t's dtype (as `full` rounds it)."""
    idx = tuple(int(i) for i in index)
    if len(idx) != t.ndim or any(not 0 <= i < d for i, d in zip(idx, t.shape, strict=True)):
        raise ValueError(f"write: index {list(idx)} is outside the tile of shape {list(t.shape)}")
    out = np.array(t, copy=True)
    out[idx] = full((1,), dtype_of(t), int(value) if isinstance(value, bool | np.bool_) else value)[0]
    return out


def full(shape: tuple[int, ...] | list[int], dtype: str, value: float | int) -> np.ndarray:
    """A tile of `value`: for float dtypes the literal (as a float64, or an exact integer) rounded once to
    nearest-even (saturating for FP8); NaN -> canonical NaN. For an integer dtype the value must be an integer
    in range."""
    shape = tuple(int(s) for s in shape)
    if dtype in INT_RANGES:
        integral = isinstance(value, int | np.integer) or (
            isinstance(value, float | np.floating) and float(value).is_integer()
        )
        if isinstance(value, bool | np.bool_) or not integral:
            raise ValueError(f"full: {dtype} value must be an integer, got {value!r}")
        iv = int(value)
        lo, hi = INT_RANGES[dtype]
        if not lo <= iv <= hi:
            raise ValueError(f"full: {iv} is out of {dtype} range")
        return np.full(shape, iv, dtype=np_dtype(dtype))
    if dtype not in FMTS:
        raise ValueError(f"full: unknown dtype {dtype!r}")
    v = scalar_f64(value)
    return np.full(shape, _rounded(dtype, v, math.copysign(1.0, v) < 0), dtype=np_dtype(dtype))


@functools.lru_cache(maxsize=1024)
def _rounded(dtype: str, value: float, negative: bool) -> np.generic:
    """float64 `value` rounded once to nearest-even in float `dtype`: full's fill value, kept because a decode
    layer fills tiles with the same few values tens of thousands of times (0.2 s of the default layer's run).
    `negative` tells -0.0 from +0.0, which are one key otherwise."""
    return round_f64(np.array([value]), dtype, "rint")[0]


def fill_pad(t: np.ndarray, valid_shape: tuple[int, int] | list[int], pad_value: str) -> np.ndarray:
    """A copy of t [M,N] with every element outside the top-left valid_shape rectangle set to 0 ('zero'),
    +inf ('max') or -inf ('min'; PyPTO PadValue.min); for int32 0, INT32_MAX, INT32_MIN."""
    if pad_value not in PAD_VALUES:
        raise ValueError(f"fill_pad: pad_value must be one of {PAD_VALUES}, got {pad_value!r}")
    check_2d("fill_pad", t)
    dt = dtype_of(t)
    vr, vc = (int(s) for s in valid_shape)
    rows, cols = np.shape(t)
    if not (0 <= vr <= rows and 0 <= vc <= cols):
        raise ValueError(f"fill_pad: valid_shape {[vr, vc]} outside tile shape {[rows, cols]}")
    if dt == "int32":
        fill = {"zero": 0, "max": INT32_MAX, "min": INT32_MIN}[pad_value]
    else:
        fill = {"zero": 0.0, "max": float("inf"), "min": float("-inf")}[pad_value]
    out = np.array(t, copy=True)
    out[vr:, :] = fill
    out[:, vc:] = fill
    return out
