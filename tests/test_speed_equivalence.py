"""Speed without changed results. Kernel replay (npusim/interp/replay.py) gives exactly the tasks full
interpretation gives: every task's op records, core kind, GM footprint, scopes and context, the loop-iteration
count and the same error, on every shipped program and on generated programs whose kernels read scalars that
reach offsets (affinely or not), loop bounds, conditions, valid shapes and tile windows, write through views
and fresh tensors, leave scalars behind for later kernels, and step outside their tensors in later
iterations. The reference check, which measures only the elements whose bits differ, finds what measuring
whole blocks finds."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.dtypes import np_dtype
from npusim.errors import NpusimError
from npusim.frontend import load_program
from npusim.frontend.inputs import initial_values
from npusim.graph import Execution, Task
from npusim.interp import execute
from npusim.interp.compile import Interpreter
from npusim.references import Reference, check

from .conftest import PROGRAMS

_runner = importlib.import_module("npusim.runner" if importlib.util.find_spec("npusim.runner") else "npusim.run")


def _outcome(path: Path, preset: str | None, replay: bool, numerics: bool = False) -> tuple[str, Execution | str, int]:
    """The execution (or the error) of a timing-only run (or one with numerics), and how many kernel executions
    were replayed (with numerics: took their task record from a template)."""
    program = load_program(path, preset)
    inputs = initial_values(program, 0) if numerics else initial_values(program, 0, only=_runner.tensors_read(program))
    interp = Interpreter(program, inputs, numerics_on=numerics, replay=replay)
    try:
        execution = interp.run()
    except NpusimError as exc:
        return "error", str(exc), 0
    return "ok", execution, interp.replay.replayed if interp.replay else 0


def _assert_same(a: Execution, b: Execution) -> None:
    """Every field of every task and of the execution (fields added later are compared too)."""
    assert len(a.tasks) == len(b.tasks)
    for x, y in zip(a.tasks, b.tasks, strict=True):
        for f in dataclasses.fields(Task):
            assert getattr(x, f.name) == getattr(y, f.name), f"task {x.id} ({x.kernel}): {f.name} differs"
    for f in dataclasses.fields(Execution):
        if f.name not in ("tasks", "tensors"):
            assert getattr(a, f.name) == getattr(b, f.name), f"execution: {f.name} differs"
    assert a.tensors.keys() == b.tensors.keys()
    for name, t in a.tensors.items():
        u = b.tensors[name]
        assert (t.shape, t.dtype) == (u.shape, u.dtype) and (t.data is None) == (u.data is None)
        assert t.data is None or np.array_equal(t.data, u.data)


# every shipped program at every preset; the full-size layer variants once each (the PyPTO file has no presets)
SHIPPED = sorted({(p, preset) for p in PROGRAMS.glob("*.yaml") for preset in (None, "tiny")}
                 | {(PROGRAMS / "qwen3_decode.yaml", "full_max_seq")} | {(p, None) for p in PROGRAMS.glob("*.py")},
                 key=lambda c: (c[0].name, c[1] or ""))


@pytest.mark.parametrize(("path", "preset"), SHIPPED, ids=[f"{p.name}-{s}" for p, s in SHIPPED])
def test_replay_matches_interpretation_on_shipped_programs(path: Path, preset: str | None) -> None:
    full_kind, full, _ = _outcome(path, preset, replay=False)
    kind, replayed, count = _outcome(path, preset, replay=True)
    assert full_kind == kind == "ok"
    assert isinstance(full, Execution) and isinstance(replayed, Execution)
    _assert_same(full, replayed)
    if len(full.tasks) > 8:
        assert count > 0, "nothing was replayed"


NUMERIC = sorted((p, "tiny") for p in PROGRAMS.glob("*.yaml"))  # (the PyPTO layer has no small preset)


@pytest.mark.parametrize(("path", "preset"), NUMERIC, ids=[f"{p.name}-{s}" for p, s in NUMERIC])
def test_records_from_templates_match_interpretation_with_numerics(path: Path, preset: str | None) -> None:
    """With numerics every execution is interpreted, and one a template fits takes the template's record: the
    same tasks and the same values as interpreting every record."""
    full_kind, full, _ = _outcome(path, preset, replay=False, numerics=True)
    kind, replayed, count = _outcome(path, preset, replay=True, numerics=True)
    assert full_kind == kind == "ok"
    assert isinstance(full, Execution) and isinstance(replayed, Execution)
    _assert_same(full, replayed)
    if len(full.tasks) > 8:
        assert count > 0, "no record came from a template"
        assert len({id(t.ops) for t in replayed.tasks}) < len(replayed.tasks)  # the templates' op lists, shared


@pytest.mark.parametrize(("preset", "overrides"), [("full_max_seq", None), (None, {"max_seq": 16384})],
                         ids=["full_max_seq", "max_seq_16384"])
def test_replay_of_the_decode_layer_interprets_one_execution_per_distinct_op_list(
        preset: str | None, overrides: dict[str, int] | None) -> None:
    """Block loops cut short by the context length at different block offsets share a template when their
    bounds come out the same (at max_seq 16384 the layer has 2271 tasks and 94 distinct op lists)."""
    program = load_program(PROGRAMS / "qwen3_decode.yaml", preset, overrides)
    interp = Interpreter(program, initial_values(program, 0, only={"seq_lens"}), numerics_on=False)
    execution = interp.run()
    distinct = len({tuple(t.ops) for t in execution.tasks})
    assert interp.replay is not None
    assert len(execution.tasks) - interp.replay.replayed == distinct


BLOCKS = """name: blocks
params: {N: 200, B: 32}
tensors:
  a: {shape: [256, 16], dtype: fp32, role: input, init: ones}
  b: {shape: [256, 16], dtype: fp32, role: output}
