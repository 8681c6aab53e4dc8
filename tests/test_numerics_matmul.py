"""matmul / matmul_acc of npusim.numerics against exact rational arithmetic.

The reference sums the exact products as fractions.Fraction and rounds the exact sum once with its own
Fraction-based rounding (`round_exact` below), written independently of the module.
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
from npusim.numerics.formats import FMTS, round_f64
from npusim.numerics.matmul import _exact_dot_limbs, _exponent_spans, _two_band_product

NP = {"bf16": np.dtype(ml_dtypes.bfloat16), "fp16": np.dtype(np.float16), "fp32": np.dtype(np.float32)}
FMT = {"bf16": (8, -126, 127), "fp16": (11, -14, 15), "fp32": (24, -126, 127)}  # precision, emin, emax
CANON_NAN = 0x7FC00000
HYP = settings(max_examples=300, deadline=None)


def round_exact(q: Fraction, dt: str) -> float:
    """q rounded to nearest-even in `dt` with IEEE overflow, as a Python float (+0.0 for exact zero)."""
    p, emin, emax = FMT[dt]
    if q == 0:
        return 0.0
    a = abs(q)
    e = math.floor(math.log2(a.numerator)) - math.floor(math.log2(a.denominator))
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    ulp = Fraction(2) ** (max(e, emin) - p + 1)
    n, rem = divmod(a, ulp)
    if rem * 2 > ulp or (rem * 2 == ulp and n % 2 == 1):
        n += 1
    mag = n * ulp
    max_finite = (2 - Fraction(2) ** (1 - p)) * Fraction(2) ** emax
    mag_f = math.inf if mag > max_finite else float(mag)  # float(mag) is exact: <= 24 significant bits
    return -mag_f if q < 0 else mag_f


def exact_matmul(a: np.ndarray, b: np.ndarray) -> list[list[Fraction]]:
    fa = [[Fraction(float(v)) for v in row] for row in a.astype(np.float64)]
    fb = [[Fraction(float(v)) for v in row] for row in b.astype(np.float64)]
    k = a.shape[1]
    return [
        [sum((fa[i][t] * fb[t][j] for t in range(k)), Fraction(0)) for j in range(b.shape[1])]
        for i in range(a.shape[0])
    ]


def check_exact(a: np.ndarray, b: np.ndarray, out_dtype: str = "fp32", cells=None) -> None:
    got = nx.matmul(a, b, out_dtype=out_dtype)
    assert got.dtype == NP[out_dtype] and got.shape == (a.shape[0], b.shape[1])
    cells = cells or [(i, j) for i in range(a.shape[0]) for j in range(b.shape[1])]
    fa = a.astype(np.float64)
    fb = b.astype(np.float64)
    for i, j in cells:
        q = sum(
            (Fraction(float(x)) * Fraction(float(y)) for x, y in zip(fa[i], fb[:, j], strict=True)),
            Fraction(0),
        )
        want = np.array([round_exact(q, out_dtype)]).astype(NP[out_dtype])
        assert got[i, j].tobytes() == want.tobytes(), (i, j, float(q), got[i, j], want[0])


def half_values(dt: str) -> st.SearchStrategy[int]:
    """Finite bit patterns of `dt`: the whole range, values near 1, and powers of two."""
    top = 0x7F80 if dt == "bf16" else 0x7C00
    mag = st.one_of(
        st.integers(0, top - 1),
        st.integers(0x3F00, 0x4000) if dt == "bf16" else st.integers(0x3800, 0x4000),
        st.integers(0, (top >> (7 if dt == "bf16" else 10)) - 1).map(
            lambda e: e << (7 if dt == "bf16" else 10)
        ),
    )
    return st.tuples(mag, st.booleans()).map(lambda t: t[0] | (0x8000 if t[1] else 0))


@st.composite
def operands(draw, dt: str):
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 16)), draw(st.integers(1, 4))
    vals = half_values(dt)
    a = np.array(draw(st.lists(vals, min_size=m * k, max_size=m * k)), dtype=np.uint16).reshape(m, k)
    b = np.array(draw(st.lists(vals, min_size=k * n, max_size=k * n)), dtype=np.uint16).reshape(k, n)
    if draw(st.booleans()):  # cancellation: append -a's row values against b's first rows
        a = np.concatenate([a, a ^ 0x8000], axis=1)
        b = np.concatenate([b, b], axis=0)
    return a.view(NP[dt]), b.view(NP[dt])


@pytest.mark.parametrize("dt", ["bf16", "fp16"])
@HYP
@given(data=st.data())
def test_small_random_exact(dt, data):
    a, b = data.draw(operands(dt))
    out = data.draw(st.sampled_from(["fp32", "fp32", "bf16", "fp16"]))
    check_exact(a, b, out)


@HYP
@given(st.lists(st.integers(0, 2**32 - 1), min_size=2, max_size=32), st.integers(1, 8))
def test_fp32_operands_exact(patterns, k):
    x = np.array(patterns, dtype=np.uint32).view(np.float32)
    x = np.where(np.isfinite(x), x, np.float32(1.5))
    k = min(k, len(x) // 2)
    a = x[:k].reshape(1, k)
    b = x[k : 2 * k].reshape(k, 1)
    check_exact(np.concatenate([a, a * np.float32(0.75)]), np.concatenate([b, b[::-1]], axis=1))


def split_bf16(v: Fraction, parts: int) -> list[float]:
    """Exact bf16 pieces (each v's leading 8 bits, truncated) whose sum is v."""
    out = []
    for _ in range(parts):
        if v == 0:
            out.append(0.0)
            continue
        e = math.floor(math.log2(abs(v)))
        while Fraction(2) ** e > abs(v):
            e -= 1
        while Fraction(2) ** (e + 1) <= abs(v):
            e += 1
        quantum = Fraction(2) ** (e - 7)
        piece = math.trunc(v / quantum) * quantum
        out.append(float(piece))
        v -= piece
    assert v == 0
    return out


@HYP
@given(
    st.integers(0, 2**23 - 1),
    st.integers(-20, 20),
    st.sampled_from([0, 1, -1]),
    st.integers(26, 100),
    st.booleans(),
)
def test_sums_on_and_next_to_fp32_midpoints(mantissa, exponent, side, tiny_exp, negative):
    """The exact sum is an fp32 midpoint, or a midpoint plus/minus a tiny bf16 term."""
    lo = Fraction((1 << 23) + mantissa, 1 << 23) * Fraction(2) ** exponent
    mid = lo + Fraction(2) ** (exponent - 24)
    pieces = split_bf16(mid, 4)
    pieces.append(side * 2.0 ** (exponent - tiny_exp))
    sign = -1.0 if negative else 1.0
    a = np.array([[sign * p for p in pieces]], dtype=ml_dtypes.bfloat16)
    b = np.ones((len(pieces), 2), dtype=ml_dtypes.bfloat16)
    b[:, 1] = np.array([1, 1, 1, 1, -1], dtype=ml_dtypes.bfloat16)[: len(pieces)]
    check_exact(a, b)
    q = Fraction(sign) * (mid + side * Fraction(2) ** (exponent - tiny_exp))
    assert float(nx.matmul(a, b)[0, 0]) == round_exact(q, "fp32")


def test_midpoint_hand_cases():
    one = np.ones((3, 1), dtype=ml_dtypes.bfloat16)
    for tail, want in [(0.0, 1.0), (2.0**-60, 1 + 2.0**-23), (-(2.0**-60), 1.0)]:
        a = np.array([[1.0, 2.0**-24, tail]], dtype=ml_dtypes.bfloat16)
        assert nx.matmul(a, one)[0, 0] == np.float32(want)
    a = np.array([[1.0, 3 * 2.0**-24, 0.0]], dtype=ml_dtypes.bfloat16)  # tie above an odd: rounds up
    assert nx.matmul(a, one)[0, 0] == np.float32(1 + 2.0**-22)


def test_large_random_uniform():
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.5, 0.5, (16, 128)).astype(ml_dtypes.bfloat16)
    b = rng.uniform(-0.5, 0.5, (128, 64)).astype(ml_dtypes.bfloat16)
    check_exact(a, b)


