"""Timing: every expected cycle count here is worked out by hand from the config's numbers (issue + bytes / rate
on the engine and latency to the data for DMA, head + fractals for the cube, head + slope x repeats + tail for the
vector pipe; the runtime's per-task times for the chip), never taken from an earlier run."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from npusim.errors import NpusimError
from npusim.frontend import load_program
from npusim.interp import execute
from npusim.runner import RunOptions, run
from npusim.timing import CapacityError, load_config, schedule_kernel, simulate
from npusim.timing.costs import CostModel

from .conftest import PROGRAMS, fast_config

HW = load_config("ascend910b")


def program(tmp_path: Path, body: str, tensors: str, name: str = "t") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ntensors:\n{tensors}\nbody:\n{body}")  # the body starts at line 4+
    return path


def kernel_tasks(path: Path):
    prog = load_program(path)
    return execute(prog, {}, numerics_on=False)


def dma(path: str, nbytes: int, short_runs: bool = False) -> float:
    """Engine cycles of one transfer (a GM write at least its write completion)."""
    d = HW.dma[path]
    rate = d.short_run_bytes_per_cycle if short_runs else d.bytes_per_cycle
    return max(d.issue_cycles + nbytes / rate, d.write_completion_cycles)


def arrival(path: str, nbytes: int, source: str = "hbm", short_runs: bool = False) -> float:
    """One transfer alone: engine cycles, then the latency until its data are usable."""
    d = HW.dma[path]
    latency = d.l2_hit_latency_cycles if source == "l2" else d.latency_cycles
    return dma(path, nbytes, short_runs) + latency


def fast_hw(tmp_path: Path):
    """ascend910b under the tests' near-free runtime (conftest.FAST_RUNTIME)."""
    return load_config(str(fast_config(tmp_path)))


def test_one_dma_load(tmp_path: Path) -> None:
    path = program(tmp_path, "  - incore load:\n    - t = slice(x, [16, 128], [0, 0])\n",
                   "  x: {shape: [64, 128], dtype: fp32, role: input, init: zeros}")
    ex = kernel_tasks(path)
    sched = schedule_kernel(ex.tasks[0], CostModel(HW), ex.instrs)
    # issue 20 + 8192 B at 128.2 B/cycle on MTE2, then the HBM latency 245: alone, DEV's 265 + B/128.2
    assert sched.cycles == pytest.approx(20 + 16 * 128 * 4 / 128.2 + 245) == pytest.approx(265 + 8192 / 128.2)
    assert sched.cycles == pytest.approx(arrival("gm_to_ub", 8192))
    assert sched.dma_bytes == {"gm_to_ub": 8192} and sched.dma_transfers == {"gm_to_ub": 1}
    assert sched.busy["mte2"] == pytest.approx(dma("gm_to_ub", 8192))  # the engine is free during the latency
    assert sched.gm_bytes == 8192 and sched.l2_hit_bytes == 0


def test_matmul_16x128x64_bf16(tmp_path: Path) -> None:
    path = program(
        tmp_path,
        "  - incore mm:\n    - a = slice(x, [16, 128], [0, 0])\n    - b = slice(w, [128, 64], [0, 0])\n"
        "    - c = matmul(a, b, out_dtype=fp32)\n",
        "  x: {shape: [16, 128], dtype: bf16, role: input, init: zeros}\n"
        "  w: {shape: [128, 64], dtype: bf16, role: input, init: zeros}",
    )
    ex = kernel_tasks(path)
    cost = CostModel(HW)
    mad = next(op for op in ex.tasks[0].ops if op.sig.key == "TMATMUL")
    # 6 + ceil(16/16) * ceil(128 / (32 B / 2 B)) * ceil(64/16) = 6 + 1 * 8 * 4
    assert cost.isolated_cycles(mad.sig) == 6 + 1 * 8 * 4 == 38
    sched = schedule_kernel(ex.tasks[0], cost, ex.instrs)
    # both loads on the AIC's MTE2, each one contiguous run (the long-run rate); b's data arrive its latency later
    load_a, load_b = dma("gm_to_l1", 16 * 128 * 2), arrival("gm_to_l1", 128 * 64 * 2)
    move_b = dma("l1_to_l0b", 128 * 64 * 2)  # L1 -> L0B after b arrives (L0A's move of a is done by then)
    assert sched.cycles == pytest.approx(load_a + load_b + move_b + 38)
    assert load_a + load_b == pytest.approx(85 + 4096 / 50 + 85 + 16384 / 50 + 415)
    assert sched.busy["cube"] == 38
    assert sched.busy["mte1"] == pytest.approx(dma("l1_to_l0a", 4096) + move_b)


