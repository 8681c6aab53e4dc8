"""The current `@pl.jit` form (pypto e2d0f78ae, pypto-lib 634e77bd), on a program of our own in
tests/pypto/programs/jit/: the entry specialised on the harness's specs as `__main__` passes them, helpers and
configs read from sibling modules, SPMD kernels in both forms, a split mixed kernel, explicit edges, a manual
scope; its listing worked out by hand from PyPTO's rules (docs/pypto.md), its values against numpy, its task
graph against the dependencies the program declares."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from npusim.errors import ProgramError
from npusim.frontend import load_program
from npusim.frontend.pypto.module import read_module
from npusim.frontend.pypto.pyeval import MAX_STEPS, DataclassType, DynDim, Folder, FoldError, Instance
from npusim.frontend.pypto.source import Scope, read_source

from .helpers import PROGRAMS, final, listing, rows, run_program, write

JIT = PROGRAMS / "jit" / "model.py"


def test_the_entry_is_specialised_on_the_specs_main_passes() -> None:
    program = load_program(JIT)
    # x: [ROWS_DYN, HIDDEN] with ROWS_DYN bound by build_tensor_specs(args.rows) -> C.rows = 16 (config.py:
    # CFG = replace(PRESETS["large"], rows=16) whatever MODEL_ROWS says in the environment); w, bias, y bare
    # pl.Tensor: their TensorSpecs' shapes and dtypes; scale a ScalarSpec
    assert {n: (t.shape, t.dtype, t.role) for n, t in program.tensors.items()} == {
        "x": ((16, 128), "fp32", "input"), "w": ((128, 128), "bf16", "input"), "bias": ((1, 128), "fp32", "input"),
        "y": ((16, 128), "fp32", "output"), "z": ((16, 128), "fp32", "output")}
    assert program.tensors["w"].init == "uniform(-0.5, 0.5)"
    assert program.consts["HIDDEN"] == 128 and program.consts["BLOCKS"] == 2  # C.blocks, a @property


def test_listing(tmp_path: Path) -> None:
    assert rows(load_program(JIT).body) == listing("""
scale_2 = 0.5
rows_2 = 16
scaled = create_tensor([rows_2, HIDDEN], fp32)
biased = create_tensor([rows_2, HIDDEN], fp32)
scope scale
  incore scale(blocks=BLOCKS, block=blk)
    c0 = blk * TILE
    _t1 = slice(x, [16, 64], [0, c0])
    _t2 = mul(_t1, scale_2)
    scaled = assemble(scaled, _t2, [0, c0])
scope bias
  incore bias(blocks=BLOCKS, block=block_idx, tid=bias_tid)
    src = scaled
    bias_2 = bias
    dst = biased
    c0_2 = block_idx * TILE
    ones = full([16, 64], fp32, 1.0)
    _t3 = slice(src, [rows_2, 64], [0, c0_2])
    _t4 = slice(bias_2, [1, 64], [0, c0_2])
    _t5 = col_expand_mul(ones, _t4)
    _t6 = add(_t3, _t5)
    dst = assemble(dst, _t6, [0, c0_2])
    biased = dst
scope proj
  incore proj(split="up_down", tid=proj_tid, deps=[bias_tid])
    acc = uninit([rows_2, HIDDEN], fp32)
    for kb in pipeline(BLOCKS, stage=2)
      k0 = kb * TILE
      _t7 = slice(biased, [rows_2, 64], [0, k0])
      a = cast(_t7, bf16)
      if k0 == 0
        _t8 = slice(w, [64, 128], [k0, 0])
        acc = matmul(a, _t8, out_dtype=fp32)
      else
        _t9 = slice(w, [64, 128], [k0, 0])
        acc = matmul_acc(acc, a, _t9)
    _t10 = slice(x, [16, HIDDEN], [0, 0])
    _t11 = add(acc, _t10)
    y = assemble(y, _t11, [0, 0])
manual
  scope copy
    incore copy(tid=copy_tid, deps=[proj_tid])
      _t12 = slice(y, [16, 128], [0, 0])
      _t13 = add(_t12, 0.0)
      z = assemble(z, _t13, [0, 0])
  after_copy = task_ids(copy_tid)
  scope square
    incore square(tid=square_tid, deps=[after_copy])
      for half in range(2)
        r0 = half * HALF_ROWS
        _t14 = slice(z, [8, HIDDEN], [r0, 0])
        _t15 = slice(z, [8, HIDDEN], [r0, 0])
        _t16 = mul(_t14, _t15)
        z = assemble(z, _t16, [r0, 0])
