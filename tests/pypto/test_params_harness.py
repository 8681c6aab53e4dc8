"""Params (module constants and keyword defaults; `--set` as an edit of that assignment, booleans for boolean
params), asserts and raise guards as requirements, and the harness's TensorSpecs read into init rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from npusim.errors import ProgramError
from npusim.frontend import load_program, parse_overrides
from npusim.frontend.params import resolve_params
from npusim.frontend.pypto import load_pypto

from .helpers import PROGRAMS, final, run_program, write

PARAMS = PROGRAMS / "params.py"


def test_set_edits_the_assignment_and_derived_values_follow() -> None:
    base = load_program(PARAMS)
    assert {k: base.consts[k] for k in ("ROWS", "TILE", "rows", "tiles", "scale")} == \
        {"ROWS": 64, "TILE": 16, "rows": 64, "tiles": 4, "scale": 0.5}
    moved = load_program(PARAMS, overrides={"ROWS": 128})  # TILE = ROWS // 4 and rows = ROWS follow
    assert {k: moved.consts[k] for k in ("TILE", "rows", "tiles")} == {"TILE": 32, "rows": 128, "tiles": 4}
    local = load_program(PARAMS, overrides={"rows": 32})  # the builder's default alone: TILE stays
    assert {k: local.consts[k] for k in ("ROWS", "TILE", "tiles")} == {"ROWS": 64, "TILE": 16, "tiles": 2}
    derived = load_program(PARAMS, overrides={"TILE": 8})  # a derived constant set itself
    assert derived.consts["tiles"] == 8
    assert derived.tensors["x"].shape == (64, 32)
    assert set(base.params) == {"ROWS", "COLS", "TILE", "SCALE", "rows", "cols", "scale", "ones"}


def test_booleans_for_boolean_params_only() -> None:
    assert parse_overrides(["a=true", "b=False", "c=3", "d=0.5"]) == {"a": True, "b": False, "c": 3, "d": 0.5}
    assert load_program(PARAMS, overrides={"ones": True}).tensors["x"].init == "ones"
    assert load_program(PARAMS).tensors["x"].init == "uniform(-2, 2)"
    with pytest.raises(ProgramError, match="ones is a boolean param; give true or false, not 1"):
        load_program(PARAMS, overrides={"ones": 1})
    with pytest.raises(ProgramError, match="ROWS is a number param; give a number, not true"):
        load_program(PARAMS, overrides={"ROWS": True})
    # YAML programs keep number params: a boolean for one is refused the same way
    with pytest.raises(ProgramError, match="n is a number param"):
        resolve_params({"n": 1}, {}, None, {"n": True}, lambda key: None)  # type: ignore[arg-type,return-value]


def test_asserts_and_raise_guards_are_requirements() -> None:
    assert load_program(PARAMS, overrides={"ROWS": 68}).consts["TILE"] == 17  # 68 % 17 == 0: holds
    with pytest.raises(ProgramError) as exc:
        load_program(PARAMS, overrides={"rows": 60})
    assert str(exc.value) == f"{PARAMS}:13:5: requirement failed: rows % TILE == 0 (TILE=16, rows=60)"
    with pytest.raises(ProgramError) as exc:
        load_program(PARAMS, overrides={"cols": 300})
    assert str(exc.value) == f"{PARAMS}:14:5: requirement failed: not (cols > 256) (cols=300)"


def test_unknown_set_names_a_param(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match=r"--set TILES: no such param \(did you mean 'TILE'\?\)"):
        load_program(PARAMS, overrides={"TILES": 3})
    with pytest.raises(ProgramError, match="a PyPTO program has no presets"):
        load_program(PARAMS, preset="tiny")


def test_init_values_become_init_rules(tmp_path: Path) -> None:
    program = write(tmp_path, "inits.py", '''
import pypto.language as pl
import torch as T

N = 8
LO = 3


def build():
    @pl.program
    class P:
        @pl.function
        def f(self, a: pl.Tensor[[N, N], pl.FP32], b: pl.Tensor[[N, N], pl.BF16], c: pl.Tensor[[N, N], pl.FP32],
              d: pl.Tensor[[N], pl.INT32], e: pl.Tensor[[N, N], pl.FP32], g: pl.Tensor[[N, N], pl.FP32],
              h: pl.Tensor[[1], pl.INT32], y: pl.Out[pl.Tensor[[N, N], pl.FP32]]):
            with pl.incore():
                y = pl.assemble(y, pl.add(pl.slice(a, [N, N], [0, 0]), pl.slice(c, [N, N], [0, 0])), [0, 0])
            return y
    return P


def build_tensor_specs(n: int = N, scale: float = 0.25):
    from pypto.runtime import TensorSpec

    width = n * 2

    def init_b():
        return (T.randn(n, n) + 1) / width ** 0.5

    def init_c():
        return T.full((n, n), 3.0, dtype=T.float32) * scale

    fixed = T.tensor([7], dtype=T.int32)
    return [
        TensorSpec("a", [n, n], T.float32, init_value=T.rand),
        TensorSpec("b", [n, n], T.bfloat16, init_value=init_b),
        TensorSpec("c", [n, n], T.float32, init_value=init_c),
        TensorSpec("d", [n], T.int32, init_value=lambda: T.randint(LO, 10, (n,), dtype=T.int32)),
        TensorSpec("e", [n, n], T.float32, init_value=2.5),
        TensorSpec("g", [n, n], T.float32),
        TensorSpec("h", [1], T.int32, init_value=fixed),
        TensorSpec("y", [n, n], T.float32, init_value=T.ones, is_output=True),
    ]
''')
    tensors = load_program(program).tensors
    assert {n: (t.role, t.init) for n, t in tensors.items()} == {
        "a": ("input", "uniform(0, 1)"),
        "b": ("input", "normal(1, 1) / sqrt(n * 2)"),
        "c": ("input", "full(3.0) * scale"),
        "d": ("input", "randint(LO, 10)"),
        "e": ("input", "full(2.5)"),
        "g": ("input", "zeros"),
        "h": ("input", "full(7)"),
        "y": ("output", None),
    }
    result = run_program(program, tmp_path / "run")
    np.testing.assert_array_equal(final(result, "c"), 0.75)
    d = final(result, "d")
    assert d.min() >= 3 and d.max() < 10


def test_an_init_that_needs_running_asks_for_init(tmp_path: Path) -> None:
    program = write(tmp_path, "generator.py", '''
import pypto.language as pl
import torch

N = 8


def build():
    @pl.program
    class P:
        @pl.function
        def f(self, a: pl.Tensor[[N, N], pl.FP32], y: pl.Out[pl.Tensor[[N, N], pl.FP32]]):
            with pl.incore():
                y = pl.assemble(y, pl.exp(pl.slice(a, [N, N], [0, 0])), [0, 0])
            return y
    return P


def build_tensor_specs():
    from pypto.runtime import TensorSpec

    def init_a():
        g = torch.Generator().manual_seed(1)
        return torch.randn(N, N, generator=g)

    return [TensorSpec("a", [N, N], torch.float32, init_value=init_a),
            TensorSpec("y", [N, N], torch.float32, is_output=True)]
''')
    with pytest.raises(ProgramError) as exc:
        load_program(program)
    assert str(exc.value).startswith(f"{program}:25:13: tensor a: its init_value cannot be read statically")
    assert "give --init a=RULE" in str(exc.value)
    assert load_program(program, inits={"a": "normal(0, 2)"}).tensors["a"].init == "normal(0, 2)"
    with pytest.raises(ProgramError, match="--init b: no such tensor"):
        load_program(program, inits={"b": "ones"})
    with pytest.raises(ProgramError, match="--init y: y is an output"):
        load_program(program, inits={"a": "ones", "y": "ones"})
    with pytest.raises(ProgramError, match="tensor a: init 'gauss' is not one of"):
        load_program(program, inits={"a": "gauss"})


def test_init_replaces_a_yaml_tensors_rule_too() -> None:
    from .helpers import HERE

    yaml_program = HERE.parents[1] / "programs" / "matmul.yaml"
    program = load_program(yaml_program, inits={"a": "ones"})
    assert program.tensors["a"].init == "ones"
    with pytest.raises(ProgramError, match="--init c: c is an output tensor"):
        load_program(yaml_program, inits={"c": "ones"})


def test_harness_and_program_must_agree(tmp_path: Path) -> None:
    source = '''
import pypto.language as pl
import torch


def build():
    @pl.program
    class P:
        @pl.function
        def f(self, a: pl.Tensor[[4, 4], pl.FP32], y: pl.Out[pl.Tensor[[4, 4], pl.FP32]]):
            with pl.incore():
                y = pl.assemble(y, pl.exp(pl.slice(a, [4, 4], [0, 0])), [0, 0])
            return y
    return P


def build_tensor_specs():
    from pypto.runtime import TensorSpec
    return [TensorSpec("a", SHAPE, DTYPE, init_value=torch.rand), TensorSpec("y", [4, 4], torch.float32)]
'''
    cases = {("[4, 8]", "torch.float32"): "TensorSpec 'a' has shape [4, 8] but the program's parameter has [4, 4]",
             ("[4, 4]", "torch.bfloat16"): "TensorSpec 'a' is bf16 but the program's parameter is fp32",
             ("[4, 4]", "torch.uint16"): "dtype `torch.uint16` is not supported"}
    for (shape, dtype), message in cases.items():
        path = write(tmp_path, "agree.py", source.replace("SHAPE", shape).replace("DTYPE", dtype))
        with pytest.raises(ProgramError) as exc:
            load_program(path)
        assert message in str(exc.value) and str(exc.value).startswith(f"{path}:18:")


# --- a harness that draws its inputs with torch (tests/pypto/programs/extern/harness.py) -----------------

TORCH_HARNESS = PROGRAMS / "extern" / "harness.py"
INITS = {"pos": "randint(0, 63)", "table": "uniform(-1, 1)"}


def test_a_generator_harness_gives_shapes_dtypes_and_rules() -> None:
    program = load_pypto(TORCH_HARNESS, inits=INITS)
    got = {n: (t.shape, t.dtype, t.init) for n, t in program.tensors.items()}
    assert got == {
        "x": ((16, 64), "bf16", "normal(1, 0.5)"),  # empty(...).normal_(0, 0.5) + 1.0, then .to(bfloat16)
        "lens": ((16,), "int32", "randint(1, 64)"),
        "pos": ((16,), "int32", "randint(0, 63)"),  # from --init
        "table": ((16, 16), "fp32", "uniform(-1, 1)"),  # [16, 1] x [1, 8] broadcast, cos | sin along dim 1
        "y": ((16, 64), "fp32", None),
    }


@pytest.mark.parametrize("name", ["pos", "table"])
def test_a_tensor_computed_element_by_element_needs_an_init(name: str) -> None:
    inits = {k: v for k, v in INITS.items() if k != name}
    with pytest.raises(ProgramError) as exc:
        load_pypto(TORCH_HARNESS, inits=inits)
    why = {"pos": "values stored element by element", "table": "torch.cat of tensors"}[name]
    assert f"tensor {name}: its init_value cannot be read statically" in str(exc.value)
    assert why in str(exc.value) and f"give --init {name}=RULE" in str(exc.value)


def test_main_rebinding_a_constant_reaches_the_entry(tmp_path: Path) -> None:
    result = run_program(TORCH_HARNESS, tmp_path / "out", numerics=False, inits=INITS)
    assert [t.kernel for t in result.execution.tasks] == ["widen", "widen"]  # CHUNK = 2 in __main__, not 8
