"""Where the time goes: the HBM sharing replay against the chip it restates, what bounds a kernel, the
per-kernel, per-instruction and per-line rows against independent totals and hand-worked counts, the
critical path as a chain, the idle gaps against a sweep of the timeline, the utilisation of active cores,
the CSV files against the report, and the console tables within 100 columns."""

from __future__ import annotations

import csv
import io
import itertools
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from npusim.output import plots, summaries
from npusim.output.report import Report
from npusim.output.table import WIDTH, critical_path_lines, print_summary, print_table, scope_table
from npusim.runner import RunOptions, RunResult, run
from npusim.timing import load_config
from npusim.vocabulary import PIPES, touches_gm

from .conftest import PROGRAMS, fast_config
from .test_artefacts import DEMO

HW = load_config("ascend910b")

# An AIV kernel between two waves of AIC kernels: the second wave needs its output, so every AIC idles
# while it runs (the shape of the Qwen3 layer's post_rmsnorm before the MLP).
WAIT = """\
name: wait_demo
doc: AIC kernels, one long AIV kernel on their outputs, AIC kernels on its output.
params:
  N: 8
  R: 64
tensors:
  a: {shape: [16, 128], dtype: bf16, role: input, init: zeros}
  w: {shape: [128, N * 64], dtype: bf16, role: input, init: zeros}
  x: {shape: [N * R * 16, 128], dtype: fp32, role: input, init: zeros}
  h: {shape: [16, N * 64], dtype: fp32, role: scratch}
  g: {shape: [16, 128], dtype: bf16, role: scratch}
  y: {shape: [16, N * 64], dtype: fp32, role: output}
body:
  - scope first:
    - parallel n in range(N):
      - incore up:
        - at = slice(a, [16, 128], [0, 0])
        - wt = slice(w, [128, 64], [0, n * 64])
        - c = matmul(at, wt)
        - h = assemble(h, c, [0, n * 64])
  - scope norm:
    - incore mid_norm:
      - for r in range(N * R):
        - t = slice(x, [16, 128], [r * 16, 0])
      - hh = slice(h, [16, 128], [0, 0])
      - gb = cast(hh, bf16)
      - g = assemble(g, gb, [0, 0])
  - scope second:
    - parallel n in range(N):
      - incore down:
        - gt = slice(g, [16, 128], [0, 0])
        - wt = slice(w, [128, 64], [0, n * 64])
        - c = matmul(gt, wt)
        - y = assemble(y, c, [0, n * 64])
"""


def _run(tmp_path_factory: pytest.TempPathFactory, name: str, text: str) -> RunResult:
    src = tmp_path_factory.mktemp("src") / f"{name}.yaml"
    src.write_text(text)
    config = fast_config(tmp_path_factory.mktemp("config"))  # many tasks at once: the runtime is not on test
    return run(RunOptions(program=src, config=str(config), out=tmp_path_factory.mktemp(name), quiet=True,
                          numerics=False))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return _run(tmp_path_factory, "artefact_demo", DEMO)