scope halve
  incore halve(blocks=1, block=block_idx_2, tid=halve_tid, deps=[square_tid])
    src_2 = z
    dst_2 = z
    _t17 = slice(src_2, [16, HIDDEN], [0, 0])
    _t18 = mul(_t17, 0.5)
    dst_2 = assemble(dst_2, _t18, [0, 0])
    z = dst_2
""")


def test_values_against_numpy(tmp_path: Path) -> None:
    result = run_program(JIT, tmp_path)
    x = final(result, "x")
    w = result.execution.tensors["w"].data.astype(np.float64)
    bias = final(result, "bias")
    f32 = np.float32
    scaled = x.astype(f32) * f32(0.5)
    biased = (scaled + np.ones((16, 128), f32) * bias.astype(f32)).astype(f32)
    a = biased.astype(ml_dtypes.bfloat16).astype(np.float64)
    acc = (a[:, :64] @ w[:64]).astype(f32)  # exact products and sum, one rounding per matmul
    acc = (acc + (a[:, 64:] @ w[64:]).astype(f32)).astype(f32)
    y = (acc + x.astype(f32)).astype(f32)
    np.testing.assert_array_equal(result.execution.tensors["y"].data, y)
    np.testing.assert_array_equal(result.execution.tensors["z"].data, (y * y).astype(f32) * f32(0.5))


def test_task_graph_follows_the_declared_edges(tmp_path: Path) -> None:
    result = run_program(JIT, tmp_path)
    tasks = result.execution.tasks
    assert [(t.kernel, t.dispatch, t.block, t.blocks, t.split, t.manual) for t in tasks] == [
        ("scale", 0, 0, 2, "none", False), ("scale", 0, 1, 2, "none", False),
        ("bias", 1, 0, 2, "none", False), ("bias", 1, 1, 2, "none", False),
        ("proj", 2, 0, 1, "up_down", False),
        ("copy", 3, 0, 1, "none", True), ("square", 4, 0, 1, "none", True),
        ("halve", 5, 0, 1, "none", False)]
    deps = result.timeline.deps
    assert deps[2] == deps[3] == (0, 1)  # bias reads scaled: both scale blocks, for each bias block
    assert deps[4] == (2, 3)  # proj: its deps=[bias_tid] and its footprint agree
    assert deps[5] == (4,) and deps[6] == (5,)  # manual: only the explicit edges (copy reads y: proj)
    assert deps[7] == (6,)  # halve waits for square by deps= only: the manual writes are not tracked
    proj = result.timeline.runs[4]
    assert proj.lanes == 2 and proj.cores == (("aic", proj.aic), ("aiv", 2 * proj.aic), ("aiv", 2 * proj.aic + 1))


def test_no_run_call_and_one_entry_is_the_entry(tmp_path: Path) -> None:
    """Without a __main__ run call, the module's only @pl.jit function is the entry; its harness is the
    function calling TensorSpec, with its keyword defaults."""
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("config.py", "layers.py"):
        (folder / name).write_text((PROGRAMS / "jit" / name).read_text())
    text = JIT.read_text().split('if __name__ == "__main__":')[0].replace("def build_tensor_specs(rows, scale=0.5)",
                                                                          "def build_tensor_specs(rows=16, scale=0.5)")
    (folder / "model.py").write_text(text)
    assert load_program(folder / "model.py").tensors["x"].shape == (16, 128)


def test_environment_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_ROWS", "64")
    monkeypatch.setenv("MODEL_PRESET", "small")
    assert load_program(JIT).tensors["x"].shape == (16, 128)  # os.environ.get's defaults, not the environment


def test_config_dataclass_folds() -> None:
    """config.py's values as model.py imports them (config.py itself has no entry)."""
    m = read_module(read_source(JIT, 10**6), {})
    cfg = m.globals.lookup("C")
    assert isinstance(cfg, Instance) and cfg.values == {"hidden": 128, "tile": 64, "rows": 16}
    assert isinstance(cfg.cls, DataclassType) and isinstance(m.globals.lookup("ROWS_DYN"), DynDim)


# --- the evaluator ---------------------------------------------------------------------------------------

def _fold(text: str) -> object:
    return Folder(Scope().lookup).fold(ast.parse(text, mode="eval").body)


