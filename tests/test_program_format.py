"""The program format: params, presets, --set, let, require, tensors and init rules, the safe expression
language (against a direct evaluation of random expression trees), and seeded input generation."""

from __future__ import annotations

import math
import operator
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.errors import Location, ProgramError
from npusim.frontend import load_program, parse_overrides
from npusim.frontend.expressions import ExprCompiler, ExprLimits
from npusim.frontend.inputs import initial_values

from .conftest import PROGRAMS

LOC = Location("test.yaml", 1, 1)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


BASE = """name: p
params: {A: 4, B: 8}
presets:
  small: {A: 2}
let:
  C: A * B
  D: C // 2 + 1
tensors:
  x: {shape: [A, B], dtype: fp32, role: input, init: "uniform(-1, 1)"}
  n: {shape: [C], dtype: int32, role: input, init: "randint(0, 10)"}
  y: {shape: [D, 2], dtype: bf16, role: output}
body: []
"""


def test_params_presets_overrides_and_lets(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    p = load_program(path)
    assert p.params == {"A": 4, "B": 8} and p.consts["C"] == 32 and p.consts["D"] == 17
    assert p.tensors["x"].shape == (4, 8) and p.tensors["y"].shape == (17, 2)
    p = load_program(path, preset="small")
    assert p.consts["C"] == 16 and p.tensors["x"].shape == (2, 8)
    p = load_program(path, preset="small", overrides={"B": 3})
    assert p.consts["C"] == 6 and p.consts["D"] == 4
    with pytest.raises(ProgramError, match="unknown preset 'smal' \\(did you mean 'small'\\?\\)"):
        load_program(path, preset="smal")
    with pytest.raises(ProgramError, match="--set Q: no such param"):
        load_program(path, overrides={"Q": 1})


def test_parse_overrides() -> None:
    assert parse_overrides(["a=3", "b=2.5", " c = 7"]) == {"a": 3, "b": 2.5, "c": 7}
    with pytest.raises(ProgramError, match="NAME=VALUE"):
        parse_overrides(["a"])
    with pytest.raises(ProgramError, match="is not a number"):
        parse_overrides(["a=x"])


def test_requirement_names_the_values(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("body: []", "require:\n  - B % A == 0\nbody: []"))
    load_program(path)
    with pytest.raises(ProgramError, match=r"requirement failed: B % A == 0 \(A=3, B=8\)"):
        load_program(path, overrides={"A": 3})


def test_inputs_are_seeded_per_tensor_in_declaration_order(tmp_path: Path) -> None:
    p = load_program(write(tmp_path, BASE))
    a, b, c = initial_values(p, 1), initial_values(p, 1), initial_values(p, 2)
    assert a["x"].tobytes() == b["x"].tobytes() and a["n"].tobytes() == b["n"].tobytes()
    assert a["x"].tobytes() != c["x"].tobytes()
    assert a["x"].dtype == np.float32 and a["n"].dtype == np.int32
    assert np.all((a["x"] >= -1) & (a["x"] < 1)) and np.all((a["n"] >= 0) & (a["n"] < 10))
    # a tensor's values do not depend on which other tensors are drawn (a timing-only run draws only some)
    assert initial_values(p, 1, only={"n"})["n"].tobytes() == a["n"].tobytes()
    # the same stream, drawn independently: float32 uniform in [0, 1) mapped to [lo, hi)
    tensor_seq = np.random.SeedSequence(1).spawn(2)[0]
    chunk_seq = np.random.SeedSequence(tensor_seq.entropy, spawn_key=(*tensor_seq.spawn_key, 0))
    u = np.random.Generator(np.random.PCG64(chunk_seq)).random(32, dtype=np.float32)
    assert np.array_equal(a["x"].reshape(-1), u * np.float32(2) + np.float32(-1))


def test_chunks_draw_the_same_bits_on_any_thread_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from npusim.frontend import inputs

    p = load_program(write(tmp_path, BASE.replace("[A, B]", "[A, 1000]")))
    monkeypatch.setattr(inputs, "CHUNK_ELEMENTS", 256)  # 4000 values: 16 chunks
    parallel = initial_values(p, 9)["x"]
    monkeypatch.setattr(inputs.os, "cpu_count", lambda: 1)
    serial = initial_values(p, 9)["x"]
    assert parallel.tobytes() == serial.tobytes()
    tensor_seq = np.random.SeedSequence(9).spawn(2)[0]
    last = np.random.Generator(np.random.PCG64(np.random.SeedSequence(tensor_seq.entropy,
                                                                      spawn_key=(*tensor_seq.spawn_key, 15))))
    assert np.array_equal(parallel.reshape(-1)[15 * 256:], last.random(160, dtype=np.float32) * 2 - 1)


@pytest.mark.parametrize("piece", [7, 8])
@pytest.mark.parametrize(("init", "dtype"), [("uniform(-1, 1)", "fp32"), ("normal(0, 2) / 3", "bf16"),
                                           ("randint(-5, 7)", "int32"), ("randint(0, 1099511627776)", "int64")])
def test_a_chunk_drawn_in_pieces_is_the_chunk_drawn_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            init: str, dtype: str, piece: int) -> None:
    """A chunk's values are drawn a piece at a time (to stay in cache); its stream gives the values of one
    draw of the whole chunk, transformed and rounded as the module docstring says."""
    from npusim.frontend import inputs

    text = BASE.replace("[A, B]", "[A, 1000]").replace('init: "uniform(-1, 1)"', f'init: "{init}"')
    p = load_program(write(tmp_path, text.replace("fp32, role: input", f"{dtype}, role: input", 1)))
    monkeypatch.setattr(inputs, "PIECE_ELEMENTS", piece)
    got = initial_values(p, 3)["x"].reshape(-1)
    tensor_seq = np.random.SeedSequence(3).spawn(2)[0]
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(tensor_seq.entropy,
                                                                     spawn_key=(*tensor_seq.spawn_key, 0))))
    n = got.size
    if init.startswith("uniform"):
        want = rng.random(n, dtype=np.float32) * np.float32(2) + np.float32(-1)
    elif init.startswith("normal"):
        want = (rng.standard_normal(n, dtype=np.float32) * np.float32(2) + np.float32(0)) / np.float32(3)
    else:
        wide = np.int64 if dtype == "int64" else np.int32
        want = rng.integers(-5, 7, size=n, dtype=wide) if dtype == "int32" else rng.integers(0, 1099511627776, size=n,
                                                                                            dtype=wide)
    assert got.tobytes() == want.astype(got.dtype).tobytes()


