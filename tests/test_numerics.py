"""Casts of npusim.numerics against independent references.

References used here, none of which shares code with the module:
- `ref_cast`: vectorised, candidate based. For each exact float64 input it takes the library conversion
  (any rounding, at most an ulp off) and its two bit-neighbours as candidates, then picks by mode with
  exact float64 distance comparisons.
- `ref_round_fraction`: the textbook definition in exact rational arithmetic (slow; spot checks).
- `ref_to_int`: Python's math.floor/ceil/trunc and explicit half-away/half-even rules.
"""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim import numerics as nx
from npusim.dtypes import dtype_name

MODES = nx.CAST_MODES
FLOATS = ("bf16", "fp16", "fp32")
NP = {"bf16": np.dtype(ml_dtypes.bfloat16), "fp16": np.dtype(np.float16), "fp32": np.dtype(np.float32)}
UINT = {"bf16": np.uint16, "fp16": np.uint16, "fp32": np.uint32}
# stored mantissa bits, exponent of the smallest normal, largest exponent, total width
FMT = {"bf16": (7, -126, 127, 16), "fp16": (10, -14, 15, 16), "fp32": (23, -126, 127, 32)}
HYP = settings(max_examples=300, deadline=None)


def bits_of(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.view(np.uint32 if x.dtype.itemsize == 4 else np.uint16)


def from_bits(bits, dt: str) -> np.ndarray:
    return np.asarray(bits, dtype=np.uint64).astype(UINT[dt]).view(NP[dt])


def inf_bits(dt: str) -> int:
    mb, _, _, width = FMT[dt]
    return ((1 << (width - 1 - mb)) - 1) << mb


# ------------------------------------------------------------------------------------------------------
# references
# ------------------------------------------------------------------------------------------------------


def ref_cast(x64: np.ndarray, dt: str, mode: str) -> np.ndarray:
    """Bits of the `dt` value chosen by `mode` for exact, non-NaN float64 inputs (vectorised)."""
    _, _, emax, width = FMT[dt]
    inf_b = inf_bits(dt)
    beyond = 2.0 ** (emax + 1)  # where inf sits on the unbounded grid
    x64 = np.asarray(x64, dtype=np.float64)
    neg = np.signbit(x64)
    a = np.abs(x64)
    with np.errstate(over="ignore"):
        c = a.astype(NP[dt]).view(UINT[dt]).astype(np.int64)  # any rounding: within one ulp
    cands = np.stack([np.clip(c + d, 0, inf_b) for d in (-1, 0, 1)])
    vals = cands.astype(UINT[dt]).view(NP[dt]).astype(np.float64)
    vals = np.where(cands == inf_b, beyond, vals)
    lo_key = np.where((vals <= a) & (cands < inf_b), vals, -np.inf)
    lo_i = np.argmax(lo_key, axis=0)
    hi_key = np.where(vals >= a, vals, np.inf)
    hi_i = np.argmin(hi_key, axis=0)
    idx = np.arange(a.size)
    lo_b, lo_v = cands[lo_i, idx], vals[lo_i, idx]
    hi_b, hi_v = cands[hi_i, idx], vals[hi_i, idx]
    none_above = ~np.isfinite(hi_key.min(axis=0))  # a beyond the inf position: inf is "nearest"
    hi_b = np.where(none_above, inf_b, hi_b)
    hi_v = np.where(none_above, a, hi_v)
    assert (lo_key.max(axis=0) > -np.inf).all()
    exact = lo_v == a
    with np.errstate(invalid="ignore"):  # inf inputs; handled below
        d_lo, d_hi = a - lo_v, hi_v - a
    if mode == "round":
        pick_hi = (d_hi < d_lo) | (d_hi == d_lo)
    elif mode == "rint":
        pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (hi_b % 2 == 0))
    elif mode == "trunc":
        pick_hi = np.zeros(a.shape, dtype=bool)
    elif mode == "floor":
        pick_hi = neg.copy()
    else:
        pick_hi = ~neg
    pick_hi &= ~exact
    a_inf = np.isinf(a)
    out = np.where(pick_hi, hi_b, lo_b)
    out = np.where(a_inf, inf_b, out)
    return (out | (neg.astype(np.int64) << (width - 1))).astype(np.uint64)