body:
  - for s0 in range(0, N, B):
    - incore blk:
      - n = min(B, N - s0)
      - for j in range(n):
        - x = slice(a, [1, 16], [s0 + j, 0])
        - y = add(x, x)
        - b = assemble(b, y, [s0 + j, 0])
      - last = s0 + n
    - incore probe:
      - p = slice(a, [1, 16], [last - 1, 0])
      - q = add(p, p)
      - b = assemble(b, q, [last - 1, 0])
"""


@pytest.mark.parametrize("numerics", [False, True], ids=["timing-only", "numerics"])
def test_blocks_cut_short_at_different_offsets_share_a_template(tmp_path: Path, numerics: bool) -> None:
    """Seven blocks of 32 rows over N=200: six full ones at s0 = 0..160 and one of 8 rows at s0=192. By hand:
    blk has two outcomes (range(0, 32), range(0, 8)) and probe one (`last` only moves its window), so three
    executions are interpreted; `last`, computed by min() and left for probe, ends at 200 in the last block."""
    path = tmp_path / "blocks.yaml"
    path.write_text(BLOCKS)
    full_kind, full, _ = _outcome(path, None, replay=False, numerics=numerics)
    kind, replayed, count = _outcome(path, None, replay=True, numerics=numerics)
    assert full_kind == kind == "ok"
    assert isinstance(full, Execution) and isinstance(replayed, Execution)
    _assert_same(full, replayed)
    assert len(replayed.tasks) - count == 3
    assert [t.reads for t in replayed.tasks if t.kernel == "probe"][-1] == [(0, (199, 0), (200, 16))]


# -- generated programs ------------------------------------------------------------------------------------

ROWS, COLS = 64, 48


@st.composite
def _expr(draw: st.DrawFn, names: list[str], depth: int = 2) -> str:
    """A small integer expression over `names`: sums, products by constants, and non-affine forms."""
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from([*names, "0", "1", "2", "3"]))
    a, b = draw(_expr(names, depth - 1)), draw(_expr(names, depth - 1))
    form = draw(st.sampled_from(["{a} + {b}", "{a} - {b}", "{a} * 2", "2 * {a} + {b}", "{a} * {b}",
                                 "{a} // 2", "{a} % 3", "min({a}, {b})", "({a} - {b}) * -1", "max({a}, 1)"]))
    return form.format(a=a, b=b)


@st.composite
def generated_program(draw: st.DrawFn) -> str:
    """A YAML program: an outer loop around orchestration scalars, views and fresh tensors, and one or two
    kernels that read them in offsets, bounds, conditions and shapes."""
    n = draw(st.integers(2, 6))
    lines = ["name: generated", f"params: {{N: {n}}}", "tensors:",
             f"  a: {{shape: [{ROWS}, {COLS}], dtype: fp32, role: input, init: ones}}",
             f"  b: {{shape: [{ROWS}, {COLS}], dtype: fp32, role: output}}",
             "body:", "  - carried = 0", "  - for i in range(N):"]
    outer = ["i", "carried"]
    body = [f"o = {draw(_expr(outer))}", "k = i % 2"]
    names = [*outer, "o", "k"]
    view_rows = draw(st.integers(4, ROWS))
    body.append(f"va = slice(a, [{view_rows}, {COLS}], [{draw(_expr(names, 1))}, 0])")
    if draw(st.booleans()):
        body.append(f"fresh = create_tensor([{ROWS}, {COLS}], fp32)")
        target = "fresh"
    else:
        target = draw(st.sampled_from(["b", "vb"]))
        body.append(f"vb = slice(b, [{view_rows}, {COLS}], [{draw(_expr(names, 1))}, 0])")
    for kernel in range(draw(st.integers(1, 2))):
        h, w = draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([8, 16]))
        src = draw(st.sampled_from(["a", "va"]))
        kbody = []
        inner = list(names)
        if draw(st.booleans()):  # abs is a tile op too: of scalars, a scalar function
            kbody.append(f"m = abs({draw(_expr(inner, 1))} - 2)")
            inner.append("m")
        if draw(st.booleans()):
            bound = draw(st.sampled_from(["2", "k + 1", "o % 3", "N - i", "min(2, N - i)", "min(3, o + 1) - i"]))
            kbody.append(f"for j in range({bound}):")
            indent, inner = "  ", [*names, "j"]
        else:
            indent = ""
        guard = draw(st.sampled_from(["", f"if {draw(_expr(inner, 1))} < 3:", "if i + k < N - 1:"]))
        if guard:
            kbody.append(indent + guard)
            indent += "  "
        valid = draw(st.sampled_from(["", f", valid_shape=[{h}, min({w}, {draw(_expr(inner, 1))} + 1)]"]))
        kbody += [indent + f"x = slice({src}, [{h}, {w}], [{draw(_expr(inner))}, {draw(_expr(inner, 1))}]{valid})",
                  indent + "y = add(x, x)"]
        if draw(st.booleans()):
            kbody.append(indent + f"y = slice(y, [1, 8], [0, {draw(st.sampled_from(['0', 'k * 8', 'o % 2']))}])")
        if draw(st.booleans()):
            kbody.append(indent + f"alias = {target}")
            dest = "alias"
        else:
            dest = target
        kbody.append(indent + f"{dest} = assemble({dest}, y, [{draw(_expr(inner))}, {draw(_expr(inner, 1))}])")
        kbody.append(indent + f"left = {draw(st.sampled_from(inner))} + {draw(st.integers(0, 3))}")
        body.append(f"incore k{kernel}:")
        body += ["  " + line for line in kbody]
    # what the kernels left behind, seen in a footprint: a kernel reading at row `left`
    body += ["incore probe:", f"  p = slice(a, [1, 8], [max(0, min(left, {ROWS - 1})), 0])",
             "  q = add(p, p)", "  b = assemble(b, q, [0, 0])"]
    body.append("carried = left" if draw(st.booleans()) else "carried = carried + 1")
    reset = ["left = 0"] if draw(st.booleans()) else []  # else `left` may carry over from an earlier kernel
    lines += [_nest(line) for line in [*reset, *body]]
    return "\n".join(lines) + "\n"


def _nest(line: str) -> str:
    """A body line (indented by two spaces per level) as a YAML list item inside the outer loop."""
    depth = (len(line) - len(line.lstrip(" "))) // 2
    return "  " * (depth + 2) + "- " + line.lstrip(" ")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(generated_program())
def test_replay_matches_interpretation_on_generated_programs(tmp_path_factory: pytest.TempPathFactory,
                                                             text: str) -> None:
    path = tmp_path_factory.mktemp("replay") / "program.yaml"
    path.write_text(text)
    try:
        load_program(path, None)
    except NpusimError:
        return  # a program the generator got wrong (e.g. a name assigned only later): nothing to compare
    full_kind, full, _ = _outcome(path, None, replay=False)
    kind, replayed, _ = _outcome(path, None, replay=True)
    assert kind == full_kind, (full, replayed, text)
    if kind == "error":
        assert replayed == full, text
    else:
        assert isinstance(full, Execution) and isinstance(replayed, Execution)
        _assert_same(full, replayed)


# -- the reference check's comparison on the bits --------------------------------------------------------


def _check_over_whole_blocks(expected: np.ndarray, actual: np.ndarray, block: int, rtol: float, atol: float
                             ) -> tuple[int, float, float]:
    """The check as first written: a block of identical bits is skipped, any other block is measured whole."""
    got_flat, want_flat = actual.reshape(-1), expected.reshape(-1)
    mismatches, max_abs, max_rel = 0, 0.0, 0.0
    for s in range(0, got_flat.size, block):
        if np.array_equal(got_flat[s : s + block].view(np.uint8), want_flat[s : s + block].view(np.uint8)):
            continue
        got, want = got_flat[s : s + block].astype(np.float64), want_flat[s : s + block].astype(np.float64)
        err = np.abs(got - want)
        mismatches += int(np.count_nonzero(~(err <= atol + rtol * np.abs(want))))
        max_abs = max(max_abs, float(np.max(err, initial=0.0)))
        sized = np.abs(want) >= atol
        max_rel = max(max_rel, float(np.max(err[sized] / np.abs(want[sized]), initial=0.0)))
        if np.isnan(err).any():
            max_abs = max_rel = float("inf")
    return mismatches, max_abs, max_rel


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["bf16", "fp32", "int32"]), st.integers(1, 64),
       st.floats(0, 0.5), st.floats(0, 1e-2))
def test_the_check_measures_only_what_differs_and_finds_the_same(seed: int, dtype: str, block: int,
                                                                 changed: float, tol: float) -> None:
    rng = np.random.default_rng(seed)
    want = (rng.random(300) - 0.5) * 4
    if dtype == "int32":
        want = (want * 100).astype(np.int32)
    else:
        want[rng.random(300) < 0.05] = rng.choice([np.nan, np.inf, -np.inf, 0.0])
        want = want.astype(np_dtype(dtype))
    got = want.copy()
    hit = rng.random(300) < changed
    with np.errstate(invalid="ignore"):  # inf * (1 + e) stays non-finite
        got[hit] = (want[hit].astype(np.float64) * (1 + rng.normal(0, 1e-2, hit.sum()))).astype(got.dtype)
    ref = Reference("t", lambda inputs, consts: {"x": want}, rtol=tol, atol=tol)
    with np.errstate(invalid="ignore"):  # inf * 0 where a tolerance is 0: NaN, counted as a mismatch
        result = check(ref, {}, {}, {"x": got}, block=block).outputs["x"]
        mismatches, max_abs, max_rel = _check_over_whole_blocks(want, got, block, tol, tol)
    assert result.mismatches == mismatches
    assert result.max_abs_err == (max_abs if np.isfinite(max_abs) else None)
    assert result.max_rel_err == (max_rel if np.isfinite(max_rel) else None)


# -- issue 12's task fields: SPMD blocks, split mix kernels, explicit edges, manual scopes -----------------

ENGINE_FEATURES = """name: engine_features
tensors:
  a: {shape: [64, 128], dtype: bf16, role: input, init: 'uniform(-1, 1)'}
  w: {shape: [128, 256], dtype: bf16, role: input, init: 'uniform(-1, 1)'}
  h: {shape: [64, 256], dtype: fp32, role: input, init: 'uniform(-1, 1)'}
  out: {shape: [64, 256], dtype: fp32, role: output}
  y: {shape: [64, 256], dtype: fp32, role: output}
