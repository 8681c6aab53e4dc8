"""The run artefacts (timeline.png, utilisation.png, kernels.png, trace.json[.gz], compare.png) checked for
content: bars per task and core, legends, labels, picture sizes, trace events against the timeline they came
from (op slices, the HBM counters, the critical path), and the utilisation curves against the totals they
must add up to.

Three runs: the Qwen3 decode layer and softmax (tiny presets) from programs/, and a synthetic program written
here with mix kernels (AIC and AIV at once) and enough GM traffic on every AIV at once that HBM is shared and
tasks are stretched.
"""

from __future__ import annotations

import itertools
import json
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from npusim.output import plots, summaries, trace
from npusim.runner import RunOptions, RunResult, run

from .conftest import fast_config

ROOT = Path(__file__).parents[1]
EPS_US = 0.5e-3 + 1e-9  # trace times are whole ns: up to half a ns off the timeline

DEMO = """\
name: artefact_demo
doc: Mix kernels and HBM-bound vector kernels, for the artefact tests.
params:
  M: 16
  K: 128
  N: 64
  NB: 6
  R: 64
  C: 256
  NT: 60
tensors:
  a: {shape: [M, K], dtype: bf16, role: input, init: "uniform(-0.5, 0.5)"}
  b: {shape: [K, N], dtype: bf16, role: input, init: "uniform(-0.5, 0.5)"}
  x: {shape: [M, N], dtype: fp32, role: input, init: "uniform(-0.5, 0.5)"}
  big: {shape: [NT * 2 * R, C], dtype: fp32, role: input, init: "uniform(-0.5, 0.5)"}
  c32: {shape: [NB * M, N], dtype: fp32, role: output}
  y: {shape: [NB * M, N], dtype: bf16, role: output}
  z: {shape: [NT * 2 * R, C], dtype: bf16, role: output}
body:
  - scope stream:
    - parallel i in range(NT):
      - incore copy_cast:
        - for k in range(2):
          - t = slice(big, [R, C], [(i * 2 + k) * R, 0])
          - tb = cast(t, bf16)
          - z = assemble(z, tb, [(i * 2 + k) * R, 0])
  - scope mixed:
    - parallel i in range(NB):
      - incore both:
        - at = slice(a, [M, K], [0, 0])
        - bt = slice(b, [K, N], [0, 0])
        - acc = matmul(at, bt, out_dtype=fp32)
        - c32 = assemble(c32, acc, [i * M, 0])
        - xt = slice(x, [M, N], [0, 0])
        - xb = cast(xt, bf16)
        - y = assemble(y, xb, [i * M, 0])
  - scope after:
    - parallel i in range(NB):
      - incore post:
        - t = slice(c32, [M, N], [i * M, 0])
        - tb = cast(t, bf16)
        - y = assemble(y, tb, [i * M, 0])
"""


