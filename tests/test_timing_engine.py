"""Timing of the engine features PyPTO's current programs use, each worked out by hand from the config's
numbers (docs/timing-model.md §3, §5, §6): a split mix kernel on an AIC and both AIV lanes of its cluster,
an SPMD dispatch of n blocks submitted once, explicit dependency edges and manual scopes, transposed matmul
operands, and the cube's int8 and FP8 rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from npusim.errors import NpusimError
from npusim.frontend import load_program
from npusim.interp import execute
from npusim.output.summaries import bound
from npusim.runner import RunOptions, run
from npusim.timing import load_config, schedule_kernel, simulate
from npusim.timing.costs import CostModel
from npusim.timing.lanes import both_lanes

HW = load_config("ascend910b")
A5 = load_config("ascend950")


def program(tmp_path: Path, body: str, tensors: str, name: str = "t") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ntensors:\n{tensors}\nbody:\n{body}")
    return path


def dma(path: str, nbytes: int, hw=HW) -> float:
    """Engine cycles of one transfer of contiguous runs over 512 B (a GM write at least its write completion)."""
    d = hw.dma[path]
    return max(d.issue_cycles + nbytes / d.bytes_per_cycle, d.write_completion_cycles)


def latency(path: str, source: str = "hbm", hw=HW) -> float:
    """After the engine: until the data are usable (a GM read hitting L2 at the L2 latency)."""
    d = hw.dma[path]
    return d.l2_hit_latency_cycles if source == "l2" else d.latency_cycles


def us(x: float, hw=HW) -> float:
    return hw.us_to_cycles(x)


# --- a split mix kernel ---------------------------------------------------------------------------------

MIX_TENSORS = ("  a: {shape: [16, 128], dtype: bf16, role: input, init: 'uniform(-1, 1)'}\n"
               "  w: {shape: [128, 256], dtype: bf16, role: input, init: 'uniform(-1, 1)'}\n"
               "  h: {shape: [16, 256], dtype: fp32, role: input, init: 'uniform(-1, 1)'}\n"
               "  out: {shape: [16, 256], dtype: fp32, role: output}")


def mix_body(options: str) -> str:
    return (f"  - incore mixk{options}:\n    - x = slice(a, [16, 128], [0, 0])\n"
            "    - y = slice(w, [128, 256], [0, 0])\n    - acc = matmul(x, y)\n"
            "    - r = slice(h, [16, 256], [0, 0])\n    - s = add(acc, r)\n    - out = assemble(out, s, [0, 0])\n")


def _cube_part() -> float:
    """AIC: a (4 KiB) and w (64 KiB) into L1 on MTE2, one after the other; w's data arrive the HBM latency after
    its engine is done; then w to L0B on MTE1 (a's move to L0A is done by then), the 16x128x256 BF16 mad:
    6 + 1 x 1 x 8 x 16 fractals = 134."""
    load_a, load_w = dma("gm_to_l1", 16 * 128 * 2), dma("gm_to_l1", 128 * 256 * 2)
    return load_a + load_w + latency("gm_to_l1") + dma("l1_to_l0b", 128 * 256 * 2) + 6 + 1 * 8 * 16


def test_split_kernel_runs_half_the_vector_work_on_each_aiv_lane(tmp_path: Path) -> None:
    ex = execute(load_program(program(tmp_path, mix_body('(split="up_down")'), MIX_TENSORS)), {},
                 numerics_on=False)
    task = ex.tasks[0]
    assert task.core == "mix" and task.split == "up_down" and task.lanes == 2
    sched = both_lanes(schedule_kernel(task, CostModel(HW), ex.instrs))  # one lane's schedule, both lanes' work
    half = 8 * 256 * 4  # one lane's FP32 half of the [16, 256] accumulator: rows 0-7 (lane 0) or 8-15 (lane 1)
    # the hand-off through GM (A2/A3 has no L0C -> UB path): the AIC writes both halves (two FIXPIPE calls, each
    # held for its write completion), the cross-core flag, then each lane loads its half, just written, so from
    # L2; the lane's residual half loaded meanwhile
    fixpipe = 2 * dma("l0c_to_gm", half)
    assert fixpipe == pytest.approx(2 * max(192 + 8192 / 81.3, 277))
    handoff = fixpipe + HW.cross_core_sync_cycles + dma("gm_to_ub", half) + latency("gm_to_ub", "l2")
    vadd = HW.vector.intrinsics["vadd"]
    add = vadd.head_cycles + vadd.cycles_per_repeat * (half // HW.vector.bytes_per_repeat) + vadd.tail_cycles
    assert add == 10 + 2.125 * 32 + 14
    store = dma("ub_to_gm", half)
    assert store == 277  # 192 + 8192 / 109.7 = 266.7 is less than the write completion
    assert sched.cycles == pytest.approx(_cube_part() + handoff + add + store)
    # the second lane does the same AIV work: its MTE2 (residual + hand-off loads), vector and MTE3 count twice
    aic_mte2 = dma("gm_to_l1", 4096) + dma("gm_to_l1", 65536)
    assert sched.busy["mte2"] == pytest.approx(aic_mte2 + 2 * (dma("gm_to_ub", half) * 2))
    assert sched.busy["vector"] == pytest.approx(2 * add)
    assert sched.busy["mte3"] == pytest.approx(2 * store)
    assert sched.busy["fixpipe"] == pytest.approx(fixpipe)
    # HBM bytes: a and w, the two halves written to GM, each lane's residual half and stored half (the hand-off's
    # reloads hit L2)
    assert sched.gm_bytes == 4096 + 65536 + 2 * half + 2 * (half + half)
    tl = simulate(ex.tasks, ex.instrs, HW)
    r = tl.runs[0]
    assert r.cores == (("aic", 0), ("aiv", 0), ("aiv", 1)) and r.lanes == 2  # the AIC and both AIV lanes
    exec_cycles = sched.cycles + us(HW.active_runtime.exec_fixed_us)  # the runtime's fixed time, then the ops
    assert r.schedule.busy == pytest.approx(sched.busy) and r.end - r.start == pytest.approx(exec_cycles)
    # what bounds it is one pipe's share: the AIC's loads plus one lane's two half loads, not both lanes'
    b = bound([r], [0.0])
    assert b.by == "mte2" and b.share == pytest.approx((aic_mte2 + 2 * dma("gm_to_ub", half)) / sched.cycles)


def test_the_same_kernel_unsplit_runs_the_whole_vector_work_on_one_aiv(tmp_path: Path) -> None:
    ex = execute(load_program(program(tmp_path, mix_body(""), MIX_TENSORS)), {}, numerics_on=False)
    sched = schedule_kernel(ex.tasks[0], CostModel(HW), ex.instrs)
    full = 16 * 256 * 4
    handoff = dma("l0c_to_gm", full) + HW.cross_core_sync_cycles + dma("gm_to_ub", full) + latency("gm_to_ub", "l2")
    vadd = HW.vector.intrinsics["vadd"]
    add = vadd.head_cycles + vadd.cycles_per_repeat * (full // HW.vector.bytes_per_repeat) + vadd.tail_cycles
    assert sched.cycles == pytest.approx(_cube_part() + handoff + add + dma("ub_to_gm", full))
    r = simulate(ex.tasks, ex.instrs, HW).runs[0]
    assert r.lanes == 1 and len(r.cores) == 3  # one lane works; the task still holds its whole cluster


def test_split_hand_off_is_direct_on_a5(tmp_path: Path) -> None:
    ex = execute(load_program(program(tmp_path, mix_body('(split="up_down")'), MIX_TENSORS)), {},
                 numerics_on=False)
    sched = schedule_kernel(ex.tasks[0], CostModel(A5), ex.instrs)
    half = 8 * 256 * 4
    assert A5.routes["L0C->UB"] == ["l0c_to_ub"]
    # FIXPIPE writes each lane's half straight into that lane's UB: two calls, then the cross-core flag
    assert sched.dma_transfers["l0c_to_ub"] == 2 and "l0c_to_gm" not in sched.dma_transfers
    assert sched.busy["fixpipe"] == pytest.approx(2 * dma("l0c_to_ub", half, A5))


def test_split_along_columns_and_its_refusals(tmp_path: Path) -> None:
    ex = execute(load_program(program(tmp_path, mix_body('(split="left_right")'), MIX_TENSORS)), {},
                 numerics_on=False)
    load_r = next(op for op in ex.tasks[0].ops if op.sig.key == "TLOAD" and op.buf == "UB")
    # columns 0-127 of each of the 16 rows: 16 runs of 512 B (the whole [16, 256] window was one run)
    assert load_r.sig.tile.shape == (16, 128) and (load_r.sig.runs, load_r.sig.run_bytes) == (16, 512)
    tail = "    - s = add(acc, r)\n    - out = assemble(out, s, [0, 0])\n"
    reduce_body = mix_body('(split="left_right")').replace(tail, "    - s = row_sum(acc)\n")
    with pytest.raises(NpusimError, match="reduces along the split axis"):
        execute(load_program(program(tmp_path, reduce_body, MIX_TENSORS, "r")), {}, numerics_on=False)


def test_split_does_not_change_the_values(tmp_path: Path) -> None:
    outs = []
    for options in ('(split="up_down")', ""):
        r = run(RunOptions(program=program(tmp_path, mix_body(options), MIX_TENSORS, f"m{len(outs)}"),
                           out=tmp_path / f"o{len(outs)}", quiet=True, plot=False, trace=False))
        outs.append(r.execution.tensors["out"].data)
    assert np.array_equal(outs[0], outs[1])


# --- an SPMD grid -------------------------------------------------------------------------------------

GRID_TENSORS = ("  x: {shape: [64, 128], dtype: fp32, role: input, init: zeros}\n"
                "  y: {shape: [64, 128], dtype: fp32, role: output}\n"
                "  z: {shape: [16, 128], dtype: fp32, role: output}")
COPY = "      - t = slice(x, [16, 128], [i * 16, 0])\n      - y = assemble(y, t, [i * 16, 0])\n"
AFTER = "  - incore after:\n    - u = slice(y, [16, 128], [48, 0])\n    - z = assemble(z, u, [0, 0])\n"


def test_spmd_grid_is_one_submit_and_one_dependency_on_all_blocks(tmp_path: Path) -> None:
    body = "  - incore copy(blocks=4, block=i):\n" + COPY.replace("      -", "    -") + AFTER
    ex = execute(load_program(program(tmp_path, body, GRID_TENSORS)), {}, numerics_on=False)
    assert [(t.kernel, t.dispatch, t.block, t.blocks) for t in ex.tasks] == [
        ("copy", 0, 0, 4), ("copy", 0, 1, 4), ("copy", 0, 2, 4), ("copy", 0, 3, 4), ("after", 1, 0, 1)]
    tl = simulate(ex.tasks, ex.instrs, HW)
    s = HW.active_runtime
    # each block: the runtime's fixed time, a 16x128 FP32 load (its data the HBM latency later) and its store
    length = us(s.exec_fixed_us) + dma("gm_to_ub", 8192) + latency("gm_to_ub") + dma("ub_to_gm", 8192)
    blocks = tl.runs[:4]
    # one submit for the grid; three scheduler threads dispatch blocks 0-2 at once, block 3 one dispatch later
    # (the first thread's second dispatch)
    for k, r in enumerate(blocks):
        assert r.submit == pytest.approx(us(s.orchestrator_submit_us))
        waves = 1 if k < s.scheduler_threads else 2
        start = s.orchestrator_submit_us + waves * s.dispatch_us + s.dispatch_latency_us
        assert r.start == pytest.approx(us(start))
        assert r.end - r.start == pytest.approx(length)
    assert len({r.aiv for r in blocks}) == 4  # each block on its own core
    # the consumer reads only block 3's rows but waits for the whole dispatch (one task id, PyPTO's runtime)
    after = tl.runs[4]
    assert tl.deps[4] == (0, 1, 2, 3)
    assert after.submit == pytest.approx(us(2 * s.orchestrator_submit_us))
    last = max(r.end for r in blocks)
    # the last block's completion seen, handled, then the consumer dispatched and started
    ready = s.finish_latency_us + s.completion_us
    assert after.start == pytest.approx(last + us(ready + s.dispatch_us + s.dispatch_latency_us))


def test_four_separate_dispatches_are_submitted_one_by_one(tmp_path: Path) -> None:
    body = "  - parallel i in range(4):\n    - incore copy:\n" + COPY + AFTER
    ex = execute(load_program(program(tmp_path, body, GRID_TENSORS)), {}, numerics_on=False)
    tl = simulate(ex.tasks, ex.instrs, HW)
    assert [r.submit for r in tl.runs[:4]] == pytest.approx([us(k * HW.active_runtime.orchestrator_submit_us)
                                                             for k in (1, 2, 3, 4)])
    assert tl.deps[4] == (3,)  # only the block that wrote rows 48-63


# --- explicit edges and manual scopes ----------------------------------------------------------------------

EDGE_TENSORS = ("  x: {shape: [32, 128], dtype: fp32, role: input, init: zeros}\n"
                "  y: {shape: [32, 128], dtype: fp32, role: output}")
FIRST = "    - a = slice(x, [16, 128], [0, 0])\n    - y = assemble(y, a, [0, 0])\n"
SECOND = "    - b = slice(x, [16, 128], [16, 0])\n    - y = assemble(y, b, [16, 0])\n"
OVERLAP = "    - c = slice(y, [16, 128], [0, 0])\n    - y = assemble(y, c, [16, 0])\n"


def _deps(tmp_path: Path, body: str, name: str) -> list[tuple[int, ...]]:
    ex = execute(load_program(program(tmp_path, body, EDGE_TENSORS, name)), {}, numerics_on=False)
    return simulate(ex.tasks, ex.instrs, HW).deps


def test_deps_add_an_edge_footprints_do_not_give(tmp_path: Path) -> None:
    assert _deps(tmp_path, "  - incore k1:\n" + FIRST + "  - incore k2:\n" + SECOND, "a") == [(), ()]
    body = "  - incore k1(tid=t1):\n" + FIRST + "  - incore k2(deps=[t1]):\n" + SECOND
    assert _deps(tmp_path, body, "b") == [(), (0,)]
    barrier = "  - incore k1(tid=t1):\n" + FIRST + "  - t2 = task_ids(t1)\n  - incore k2(deps=[t2]):\n" + SECOND
    assert _deps(tmp_path, barrier, "c") == [(), (0,)]


def test_manual_scope_turns_footprint_tracking_off(tmp_path: Path) -> None:
    auto = "  - incore k1:\n" + FIRST + "  - incore k2:\n" + OVERLAP
    assert _deps(tmp_path, auto, "d") == [(), (0,)]  # k2 reads what k1 wrote
    manual = "  - manual:\n    - incore k1:\n  " + FIRST.replace("\n    ", "\n      ") + \
        "    - incore k2:\n  " + OVERLAP.replace("\n    ", "\n      ")
    assert _deps(tmp_path, manual, "e") == [(), ()]  # only explicit edges order a manual scope
    edged = manual.replace("incore k1:", "incore k1(tid=t):").replace("incore k2:", "incore k2(deps=[t]):")
    assert _deps(tmp_path, edged, "f") == [(), (0,)]
    # a dispatch after the scope does not see the manual dispatches' footprints
    later = manual + "  - incore k3:\n" + OVERLAP
    assert _deps(tmp_path, later, "g") == [(), (), ()]


# --- transposed operands and the cube's dtypes --------------------------------------------------------------

def test_transposed_operands_cost_what_plain_ones_do(tmp_path: Path) -> None:
    body = ("  - incore mm:\n    - a = slice(x, [128, 16], [0, 0])\n    - b = slice(w, [64, 128], [0, 0])\n"
            "    - c = matmul(a, b, a_trans=True, b_trans=True)\n")
    tensors = ("  x: {shape: [128, 16], dtype: bf16, role: input, init: zeros}\n"
               "  w: {shape: [64, 128], dtype: bf16, role: input, init: zeros}")
    ex = execute(load_program(program(tmp_path, body, tensors)), {}, numerics_on=False)
    cost = CostModel(HW)
    mad = next(op for op in ex.tasks[0].ops if op.sig.key == "TMATMUL")
    assert mad.sig.out.shape == (16, 64)
    # the product is 16x128x64 whichever way the operands are stored: 6 + ceil(16/16) ceil(128/16) ceil(64/16)
    assert cost.isolated_cycles(mad.sig) == 6 + 1 * 8 * 4
    sched = schedule_kernel(ex.tasks[0], cost, ex.instrs)
    # the same bytes through the same paths as the untransposed 16x128 x 128x64 (tests/test_timing.py)
    load_a, load_b = dma("gm_to_l1", 128 * 16 * 2), dma("gm_to_l1", 64 * 128 * 2) + latency("gm_to_l1")
    assert sched.cycles == pytest.approx(load_a + load_b + dma("l1_to_l0b", 64 * 128 * 2) + 38)


def _int8_mm(tmp_path: Path, dtype: str) -> Path:
    body = ("  - incore mm:\n    - a = slice(x, [16, 128], [0, 0])\n    - b = slice(w, [128, 64], [0, 0])\n"
            "    - c = matmul(a, b)\n")
    tensors = (f"  x: {{shape: [16, 128], dtype: {dtype}, role: input, init: zeros}}\n"
               f"  w: {{shape: [128, 64], dtype: {dtype}, role: input, init: zeros}}")
    return program(tmp_path, body, tensors, dtype)


def test_int8_and_fp8_matmul_rates(tmp_path: Path) -> None:
    ex = execute(load_program(_int8_mm(tmp_path, "int8")), {}, numerics_on=False)
    mad = next(op for op in ex.tasks[0].ops if op.sig.key == "TMATMUL")
    assert mad.sig.out.dtype == "int32"
    # k0 = 32 B / 1 B = 32: 6 + 1 x ceil(16/16) ceil(128/32) ceil(64/16)
    assert CostModel(HW).isolated_cycles(mad.sig) == 6 + HW.cube.cycles_per_fractal["int8"] * 1 * 4 * 4 == 22
    ex = execute(load_program(_int8_mm(tmp_path, "fp8e4m3fn")), {}, numerics_on=False)
    mad = next(op for op in ex.tasks[0].ops if op.sig.key == "TMATMUL")
    assert mad.sig.out.dtype == "fp32"
    assert CostModel(A5).isolated_cycles(mad.sig) == 6 + A5.cube.cycles_per_fractal["fp8e4m3fn"] * 1 * 4 * 4 == 22
    with pytest.raises(NpusimError, match="no cube rule for fp8e4m3fn"):
        CostModel(HW).isolated_cycles(mad.sig)  # A2/A3's cube has no FP8 (docs/sources.md HF §1)


# --- GM views and buffers PyPTO's current programs use -------------------------------------------------------

def test_a_reshaped_gm_view_shares_memory_and_footprints(tmp_path: Path) -> None:
    """`reshape` outside a kernel views the same memory: a kernel writing through the [2, 16] view and one reading
    the [4, 8] tensor are ordered (the view's rows 0-0 are the tensor's rows 0-1), values flow through."""
    body = ("  - v = reshape(t, [2, 16])\n  - incore write:\n    - a = slice(x, [1, 16], [0, 0])\n"
            "    - v = assemble(v, a, [0, 0])\n  - incore read:\n    - b = slice(t, [2, 8], [0, 0])\n"
            "    - y = assemble(y, b, [0, 0])\n  - incore other:\n    - c = slice(t, [2, 8], [2, 0])\n"
            "    - z = assemble(z, c, [0, 0])\n")
    tensors = ("  x: {shape: [1, 16], dtype: fp32, role: input, init: 'uniform(0, 1)'}\n"
               "  t: {shape: [4, 8], dtype: fp32, role: scratch}\n"
               "  y: {shape: [2, 8], dtype: fp32, role: output}\n  z: {shape: [2, 8], dtype: fp32, role: output}")
    path = program(tmp_path, body, tensors)
    ex = execute(load_program(path), {"x": np.arange(16, dtype=np.float32).reshape(1, 16)}, numerics_on=True)
    assert ex.tasks[0].writes == [(1, (0, 0), (2, 8))]  # the view's row 0 = the tensor's rows 0-1, on t's id
    assert simulate(ex.tasks, ex.instrs, HW).deps == [(), (0,), ()]  # rows 2-3 were never written
    np.testing.assert_array_equal(ex.tensors["y"].data, np.arange(16, dtype=np.float32).reshape(2, 8))
    bad = program(tmp_path, "  - w = slice(t, [4, 4], [0, 0])\n  - v = reshape(w, [16])\n", tensors, "bad")
    with pytest.raises(NpusimError, match="is not contiguous in memory"):
        execute(load_program(bad), {"x": np.zeros((1, 16), np.float32)}, numerics_on=True)


def test_filled_and_untracked_gm_buffers(tmp_path: Path) -> None:
    body = ("  - acc = create_tensor([2, 8], fp32, fill=1.5)\n  - skip = create_tensor([2, 8], fp32, untracked=True)\n"
            "  - incore a:\n    - t = slice(acc, [2, 8], [0, 0])\n    - skip = assemble(skip, t, [0, 0])\n"
            "  - incore b:\n    - u = slice(skip, [2, 8], [0, 0])\n    - y = assemble(y, u, [0, 0])\n")
    tensors = "  y: {shape: [2, 8], dtype: fp32, role: output}"
    ex = execute(load_program(program(tmp_path, body, tensors)), {}, numerics_on=True)
    np.testing.assert_array_equal(ex.tensors["y"].data, np.full((2, 8), 1.5, np.float32))
    assert simulate(ex.tasks, ex.instrs, HW).deps == [(), ()]  # b reads only what an untracked buffer holds


def test_a_valid_window_may_reach_past_the_tensor(tmp_path: Path) -> None:
    """A [16, 64] load of an 8-row tensor with valid_shape [8, 64] moves the 8 valid rows only (PyPTO's partial
    last tile); a window whose valid part leaves the tensor is still an error."""
    tensors = "  x: {shape: [8, 64], dtype: fp32, role: input, init: zeros}"
    ok = program(tmp_path, "  - incore k:\n    - t = slice(x, [16, 64], [0, 0], valid_shape=[8, 64])\n", tensors)
    ex = execute(load_program(ok), {}, numerics_on=False)
    assert ex.tasks[0].ops[0].sig.tile.valid == (8, 64)
    assert schedule_kernel(ex.tasks[0], CostModel(HW), ex.instrs).dma_bytes == {"gm_to_ub": 8 * 64 * 4}
    bad = program(tmp_path, "  - incore k:\n    - t = slice(x, [16, 64], [0, 0], valid_shape=[9, 64])\n", tensors, "b")
    with pytest.raises(NpusimError, match="outside x"):
        execute(load_program(bad), {}, numerics_on=False)


def test_a_timing_only_run_reads_an_input_through_a_second_name(tmp_path: Path) -> None:
    """The PyPTO importer renames a parameter that shadows a name (`post_2 = post`); a `read` of the second name
    steers control flow, so a timing-only run loads the input behind it (pypto-lib HEAD hc_post.py)."""
    body = ("  - n2 = n\n  - k = read(n2, [0])\n  - for i in range(k):\n    - incore copy:\n"
            "      - t = slice(x, [16, 128], [i * 16, 0])\n      - y = assemble(y, t, [i * 16, 0])\n")
    tensors = ("  n: {shape: [1], dtype: int32, role: input, init: 'full(3)'}\n"
               "  x: {shape: [64, 128], dtype: fp32, role: input, init: zeros}\n"
               "  y: {shape: [64, 128], dtype: fp32, role: output}")
    r = run(RunOptions(program=program(tmp_path, body, tensors), out=tmp_path / "o", quiet=True, plot=False,
                       trace=False, numerics=False))
    assert len(r.execution.tasks) == 3


# --- a matmul too large for L0: PyPTO's AutoTileMatmulL0 K-loop -----------------------------------------

BIG_TENSORS = ("  a: {shape: [16, 256], dtype: bf16, role: input, init: 'uniform(-1, 1)'}\n"
               "  w: {shape: [256, 256], dtype: bf16, role: input, init: 'uniform(-1, 1)'}\n"
               "  out: {shape: [16, 256], dtype: fp32, role: output}")
BIG_BODY = ("  - incore big:\n    - x = slice(a, [16, 256], [0, 0])\n    - y = slice(w, [256, 256], [0, 0])\n"
            "    - acc = matmul(x, y)\n    - out = assemble(out, acc, [0, 0])\n")


def test_a_matmul_too_large_for_l0b_runs_as_k_slabs(tmp_path: Path) -> None:
    """w is [256, 256] BF16 = 128 KiB, L0B holds 64 KiB: K-only tiling with two slabs in L0B at a time,
    k = the largest multiple of 16 dividing 256 with 2 x k x 256 x 2 B <= 65536, so k = 64 and 4 slabs (k = 128
    would need 131072 B). Each slab: w's 32 KiB moved L1 -> L0B (one transfer, 1 + 32768 / 128 cycles) and one
    mad of 16 x 64 x 256: 6 + 1 x 1 x 4 x 16 = 70 cycles (a single 16 x 256 x 256 mad would be 6 + 256)."""
    assert (HW.l0b_bytes, HW.cube.head_cycles, HW.cube.fractal_n) == (65536, 6, 16)
    ex = execute(load_program(program(tmp_path, BIG_BODY, BIG_TENSORS)), {}, numerics_on=False)
    sched = schedule_kernel(ex.tasks[0], CostModel(HW), ex.instrs)
    moves = [t for t in sched.ops if t.path == "l1_to_l0b"]
    assert [t.nbytes for t in moves] == [32768] * 4
    assert all(t.end - t.start == pytest.approx(dma("l1_to_l0b", 32768)) for t in moves)
    cube = [t for t in sched.ops if t.pipe == "cube"]
    assert len(cube) == 1 and cube[0].end - cube[0].start == pytest.approx(4 * (6 + 1 * 1 * 4 * 16))
    assert sched.peak_bytes["L0B"] == 2 * 32768  # two slabs live, not the 128 KiB tile
    # an L0B-sized operand is untouched: [128, 256] = 64 KiB, one move, one mad of 6 + 8 x 16
    small = BIG_BODY.replace("[256, 256], [0, 0])", "[128, 256], [0, 0])").replace("[16, 256], [0, 0])\n    - y",
                                                                                   "[16, 128], [0, 0])\n    - y")
    ex2 = execute(load_program(program(tmp_path, small, BIG_TENSORS, "small")), {}, numerics_on=False)
    sched2 = schedule_kernel(ex2.tasks[0], CostModel(HW), ex2.instrs)
    assert [t.nbytes for t in sched2.ops if t.path == "l1_to_l0b"] == [65536]
    assert [t.end - t.start for t in sched2.ops if t.pipe == "cube"] == [6 + 8 * 16]