def test_abs_16x64_fp32_and_scalar_abs(tmp_path: Path) -> None:
    """`abs` of a tile is TABS (one vabs call of 16 repeats); `abs` of scalars stays the scalar function."""
    path = program(tmp_path, "  - k = abs(3 - 67)\n  - incore a:\n    - t = slice(x, [16, k], [0, 0])\n"
                   "    - u = abs(t)\n", "  x: {shape: [16, 64], dtype: fp32, role: input, init: zeros}")
    ex = kernel_tasks(path)
    op = ex.tasks[0].ops[1]
    assert op.sig.key == "TABS" and op.sig.out.shape == (16, 64)
    vabs = HW.vector.intrinsics["vabs"]
    repeats = 16 * 64 * 4 // HW.vector.bytes_per_repeat
    expected = vabs.head_cycles + vabs.cycles_per_repeat * repeats + vabs.tail_cycles
    assert expected == pytest.approx(10 + 0.70 * 16 + 13)
    assert CostModel(HW).isolated_cycles(op.sig) == expected


def test_exp_16x64_fp32(tmp_path: Path) -> None:
    path = program(tmp_path, "  - incore e:\n    - t = slice(x, [16, 64], [0, 0])\n    - u = exp(t)\n",
                   "  x: {shape: [16, 64], dtype: fp32, role: input, init: zeros}")
    ex = kernel_tasks(path)
    cost = CostModel(HW)
    vexp = HW.vector.intrinsics["vexp"]
    repeats = 16 * 64 * 4 // HW.vector.bytes_per_repeat  # 16 repeats of 256 B, one call
    expected = vexp.head_cycles + vexp.cycles_per_repeat * repeats + vexp.tail_cycles
    assert expected == 13 + 2 * 16 + 18
    assert cost.isolated_cycles(ex.tasks[0].ops[1].sig) == expected
    sched = schedule_kernel(ex.tasks[0], cost, ex.instrs)
    assert sched.cycles == pytest.approx(arrival("gm_to_ub", 4096) + expected)
    assert sched.busy["vector"] == pytest.approx(expected)


def _three_kernels(tmp_path: Path) -> Path:
    return program(
        tmp_path,
        "  - incore producer:\n    - a = slice(x, [16, 64], [0, 0])\n    - b = exp(a)\n"
        "    - t = assemble(t, b, [0, 0])\n"
        "  - incore consumer:\n    - c = slice(t, [16, 64], [0, 0])\n    - d = exp(c)\n"
        "    - y = assemble(y, d, [0, 0])\n"
        "  - incore independent:\n    - e = slice(x, [16, 64], [16, 0])\n    - f = exp(e)\n"
        "    - z = assemble(z, f, [0, 0])\n",
        "  x: {shape: [32, 64], dtype: fp32, role: input, init: zeros}\n"
        "  t: {shape: [16, 64], dtype: fp32, role: scratch}\n"
        "  y: {shape: [16, 64], dtype: fp32, role: output}\n"
        "  z: {shape: [16, 64], dtype: fp32, role: output}",
    )


def test_raw_pair_serialises_and_independent_kernel_overlaps(tmp_path: Path) -> None:
    ex = kernel_tasks(_three_kernels(tmp_path))
    hw = fast_hw(tmp_path)
    tl = simulate(ex.tasks, ex.instrs, hw, gm_shapes=ex.gm_shapes)
    producer, consumer, independent = tl.runs
    assert tl.deps == [(), (0,), ()]
    rt = hw.active_runtime
    # the consumer is dispatched only after the producer's completion reaches a scheduler thread and is handled
    earliest = producer.end + hw.us_to_cycles(rt.finish_latency_us + rt.completion_us + rt.dispatch_us
                                              + rt.dispatch_latency_us)
    assert consumer.start == pytest.approx(earliest)
    assert consumer.ready == pytest.approx(producer.end + hw.us_to_cycles(rt.finish_latency_us + rt.completion_us))
    assert independent.start < producer.end and independent.aiv != producer.aiv
    # each ran alone on an idle core with HBM to spare: its length is its standalone schedule
    for r in tl.runs:
        assert r.end - r.start == pytest.approx(r.schedule.cycles)
    # the consumer re-reads the scratch tensor the producer has just written: an L2 hit; the others read HBM
    assert consumer.schedule.l2_hit_bytes == 16 * 64 * 4 and consumer.schedule.gm_bytes == 16 * 64 * 4  # its store
    assert producer.schedule.l2_hit_bytes == 0 and producer.schedule.gm_bytes == 2 * 16 * 64 * 4


