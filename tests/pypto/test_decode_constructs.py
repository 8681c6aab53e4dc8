"""The constructs pypto-lib HEAD's qwen3_14b decode adds. Task-id arrays (`pl.array.create(n, pl.TASK_ID)`):
each element stands for the task id last stored in it; deps= on an element, on a compile-time comprehension of
elements and on a whole array give exactly the edges worked out by hand from the program; the YAML form
(`task_array`, `ts[i] = task_ids(t)`) runs the same. Atomic assembles add into GM; UINT8 is a storage type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from npusim.errors import ProgramError
from npusim.frontend import load_program

from .helpers import PROGRAMS, final, run_program, write
from .test_yaml_writer import written

TASKS = PROGRAMS / "extern" / "task_arrays.py"
ATOMIC = PROGRAMS / "extern" / "atomic.py"


def edges(path: Path, tmp: Path) -> tuple[list[tuple[str, tuple[int, ...]]], object]:
    result = run_program(path, tmp, numerics=True)
    return [(t.kernel, t.after) for t in result.execution.tasks], result


def test_array_elements_give_the_edges_worked_by_hand(tmp_path: Path) -> None:
    got, result = edges(TASKS, tmp_path / "py")
    # dispatches in order: first 0, row 1..4 (each after first), pair after rows[0], rows[1]; all after every
    # row and pair. The seed element is an empty task_dummy: first waits for nothing.
    assert got == [("first", ()), ("row", (0,)), ("row", (0,)), ("row", (0,)), ("row", (0,)), ("pair", (1, 2)),
                   ("all", (1, 2, 3, 4, 5))]
    x = result.execution.tensors["x"].data.astype(np.float64)
    scale = np.array([[2.0], [2.0], [3.0], [3.0]])
    np.testing.assert_allclose(final(result, "z"), (np.exp(x) + 1.0) * scale, rtol=1e-6)


def test_the_yaml_form_gives_the_same_edges(tmp_path: Path) -> None:
    yml = written(TASKS, tmp_path)
    text = yml.read_text()
    assert "rows = task_array(K)" in text or "rows = task_array(4)" in text
    assert "rows[i] = task_ids(row_tid)" in text
    assert edges(yml, tmp_path / "yml")[0] == edges(TASKS, tmp_path / "py")[0]


def test_an_index_outside_the_array_is_a_located_error(tmp_path: Path) -> None:
    text = TASKS.read_text().replace("rows[i] = row_tid", "rows[i + 1] = row_tid")
    path = write(tmp_path, "bad.py", text)
    with pytest.raises(ProgramError) as exc:
        run_program(path, tmp_path / "out", numerics=False)
    line = next(n for n, t in enumerate(text.split("\n"), 1) if "rows[i + 1] = row_tid" in t)
    assert str(exc.value).startswith(f"{path}:{line}:")
    assert "index 4 is outside task-id array rows of 4 elements" in str(exc.value)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("rows = pl.array.create(K, pl.TASK_ID)", "rows = pl.array.create(K, pl.INT32)",
     "pl.array.create(n, pl.TASK_ID) is the one array"),
    ("rows[i] = row_tid", "rows[i] = 3", "a task-id array holds task ids"),
    ("deps=[rows[j] for j in range(2)]", "deps=[rows[j] for j in range(K + 1)]",
     "index 4 is outside the task-id array of 4 elements"),
    ("rows[i] = row_tid", "pl.array.set(rows, i, row_tid)", "`arr[i] = tid` sets it"),
])
def test_misused_arrays_are_located_at_import(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = TASKS.read_text()
    assert old in text
    path = write(tmp_path, "bad.py", text.replace(old, new))
    with pytest.raises(ProgramError) as exc:
        load_program(path)
    line = next(n for n, t in enumerate(text.replace(old, new).split("\n"), 1) if new in t)
    assert message in str(exc.value) and str(exc.value).startswith(f"{path}:{line}:")


def test_atomic_assembles_add_into_gm(tmp_path: Path) -> None:
    result = run_program(ATOMIC, tmp_path / "out", numerics=True)
    x = result.execution.tensors["x"].data.astype(np.float32)
    want = np.float32(1.0) + np.exp(x) + np.exp(x)  # y starts at 1.0; each of the two blocks adds exp(x)
    np.testing.assert_allclose(final(result, "y"), want, rtol=2e-6)
    program = load_program(ATOMIC)
    assert program.body[-1].text == "buf = create_tensor([64], uint8)"


def test_an_atomic_store_costs_what_a_plain_one_does(tmp_path: Path) -> None:
    plain = write(tmp_path, "plain.py", ATOMIC.read_text().replace(", atomic=pl.AtomicType.Add", ""))
    a = run_program(ATOMIC, tmp_path / "a", numerics=False).timeline
    b = run_program(plain, tmp_path / "b", numerics=False).timeline
    assert [r.schedule.cycles for r in a.runs] == [r.schedule.cycles for r in b.runs]
    assert a.cycles == b.cycles


ARANGE = '''
import pypto.language as pl

N = 16


@pl.jit
def f(x: pl.Tensor[[4, N], pl.FP32], y: pl.Out[pl.Tensor[[4, N], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP, name_hint="pos"):
        cols = pl.cast(pl.arange(3, [1, N], dtype=pl.INT32), target_type=pl.FP32)
        y = pl.assemble(y, pl.add(x[:, :], pl.col_expand(x[:, :], cols)), [0, 0])
    return y


def build_tensor_specs():
    import torch
    from golden import TensorSpec
    return [TensorSpec("x", [4, N], torch.float32, init_value=torch.rand),
            TensorSpec("y", [4, N], torch.float32, is_output=True)]
'''


def test_arange_and_col_expand_from_pypto(tmp_path: Path) -> None:
    """pl.arange(3, [1, N]) is 3..18 along the row; pl.col_expand copies it down x's 4 rows."""
    path = write(tmp_path, "ar.py", ARANGE)
    result = run_program(path, tmp_path / "out", numerics=True)
    x = result.execution.tensors["x"].data.astype(np.float64)
    np.testing.assert_array_equal(final(result, "y"), (x.astype(np.float32) + np.arange(3, 19, dtype=np.float32)))