def floor_log2(a: Fraction) -> int:
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    return e


def ref_round_fraction(q: Fraction, dt: str, mode: str = "rint", negative_zero: bool = False) -> int:
    """Bits of exact rational q rounded to `dt` by `mode`, from the definition."""
    mb, emin, emax, width = FMT[dt]
    neg = q < 0 or (q == 0 and negative_zero)
    sign = (1 << (width - 1)) if neg else 0
    a = abs(q)
    if a == 0:
        return sign
    quantum = Fraction(2) ** (max(floor_log2(a), emin) - mb)
    n = math.floor(a / quantum)
    r = a / quantum - n
    half = Fraction(1, 2)
    up = {
        "round": r >= half,
        "rint": r > half or (r == half and n % 2 == 1),
        "trunc": False,
        "floor": neg and r > 0,
        "ceil": (not neg) and r > 0,
    }[mode]
    mag = (n + up) * quantum
    max_finite = (2 - Fraction(1, 2**mb)) * Fraction(2) ** emax
    if mag > max_finite:
        away = mode in ("round", "rint") or (mode == "floor" and neg) or (mode == "ceil" and not neg)
        return sign | (inf_bits(dt) if away else inf_bits(dt) - 1)
    if mag < Fraction(2) ** emin:
        return sign | int(mag / Fraction(2) ** (emin - mb))
    e = floor_log2(mag)
    frac = int(mag / Fraction(2) ** (e - mb)) - (1 << mb)
    return sign | ((e - emin + 1) << mb) | frac


def ref_nan(src_bits: int, src: str, dst: str) -> int:
    """The contract's NaN conversion: sign and top payload bits kept, quiet bit set."""
    smb, _, _, sw = FMT[src]
    dmb, _, _, dw = FMT[dst]
    sign = (src_bits >> (sw - 1)) & 1
    payload = src_bits & ((1 << smb) - 1)
    payload = payload >> (smb - dmb) if smb >= dmb else payload << (dmb - smb)
    return (sign << (dw - 1)) | inf_bits(dst) | (1 << (dmb - 1)) | payload


def ref_to_int(v: float, mode: str) -> int:
    if math.isnan(v):
        return 0
    if math.isinf(v):
        return nx.INT32_MAX if v > 0 else nx.INT32_MIN
    fl = math.floor(v)
    d = Fraction(v) - fl
    if mode == "floor":
        n = fl
    elif mode == "ceil":
        n = math.ceil(v)
    elif mode == "trunc":
        n = math.trunc(v)
    elif mode == "round":
        n = fl + 1 if d > Fraction(1, 2) or (d == Fraction(1, 2) and v > 0) else fl
    else:
        n = fl + 1 if d > Fraction(1, 2) or (d == Fraction(1, 2) and fl % 2 == 1) else fl
    return max(nx.INT32_MIN, min(nx.INT32_MAX, n))


def check_cast(x: np.ndarray, dt: str, mode: str) -> None:
    """Compare nx.cast of float/int array x to ref_cast (NaN inputs by the contract)."""
    src = dtype_name(x.dtype)
    got = bits_of(nx.cast(x, dt, mode)).astype(np.uint64)
    if src == "int32":
        want = ref_cast(x.astype(np.float64), dt, mode)
    else:
        with np.errstate(invalid="ignore"):  # signalling NaNs
            nan = np.isnan(x)
            want = ref_cast(np.where(nan, 0.0, x.astype(np.float64)), dt, mode)
        if nan.any():
            sb = bits_of(x)[nan]
            want[nan] = [ref_nan(int(b), src, dt) for b in sb]
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, (
        f"{src}->{dt} {mode}: {bad.size} mismatches, first input bits "
        f"{hex(int(bits_of(x)[bad[0]])) if src != 'int32' else int(x[bad[0]])}: "
        f"got {hex(int(got[bad[0]]))}, want {hex(int(want[bad[0]]))}"
    )