body:
  - incore grid(blocks=4, block=i, tid=g):
    - t = slice(h, [16, 256], [i * 16, 0])
    - y = assemble(y, t, [i * 16, 0])
  - for r in range(4):
    - incore mixk(split="up_down", deps=[g]):
      - x = slice(a, [16, 128], [r * 16, 0])
      - v = slice(w, [128, 256], [0, 0])
      - acc = matmul(x, v)
      - s = slice(h, [16, 256], [r * 16, 0])
      - o = add(acc, s)
      - out = assemble(out, o, [r * 16, 0])
  - manual:
    - for r in range(4):
      - incore copy(tid=c):
        - u = slice(out, [16, 256], [r * 16, 0])
        - y = assemble(y, u, [r * 16, 0])
      - b = task_ids(c, g)
      - incore after(blocks=2, block=j, deps=[b]):
        - q = slice(y, [8, 256], [r * 16 + j * 8, 0])
        - y = assemble(y, q, [r * 16 + j * 8, 0])
"""


RESHAPED_VIEW = """name: reshaped_view
tensors:
  x: {shape: [2, 8, 64], dtype: fp32, role: input, init: 'uniform(-1, 1)'}
  y: {shape: [16, 64], dtype: fp32, role: output}
body:
  - v = reshape(x, [16, 64])
  - for r in range(4):
    - incore copy:
      - t = slice(v, [4, 64], [r * 4, 0])
      - y = assemble(y, t, [r * 4, 0])
