"""The L2 model and the AICPU runtime, each checked against outcomes worked out by hand: which reads hit (sector
by sector, least recently used by bytes moved), and when tasks are submitted, dispatched, started, pre-dispatched
and seen to finish under a runtime generation of given numbers; the report's swimlane fields against the runs."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.cli import main
from npusim.dtypes import itemsize
from npusim.frontend import load_program
from npusim.graph import Region
from npusim.interp import execute
from npusim.runner import RunOptions, run
from npusim.timing import load_config, simulate
from npusim.timing.hardware import L2, Runtime
from npusim.timing.l2 import GmWindows, _by_cell, _Cells, l2_hits, window_rank

from .conftest import PROGRAMS

HW = load_config("ascend910b")


# --- L2 ----------------------------------------------------------------------------------------------------


def test_l2_config_values() -> None:
    assert (HW.l2.bytes, HW.l2.line_bytes, HW.l2.sector_bytes) == (192 * 2**20, 512, 128)


def _hits(l2: L2, shapes: dict[int, tuple[tuple[int, ...], str]], touches: list[tuple[Region, bool]]) -> list[bool]:
    """The model's answer for a sequence of (window, written) touches: whether each hit."""
    return l2_hits(GmWindows.of(touches, window_rank(shapes)), shapes, l2).tolist()


def test_a_read_of_what_was_just_written_hits() -> None:
    shapes = {0: ((16, 256), "fp32"), 1: ((16, 256), "fp32")}
    assert _hits(HW.l2, shapes, [
        ((0, (0, 0), (16, 256)), True),
        ((0, (0, 0), (16, 256)), False),  # written by an earlier op: in L2
        ((1, (0, 0), (16, 256)), False),  # never touched: HBM
        ((1, (4, 0), (8, 64)), False),  # read just before
    ]) == [False, True, False, True]


def test_reads_fill_sectors_not_lines() -> None:
    """A [16, 64] BF16 window of a [16, 256] tensor is 16 runs of 128 B: one sector each, a quarter of a line.
    The next 64 columns are other sectors (a miss); a window half in touched sectors misses too (every sector
    must be there)."""
    assert _hits(HW.l2, {0: ((16, 256), "bf16")}, [
        ((0, (0, 0), (16, 64)), False),
        ((0, (0, 64), (16, 128)), False),
        ((0, (0, 0), (16, 64)), False),
        ((0, (0, 96), (16, 160)), False),  # sectors of columns 128-159 were never read
        ((0, (0, 128), (16, 160)), False),  # now they were
    ]) == [False, False, True, False, True]


def test_least_recently_used_by_bytes_moved() -> None:
    """With a 4 KiB L2 (32 sectors): a 4 KiB window read back right after its write hits (4 KiB moved since its
    last touch: the write itself); one more 128-B read in between pushes it out."""
    small = L2(bytes=4096, line_bytes=512, sector_bytes=128)
    shapes = {0: ((1, 1024), "fp32"), 1: ((1, 32), "fp32")}
    whole = (0, (0, 0), (1, 1024))
    assert _hits(small, shapes, [(whole, True), (whole, False)]) == [False, True]
    assert _hits(small, shapes, [(whole, True), ((1, (0, 0), (1, 32)), False), (whole, False)]) == [False] * 3
    assert _hits(HW.l2, {0: ((4, 8, 64), "fp32")}, [
        ((0, (1, 2, 0), (3, 4, 64)), True),  # rows (1, 2), (1, 3), (2, 2), (2, 3): 4 runs of 256 B
        ((0, (2, 3, 0), (3, 4, 32)), False),
        ((0, (2, 4, 0), (3, 5, 32)), False),
    ]) == [False, True, False]


