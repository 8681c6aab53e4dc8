"""Correctly rounded transcendental functions: `exp` and `rsqrt` computed in float64 and rounded once to the
operand dtype, with the rare results near a rounding midpoint resolved exactly, so libm differences between
machines never show in the bits.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from .formats import FMTS, dtype_of, float_only, quantum_parts, round_f64, to_f64

_NEAR_MIDPOINT_ULPS = 64  # float64 ulps: far more than any libm exp/sqrt error


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
        return round_f64(y, dt, "rint").reshape(shape)
    p = quantum_parts(np.where(np.isnan(y), 0.0, y), FMTS[dt])
    dist = np.where(p.rem > p.half, p.rem - p.half, p.half - p.rem)
    near = ~p.special & (p.half < np.uint64(1 << 59)) & (dist <= np.uint64(_NEAR_MIDPOINT_ULPS))
    if not near.any():
        return round_f64(y, dt, "rint").reshape(shape)
    direction = np.zeros(y.shape, dtype=np.int64)
    for i in np.flatnonzero(near):
        m = float(np.ldexp(2.0 * float(p.n[i]) + 1.0, int(p.qexp[i]) - 1))
        m = -m if p.neg[i] else m
        y[i] = m
        direction[i] = side(float(xin[i]), m)
    return round_f64(y, dt, "rint", direction).reshape(shape)


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
    dt = dtype_of(x)
    float_only("exp", dt)
    v = to_f64(x)
    with np.errstate(all="ignore"):
        y = np.exp(v)
    return _correctly_rounded(y, v, dt, _exp_side)


def rsqrt(x: np.ndarray) -> np.ndarray:
    """1/sqrt(x) correctly rounded to the operand dtype (float64 1/sqrt rounded once, near-midpoint cases
    resolved exactly). rsqrt(+0) = +inf, rsqrt(-0) = -inf, rsqrt(+inf) = +0, x < 0 -> canonical NaN."""
    dt = dtype_of(x)
    float_only("rsqrt", dt)
    v = to_f64(x)
    with np.errstate(all="ignore"):
        y = 1.0 / np.sqrt(v)
    return _correctly_rounded(y, v, dt, _rsqrt_side)