def test_evaluator_is_pure_and_bounded(tmp_path: Path) -> None:
    assert _fold("{k: v * 2 for k, v in ((1, 2), (3, 4))}") == {1: 4, 3: 8}
    assert _fold("sorted([3, 1, 2])[0] + len('abc') + int('7')") == 11
    assert _fold("'a-b'.split('-')") == ["a", "b"]
    with pytest.raises(FoldError):
        _fold("open('/etc/passwd').read()")
    with pytest.raises(FoldError):
        _fold("().__class__")
    with pytest.raises(FoldError, match="too long"):
        _fold("'x' * 10 ** 7")
    prog = write(tmp_path, "loop.py", """
import pypto.language as pl

def spin():
    n = 0
    while True:
        n = n + 1
    return n

N = spin()
""")
    with pytest.raises(ProgramError, match=r"no @pl\.jit function"):  # N is just unknown: nothing uses it
        load_program(prog)
    assert MAX_STEPS >= 100_000


def test_sibling_modules_are_read_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "side.py").write_text(f"import os\nos.system('touch {marker}')\nK = 4\n")
    (folder / "prog.py").write_text(PROGRAM_WITH_SIBLING)
    program = load_program(folder / "prog.py")
    assert program.tensors["x"].shape == (4, 4) and not marker.exists()


PROGRAM_WITH_SIBLING = '''
import pypto.language as pl
from side import K


@pl.jit
def f(x: pl.Tensor[[K, K], pl.FP32], y: pl.Out[pl.Tensor[[K, K], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP):
        y = pl.assemble(y, pl.exp(x[:, :]), [0, 0])
    return y


def build_tensor_specs():
    import torch
    from golden import TensorSpec
    return [TensorSpec("x", [K, K], torch.float32, init_value=torch.rand),
            TensorSpec("y", [K, K], torch.float32, is_output=True)]
'''


def test_tuple_unpacking_a_shape_gives_the_specialised_dims(tmp_path: Path) -> None:
    """`M, N = x.shape` of a bare pl.Tensor entry parameter: the TensorSpec's numbers, usable as sizes."""
    text = PROGRAM_WITH_SIBLING.replace("from side import K\n", "K = 4\n").replace(
        "x: pl.Tensor[[K, K], pl.FP32]", "x: pl.Tensor").replace(
        "    with pl.at(level=pl.Level.CORE_GROUP):\n",
        "    M, N = x.shape\n    t = pl.create_tensor([M, N], dtype=pl.FP32)\n"
        "    with pl.at(level=pl.Level.CORE_GROUP):\n        t = pl.assemble(t, pl.exp(x[0:M, 0:N]), [0, 0])\n"
        "    with pl.at(level=pl.Level.CORE_GROUP):\n").replace("pl.exp(x[:, :])", "t[:, :]")
    path = write(tmp_path, "unpack.py", text)
    program = load_program(path)
    assert program.tensors["x"].shape == (4, 4)
    result = run_program(path, tmp_path / "out", numerics=True)
    x = result.execution.tensors["x"].data
    np.testing.assert_allclose(final(result, "y"), np.exp(x), rtol=1e-6)


# --- what npusim cannot model: one located error each ----------------------------------------------------

UNMODELLED = [
    ("import pypto.language.distributed as pld\n", "    pld.system.notify(y)\n", "pld.system",
     "`pld.system.notify` is not supported: collectives and remote memory across ranks"),
    ("", "    with pl.at(level=pl.Level.CORE_GROUP):\n        y = pl.sort32(x, x)\n", "pl.sort32",
     "`pl.sort32` is not supported: a sorting op"),
    ("", "    for lane in pl.split_aiv(2, mode=pl.SplitMode.UP_DOWN):\n        pass\n", "pl.split_aiv",
     "`pl.split_aiv` is not supported: explicit AIV-lane regions"),
    # not supported yet: one located error each too
    ("", "    buf = pl.create_tensor([64], dtype=pl.UINT16)\n", "pl.UINT16", "UINT16"),
]


@pytest.mark.parametrize(("head", "body", "needle", "message"), UNMODELLED)
def test_unmodelled_constructs_are_one_located_error(tmp_path: Path, head: str, body: str, needle: str,
                                                     message: str) -> None:
    text = PROGRAM_WITH_SIBLING.replace("from side import K\n", f"K = 4\n{head}").replace(
        "    with pl.at(level=pl.Level.CORE_GROUP):\n        y = pl.assemble(y, pl.exp(x[:, :]), [0, 0])\n", body)
    path = write(tmp_path, "prog.py", text)
    with pytest.raises(ProgramError) as exc:
        load_program(path)
    lines = text.lstrip("\n").split("\n")
    line = next(i for i, t in enumerate(lines, 1) if needle in t and not t.startswith(("import", "@")))
    col = lines[line - 1].index(needle) + 1
    assert message in str(exc.value) and str(exc.value).startswith(f"{path}:{line}:{col}: ")
    assert "\n" not in str(exc.value)