def test_48_dma_heavy_kernels_are_bound_by_hbm(tmp_path: Path) -> None:
    chunks, rows = 16, 128  # each kernel streams 16 x 64 KiB = 1 MiB from HBM
    body = (f"  - parallel k in range(48):\n    - incore stream:\n      - for c in range({chunks}):\n"
            f"        - t = slice(x, [{rows}, 128], [(k * {chunks} + c) * {rows}, 0])\n")
    tensor = f"  x: {{shape: [{48 * chunks * rows}, 128], dtype: fp32, role: input, init: zeros}}"
    path = program(tmp_path, body, tensor)
    ex = kernel_tasks(path)
    hw = fast_hw(tmp_path)
    tl = simulate(ex.tasks, ex.instrs, hw, gm_shapes=ex.gm_shapes)
    total_bytes = 48 * chunks * rows * 128 * 4
    hbm_bound = total_bytes / (hw.hbm_bytes_per_s / hw.clock_hz)
    assert hw.hbm_bytes_per_s == 1.45e12  # the achievable all-core read bandwidth (DM M1)
    alone = chunks * dma("gm_to_ub", rows * 128 * 4) + HW.dma["gm_to_ub"].latency_cycles  # nothing reads t
    span = max(r.end for r in tl.runs) - min(r.start for r in tl.runs)
    assert alone < hbm_bound  # without sharing, 48 cores could finish far sooner than HBM allows
    assert span >= hbm_bound * (1 - 1e-9)
    assert span <= hbm_bound * 1.05  # and the fluid model keeps HBM busy while they run


def test_one_mebibyte_fp32_tile_overflows_ub(tmp_path: Path) -> None:
    path = program(tmp_path, "  - incore big:\n    - z = full([512, 512], fp32, 0.0)\n", "  {}")
    ex = kernel_tasks(path)
    with pytest.raises(CapacityError) as err:
        schedule_kernel(ex.tasks[0], CostModel(HW), ex.instrs)
    assert err.value.message == (f"kernel big: its live tiles need {512 * 512 * 4} bytes of UB, the ascend910b core "
                                 f"has {HW.ub_bytes} (tile the data smaller or reuse buffers)")
    assert err.value.location.line == 5  # the incore line (name, tensors, {}, body, incore)