# ------------------------------------------------------------------------------------------------------
# input sets
# ------------------------------------------------------------------------------------------------------


def bf16_neighbourhood() -> np.ndarray:
    """For every bf16 pattern: the fp32 value at it, at the tie above, one fp32 ulp either side of the
    tie, and the next/last fp32 inside its rounding interval. NaNs dropped."""
    base = np.arange(1 << 16, dtype=np.uint32) << 16
    offs = np.array([0x0000, 0x8000, 0x7FFF, 0x8001, 0x0001, 0xFFFF], dtype=np.uint32)
    x = (base[:, None] | offs[None, :]).ravel().view(np.float32)
    return x[~np.isnan(x)]


def fp16_neighbourhood() -> np.ndarray:
    """For every finite fp16 magnitude (both signs): the fp32 values at it, at the midpoint to the next
    fp16 up, and one fp32 ulp either side of that midpoint; plus values below fp16's subnormal range
    and beyond its max."""
    mag = np.arange(0x7C00, dtype=np.uint16)
    v = mag.view(np.float16).astype(np.float64)
    nxt = np.where(
        mag + 1 == 0x7C00, 65536.0, (mag + 1).astype(np.uint16).view(np.float16).astype(np.float64)
    )
    mid = ((v + nxt) / 2).astype(np.float32)
    assert (mid.astype(np.float64) == (v + nxt) / 2).all()
    pts = [v.astype(np.float32), mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(0))]
    tiny = [
        2.0**-25,
        2.0**-26,
        2.0**-24 * 0.75,
        2.0**-24 * 1.25,
        2.0**-30,
        2.0**-126,
        2.0**-149,
        1e-30,
        2.0**-24 * 1.5,
    ]
    tiny32 = np.array(tiny, dtype=np.float32)
    extra = [tiny32, np.nextafter(tiny32, np.float32(np.inf)), np.nextafter(tiny32, np.float32(0))]
    big = np.array([65504, 65519, 65520, 65521, 65535, 65536, 1e5, 3.0e38, 3.4028235e38], dtype=np.float32)
    x = np.concatenate([*pts, *extra, big])
    return np.concatenate([x, -x])


# ------------------------------------------------------------------------------------------------------
# the reference itself is checked against the Fraction definition on a sample
# ------------------------------------------------------------------------------------------------------


def test_reference_agrees_with_fraction_definition():
    rng = np.random.default_rng(7)
    x = rng.choice(bf16_neighbourhood(), 300)
    x = np.concatenate([x, rng.choice(fp16_neighbourhood(), 300)])
    for dt in ("bf16", "fp16"):
        for mode in MODES:
            vec = ref_cast(x.astype(np.float64), dt, mode)
            for xi, vi in zip(x, vec, strict=True):
                if np.isinf(xi):
                    continue
                want = ref_round_fraction(Fraction(float(xi)), dt, mode, bool(np.signbit(xi)))
                assert int(vi) == want, (float(xi), dt, mode, hex(int(vi)), hex(want))


# ------------------------------------------------------------------------------------------------------
# float -> float
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_fp32_to_bf16_all_neighbourhoods(mode):
    check_cast(bf16_neighbourhood(), "bf16", mode)


@pytest.mark.parametrize("mode", MODES)
def test_fp32_to_fp16_neighbourhoods(mode):
    check_cast(fp16_neighbourhood(), "fp16", mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("src", "dst"), [("bf16", "fp16"), ("fp16", "bf16")])
def test_half_to_half_exhaustive(mode, src, dst):
    x = np.arange(1 << 16, dtype=np.uint16).view(NP[src])
    check_cast(x, dst, mode)