def test_uniform_draws_from_raw_outputs_are_numpys_float32_draws() -> None:
    """The uniform fill reads the bit generator's raw outputs: the same values as rng.random(n, float32) in any
    sequence of counts, odd ones (which leave half a raw output in the generator) among them."""
    from npusim.frontend.inputs import _uniform_f32

    ours = np.random.Generator(np.random.PCG64(np.random.SeedSequence(7)))
    numpys = np.random.Generator(np.random.PCG64(np.random.SeedSequence(7)))
    for n in (4, 3, 6, 1, 1, 8, 5, 2, 0, 10):
        assert _uniform_f32(ours, n).tobytes() == numpys.random(n, dtype=np.float32).tobytes(), n


def test_init_scaling_rounds_once_to_the_tensor_dtype(tmp_path: Path) -> None:
    text = BASE.replace('init: "uniform(-1, 1)"', 'init: "uniform(0, 1) / sqrt(B)"').replace("fp32, role: input",
                                                                                        "bf16, role: input", 1)
    p = load_program(write(tmp_path, text))
    x = initial_values(p, 5)["x"]
    assert x.dtype == ml_dtypes.bfloat16
    tensor_seq = np.random.SeedSequence(5).spawn(2)[0]
    chunk_seq = np.random.SeedSequence(tensor_seq.entropy, spawn_key=(*tensor_seq.spawn_key, 0))
    u = np.random.Generator(np.random.PCG64(chunk_seq)).random(32, dtype=np.float32)
    expected = (u * np.float32(1) + np.float32(0)) / np.float32(math.sqrt(8))
    assert np.array_equal(x.reshape(-1).view(np.uint16), expected.astype(ml_dtypes.bfloat16).view(np.uint16))


def test_every_example_program_loads_with_its_presets() -> None:
    for path in sorted(PROGRAMS.glob("*.yaml")):
        p = load_program(path)
        assert "tiny" in p.presets, path.name
        load_program(path, preset="tiny")