"""


@pytest.mark.parametrize("which", ["yaml", "jit", "reshape"])
def test_replay_matches_interpretation_with_spmd_split_deps_and_manual_scopes(tmp_path: Path, which: str) -> None:
    if which in ("yaml", "reshape"):
        path = tmp_path / f"{which}.yaml"
        path.write_text(ENGINE_FEATURES if which == "yaml" else RESHAPED_VIEW)
    else:
        path = Path(__file__).parent / "pypto" / "programs" / "jit" / "model.py"
    full_kind, full, _ = _outcome(path, None, replay=False)
    kind, replayed, count = _outcome(path, None, replay=True)
    assert full_kind == kind == "ok", (full, replayed)
    assert isinstance(full, Execution) and isinstance(replayed, Execution)
    _assert_same(full, replayed)
    if which == "reshape":  # a kernel reading a reshaped GM view (its footprint on the 3-D base) is interpreted
        assert len(full.tasks) == 4 and full.tasks[1].reads == [(0, (0, 4, 0), (1, 8, 64))]
        return
    assert {t.split for t in full.tasks} >= {"up_down"} and max(t.blocks for t in full.tasks) > 1
    assert any(t.after for t in full.tasks) and any(t.manual for t in full.tasks)
    if which == "yaml":
        assert count > 0, "nothing was replayed"


def test_the_collector_is_off_during_a_run_and_restored_after(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The run turns the cyclic collector off, and gives the caller's state back, also when the run fails;
    a caller that had it off keeps it off."""
    import gc

    seen = []
    real_run = _runner._run
    monkeypatch.setattr(_runner, "_run", lambda *a: (seen.append(gc.isenabled()), real_run(*a))[1])
    assert gc.isenabled()
    _runner.run(_runner.RunOptions(program=PROGRAMS / "softmax.yaml", preset="tiny", numerics=False, quiet=True,
                                   plot=False, trace=False, out=tmp_path / "a"))
    assert seen == [False] and gc.isenabled()

    def fail(*_: object) -> None:
        raise NpusimError("stopped inside the run")

    monkeypatch.setattr(_runner, "_run", fail)
    with pytest.raises(NpusimError, match="inside the run"):
        _runner.run(_runner.RunOptions(program=PROGRAMS / "softmax.yaml", preset="tiny", quiet=True,
                                       out=tmp_path / "b"))
    assert gc.isenabled()
    monkeypatch.setattr(_runner, "_run", real_run)
    gc.disable()
    try:
        _runner.run(_runner.RunOptions(program=PROGRAMS / "softmax.yaml", preset="tiny", numerics=False,
                                       quiet=True, plot=False, trace=False, out=tmp_path / "c"))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_run_command_collects_nothing_before_it_freezes_what_it_made(tmp_path: Path) -> None:
    """`npusim run`: from the command's start until the run is done no collection runs (none scans what the run
    made); then it is frozen, out of every later collection, and the collector is on again as it was."""
    import gc

    from npusim.cli import main

    gc.unfreeze()
    collections: list[int] = []
    record = lambda phase, info: collections.append(info["generation"]) \
        if phase == "start" and not gc.get_freeze_count() else None  # noqa: E731
    gc.callbacks.append(record)
    try:
        main(["run", str(PROGRAMS / "softmax.yaml"), "--preset", "tiny", "--no-numerics", "--quiet", "--no-plot",
              "--no-trace", "--out", str(tmp_path / "out")], standalone_mode=False)
        assert gc.isenabled() and gc.get_freeze_count() > 0 and collections == []
    finally:
        gc.callbacks.remove(record)
        gc.unfreeze()


