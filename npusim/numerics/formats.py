"""Number formats and rounding on the bits: the IEEE formats of bf16, fp16 and fp32 and the two FP8 formats,
exact widening, and one rounding of a float64 to a narrower format (or an integer type) in every cast mode.
Every other numerics module builds on these helpers.

FP8: `fp8e5m2` is IEEE-like (infinities, NaNs); `fp8e4m3fn` has no infinities and one NaN pattern per sign
(S.1111.111), so its largest finite value is 0x7E = 448. Rounding into either saturates: a result beyond the
largest finite value, an infinity included, becomes the largest finite value of its sign, as the device's
FP32 -> FP8 conversion does (pto-isa 3186c381 include/pto/npu/a5/TCvt.hpp L1307-1316, "#rnd #sat").
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from npusim.dtypes import FLOAT_DTYPES, dtype_name, np_dtype

CAST_MODES = ("round", "rint", "floor", "ceil", "trunc")
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT_RANGES = {"int8": (-(2**7), 2**7 - 1), "uint8": (0, 2**8 - 1),
              "int32": (INT32_MIN, INT32_MAX), "int64": (-(2**63), 2**63 - 1)}


class Fmt(NamedTuple):
    """A binary floating-point format: total width, exponent bits and stored mantissa bits; `finite_only`
    formats (fp8e4m3fn) have no infinities, their all-ones exponent holding finite values except the NaN
    S.1...1; `saturating` formats clamp every overflow (and an infinity) to the largest finite value."""

    width: int
    ebits: int
    mbits: int
    uint: type
    finite_only: bool = False
    saturating: bool = False

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
        """The magnitude bits of +inf; for a finite-only format the NaN pattern, the first magnitude that is
        not a finite number (what overflow checks compare with)."""
        if self.finite_only:
            return (self.exp_field_max << self.mbits) | ((1 << self.mbits) - 1)
        return self.exp_field_max << self.mbits

    @property
    def max_bits(self) -> int:
        return self.inf_bits - 1

    @property
    def quiet_bit(self) -> int:
        return 1 << (self.mbits - 1)

    @property
    def canonical_nan(self) -> int:
        return self.inf_bits if self.finite_only else self.inf_bits | self.quiet_bit


FMTS: dict[str, Fmt] = {
    "bf16": Fmt(16, 8, 7, np.uint16),
    "fp16": Fmt(16, 5, 10, np.uint16),
    "fp32": Fmt(32, 8, 23, np.uint32),
    "fp8e4m3fn": Fmt(8, 4, 3, np.uint8, finite_only=True, saturating=True),
    "fp8e5m2": Fmt(8, 5, 2, np.uint8, saturating=True),
}
_F64_FRAC_MASK = np.uint64((1 << 52) - 1)
_F64_HIDDEN = np.uint64(1 << 52)


def dtype_of(x: np.ndarray) -> str:
    try:
        return dtype_name(np.asarray(x).dtype)
    except KeyError:
        raise ValueError(f"unsupported array dtype {np.asarray(x).dtype}") from None


def same_dtype(op: str, *arrays: np.ndarray) -> str:
    names = [dtype_of(a) for a in arrays]
    if any(n != names[0] for n in names):
        raise ValueError(f"{op}: operands have different dtypes {names}")
    return names[0]


def float_only(op: str, dt: str) -> None:
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{op}: not defined for {dt}")


def bits_of(x: np.ndarray, dt: str) -> np.ndarray:
    """The bit patterns of a float array (a view: same itemsize, any strides)."""
    return np.asarray(x).view(FMTS[dt].uint)


def from_bits(bits: np.ndarray, dt: str) -> np.ndarray:
    return np.ascontiguousarray(bits.astype(FMTS[dt].uint)).view(np_dtype(dt))


def canonical_nan_f32(r: np.ndarray) -> np.ndarray:
    """Replace every NaN of a float32 array (in place, returned) by 0x7fc00000."""
    nan = np.isnan(r)
    if nan.any():
        r.view(np.uint32)[nan] = FMTS["fp32"].canonical_nan
    return r


def to_f64(x: np.ndarray) -> np.ndarray:
    """Exact widening of any program-dtype array to float64 (NaN payloads are not kept)."""
    with np.errstate(invalid="ignore"):  # signalling NaNs warn
        return np.asarray(x).astype(np.float64)


def to_f32(x: np.ndarray) -> np.ndarray:
    """Exact widening of a bf16/fp16/fp32 array to fp32 (NaN payloads are irrelevant to arithmetic here)."""
    x = np.asarray(x)
    if x.dtype == np.float32:
        return x  # nothing to convert (the common case: no error state to set up)
    with np.errstate(invalid="ignore"):  # signalling NaNs warn
        return x.astype(np.float32)

class Parts(NamedTuple):
    """|v| = (n + rem / 2**shift) * 2**qexp, with n an integer and rem < 2**shift (all exact)."""

    neg: np.ndarray  # sign bit
    special: np.ndarray  # ±inf or NaN
    n: np.ndarray  # uint64: |v| truncated to the target quantum, in quanta
    rem: np.ndarray  # uint64: the discarded low bits of the float64 significand
    half: np.ndarray  # uint64: 2**(shift-1), the discarded bits' value of half a quantum
    qexp: np.ndarray  # int64: exponent of the target quantum (ulp) at |v|


def quantum_parts(v: np.ndarray, fmt: Fmt | None) -> Parts:
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
    return Parts(neg, biased == 0x7FF, n, rem, half, qexp)


def round_up(p: Parts, mode: str, direction: np.ndarray | None = None) -> np.ndarray:
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


def overflow_is_inf(neg: np.ndarray, mode: str) -> np.ndarray | bool:
    """Whether a magnitude beyond max finite becomes inf (else max finite) under `mode`."""
    if mode in ("round", "rint"):
        return True
    if mode == "trunc":
        return False
    if mode == "floor":
        return neg
    return ~neg  # ceil


def round_f64(v: np.ndarray, dt: str, mode: str, direction: np.ndarray | None = None) -> np.ndarray:
    """Round float64 `v` once, by `mode`, to float dtype `dt`; NaN becomes the canonical NaN of `dt`."""
    v = np.asarray(v, dtype=np.float64)
    if dt == "fp32" and mode == "rint" and direction is None:
        with np.errstate(over="ignore"):  # IEEE float64 -> float32 conversion: one nearest-even rounding
            return canonical_nan_f32(v.astype(np.float32))
    fmt = FMTS[dt]
    p = quantum_parts(v, fmt)
    up = round_up(p, mode, direction)
    # bits of n * 2**qexp: the quantum's exponent field (0 for subnormals) shifted in, plus n (which carries
    # into the exponent field on its own when n reaches 2**(mbits+1), and into the inf pattern on overflow).
    n = (p.n + up).astype(np.int64)
    mag = ((p.qexp - (fmt.emin - fmt.mbits)) << fmt.mbits) + n
    if fmt.saturating:
        mag = np.where((mag >= fmt.inf_bits) | p.special, fmt.max_bits, mag)
    else:
        mag = np.where(
            mag >= fmt.inf_bits, np.where(overflow_is_inf(p.neg, mode), fmt.inf_bits, fmt.max_bits), mag
        )
        mag = np.where(p.special, fmt.inf_bits, mag)
    bits = mag | (p.neg.astype(np.int64) << (fmt.width - 1))
    bits = np.where(np.isnan(v), fmt.canonical_nan, bits)
    return from_bits(bits, dt).reshape(v.shape)


def round_f64_to_int(v: np.ndarray, mode: str, dt: str = "int32") -> np.ndarray:
    """Round float64 `v` to integer type `dt` by `mode`; NaN -> 0, out of range and ±inf saturate."""
    v = np.asarray(v, dtype=np.float64)
    lo, hi = INT_RANGES[dt]
    p = quantum_parts(v, None)
    # below 2**52 the quantum split is exact; at and above it every float64 is an integer already
    small = np.minimum(p.n + round_up(p, mode), np.uint64(1 << 53)).astype(np.int64)
    with np.errstate(invalid="ignore"):
        big = np.abs(np.where(np.isfinite(v), v, 0.0))
    large = big >= 2.0**52
    over = big >= 2.0**63  # beyond every integer type: only saturates
    mag = np.where(large, np.where(over, 0.0, big).astype(np.int64), small)
    val = np.where(p.neg, -mag, mag)
    out = np.clip(val, lo, hi)
    out = np.where(over, np.where(p.neg, lo, hi), out)
    out = np.where(p.special, np.where(p.neg, lo, hi), out)
    out = np.where(np.isnan(v), 0, out)
    return out.astype(np_dtype(dt)).reshape(v.shape)


def round_f64_to_int32(v: np.ndarray, mode: str) -> np.ndarray:
    """Round float64 `v` to int32 by `mode`; NaN -> 0, out of range and ±inf saturate."""
    return round_f64_to_int(v, mode, "int32")


def round_f64_to(v: np.ndarray, dt: str, mode: str) -> np.ndarray:
    return round_f64_to_int(v, mode, dt) if dt in INT_RANGES else round_f64(v, dt, mode)

def narrow(r32: np.ndarray, dt: str) -> np.ndarray:
    """An fp32 arithmetic result in dtype `dt`: as is for fp32, else rounded once to nearest-even.

    Correctly rounded for + - * / sqrt of bf16/fp16 operands: fp32's 24 bits >= 2p+2 (p = 8 or 11), so the
    double rounding exact -> fp32 -> dt equals the single rounding exact -> dt.
    """
    if dt == "fp32":
        return r32
    return round_f64(r32.astype(np.float64), dt, "rint")


def scalar_f64(value: float | int) -> float:
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


def check_2d(op: str, x: np.ndarray) -> None:
    if np.ndim(x) != 2:
        raise ValueError(f"{op}: expected a 2-D tile, got shape {list(np.shape(x))}")


def digest(x: np.ndarray) -> str:
    """sha256 hex digest of the array's raw little-endian, C-order bytes (no shape or dtype)."""
    a = np.ascontiguousarray(x)
    u = a.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize > 1 else a.view(np.uint8)
    return hashlib.sha256(memoryview(u.astype(u.dtype.newbyteorder("<"), copy=False))).hexdigest()  # (no copy)