def test_an_extern_in_a_sibling_helper_stops_a_run_with_numerics_there(tmp_path: Path) -> None:
    folder = tmp_path / "q"
    folder.mkdir()
    (folder / "ext.py").write_text("import pypto.language as pl\n\n\n@pl.jit.extern(core_type='aiv', source='k.cpp')\n"
                                   "def kern(x: pl.Tensor, y: pl.Out[pl.Tensor]):\n    ...\n\n\n@pl.jit.inline\n"
                                   "def helper(x, y):\n    kern(x, y)\n    return y\n")
    (folder / "prog.py").write_text(PROGRAM_WITH_SIBLING.replace("from side import K\n", "from ext import helper\n"
                                                                 "K = 4\n").replace(
        "    with pl.at(level=pl.Level.CORE_GROUP):\n        y = pl.assemble(y, pl.exp(x[:, :]), [0, 0])\n",
        "    y = helper(x, y)\n"))
    load_program(folder / "prog.py")  # called outside a kernel scope: a kernel of its own
    with pytest.raises(ProgramError) as exc:
        run_program(folder / "prog.py", tmp_path / "out", numerics=True)
    assert str(exc.value).startswith(f"{folder / 'ext.py'}:11:5: kern is a hand-written kernel (@pl.jit.extern)")


def test_a_host_entry_and_a_helper_module_are_refused(tmp_path: Path) -> None:
    host = write(tmp_path, "host.py", "import pypto.language as pl\n\n\n@pl.jit.host\ndef h(x):\n    return x\n")
    with pytest.raises(ProgramError, match=r"host.py:5:1: @pl.jit.host entry 'h' is not supported"):
        load_program(host)
    helper = write(tmp_path, "helper.py", "import pypto.language as pl\n\n\n@pl.jit.inline\ndef h(x):\n    return x\n")
    with pytest.raises(ProgramError, match=r"no @pl\.jit function or @pl\.program class found"):
        load_program(helper)


def test_specialisation_errors_are_located(tmp_path: Path) -> None:
    bare = PROGRAM_WITH_SIBLING.replace("from side import K\n", "K = 4\n").replace(
        "x: pl.Tensor[[K, K], pl.FP32]", "x: pl.Tensor").replace('TensorSpec("x", [K, K], torch.float32, '
                                                                 'init_value=torch.rand),', "")
    path = write(tmp_path, "bare.py", bare)
    with pytest.raises(ProgramError, match=r"bare.py:6:7: parameter 'x' is a bare pl.Tensor: its shape and dtype "
                                           r"come from the harness's TensorSpec\('x', \.\.\.\)"):
        load_program(path)
    dyn = PROGRAM_WITH_SIBLING.replace("from side import K\n", "K = 4\nD = pl.dynamic('D')\n").replace(
        "x: pl.Tensor[[K, K], pl.FP32], y: pl.Out[pl.Tensor[[K, K], pl.FP32]]",
        "x: pl.Tensor[[D, K], pl.FP32], y: pl.Out[pl.Tensor[[D, K], pl.FP32]]").replace(
        'TensorSpec("y", [K, K]', 'TensorSpec("y", [2 * K, K]')
    path = write(tmp_path, "dyn.py", dyn)
    with pytest.raises(ProgramError, match=r"pl.dynamic\('D'\) is 4 elsewhere but 'y''s TensorSpec makes it 8"):
        load_program(path)
    deps = PROGRAM_WITH_SIBLING.replace("from side import K\n", "K = 4\n").replace(
        "with pl.at(level=pl.Level.CORE_GROUP):", "with pl.at(level=pl.Level.CORE_GROUP, deps=[x]):")
    path = write(tmp_path, "deps.py", deps)
    with pytest.raises(ProgramError, match=r"deps.py:7:49: deps= takes task ids"):
        load_program(path)


def test_harness_run_call_with_a_loop_takes_its_first_run() -> None:
    """__main__ loops over (args.rows, 2 * args.rows): the first run is the one npusim reads."""
    assert os.fspath(JIT).endswith("model.py")
    assert load_program(JIT).tensors["y"].shape == (16, 128)