def _sectors_touched(shape: tuple[int, ...], size: int, line: int, lo: tuple[int, ...], hi: tuple[int, ...]
                     ) -> set[int]:
    """Every sector a window covers, element by element (the definition, not the model's arithmetic)."""
    flat = np.arange(math.prod(shape)).reshape(shape)[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    return {int(b) // line for e in flat.ravel() for b in (e * size, e * size + size - 1)}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_l2_matches_a_sector_by_sector_lru(data: st.DataObject) -> None:
    """Random windows on a whole-sector-rows grid, a tensor of short rows, a 3-D one and a 1-D one, against a
    plain dict of per-sector last touches, one window after another: the model's cells (cut at the windows'
    edges) and its runs give the same hits."""
    small = L2(bytes=data.draw(st.sampled_from([1024, 4096, 16384])), line_bytes=512, sector_bytes=128)
    shapes = {0: ((32, 128), "bf16"), 1: ((16, 24), "fp32"), 2: ((300,), "fp32"), 3: ((3, 5, 40), "bf16")}
    last: dict[tuple[int, int], int] = {}
    moved = 0
    touches: list[tuple[Region, bool]] = []
    expected: list[bool] = []
    for _ in range(data.draw(st.integers(1, 25))):
        tid = data.draw(st.sampled_from(sorted(shapes)))
        shape, dtype = shapes[tid]
        bounds = [sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=2, unique=True)))
                  for n in shape]
        lo, hi = tuple(b[0] for b in bounds), tuple(b[1] for b in bounds)
        write = data.draw(st.booleans())
        size = itemsize(dtype)
        sectors = _sectors_touched(shape, size, 128, lo, hi)
        clock = moved // 128
        expected.append(not write and all(last.get((tid, s), -10**9) >= clock - small.bytes // 128
                                          for s in sectors))
        touches.append(((tid, lo, hi), write))
        for s in sectors:
            last[(tid, s)] = clock
        moved += math.prod(b - a for a, b in zip(lo, hi, strict=True)) * size
    assert _hits(small, shapes, touches) == expected


def test_cells_are_ordered_alike_by_one_key_and_by_two() -> None:
    """Past 63 bits, the (cell, window) pairs are ordered by numpy's lexsort of the two; below, by one sorted
    number: both give cell, then window order."""
    rng = np.random.default_rng(0)
    cell, window = rng.integers(0, 50, 400), rng.integers(0, 30, 400)
    expected = sorted(zip(cell.tolist(), window.tolist(), strict=True))
    for count in (50, 2**62):
        got = _by_cell(_Cells(cell, window, count), 30)
        assert list(zip(got[0].tolist(), got[1].tolist(), strict=True)) == expected


def test_the_pairs_in_64_bits_give_the_hits_of_32(monkeypatch: pytest.MonkeyPatch) -> None:
    """A program too large for 32-bit cell numbers numbers them in 64 bits: the same hits, window by window."""
    from npusim.timing import l2 as l2_module

    rng = np.random.default_rng(1)
    shapes = {0: ((32, 128), "bf16"), 1: ((16, 24), "fp32"), 2: ((300,), "fp32"), 3: ((3, 5, 40), "bf16")}
    touches: list[tuple[Region, bool]] = []
    for _ in range(300):
        tid = int(rng.integers(0, 4))
        bounds = [np.sort(rng.choice(n + 1, 2, replace=False)) for n in shapes[tid][0]]
        touches.append(((tid, tuple(int(b[0]) for b in bounds), tuple(int(b[1]) for b in bounds)),
                        bool(rng.integers(0, 2))))
    small = L2(bytes=4096, line_bytes=512, sector_bytes=128)
    narrow = _hits(small, shapes, touches)
    monkeypatch.setattr(l2_module, "_INT32_BELOW", 0)
    assert _hits(small, shapes, touches) == narrow and any(narrow) and not all(narrow)


def test_hits_are_priced_at_the_l2_latency_and_kept_out_of_hbm(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ntensors:\n  x: {shape: [16, 64], dtype: fp32, role: input, init: zeros}\n"
                    "  s: {shape: [16, 64], dtype: fp32, role: scratch}\n  y: {shape: [16, 64], dtype: fp32, "
                    "role: output}\nbody:\n  - incore a:\n    - t = slice(x, [16, 64], [0, 0])\n"
                    "    - s = assemble(s, t, [0, 0])\n  - incore b:\n    - u = slice(s, [16, 64], [0, 0])\n"
                    "    - v = slice(x, [16, 64], [0, 0])\n")
    ex = execute(load_program(path), {}, numerics_on=False)
    tl = simulate(ex.tasks, ex.instrs, HW, gm_shapes=ex.gm_shapes)
    g = HW.dma["gm_to_ub"]
    first, second = tl.runs
    # b's two loads both hit (s written by a, x read by a): issue + bytes, issue + bytes, then the L2 latency
    assert second.schedule.cycles == pytest.approx(2 * (g.issue_cycles + 4096 / g.bytes_per_cycle)
                                                   + g.l2_hit_latency_cycles)
    assert second.schedule.l2_hit_bytes == 8192 and second.schedule.gm_bytes == 0
    assert first.schedule.gm_bytes == 8192  # its cold read and its write
    without = simulate(ex.tasks, ex.instrs, HW)  # no tensor shapes: every read from HBM
    assert without.runs[1].schedule.cycles == pytest.approx(2 * (g.issue_cycles + 4096 / g.bytes_per_cycle)
                                                            + g.latency_cycles)


