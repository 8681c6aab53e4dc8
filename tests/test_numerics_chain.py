"""Matmuls computed together: matmul_many (a stack of pairs) and matmul_acc_chain (matmul_acc along a loop)
against exact rational arithmetic, and the interpreter's accumulation loops, whose values are computed when
the loop ends, against the same arithmetic done one iteration at a time in Fractions."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim import numerics as nx
from npusim.frontend import load_program
from npusim.interp import execute
from npusim.numerics.matmul import matmul_many

from .test_numerics_matmul import round_exact

BF16 = ml_dtypes.bfloat16


def _exact(a: np.ndarray, b: np.ndarray) -> list[list[Fraction]]:
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    return [[sum((Fraction(float(x)) * Fraction(float(y)) for x, y in zip(fa[i], fb[:, j], strict=True)),
                 Fraction(0)) for j in range(b.shape[1])] for i in range(a.shape[0])]


def _f32(q: Fraction) -> np.float32:
    return np.float32(round_exact(q, "fp32"))


def _pairs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Six [4, 64] x [64, 5] bf16 pairs: certified by whole-matrix spans, rows spanning ~30 binades (two
    exponent bands), a row too wide for two bands, exact zeros and cancelling sums, an inf and a NaN."""
    m, k, n = 4, 64, 5
    b = rng.uniform(-0.5, 0.5, (6, k, n))
    a = rng.uniform(-0.5, 0.5, (6, m, k))
    a[1] *= np.exp2(rng.integers(-30, 1, (m, k)))  # two bands
    a[2] *= np.exp2(rng.integers(-30, 1, (m, k)))
    a[2, 0] *= np.exp2(rng.integers(-90, 1, k))  # one row wider than two bands: matmul's limbs for it
    a[3, :, ::2] = 0.0
    b[3] = np.repeat(b[3, :1], k, axis=0)
    a[3, 0, 1::2] = a[3, 0, 1::2] * np.array([1, -1] * (k // 4))  # pairs of terms that cancel
    a[4, 1, 7] = np.inf
    b[5, 3, 2] = np.nan
    return a.astype(BF16), b.astype(BF16)


@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True)])
def test_matmul_many_rounds_each_exact_sum_once(trans: tuple[bool, bool], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _pairs(np.random.default_rng(11))
    a_trans, b_trans = trans
    x = np.ascontiguousarray(a.swapaxes(1, 2)) if a_trans else a
    y = np.ascontiguousarray(b.swapaxes(1, 2)) if b_trans else b
    module = sys.modules["npusim.numerics.matmul"]
    one_by_one: list[tuple[int, ...]] = []
    alone = module.matmul
    monkeypatch.setattr(module, "matmul", lambda p, q, **kw: one_by_one.append(p.shape) or alone(p, q, **kw))
    got = matmul_many(x, y, a_trans=a_trans, b_trans=b_trans)
    assert sorted(one_by_one) == [(1, 64), (4, 64), (4, 64)]  # the too-wide row of pair 2, pairs 4 and 5
    assert got.dtype == np.float32 and got.shape == (6, 4, 5)
    for p in range(6):
        if p in (4, 5):  # inf/NaN: the IEEE result class, as matmul gives it (tests/test_numerics_matmul.py)
            assert got[p].tobytes() == nx.matmul(a[p], b[p]).tobytes()
            continue
        want = np.array([[_f32(q) for q in row] for row in _exact(a[p], b[p])], dtype=np.float32)
        assert got[p].tobytes() == want.tobytes(), p


def _bf16(draw: st.DrawFn, count: int, low: int, high: int) -> np.ndarray:
    """`count` bf16 bit patterns with exponent fields in [low, high], random signs and mantissas."""
    fields = draw(st.lists(st.tuples(st.integers(low, high), st.integers(0, 0xFF)), min_size=count, max_size=count))
    return np.array([(e << 7) | (m & 0x7F) | ((m & 0x80) << 8) for e, m in fields], dtype=np.uint16)


@st.composite
def _stacks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """A stack of bf16 pairs whose A rows hold values of two exponent bands, a few binades of B's and the
    same number again some 20-60 binades below them (the tiny values of activations), and in some pairs each
    row's large values again negated against the same rows of B, so that they cancel and the tiny ones decide
    the sum. How far below, and how wide, each band is, is drawn: some rows fit one dgemm, some two bands, some
    need matmul's limbs."""
    p, m, k, n = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 3))
    width = draw(st.integers(0, 8))
    top = draw(st.integers(110, 140))
    below, tiny_width = draw(st.integers(10, 60)), draw(st.integers(0, 40))
    b = _bf16(draw, p * k * n, 120, 120 + width).reshape(p, k, n)
    a = _bf16(draw, p * m * k, top - width, top).reshape(p, m, k)
    tiny = np.array(draw(st.lists(st.booleans(), min_size=a.size, max_size=a.size))).reshape(a.shape)
    a = np.where(tiny, _bf16(draw, a.size, top - below - tiny_width, top - below).reshape(a.shape), a)
    if draw(st.booleans()):
        a = np.concatenate([a, np.where(tiny, 0, a ^ 0x8000)], axis=2)
        b = np.concatenate([b, b], axis=1)
    return a.view(BF16), b.view(BF16)


