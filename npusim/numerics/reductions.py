"""Row reductions: `row_sum` as a fixed, documented pairwise tree, `row_max` and `row_min` exact."""

from __future__ import annotations

import numpy as np

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
