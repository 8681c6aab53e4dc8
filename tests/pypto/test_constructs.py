"""One small PyPTO program per construct of the seed-era form, each imported and compared with the instruction
listing worked out by hand from PyPTO's rules (pypto b2104ad64: FlattenCallExpr's evaluation order,
SplitChunkedLoops + InterchangeChunkLoops, OutlineIncoreScopes, ConvertTensorToTileOps phase 1,
FuseCreateAssembleToSlice; docs/pypto.md), then run and its outputs compared with numpy."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np

from npusim.frontend import load_program

from .helpers import PROGRAMS, final, listing, rows, run_program


def imported(name: str, **kw) -> list[tuple[int, str]]:
    return rows(load_program(PROGRAMS / f"{name}.py", **kw).body)


def test_nested_calls_flatten_in_python_evaluation_order(tmp_path: Path) -> None:
    assert imported("nested") == listing("""
incore nested_incore_0
  _t1 = slice(x, [N, N], [0, 0])
  _t2 = mul(_t1, 2.0)
  _t3 = slice(x, [N, N], [0, 0])
  _t4 = exp(_t3)
  _t5 = add(_t2, _t4)
  _t6 = slice(w, [1, N], [0, 0])
  _t7 = col_expand_mul(_t5, _t6)
  y = assemble(y, _t7, [0, 0])
""")
    result = run_program(PROGRAMS / "nested.py", tmp_path)
    x, w = final(result, "x"), final(result, "w")
    np.testing.assert_allclose(final(result, "y"), (x * 2 + np.exp(x)) * w, rtol=1e-6)


def test_subscripts_are_slices_reads_and_assembles(tmp_path: Path) -> None:
    assert imported("subscripts") == listing("""
count = read(n, [0])
for r in range(count)
  incore sub_incore_0
    row = slice(x, [1, COLS], [r, 0])
    _t1 = neg(row)
    y = assemble(y, _t1, [r, 0])
""")
    result = run_program(PROGRAMS / "subscripts.py", tmp_path)
    x, y = final(result, "x"), final(result, "y")
    np.testing.assert_array_equal(y[:5], -x[:5])  # n = full(5): five rows
    np.testing.assert_array_equal(y[5:], 0)


def test_tiles_escaping_kernels_become_gm_tensors_or_views(tmp_path: Path) -> None:
    """prod is read by two later kernels: a GM tensor created before its kernel, loaded whole at each
    reader's entry (with bias_view, in name order); row (a create) and twice (an escaping tile) are each
    assembled once into out: views of out, the assembles gone."""
    assert imported("outlining") == listing("""
row = slice(out, [M, N], [M, 0])
bias_view = slice(bias, [1, N], [0, 0])
prod_out = create_tensor([M, N], fp32)
incore outline_incore_0
  prod = matmul(a, b, out_dtype=fp32)
  prod_out = assemble(prod_out, prod, [0, 0])
prod = prod_out
incore outline_incore_1
  bias_view_tile = slice(bias_view, [1, N], [0, 0])
  prod_tile = slice(prod, [M, N], [0, 0])
  shifted = col_expand_add(prod_tile, bias_view_tile)
  row = assemble(row, shifted, [0, 0])
twice_out = slice(out, [M, N], [0, 0])
incore outline_incore_2
  prod_tile_2 = slice(prod, [M, N], [0, 0])
  twice = add(prod_tile_2, prod_tile_2)
  twice_out = assemble(twice_out, twice, [0, 0])
""")
    result = run_program(PROGRAMS / "outlining.py", tmp_path)
    prod = final(result, "a") @ final(result, "b")  # exact in float64 for 32-term BF16 sums; one rounding
    prod32 = prod.astype(np.float32).astype(np.float64)
    out = final(result, "out")
    np.testing.assert_array_equal(out[:16], (prod32 + prod32).astype(np.float32))
    np.testing.assert_allclose(out[16:], prod32 + final(result, "bias"), rtol=1e-6)
    assert len(result.execution.tasks) == 3


def test_auto_incore_chunks_interchange_and_groups(tmp_path: Path) -> None:
    """18 rows in chunks of 4: kernels for 4 chunks, a guarded remainder kernel for 2 rows; the directly
    nested 4x4 chunk-2 loops interchange into one kernel per pair of outer chunks; the auto_incore without
    loops makes one kernel of its compute, its slice and assemble staying in orchestration."""
    assert imported("chunks") == listing("""
