"""The storage dtypes (int8, int64, fp8e4m3fn, fp8e5m2): casts in every mode and matmul operands, each against
an independent implementation: rounding by searching every code of the format, Python integers and
`fractions.Fraction` sums, never npusim's own rounding helpers."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from npusim import numerics as nx

MODES = ("round", "rint", "floor", "ceil", "trunc")
FP8 = {"fp8e4m3fn": ml_dtypes.float8_e4m3fn, "fp8e5m2": ml_dtypes.float8_e5m2}


def _codes(dt: str) -> tuple[np.ndarray, np.ndarray]:
    """Every finite non-negative value of an FP8 format and its code, by decoding all 256 bit patterns."""
    codes = np.arange(256, dtype=np.uint8)
    values = codes.view(FP8[dt]).astype(np.float64)
    keep = np.isfinite(values) & (codes < 0x80)
    return values[keep], codes[keep]


def _nearest_code(v: float, dt: str, mode: str) -> int:
    """The code a saturating rounding of `v` gives, found by search: the candidates below and above |v|."""
    values, codes = _codes(dt)
    sign = 0x80 if math.copysign(1.0, v) < 0 else 0
    if math.isnan(v):
        return -1
    mag = abs(v)
    top = values.max()
    if mag >= top:  # saturating: beyond the largest finite value (infinities too)
        return sign | int(codes[values.argmax()])
    below = values[values <= mag].max()
    above = values[values >= mag].min()
    code_of = {float(x): int(c) for x, c in zip(values, codes, strict=True)}
    if below == above:
        return sign | code_of[float(below)]
    toward_zero, away = below, above
    neg = sign != 0
    if mode == "trunc":
        pick = toward_zero
    elif mode == "floor":
        pick = away if neg else toward_zero
    elif mode == "ceil":
        pick = toward_zero if neg else away
    else:
        d_lo, d_hi = Fraction(mag) - Fraction(below), Fraction(above) - Fraction(mag)
        if d_lo != d_hi:
            pick = below if d_lo < d_hi else above
        elif mode == "round":
            pick = above  # ties away from zero
        else:
            pick = below if code_of[float(below)] % 2 == 0 else above  # ties to the even code
    return sign | code_of[float(pick)]


def _samples(rng: np.random.Generator) -> np.ndarray:
    """fp32 inputs covering every FP8 binade, midpoints between codes, the saturation edge and specials."""
    mids = []
    for dt in FP8:
        values, _ = _codes(dt)
        values = np.sort(values)
        mids += list((values[1:] + values[:-1]) / 2) + list(values)
    x = np.concatenate([np.array(mids), rng.uniform(-600, 600, 400), 2.0 ** rng.uniform(-20, 17, 400),
                        [0.0, -0.0, 448.0, 464.0, 480.0, 57344.0, 61440.0, 1e30, -1e30, np.inf, -np.inf, np.nan]])
    x = np.concatenate([x, -x])
    return x.astype(np.float32)


@pytest.mark.parametrize("dt", list(FP8))
@pytest.mark.parametrize("mode", MODES)
def test_cast_to_fp8_matches_a_search_of_every_code(dt: str, mode: str) -> None:
    x = _samples(np.random.default_rng(7))
    got = nx.cast(x, dt, mode).view(np.uint8)
    for v, g in zip(x.astype(np.float64), got, strict=True):
        want = _nearest_code(float(v), dt, mode)
        if want < 0:
            assert np.isnan(np.array([g], np.uint8).view(FP8[dt])[0])
        else:
            assert int(g) == want, (dt, mode, v, hex(int(g)), hex(want))


@pytest.mark.parametrize("dt", list(FP8))
def test_fp8_widening_is_exact(dt: str) -> None:
    codes = np.arange(256, dtype=np.uint8).view(FP8[dt])
    for to in ("fp32", "fp16", "bf16"):
        back = nx.cast(codes, to, "rint").astype(np.float64)
        ref = codes.astype(np.float64)  # ml_dtypes' decoding of every code
        same = (back == ref) | (np.isnan(back) & np.isnan(ref))
        assert same.all(), to


def _round_int(v: Fraction, mode: str) -> int:
    fl = math.floor(v)
    if mode == "floor":
        return fl
    if mode == "ceil":
        return math.ceil(v)
    if mode == "trunc":
        return int(v)
    frac = v - fl
    if frac != Fraction(1, 2):
        return fl + (frac > Fraction(1, 2))
    if mode == "rint":
        return fl + (fl % 2)
    return fl + 1 if v > 0 else fl  # ties away from zero


@pytest.mark.parametrize("dt,lo,hi", [("int8", -128, 127), ("int64", -(2**63), 2**63 - 1)])
@pytest.mark.parametrize("mode", MODES)
def test_float_to_int_rounds_and_saturates(dt: str, lo: int, hi: int, mode: str) -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-300, 300, 500).round(1), np.arange(-200, 200) + 0.5,
                        [1e19, -1e19, 2.0**62 * 1.5, -(2.0**63), 9.2e18, np.inf, -np.inf, np.nan, -0.0]])
    got = nx.cast(x.astype(np.float64).astype(np.float32), dt, mode)
    for v, g in zip(x.astype(np.float32).astype(np.float64), got, strict=True):
        want = 0 if math.isnan(v) else (lo if v < 0 else hi) if math.isinf(v) else \
            min(max(_round_int(Fraction(v), mode), lo), hi)
        assert int(g) == want, (dt, mode, v)


def _fp32_nearest_even(q: Fraction) -> float:
    """The fp32 nearest to an exact rational (ties to even), by comparing with the neighbours of a guess."""
    guess = np.float32(float(q))
    cands = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - q), int(np.array([c]).view(np.uint32)[0]) & 1))
    return float(best)


def test_int64_to_fp32_is_one_correct_rounding() -> None:
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.integers(-(2**62), 2**62, 300), [2**53 + 1, 2**60 + 2**36 + 1, -(2**63), 2**63 - 1,
                                                           2**24 + 1, 3 * 2**40 + 2**15]]).astype(np.int64)
    got = nx.cast(x, "fp32", "rint")
    for v, g in zip(x, got, strict=True):
        assert float(g) == _fp32_nearest_even(Fraction(int(v))), int(v)


def test_int_narrowing_saturates() -> None:
    x = np.array([-(2**31), -129, -128, 0, 127, 128, 2**31 - 1], dtype=np.int32)
    assert nx.cast(x, "int8").tolist() == [-128, -128, -128, 0, 127, 127, 127]
    assert nx.cast(x, "int64").tolist() == x.tolist()


def test_int8_matmul_is_the_exact_integer_product() -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, (16, 96)).astype(np.int8)
    b = rng.integers(-128, 128, (96, 32)).astype(np.int8)
    got = nx.matmul(a, b, out_dtype="int32")
    want = [[sum(int(a[i, k]) * int(b[k, j]) for k in range(96)) for j in range(32)] for i in range(16)]
    assert got.dtype == np.int32 and got.tolist() == want
    acc = np.full((16, 32), 7, dtype=np.int32)
    assert (nx.matmul_acc(acc, a, b) == got + 7).all()


@pytest.mark.parametrize("dt", list(FP8))
def test_fp8_matmul_is_one_rounding_of_the_exact_sum(dt: str) -> None:
    rng = np.random.default_rng(13)
    k = 40
    a = rng.normal(0, 4, (8, k)).astype(FP8[dt])
    b = (rng.normal(0, 1, (k, 6)) * 2.0 ** rng.integers(-8, 8, (k, 6))).astype(FP8[dt])
    got = nx.matmul(a, b, out_dtype="fp32")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for i in range(8):
        for j in range(6):
            exact = sum(Fraction(a64[i, t]) * Fraction(b64[t, j]) for t in range(k))
            assert float(got[i, j]) == _fp32_nearest_even(exact), (i, j)


def test_transposed_operands() -> None:
    rng = np.random.default_rng(17)
    a = rng.normal(size=(24, 16)).astype(ml_dtypes.bfloat16)  # stored [K, M]
    b = rng.normal(size=(8, 24)).astype(ml_dtypes.bfloat16)  # stored [N, K]
    got = nx.matmul(a, b, a_trans=True, b_trans=True)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for i in range(16):
        for j in range(8):
            exact = sum(Fraction(a64[t, i]) * Fraction(b64[j, t]) for t in range(24))
            assert float(got[i, j]) == _fp32_nearest_even(exact)


def test_vector_ops_refuse_storage_types() -> None:
    with pytest.raises(ValueError, match="not defined for int8"):
        nx.add(np.zeros(4, np.int8), np.zeros(4, np.int8))
