"""Matmul with exact products, an exact sum over K and one rounding: float64 dgemm where an exponent-span
certificate proves it exact, a two-band split where one operand spans many binades, and an integer-limb
decomposition otherwise. Never a float32 BLAS call, whose summation order differs between machines.
"""

from __future__ import annotations

import numpy as np

from npusim.dtypes import FLOAT_DTYPES, FP8_DTYPES, np_dtype

from .elementwise import add
from .formats import FMTS, Fmt, bits_of, canonical_nan_f32, dtype_of, round_f64, same_dtype, to_f64


def _global_span(bits: np.ndarray, fmt: Fmt) -> tuple[int, bool]:
    """(span, all finite) of a whole matrix: every element is an integer multiple of 2**unit below
    2**(unit + span), unit being the ulp exponent of the smallest nonzero magnitude (see _exponent_spans)."""
    mag = bits & ~fmt.uint(1 << (fmt.width - 1))
    hi = int(mag.max(initial=0))
    if hi == 0:
        return 0, True
    lo = int((mag - fmt.uint(1)).min()) + 1  # zeros wrap to the maximum and drop out
    e_hi, e_lo = max(hi >> fmt.mbits, 1), max(lo >> fmt.mbits, 1)
    return e_hi - e_lo + fmt.mbits + 1, hi < fmt.inf_bits