@pytest.fixture(scope="module")
def wait(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return _run(tmp_path_factory, "wait_demo", WAIT)


@pytest.fixture(scope="module")
def qwen3_tiny(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    return run(RunOptions(program=PROGRAMS / "qwen3_decode.yaml", preset="tiny", quiet=True,
                          out=tmp_path_factory.mktemp("qwen3")))


@pytest.fixture(params=["demo", "wait", "qwen3_tiny"])
def result(request: pytest.FixtureRequest) -> RunResult:
    return request.getfixturevalue(request.param)


# --- HBM sharing and what bounds a kernel ----------------------------------------------------------------


def test_water_level_by_hand() -> None:
    # capacity 6 over demands 1, 2, 5: 1 and 2 fit their fair shares (2, then 2.5); 5 gets the 3 left
    assert summaries.water_level([5.0, 1.0, 2.0], 6.0) == 3.0
    assert summaries.water_level([1.0, 2.0], 6.0) == float("inf")
    assert summaries.water_level([4.0, 4.0], 6.0) == 3.0


def test_hbm_replay_reproduces_every_task(result: RunResult) -> None:
    """Replaying the runs through max-min fair sharing gives each task exactly its standalone progress over
    its run (so the replay is the chip's sharing rule), and a task is throttled only if it was slowed."""
    tl = result.timeline
    shares = summaries.hbm_shares(tl)
    for r in tl.runs:
        assert shares.progress[r.task] == pytest.approx(r.schedule.cycles, rel=1e-9, abs=1e-6)
        assert 0 <= shares.throttled[r.task] <= r.end - r.start + 1e-9
        if r.end - r.start == pytest.approx(r.schedule.cycles, rel=1e-12):
            assert shares.throttled[r.task] == pytest.approx(0.0, abs=1e-6)


def test_bound_by_hbm_or_busiest_pipe(demo: RunResult) -> None:
    """copy_cast streams from HBM on every AIV at once (throttled most of its time): hbm; the mix kernel
    runs alone with bandwidth to spare: its busiest pipe, with that pipe's share of its standalone time."""
    tl = demo.timeline
    shares = summaries.hbm_shares(tl)
    rows = {k.kernel: k for k in demo.report.kernels}
    runs = defaultdict(list)
    for r in tl.runs:
        runs[demo.execution.tasks[r.task].kernel].append(r)
    stream = runs["copy_cast"]
    throttled = sum(shares.throttled[r.task] for r in stream) / sum(r.end - r.start for r in stream)
    assert throttled > 0.5 and rows["copy_cast"].bound_by == "hbm"
    assert rows["copy_cast"].bound_share == pytest.approx(throttled, abs=1e-4)
    both = runs["both"]
    busy = {p: sum(r.schedule.busy[p] for r in both) for p in PIPES}
    pipe = max(busy, key=busy.get)
    assert rows["both"].bound_by == pipe == "mte2"
    assert rows["both"].bound_share == pytest.approx(busy[pipe] / sum(r.schedule.cycles for r in both), abs=1e-4)


# --- per kernel, per instruction, per line ---------------------------------------------------------------


def test_kernel_rows_add_up(result: RunResult) -> None:
    report, tl, us = result.report, result.timeline, 1e6 / result.timeline.hw.clock_hz
    rows = report.kernels
    assert sum(k.tasks for k in rows) == report.total.tasks == len(tl.runs)
    assert sum(k.exec_us for k in rows) == pytest.approx(sum(r.end - r.start for r in tl.runs) * us, abs=1e-3)
    for pipe in PIPES:
        assert sum(k.busy_cycles[pipe] for k in rows) == pytest.approx(report.total.busy_cycles[pipe], abs=1e-2)
    assert sum(k.gm_read_bytes for k in rows) == report.total.dma.gm_read()
    assert sum(k.gm_write_bytes for k in rows) == report.total.dma.gm_write()
    onchip = sum(n for p, n in report.total.dma.bytes.items() if not touches_gm(p))
    assert sum(k.onchip_bytes for k in rows) == onchip
    assert sum(k.critical_path_us for k in rows) == pytest.approx(report.critical_path.busy_cycles * us, abs=1e-3)
    for k in rows:
        assert k.exec_min_us <= k.exec_avg_us <= k.exec_max_us <= k.latency_us + 1e-9
        assert k.exec_avg_us == pytest.approx(k.exec_us / k.tasks, abs=1e-4)


def test_instruction_and_line_rows_add_up(result: RunResult) -> None:
    ex, tl, report = result.execution, result.timeline, result.report
    steps = [(ex.tasks[r.task].ops[s.op], s) for r in tl.runs for s in r.schedule.ops]
    assert sum(i.count for i in report.instructions) == sum(line.count for line in report.lines) == len(steps)
    total = sum(s.end - s.start for _, s in steps)
    rounding = 1e-3 * (len(report.instructions) + len(report.lines))  # rows are rounded to 3 decimals
    assert sum(i.cycles for i in report.instructions) == pytest.approx(total, abs=rounding)
    assert sum(line.cycles for line in report.lines) == pytest.approx(total, abs=rounding)
    assert sum(i.share for i in report.instructions) == pytest.approx(1.0, abs=1e-4)
    gm = report.total.dma.gm_read() + report.total.dma.gm_write()
    onchip = sum(n for p, n in report.total.dma.bytes.items() if not touches_gm(p))
    assert onchip > 0
    for rows in (report.instructions, report.lines):
        assert sum(r.gm_bytes for r in rows) == gm and sum(r.onchip_bytes for r in rows) == onchip
    tloads = sum(1 for op, s in steps if op.sig.key == "TLOAD")
    assert next(i.count for i in report.instructions if (i.instruction, i.pipe) == ("TLOAD", "mte2")) == tloads
    assert [i.cycles for i in report.instructions] == sorted((i.cycles for i in report.instructions), reverse=True)


def test_lines_by_hand(demo: RunResult) -> None:
    """The demo's stream kernel: NT = 60 tasks x 2 iterations, each loading an [R, C] = [64, 256] FP32 window
    (line 24) and storing it as BF16 (line 26)."""
    lines = {line.source.rsplit(":", 1)[1]: line for line in demo.report.lines}
    load, store = lines["24"], lines["26"]
    assert load.text.startswith("t = slice(big") and load.kernels == ["copy_cast"]
    assert load.count == 120 and load.gm_bytes == 120 * 64 * 256 * 4 and load.busy_cycles["mte2"] == load.cycles
    assert store.count == 120 and store.gm_bytes == 120 * 64 * 256 * 2 and store.busy_cycles["mte3"] == store.cycles
    dma = HW.dma["gm_to_ub"]
    runs, run_bytes = 1, 64 * 256 * 4  # whole rows: one contiguous run
    # op-step cycles are the engine's: issue + bytes / rate (the latency after it holds no pipe)
    assert runs == 1 and load.cycles == pytest.approx(120 * (dma.issue_cycles + run_bytes / dma.bytes_per_cycle))


def test_csv_files_hold_the_report_rows(result: RunResult) -> None:
    out = result.out_dir
    assert out is not None
    for name, rows in (("kernels.csv", result.report.kernels), ("instructions.csv", result.report.instructions),
                       ("lines.csv", result.report.lines)):
        table = list(csv.DictReader(io.StringIO((out / name).read_text())))
        assert len(table) == len(rows) > 0
        first = rows[0].model_dump(mode="json")
        for key, value in first.items():
            if isinstance(value, dict):
                for sub, v in value.items():
                    assert float(table[0][f"{key}_{sub}"]) == pytest.approx(v)
            elif isinstance(value, list):
                assert table[0][key] == " ".join(map(str, value))
            elif isinstance(value, (int, float)):
                assert float(table[0][key]) == pytest.approx(value)
            else:
                assert table[0][key] == value
    header = next(csv.reader(io.StringIO((out / "kernels.csv").read_text())))
    assert {"kernel", "tasks", "exec_avg_us", "exec_min_us", "exec_max_us", "latency_us", "gm_read_bytes",
            "bound_by", *(f"busy_cycles_{p}" for p in PIPES)} <= set(header)


# --- critical path, idle gaps, utilisation ---------------------------------------------------------------


def test_critical_chain_merges_consecutive_tasks_of_a_kernel(result: RunResult) -> None:
    ex, tl, path = result.execution, result.timeline, result.report.critical_path
    us = 1e6 / tl.hw.clock_hz
    assert sum(link.tasks for link in path.chain) == path.tasks == len(path.task_ids)
    names = [ex.tasks[t].kernel for t in path.task_ids]
    assert [link.kernel for link in path.chain] == [k for k, _ in itertools.groupby(names)]
    i = 0
    for link in path.chain:
        first, last = tl.runs[path.task_ids[i]], tl.runs[path.task_ids[i + link.tasks - 1]]
        assert link.start_us == pytest.approx(first.start * us, abs=1e-4)
        assert link.us == pytest.approx((last.end - first.start) * us, abs=1e-4)
        i += link.tasks
    lines = critical_path_lines(result.report)
    assert all(len(line) <= WIDTH for line in lines)
    assert " ".join(lines).count("→") == len(path.chain) - 1


def test_idle_gaps_against_a_sweep(result: RunResult) -> None:
    """Every interval of at least the threshold with no task on any core of a kind (from the start to that
    kind's last task) is reported, and nothing else."""
    tl, report = result.timeline, result.report
    us = 1e6 / tl.hw.clock_hz
    min_cycles = report.idle_gap_min_us / us
    expected = []
    for side in ("aic", "aiv"):
        spans = sorted((r.start, r.end) for r in tl.runs if getattr(r, side) is not None)
        covered = 0.0
        for start, end in spans:
            if start - covered >= min_cycles * (1 - 1e-6):
                expected.append((side, covered * us, (start - covered) * us))
            covered = max(covered, end)
    got = sorted((g.side, g.start_us, g.us) for g in report.idle_gaps)
    assert len(got) == len(expected) > 0
    for (side, start, length), want in zip(got, sorted(expected), strict=True):
        assert (side, start, length) == (want[0], pytest.approx(want[1], abs=1e-4), pytest.approx(want[2], abs=2e-4))


def test_an_aic_gap_waits_on_the_aiv_kernel_between(wait: RunResult, tmp_path: Path) -> None:
    gaps = [g for g in wait.report.idle_gaps if g.side == "aic" and g.start_us > 0]
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.cause == "dependency" and gap.next_kernel == "down"
    assert gap.waits_on is not None and gap.waits_on.startswith("mid_norm (task 8 on AIV")
    mid = wait.timeline.runs[8]
    us = 1e6 / wait.timeline.hw.clock_hz
    assert gap.start_us <= mid.start * us and mid.end * us <= gap.start_us + gap.us
    chart = plots.write_timeline(tmp_path / "t.png", wait.execution, wait.timeline, wait.report)
    assert any("all AIC idle" in label and "waiting on mid_norm" in label for label in chart.labels)
    assert [k.kernel for k in wait.report.kernels] == ["up", "mid_norm", "down"]
    assert chart.legend[:3] == ["up ×8", "mid_norm ×1", "down ×8"] and chart.legend[3].startswith("critical path")
    assert any(wait.report.config_sha256[:12] in line for line in chart.title)


def test_pipes_busy_over_active_cores(wait: RunResult, tmp_path: Path) -> None:
    """mid_norm runs alone on one AIV, its MTE2 busy nearly all the time: over the active core its MTE2 is
    near 100%, over all 48 AIVs 48 times less."""
    util = plots.utilisation(wait.timeline)
    mid = wait.timeline.runs[8]
    edges = util.edges_us * wait.timeline.hw.clock_hz / 1e6
    inside = (edges[:-1] >= mid.start) & (edges[1:] <= mid.end)
    inside &= np.isclose(util.active["aiv"], 1 / HW.num_aiv)
    assert inside.sum() > 10
    assert np.mean(util.busy_active["aiv mte2"][inside] > 0.99) > 0.9  # its loads; the tail casts and stores
    assert np.allclose(util.busy["aiv mte2"][inside] * HW.num_aiv, util.busy_active["aiv mte2"][inside])
    report_util = wait.report.utilisation
    occupied = sum(r.end - r.start for r in wait.timeline.runs if r.aiv is not None)
    mte2 = sum((s.end - s.start) * r.stretch for r in wait.timeline.runs if r.aiv is not None
               for s in r.schedule.ops if s.side == "aiv" and s.pipe == "mte2")
    assert report_util.aiv_pipes["mte2"] == pytest.approx(mte2 / occupied, abs=1e-4)


def test_kernels_chart(result: RunResult, tmp_path: Path) -> None:
    chart = plots.write_kernels(tmp_path / "k.png", result.report)
    kernels = sorted(result.report.kernels, key=lambda k: -k.exec_us)
    assert chart.rows == [k.kernel for k in kernels]
    used = sum(1 for k in kernels for p in PIPES if k.busy_cycles[p] > 0)
    assert chart.bars == len(kernels) + 2 * used  # an exec bar, and per pipe used one bar in each panel
    assert all(f"bound by {k.bound_by}" in label for k, label in zip(kernels, chart.labels, strict=True))


# --- console ---------------------------------------------------------------------------------------------


def _scaled(report: Report, factor: float, tasks: float | None = None, data: float | None = None) -> Report:
    """The report with every scope's numbers multiplied (a run `factor` times the size; its task counts and
    its bytes and transfers by their own factors when given)."""
    big = report.model_copy(deep=True)
    tasks, data = tasks or factor, data or factor
    for s in [*big.scopes, big.total]:
        s.start_cycle *= factor
        s.cycles *= factor
        s.us *= factor
        s.tasks = int(s.tasks * tasks)
        s.dma.bytes = {p: int(n * data) for p, n in s.dma.bytes.items()}
        s.dma.transfers = {p: int(n * data) for p, n in s.dma.transfers.items()}
    return big


def test_tables_fit_100_columns_and_never_cut_numbers(qwen3_tiny: RunResult) -> None:
    report = qwen3_tiny.report
    console = Console(width=WIDTH, record=True, file=io.StringIO())
    print_summary(report, console)
    text = console.export_text()
    assert all(len(line) <= WIDTH for line in text.splitlines()) and "…" not in text
    assert f"{report.total.us:.2f}" in text and f"{report.total.dma.gm_read() / 1e6:.3f}" in text
    # a run 10 000 times larger (more than the full-size layer's numbers): still within 100 columns
    big = _scaled(report, 1e4)
    console = Console(width=WIDTH, record=True, file=io.StringIO())
    console.print(scope_table(big))
    text = console.export_text()
    assert all(len(line) <= WIDTH for line in text.splitlines()) and "…" not in text
    for s in big.scopes:
        assert f"{s.us:.2f}" in text and str(s.tasks) in text
    # numbers as wide as the default layer's (1503 tasks, 3616.52 µs, 1933.125 MB): the names stay whole too
    layer = _scaled(report, 13, tasks=11, data=440)
    assert (len(str(layer.total.tasks)), len(f"{layer.total.us:.2f}"), len(f"{layer.total.dma.gm_read() / 1e6:.3f}")
            ) == (4, 7, 8)
    console = Console(width=WIDTH, record=True, file=io.StringIO())
    console.print(scope_table(layer))
    text = console.export_text()
    first_words = {line.split()[0] for line in text.splitlines() if line.strip()}
    assert {s.name.rsplit("/", 1)[-1] for s in layer.scopes} <= first_words
    # numbers too wide for 100 columns: the table grows, the digits stay
    huge = _scaled(report, 1e9)
    console = Console(width=WIDTH, record=True, file=io.StringIO())
    print_table(console, scope_table(huge))
    text = console.export_text()
    assert "…" not in text
    for s in huge.scopes:
        assert f"{s.us:.2f}" in text and f"{s.dma.gm_read() / 1e6:.3f}" in text