def test_large_wide_exponents():
    """Softmax-like rows spanning ~70 binades: the exact limb path, checked on a sample of cells."""
    rng = np.random.default_rng(1)
    a = (np.exp(rng.normal(0, 8, (16, 128))) * rng.choice([-1, 1], (16, 128))).astype(ml_dtypes.bfloat16)
    b = rng.uniform(-0.5, 0.5, (128, 64)).astype(ml_dtypes.bfloat16)
    cells = [(int(i), int(j)) for i, j in zip(rng.integers(0, 16, 96), rng.integers(0, 64, 96), strict=True)]
    check_exact(a, b, cells=cells)
    check_exact(a, b, "bf16", cells=cells[:32])


def test_exact_limbs_helper_directly():
    """The limb path on data the certificate would also accept: both must be exact."""
    rng = np.random.default_rng(2)
    a = rng.uniform(-4, 4, (5, 40)).astype(ml_dtypes.bfloat16)
    b = rng.uniform(-4, 4, (40, 6)).astype(ml_dtypes.bfloat16)
    a[0, 0] = 2.0**-100
    ua = _exponent_spans(a.view(np.uint16), FMTS["bf16"], axis=1)
    ub = _exponent_spans(b.view(np.uint16), FMTS["bf16"], axis=0)
    got = _exact_dot_limbs(a.astype(np.float64), b.astype(np.float64), ua[1], ub[1], ua[0], ub[0])
    want = exact_matmul(a, b)
    for i in range(5):
        for j in range(6):
            assert np.float32(got[i, j]) == np.float32(round_exact(want[i][j], "fp32"))
            assert round_f64(got[i : i + 1, j], "bf16", "rint")[0] == round_exact(want[i][j], "bf16")


