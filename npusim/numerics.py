"""Bit-exact numerics of the simulated NPU: casts, elementwise ops, matmul, row reductions.

Every function is pure, takes numpy arrays in their program dtype (bf16 = ``ml_dtypes.bfloat16``,
fp16 = ``np.float16``, fp32 = ``np.float32``, int32 = ``np.int32``) and returns a new array. Results are
bit-identical on every machine: nothing depends on BLAS summation order, SIMD width or libm accuracy.

Contract (DESIGN.md §4):

* ``cast`` rounds by mode on the bit patterns: ``round`` = nearest, ties away from zero (the device default,
  PyPTO CAST_ROUND), ``rint`` = nearest, ties to even, ``floor``, ``ceil``, ``trunc``. NaN stays NaN (quiet
  bit set, sign and the top payload bits that fit kept), ±inf and ±0 keep their sign, subnormals are exact.
  Overflow: ``round``/``rint`` give ±inf at and beyond the rounding threshold, ``trunc`` gives ±max finite,
  ``floor`` gives -inf for negatives and +max for positives, ``ceil`` the mirror. Float -> int32: NaN -> 0
  and out-of-range values and ±inf saturate to INT32_MIN/INT32_MAX (npusim's choice).
* Elementwise ``add sub mul div sqrt`` are IEEE in the operand dtype; bf16/fp16 are computed in fp32 and
  rounded once to nearest-even, which is correctly rounded because fp32 has 24 >= 2p+2 bits (p = 8 for
  bf16, 11 for fp16; Figueroa's double-rounding theorem). ``maximum``/``minimum`` are IEEE 754-2019
  maximum/minimum: NaN propagates and -0 < +0 (numpy's sign of a zero result depends on argument order).
  ``exp`` and ``rsqrt`` are correctly rounded (nearest-even) results of the exact function: computed in
  float64 and rounded once; the rare float64 results within 64 float64-ulps of a rounding midpoint are
  resolved exactly (``decimal`` for exp, rational arithmetic for rsqrt), so libm differences cannot show.
  ``recip(x)`` is ``1 / x`` in the operand dtype.
* NaN policy: every NaN *produced by arithmetic* (elementwise ops, reductions, matmul) is the canonical
  quiet NaN: fp32 0x7fc00000, bf16 0x7fc0, fp16 0x7e00 (x86 would give 0xffc00000 for inf - inf, ARM
  0x7fc00000). ``neg`` is a sign-bit flip and ``cast`` keeps payloads, as described above.
* ``matmul``: every product exact, the sum over K exact, one rounding (nearest-even) to ``out_dtype``.
  An exact zero sum is +0 (the accumulator starts at +0).
* ``row_sum`` uses a fixed pairwise tree in the operand dtype's arithmetic: pad each row with -0.0 to a
  multiple of 64 columns; add 64-column chunks pairwise (2i + 2i+1, an odd last chunk carried) until one
  chunk remains; then add adjacent lanes (2i + 2i+1) six times (see ``row_sum``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from npusim.dtypes import FLOAT_DTYPES, dtype_name, np_dtype

CAST_MODES = ("round", "rint", "floor", "ceil", "trunc")
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
BINARY_OPS = ("add", "sub", "mul", "div", "maximum", "minimum")
EXPAND_OPS = ("add", "sub", "mul", "div")
PAD_VALUES = ("zero", "max", "min")
ROW_SUM_LANES = 64  # the width of the final in-lane tree of row_sum


class _Fmt(NamedTuple):
    """An IEEE binary format: total width, exponent bits and stored mantissa bits."""

    width: int
    ebits: int
    mbits: int
    uint: type

    @property
    def bias(self) -> int:
        return (1 << (self.ebits - 1)) - 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def exp_field_max(self) -> int:
        return (1 << self.ebits) - 1

    @property
    def inf_bits(self) -> int:
        return self.exp_field_max << self.mbits

    @property
    def max_bits(self) -> int:
        return self.inf_bits - 1

    @property
    def quiet_bit(self) -> int:
        return 1 << (self.mbits - 1)

    @property
    def canonical_nan(self) -> int:
        return self.inf_bits | self.quiet_bit


_FMTS: dict[str, _Fmt] = {
    "bf16": _Fmt(16, 8, 7, np.uint16),
    "fp16": _Fmt(16, 5, 10, np.uint16),
    "fp32": _Fmt(32, 8, 23, np.uint32),
}
_F64_FRAC_MASK = np.uint64((1 << 52) - 1)
_F64_HIDDEN = np.uint64(1 << 52)
_NEAR_MIDPOINT_ULPS = 64  # float64 ulps: far more than any libm exp/sqrt error


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------


def _name(x: np.ndarray) -> str:
    try:
        return dtype_name(np.asarray(x).dtype)
    except KeyError:
        raise ValueError(f"unsupported array dtype {np.asarray(x).dtype}") from None


def _same_dtype(op: str, *arrays: np.ndarray) -> str:
    names = [_name(a) for a in arrays]
    if any(n != names[0] for n in names):
        raise ValueError(f"{op}: operands have different dtypes {names}")
    return names[0]


def _float_only(op: str, dt: str) -> None:
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{op}: not defined for {dt}")


def _bits(x: np.ndarray, dt: str) -> np.ndarray:
    """The bit patterns of a float array (a view: same itemsize, any strides)."""
    return np.asarray(x).view(_FMTS[dt].uint)


def _from_bits(bits: np.ndarray, dt: str) -> np.ndarray:
    return np.ascontiguousarray(bits.astype(_FMTS[dt].uint)).view(np_dtype(dt))


def _canonical_nan_f32(r: np.ndarray) -> np.ndarray:
    """Replace every NaN of a float32 array (in place, returned) by 0x7fc00000."""
    nan = np.isnan(r)
    if nan.any():
        r.view(np.uint32)[nan] = _FMTS["fp32"].canonical_nan
    return r


def _to_f64(x: np.ndarray) -> np.ndarray:
    """Exact widening of any program-dtype array to float64 (NaN payloads are not kept)."""
    with np.errstate(invalid="ignore"):  # signalling NaNs warn
        return np.asarray(x).astype(np.float64)


def _to_f32(x: np.ndarray) -> np.ndarray:
    """Exact widening of a bf16/fp16/fp32 array to fp32 (NaN payloads are irrelevant to arithmetic here)."""
    with np.errstate(invalid="ignore"):  # signalling NaNs warn
        return np.asarray(x, dtype=np.float32)


# ----------------------------------------------------------------------------------------------------------
# rounding a float64 to a narrower format, on the bits
# ----------------------------------------------------------------------------------------------------------


class _Parts(NamedTuple):
    """|v| = (n + rem / 2**shift) * 2**qexp, with n an integer and rem < 2**shift (all exact)."""

    neg: np.ndarray  # sign bit
    special: np.ndarray  # ±inf or NaN
    n: np.ndarray  # uint64: |v| truncated to the target quantum, in quanta
    rem: np.ndarray  # uint64: the discarded low bits of the float64 significand
    half: np.ndarray  # uint64: 2**(shift-1), the discarded bits' value of half a quantum
    qexp: np.ndarray  # int64: exponent of the target quantum (ulp) at |v|


def _parts(v: np.ndarray, fmt: _Fmt | None) -> _Parts:
    """Split float64 `v` at the quantum of `fmt` at |v| (fmt None = integers, quantum 1)."""
    u = np.ascontiguousarray(v, dtype=np.float64).view(np.uint64)
    neg = (u >> np.uint64(63)).astype(bool)
    biased = ((u >> np.uint64(52)) & np.uint64(0x7FF)).astype(np.int64)
    frac = u & _F64_FRAC_MASK
    sig = np.where(biased > 0, frac | _F64_HIDDEN, frac)  # |v| = sig * 2**(eeff - 1075)
    eeff = np.maximum(biased, 1)
    # floor(log2|v|) is eeff - 1023 for normals; float64 subnormals are far below every target's emin.
    qexp = np.zeros_like(eeff) if fmt is None else np.maximum(eeff - 1023, fmt.emin) - fmt.mbits
    # shift >= 1 for every finite value that is not already an integer multiple of a larger power of two;
    # shifts beyond 60 all mean "below half a quantum": the 53-bit significand is smaller than 2**59.
    shift = np.clip(qexp - (eeff - 1075), 1, 60).astype(np.uint64)
    n = sig >> shift
    rem = sig & ((np.uint64(1) << shift) - np.uint64(1))
    half = np.uint64(1) << (shift - np.uint64(1))
    return _Parts(neg, biased == 0x7FF, n, rem, half, qexp)


def _round_up(p: _Parts, mode: str, direction: np.ndarray | None = None) -> np.ndarray:
    """Whether the magnitude rounds up (away from zero) by one quantum under `mode`.

    `direction` (nearest modes only): sign of (exact value - v) where v is exactly a midpoint; it breaks
    the tie the way the exact value would.
    """
    nonzero = p.rem != 0
    if mode == "round":
        up = p.rem >= p.half
    elif mode == "rint":
        up = (p.rem > p.half) | ((p.rem == p.half) & ((p.n & np.uint64(1)) == 1))
    elif mode == "trunc":
        up = np.zeros(p.n.shape, dtype=bool)
    elif mode == "floor":
        up = p.neg & nonzero
    elif mode == "ceil":
        up = ~p.neg & nonzero
    else:
        raise ValueError(f"unknown cast mode {mode!r}; expected one of {CAST_MODES}")
    if direction is not None:
        if mode not in ("round", "rint"):
            raise ValueError("a tie direction only applies to nearest rounding")
        mag_dir = np.where(p.neg, -direction, direction)
        up = np.where((p.rem == p.half) & (mag_dir != 0), mag_dir > 0, up)
    return up


def _overflow_is_inf(neg: np.ndarray, mode: str) -> np.ndarray | bool:
    """Whether a magnitude beyond max finite becomes inf (else max finite) under `mode`."""
    if mode in ("round", "rint"):
        return True
    if mode == "trunc":
        return False
    if mode == "floor":
        return neg
    return ~neg  # ceil


def _round_f64(v: np.ndarray, dt: str, mode: str, direction: np.ndarray | None = None) -> np.ndarray:
    """Round float64 `v` once, by `mode`, to float dtype `dt`; NaN becomes the canonical NaN of `dt`."""
    v = np.asarray(v, dtype=np.float64)
    if dt == "fp32" and mode == "rint" and direction is None:
        with np.errstate(over="ignore"):  # IEEE float64 -> float32 conversion: one nearest-even rounding
            return _canonical_nan_f32(v.astype(np.float32))
    fmt = _FMTS[dt]
    p = _parts(v, fmt)
    up = _round_up(p, mode, direction)
    # bits of n * 2**qexp: the quantum's exponent field (0 for subnormals) shifted in, plus n (which carries
    # into the exponent field on its own when n reaches 2**(mbits+1), and into the inf pattern on overflow).
    n = (p.n + up).astype(np.int64)
    mag = ((p.qexp - (fmt.emin - fmt.mbits)) << fmt.mbits) + n
    mag = np.where(
        mag >= fmt.inf_bits, np.where(_overflow_is_inf(p.neg, mode), fmt.inf_bits, fmt.max_bits), mag
    )
    mag = np.where(p.special, fmt.inf_bits, mag)
    bits = mag | (p.neg.astype(np.int64) << (fmt.width - 1))
    bits = np.where(np.isnan(v), fmt.canonical_nan, bits)
    return _from_bits(bits, dt).reshape(v.shape)


def _round_f64_to_int32(v: np.ndarray, mode: str) -> np.ndarray:
    """Round float64 `v` to int32 by `mode`; NaN -> 0, out of range and ±inf saturate."""
    v = np.asarray(v, dtype=np.float64)
    p = _parts(v, None)
    mag = np.minimum(p.n + _round_up(p, mode), np.uint64(1 << 40)).astype(np.int64)  # 2**40 saturates too
    val = np.clip(np.where(p.neg, -mag, mag), INT32_MIN, INT32_MAX)
    val = np.where(p.special, np.where(p.neg, INT32_MIN, INT32_MAX), val)
    val = np.where(np.isnan(v), 0, val)
    return val.astype(np.int32).reshape(v.shape)


def _round_f64_to(v: np.ndarray, dt: str, mode: str) -> np.ndarray:
    return _round_f64_to_int32(v, mode) if dt == "int32" else _round_f64(v, dt, mode)


def _nan_bits(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """The `dst` NaN for each `src` NaN bit pattern: sign and top payload bits kept, quiet bit set."""
    s, d = _FMTS[src], _FMTS[dst]
    b = _bits(x, src).astype(np.uint64)
    sign = (b >> np.uint64(s.width - 1)) & np.uint64(1)
    payload = b & np.uint64((1 << s.mbits) - 1)
    shift = s.mbits - d.mbits
    payload = payload >> np.uint64(shift) if shift >= 0 else payload << np.uint64(-shift)
    return (sign << np.uint64(d.width - 1)) | np.uint64(d.inf_bits | d.quiet_bit) | payload


def _fp32_to_bf16(x: np.ndarray, mode: str) -> np.ndarray:
    """fp32 -> bf16 by `mode` on the bits (same exponent range: keep the top 16 bits, round on the low 16).

    Rounding up the largest finite magnitude carries into the inf pattern; a finite input truncated never
    exceeds max finite, so overflow behaves as the contract says. NaNs are fixed up by the caller.
    """
    u = np.asarray(x).view(np.uint32)
    neg = u >= np.uint32(0x80000000)
    keep = (u & np.uint32(0x7FFFFFFF)) >> np.uint32(16)
    low = u & np.uint32(0xFFFF)
    if mode == "round":
        up = low >= 0x8000
    elif mode == "rint":
        up = (low > 0x8000) | ((low == 0x8000) & ((keep & np.uint32(1)) == 1))
    elif mode == "trunc":
        up = False
    elif mode == "floor":
        up = neg & (low != 0)
    else:  # ceil
        up = ~neg & (low != 0)
    bits = (keep + up) | (neg.astype(np.uint32) << np.uint32(15))
    return bits.astype(np.uint16).view(np_dtype("bf16"))


# ----------------------------------------------------------------------------------------------------------
# cast
# ----------------------------------------------------------------------------------------------------------


def cast(x: np.ndarray, to: str, mode: str = "round") -> np.ndarray:
    """Convert `x` to dtype `to`, rounding by `mode` (one of CAST_MODES; 'round' = ties away from zero).

    Every value is first widened exactly to float64, then rounded once on the bits, so every mode is
    exact for every direction. Float -> int32 maps NaN to 0 and saturates ±inf and out-of-range values
    (npusim's choice); NaN -> float keeps sign and top payload bits and sets the quiet bit.
    """
    if mode not in CAST_MODES:
        raise ValueError(f"unknown cast mode {mode!r}; expected one of {CAST_MODES}")
    src = _name(x)
    if to not in _FMTS and to != "int32":
        raise ValueError(f"cast: unknown target dtype {to!r}")
    x = np.asarray(x)
    if src == to:
        return x.copy()
    if src == "int32":
        return _round_f64_to(_to_f64(x), to, mode)
    with np.errstate(invalid="ignore"):  # signalling NaNs warn in isnan and astype
        nan = np.isnan(x)
        if to == "fp32":  # widening: exact in every mode
            out = x.astype(np.float32)
        elif src == "fp32" and to == "bf16":  # the common narrowing, directly on the bits
            out = _fp32_to_bf16(x, mode)
        else:
            out = _round_f64_to(np.where(nan, 0.0, x.astype(np.float64)), to, mode)
    if to != "int32" and nan.any():
        bits = _bits(out, to).copy()
        bits[nan] = _nan_bits(x, src, to)[nan].astype(bits.dtype)
        out = bits.view(np_dtype(to))
    return out


# ----------------------------------------------------------------------------------------------------------
# elementwise
# ----------------------------------------------------------------------------------------------------------

_UFUNCS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


def _f32_binary(op: str, a: np.ndarray | np.float32, b: np.ndarray | np.float32) -> np.ndarray:
    """IEEE single-precision `op` (numpy's), with IEEE 754-2019 maximum/minimum and canonical NaNs."""
    with np.errstate(all="ignore"):
        r = np.asarray(_UFUNCS[op](a, b))  # a fresh float32 array: at least one operand is an array
    if op in ("maximum", "minimum"):
        both_zero = (a == 0) & (b == 0)
        if np.any(both_zero):
            sa, sb = np.signbit(a), np.signbit(b)
            neg = (sa & sb) if op == "maximum" else (sa | sb)
            r = np.where(both_zero, np.where(neg, np.float32(-0.0), np.float32(0.0)), r).astype(np.float32)
    return _canonical_nan_f32(r)


def _narrow(r32: np.ndarray, dt: str) -> np.ndarray:
    """An fp32 arithmetic result in dtype `dt`: as is for fp32, else rounded once to nearest-even.

    Correctly rounded for + - * / sqrt of bf16/fp16 operands: fp32's 24 bits >= 2p+2 (p = 8 or 11), so the
    double rounding exact -> fp32 -> dt equals the single rounding exact -> dt.
    """
    if dt == "fp32":
        return r32
    return _round_f64(r32.astype(np.float64), dt, "rint")


def _binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if op not in _UFUNCS:
        raise ValueError(f"unknown binary op {op!r}; expected one of {BINARY_OPS}")
    dt = _same_dtype(op, a, b)
    if dt == "int32":
        if op == "div":
            raise ValueError("div: not defined for int32")
        with np.errstate(over="ignore"):
            return np.asarray(_UFUNCS[op](np.asarray(a), np.asarray(b)), dtype=np.int32)  # wraps
    return _narrow(_f32_binary(op, _to_f32(a), _to_f32(b)), dt)


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
    dt = _name(x)
    if dt == "int32":
        return np.negative(np.asarray(x))
    return _from_bits(_bits(x, dt) ^ _FMTS[dt].uint(1 << (_FMTS[dt].width - 1)), dt).reshape(np.shape(x))


def sqrt(x: np.ndarray) -> np.ndarray:
    """IEEE square root in the operand dtype (sqrt(-0) = -0, negative -> canonical NaN)."""
    dt = _name(x)
    _float_only("sqrt", dt)
    with np.errstate(invalid="ignore"):
        r = np.sqrt(_to_f32(x))
    return _narrow(_canonical_nan_f32(np.array(r, dtype=np.float32)), dt)


def recip(x: np.ndarray) -> np.ndarray:
    """1 / x as an IEEE division in the operand dtype (the device implements recip as a division)."""
    dt = _name(x)
    _float_only("recip", dt)
    return div(np.ones(np.shape(x), dtype=np_dtype(dt)), x)


def _near_fp32_midpoint(y: np.ndarray) -> bool:
    """Could any float64 value of y lie within _NEAR_MIDPOINT_ULPS of an fp32 rounding midpoint? Exact for
    results in fp32's normal range (29 float64 mantissa bits are dropped: the midpoint is 2**28 of them);
    zeros, infinities and NaN round exactly; anything else (fp32 subnormal range) answers True."""
    with np.errstate(invalid="ignore"):
        a = np.abs(y)
    normal = (a >= 2.0**-126) & (a < 2.0**128)
    exact = (a == 0) | ~np.isfinite(a)
    if not np.all(normal | exact):
        return True
    dropped = (y.view(np.uint64) & np.uint64((1 << 29) - 1)).astype(np.int64)
    return bool(np.any(normal & (np.abs(dropped - (1 << 28)) <= _NEAR_MIDPOINT_ULPS)))


def _correctly_rounded(
    y: np.ndarray, xin: np.ndarray, dt: str, side: Callable[[float, float], int]
) -> np.ndarray:
    """Round float64 approximations `y` of f(xin) to `dt` (nearest-even) as the exact f(xin) would round.

    A float64 result within _NEAR_MIDPOINT_ULPS of a rounding midpoint m of `dt` is replaced by m, and the
    tie is broken by side(x, m) = sign(f(x) - m), computed exactly. Elsewhere the float64 error cannot
    change the rounding.
    """
    shape = np.shape(y)
    y, xin = np.array(y, dtype=np.float64).reshape(-1), np.asarray(xin, dtype=np.float64).reshape(-1)
    if dt == "fp32" and not _near_fp32_midpoint(y):
        return _round_f64(y, dt, "rint").reshape(shape)
    p = _parts(np.where(np.isnan(y), 0.0, y), _FMTS[dt])
    dist = np.where(p.rem > p.half, p.rem - p.half, p.half - p.rem)
    near = ~p.special & (p.half < np.uint64(1 << 59)) & (dist <= np.uint64(_NEAR_MIDPOINT_ULPS))
    if not near.any():
        return _round_f64(y, dt, "rint").reshape(shape)
    direction = np.zeros(y.shape, dtype=np.int64)
    for i in np.flatnonzero(near):
        m = float(np.ldexp(2.0 * float(p.n[i]) + 1.0, int(p.qexp[i]) - 1))
        m = -m if p.neg[i] else m
        y[i] = m
        direction[i] = side(float(xin[i]), m)
    return _round_f64(y, dt, "rint", direction).reshape(shape)


def _exp_side(x: float, m: float) -> int:
    """sign(exp(x) - m) for float64 x and midpoint m > 0, from a 60-digit correctly rounded exp."""
    with localcontext() as ctx:
        ctx.prec = 60
        return int(Decimal(x).exp().compare(Decimal(m)))


def _rsqrt_side(x: float, m: float) -> int:
    """sign(1/sqrt(x) - m) for x > 0, m > 0, exactly: 1/sqrt(x) > m  <=>  m*m*x < 1."""
    t = Fraction(m) ** 2 * Fraction(x)
    return (t < 1) - (t > 1)


def exp(x: np.ndarray) -> np.ndarray:
    """e**x correctly rounded (nearest-even) to the operand dtype: float64 exp rounded once, with exact
    resolution of the rare near-midpoint cases. exp(-inf) = +0, exp(+inf) = +inf, NaN -> canonical NaN."""
    dt = _name(x)
    _float_only("exp", dt)
    v = _to_f64(x)
    with np.errstate(all="ignore"):
        y = np.exp(v)
    return _correctly_rounded(y, v, dt, _exp_side)


def rsqrt(x: np.ndarray) -> np.ndarray:
    """1/sqrt(x) correctly rounded to the operand dtype (float64 1/sqrt rounded once, near-midpoint cases
    resolved exactly). rsqrt(+0) = +inf, rsqrt(-0) = -inf, rsqrt(+inf) = +0, x < 0 -> canonical NaN."""
    dt = _name(x)
    _float_only("rsqrt", dt)
    v = _to_f64(x)
    with np.errstate(all="ignore"):
        y = 1.0 / np.sqrt(v)
    return _correctly_rounded(y, v, dt, _rsqrt_side)


def _scalar_f64(value: float | int) -> float:
    """A float64 that rounds like the exact `value` into every format of <= 51 bits.

    Floats are returned as is. Integers beyond 2**53 keep their top 53 bits with the lower bits folded
    into a sticky last bit, so a later rounding to fp32 is a single correct rounding of the integer.
    """
    if isinstance(value, bool | np.bool_):
        raise ValueError("a boolean is not a numeric scalar")
    if isinstance(value, int | np.integer):
        n = int(value)
        a = abs(n)
        sh = a.bit_length() - 53
        if sh > 0:
            top = (a >> sh) | (1 if a & ((1 << sh) - 1) else 0)
            a = top << sh
        try:
            f = float(a)
        except OverflowError:
            f = float("inf")
        return -f if n < 0 else f
    return float(value)


def binary_scalar(op_name: str, x: np.ndarray, scalar: float, scalar_first: bool = False) -> np.ndarray:
    """Tile OP scalar (or scalar OP tile), the PyPTO ``*s`` form: result is fp32.

    The scalar becomes an fp32 constant (nearest-even, as np.float32(scalar)); a bf16/fp16 tile is widened
    exactly to fp32, an int32 tile is converted to fp32 nearest-even; then the fp32 op.
    """
    if op_name not in _UFUNCS:
        raise ValueError(f"unknown binary op {op_name!r}; expected one of {BINARY_OPS}")
    dt = _name(x)
    xf = cast(x, "fp32", "rint") if dt == "int32" else _to_f32(x)
    with np.errstate(over="ignore"):
        s = np.float32(_scalar_f64(scalar))  # one nearest-even rounding (overflow -> inf)
    return _f32_binary(op_name, s, xf) if scalar_first else _f32_binary(op_name, xf, s)


# ----------------------------------------------------------------------------------------------------------
# matmul
# ----------------------------------------------------------------------------------------------------------


def _global_span(bits: np.ndarray, fmt: _Fmt) -> tuple[int, bool]:
    """(span, all finite) of a whole matrix: every element is an integer multiple of 2**unit below
    2**(unit + span), unit being the ulp exponent of the smallest nonzero magnitude (see _exponent_spans)."""
    mag = bits & ~fmt.uint(1 << (fmt.width - 1))
    hi = int(mag.max(initial=0))
    if hi == 0:
        return 0, True
    lo = int((mag - fmt.uint(1)).min()) + 1  # zeros wrap to the maximum and drop out
    e_hi, e_lo = max(hi >> fmt.mbits, 1), max(lo >> fmt.mbits, 1)
    return e_hi - e_lo + fmt.mbits + 1, hi < fmt.inf_bits


def _exponent_spans(bits: np.ndarray, fmt: _Fmt, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _two_band_product(a64: np.ndarray, bits_a: np.ndarray, b64: np.ndarray, span_b: np.ndarray, fmt: _Fmt,
                      log2k: int) -> np.ndarray | None:
    """Exact a @ b, as float64 values that round to fp32 like the exact sums, when each row of A splits into
    two exponent bands that are each certified exact with every column of B (the common case of one operand
    spanning many binades, e.g. softmax weights or SwiGLU outputs); None when two bands do not suffice.

    Row r's band `hi` holds the elements whose exponent field is within `keep` of the row's largest, `lo` the
    rest: both products are exact float64 dgemms (see matmul's certificate), their sum s = hi + lo is formed
    with TwoSum (s rounded to nearest, e the exact error), and where s is exactly an fp32 rounding midpoint
    and e != 0 it is moved one float64 ulp towards e, so its fp32 rounding is that of s + e.
    """
    keep = 53 - log2k - int(span_b.max(initial=0)) - (fmt.mbits + 1)
    if keep < 0:
        return None
    expo = ((bits_a & ~fmt.uint(1 << (fmt.width - 1))) >> fmt.mbits).astype(np.int64)
    top = expo.max(axis=1, keepdims=True)
    in_hi = expo >= top - keep
    lo_bits = np.where(in_hi, fmt.uint(0), bits_a)
    span_lo, _, _ = _exponent_spans(lo_bits, fmt, axis=1)
    if int(span_lo.max(initial=0)) + int(span_b.max(initial=0)) + log2k > 53:
        return None
    hi = np.where(in_hi, a64, 0.0)
    c_hi, c_lo = hi @ b64, (a64 - hi) @ b64
    total = c_hi + c_lo  # TwoSum: total + err == c_hi + c_lo exactly
    back = total - c_hi
    err = (c_hi - (total - back)) + (c_lo - back)
    r = total.astype(np.float32)
    r64 = r.astype(np.float64)
    other = np.nextafter(r, np.where(total > r64, np.float32(np.inf), np.float32(-np.inf))).astype(np.float64)
    midpoint = (r64 != total) & ((r64 + other) * 0.5 == total) & (err != 0)
    return np.where(midpoint, np.nextafter(total, np.where(err > 0, np.inf, -np.inf)), total)


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


def matmul(a: np.ndarray, b: np.ndarray, *, b_trans: bool = False, out_dtype: str = "fp32") -> np.ndarray:
    """a [M,K] @ b [K,N] (b is [N,K] with b_trans): exact products, exact K-sum, ONE rounding (nearest-even)
    to out_dtype ('fp32', 'bf16' or 'fp16'). Operands: both bf16, both fp16 or both fp32; int32 x int32
    needs out_dtype='int32' and wraps. An exact zero sum is +0; NaN results are canonical.

    Fast path: float64 dgemm, proven exact per output element by the certificate
    span_a[r] + span_b[c] + ceil(log2 K) <= 53 (every partial sum is then an integer multiple of
    2**(unit_a + unit_b) below 2**53 of those units, so any summation order is exact). Other elements use an
    exact limb decomposition; elements touching inf/NaN use the IEEE result class.
    """
    a, b = np.asarray(a), np.asarray(b)
    dt = _same_dtype("matmul", a, b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul: operands must be 2-D, got {list(a.shape)} and {list(b.shape)}")
    if b_trans:
        b = b.T
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: inner dimensions differ: a is {list(a.shape)}, b is {list(b.shape)}")
    if dt == "int32":
        if out_dtype != "int32":
            raise ValueError("matmul: int32 operands need out_dtype='int32'")
        return _matmul_int32(a, b)
    if out_dtype not in FLOAT_DTYPES:
        raise ValueError(f"matmul: out_dtype {out_dtype!r} not supported for {dt} operands")
    (m, k), n = a.shape, b.shape[1]
    if k == 0:
        return np.zeros((m, n), dtype=np_dtype(out_dtype))
    fmt = _FMTS[dt]
    bits_a, bits_b = _bits(a, dt), _bits(b, dt)
    log2k = (k - 1).bit_length()
    a64, b64 = _to_f64(a), _to_f64(b)
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
        return _round_f64(c, out_dtype, "rint")
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
            return _canonical_nan_f32(c.astype(np.float32))
    return _round_f64(c, out_dtype, "rint")


def matmul_acc(acc: np.ndarray, a: np.ndarray, b: np.ndarray, *, b_trans: bool = False) -> np.ndarray:
    """acc + matmul(a, b) in fp32: the matmul result is rounded to fp32, then added to acc (two roundings)."""
    if _name(acc) != "fp32":
        raise ValueError(f"matmul_acc: acc must be fp32, got {_name(acc)}")
    r = matmul(a, b, b_trans=b_trans, out_dtype="fp32")
    if np.shape(acc) != r.shape:
        raise ValueError(f"matmul_acc: acc is {list(np.shape(acc))}, matmul result is {list(r.shape)}")
    return add(acc, r)


# ----------------------------------------------------------------------------------------------------------
# reductions, broadcasts, fills
# ----------------------------------------------------------------------------------------------------------


def _check_2d(op: str, x: np.ndarray) -> None:
    if np.ndim(x) != 2:
        raise ValueError(f"{op}: expected a 2-D tile, got shape {list(np.shape(x))}")


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
    _check_2d("row_sum", x)
    dt = _name(x)
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
        return s if dt == "fp32" else _narrow(s, dt).astype(np.float32)

    while t.shape[1] > 1:
        pairs = t.shape[1] // 2
        s = add_pairs(t[:, 0 : 2 * pairs : 2], t[:, 1 : 2 * pairs : 2])
        t = np.concatenate([s, t[:, 2 * pairs :]], axis=1) if t.shape[1] % 2 else s
    t = t[:, 0, :]
    while t.shape[1] > 1:
        t = add_pairs(t[:, 0::2], t[:, 1::2])
    return _narrow(_canonical_nan_f32(np.ascontiguousarray(t)), dt)


def _row_extreme(x: np.ndarray, op: str) -> np.ndarray:
    _check_2d(op, x)
    dt = _name(x)
    x = np.asarray(x)
    if x.shape[1] == 0:
        raise ValueError(f"{op}: empty rows")
    if dt == "int32":
        return (x.max if op == "row_max" else x.min)(axis=1, keepdims=True)
    f = _to_f32(x)
    r = (f.max if op == "row_max" else f.min)(axis=1, keepdims=True)
    zero = r == 0
    if zero.any():  # -0 < +0: max is +0 if any +0 is present, min is -0 if any -0 is present
        is_zero = f == 0
        if op == "row_max":
            want_neg = ~(is_zero & ~np.signbit(f)).any(axis=1, keepdims=True)
        else:
            want_neg = (is_zero & np.signbit(f)).any(axis=1, keepdims=True)
        r = np.where(zero, np.where(want_neg, np.float32(-0.0), np.float32(0.0)), r).astype(np.float32)
    return _narrow(_canonical_nan_f32(np.array(r, dtype=np.float32)), dt)


def row_max(x: np.ndarray) -> np.ndarray:
    """Maximum of each row -> [M,1], exact; NaN propagates (canonical); +0 beats -0."""
    return _row_extreme(x, "row_max")


def row_min(x: np.ndarray) -> np.ndarray:
    """Minimum of each row -> [M,1], exact; NaN propagates (canonical); -0 beats +0."""
    return _row_extreme(x, "row_min")


def row_expand(op_name: str, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """t [M,N] OP v [M,1], v broadcast along each row; op_name in add, sub, mul, div."""
    if op_name not in EXPAND_OPS:
        raise ValueError(f"row_expand: unknown op {op_name!r}; expected one of {EXPAND_OPS}")
    _check_2d("row_expand", t)
    if np.shape(v) != (np.shape(t)[0], 1):
        raise ValueError(f"row_expand: v must be [{np.shape(t)[0]}, 1], got {list(np.shape(v))}")
    return _binary(op_name, t, v)


def col_expand(op_name: str, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """t [M,N] OP v [1,N], v broadcast down each column; op_name in add, sub, mul, div."""
    if op_name not in EXPAND_OPS:
        raise ValueError(f"col_expand: unknown op {op_name!r}; expected one of {EXPAND_OPS}")
    _check_2d("col_expand", t)
    if np.shape(v) != (1, np.shape(t)[1]):
        raise ValueError(f"col_expand: v must be [1, {np.shape(t)[1]}], got {list(np.shape(v))}")
    return _binary(op_name, t, v)


def full(shape: tuple[int, ...] | list[int], dtype: str, value: float | int) -> np.ndarray:
    """A tile of `value`: for float dtypes the literal (as a float64, or an exact integer) rounded once to
    nearest-even; NaN -> canonical NaN. For int32 the value must be an integer in range."""
    shape = tuple(int(s) for s in shape)
    if dtype == "int32":
        integral = isinstance(value, int | np.integer) or (
            isinstance(value, float | np.floating) and float(value).is_integer()
        )
        if isinstance(value, bool | np.bool_) or not integral:
            raise ValueError(f"full: int32 value must be an integer, got {value!r}")
        iv = int(value)
        if not INT32_MIN <= iv <= INT32_MAX:
            raise ValueError(f"full: {iv} is out of int32 range")
        return np.full(shape, iv, dtype=np.int32)
    if dtype not in _FMTS:
        raise ValueError(f"full: unknown dtype {dtype!r}")
    return np.full(shape, _round_f64(np.array([_scalar_f64(value)]), dtype, "rint")[0], dtype=np_dtype(dtype))


def fill_pad(t: np.ndarray, valid_shape: tuple[int, int] | list[int], pad_value: str) -> np.ndarray:
    """A copy of t [M,N] with every element outside the top-left valid_shape rectangle set to 0 ('zero'),
    +inf ('max') or -inf ('min'; PyPTO PadValue.min); for int32 0, INT32_MAX, INT32_MIN."""
    if pad_value not in PAD_VALUES:
        raise ValueError(f"fill_pad: pad_value must be one of {PAD_VALUES}, got {pad_value!r}")
    _check_2d("fill_pad", t)
    dt = _name(t)
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


def digest(x: np.ndarray) -> str:
    """sha256 hex digest of the array's raw little-endian, C-order bytes (no shape or dtype)."""
    a = np.ascontiguousarray(x)
    u = a.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize > 1 else a.view(np.uint8)
    return hashlib.sha256(u.astype(u.dtype.newbyteorder("<"), copy=False).tobytes()).hexdigest()
