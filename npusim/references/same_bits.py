"""Arithmetic for the references that gives the same bits on every machine and thread count: BLAS sums a
matmul in an order that depends on its kernel (the CPU), and numpy's exp differs by an ulp between its SIMD
paths, so a reference built on them moves a check's errors from machine to machine.

A matmul multiplies exactly in float64. A small one sums over k in order (k = 0, 1, ..., one elementwise
multiply-add each). A large one is split so that BLAS can do it: the rows of the left operand into slices of
SLICE_BITS-bit integers (times a power of two per row and slice), the right operand into its elements within
a band of binades below its largest (dense) and the rest (sparse). Every partial sum of a slice times the
dense band is then an integer below 2**53 of one unit, so a float64 dgemm gets it exactly in any summation
order; the sparse rest is summed by numpy's bincount, in order; the pieces are added in a fixed order.
exp is rounded once to float32 (float64 exp, within an ulp everywhere; the rare values too close to a
float32 rounding boundary for that to decide are redone with the standard library's correctly rounded
decimal exp). Elementwise IEEE operations, sqrt and numpy's pairwise sums are the same everywhere already."""

from __future__ import annotations

import decimal

import ml_dtypes
import numpy as np

ROW_BLOCK = 64  # rows of the right operand widened to float64 at a time (the in-order sum)
BLOCK_ELEMENTS = 1 << 16  # a block of the result (M x columns) summed at a time: 512 KiB, in the cache
SMALL = 1 << 20  # products M * K * N up to which they are formed at once and summed over k by numpy
SLICE_BITS = 16  # bits of each slice of a left-operand row (the sliced sum)
MAX_SLICES = 6  # a left operand whose rows need more slices (a range of over 96 bits) is summed in order
BLOCK = (256, 4096)  # rows x columns of the right operand widened to float64 at a time (8 MiB; the fastest
# of 80 x 25600 ... 8192 x 256 on an 8192 x 25600 BF16 weight, 1.9 ns per element)
# the formats the sliced sum bands by exponent field: (unsigned view, mantissa bits, exponent field of inf/NaN)
_FIELDS = {np.dtype(ml_dtypes.bfloat16): (np.uint16, 7, 0xFF), np.dtype(np.float16): (np.uint16, 10, 0x1F),
           np.dtype(np.float32): (np.uint32, 23, 0xFF)}


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a [M, K] @ b [K, N] in float64 from exact products, the same bits everywhere (BF16/FP16/FP32 operands
    multiply exactly)."""
    a64 = np.asarray(a, dtype=np.float64)
    if a64.shape[0] * a64.shape[1] * b.shape[1] <= SMALL:  # numpy reduces a middle axis in order
        return (a64[:, :, None] * np.asarray(b, dtype=np.float64)[None, :, :]).sum(axis=1)
    sliced = _sliced(a64, np.asarray(b))
    return sliced if sliced is not None else _in_order(a64, b)


def _in_order(a64: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a64 @ b summed over k in order, a block of the result at a time."""
    m, n = a64.shape[0], b.shape[1]
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


def _row_slices(a64: np.ndarray) -> list[np.ndarray] | None:
    """a64 as a sum of slices, slice p of row i an integer of magnitude <= 2**SLICE_BITS times
    2**(X_i - SLICE_BITS * (p + 1)), X_i the row's frexp exponent (|a| < 2**X_i); None if it needs more than
    MAX_SLICES or leaves float64's normal range. Each step is exact: scaling by a power of two, rint, and
    the remainder (at most half a unit, a multiple of the element's own ulp)."""
    if not np.isfinite(a64).all():
        return None
    exponents = np.frexp(a64)[1].astype(np.int64)
    top = np.where(a64 != 0, exponents, -(1 << 40)).max(axis=1, keepdims=True)
    top[top == -(1 << 40)] = 0  # a row of zeros
    if top.min() - SLICE_BITS * MAX_SLICES < -1000 or top.max() > 1000:
        return None
    rest, slices = a64.copy(), []
    for p in range(MAX_SLICES):
        if not rest.any():
            return slices
        unit = np.ldexp(1.0, top - SLICE_BITS * (p + 1))
        piece = np.rint(rest / unit) * unit
        rest -= piece
        slices.append(piece)
    return None if rest.any() else slices


def _largest_magnitude(bits: np.ndarray, mag_mask: np.unsignedinteger) -> int:
    """The largest magnitude field of sign-magnitude bit patterns, from two reductions and no temporary (the
    operand can be a weight of hundreds of MB): the largest pattern is that of the largest negative number
    when there is one; the largest as signed integers, that of the largest positive."""
    if bits.size == 0:
        return 0
    top = int(bits.max())
    positive = int(bits.view(np.dtype(f"i{bits.itemsize}")).max())
    return max(top & int(mag_mask) if top > int(mag_mask) else 0, max(positive, 0))


def _sliced(a64: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """a64 @ b by exact slice dgemms (see the module's docstring); None for operands it does not split
    (float64 or integer b, inf/NaN, too wide a range), which are summed in order instead."""
    spec = _FIELDS.get(b.dtype)
    slices = _row_slices(a64) if spec is not None else None
    if spec is None or slices is None:
        return None
    uint, mbits, inf_field = spec
    (m, k), n = a64.shape, b.shape[1]
    # a slice (<= 2**SLICE_BITS) times a dense element (< 2**(band + mbits) of its band's unit), summed over K
    band = 53 - SLICE_BITS - mbits - max(k - 1, 0).bit_length()
    bits = b.view(uint)
    mag_mask = uint((1 << (8 * b.itemsize - 1)) - 1)
    field_top = _largest_magnitude(bits, mag_mask) >> mbits
    if band < 1 or field_top >= inf_field:
        return None
    # magnitudes at or above `low` are dense: exponent fields within `band` of the largest (subnormals have
    # the unit of field 1); `low - 1` below, as magnitude - 1 (zeros wrap to the top and drop out)
    below = uint((max(field_top - band + 1, 1) << mbits) - 1 if field_top > band else 0)
    lhs = np.concatenate(slices) if slices else np.zeros((0, k))
    dense, sparse = np.zeros((lhs.shape[0], n)), np.zeros((m, n))
    size = BLOCK[0] * BLOCK[1]
    b64, mags, small = np.empty(size), np.empty(size, dtype=uint), np.empty(size, dtype=bool)
    for c in range(0, n, BLOCK[1]):
        for r in range(0, k, BLOCK[0]):
            h, w = min(BLOCK[0], k - r), min(BLOCK[1], n - c)
            block, mag, few = (x[: h * w].reshape(h, w) for x in (b64, mags, small))  # contiguous
            np.copyto(block, b[r : r + h, c : c + w], casting="unsafe")  # exact: every value is a float64
            np.bitwise_and(bits[r : r + h, c : c + w], mag_mask, out=mag)
            np.less(np.subtract(mag, uint(1), out=mag), below, out=few)
            if few.any():
                kk, jj = np.divmod(np.flatnonzero(few), w)  # (2-D nonzero is 5x slower)
                values = block[kk, jj]
                block[kk, jj] = 0.0
                for i in range(m):  # numpy's bincount sums in the order given
                    sparse[i, c : c + w] += np.bincount(jj, weights=a64[i, r + kk] * values, minlength=w)
            dense[:, c : c + w] += lhs[:, r : r + h] @ block  # exact partial sums, so an exact running sum
    out = np.zeros((m, n))
    for p in range(len(slices)):  # a fixed order
        out += dense[p * m : (p + 1) * m]
    out += sparse
    return out + 0.0  # an exact zero sum is +0, whatever order produced it


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