def test_matmul_program_cube_busy_and_dma_bytes(tmp_path: Path) -> None:
    prog = load_program(PROGRAMS / "matmul.yaml", preset="tiny")
    c = prog.consts
    m, k, n, kc, nc = c["M"], c["K"], c["N"], c["K_CHUNK"], c["N_CHUNK"]
    result = run(RunOptions(program=PROGRAMS / "matmul.yaml", preset="tiny", out=tmp_path, quiet=True,
                            plot=False, trace=False))
    matmuls = (n // nc) * (k // kc)
    fractals = math.ceil(m / 16) * math.ceil(kc / 16) * math.ceil(nc / 16)
    assert result.report.total.busy_cycles["cube"] == pytest.approx(matmuls * (HW.cube.head_cycles + fractals))
    dma_bytes = result.report.total.dma.bytes
    assert dma_bytes["gm_to_l1"] == (n // nc) * (k // kc) * (m * kc + kc * nc) * 2  # a and b chunks, BF16
    assert dma_bytes["l1_to_l0a"] == matmuls * m * kc * 2
    assert dma_bytes["l1_to_l0b"] == matmuls * kc * nc * 2
    assert dma_bytes["l0c_to_gm"] == m * n * 4  # the FP32 result
    assert dma_bytes["gm_to_ub"] == m * n * 4  # read back by the cast kernels
    assert dma_bytes["ub_to_gm"] == m * n * 2  # BF16 out


def test_reports_identical_across_runs_and_outputs_across_configs(tmp_path: Path) -> None:
    reports = []
    for i, config in enumerate(["ascend910b", "ascend910b", "ascend950"]):
        run(RunOptions(program=PROGRAMS / "softmax.yaml", preset="tiny", config=config, out=tmp_path / str(i),
                       quiet=True, plot=False, trace=False))
        reports.append(json.loads((tmp_path / str(i) / "report.json").read_text()))
    assert reports[0] == reports[1]
    assert reports[0]["outputs"] == reports[2]["outputs"]
    assert reports[0]["total"]["cycles"] != reports[2]["total"]["cycles"]


def test_no_numerics_gives_the_same_timeline(tmp_path: Path) -> None:
    kw = dict(program=PROGRAMS / "softmax.yaml", preset="tiny", quiet=True, plot=False, trace=False)
    a = run(RunOptions(out=tmp_path / "a", **kw)).report
    b = run(RunOptions(out=tmp_path / "b", numerics=False, **kw)).report
    assert a.scopes == b.scopes and a.total == b.total
    assert b.numerics is False and all(o.sha256 is None for o in b.outputs.values())


def test_no_path_is_an_error_not_zero(tmp_path: Path) -> None:
    hw = HW.model_copy(update={"routes": {k: v for k, v in HW.routes.items() if k != "GM->UB"}})
    path = program(tmp_path, "  - incore load:\n    - t = slice(x, [16, 128], [0, 0])\n",
                   "  x: {shape: [64, 128], dtype: fp32, role: input, init: zeros}")
    ex = kernel_tasks(path)
    with pytest.raises(NpusimError, match="no data path from GM to UB"):
        schedule_kernel(ex.tasks[0], CostModel(hw), ex.instrs)


# --- the vector rules by shape class and tile kind, worked from the config's numbers ------------------------


def _costs(tmp_path: Path, body: str, tensors: str, config: str = "ascend910b") -> dict[str, float]:
    """Isolated cycles of each op of a program's one kernel, by the op's source text."""
    ex = kernel_tasks(program(tmp_path, body, tensors))
    cost = CostModel(load_config(config))
    return {ex.instrs[op.instr].text.split("=")[0].strip(): cost.isolated_cycles(op.sig) for op in ex.tasks[0].ops}


def test_tile_scalar_on_a_static_and_a_dynamic_tile(tmp_path: Path) -> None:
    """TADDS: the merge test of TBinSOp.hpp is compile-time, so a static 256x16 FP32 tile is one call of 64 full
    repeats and a dynamic one (valid shape a run-time value, here all valid) 256 one-row repeats in two masked
    calls of 255 and 1 rows (DEV TADDS f32 256x16 dynamic = 266); the kind shows in trace.json."""
    body = ("  - rows = 256\n  - incore k:\n    - s = slice(x, [256, 16], [0, 0])\n"
            "    - d = slice(x, [256, 16], [0, 0], valid_shape=[rows, 16])\n"
            "    - us = add(s, 2.0)\n    - ud = add(d, 2.0)\n    - y = assemble(y, ud, [0, 0])\n")
    tensors = ("  x: {shape: [256, 16], dtype: fp32, role: input, init: zeros}\n"
               "  y: {shape: [256, 16], dtype: fp32, role: output}")
    costs = _costs(tmp_path, body, tensors)
    v, c = HW.vector.intrinsics["vadds"], HW.vector.ctrl_cycles
    assert costs["us"] == pytest.approx(v.head_cycles + 0.914 * 64 + v.tail_cycles)
    assert costs["ud"] == pytest.approx(c + v.head_cycles + 0.914 * (255 + 1) + v.tail_cycles + c)
    assert costs["ud"] == pytest.approx(11 + 233.984 + 19 + 2)
    result = run(RunOptions(program=tmp_path / "t.yaml", out=tmp_path / "out", quiet=True, plot=False))
    assert result.report.outputs["y"].sha256 is not None
    events = json.loads((tmp_path / "out" / "trace.json").read_text())["traceEvents"]
    kinds = {e["args"]["text"].split("=")[0].strip(): e["args"]["tile"] for e in events if e.get("cat") == "op"}
    assert kinds["s"] == kinds["us"] == "static" and kinds["d"] == kinds["ud"] == kinds["y"] == "dynamic"


def test_a_window_with_outer_dimensions_is_one_dma_per_slab(tmp_path: Path) -> None:
    """TLOAD of a [4, 32, 64] FP32 window: one DMA call per [32, 64] slab, each paying the startup (pto-isa
    tload_common.hpp L71-83; DEV tload c02 [2,2,2,32,64] = 2624 = 8 calls)."""
    path = program(tmp_path, "  - incore k:\n    - a = slice(x, [4, 32, 64], [0, 0, 0])\n",
                   "  x: {shape: [4, 32, 64], dtype: fp32, role: input, init: zeros}")
    ex = kernel_tasks(path)
    sched = schedule_kernel(ex.tasks[0], CostModel(HW), ex.instrs)
    # each slab waits for the previous one's data (DEV c02, c06, c08: the calls of one TLOAD do not overlap)
    assert sched.cycles == pytest.approx(4 * arrival("gm_to_ub", 32 * 64 * 4))
    assert sched.cycles == pytest.approx(4 * (265 + 8192 / 128.2))
    assert sched.busy["mte2"] == pytest.approx(4 * (20 + 8192 / 128.2))
    assert sched.dma_transfers == {"gm_to_ub": 4} and sched.dma_bytes == {"gm_to_ub": 4 * 8192}


def test_row_expand_is_a_flag_round_trip_and_a_dup_per_row(tmp_path: Path) -> None:
    """TROWEXPAND of a [16, 1] column into [16, 64] FP32: count mode (4 ctrl), then per row a V->S->V flag round
    trip (the vector pipe drains: the previous dup's tail) and a one-repeat vector_dup (a new head)."""
    costs = _costs(tmp_path, "  - incore k:\n    - t = slice(x, [16, 64], [0, 0])\n"
                   "    - v = slice(w, [16, 1], [0, 0])\n    - e = row_expand(t, v)\n",
                   "  x: {shape: [16, 64], dtype: fp32, role: input, init: zeros}\n"
                   "  w: {shape: [16, 1], dtype: fp32, role: input, init: zeros}")
    dup, v = HW.vector.intrinsics["vector_dup"], HW.vector
    per_row = v.flag_round_trip_cycles + dup.head_cycles + dup.cycles_per_repeat * 1 + dup.tail_cycles
    assert costs["e"] == pytest.approx(4 * v.ctrl_cycles + 16 * per_row) == pytest.approx(4 + 16 * (1.9 + 11 + 1 + 1))


def test_arange_is_a_scalar_store_per_element(tmp_path: Path) -> None:
    """TCI of a [1, 64] int32 (pl.arange): the scalar loop of pto-isa TCI.hpp, one store per valid column at
    `scalar_store_cycles` (3) each, on the SCALAR pipe: 64 x 3 = 192 cycles."""
    costs = _costs(tmp_path, "  - incore k:\n    - a = arange(5, [1, 64], int32)\n    - y = assemble(y, a, [0, 0])\n",
                   "  y: {shape: [1, 64], dtype: int32, role: output}")
    assert HW.scalar_store_cycles == 3
    assert costs["a"] == 64 * HW.scalar_store_cycles == 192


def test_col_expand_expdif_is_a_vsub_a_barrier_and_a_vexp(tmp_path: Path) -> None:
    """TCOLEXPANDEXPDIF of a static [16, 64] FP32 tile (TColExpandBinOp.hpp one repeat per row, each call
    TColExpandExpdif.hpp's vsub, pipe_barrier, vexp): vsub of 16 repeats (head 10 + 16 x 2.02 + tail 14), the
    barrier, vexp of 16 repeats (13 + 16 x 2 + 18)."""
    costs = _costs(tmp_path, "  - incore k:\n    - t = slice(x, [16, 64], [0, 0])\n"
                   "    - v = slice(x, [1, 64], [0, 0])\n    - e = col_expand_expdif(t, v)\n",
                   "  x: {shape: [16, 64], dtype: fp32, role: input, init: zeros}")
    vs, ve, v = HW.vector.intrinsics["vsub"], HW.vector.intrinsics["vexp"], HW.vector
    want = (vs.head_cycles + 16 * vs.cycles_per_repeat + vs.tail_cycles + v.barrier_cycles
            + ve.head_cycles + 16 * ve.cycles_per_repeat + ve.tail_cycles)
    assert costs["e"] == pytest.approx(want) == pytest.approx(10 + 32.32 + 14 + v.barrier_cycles + 13 + 32 + 18)


def test_col_expand_is_one_ub_copy_per_row(tmp_path: Path) -> None:
    """TCOLEXPAND of a [1, 96] FP32 row into [16, 96] (a2a3 TColExpand.hpp L22-36): per row one
    copy_ubuf_to_ubuf of 96 x 4 B = 12 blocks: 16 x (5 + 1 x 12) cycles."""
    costs = _costs(tmp_path, "  - incore k:\n    - t = slice(x, [16, 96], [0, 0])\n"
                   "    - v = slice(x, [1, 96], [0, 0])\n    - e = col_expand(t, v)\n",
                   "  x: {shape: [16, 96], dtype: fp32, role: input, init: zeros}")
    c = HW.vector.ub_copy
    assert costs["e"] == pytest.approx(16 * (c.cycles_per_call + c.cycles_per_block * 96 * 4 / c.block_bytes))
    assert costs["e"] == pytest.approx(16 * (5 + 12))


def test_tile_copies_and_column_sums(tmp_path: Path) -> None:
    """A slice of a tile (TEXTRACT) is one copy_ubuf_to_ubuf (5 + 1 per 32-B block: DEV TMOV 64x128 = 1029); a
    binary col_sum of 4 rows is two count-mode vadds, a barrier, one vadd, a barrier, a barrier, the copy out
    and a barrier (TColSum.hpp), each floored vadd paying the count-mode floor."""
    costs = _costs(tmp_path, "  - incore k:\n    - a = slice(x, [64, 128], [0, 0])\n"
                   "    - b = slice(a, [64, 128], [0, 0])\n    - s = slice(x, [4, 64], [0, 0])\n"
                   "    - t = slice(x, [4, 64], [4, 0])\n    - c = col_sum(s, t)\n",
                   "  x: {shape: [64, 128], dtype: fp32, role: input, init: zeros}")
    v = HW.vector
    assert costs["b"] == v.ub_copy.cycles_per_call + 64 * 128 * 4 / 32 == 1029
    vadd = v.intrinsics["vadd"]
    call = vadd.cycles_per_repeat + v.count_mode_floor_cycles  # one repeat of 64 FP32 lanes, floored
    level4 = 2 + vadd.head_cycles + 2 * call + vadd.tail_cycles + v.barrier_cycles + 2
    level2 = 2 + vadd.head_cycles + call + vadd.tail_cycles + v.barrier_cycles + 2 + v.barrier_cycles
    copy = v.ub_copy.cycles_per_call + 64 * 4 / 32 + v.barrier_cycles
    assert costs["c"] == pytest.approx(level4 + level2 + copy)


def test_a5_vector_functions_one_and_two_dimensional(tmp_path: Path) -> None:
    """A5 TADD: a static full-width tile is the 1-D loop (start + per-register x registers); a partial valid
    width, or a dynamic multi-row tile even when all valid, the 2-D loop (start + rows x (per-row +
    per-register x registers per row)); npu/a5/TBinOp.hpp L233-257."""
    body = ("  - r = 2\n  - incore k:\n    - s = slice(x, [2, 128], [0, 0])\n"
            "    - p = slice(x, [2, 160], [0, 0], valid_shape=[2, 128])\n"
            "    - d = slice(x, [2, 128], [0, 0], valid_shape=[r, 128])\n"
            "    - us = add(s, s)\n    - up = add(p, p)\n    - ud = add(d, d)\n")
    costs = _costs(tmp_path, body, "  x: {shape: [2, 160], dtype: fp32, role: input, init: zeros}", "ascend950")
    alu = load_config("ascend950").vector_functions.classes["alu"]
    one_d = alu.start_1d_cycles + alu.cycles_per_register_1d * 4  # 256 FP32 = 4 registers of 64
    two_d = alu.start_2d_cycles + 2 * (alu.cycles_per_row_2d + alu.cycles_per_register_2d * 2)
    assert costs["us"] == pytest.approx(one_d) == pytest.approx(55.4 + 4.8)
    assert costs["up"] == pytest.approx(two_d) == costs["ud"]

def _matmul_store(tmp_path: Path, out_dtype: str | None, tensor_dtype: str) -> Path:
    arg = f", out_dtype={out_dtype}" if out_dtype else ""
    return program(
        tmp_path,
        "  - incore mm:\n    - a = slice(x, [16, 128], [0, 0])\n    - b = slice(w, [128, 256], [0, 0])\n"
        f"    - c = matmul(a, b{arg})\n    - y = assemble(y, c, [0, 0])\n",
        "  x: {shape: [16, 128], dtype: bf16, role: input, init: \"uniform(-1, 1)\"}\n"
        "  w: {shape: [128, 256], dtype: bf16, role: input, init: \"uniform(-1, 1)\"}\n"
        f"  y: {{shape: [16, 256], dtype: {tensor_dtype}, role: output}}",
        name=f"mm_{out_dtype}_{tensor_dtype}",
    )


def test_matmul_without_out_dtype_is_fp32_in_shape_timing_traffic_and_buffers(tmp_path: Path) -> None:
    """The documented default (FP32, as the numerics compute) holds for the shape rule, the L0C tile, the
    FIXPIPE store's bytes and cycles, and an FP32 output tensor accepts the result."""
    default = kernel_tasks(_matmul_store(tmp_path, None, "fp32"))
    fp32 = kernel_tasks(_matmul_store(tmp_path, "fp32", "fp32"))
    bf16 = kernel_tasks(_matmul_store(tmp_path, "bf16", "bf16"))
    mad = next(op for op in default.tasks[0].ops if op.sig.key == "TMATMUL")
    assert mad.sig.out.dtype == "fp32" and mad.buf == "L0C" and mad.nbytes == 16 * 256 * 4
    cost = CostModel(HW)
    s_default, s_fp32, s_bf16 = (schedule_kernel(e.tasks[0], cost, e.instrs) for e in (default, fp32, bf16))
    assert s_default.dma_bytes["l0c_to_gm"] == 16 * 256 * 4 and s_bf16.dma_bytes["l0c_to_gm"] == 16 * 256 * 2
    assert s_default.busy["fixpipe"] == pytest.approx(dma("l0c_to_gm", 16 * 256 * 4))
    assert s_default.busy["fixpipe"] == pytest.approx(192 + 16384 / 81.3)
    assert s_default.peak_bytes["L0C"] == 16 * 256 * 4
    assert s_default.cycles == s_fp32.cycles != s_bf16.cycles
    runs = [run(RunOptions(program=_matmul_store(tmp_path, dt, "fp32"), out=tmp_path / f"o{dt}", quiet=True,
                           plot=False, trace=False)).report for dt in (None, "fp32")]
    assert runs[0].outputs["y"].dtype == "fp32" and runs[0].outputs["y"].sha256 == runs[1].outputs["y"].sha256


# --- DMA rates by run length, stores held to their write, buffering as the program asks ---------------------


def test_gm_to_l1_short_runs_and_a_store_held_to_its_write(tmp_path: Path) -> None:
    """GM -> L1 (ND -> NZ): a window whose GM runs are at most one L2 line (512 B) moves at the short-run rate
    (S1 ddr_rate 32), longer runs at the contiguous rate; a tiny UB -> GM store holds MTE3 to its write
    completion (277 cycles, DM M2 / K1)."""
    costs = _costs(tmp_path, "  - incore k:\n    - a = slice(w, [64, 64], [0, 0])\n"
                   "    - b = slice(w, [64, 256], [0, 0])\n    - c = slice(w, [16, 512], [0, 0])\n"
                   "    - d = slice(w, [512, 64], [0, 0])\n    - m = matmul(a, b)\n    - n = matmul(c, d)\n"
                   "    - v = slice(x, [1, 64], [0, 0])\n    - y = assemble(y, v, [0, 0])\n",
                   "  w: {shape: [512, 8192], dtype: bf16, role: input, init: zeros}\n"
                   "  x: {shape: [1, 64], dtype: fp32, role: input, init: zeros}\n"
                   "  y: {shape: [1, 64], dtype: fp32, role: output}")
    l1 = HW.dma["gm_to_l1"]
    assert (l1.issue_cycles, l1.short_run_bytes_per_cycle, l1.bytes_per_cycle, l1.latency_cycles) == (85, 32, 50, 415)
    assert costs["a"] == pytest.approx(85 + 64 * 64 * 2 / 32 + 415)  # 64 runs of 128 B
    assert costs["b"] == pytest.approx(85 + 64 * 256 * 2 / 32 + 415)  # 64 runs of 512 B: one line each
    assert costs["c"] == pytest.approx(85 + 16 * 512 * 2 / 50 + 415)  # 16 runs of 1 KiB
    assert costs["d"] == pytest.approx(85 + 512 * 64 * 2 / 32 + 415)
    assert costs["y"] == 277 > 192 + 256 / 109.7  # the store alone


LOOP = ("  - incore k:\n    - for i in {rng}:\n      - t = slice(x, [16, 64], [i * 16, 0])\n"
        "      - u = exp(t)\n")


def _loop_cycles(stages: int, n: int) -> float:
    """The loop of LOOP by hand: load i may start when MTE2 is free and the slot it takes is free (the exp of
    the load `stages` productions before it has ended); exp i continues the vector stream (no head) when its
    data are there by the previous exp's end, else it starts when they arrive, after the stream's tail, and
    pays a head; the last exp's tail ends the kernel."""
    g, vexp = HW.dma["gm_to_ub"], HW.vector.intrinsics["vexp"]
    occupancy, latency = g.issue_cycles + 16 * 64 * 4 / g.bytes_per_cycle, g.latency_cycles
    work = vexp.cycles_per_repeat * 16
    engine, exp_end, ends = 0.0, 0.0, []
    for i in range(n):
        start = max(engine, ends[i - stages] if i >= stages else 0.0)
        engine = start + occupancy
        arrival = engine + latency
        if i and arrival <= exp_end:
            exp_end += work
        else:
            exp_end = max(arrival, exp_end + vexp.tail_cycles if i else 0.0) + vexp.head_cycles + work
        ends.append(exp_end)
    return exp_end + vexp.tail_cycles


@pytest.mark.parametrize(("rng", "stages"), [("range(8)", 1), ("pipeline(8, stage=2)", 2),
                                             ("pipeline(0, 8, 1, stage=4)", 4)])
def test_a_loop_has_the_buffer_slots_it_asks_for(tmp_path: Path, rng: str, stages: int) -> None:
    """A plain loop is single-buffered: load i + 1 waits until the exp reading load i has ended, so each
    iteration pays the load's latency; pipeline(..., stage=F) gives its loaded tiles F slots."""
    ex = kernel_tasks(program(tmp_path, LOOP.format(rng=rng), "  x: {shape: [128, 64], dtype: fp32, role: input, "
                              "init: zeros}"))
    assert {ex.instrs[op.instr].stages for op in ex.tasks[0].ops} == {stages}
    sched = schedule_kernel(ex.tasks[0], CostModel(HW), ex.instrs)
    assert sched.cycles == pytest.approx(_loop_cycles(stages, 8))
    if stages == 1:  # the latency is paid every iteration
        assert sched.cycles > 8 * HW.dma["gm_to_ub"].latency_cycles
    # exp's result u is written over t, whose last use it is (pypto's MemoryReuse lets touching lifetimes share a
    # buffer: memory_reuse_pass.cpp LifetimesOverlap), plus F - 1 more slots of the loaded t (pypto #1852)
    assert sched.peak_bytes["UB"] == 16 * 64 * 4 + (stages - 1) * 16 * 64 * 4


def test_a_result_may_take_the_buffer_of_an_operand_it_last_reads(tmp_path: Path) -> None:
    """pypto e2d0f78ae memory_reuse_pass.cpp LifetimesOverlap: lifetimes that touch (last use == definition) share
    a buffer, except for ops registered not_inplace_safe() (row_sum, ...) and dtype-widening casts. Three
    [16, 1024] FP32 tiles (64 KiB each): s = add(a, b) fits in 128 KiB of UB, not 192; a row_sum keeps its
    operand and result apart (64 KiB + 64 B); a BF16 -> FP32 cast too (32 + 64 KiB)."""
    tensors = ("  x: {shape: [16, 1024], dtype: fp32, role: input, init: zeros}\n"
               "  h: {shape: [16, 1024], dtype: bf16, role: input, init: zeros}")
    tile = 16 * 1024 * 4

    def peak(body: str, name: str) -> int:
        ex = kernel_tasks(program(tmp_path, "  - incore k:\n" + body, tensors, name=name))
        return schedule_kernel(ex.tasks[0], CostModel(HW), ex.instrs).peak_bytes["UB"]

    loads = "    - a = slice(x, [16, 1024], [0, 0])\n    - b = slice(x, [16, 1024], [0, 0])\n"
    assert peak(loads + "    - s = add(a, b)\n", "add") == 2 * tile
    assert peak("    - a = slice(x, [16, 1024], [0, 0])\n    - r = row_sum(a)\n", "rowsum") == tile + 16 * 4
    assert peak("    - g = slice(h, [16, 1024], [0, 0])\n    - w = cast(g, fp32)\n", "widen") == tile // 2 + tile


def test_buffer_capacity_counts_every_stage(tmp_path: Path) -> None:
    """F copies of a pipelined loop's tiles must fit: a [184, 128] FP32 tile (94 208 B) twice fills the 188 416 B
    of UB exactly; [185, 128] twice does not, and the error says which loop's stages are the cause."""
    body = "  - incore k:\n    - for i in pipeline(4, stage=2):\n      - t = slice(x, [{r}, 128], [0, 0])\n"
    tensors = "  x: {shape: [200, 128], dtype: fp32, role: input, init: zeros}"
    assert HW.ub_bytes == 2 * 184 * 128 * 4
    fits = kernel_tasks(program(tmp_path, body.format(r=184), tensors, name="fits"))
    assert schedule_kernel(fits.tasks[0], CostModel(HW), fits.instrs).peak_bytes["UB"] == HW.ub_bytes
    over = kernel_tasks(program(tmp_path, body.format(r=185), tensors, name="over"))
    with pytest.raises(CapacityError) as err:
        schedule_kernel(over.tasks[0], CostModel(HW), over.instrs)
    assert err.value.message == (
        f"kernel k: its live tiles need {2 * 185 * 128 * 4} bytes of UB ({185 * 128 * 4} of them for the extra "
        f"buffer slots that pipelined loops ask for, e.g. 2 for line 7: ask for fewer stages), the ascend910b core "
        f"has {HW.ub_bytes} (tile the data smaller or reuse buffers)")
    single = kernel_tasks(program(tmp_path, body.format(r=185).replace("pipeline(4, stage=2)", "range(4)"), tensors,
                                  name="single"))
    assert schedule_kernel(single.tasks[0], CostModel(HW), single.instrs).peak_bytes["UB"] == 185 * 128 * 4


@pytest.mark.parametrize(("head", "message"), [
    ("parallel i in pipeline(4, stage=2)", "pipeline(...) buffers a kernel's sequential loop: write 'for V in "
                                           "pipeline(...)'"),
    ("for i in pipeline(4)", "pipeline(...) takes one keyword, stage=F (the buffer slots of the loop's tiles); "
                             "got none"),
    ("for i in pipeline(4, slots=2)", "pipeline(...) takes one keyword, stage=F (the buffer slots of the loop's "
                                      "tiles); got slots"),
    ("for i in pipeline(4, stage=0)", "pipeline: stage must be a constant integer from 1 to 16, got 0 = 0"),
    ("for i in pipeline(4, stage=S + 1.5)", "pipeline: stage must be a constant integer from 1 to 16, got S + 1.5 "
                                            "= 3.5"),
    ("for i in range(4, stage=2)", "a loop needs range(stop), range(start, stop) or range(start, stop, step)"),
])
def test_bad_pipeline_loops_are_located_errors(tmp_path: Path, head: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"name: p\nparams: {{S: 2}}\ntensors:\n  x: {{shape: [64, 64], dtype: fp32, role: input, "
                    f"init: zeros}}\nbody:\n  - incore k:\n    - {head}:\n"
                    f"      - t = slice(x, [16, 64], [i * 16, 0])\n")
    with pytest.raises(NpusimError) as err:
        load_program(path)
    assert err.value.message == message and err.value.location.line == 7


def test_a_pipeline_outside_a_kernel_is_an_error(tmp_path: Path) -> None:
    path = program(tmp_path, "  - for i in pipeline(2, stage=2):\n    - incore k:\n      - t = slice(x, [16, 64], "
                   "[i * 16, 0])\n", "  x: {shape: [64, 64], dtype: fp32, role: input, init: zeros}")
    with pytest.raises(NpusimError, match=re.escape("pipeline(...) gives a kernel's tiles buffer slots: use it inside "
                                                    "an 'incore:' block")):
        kernel_tasks(path)


def test_stages_of_nested_loops(tmp_path: Path) -> None:
    """An op's stages are those of the innermost pipelined loop around it in its kernel (a plain loop nested in a
    pipeline keeps them); a stage count may be a param."""
    path = program(tmp_path, "  - incore k:\n    - a = slice(x, [16, 64], [0, 0])\n"
                   "    - for i in pipeline(2, stage=S):\n      - for j in range(2):\n"
                   "        - b = slice(x, [16, 64], [j * 16, 0])\n      - for j2 in pipeline(2, stage=3):\n"
                   "        - c = slice(x, [16, 64], [j2 * 16, 0])\n",
                   "  x: {shape: [64, 64], dtype: fp32, role: input, init: zeros}")
    path.write_text(path.read_text().replace("name: t\n", "name: t\nparams: {S: 2}\n"))
    ex = kernel_tasks(path)
    stages = {ex.instrs[op.instr].text.split("=")[0].strip(): ex.instrs[op.instr].stages for op in ex.tasks[0].ops}
    assert stages == {"a": 1, "b": 2, "c": 3}