def test_a_scratch_tensor_is_freed_when_its_name_is_rebound_while_the_collector_is_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run keeps the collector off, so a GM tensor in a reference cycle (one holding a view of itself, say)
    would keep its values until the run ends: a loop that makes a fresh scratch tensor per iteration, as the
    decode layer's attention does per head, would hold all of them at once. When one is made, at most two of
    the earlier ones may be alive: the one `tmp` names, and the first, which the two kernels' replay templates
    recorded as their GM arguments when they were first interpreted."""
    import gc
    import weakref

    import npusim.interp.compile as compile_module

    made: list[weakref.ref] = []
    alive_at_make: list[int] = []
    real_poison = compile_module.poison

    def poison(shape: tuple[int, ...], dtype: str) -> np.ndarray:
        alive_at_make.append(sum(r() is not None for r in made))
        data = real_poison(shape, dtype)
        made.append(weakref.ref(data))
        return data

    monkeypatch.setattr(compile_module, "poison", poison)
    path = tmp_path / "fresh.yaml"
    path.write_text("""name: fresh
tensors:
  x: {shape: [16, 64], dtype: fp32, role: input, init: "uniform(-1, 1)"}
  y: {shape: [16, 64], dtype: fp32, role: output}
body:
  - for i in range(8):
    - tmp = create_tensor([16, 64], fp32)
    - incore copy_in:
      - t = slice(x, [16, 64], [0, 0])
      - tmp = assemble(tmp, t, [0, 0])
    - incore copy_out:
      - u = slice(tmp, [16, 64], [0, 0])
      - y = assemble(y, u, [0, 0])
