"""Row and column reductions: `row_sum` as a fixed, documented pairwise tree, `col_sum` in the device's
order (row by row, or pairs of rows level by level), the maxima and minima exact."""

from __future__ import annotations

import numpy as np

from .elementwise import add, maximum, minimum
from .formats import canonical_nan_f32, check_2d, dtype_of, narrow, to_f32

ROW_SUM_LANES = 64  # the width of the final in-lane tree of row_sum


def row_sum(x: np.ndarray) -> np.ndarray:
    """Sum of each row of x [M,N] -> [M,1], as a fixed pairwise tree in the operand dtype's arithmetic.

    The tree, for every row independently (each '+' is one IEEE add in the operand dtype; for bf16/fp16
    an fp32 add rounded to nearest-even):
      1) pad the row on the right with -0.0 up to a multiple of 64 columns (at least 64); -0.0 is the
         additive identity of every IEEE value, +0 and -0 included;
      2) view it as chunks of 64 columns c_0, c_1, ..., c_{n-1}; while more than one chunk remains, replace
         the list by c_0 + c_1, c_2 + c_3, ... (lane by lane); an odd last chunk is carried unchanged;
      3) on the remaining 64 lanes l_0..l_63, six levels of adjacent pairs: l_{2i} + l_{2i+1}
         (64 -> 32 -> 16 -> 8 -> 4 -> 2 -> 1).
    int32 rows are summed with wrap-around (any order gives the same result).
    """
    check_2d("row_sum", x)
    dt = dtype_of(x)
    x = np.asarray(x)
    m, width = x.shape
    padded_width = max(1, -(-width // ROW_SUM_LANES)) * ROW_SUM_LANES
    if dt == "int32":
        with np.errstate(over="ignore"):
            return (
                x.astype(np.int64)
                .sum(axis=1, keepdims=True)
                .astype(np.uint64)
                .astype(np.uint32)
                .view(np.int32)
            )
    t = np.full((m, padded_width), -0.0, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # signalling NaNs warn
        t[:, :width] = x
    t = t.reshape(m, padded_width // ROW_SUM_LANES, ROW_SUM_LANES)

    def add_pairs(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            s = u + v
        return s if dt == "fp32" else narrow(s, dt).astype(np.float32)

    while t.shape[1] > 1:
        pairs = t.shape[1] // 2
        s = add_pairs(t[:, 0 : 2 * pairs : 2], t[:, 1 : 2 * pairs : 2])
        t = np.concatenate([s, t[:, 2 * pairs :]], axis=1) if t.shape[1] % 2 else s
    t = t[:, 0, :]
    while t.shape[1] > 1:
        t = add_pairs(t[:, 0::2], t[:, 1::2])
    return narrow(canonical_nan_f32(np.ascontiguousarray(t)), dt)


def _row_extreme(x: np.ndarray, op: str) -> np.ndarray:
    check_2d(op, x)
    dt = dtype_of(x)
    x = np.asarray(x)
    if x.shape[1] == 0:
        raise ValueError(f"{op}: empty rows")
    if dt == "int32":
        return (x.max if op == "row_max" else x.min)(axis=1, keepdims=True)
    f = to_f32(x)
    r = (f.max if op == "row_max" else f.min)(axis=1, keepdims=True)
    zero = r == 0
    if zero.any():  # -0 < +0: max is +0 if any +0 is present, min is -0 if any -0 is present
        is_zero = f == 0
        if op == "row_max":
            want_neg = ~(is_zero & ~np.signbit(f)).any(axis=1, keepdims=True)
        else:
            want_neg = (is_zero & np.signbit(f)).any(axis=1, keepdims=True)
        r = np.where(zero, np.where(want_neg, np.float32(-0.0), np.float32(0.0)), r).astype(np.float32)
    return narrow(canonical_nan_f32(np.array(r, dtype=np.float32)), dt)


def row_max(x: np.ndarray) -> np.ndarray:
    """Maximum of each row -> [M,1], exact; NaN propagates (canonical); +0 beats -0."""
    return _row_extreme(x, "row_max")


def row_min(x: np.ndarray) -> np.ndarray:
    """Minimum of each row -> [M,1], exact; NaN propagates (canonical); -0 beats +0."""
    return _row_extreme(x, "row_min")


def col_sum(x: np.ndarray, binary: bool = False) -> np.ndarray:
    """Sum of each column of x [M,N] -> [1,N], each '+' one IEEE add in the operand dtype (int32 wraps), in the
    order of pto-isa's TCOLSUM (include/pto/npu/a2a3/TColSum.hpp):
      sequential: s = r_0, then s = s + r_i for i = 1 .. M-1;
      binary (a scratch tile given): t_i = r_{2i} + r_{2i+1} for i < M//2, and if M is odd t_0 = t_0 + r_{M-1};
      then while n = (previous n)//2 > 1: t_i = t_{2i} + t_{2i+1} for i < n//2, and if n is odd
      t_0 = t_0 + t_{n-1}; the result is t_0 (r_0 for one row).
    """
    check_2d("col_sum", x)
    x = np.asarray(x)
    rows = [x[i : i + 1] for i in range(x.shape[0])]
    if x.shape[0] == 0:
        raise ValueError("col_sum: empty columns")
    if len(rows) == 1:
        return np.array(rows[0])
    if not binary:
        acc = rows[0]
        for r in rows[1:]:
            acc = add(acc, r)
        return acc
    tmp = [add(rows[2 * i], rows[2 * i + 1]) for i in range(len(rows) // 2)]
    if len(rows) % 2:
        tmp[0] = add(tmp[0], rows[-1])
    n = len(rows) // 2
    while n > 1:
        for i in range(n // 2):
            tmp[i] = add(tmp[2 * i], tmp[2 * i + 1])
        if n % 2:
            tmp[0] = add(tmp[0], tmp[n - 1])
        n //= 2
    return tmp[0]


def _col_extreme(x: np.ndarray, op: str) -> np.ndarray:
    check_2d(op, x)
    x = np.asarray(x)
    if x.shape[0] == 0:
        raise ValueError(f"{op}: empty columns")
    pick = maximum if op == "col_max" else minimum
    acc = x[0:1]
    for i in range(1, x.shape[0]):
        acc = pick(acc, x[i : i + 1])
    return np.array(acc)


def col_max(x: np.ndarray) -> np.ndarray:
    """Maximum of each column -> [1,N], exact; NaN propagates (canonical); +0 beats -0."""
    return _col_extreme(x, "col_max")


def col_min(x: np.ndarray) -> np.ndarray:
    """Minimum of each column -> [1,N], exact; NaN propagates (canonical); -0 beats +0."""
    return _col_extreme(x, "col_min")