WRITE = PROGRAMS / "extern" / "write.py"


def test_write_sets_tile_elements_at_one_scalar_store_each(tmp_path: Path) -> None:
    """pl.write(row, [0, c], v * 10) where x[0, c] > 2 (numpy: where(x > 2, 10 x, -1)); each write is one TSETVAL,
    a scalar store into UB at scalar_store_cycles (3 on configs/ascend910b.yaml)."""
    from npusim.timing import load_config
    from npusim.timing.costs import CostModel

    result = run_program(WRITE, tmp_path / "out", numerics=True)
    x = result.execution.tensors["x"].data
    np.testing.assert_array_equal(result.execution.tensors["y"].data, np.where(x > 2, 10 * x, -1))
    hw = load_config("ascend910b")
    writes = [op for op in result.execution.tasks[0].ops if result.execution.instrs[op.instr].op == "write"]
    assert len(writes) == int((x > 2).sum()) and hw.scalar_store_cycles == 3
    assert all(CostModel(hw).isolated_cycles(op.sig) == 3 for op in writes)


def test_write_into_gm_is_refused_where_it_stands(tmp_path: Path) -> None:
    text = WRITE.read_text().replace("pl.write(row, [0, c], v * 10)", "pl.write(y, [0, c], v * 10)")
    path = write(tmp_path, "gm.py", text)
    with pytest.raises(ProgramError) as exc:
        run_program(path, tmp_path / "out", numerics=False)
    line = next(n for n, t in enumerate(text.split("\n"), 1) if "pl.write(y," in t)
    assert str(exc.value).startswith(f"{path}:{line}:") and "writing one element of GM" in str(exc.value)