@pytest.mark.parametrize("src", ["bf16", "fp16"])
def test_widening_to_fp32_is_exact_exhaustive(src):
    x = np.arange(1 << 16, dtype=np.uint16).view(NP[src])
    for mode in MODES:
        got = nx.cast(x, "fp32", mode)
        with np.errstate(invalid="ignore"):
            nan = np.isnan(x)
        assert (bits_of(got)[~nan] == bits_of(x[~nan].astype(np.float32))).all()
        want_nan = [ref_nan(int(b), src, "fp32") for b in bits_of(x)[nan]]
        assert bits_of(got)[nan].tolist() == want_nan


def test_same_dtype_is_a_copy():
    x = np.array([1.5, np.nan, -0.0], dtype=np.float32)
    y = nx.cast(x, "fp32")
    assert y is not x and (bits_of(y) == bits_of(x)).all()
    y[0] = 7
    assert x[0] == 1.5


@HYP
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=64))
def test_fp32_patterns_hypothesis(patterns):
    x = np.array(patterns, dtype=np.uint32).view(np.float32)
    for dt in ("bf16", "fp16"):
        for mode in MODES:
            check_cast(x, dt, mode)


def test_explicit_ties_and_overflow():
    f = np.float32
    cases = {  # fp32 bits -> {mode: bf16 bits}
        0x3F808000: {"round": 0x3F81, "rint": 0x3F80, "floor": 0x3F80, "ceil": 0x3F81, "trunc": 0x3F80},
        0xBF808000: {"round": 0xBF81, "rint": 0xBF80, "floor": 0xBF81, "ceil": 0xBF80, "trunc": 0xBF80},
        0x3F818000: {"round": 0x3F82, "rint": 0x3F82, "floor": 0x3F81, "ceil": 0x3F82, "trunc": 0x3F81},
        0x7F7F8000: {"round": 0x7F80, "rint": 0x7F80, "floor": 0x7F7F, "ceil": 0x7F80, "trunc": 0x7F7F},
        0xFF7F8000: {"round": 0xFF80, "rint": 0xFF80, "floor": 0xFF80, "ceil": 0xFF7F, "trunc": 0xFF7F},
        0x7F7F7FFF: {"round": 0x7F7F, "rint": 0x7F7F, "floor": 0x7F7F, "ceil": 0x7F80, "trunc": 0x7F7F},
        0x7F7FFFFF: {"round": 0x7F80, "rint": 0x7F80, "floor": 0x7F7F, "ceil": 0x7F80, "trunc": 0x7F7F},
        0x7F800000: {m: 0x7F80 for m in MODES},
        0xFF800000: {m: 0xFF80 for m in MODES},
        0x00000000: {m: 0x0000 for m in MODES},
        0x80000000: {m: 0x8000 for m in MODES},
        0x00008000: {"round": 0x0001, "rint": 0x0000, "floor": 0x0000, "ceil": 0x0001, "trunc": 0x0000},
        0x80018000: {"round": 0x8002, "rint": 0x8002, "floor": 0x8002, "ceil": 0x8001, "trunc": 0x8001},
        0x00000001: {"round": 0x0000, "rint": 0x0000, "floor": 0x0000, "ceil": 0x0001, "trunc": 0x0000},
        0x80000001: {"round": 0x8000, "rint": 0x8000, "floor": 0x8001, "ceil": 0x8000, "trunc": 0x8000},
    }
    for b, want in cases.items():
        x = np.array([b], dtype=np.uint32).view(f)
        for mode, w in want.items():
            assert int(bits_of(nx.cast(x, "bf16", mode))[0]) == w, (hex(b), mode)
    fp16_cases = {  # fp32 value -> {mode: fp16 bits}
        1 + 2.0**-11: {"round": 0x3C01, "rint": 0x3C00, "floor": 0x3C00, "ceil": 0x3C01, "trunc": 0x3C00},
        65520.0: {"round": 0x7C00, "rint": 0x7C00, "floor": 0x7BFF, "ceil": 0x7C00, "trunc": 0x7BFF},
        -65520.0: {"round": 0xFC00, "rint": 0xFC00, "floor": 0xFC00, "ceil": 0xFBFF, "trunc": 0xFBFF},
        1e10: {"round": 0x7C00, "rint": 0x7C00, "floor": 0x7BFF, "ceil": 0x7C00, "trunc": 0x7BFF},
        2.0**-25: {"round": 0x0001, "rint": 0x0000, "floor": 0x0000, "ceil": 0x0001, "trunc": 0x0000},
        3 * 2.0**-25: {"round": 0x0002, "rint": 0x0002, "floor": 0x0001, "ceil": 0x0002, "trunc": 0x0001},
        -(2.0**-30): {"round": 0x8000, "rint": 0x8000, "floor": 0x8001, "ceil": 0x8000, "trunc": 0x8000},
        2.0**-149: {"round": 0x0000, "rint": 0x0000, "floor": 0x0000, "ceil": 0x0001, "trunc": 0x0000},
    }
    for v, want in fp16_cases.items():
        x = np.array([v], dtype=f)
        for mode, w in want.items():
            assert int(bits_of(nx.cast(x, "fp16", mode))[0]) == w, (v, mode)