def test_overflow_cancellation_and_zero_sign():
    big = np.array([[2.0**127, 2.0**127]], dtype=ml_dtypes.bfloat16)
    assert nx.matmul(big, np.array([[4.0], [4.0]], dtype=ml_dtypes.bfloat16))[0, 0] == np.inf
    assert nx.matmul(-big, np.array([[4.0], [4.0]], dtype=ml_dtypes.bfloat16))[0, 0] == -np.inf
    assert nx.matmul(big, np.array([[4.0], [-4.0]], dtype=ml_dtypes.bfloat16))[0, 0] == 0
    a = np.array([[-0.0, -0.0], [1.0, -1.0]], dtype=ml_dtypes.bfloat16)
    b = np.array([[1.0], [1.0]], dtype=ml_dtypes.bfloat16)
    assert nx.matmul(a, b).view(np.uint32).ravel().tolist() == [0, 0]  # exact zero sums are +0
    tiny = np.array([[2.0**-133]], dtype=ml_dtypes.bfloat16)
    r = nx.matmul(-tiny, tiny)  # 2**-266 rounds to -0 in fp32
    assert r.view(np.uint32)[0, 0] == 0x80000000
    assert nx.matmul(np.zeros((2, 0), np.float32), np.zeros((0, 3), np.float32)).tolist() == [[0.0] * 3] * 2


def ref_nonfinite(a: np.ndarray, b: np.ndarray) -> list[list[float]]:
    """IEEE value classes with Python floats (exact enough: only inf/NaN/sign matter here)."""
    out = []
    for row in a.astype(np.float64).tolist():
        out_row = []
        for j in range(b.shape[1]):
            prods = [x * y for x, y in zip(row, b[:, j].astype(np.float64).tolist(), strict=True)]
            if any(math.isnan(p) for p in prods) or (math.inf in prods and -math.inf in prods):
                out_row.append(math.nan)
            elif math.inf in prods:
                out_row.append(math.inf)
            elif -math.inf in prods:
                out_row.append(-math.inf)
            else:
                out_row.append(None)
        out.append(out_row)
    return out


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_inf_nan_inputs(data):
    a, b = data.draw(operands("bf16"))
    a, b = a.copy(), b.copy()
    specials = [np.inf, -np.inf, np.nan, 0.0]
    for arr in (a, b):
        for _ in range(data.draw(st.integers(1, 3))):
            i, j = data.draw(st.integers(0, arr.shape[0] - 1)), data.draw(st.integers(0, arr.shape[1] - 1))
            arr[i, j] = data.draw(st.sampled_from(specials))
    got = nx.matmul(a, b)
    want = ref_nonfinite(a, b)
    finite_cells = [(i, j) for i in range(a.shape[0]) for j in range(b.shape[1]) if want[i][j] is None]
    if finite_cells:
        check_exact(a, b, cells=finite_cells)
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            w = want[i][j]
            if w is None:
                continue
            if math.isnan(w):
                assert got[i : i + 1, j].view(np.uint32)[0] == CANON_NAN
            else:
                assert got[i, j] == w