@pytest.fixture(scope="module")
def softmax(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    out = tmp_path_factory.mktemp("softmax")
    return run(RunOptions(program=ROOT / "programs" / "softmax.yaml", preset="tiny", out=out, quiet=True))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    src = tmp_path_factory.mktemp("src") / "artefact_demo.yaml"
    src.write_text(DEMO)
    out = tmp_path_factory.mktemp("demo")
    config = fast_config(tmp_path_factory.mktemp("config"))  # many tasks at once: the runtime is not on test
    result = run(RunOptions(program=src, config=str(config), out=out, quiet=True, numerics=False))
    # the run must exercise what the tests are about
    assert any(t.core == "mix" for t in result.execution.tasks)
    assert max(r.stretch for r in result.timeline.runs) > 1.2
    return result


@pytest.fixture(scope="module")
def qwen3_tiny(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    out = tmp_path_factory.mktemp("qwen3")
    return run(RunOptions(program=ROOT / "programs" / "qwen3_decode.yaml", preset="tiny", out=out, quiet=True))


@pytest.fixture(params=["qwen3_tiny", "softmax", "demo"])
def result(request: pytest.FixtureRequest) -> RunResult:
    return request.getfixturevalue(request.param)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def pairs(result: RunResult) -> set[tuple[int, str]]:
    """(task, "AIC n" / "AIV n") for every core every task ran on: a mix task holds its whole cluster (the AIC
    and all of its AIVs, simpler's MIX shape), whichever of them its ops use."""
    hw = result.timeline.hw
    per_cluster = hw.num_aiv // hw.num_aic
    out = set()
    for r in result.timeline.runs:
        if r.aic is not None:
            out.add((r.task, f"AIC {r.aic}"))
        aivs = range(per_cluster * r.aic, per_cluster * (r.aic + 1)) if r.kind == "mix" else [r.aiv]
        out.update((r.task, f"AIV {v}") for v in aivs if v is not None)
    return out


def end_us(result: RunResult) -> float:
    return result.timeline.cycles / result.timeline.hw.clock_hz * 1e6


# --- run output directory ----------------------------------------------------------------------------------


def test_run_writes_every_artefact(result: RunResult) -> None:
    assert result.out_dir is not None
    for name in ("timeline.png", "utilisation.png", "kernels.png", "trace.json", "kernels.csv", "instructions.csv",
                 "lines.csv"):
        assert name in result.report.artefacts
        assert (result.out_dir / name).stat().st_size > 0
    assert png_size(result.out_dir / "timeline.png")[0] == round(plots.WIDTH_IN * plots.DPI)


# --- timeline.png ------------------------------------------------------------------------------------------


def test_timeline_has_one_bar_per_task_and_core(result: RunResult, tmp_path: Path) -> None:
    ex, tl = result.execution, result.timeline
    chart = plots.write_timeline(tmp_path / "timeline.png", ex, tl, result.report)
    mix = sum(t.core == "mix" for t in ex.tasks)
    per_cluster = tl.hw.num_aiv // tl.hw.num_aic  # a mix task holds its AIC and every AIV of its cluster
    assert chart.bars == len(ex.tasks) + per_cluster * mix == len(pairs(result))
    aic = sorted({r.aic for r in tl.runs if r.aic is not None})
    aiv = sorted({r.aiv for r in tl.runs if r.aiv is not None})
    assert chart.rows == [f"AIC {c}" for c in aic] + [f"AIV {c}" for c in aiv]
    # the scope strip needs as many levels as top-level scopes overlap at most (interval colouring), worked out
    # here from the runs; the height is the layout's: margins, strip, 0.1 in gap, one ROW_IN per core row
    extent: dict[str, list[float]] = {}
    for r in tl.runs:
        span = extent.setdefault(ex.tasks[r.task].scopes[0], [r.start, r.end])
        span[0], span[1] = min(span[0], r.start), max(span[1], r.end)
    edges = sorted([(a, 1) for a, _ in extent.values()] + [(b, -1) for _, b in extent.values()])
    depth = levels = 0
    for _, step in edges:
        depth += step
        levels = max(levels, depth)
    height_in = max(plots.MIN_HEIGHT_IN, plots.TOP_IN + levels * plots.LEVEL_IN + 0.1 + len(chart.rows) * plots.ROW_IN
                    + plots.BOTTOM_IN)
    expected = (round(plots.WIDTH_IN * plots.DPI), round(height_in * plots.DPI))
    assert png_size(tmp_path / "timeline.png") == chart.size_px == expected


def test_timeline_height_grows_with_rows(softmax: RunResult, demo: RunResult, tmp_path: Path) -> None:
    small = plots.write_timeline(tmp_path / "small.png", softmax.execution, softmax.timeline, softmax.report)
    large = plots.write_timeline(tmp_path / "large.png", demo.execution, demo.timeline, demo.report)
    assert len(large.rows) > len(small.rows)
    assert png_size(tmp_path / "large.png")[1] > png_size(tmp_path / "small.png")[1]
    assert plots.timeline_height(72, 1) > plots.timeline_height(40, 1) > plots.timeline_height(1, 1)
    assert plots.timeline_height(1, 1) == plots.MIN_HEIGHT_IN


def test_scope_spans_follow_program_order(result: RunResult) -> None:
    ex, tl = result.execution, result.timeline
    spans = plots.scope_spans(ex, tl)
    assert [s.name for s in spans] == [s for s in ex.scopes if "/" not in s]
    for s in spans:
        runs = [r for r in tl.runs if ex.tasks[r.task].scopes[0] == s.name]
        assert s.start == min(r.start for r in runs) and s.end == max(r.end for r in runs)
    for a in spans:  # spans on one strip level never overlap
        for b in spans:
            if a is not b and a.level == b.level:
                assert a.end <= b.start or b.end <= a.start


# --- utilisation.png ---------------------------------------------------------------------------------------


def test_utilisation_curves_add_up(result: RunResult, tmp_path: Path) -> None:
    tl = result.timeline
    util = plots.write_utilisation(tmp_path / "util.png", result.execution, tl, result.report, bins=250)
    assert png_size(tmp_path / "util.png")[0] == round(plots.WIDTH_IN * plots.DPI)
    edges = util.edges_us
    assert len(edges) == 251 and edges[0] == 0 and edges[-1] == pytest.approx(end_us(result))
    bin_s = (edges[1] - edges[0]) * 1e-6
    gm = sum(r.schedule.gm_bytes for r in tl.runs)
    # every GM byte is moved once, and never faster than HBM allows
    assert float(np.sum(util.hbm_gbps) * 1e9 * bin_s) == pytest.approx(gm, rel=1e-9)
    assert util.hbm_limit_gbps == tl.hw.hbm_bytes_per_s / 1e9
    assert np.all(util.hbm_gbps <= util.hbm_limit_gbps * (1 + 1e-9))
    assert np.all(util.hbm_gbps <= util.hbm_demand_gbps * (1 + 1e-9) + 1e-9)
    # pipe busy fractions: within [0, 1], and adding up to the stretched op intervals
    bin_cycles = (edges[1] - edges[0]) * 1e-6 * tl.hw.clock_hz
    expected: dict[str, float] = defaultdict(float)
    for r in tl.runs:
        for op in r.schedule.ops:
            expected[f"{op.side} {op.pipe}"] += (op.end - op.start) * r.stretch
    assert set(util.busy) == set(expected)
    cores = {"aic": tl.hw.num_aic, "aiv": tl.hw.num_aiv}
    for lane, values in util.busy.items():
        assert np.all(values >= -1e-12) and np.all(values <= 1 + 1e-9)
        assert float(np.sum(values)) * bin_cycles * cores[lane.split()[0]] == pytest.approx(expected[lane], rel=1e-9)
    # active cores: adding up to the tasks' run times on each side; pipes over active cores: busy / active
    occupied: dict[str, float] = defaultdict(float)
    for r in tl.runs:
        for side in ("aic", "aiv"):
            occupied[side] += (r.end - r.start) if getattr(r, side) is not None else 0.0
    for side in ("aic", "aiv"):
        assert float(np.sum(util.active[side])) * bin_cycles * cores[side] == pytest.approx(occupied[side], rel=1e-9)
    for lane, values in util.busy_active.items():
        side = lane.split()[0]
        on = util.active[side] > 0
        assert np.allclose(values[on] * util.active[side][on], util.busy[lane][on], rtol=1e-9, atol=1e-12)
        assert np.all(values[~on] == 0) and np.all(values <= 1 + 1e-9)
        assert util.mean_active[lane] == pytest.approx(expected[lane] / occupied[side], rel=1e-9)


def test_utilisation_shows_hbm_bound_scope(demo: RunResult) -> None:
    util = plots.utilisation(demo.timeline)
    assert util.hbm_demand_gbps.max() > 2 * util.hbm_limit_gbps
    assert util.hbm_gbps.max() == pytest.approx(util.hbm_limit_gbps, rel=1e-6)


def test_integrate_is_exact() -> None:
    edges = np.array([0.0, 1.0, 2.0, 4.0])
    # rate 2 on [0.5, 3), rate 1 on [1.5, 2.5), capped at 2.5
    times, steps = np.array([0.5, 3.0, 1.5, 2.5]), np.array([2.0, -2.0, 1.0, -1.0])
    assert plots.integrate(times, steps, edges).tolist() == pytest.approx([1.0, 2.5, 2.5])
    assert plots.integrate(times, steps, edges, cap=2.5).tolist() == pytest.approx([1.0, 2.25, 2.25])
    assert plots.integrate(np.array([]), np.array([]), edges).tolist() == [0.0, 0.0, 0.0]


# --- trace.json --------------------------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise AssertionError(f"trace.json holds {name}")


def load_trace(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(), parse_constant=_no_constants)


def check_lanes(events: list[dict[str, Any]]) -> None:
    """Slices on one (pid, tid) lane never overlap (Perfetto needs them nested or disjoint)."""
    lanes: dict[tuple[int, int], list[tuple[float, float]]] = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            lanes[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for spans in lanes.values():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - EPS_US


def chain_of(result: RunResult) -> list[int]:
    return result.report.critical_path.task_ids


def test_trace_content(result: RunResult, tmp_path: Path) -> None:
    ex, tl = result.execution, result.timeline
    chain = chain_of(result)
    counts = trace.write_trace(tmp_path / "trace.json", ex, tl, chain, "ops", {"seed": 0})
    doc = load_trace(tmp_path / "trace.json")
    assert doc["displayTimeUnit"] == "ns" and doc["otherData"]["tasks"] == len(tl.runs)
    assert doc["otherData"]["seed"] == 0 and doc["otherData"]["op_events"] == "ops"
    events = doc["traceEvents"]
    meta = [e for e in events if e["ph"] == "M"]
    slices = [e for e in events if e["ph"] == "X"]
    tasks = [e for e in slices if e["cat"] == "task"]
    ops = [e for e in slices if e["cat"] == "op"]
    counters = [e for e in events if e["ph"] == "C"]
    assert len(meta) + len(slices) + len(counters) + 2 * counts["flow_events"] + 2 * (len(chain) - 1) == len(events)
    assert counts["counter_events"] == len(counters) and counts["critical_events"] == len(chain)

    process = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    # one task slice per (task, core), on the tasks lane of that core's process
    assert len(tasks) == counts["task_events"] == len(pairs(result))
    assert {(e["args"]["task"], process[e["pid"]]) for e in tasks} == pairs(result)
    assert all(threads[(e["pid"], e["tid"])] == "tasks" and e["tid"] == trace.TASK_TID for e in tasks)
    # one op slice per scheduled op step, named by its cost key, on the lane of its pipe
    assert len(ops) == counts["op_events"] == sum(len(r.schedule.ops) for r in tl.runs)
    per_task = defaultdict(int)
    for e in ops:
        per_task[e["args"]["task"]] += 1
        assert threads[(e["pid"], e["tid"])] == {v: k for k, v in trace.PIPE_TID.items()}[e["tid"]].upper()
    assert per_task == {r.task: len(r.schedule.ops) for r in tl.runs if r.schedule.ops}
    keys = {op.sig.key for t in ex.tasks for op in t.ops}
    assert {e["name"] for e in ops} == keys and "TLOAD" in keys
    assert all(e["args"]["bytes"] > 0 and e["args"]["path"] for e in ops if e["name"] in ("TLOAD", "TSTORE"))

    end = end_us(result)
    for e in slices:
        assert {"pid", "tid", "ts", "dur", "name"} <= set(e)
        assert e["ts"] >= 0 and e["dur"] >= 0 and e["ts"] + e["dur"] <= end + EPS_US
    # every pid and (pid, tid) used by any event is named
    for e in events:
        assert e["pid"] in process and (e["pid"], e["tid"]) in threads
    # ops lie within their task's slice on the same core
    task_span = {(e["args"]["task"], e["pid"]): (e["ts"], e["ts"] + e["dur"]) for e in tasks}
    for e in ops:
        lo, hi = task_span[(e["args"]["task"], e["pid"])]
        assert lo - EPS_US <= e["ts"] and e["ts"] + e["dur"] <= hi + EPS_US
    check_lanes(events)

    # dependency flows: one start per edge, each with one finish of the same id, both inside their slices
    starts = [e for e in events if e["ph"] == "s" and e["cat"] == "dependency"]
    finishes = {e["id"]: e for e in events if e["ph"] == "f" and e["cat"] == "dependency"}
    assert len(starts) == counts["flow_events"] == sum(len(d) for d in tl.deps) > 0
    assert len({e["id"] for e in starts}) == len(starts) == len(finishes)
    for s in starts:
        f = finishes[s["id"]]
        assert f["bp"] == "e" and s["cat"] == f["cat"] == "dependency"
        pred, task = s["args"]["from"], s["args"]["to"]
        assert pred in tl.deps[task]
        lo, hi = task_span[(pred, s["pid"])]
        assert lo <= s["ts"] <= hi and s["tid"] == trace.TASK_TID
        lo, hi = task_span[(task, f["pid"])]
        assert lo <= f["ts"] <= hi and f["tid"] == trace.TASK_TID
        assert s["ts"] <= f["ts"]


def test_trace_tasks_only(result: RunResult, tmp_path: Path) -> None:
    ex, tl = result.execution, result.timeline
    counts = trace.write_trace(tmp_path / "trace.json", ex, tl, chain_of(result), "tasks")
    events = load_trace(tmp_path / "trace.json")["traceEvents"]
    assert counts["op_events"] == 0 and not [e for e in events if e.get("cat") == "op"]
    assert counts["task_events"] == len(pairs(result))
    assert {e["tid"] for e in events} == {trace.TASK_TID}


def test_trace_mix_task_on_both_cores(demo: RunResult, tmp_path: Path) -> None:
    ex, tl = demo.execution, demo.timeline
    trace.write_trace(tmp_path / "trace.json", ex, tl, chain_of(demo))
    events = load_trace(tmp_path / "trace.json")["traceEvents"]
    for mix in (r for r in tl.runs if r.kind == "mix"):
        assert mix.aic is not None and mix.aiv is not None
        pid = {"aic": 1 + mix.aic, "aiv": trace.aiv_base(tl.hw.num_aic) + mix.aiv}
        want = sorted((pid[op.side], trace.PIPE_TID[op.pipe]) for op in mix.schedule.ops)
        got = sorted((e["pid"], e["tid"]) for e in events if e.get("cat") == "op" and e["args"]["task"] == mix.task)
        assert got == want
        assert {op.side for op in mix.schedule.ops} == {"aic", "aiv"}
        tasks = [e for e in events if e.get("cat") == "task" and e["args"]["task"] == mix.task]
        second = pid["aiv"] + 1  # the cluster's other AIV: held, idle
        assert sorted(e["pid"] for e in tasks) == sorted([*pid.values(), second])


def test_trace_sample_holds_the_first_and_last_task_of_each_kernel(result: RunResult, tmp_path: Path) -> None:
    ex, tl = result.execution, result.timeline
    counts = trace.write_trace(tmp_path / "trace.json", ex, tl, chain_of(result), "sample")
    doc = load_trace(tmp_path / "trace.json")
    by_kernel: dict[int, list[int]] = defaultdict(list)
    for task in ex.tasks:
        by_kernel[task.instr].append(task.id)
    chosen = {t for ids in by_kernel.values() for t in (min(ids), max(ids))}
    ops = [e for e in doc["traceEvents"] if e.get("cat") == "op"]
    assert {e["args"]["task"] for e in ops} == {t for t in chosen if tl.runs[t].schedule.ops}
    assert len(ops) == counts["op_events"] == sum(len(tl.runs[t].schedule.ops) for t in chosen)
    sample = doc["otherData"]["op_sample"]
    assert doc["otherData"]["op_events"] == "sample" and sample["rule"] == trace.SAMPLE_RULE
    assert (sample["tasks"], sample["of_tasks"], sample["ops"]) == (len(chosen), len(tl.runs), len(ops))
    assert sample["of_ops"] == sum(len(r.schedule.ops) for r in tl.runs)


def test_trace_hbm_counters_and_critical_path(result: RunResult, tmp_path: Path) -> None:
    """The HBM counter is the running tasks' demand capped at the limit, checked at every step against the
    tasks running then; the critical path is one slice per task of the chain, joined by arrows."""
    ex, tl = result.execution, result.timeline
    chain = chain_of(result)
    trace.write_trace(tmp_path / "trace.json", ex, tl, chain, "tasks")
    events = load_trace(tmp_path / "trace.json")["traceEvents"]
    limit = tl.hw.hbm_bytes_per_s / 1e9
    used = [e for e in events if e["ph"] == "C" and e["name"] == "HBM in use GB/s"]
    wanted = [e for e in events if e["ph"] == "C" and e["name"] == "HBM demand GB/s"]
    assert len(used) == len(wanted) > 0 and all(e["pid"] == trace.CHIP_PID for e in used)
    steps = summaries.hbm_steps(tl)
    to_gbps = tl.hw.clock_hz / 1e9
    assert [e["ts"] for e in used] == [round(t * 1e9 / tl.hw.clock_hz) / 1000 for t in steps.times]
    assert [e["args"]["GB/s"] for e in used] == [round(v * to_gbps, 3) for v in steps.in_use]
    assert [e["args"]["GB/s"] for e in wanted] == [round(v * to_gbps, 3) for v in steps.demand]
    for i, (t0, t1) in enumerate(itertools.pairwise(steps.times)):  # the steps against the running tasks
        mid = (t0 + t1) / 2
        demand = sum(r.schedule.gm_bytes / r.schedule.cycles for r in tl.runs if r.kernel_start <= mid < r.end)
        assert steps.demand[i] == pytest.approx(demand, rel=1e-9, abs=1e-9)
        assert steps.in_use[i] == pytest.approx(min(demand, tl.hw.hbm_bytes_per_cycle), rel=1e-9, abs=1e-9)
        assert used[i]["args"]["GB/s"] <= limit + 1e-3
    assert used[-1]["args"]["GB/s"] == 0
    crit = [e for e in events if e.get("cat") == "critical_path" and e["ph"] == "X"]
    assert [e["args"]["task"] for e in crit] == chain and [e["name"] for e in crit] == [ex.tasks[t].kernel
                                                                                        for t in chain]
    arrows = [e for e in events if e.get("cat") == "critical_path" and e["ph"] == "s"]
    assert [(e["args"]["from"], e["args"]["to"]) for e in arrows] == list(itertools.pairwise(chain))
    marked = {e["args"]["task"] for e in events if e.get("cat") == "task" and e["args"].get("critical")}
    assert marked == set(chain)


def test_large_trace_is_gzipped_reproducibly(result: RunResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    import gzip

    ex, tl = result.execution, result.timeline
    with_ops = trace.op_tasks(ex, tl, "ops")
    assert trace.file_name(tl, with_ops) == "trace.json"
    monkeypatch.setattr(trace, "GZIP_ABOVE_EVENTS", trace.event_count(tl, with_ops) - 1)
    assert trace.file_name(tl, with_ops) == "trace.json.gz"
    chain = chain_of(result)
    trace.write_trace(tmp_path / "trace.json", ex, tl, chain)
    trace.write_trace(tmp_path / "a.json.gz", ex, tl, chain)
    trace.write_trace(tmp_path / "b.json.gz", ex, tl, chain)
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()  # no time or name
    assert gzip.decompress((tmp_path / "a.json.gz").read_bytes()) == (tmp_path / "trace.json").read_bytes()
    out = tmp_path / "run"
    monkeypatch.setattr(trace, "GZIP_ABOVE_EVENTS", 0)
    report = run(RunOptions(program=ROOT / "programs" / "softmax.yaml", preset="tiny", out=out, quiet=True,
                            plot=False)).report
    assert "trace.json.gz" in report.artefacts and (out / "trace.json.gz").exists()
    assert not (out / "trace.json").exists()


def test_trace_bytes_do_not_depend_on_the_write_chunk(result: RunResult, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Events are encoded and written in chunks: a chunk of 1, of 2 (a boundary on the last event for an even
    count) and the default give the same file, and each parses."""
    ex, tl, chain = result.execution, result.timeline, chain_of(result)
    files = []
    for size in (1, 2, trace.WRITE_EVENTS):
        monkeypatch.setattr(trace, "WRITE_EVENTS", size)
        files.append(tmp_path / f"chunk{size}.json")
        trace.write_trace(files[-1], ex, tl, chain)
        assert load_trace(files[-1])["traceEvents"]
    assert len({f.read_bytes() for f in files}) == 1


# --- compare.png -------------------------------------------------------------------------------------------


def test_compare_chart(softmax: RunResult, demo: RunResult, qwen3_tiny: RunResult, tmp_path: Path) -> None:
    same = plots.write_compare_chart(tmp_path / "same.png", softmax.report, softmax.report, "A", "B")
    names = [s.name for s in softmax.report.scopes]
    assert same.rows == names and same.bars == 4 * 2 * len(names) and same.labels == []
    assert png_size(tmp_path / "same.png") == same.size_px
    # disjoint scope sets: every scope of either run gets its pair of bars in all four panels
    mixed = plots.write_compare_chart(tmp_path / "mixed.png", softmax.report, demo.report, "softmax", "demo")
    names += [s.name for s in demo.report.scopes]
    assert mixed.rows == names and mixed.bars == 4 * 2 * len(names)
    assert png_size(tmp_path / "mixed.png") == mixed.size_px
    # nested scopes are on the chart, each change labelled (here: scope2/scratch_init's GM bytes halved)
    report = qwen3_tiny.report
    halved = report.model_copy(deep=True)
    init = halved.scope("scope2/scratch_init")
    init.dma.bytes = {p: n // 2 if p == "ub_to_gm" else n for p, n in init.dma.bytes.items()}
    nested = plots.write_compare_chart(tmp_path / "nested.png", report, halved, "A" * 150, "Bb " * 60)
    assert "scope2/scratch_init" in nested.rows and nested.labels == ["scope2/scratch_init gm_bytes -50.0%"]
    # a title that fits: every line, drawn at the title's size, narrower than the figure
    assert len(nested.title) > 4 and any(report.config_sha256[:12] in line for line in nested.title)
    fig = plots._figure(plots.WIDTH_IN, 2.0)
    renderer = fig.canvas.get_renderer()
    for line in nested.title:
        width_px = fig.text(0, 0, line, fontsize=plots.TITLE_PT).get_window_extent(renderer).width
        assert width_px <= (plots.WIDTH_IN - 0.2) * plots.DPI, line


def test_progress_bar_on_a_terminal_lines_elsewhere(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from npusim.runner import PROGRESS_EVERY_S, Progressor

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    now = [0.0]
    with Progressor(quiet=False, clock=lambda: now[0]).phase("simulating tasks", 300) as tick:
        for _ in range(300):  # 300 tasks over 3.5 periods: a line at each period, then one at the end
            now[0] += 3.5 * PROGRESS_EVERY_S / 300
            tick(1)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and lines[0].startswith("npusim: simulating tasks: ") and "/300 tasks, 10 s" in lines[0]
    assert lines[-1] == "npusim: simulating tasks: done (300 tasks), 35 s"
    with Progressor(quiet=False, clock=lambda: 0.0).phase("quick", 3) as tick:
        tick(3)  # a phase shorter than one period stays silent
    with Progressor(quiet=True).phase("x", 3) as tick:
        assert tick is None  # --quiet: silent
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with Progressor(quiet=True).phase("x", 3) as tick:
        assert tick is None  # --quiet: silent
    with Progressor(quiet=False).phase("x", 3) as tick:
        assert callable(tick)
        tick(3)


def test_plots_drawn_in_a_forked_process_are_the_plots_drawn_in_the_run(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a process can be forked, it draws the timeline and utilisation plots: every artefact is the same
    file, byte for byte, as when the run draws them all itself."""
    import npusim.runner as runner

    program = Path(__file__).resolve().parent.parent / "programs" / "qwen3_decode.yaml"
    if not runner.can_fork():
        pytest.skip("plots are drawn beside only by a forked process")
    forks = []
    real = runner.beside
    monkeypatch.setattr(runner, "beside", lambda fn, *a, **k: forks.append(fn) or real(fn, *a, **k))
    run(RunOptions(program=program, preset="tiny", numerics=False, out=tmp_path / "beside", quiet=True))
    assert runner._draw_timelines in forks
    monkeypatch.setattr(runner, "can_fork", lambda: False)
    run(RunOptions(program=program, preset="tiny", numerics=False, out=tmp_path / "alone", quiet=True))
    names = sorted(p.name for p in (tmp_path / "alone").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "beside").iterdir()) and "timeline.png" in names
    for name in names:
        assert (tmp_path / "beside" / name).read_bytes() == (tmp_path / "alone" / name).read_bytes(), name


def test_a_plot_that_fails_in_the_forked_process_fails_the_run_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from npusim.errors import LimitError

    def fails(*args: Any, **kwargs: Any) -> None:
        raise LimitError("utilisation.png: too many bins")

    monkeypatch.setattr(plots, "write_utilisation", fails)
    program = Path(__file__).resolve().parent.parent / "programs" / "softmax.yaml"
    with pytest.raises(LimitError, match=r"^utilisation\.png: too many bins$"):
        run(RunOptions(program=program, preset="tiny", numerics=False, out=tmp_path / "o", quiet=True))
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())