def test_nan_payloads_and_signs():
    pats = [0x7F800001, 0xFF800001, 0x7FC00000, 0xFFC00000, 0x7FA00000, 0x7FC12345, 0xFFFFFFFF, 0x7F80FFFF]
    x = np.array(pats, dtype=np.uint32).view(np.float32)
    for dt in ("bf16", "fp16"):
        for mode in MODES:
            got = bits_of(nx.cast(x, dt, mode))
            assert got.tolist() == [ref_nan(p, "fp32", dt) for p in pats]
            assert np.isnan(nx.cast(x, dt, mode)).all()
    assert bits_of(nx.cast(x, "bf16"))[:4].tolist() == [0x7FC0, 0xFFC0, 0x7FC0, 0xFFC0]
    assert bits_of(nx.cast(x, "fp16"))[5] == 0x7E09  # payload 0x412345 >> 13 = 0x209, quiet bit set
    h = np.array([0x7C01, 0xFD55], dtype=np.uint16).view(np.float16)
    assert bits_of(nx.cast(h, "fp32")).tolist() == [0x7FC02000, 0xFFEAA000]
    assert bits_of(nx.cast(h, "bf16")).tolist() == [0x7FC0, 0xFFEA]


# ------------------------------------------------------------------------------------------------------
# rint equals the libraries' own (ties-to-even) conversions
# ------------------------------------------------------------------------------------------------------


def test_rint_equals_ml_dtypes_and_numpy():
    x = bf16_neighbourhood()
    assert (bits_of(nx.cast(x, "bf16", "rint")) == bits_of(x.astype(ml_dtypes.bfloat16))).all()
    with np.errstate(over="ignore"):
        y = fp16_neighbourhood()
        assert (bits_of(nx.cast(y, "fp16", "rint")) == bits_of(y.astype(np.float16))).all()
        x2 = np.concatenate([x, y])
        assert (bits_of(nx.cast(x2, "fp16", "rint")) == bits_of(x2.astype(np.float16))).all()
    h = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    h = h[~np.isnan(h)]
    assert (bits_of(nx.cast(h, "bf16", "rint")) == bits_of(h.astype(ml_dtypes.bfloat16))).all()
    b = np.arange(1 << 16, dtype=np.uint16).view(ml_dtypes.bfloat16)
    with np.errstate(invalid="ignore"):
        b = b[~np.isnan(b)]
    with np.errstate(over="ignore"):
        assert (bits_of(nx.cast(b, "fp16", "rint")) == bits_of(b.astype(np.float16))).all()


