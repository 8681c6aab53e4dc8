"""Casts between every program dtype (bf16, fp16, fp32, the FP8 formats, int8, int32, int64) in the five
PyPTO cast modes, exact on the bits: `round` (the device default, PyPTO CAST_ROUND) rounds to nearest with
ties away from zero, `rint` ties to even, and `floor`, `ceil`, `trunc`; NaN payloads, infinities, signed
zeros, subnormals and overflow as the numerics contract (`npusim.numerics`) says.
"""

from __future__ import annotations

import numpy as np

from npusim.dtypes import np_dtype

from .formats import CAST_MODES, FMTS, INT_RANGES, bits_of, dtype_of, round_f64_to, scalar_f64


def exact_f64(x: np.ndarray) -> np.ndarray:
    """An integer array as float64 that rounds like the exact integers into every format of <= 51 bits:
    magnitudes beyond 2**53 (int64 only) go through `formats.scalar_f64`, which keeps their top 53 bits with
    the lower bits folded into a sticky last bit, so a later rounding is one correct rounding."""
    x = np.asarray(x)
    out = x.astype(np.float64)
    if x.dtype == np.int64:
        big = np.abs(out) >= 2.0**53
        if big.any():
            out[big] = [scalar_f64(int(v)) for v in x[big]]
    return out


def _nan_bits(x: np.ndarray, src: str, dst: str) -> np.ndarray:
    """The `dst` NaN for each `src` NaN bit pattern: sign and top payload bits kept, quiet bit set (into or
    out of an FP8 format: its one NaN of that sign)."""
    s, d = FMTS[src], FMTS[dst]
    b = bits_of(x, src).astype(np.uint64)
    sign = (b >> np.uint64(s.width - 1)) & np.uint64(1)
    if s.width == 8 or d.width == 8:
        return (sign << np.uint64(d.width - 1)) | np.uint64(d.canonical_nan)
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


def cast(x: np.ndarray, to: str, mode: str = "round") -> np.ndarray:
    """Convert `x` to dtype `to`, rounding by `mode` (one of CAST_MODES; 'round' = ties away from zero).

    Every value is first widened exactly to float64, then rounded once on the bits, so every mode is
    exact for every direction. Float -> integer maps NaN to 0 and saturates ±inf and out-of-range values,
    integer -> narrower integer saturates (npusim's choice); float -> FP8 saturates (see `formats`);
    NaN -> float keeps sign and top payload bits and sets the quiet bit.
    """
    if mode not in CAST_MODES:
        raise ValueError(f"unknown cast mode {mode!r}; expected one of {CAST_MODES}")
    src = dtype_of(x)
    if to not in FMTS and to not in INT_RANGES:
        raise ValueError(f"cast: unknown target dtype {to!r}")
    x = np.asarray(x)
    if src == to:
        return x.copy()
    if src in INT_RANGES:
        if to in INT_RANGES:
            lo, hi = INT_RANGES[to]
            return np.clip(x.astype(np.int64), lo, hi).astype(np_dtype(to))
        return round_f64_to(exact_f64(x), to, mode)
    with np.errstate(invalid="ignore"):  # signalling NaNs warn in isnan and astype
        nan = np.isnan(x)
        if to == "fp32":  # widening: exact in every mode
            out = x.astype(np.float32)
        elif src == "fp32" and to == "bf16":  # the common narrowing, directly on the bits
            out = _fp32_to_bf16(x, mode)
        else:
            out = round_f64_to(np.where(nan, 0.0, x.astype(np.float64)), to, mode)
    if to not in INT_RANGES and nan.any():
        bits = bits_of(out, to).copy()
        bits[nan] = _nan_bits(x, src, to)[nan].astype(bits.dtype)
        out = bits.view(np_dtype(to))
    return out