""")
    program = load_program(path)
    inputs = initial_values(program, 0)
    gc.disable()
    try:
        got = execute(program, inputs)
    finally:
        gc.enable()
    assert len(made) == 8 and max(alive_at_make) <= 2, alive_at_make
    assert np.array_equal(got.tensors["y"].data, inputs["x"])


# -- inputs drawn beside the interpreter -----------------------------------------------------------------

def _front_first(late: np.ndarray, values: np.ndarray, asked: list[int | None]):
    """An `arriving` wait that puts the elements asked for (the first n in memory order) into `late`, each once,
    as the drawing process does."""
    there = [0]

    def arrive(n: int | None) -> bool:
        asked.append(n)
        n = late.size if n is None else n
        if n > there[0]:
            late.reshape(-1)[there[0]:n] = values.reshape(-1)[there[0]:n]
            there[0] = n
        return there[0] >= late.size
    return arrive


def test_the_interpreter_waits_for_an_input_before_it_first_reads_it() -> None:
    """An input whose elements arrive only when waited for, front to back (zeros until then), gives the outputs
    of one there at once: every load asks for the elements up to its window's last one. The tiny matmul's b
    [512, 128] is read in [128, 64] blocks down its rows: the first asks for 127 * 128 + 64 = 16 320 elements."""
    program = load_program(PROGRAMS / "matmul.yaml", "tiny")
    inputs = initial_values(program, 0)
    want = execute(program, initial_values(program, 0))
    late, asked = np.zeros_like(inputs["b"]), []
    got = execute(program, {**inputs, "b": late.view()}, arriving={"b": _front_first(late, inputs["b"], asked)})
    assert asked[0] == 16320 and asked[-1] == late.size and all(0 < n < late.size for n in asked[:-1])
    for name in ("c", "c32"):
        assert np.array_equal(got.tensors[name].data, want.tensors[name].data), name


def test_the_interpreter_waits_for_an_inout_before_it_first_writes_it(tmp_path: Path) -> None:
    """An inout the kernels store into before anything reads it (c32 of the matmul, made an inout): the values
    that arrive late must be there before the first store, or they would overwrite what it stored."""
    text = (PROGRAMS / "matmul.yaml").read_text()
    old = "c32: {shape: [M, N], dtype: fp32, role: output}"
    assert old in text
    path = tmp_path / "inout.yaml"
    path.write_text(text.replace(old, 'c32: {shape: [M, N], dtype: fp32, role: inout, init: "uniform(-1, 1)"}'))
    program = load_program(path, "tiny")
    inputs = initial_values(program, 0)
    want = execute(program, initial_values(program, 0), copy_inouts=False)
    late, asked = np.zeros_like(inputs["c32"]), []
    got = execute(program, {**inputs, "c32": late}, copy_inouts=False,
                  arriving={"c32": _front_first(late, inputs["c32"], asked)})
    assert len(asked) > 1  # (its windows arrive one by one)
    for name in ("c", "c32"):
        assert np.array_equal(got.tensors[name].data, want.tensors[name].data), name


def _outcome_of_run(program: Path, preset: str | None) -> tuple[dict, dict, str]:
    report = _runner.run(_runner.RunOptions(program=program, preset=preset, quiet=True, plot=False,
                                            trace=False)).report
    return ({n: o.sha256 for n, o in report.outputs.items()}, {s.name: s.cycles for s in report.scopes},
            report.check.model_dump_json() if report.check else "")


@pytest.mark.parametrize(("name", "preset"), [("qwen3_decode.yaml", "tiny"), ("matmul.yaml", "tiny")])
def test_inputs_drawn_beside_give_the_run_of_inputs_drawn_first(name: str, preset: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The forked process's drawing (Linux) against every input drawn before the run: the same outputs' bits,
    cycles and check."""
    if not _runner.can_fork():
        pytest.skip("inputs are drawn beside only by a forked process")
    beside = _outcome_of_run(PROGRAMS / name, preset)
    drawn: list[str] = []
    real = _runner.Drawn.__init__

    def spy(self, layout, *rest, **kw) -> None:  # type: ignore[no-untyped-def]
        drawn.extend(n for n, _, _ in layout)
        real(self, layout, *rest, **kw)

    monkeypatch.setattr(_runner.Drawn, "__init__", spy)
    again = _outcome_of_run(PROGRAMS / name, preset)
    program = load_program(PROGRAMS / name, preset)
    assert set(drawn) == {n for n, t in program.tensors.items()
                          if t.role in ("input", "inout") and n not in _runner.tensors_read(program)}
    monkeypatch.setattr(_runner, "can_fork", lambda: False)
    first = _outcome_of_run(PROGRAMS / name, preset)
    assert beside == again == first