def test_nan_is_canonical():
    a = np.array([[np.inf, 1.0], [1.0, 1.0]], dtype=ml_dtypes.bfloat16)
    b = np.array([[0.0, 1.0], [1.0, -np.inf]], dtype=ml_dtypes.bfloat16)
    got = nx.matmul(a, b).view(np.uint32)
    assert got[0, 0] == CANON_NAN and got[0, 1] == CANON_NAN and got[1, 1] == 0xFF800000
    assert nx.matmul(a, b)[1, 0] == 1.0
    nan = np.array([[0xFFC1]], dtype=np.uint16).view(ml_dtypes.bfloat16)
    assert nx.matmul(nan, np.ones((1, 1), ml_dtypes.bfloat16)).view(np.uint32)[0, 0] == CANON_NAN


def test_b_trans_and_matmul_acc():
    rng = np.random.default_rng(3)
    a = rng.uniform(-1, 1, (16, 64)).astype(ml_dtypes.bfloat16)
    b = rng.uniform(-1, 1, (64, 32)).astype(ml_dtypes.bfloat16)
    ref = nx.matmul(a, b)
    assert (
        nx.matmul(a, np.ascontiguousarray(b.T), b_trans=True).view(np.uint32) == ref.view(np.uint32)
    ).all()
    acc = rng.standard_normal((16, 32)).astype(np.float32)
    got = nx.matmul_acc(acc, a, b)
    assert (got.view(np.uint32) == (acc + ref).view(np.uint32)).all()
    got = nx.matmul_acc(acc, a, np.ascontiguousarray(b.T), b_trans=True)
    assert (got.view(np.uint32) == (acc + ref).view(np.uint32)).all()
    with pytest.raises(ValueError):
        nx.matmul_acc(acc.astype(ml_dtypes.bfloat16), a, b)
    with pytest.raises(ValueError):
        nx.matmul_acc(acc[:8], a, b)


def test_int32_and_errors():
    rng = np.random.default_rng(4)
    a = rng.integers(-(2**31), 2**31, (3, 5)).astype(np.int32)
    b = rng.integers(-(2**31), 2**31, (5, 2)).astype(np.int32)
    got = nx.matmul(a, b, out_dtype="int32")
    for i in range(3):
        for j in range(2):
            s = sum(int(a[i, t]) * int(b[t, j]) for t in range(5))
            assert int(got[i, j]) == ((s + 2**31) % 2**32) - 2**31
    f = np.ones((2, 2), np.float32)
    for x, y, kw in [
        (f, f.astype(ml_dtypes.bfloat16), {}),
        (a, b, {}),
        (f, np.ones((3, 2), np.float32), {}),
        (f, f, {"out_dtype": "int32"}),
        (np.ones(2, np.float32), f, {}),
        (f.astype(np.float64), f.astype(np.float64), {}),
    ]:
        with pytest.raises(ValueError):
            nx.matmul(x, y, **kw)


def test_deterministic_digest():
    rng = np.random.default_rng(5)
    a = rng.uniform(-0.5, 0.5, (16, 256)).astype(ml_dtypes.bfloat16)
    b = rng.uniform(-0.5, 0.5, (256, 128)).astype(ml_dtypes.bfloat16)
    d = {nx.digest(nx.matmul(a, b)) for _ in range(3)}
    assert len(d) == 1
    # the same values through the fast path and the exact limb path agree bit for bit
    fmt = FMTS["bf16"]
    sa, ua, _ = _exponent_spans(a.view(np.uint16), fmt, axis=1)
    sb, ub, _ = _exponent_spans(b.view(np.uint16), fmt, axis=0)
    limbs = _exact_dot_limbs(a.astype(np.float64), b.astype(np.float64), ua, ub, sa, sb)
    assert nx.digest(limbs.astype(np.float32)) == d.pop()


def test_two_band_path_swiglu_like():
    """Rows spanning ~30 binades (SwiGLU outputs), K = 256: too wide for one float64 dgemm, exact with two
    exponent bands; the band path must be taken and agree with the exact rational sums."""
    rng = np.random.default_rng(3)
    g, u = rng.standard_normal((2, 16, 256)) * 0.05
    a = (g / (1 + np.exp(-g)) * u).astype(ml_dtypes.bfloat16)
    b = rng.uniform(-0.5, 0.5, (256, 128)).astype(ml_dtypes.bfloat16) / 160
    b = b.astype(ml_dtypes.bfloat16)
    fmt = FMTS["bf16"]
    span_b, _, _ = _exponent_spans(b.view(np.uint16), fmt, axis=0)
    banded = _two_band_product(a.astype(np.float64), a.view(np.uint16), b.astype(np.float64), span_b, fmt, 8)
    assert banded is not None
    cells = [(i, j) for i in range(16) for j in range(0, 128, 9)]
    check_exact(a, b, cells=cells)