# --- expressions -------------------------------------------------------------------------------------

CONSTS = {"N": 7, "M": 3, "F": 2.5}


def compile_expr(text: str, runtime: tuple[str, ...] = ()):
    return ExprCompiler(CONSTS, runtime).compile_text(text, LOC)


def test_constant_folding_and_runtime_names() -> None:
    e = compile_expr("N * M + N // M - N % M")
    assert e.is_const and e.const == 7 * 3 + 7 // 3 - 7 % 3
    e = compile_expr("min(i, N) * 2 + max(j, 1, M) - abs(-i)", ("i", "j"))
    assert not e.is_const
    assert e.fn({"i": 10, "j": 0}) == min(10, 7) * 2 + max(0, 1, 3) - 10
    assert compile_expr("i < N and not i == 3", ("i",)).fn({"i": 2}) is True
    assert compile_expr("1.0 / sqrt(N)").const == 1.0 / math.sqrt(7)


@pytest.mark.parametrize(("text", "message"), [
    ("N ** 2", "operator Pow is not allowed"),
    ("__import__('os')", "call of '__import__' is not allowed"),
    ("N.real", "attribute access is not allowed"),
    ("[N][0]", "subscripting is not allowed"),
    ("(lambda: 1)()", "lambda is not allowed"),
    ("'a' * N", "literal 'a' is not allowed"),
    ("N if M else 1", "conditional expressions is not allowed"),
    ("undefined + 1", "unknown name 'undefined'"),
    ("N // 0", "division by zero"),
    ("N +", "syntax error"),
    ("(" * 40 + "1" + ")" * 40, "nested more than 32 levels"),
    ("1+" * 600 + "1", "characters long, more than the limit of 1000"),
    ("+".join(["N"] * 150), "syntax nodes, more than the limit of 200"),
])
def test_forbidden_and_broken_expressions(text: str, message: str) -> None:
    with pytest.raises(ProgramError, match=message.replace("(", r"\(").replace("*", r"\*").replace("+", r"\+")):
        compile_expr(text)


def test_limits_are_configurable() -> None:
    deep = "(" * 40 + "1" + ")" * 40
    assert ExprCompiler({}, limits=ExprLimits(max_depth=64)).compile_text(deep, LOC).const == 1


_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "//": operator.floordiv, "%": operator.mod}


@st.composite
def expr_trees(draw, depth: int = 0):
    """(text, value) pairs: random integer expressions over N, M, i and literals, with the value computed by
    walking the tree directly (never by evaluating the text)."""
    env = {"N": 7, "M": 3, "i": 11}
    if depth > 3 or draw(st.booleans()):
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(env)))
            return name, env[name]
        v = draw(st.integers(0, 50))
        return str(v), v
    kind = draw(st.sampled_from(["bin", "bin", "min", "max", "neg"]))
    a_text, a = draw(expr_trees(depth + 1))
    if kind == "neg":
        return f"-({a_text})", -a
    b_text, b = draw(expr_trees(depth + 1))
    if kind in ("min", "max"):
        return f"{kind}({a_text}, {b_text})", (min if kind == "min" else max)(a, b)
    op = draw(st.sampled_from(sorted(_OPS)))
    if op in ("//", "%") and b == 0:
        return f"({a_text}) + ({b_text})", a + b
    return f"({a_text}) {op} ({b_text})", _OPS[op](a, b)


@settings(max_examples=300, deadline=None)
@given(expr_trees())
def test_random_expressions_match_direct_evaluation(tree: tuple[str, int]) -> None:
    text, value = tree
    e = compile_expr(text, ("i",))
    assert e.fn({"i": 11}) == value


def test_every_op_is_documented() -> None:
    """docs/program-format.md's op table names every op of the ops table (and no op that does not exist)."""
    import re

    from npusim.ops import OPS

    from .conftest import REPO

    doc = (REPO / "docs" / "program-format.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \|", doc.split("## Ops", 1)[1], re.M)
    documented: set[str] = set()
    for cell in rows:
        for word in cell.split():
            if "/" in word:  # row_expand_add/sub/mul/div
                stem, first = word.rsplit("_", 1)
                documented.update(f"{stem}_{op}" for op in first.split("/"))
            else:
                documented.add(word)
    assert documented == set(OPS)