parallel r_o in range(rows // 4)
  incore chunks_incore_0
    parallel r_i in range(4)
      r = r_o * 4 + r_i
      t = slice(x, [1, TILE], [r, 0])
      _t1 = add(t, 1.0)
      y = assemble(y, _t1, [r, 0])
if rows % 4 > 0
  incore chunks_incore_1
    parallel r_r in range(rows % 4)
      r = rows // 4 * 4 + r_r
      t = slice(x, [1, TILE], [r, 0])
      _t1 = add(t, 1.0)
      y = assemble(y, _t1, [r, 0])
parallel i_o in range(BLOCKS // 2)
  parallel j_o in range(BLOCKS // 2)
    incore chunks_incore_2
      parallel i_i in range(2)
        i = i_o * 2 + i_i
        parallel j_i in range(2)
          j = j_o * 2 + j_i
          blk = slice(m, [TILE, TILE], [i * TILE, j * TILE])
          _t2 = mul(blk, 3.0)
          z = assemble(z, _t2, [i * TILE, j * TILE])
if BLOCKS % 2 > 0
  parallel i_r in range(BLOCKS % 2)
    i = BLOCKS // 2 * 2 + i_r
    parallel j_o in range(BLOCKS // 2)
      incore chunks_incore_3
        parallel j_i in range(2)
          j = j_o * 2 + j_i
          blk = slice(m, [TILE, TILE], [i * TILE, j * TILE])
          _t2 = mul(blk, 3.0)
          z = assemble(z, _t2, [i * TILE, j * TILE])
first = slice(x, [1, TILE], [0, 0])
doubled_out = slice(s, [1, TILE], [0, 0])
incore chunks_incore_4
  first_tile = slice(first, [1, TILE], [0, 0])
  doubled = add(first_tile, first_tile)
  doubled_out = assemble(doubled_out, doubled, [0, 0])
""")
    result = run_program(PROGRAMS / "chunks.py", tmp_path)
    assert [t.kernel for t in result.execution.tasks] == ["chunks_incore_0"] * 4 + ["chunks_incore_1"] + \
        ["chunks_incore_2"] * 4 + ["chunks_incore_4"]
    x, m = final(result, "x"), final(result, "m")
    np.testing.assert_array_equal(final(result, "y"), (x + 1).astype(np.float32))
    np.testing.assert_array_equal(final(result, "z"), (m * 3).astype(np.float32))
    np.testing.assert_array_equal(final(result, "s"), (x[:1] * 2).astype(np.float32))
    # --set moves the split: 16 rows are 4 chunks and no remainder kernel
    result16 = run_program(PROGRAMS / "chunks.py", tmp_path / "16", overrides={"rows": 16})
    assert [t.kernel for t in result16.execution.tasks].count("chunks_incore_1") == 0


def test_loops_conditions_pipeline_and_scalar_ops(tmp_path: Path) -> None:
    program = load_program(PROGRAMS / "control.py")
    assert rows(program.body) == listing("""
parallel r in range(T)
  n = read(lens, [r])
  valid = max(1, min(W, n))
  scope row
    incore row
      for k in pipeline(1, stage=2)
        part = slice(x, [1, W], [r, k], valid_shape=[1, valid])
        padded = fillpad(part, pad_value='zero')
      if valid > W // 2
        out = mul(padded, 2.0)
      else
        out = neg(padded)
      _t1 = cast(out, bf16, mode='rint')
      y = assemble(y, _t1, [r, 0])
""")  # no `# Scope` comments: the name_hint names the scope
    pipeline = program.body[0].body[2].body[0].body[0]
    assert pipeline.stages == 2
    result = run_program(PROGRAMS / "control.py", tmp_path)
    assert [(sc.name, sc.tasks) for sc in result.report.scopes] == [("row", 8)]
    x, lens = final(result, "x"), final(result, "lens").astype(int)
    expected = np.zeros_like(x)
    for r, n in enumerate(lens):
        valid = max(1, min(16, n))
        row = np.where(np.arange(16) < valid, x[r], 0.0)
        expected[r] = 2 * row if valid > 8 else -row
    # round to nearest even (rint) on BF16, independently of npusim's cast
    want = expected.astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)
    np.testing.assert_array_equal(final(result, "y"), want)


def test_scope_comments_and_kernel_names(tmp_path: Path) -> None:
    assert imported("scopes") == listing("""
tmp = create_tensor([N, N], fp32)
scope scope1
  incore scoped_incore_0
    a = slice(x, [N, N], [0, 0])
    _t1 = exp(a)
    tmp = assemble(tmp, _t1, [0, 0])
  scope detail
    incore second
      b = slice(tmp, [N, N], [0, 0])
      _t2 = neg(b)
      tmp = assemble(tmp, _t2, [0, 0])
  incore scoped_incore_1
    c = slice(tmp, [N, N], [0, 0])
    _t3 = add(c, 1.0)
    tmp = assemble(tmp, _t3, [0, 0])
scope scope2
  incore scoped_incore_2
    d = slice(tmp, [N, N], [0, 0])
    _t4 = abs(d)
    _t5 = sqrt(_t4)
    y = assemble(y, _t5, [0, 0])
""")
    report = run_program(PROGRAMS / "scopes.py", tmp_path).report
    assert [(s.name, s.tasks) for s in report.scopes] == [("scope1", 3), ("scope1/detail", 1), ("scope2", 1)]


def test_incore_functions_called_with_self_are_kernels(tmp_path: Path) -> None:
    result = run_program(PROGRAMS / "calls.py", tmp_path)
    assert [t.kernel for t in result.execution.tasks] == ["entry_incore_0", "entry_incore_1"]
    np.testing.assert_array_equal(final(result, "y"), 2.0)  # x = 0, bumped twice