def test_inputs_one_task_first_moves_are_drawn_together() -> None:
    """The decode layer's RoPE kernel first moves rope_cos, rope_sin, k_cache and v_cache: one `together` group
    (so the first V rows do not wait for all of the K cache); wq, wk and wv are first moved by three kernels."""
    if not _runner.can_fork():
        pytest.skip("inputs are drawn beside only by a forked process")
    program = load_program(PROGRAMS / "qwen3_decode.yaml", "tiny")
    opts = _runner.RunOptions(program=PROGRAMS / "qwen3_decode.yaml", preset="tiny")
    quick = _runner.initial_values(program, 0, only=_runner.tensors_read(program))
    _, drawn = _runner.inputs_drawn_beside(program, 0, quick, _runner.probe(program, quick, opts, True), True)
    pending = _runner.beside(_runner._no_values, what="the process drawing the inputs", drawn=drawn)
    drawn.wait_all()
    pending.close()
    key = dict(zip(drawn.arrays, drawn._together, strict=True))
    assert key["rope_cos"] == key["rope_sin"] == key["k_cache"] == key["v_cache"]
    assert len({key["wq"], key["wk"], key["wv"], key["k_cache"]}) == 4
    order = list(drawn.arrays)
    assert order.index("v_cache") == order.index("k_cache") + 1  # (a group is consecutive)


def test_inputs_are_drawn_in_the_order_the_run_first_moves_them(tmp_path: Path) -> None:
    """b declared before a, a read first: a is drawn first (declaration order only breaks ties)."""
    text = (PROGRAMS / "matmul.yaml").read_text()
    a_line = next(line for line in text.splitlines() if line.strip().startswith("a: {"))
    b_line = next(line for line in text.splitlines() if line.strip().startswith("b: {"))
    swapped = tmp_path / "swapped.yaml"
    swapped.write_text(text.replace(a_line + "\n" + b_line, b_line + "\n" + a_line))
    program = load_program(swapped, "tiny")
    assert [n for n, t in program.tensors.items() if t.role == "input"] == ["b", "a"]
    opts = _runner.RunOptions(program=swapped, preset="tiny")
    quick = _runner.initial_values(program, 0, only=_runner.tensors_read(program))
    if not _runner.can_fork():
        pytest.skip("inputs are drawn beside only by a forked process")
    inputs, drawn = _runner.inputs_drawn_beside(program, 0, quick, _runner.probe(program, quick, opts, True), True)
    pending = _runner.beside(_runner._no_values, what="the process drawing the inputs", drawn=drawn)
    drawn.wait_all()
    pending.close()
    assert list(drawn.arrays) == ["a", "b"]
    for name, value in initial_values(program, 0).items():
        assert np.array_equal(inputs[name], value), name