# --- the runtime -------------------------------------------------------------------------------------------


def _runtime(**kw: float | bool) -> Runtime:
    base: dict[str, float | bool] = dict(orchestrator_submit_us=0.1, scheduler_threads=3, dispatch_us=0.2,
                                         completion_us=0.3, pre_dispatch=True, dispatch_latency_us=0.4,
                                         task_switch_us=0.8, finish_latency_us=0.6, exec_fixed_us=1.0)
    return Runtime(**{**base, **kw})


def _hw(rt: Runtime):
    return HW.model_copy(update={"runtimes": {"t": rt}, "runtime": "t"})


def _aic_kernels(tmp_path: Path, n: int) -> tuple:
    """n independent AIC kernels of 16 matmuls each (a few us)."""
    path = tmp_path / "k.yaml"
    path.write_text(f"name: k\ntensors:\n  a: {{shape: [16, 128], dtype: bf16, role: input, init: zeros}}\n"
                    f"  w: {{shape: [128, 64], dtype: bf16, role: input, init: zeros}}\n"
                    f"  y: {{shape: [{n * 16}, 64], dtype: fp32, role: output}}\nbody:\n"
                    f"  - parallel i in range({n}):\n    - incore mm:\n      - at = slice(a, [16, 128], [0, 0])\n"
                    f"      - wt = slice(w, [128, 64], [0, 0])\n      - c = matmul(at, wt)\n"
                    f"      - for j in range(16):\n        - c = matmul_acc(c, at, wt)\n"
                    f"      - y = assemble(y, c, [i * 16, 0])\n")
    return execute(load_program(path), {}, numerics_on=False)


def test_the_orchestrator_submits_in_program_order(tmp_path: Path) -> None:
    ex = _aic_kernels(tmp_path, 30)
    hw = _hw(_runtime(orchestrator_submit_us=2.0))
    tl = simulate(ex.tasks, ex.instrs, hw, gm_shapes=ex.gm_shapes)
    for r in tl.runs:
        assert r.submit == pytest.approx(hw.us_to_cycles(2.0) * (r.task + 1))
        assert r.ready == r.submit  # no producers: ready when submitted
        assert r.start - r.dispatch == pytest.approx(hw.us_to_cycles(0.4))  # each on an idle core
        # exec = the runtime's fixed part + the kernel alone (no HBM sharing at this pace)
        assert r.exec_cycles == pytest.approx(hw.us_to_cycles(1.0) + r.schedule.cycles)
        assert r.kernel_start - r.start == pytest.approx(hw.us_to_cycles(1.0))
        assert r.finish >= r.end + hw.us_to_cycles(0.6)
    # the first task: submitted, popped by thread 0 (idle), dispatched after 0.2 us of its CPU time
    assert tl.runs[0].dispatch == pytest.approx(hw.us_to_cycles(2.0 + 0.2))


def _on_each_core(runs) -> list[tuple]:
    """Consecutive tasks on the same AIC."""
    by_core: dict[int, list] = {}
    for r in sorted(runs, key=lambda r: r.start):
        by_core.setdefault(r.aic, []).append(r)
    return [pair for lst in by_core.values() for pair in itertools.pairwise(lst)]


def test_a_busy_core_takes_one_pre_dispatched_task(tmp_path: Path) -> None:
    """40 kernels at once on 24 AICs: each scheduler thread fills its idle cores, then (pre-dispatch) the
    pending slots of its busy ones; a pre-dispatched task starts a task switch after the running one ends, one on
    an idle core a dispatch latency after its dispatch. Without pre-dispatch a task goes to a core only after
    the completion of the core's previous task has been handled."""
    ex = _aic_kernels(tmp_path, 40)
    hw = _hw(_runtime())
    tl = simulate(ex.tasks, ex.instrs, hw, gm_shapes=ex.gm_shapes)
    pairs = _on_each_core(tl.runs)
    pending = [(a, b) for a, b in pairs if b.dispatch < a.end]
    assert len(pending) >= 16
    for a, b in pairs:
        if b.dispatch < a.end:  # dispatched while its core still ran a
            assert b.start == pytest.approx(a.end + hw.us_to_cycles(0.8))
            assert b.latency_cycles > b.exec_cycles + hw.us_to_cycles(0.8 + 0.6)
        else:
            assert b.start == pytest.approx(b.dispatch + hw.us_to_cycles(0.4))
    no_pending = simulate(ex.tasks, ex.instrs, _hw(_runtime(pre_dispatch=False)), gm_shapes=ex.gm_shapes)
    for a, b in _on_each_core(no_pending.runs):
        assert b.dispatch >= a.finish + hw.us_to_cycles(0.3 + 0.2) - 1e-6  # a's completion handled, then b's dispatch
        assert b.start == pytest.approx(b.dispatch + hw.us_to_cycles(0.4))