def _exponent_spans(bits: np.ndarray, fmt: Fmt, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row (axis=1) or column (axis=0): (span, unit, nonfinite).

    Every finite element is an integer multiple of 2**unit with magnitude < 2**(unit + span): unit is the
    ulp exponent of the smallest nonzero magnitude, span = (exponent field of the largest) - (that of the
    smallest) + mbits + 1 (exponent fields of subnormals count as 1). Zeros are ignored; an all-zero line
    has span 0.
    """
    sign = fmt.uint(1 << (fmt.width - 1))
    mag = bits & ~sign
    hi = mag.max(axis=axis)
    nonfinite = hi >= fmt.inf_bits
    if nonfinite.any():  # rare: ignore inf/NaN elements (their outputs are computed separately)
        mag = np.where(mag >= fmt.inf_bits, fmt.uint(0), mag)
        hi = mag.max(axis=axis)
    lo = (mag - fmt.uint(1)).min(axis=axis) + fmt.uint(1)  # zeros wrap to the maximum and drop out
    any_nonzero = hi != 0
    e_hi = np.maximum((hi >> fmt.mbits).astype(np.int64), 1)
    e_lo = np.maximum((lo >> fmt.mbits).astype(np.int64), 1)
    span = np.where(any_nonzero, e_hi - e_lo + fmt.mbits + 1, 0)
    unit = np.where(any_nonzero, e_lo - fmt.bias - fmt.mbits, 0)
    return span, unit, nonfinite


_DIGIT_BITS = 17  # base of the carry-normalised digits in _exact_dot_limbs: three digits fit in 51 bits


def _split_limbs(t: np.ndarray, count: int, width: int) -> np.ndarray:
    """Base-2**width digits of the integer-valued float64 array t, least significant first: digits in
    [0, 2**width) except the last, which keeps the sign and lies in [-2**width, 2**width) (requires
    |t| < 2**(count * width)). Every step is exact; t is overwritten."""
    down, up = 2.0**-width, 2.0**width
    out = np.empty((count, *t.shape))
    q = np.empty_like(t)
    for i in range(count - 1):
        np.multiply(t, down, out=q)
        np.floor(q, out=q)
        np.multiply(q, up, out=out[i])
        np.subtract(t, out[i], out=out[i])
        t, q = q, t
    out[count - 1] = t
    return out


def _exact_dot_limbs(
    a64: np.ndarray,
    b64: np.ndarray,
    unit_a: np.ndarray,
    unit_b: np.ndarray,
    span_a: np.ndarray,
    span_b: np.ndarray,
) -> np.ndarray:
    """Exact a64 @ b64 (finite) as float64 values that round like the exact sums into any <= 33-bit format.

    Row r of A is an integer (< 2**span_a[r]) times 2**unit_a[r], likewise column c of B. Those integers
    are split into limbs of magnitude <= 2**wa (A) and <= 2**wb (B) with wa + wb + ceil(log2 K) <= 53, so
    every limb product a_i @ b_j is an integer of magnitude <= 2**53, exact in float64 in any summation
    order; all of them come from one dgemm of the stacked limbs. Each limb product is added, at its bit
    offset i*wa + j*wb, into int64 base-2**17 digits, which are then carry-normalised. The three leading
    digits (35..51 bits) with every lower digit folded into a sticky last bit give a float64 whose rounding
    to any format of up to 33 bits of precision equals the rounding of the exact sum.
    """
    m, k = a64.shape
    n = b64.shape[1]
    log2k = max(k - 1, 0).bit_length()
    budget = 53 - log2k  # wa + wb
    if budget < 2:
        raise ValueError(f"matmul: K = {k} is too large for exact summation")
    sa, sb = max(int(span_a.max(initial=0)), 1), max(int(span_b.max(initial=0)), 1)
    # fewest limb products; on a tie, fewer B limbs (B is usually the bigger operand)
    _, nb, wa = min(
        (-(-sa // wa) * -(-sb // (budget - wa)), -(-sb // (budget - wa)), wa) for wa in range(1, budget)
    )
    wb = budget - wa
    na = -(-sa // wa)
    la = _split_limbs(a64 * np.ldexp(1.0, -unit_a)[:, None], na, wa).reshape(na * m, k)
    if nb == 1:  # B's integers fit one limb: use B as is and scale the exact products instead
        prods = (la @ b64) * np.ldexp(1.0, -unit_b)[None, :]
    else:
        lb = _split_limbs(b64 * np.ldexp(1.0, -unit_b)[None, :], nb, wb)
        prods = la @ lb.transpose(1, 0, 2).reshape(k, nb * n)
    prods = prods.astype(np.int64).reshape(na, m, nb, n)
    w = _DIGIT_BITS
    nd = -(-((na - 1) * wa + (nb - 1) * wb + 53 + 1) // w) + 2  # room for every product, carries and sign
    # Digits are kept as a list of [m, n] arrays: numpy is slow on short axes.
    digits = [np.zeros((m, n), dtype=np.int64) for _ in range(nd)]
    for i in range(na):
        for j in range(nb):
            d0, sh = divmod(i * wa + j * wb, w)
            p = prods[i, :, j, :]
            digits[d0] += (p & ((1 << (w - sh)) - 1)) << sh  # p = (p >> (w-sh)) * 2**(w-sh) + low bits
            digits[d0 + 1] += p >> (w - sh)
    mask = (1 << w) - 1

    def normalise(d: list[np.ndarray]) -> None:
        for t in range(nd - 1):
            d[t + 1] += d[t] >> w  # floor division: arithmetic shift
            d[t] &= mask

    normalise(digits)  # the top digit is now 0 or -1: the sign
    negative = digits[-1] < 0
    sign = np.where(negative, -1, 1)
    digits = [d * sign for d in digits]
    normalise(digits)  # the magnitude: every digit in [0, 2**w)
    nonzero = [d != 0 for d in digits]
    top = np.full((m, n), -1)  # index of the leading nonzero digit (-1: the sum is 0)
    for t in range(nd):
        top = np.where(nonzero[t], t, top)
    bottom = np.full((m, n), nd)  # index of the lowest nonzero digit
    for t in reversed(range(nd)):
        bottom = np.where(nonzero[t], t, bottom)
    stacked = np.stack([digits[0], digits[0], *digits]).reshape(nd + 2, m * n)  # digit t is row t + 2
    stacked[:2] = 0
    t, flat = np.maximum(top, 0).reshape(-1), np.arange(m * n)
    lead = (stacked[t + 2, flat] << (2 * w)) | (stacked[t + 1, flat] << w) | stacked[t, flat]
    lead = lead.reshape(m, n) | (bottom < top - 2)  # sticky bit: a nonzero digit below the leading three
    val = np.ldexp(lead.astype(np.float64), (top - 2) * w + unit_a[:, None] + unit_b[None, :])
    return np.where(top < 0, 0.0, np.where(negative, -val, val))


_BELOW_FP32 = np.uint64((1 << 29) - 1)  # the float64 fraction bits below fp32's 23
_HALF_FP32 = np.uint64(1 << 28)  # ... as they are at an fp32 rounding midpoint
_FP32_TINY, _FP32_HUGE = 2.0**-126, 2.0**128  # fp32's normal range


def _two_band_product(a64: np.ndarray, bits_a: np.ndarray, b64: np.ndarray, span_b: np.ndarray, fmt: Fmt,
                      log2k: int) -> np.ndarray | None:
    """Exact a @ b, as float64 values that round to fp32 like the exact sums, when each row of A splits into
    two exponent bands that are each certified exact with every column of B (the common case of one operand
    spanning many binades, e.g. softmax weights or SwiGLU outputs); None when two bands do not suffice.

    Row r's band `hi` holds the elements whose exponent field is within `keep` of the row's largest, `lo` the
    rest: both products are exact float64 dgemms (see matmul's certificate; a row of a product depends on
    that row of A alone), summed by _exact_sum_for_fp32.
    """
    widest = int(span_b.max(initial=0))  # B's widest column
    keep = 53 - log2k - widest - (fmt.mbits + 1)
    if keep < 0:
        return None
    expo = ((bits_a & ~fmt.uint(1 << (fmt.width - 1))) >> fmt.mbits).astype(np.int64)
    in_hi = expo >= expo.max(axis=-1, keepdims=True) - keep
    span_lo, _, _ = _exponent_spans(np.where(in_hi, fmt.uint(0), bits_a), fmt, axis=-1)
    if not (span_lo + widest + log2k <= 53).all():
        return None
    hi = np.where(in_hi, a64, 0.0)
    return _exact_sum_for_fp32(hi @ b64, (a64 - hi) @ b64)


def _exact_sum_for_fp32(c_hi: np.ndarray, c_lo: np.ndarray) -> np.ndarray:
    """c_hi + c_lo (float64 arrays, both exact), as float64 values that round to fp32 like the exact sums: the
    sum s is formed with TwoSum (s rounded to nearest, e the exact error), and where s is exactly an fp32
    rounding midpoint and e != 0 it is moved one float64 ulp towards e, so its fp32 rounding is that of s + e."""
    total = c_hi + c_lo  # TwoSum: total + err == c_hi + c_lo exactly
    back = total - c_hi
    err = (c_hi - (total - back)) + (c_lo - back)
    # An fp32 rounding midpoint in fp32's normal range has its 29 float64 fraction bits below fp32's exactly
    # half set: only such elements, and those outside that range, need the test below (rarely any).
    size = np.abs(total)
    maybe = ((total.view(np.uint64) & _BELOW_FP32) == _HALF_FP32) | (size < _FP32_TINY) | ~(size < _FP32_HUGE)
    maybe &= err != 0
    if not maybe.any():
        return total
    at, t, e = np.nonzero(maybe), total[maybe], err[maybe]
    with np.errstate(over="ignore"):  # beyond fp32 (or a row not exact): no midpoint to move off
        r = t.astype(np.float32)
    r64 = r.astype(np.float64)
    other = np.nextafter(r, np.where(t > r64, np.float32(np.inf), np.float32(-np.inf))).astype(np.float64)
    midpoint = (r64 != t) & ((r64 + other) * 0.5 == t)
    total[at] = np.where(midpoint, np.nextafter(t, np.where(e > 0, np.inf, -np.inf)), t)
    return total


def _nonfinite_dot(a64: np.ndarray, b64: np.ndarray) -> np.ndarray:
    """IEEE result class of dot products involving inf/NaN: NaN (any NaN product, inf*0, or +inf + -inf),
    else ±inf. Order-independent, so it needs no summation."""
    with np.errstate(invalid="ignore", over="ignore"):
        prods = a64[:, :, None] * b64[None, :, :]
    nan = np.isnan(prods).any(axis=1)
    pinf = (prods == np.inf).any(axis=1)
    ninf = (prods == -np.inf).any(axis=1)
    out = np.where(pinf, np.inf, np.where(ninf, -np.inf, 0.0))
    return np.where(nan | (pinf & ninf), np.nan, out)


def _matmul_int32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        r = a.astype(np.int64).astype(np.uint64) @ b.astype(np.int64).astype(np.uint64)  # wraps mod 2**64
    return (r & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.int32)


def matmul(a: np.ndarray, b: np.ndarray, *, a_trans: bool = False, b_trans: bool = False,
           out_dtype: str = "fp32") -> np.ndarray:
    """a [M,K] @ b [K,N] (a is [K,M] with a_trans, b is [N,K] with b_trans): exact products, exact K-sum, ONE
    rounding (nearest-even) to out_dtype ('fp32', 'bf16' or 'fp16'). Operands: both bf16, fp16, fp32 or of
    one FP8 format (widened exactly to fp16: every fp8e4m3fn and fp8e5m2 value is an fp16 value, so the fp16
    path computes their exact product sums); int8 x int8 and int32 x int32 need out_dtype='int32' (the sum
    wraps modulo 2**32). An exact zero sum is +0; NaN results are canonical.

    Fast path: float64 dgemm, proven exact per output element by the certificate
    span_a[r] + span_b[c] + ceil(log2 K) <= 53 (every partial sum is then an integer multiple of
    2**(unit_a + unit_b) below 2**53 of those units, so any summation order is exact). Other elements use an
    exact limb decomposition; elements touching inf/NaN use the IEEE result class.
    """
    a, b = np.asarray(a), np.asarray(b)
    dt = same_dtype("matmul", a, b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul: operands must be 2-D, got {list(a.shape)} and {list(b.shape)}")
    if a_trans:
        a = a.T
    if b_trans:
        b = b.T
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: inner dimensions differ: a is {list(a.shape)}, b is {list(b.shape)}")
    if dt in ("int8", "int32"):
        if out_dtype != "int32":
            raise ValueError(f"matmul: {dt} operands need out_dtype='int32'")
        return _matmul_int32(a, b)
    if dt in FP8_DTYPES:
        a, b, dt = a.astype(np.float16), b.astype(np.float16), "fp16"
    if out_dtype not in FLOAT_DTYPES:
        raise ValueError(f"matmul: out_dtype {out_dtype!r} not supported for {dt} operands")
    (m, k), n = a.shape, b.shape[1]
    if k == 0:
        return np.zeros((m, n), dtype=np_dtype(out_dtype))
    fmt = FMTS[dt]
    bits_a, bits_b = bits_of(a, dt), bits_of(b, dt)
    log2k = (k - 1).bit_length()
    a64, b64 = to_f64(a), to_f64(b)
    span, finite = _global_span(bits_a, fmt)
    if finite:
        span_b_all, finite = _global_span(bits_b, fmt)
        span += span_b_all
    if finite and span + log2k <= 53:
        # Hot path: the whole-matrix spans bound every row's and column's span, so every element is certified.
        c = a64 @ b64
        c += 0.0  # an exact zero sum is +0 (-0 + 0 = +0), whatever order produced it
        if out_dtype == "fp32":
            with np.errstate(over="ignore"):
                return c.astype(np.float32)  # IEEE float64 -> float32: one nearest-even rounding everywhere
        return round_f64(c, out_dtype, "rint")
    span_a, unit_a, bad_a = _exponent_spans(bits_a, fmt, axis=1)
    span_b, unit_b, bad_b = _exponent_spans(bits_b, fmt, axis=0)
    any_bad = bad_a.any() or bad_b.any()
    if any_bad:
        a64f = np.where(np.isfinite(a64), a64, 0.0)
        b64f = np.where(np.isfinite(b64), b64, 0.0)
    else:
        a64f, b64f = a64, b64
    c = a64f @ b64f
    need = (span_a[:, None] + span_b[None, :] + log2k) > 53  # not certified exact
    if any_bad:
        need &= ~bad_a[:, None] & ~bad_b[None, :]
    if need.any() and not any_bad and out_dtype == "fp32":
        split = _two_band_product(a64, bits_a, b64, span_b, fmt, log2k)
        if split is not None:
            c = np.where(need, split, c)
            need[:] = False
    if need.any():
        rows, cols = np.nonzero(need.any(axis=1))[0], np.nonzero(need.any(axis=0))[0]
        rsel = slice(None) if len(rows) == m else rows  # avoid copying whole operands
        csel = slice(None) if len(cols) == n else cols
        exact = _exact_dot_limbs(
            a64f[rsel], b64f[:, csel], unit_a[rsel], unit_b[csel], span_a[rsel], span_b[csel]
        )
        block = np.ix_(rows, cols)
        c[block] = np.where(need[block], exact, c[block])
    if any_bad:
        rows = np.nonzero(bad_a)[0]
        c[rows] = _nonfinite_dot(a64[rows], b64)
        cols = np.nonzero(bad_b)[0]
        c[:, cols] = _nonfinite_dot(a64, b64[:, cols])
    c += 0.0  # an exact zero sum is +0 (-0 + 0 = +0), whatever order produced it
    if out_dtype == "fp32":
        with np.errstate(over="ignore"):
            # IEEE float64 -> float32 conversion is one nearest-even rounding on every machine.
            return canonical_nan_f32(c.astype(np.float32))
    return round_f64(c, out_dtype, "rint")


_SPARSE_LO = 8  # matmul_many multiplies the lo elements one by one when they are at most 1/8 of their rows


def _stack_spans(bits: np.ndarray, fmt: Fmt) -> tuple[np.ndarray, np.ndarray]:
    """Per matrix of a stack [P, ...]: (span, nonfinite), the span as _exponent_spans gives it for the whole
    matrix as one line. Four reductions of the bits as unsigned and as signed integers, with no temporary the
    size of the stack: sign-magnitude patterns order as unsigned integers with the sign set last, and as signed
    ones with it set first, so their extremes are each sign's largest and smallest magnitudes. A matrix whose
    smallest magnitude is a zero has its nonzero one found by _exponent_spans."""
    flat = bits.reshape(len(bits), -1)
    signed = flat.view(np.dtype(f"int{fmt.width}"))
    half = 1 << (fmt.width - 1)
    u_max, u_min = flat.max(axis=1).astype(np.int64), flat.min(axis=1).astype(np.int64)
    s_max, s_min = signed.max(axis=1).astype(np.int64), signed.min(axis=1).astype(np.int64)
    hi = np.maximum(np.maximum(s_max, 0), u_max - half)  # the largest magnitude of either sign
    lo = np.minimum(np.where(u_min < half, u_min, half), np.where(s_min < 0, s_min + half, half))
    nonfinite = hi >= fmt.inf_bits
    span = np.maximum(hi >> fmt.mbits, 1) - np.maximum(lo >> fmt.mbits, 1) + fmt.mbits + 1
    span = np.where(hi == 0, 0, span)
    zeros = np.nonzero((lo == 0) & (hi != 0) & ~nonfinite)[0]  # a zero is the smallest magnitude
    if len(zeros):
        span[zeros] = _exponent_spans(flat[zeros], fmt, axis=1)[0]
    return span, nonfinite


def matmul_many(a: np.ndarray, b: np.ndarray, *, a_trans: bool = False, b_trans: bool = False,
                out_dtype: str = "fp32") -> np.ndarray:
    """matmul(a[i], b[i]) for every i of stacks a [B, M, K] and b [B, K, N] (or transposed), the same bits, with
    one float64 dgemm for the whole stack.

    Row r of A's pair i splits into two exponent bands: `hi`, the elements whose exponent field is within
    `keep` of the row's largest, where keep = 53 - ceil(log2 K) - span(B_i) - (mbits + 1), and `lo`, the rest.
    hi @ B_i is exact in float64 in any summation order (matmul's certificate: the hi band spans at most
    keep + mbits + 1 bits), and is the stack's one dgemm; a matrix pair that matmul's certificate covers whole
    has every element in hi. The few lo elements (the tiny values of activations and weights) are multiplied
    one by one and summed per row, exact when the row's lo band passes the same certificate, and each row's
    two parts are summed by _exact_sum_for_fp32. A pair with inf/NaN, and a row whose lo band is too wide,
    goes through matmul."""
    a, b = np.asarray(a), np.asarray(b)
    dt = same_dtype("matmul", a, b)
    if a_trans:
        a = a.swapaxes(1, 2)
    if b_trans:
        b = b.swapaxes(1, 2)
    if dt not in ("bf16", "fp16", "fp32") or out_dtype != "fp32" or a.shape[2] != b.shape[1] or a.shape[2] == 0:
        return np.stack([matmul(x, y, out_dtype=out_dtype) for x, y in zip(a, b, strict=True)])
    fmt = FMTS[dt]
    log2k = (a.shape[2] - 1).bit_length()
    span_b, bad_b = _stack_spans(bits_of(b, dt), fmt)
    mag_a = bits_of(a, dt) & ~fmt.uint(1 << (fmt.width - 1))
    top = (mag_a.max(axis=-1, keepdims=True) >> fmt.mbits).astype(np.int64)  # each row's largest exponent field
    finite = ~bad_b & ~(top == fmt.exp_field_max).any(axis=(1, 2))
    keep = 53 - log2k - span_b - (fmt.mbits + 1)
    lo_band = (mag_a < (top - keep[:, None, None]) << fmt.mbits) & (mag_a != 0)
    if not finite.all():
        lo_band &= finite[:, None, None]
    at = np.flatnonzero(lo_band)  # in order: each row's lo elements together
    line, col = np.divmod(at, a.shape[2])
    pair, row = np.divmod(line, a.shape[1])
    # (a64 is changed in place, through a flat view: to_f64 of a transposed `a` keeps its strides, so copy it)
    a64, b64 = np.ascontiguousarray(to_f64(a)), to_f64(b)
    flat = a64.reshape(-1)
    lo = flat[at]
    flat[at] = 0.0  # the hi band
    with np.errstate(invalid="ignore", over="ignore"):  # (inf/NaN pairs are recomputed below)
        c = a64 @ b64
    rows_ok = np.ones(a.shape[:2], dtype=bool)
    if len(at):
        first = np.flatnonzero(np.concatenate([[True], line[1:] != line[:-1]]))  # each lo row's first element
        lp, lr = pair[first], row[first]
        e = np.maximum(mag_a.reshape(-1)[at] >> fmt.mbits, 1).astype(np.int64)
        span_lo = np.maximum.reduceat(e, first) - np.minimum.reduceat(e, first) + fmt.mbits + 1
        rows_ok[lp, lr] = (keep[lp] >= 0) & (span_lo + span_b[lp] + log2k <= 53)
        if len(at) * _SPARSE_LO <= len(first) * a.shape[2]:
            c_lo = np.add.reduceat(lo[:, None] * b64[pair, col], first, axis=0)
        else:  # a wide lo band (e.g. SwiGLU outputs, softmax weights): one more dgemm
            lows = np.zeros_like(a64)
            lows.reshape(-1)[at] = lo
            c_lo = (lows @ b64)[lp, lr]
        c[lp, lr] = _exact_sum_for_fp32(c[lp, lr], c_lo)
    c += 0.0  # an exact zero sum is +0 (-0 + 0 = +0), whatever order produced it
    with np.errstate(over="ignore"):
        out = c.astype(np.float32)  # IEEE float64 -> float32: one nearest-even rounding everywhere
    for i in np.nonzero(~finite)[0]:
        out[i] = matmul(a[i], b[i])
    for i in np.nonzero(~rows_ok.all(axis=1) & finite)[0]:  # rows two bands do not suffice for: matmul's limbs
        out[i, ~rows_ok[i]] = matmul(a[i][~rows_ok[i]], b[i])
    return out


def _acc_dtype(acc: np.ndarray, a: np.ndarray) -> str:
    """The accumulator dtype of matmul_acc for operands like a (int32 for int8/int32, else fp32), checked."""
    want = "int32" if dtype_of(a) in ("int8", "int32") else "fp32"
    if dtype_of(acc) != want:
        raise ValueError(f"matmul_acc: acc must be {want}, got {dtype_of(acc)}")
    return want


def _check_shapes(acc: np.ndarray, r: np.ndarray) -> None:
    if np.shape(acc) != r.shape:
        raise ValueError(f"matmul_acc: acc is {list(np.shape(acc))}, matmul result is {list(r.shape)}")


def _accumulate(acc: np.ndarray, r: np.ndarray) -> np.ndarray:
    _check_shapes(acc, r)
    return add(acc, r)


def matmul_acc(acc: np.ndarray, a: np.ndarray, b: np.ndarray, *, a_trans: bool = False,
               b_trans: bool = False) -> np.ndarray:
    """acc + matmul(a, b) in fp32: the matmul result is rounded to fp32, then added to acc (two roundings);
    for int8 operands in int32, wrapping."""
    want = _acc_dtype(acc, a)
    return _accumulate(acc, matmul(a, b, a_trans=a_trans, b_trans=b_trans, out_dtype=want))


_STACK_BYTES = 2 << 20  # matmul_acc_chain: the float64 right operands stacked for one matmul_many


def matmul_acc_chain(acc: np.ndarray, lhs: list[np.ndarray], rhs: list[np.ndarray], *, a_trans: bool = False,
                     b_trans: bool = False) -> np.ndarray:
    """matmul_acc(acc, lhs[i], rhs[i]) applied for i in order, each result the next acc: the same bits. The
    products do not depend on acc, so they are computed together (matmul_many); the additions run in turn."""
    if not lhs:
        return acc
    want = _acc_dtype(acc, lhs[0])
    if any(x.shape != lhs[0].shape for x in lhs) or any(y.shape != rhs[0].shape for y in rhs):
        products = [matmul(x, y, a_trans=a_trans, b_trans=b_trans, out_dtype=want)
                    for x, y in zip(lhs, rhs, strict=True)]
    else:  # a few pairs at a time: the float64 temporaries of a stack stay in cache
        step = max(1, _STACK_BYTES // (8 * rhs[0].size))
        products = [r for i in range(0, len(lhs), step)
                    for r in matmul_many(np.stack(lhs[i:i + step]), np.stack(rhs[i:i + step]), a_trans=a_trans,
                                         b_trans=b_trans, out_dtype=want)]
    if want != "fp32":
        for r in products:
            acc = _accumulate(acc, r)
        return acc
    total = np.array(acc, dtype=np.float32)  # (a copy: the caller's acc is not changed)
    with np.errstate(all="ignore"):  # IEEE fp32 additions in turn, as add() makes them
        for r in products:
            _check_shapes(total, r)
            np.add(total, r, out=total)
    return canonical_nan_f32(total)  # (a NaN stays NaN through the additions: canonical once is as each time)
