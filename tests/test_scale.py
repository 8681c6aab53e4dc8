"""Resource bounds: the dependency index gives exactly the dependencies of a plain scan of every earlier
access (the rules written out once more here, independently), the quick pass's estimate of tasks and ops
matches the run where loops have no data-dependent trip counts, a run estimated to exceed the memory limit
is refused before it starts, and a trace over --max-trace-bytes is reduced with a note on stderr. Speed is
measured in benchmarks/scale.py, never asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npusim.cli import main
from npusim.frontend import load_program
from npusim.frontend.inputs import initial_values
from npusim.graph import Task, dependencies
from npusim.interp import execute

from .conftest import PROGRAMS

REPO_BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def scan_dependencies(tasks: list[Task]) -> list[tuple[int, ...]]:
    """The dependency rules by plain scanning: per tensor a list of (rectangle, task, wrote); a read depends
    on every earlier overlapping write, a write on every earlier overlapping access; once the log has doubled
    since the last pruning (from 32 entries), a write first drops the entries its rectangle covers."""
    logs: dict[int, list] = {}
    prune_at: dict[int, int] = {}

    def overlap(a, b) -> bool:
        return all(alo < bhi and blo < ahi for alo, ahi, blo, bhi in zip(a[0], a[1], b[0], b[1], strict=True))

    out = []
    for task in tasks:
        found = set()
        for kind, regions in (("r", task.reads), ("w", task.writes)):
            for tid, lo, hi in regions:
                for (elo, ehi), t, wrote in logs.get(tid, []):
                    if (wrote or kind == "w") and overlap((elo, ehi), (lo, hi)):
                        found.add(t)
        found.discard(task.id)
        out.append(tuple(sorted(found)))
        for kind, regions in (("r", task.reads), ("w", task.writes)):
            for tid, lo, hi in regions:
                log = logs.setdefault(tid, [])
                if kind == "w" and len(log) >= prune_at.get(tid, 32):
                    log[:] = [e for e in log if not all(lo[i] <= e[0][0][i] and e[0][1][i] <= hi[i]
                                                        for i in range(len(lo)))]
                    prune_at[tid] = max(32, 2 * len(log))
                log.append(((lo, hi), task.id, kind == "w"))
    return out


def tasks_of(path: Path, preset: str | None = None) -> list[Task]:
    program = load_program(path, preset=preset)
    return execute(program, initial_values(program, 0, only={"seq_lens"}), numerics_on=False).tasks


@pytest.mark.parametrize(("name", "preset"), [("qwen3_decode", "tiny"), ("qwen3_decode", None),
                                              ("qwen3_decode_full_init", None), ("softmax", None), ("matmul", None)])
def test_dependency_index_matches_a_plain_scan(name: str, preset: str | None) -> None:
    tasks = tasks_of(PROGRAMS / f"{name}.yaml", preset)
    assert dependencies(tasks) == scan_dependencies(tasks)


EXTENT = st.integers(1, 24) | st.integers(60, 200)  # mostly tiles, some rectangles spanning many buckets
REGION = st.tuples(st.integers(0, 3), st.integers(0, 40), EXTENT, st.integers(0, 40), EXTENT)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(REGION, max_size=3), st.lists(REGION, max_size=3)), min_size=1, max_size=120))
def test_dependency_index_matches_a_plain_scan_on_random_footprints(footprints) -> None:
    """Random 2-D reads and writes of 4 tensors: overlapping, nested, covering, wide and narrow rectangles."""
    tasks = []
    for i, (reads, writes) in enumerate(footprints):
        def regions(rs):
            return [(t, (r, c), (r + h, c + w)) for t, r, h, c, w in rs]

        tasks.append(Task(i, "k", (), 0, "", reads=regions(reads), writes=regions(writes)))
    assert dependencies(tasks) == scan_dependencies(tasks)


def test_the_quick_pass_estimates_tasks_and_ops() -> None:
    import sys

    sys.path.insert(0, str(REPO_BENCH))
    from scale import MANY_OPS, MANY_TASKS  # the benchmark's generated programs

    for text in (MANY_TASKS.format(n=640), MANY_OPS.format(n=500)):
        path = Path(__file__).parent / "_estimate.yaml"
        try:
            path.write_text(text)
            program = load_program(path)
            quick = execute(program, {}, numerics_on=False, first_iterations_only=True)
            full = execute(program, {}, numerics_on=False)
        finally:
            path.unlink()
        assert (quick.estimated_tasks, quick.estimated_ops) == (len(full.tasks), full.op_count)


def test_a_run_estimated_beyond_the_memory_limit_is_refused_before_it_runs(cli, tmp_path: Path) -> None:
    from npusim.interp.limits import BYTES_PER_OP, BYTES_PER_TASK

    program = load_program(PROGRAMS / "qwen3_decode.yaml", preset="tiny")
    quick = execute(program, initial_values(program, 0, only={"seq_lens"}), numerics_on=False,
                    first_iterations_only=True)
    need = quick.estimated_tasks * BYTES_PER_TASK + quick.estimated_ops * BYTES_PER_OP
    out = tmp_path / "o"
    result = cli.invoke(main, ["run", str(PROGRAMS / "qwen3_decode.yaml"), "--preset", "tiny", "--no-numerics", "-q",
                               "--out", str(out), "--max-memory-bytes", str(need - 1)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {PROGRAMS / 'qwen3_decode.yaml'}: the run needs about ")
    assert f"({quick.estimated_tasks} tasks, {quick.estimated_ops} ops estimated" in result.stderr
    assert not (out / "report.json").exists()
    result = cli.invoke(main, ["run", str(PROGRAMS / "qwen3_decode.yaml"), "--preset", "tiny", "--no-numerics", "-q",
                               "--out", str(out), "--max-memory-bytes", str(need)])
    assert result.exit_code == 0, result.stderr


def test_an_estimate_beyond_max_tasks_is_refused_at_once(cli, tmp_path: Path) -> None:
    result = cli.invoke(main, ["run", str(PROGRAMS / "qwen3_decode.yaml"), "--preset", "tiny", "--no-numerics", "-q",
                               "--out", str(tmp_path / "o"), "--max-tasks", "100"])
    assert result.exit_code == 2
    assert "the run would create about 139 tasks (estimated from the first iteration of every loop), more than the " \
           "limit of 100" in result.stderr


def test_a_trace_over_the_limit_holds_less_then_nothing(cli, tmp_path: Path) -> None:
    """Over --max-trace-bytes the trace drops to the op sample, then to tasks only, then is not written, each
    step said on stderr; the size estimate is within a factor 2 of the file written."""
    from npusim.output import trace
    from npusim.runner import TRACE_BYTES_PER_EVENT, RunOptions, run

    full = run(RunOptions(program=PROGRAMS / "softmax.yaml", preset="tiny", numerics=False, quiet=True, plot=False,
                          out=tmp_path / "full", trace_detail="ops"))
    ex, tl = full.execution, full.timeline
    size = {d: trace.event_count(tl, trace.op_tasks(ex, tl, d)) * TRACE_BYTES_PER_EVENT
            for d in ("ops", "sample", "tasks")}
    written = (tmp_path / "full" / "trace.json").stat().st_size
    assert full.report.trace_events == "ops" and 0.5 < written / size["ops"] < 2
    assert size["ops"] > size["sample"] > size["tasks"]
    args = ["run", str(PROGRAMS / "softmax.yaml"), "--preset", "tiny", "--no-numerics", "-q", "--no-plot",
            "--trace-detail", "ops"]
    for limit, kept in ((size["ops"] - 1, "sample"), (size["sample"] - 1, "tasks"), (size["tasks"] - 1, None)):
        out = tmp_path / str(limit)
        result = cli.invoke(main, [*args, "--out", str(out), "--max-trace-bytes", str(limit)])
        assert result.exit_code == 0, result.stderr
        assert result.stderr.startswith("npusim: the trace with ops detail would take about ")
        report = json.loads((out / "report.json").read_text())
        assert report["trace_events"] == kept
        assert (out / "trace.json").exists() == (kept is not None)
        if kept is None:
            assert "not written" in result.stderr.splitlines()[-1]