@settings(max_examples=300, deadline=None)
@given(_stacks(), st.sampled_from([(False, False), (True, False), (False, True)]))
def test_matmul_many_of_wide_ranges_and_cancellations(stack: tuple[np.ndarray, np.ndarray],
                                                      trans: tuple[bool, bool]) -> None:
    """Every pair of the stack rounds its exact sum once, in every transposed form, also where the large
    products cancel and the tiny values of the lo bands decide the sum."""
    a, b = stack
    x = np.ascontiguousarray(a.swapaxes(1, 2)) if trans[0] else a
    y = np.ascontiguousarray(b.swapaxes(1, 2)) if trans[1] else b
    got = matmul_many(x, y, a_trans=trans[0], b_trans=trans[1])
    for p in range(len(a)):
        want = np.array([[_f32(q) for q in row] for row in _exact(a[p], b[p])], dtype=np.float32)
        assert got[p].tobytes() == want.tobytes(), p


@pytest.mark.parametrize("stack_bytes", [2 << 20, 2 * 8 * 64 * 5], ids=["one-stack", "two-pairs-a-stack"])
def test_matmul_acc_chain_is_matmul_acc_in_turn(stack_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """acc_{i+1} = fp32(acc_i + fp32(exact a_i @ b_i)), done in Fractions, the products in one stack or two
    pairs at a time; also with int8 operands (int32 wrapping) and operands whose shapes differ between
    iterations."""
    monkeypatch.setattr(sys.modules["npusim.numerics.matmul"], "_STACK_BYTES", stack_bytes)
    a, b = _pairs(np.random.default_rng(12))
    a, b = a[:4], b[:4]
    acc0 = np.random.default_rng(13).standard_normal((4, 5)).astype(np.float32)
    want = acc0.copy()
    for x, y in zip(a, b, strict=True):
        prod = _exact(x, y)
        want = np.array([[_f32(Fraction(float(want[i, j])) + Fraction(float(_f32(prod[i][j]))))
                          for j in range(5)] for i in range(4)], dtype=np.float32)
    assert nx.matmul_acc_chain(acc0, list(a), list(b)).tobytes() == want.tobytes()
    i8a = np.random.default_rng(14).integers(-128, 128, (3, 4, 6)).astype(np.int8)
    i8b = np.random.default_rng(15).integers(-128, 128, (3, 6, 2)).astype(np.int8)
    acc = np.full((4, 2), 2**31 - 10, dtype=np.int64)
    for x, y in zip(i8a, i8b, strict=True):
        acc = acc + x.astype(np.int64) @ y.astype(np.int64)
    wrapped = ((acc + 2**31) % 2**32 - 2**31).astype(np.int32)
    start = np.full((4, 2), 2**31 - 10, dtype=np.int32)
    assert (nx.matmul_acc_chain(start, list(i8a), list(i8b)) == wrapped).all()
    ragged = nx.matmul_acc_chain(np.zeros((4, 5), np.float32), [a[0], a[0][:, :32]], [b[0], b[0][:32]])
    assert ragged.tobytes() == nx.matmul_acc(nx.matmul_acc(np.zeros((4, 5), np.float32), a[0], b[0]),
                                             a[0][:, :32], b[0][:32]).tobytes()


PROGRAM = """\
name: chain
tensors:
  x: {{shape: [16, 512], dtype: bf16, role: input, init: "uniform(-0.5, 0.5)"}}
  w: {{shape: [512, 32], dtype: bf16, role: input, init: "uniform(-0.5, 0.5)"}}
  y: {{shape: [16, 32], dtype: fp32, role: output}}
body:
  - incore mm:
    - a0 = slice(x, [16, 64], [0, 0])
    - w0 = slice(w, [64, 32], [0, 0])
    - acc = matmul(a0, w0)
    - for kb in range(1, 8):
      - k0 = kb * 64
      - a = slice(x, [16, 64], [0, k0])
      - wt = slice(w, [64, 32], [k0, 0])
{extra}      - acc = matmul_acc(acc, a, wt)
    - y = assemble(y, acc, [0, 0])
"""


@pytest.mark.parametrize("extra", ["", "      - seen = add(acc, acc)\n"], ids=["chained", "acc-read-in-loop"])
def test_an_accumulation_loop_gives_the_values_of_each_iteration(tmp_path: Path, extra: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's matmul_acc values wait for the loop's end (the chain) only when nothing else in the body
    reads the accumulator; either way the output is the iteration-by-iteration rational computation, and the
    op records are those of a timing-only run."""
    path = tmp_path / "chain.yaml"
    path.write_text(PROGRAM.format(extra=extra))
    program = load_program(path)
    rng = np.random.default_rng(16)
    x = rng.uniform(-0.5, 0.5, (16, 512)).astype(BF16)
    w = (rng.uniform(-0.5, 0.5, (512, 32)) * np.exp2(rng.integers(-40, 1, (512, 32)))).astype(BF16)
    chains: list[int] = []
    chain = nx.matmul_acc_chain
    monkeypatch.setattr(nx, "matmul_acc_chain", lambda acc, lhs, rhs, **kw: chains.append(len(lhs)) or
                        chain(acc, lhs, rhs, **kw))
    ex = execute(program, {"x": x, "w": w})
    assert chains == ([7] if extra == "" else [])
    want = np.array([[_f32(q) for q in row] for row in _exact(x[:, :64], w[:64])], dtype=np.float32)
    for kb in range(1, 8):
        prod = _exact(x[:, kb * 64:(kb + 1) * 64], w[kb * 64:(kb + 1) * 64])
        want = np.array([[_f32(Fraction(float(want[i, j])) + Fraction(float(_f32(prod[i][j]))))
                          for j in range(32)] for i in range(16)], dtype=np.float32)
    assert ex.tensors["y"].data.tobytes() == want.tobytes()
    timing = execute(program, {"x": x, "w": w}, numerics_on=False, replay=False)
    assert [t.ops for t in ex.tasks] == [t.ops for t in timing.tasks]