@HYP
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=64))
def test_rint_equals_libraries_hypothesis(patterns):
    x = np.array(patterns, dtype=np.uint32).view(np.float32)
    x = x[~np.isnan(x)]
    assert (bits_of(nx.cast(x, "bf16", "rint")) == bits_of(x.astype(ml_dtypes.bfloat16))).all()
    with np.errstate(over="ignore"):
        assert (bits_of(nx.cast(x, "fp16", "rint")) == bits_of(x.astype(np.float16))).all()
    small = x[np.abs(x) < 2.0**31]
    assert (nx.cast(small, "int32", "rint") == np.rint(small.astype(np.float64)).astype(np.int32)).all()


# ------------------------------------------------------------------------------------------------------
# float <-> int32
# ------------------------------------------------------------------------------------------------------


def check_to_int(x: np.ndarray) -> None:
    for mode in MODES:
        got = nx.cast(x, "int32", mode)
        assert got.dtype == np.int32
        with np.errstate(invalid="ignore"):
            x64 = x.astype(np.float64)
        want = [ref_to_int(float(v), mode) for v in x64]
        assert got.tolist() == want, mode


def test_float_to_int_hand_built():
    vals = [
        0.5,
        1.5,
        2.5,
        -0.5,
        -1.5,
        -2.5,
        0.49999997,
        0.50000006,
        -0.0,
        0.0,
        1e-45,
        -1e-45,
        3.7,
        -3.7,
        2147483520.0,
        2147483648.0,
        -2147483648.0,
        -2147483904.0,
        1e20,
        -1e20,
        np.inf,
        -np.inf,
        np.nan,
        -np.nan,
        8388607.5,
        -8388607.5,
        16777215.0,
        4194303.5,
    ]
    check_to_int(np.array(vals, dtype=np.float32))
    got = nx.cast(np.array([2.5, -2.5, np.nan, 3e9, -3e9], dtype=np.float32), "int32")
    assert got.tolist() == [3, -3, 0, nx.INT32_MAX, nx.INT32_MIN]


@pytest.mark.parametrize("src", ["bf16", "fp16"])
def test_half_to_int_exhaustive(src):
    check_to_int(np.arange(1 << 16, dtype=np.uint16).view(NP[src]))


@HYP
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=32))
def test_fp32_to_int_hypothesis(patterns):
    check_to_int(np.array(patterns, dtype=np.uint32).view(np.float32))


def test_int_to_float_hand_built():
    p24 = 1 << 24
    ints = [
        0,
        1,
        -1,
        p24,
        p24 + 1,
        p24 + 2,
        p24 + 3,
        -(p24 + 1),
        -(p24 + 3),
        (1 << 25) + 2,
        (1 << 25) + 6,
        (1 << 25) + 1,
        2**31 - 1,
        -(2**31),
        2**31 - 64,
        2**31 - 65,
        2**31 - 192,
        65504,
        65519,
        65520,
        65535,
        65536,
        70000,
        -65520,
        2049,
        2051,
        4097,
        257,
        259,
        -259,
        123456789,
    ]
    x = np.array(ints, dtype=np.int32)
    for dt in FLOATS:
        for mode in MODES:
            check_cast(x, dt, mode)
    assert bits_of(nx.cast(np.array([p24 + 1], np.int32), "fp32"))[0] == 0x4B800001  # tie away: 2^24 + 2
    assert nx.cast(np.array([p24 + 1], np.int32), "fp32", "rint")[0] == p24
    assert nx.cast(np.array([65520], np.int32), "fp16")[0] == np.inf
    assert nx.cast(np.array([65520], np.int32), "fp16", "trunc")[0] == 65504


@HYP
@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=64))
def test_int_to_float_hypothesis(ints):
    x = np.array(ints, dtype=np.int32)
    for dt in FLOATS:
        for mode in MODES:
            check_cast(x, dt, mode)
    assert (nx.cast(x, "fp32", "rint") == x.astype(np.float32)).all()


def test_cast_errors():
    x = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError):
        nx.cast(x, "bf16", "nearest")
    with pytest.raises(ValueError):
        nx.cast(x, "uint16")
    with pytest.raises(ValueError):
        nx.cast(np.zeros(2, dtype=np.float64), "fp32")