VALIDSHAPE = PROGRAMS / "extern" / "validshape.py"


def test_set_validshape_is_metadata_a_run_time_extent_makes_the_tile_dynamic(tmp_path: Path) -> None:
    """n = 5: y keeps exp(x) in its first 5 columns and fillpad zeroes the other 11 (numpy); set_validshape records
    no op (load, exp, fillpad, store) and the fillpad sees a dynamic [4, 16] tile whose valid part is [4, 5]."""
    result = run_program(VALIDSHAPE, tmp_path / "out", numerics=True)
    x = result.execution.tensors["x"].data.astype(np.float32)
    want = np.where(np.arange(16) < 5, np.exp(x), 0.0)
    np.testing.assert_allclose(final(result, "y"), want, rtol=2e-6)
    task = result.execution.tasks[0]
    names = [result.execution.instrs[op.instr].op for op in task.ops]
    assert "set_validshape" not in names and names.count("fillpad") == 1
    pad = next(op for op in task.ops if result.execution.instrs[op.instr].op == "fillpad")
    assert pad.sig.ins[0].valid == (4, 5) and pad.sig.ins[0].dynamic


def test_a_scalar_cast_into_a_float_type_is_a_float_scalar(tmp_path: Path) -> None:
    """pl.cast(pl.cast(lane * 2 - 1, pl.INT32), pl.FP32) of a loop scalar (pypto-lib HEAD's rope sign template):
    a scalar, not a tile op; -1.0, 1.0 alternating, divided by 4 as floats."""
    text = (PROGRAMS / "extern" / "write.py").read_text()
    text = text.replace("            v = pl.read(x, [0, c])\n            if v > 2:\n"
                        "                pl.write(row, [0, c], v * 10)\n",
                        "            lane = c % 2\n"
                        "            pl.write(row, [0, c], pl.cast(pl.cast(lane * 2 - 1, pl.INT32), pl.FP32) * 10)\n")
    assert "lane = c % 2" in text
    path = write(tmp_path, "signs.py", text)
    result = run_program(path, tmp_path / "out", numerics=True)
    assert result.execution.tensors["y"].data.tolist() == [[-10, 10] * 4]


def test_a_scalar_cast_of_a_comparison_is_a_scalar(tmp_path: Path) -> None:
    """pl.cast(v > 2, pl.INT32) (pypto-lib HEAD's `pl.cast(s == s, pl.INT32)` fence bits): a scalar 0 or 1."""
    text = (PROGRAMS / "extern" / "write.py").read_text().replace(
        "            if v > 2:\n                pl.write(row, [0, c], v * 10)\n",
        "            pl.write(row, [0, c], pl.cast(v > 2, pl.INT32))\n")
    assert "pl.cast(v > 2, pl.INT32)" in text
    path = write(tmp_path, "bits.py", text)
    result = run_program(path, tmp_path / "out", numerics=True)
    x = result.execution.tensors["x"].data
    np.testing.assert_array_equal(result.execution.tensors["y"].data, (x > 2).astype(np.int32))


def test_a_scope_name_starting_with_a_digit_stays_a_name(tmp_path: Path) -> None:
    """`# Scope 3b:` (qwen3_14b decode_fwd) names a scope `scope3b`, an identifier, so that the YAML form
    (`scope NAME`) loads back (it was `3b`, which the YAML refused)."""
    text = ARANGE.replace("    with pl.at(level=pl.Level.CORE_GROUP, name_hint=\"pos\"):\n",
                          "    # Scope 3b: inner\n    with pl.at(level=pl.Level.CORE_GROUP, name_hint=\"pos\"):\n")
    assert "# Scope 3b:" in text
    path = write(tmp_path, "sc.py", text)
    assert load_program(path).body[0].text == "scope scope3b"
    assert load_program(written(path, tmp_path)).body[0].text == "scope scope3b"
