"""Arithmetic for the references that gives the same bits on every machine and thread count: BLAS sums a
matmul in an order that depends on its kernel (the CPU), and numpy's exp differs by an ulp between its SIMD
paths, so a reference built on them moves a check's errors from machine to machine. Here a matmul is exact
float64 products summed in a fixed order (k = 0, 1, ..., one elementwise multiply-add each), and exp is
rounded once to float32 (float64 exp, within an ulp everywhere; the rare values too close to a float32
rounding boundary for that to decide are redone with the standard library's correctly rounded decimal exp).
Elementwise IEEE operations, sqrt and numpy's pairwise sums are the same everywhere already."""

from __future__ import annotations

import decimal

import numpy as np

ROW_BLOCK = 64  # rows of the right operand widened to float64 at a time
BLOCK_ELEMENTS = 1 << 16  # a block of the result (M x columns) summed at a time: 512 KiB, in the cache
SMALL = 1 << 20  # products M * K * N up to which they are formed at once and summed over k by numpy


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a [M, K] @ b [K, N] in float64, summed over k in order; BF16/FP16/FP32 operands multiply exactly."""
    a64 = np.asarray(a, dtype=np.float64)
    m, n = a64.shape[0], b.shape[1]
    if m * a64.shape[1] * n <= SMALL:  # numpy reduces a middle axis in order
        return (a64[:, :, None] * np.asarray(b, dtype=np.float64)[None, :, :]).sum(axis=1)
    out = np.empty((m, n))
    cols = max(256, BLOCK_ELEMENTS // max(m, 1))
    for c in range(0, n, cols):
        block = np.zeros((m, min(cols, n - c)))
        term = np.empty_like(block)
        for k0 in range(0, b.shape[0], ROW_BLOCK):
            rows = np.asarray(b[k0 : k0 + ROW_BLOCK, c : c + cols], dtype=np.float64)
            for i in range(rows.shape[0]):
                np.multiply(a64[:, k0 + i : k0 + i + 1], rows[i], out=term)
                block += term
        out[:, c : c + cols] = block
    return out


def exp_f32(x: np.ndarray) -> np.ndarray:
    """exp(x) correctly rounded to float32 (x float32 or float64)."""
    x64 = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        y = np.exp(x64)
        y32 = y.astype(np.float32)
    # the float32 on the other side of y, and the rounding boundary between the two (exact in float64)
    finite = np.isfinite(y32) & (y32 != 0)
    toward = np.where(y >= y32, np.float32(np.inf), np.float32(-np.inf))
    other = np.nextafter(y32, toward)
    mid = (y32.astype(np.float64) + other.astype(np.float64)) / 2
    close = finite & np.isfinite(other) & (np.abs(y - mid) <= 4 * np.spacing(np.abs(y)))
    for i in np.flatnonzero(close):
        with decimal.localcontext() as ctx:
            ctx.prec = 60
            exact = decimal.Decimal(float(x64.flat[i])).exp()
            beyond = exact > decimal.Decimal(float(mid.flat[i])) if y.flat[i] >= y32.flat[i] else \
                exact < decimal.Decimal(float(mid.flat[i]))
        if beyond:
            y32.flat[i] = other.flat[i]
    return y32