def test_a_mix_task_holds_its_whole_cluster(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("name: m\ntensors:\n  a: {shape: [16, 128], dtype: bf16, role: input, init: zeros}\n"
                    "  w: {shape: [128, 64], dtype: bf16, role: input, init: zeros}\n"
                    "  y: {shape: [16, 64], dtype: fp32, role: output}\nbody:\n  - incore mix:\n"
                    "    - at = slice(a, [16, 128], [0, 0])\n    - wt = slice(w, [128, 64], [0, 0])\n"
                    "    - c = matmul(at, wt)\n    - d = exp(c)\n    - y = assemble(y, d, [0, 0])\n")
    ex = execute(load_program(path), {}, numerics_on=False)
    (r,) = simulate(ex.tasks, ex.instrs, _hw(_runtime()), gm_shapes=ex.gm_shapes).runs
    assert r.kind == "mix" and r.cores == (("aic", 0), ("aiv", 0), ("aiv", 1)) and r.records == 3
    # three subtasks dispatched by one thread: 3 x 0.2 us of its CPU time after the submission
    assert r.dispatch == pytest.approx(HW.us_to_cycles(0.1 + 3 * 0.2))


def test_the_report_counts_as_the_swimlane_does(tmp_path: Path) -> None:
    result = run(RunOptions(program=PROGRAMS / "softmax.yaml", preset="tiny", quiet=True, plot=False, trace=False,
                            numerics=False))
    runs, us = result.timeline.runs, 1e6 / HW.clock_hz
    total = result.report.total
    records = sum(r.records for r in runs)
    exec_avg = sum(r.records * (r.end - r.start) for r in runs) / records * us
    latency_avg = sum(r.records * (r.finish - r.dispatch) for r in runs) / records * us
    assert total.records == records == len(runs)  # softmax has no mix kernel
    assert total.exec_avg_us == pytest.approx(exec_avg, abs=1e-4)
    assert total.latency_avg_us == pytest.approx(latency_avg, abs=1e-4)
    assert total.runtime_overhead_us == pytest.approx(latency_avg - exec_avg, abs=1e-4)
    assert total.test_time_us == pytest.approx((max(r.finish for r in runs) - min(r.dispatch for r in runs)) * us,
                                               abs=1e-4)
    reads = sum(n for r in runs for p, n in r.schedule.dma_bytes.items() if p.startswith("gm_"))
    assert total.l2_hit_rate == pytest.approx(sum(r.schedule.l2_hit_bytes for r in runs) / reads, abs=1e-4)
    assert 0 < total.l2_hit_rate < 1  # the scores and exp tiles are re-read from L2, q, k and v come from HBM
    # per scope: sv re-reads the exp tiles softmax wrote (2 KiB of its 18 per task), qk its q tile after block 0
    assert result.report.scope("sv").l2_hit_rate == pytest.approx(2 / 18, abs=1e-4)
    assert result.report.scope("qk").l2_hit_rate == pytest.approx(3 / 4 * 4 / 20, abs=1e-4)
    assert result.report.runtime == "2026-04-24-profiling"


def test_runtime_option(cli, tmp_path: Path) -> None:
    args = ["run", str(PROGRAMS / "softmax.yaml"), "--preset", "tiny", "--no-plot", "--no-trace", "-q"]
    assert cli.invoke(main, [*args, "--out", str(tmp_path / "a"), "--runtime", "2026-07-profiling"]).exit_code == 0
    assert cli.invoke(main, [*args, "--out", str(tmp_path / "b")]).exit_code == 0
    july, april = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("a", "b"))
    assert (july["runtime"], april["runtime"]) == ("2026-07-profiling", "2026-04-24-profiling")
    assert july["config_sha256"] != april["config_sha256"]
    assert july["total"]["test_time_us"] < april["total"]["test_time_us"]  # a faster orchestrator and fixed cost
    bad = cli.invoke(main, [*args, "--out", str(tmp_path / "c"), "--runtime", "2026-04-24-profilin"])
    assert bad.exit_code == 2 and len(bad.stderr.splitlines()) == 1
    assert bad.stderr == ("error: --runtime: ascend910b has no runtime '2026-04-24-profilin' (did you mean "
                          "'2026-04-24-profiling'?); runtimes: 2026-04-10-profiling, 2026-04-24-profiling, "
                          "2026-07-profiling\n")
    assert not (tmp_path / "c").exists()
