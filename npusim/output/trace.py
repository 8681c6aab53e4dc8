"""trace.json (trace.json.gz when large): the run as Chrome trace events, for Perfetto (ui.perfetto.dev) or
chrome://tracing; Perfetto opens the gzipped file as it is.

Layout, in the spirit of the msprof op-simulator swimlanes:
- one process per core that ran something: pid 1 + n for AIC n and AIV_BASE + n for AIV n (AIV_BASE is
  1000, or the next multiple of 1000 above the AIC pids on a chip with more AICs), named "AIC n" / "AIV n";
- in each, thread TASK_TID ("tasks") holds one slice per task run on that core, and one thread per pipe
  (MTE2, MTE1, CUBE, FIXPIPE, VECTOR, MTE3, SCALAR, in that order) holds one slice per op step on that
  pipe. Only the pipes a core used get a thread. Thread ids start at 1: older Perfetto releases merged
  tid 0 with tid 1;
- task dependencies are flow arrows ("s" inside the predecessor's slice, "f" with bp "e" inside the
  successor's), drawn between the tasks lanes (a mix task's arrows use its AIC);
- process CHIP_PID ("chip") holds the HBM bandwidth counters (in use and the running tasks' demand, GB/s,
  one step per task start or end) and a "critical path" lane: one slice per task of the critical path,
  joined by flow arrows, each slice also marked `critical` on its core;
- ts and dur are µs rounded to whole ns, computed from whole-ns ends, so slices on one lane never overlap
  through rounding. Ops inside a task are placed by stretching its standalone schedule uniformly to the
  task's actual length (the engine reports only the overall stretch);
- op slices for every task ("ops"), for a sample ("sample": every op of the first and last task of each
  kernel, said in otherData.op_sample), or for none ("tasks").

Events are streamed one per line, so a large trace is never held in memory as one string.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from npusim.graph import Execution, result_tile
from npusim.timing import TaskRun, Timeline
from npusim.version import __version__
from npusim.vocabulary import PIPES

from .artefacts import write_atomic
from .summaries import hbm_steps, kernel_groups

TASK_TID = 1
PIPE_TID = {pipe: TASK_TID + 1 + i for i, pipe in enumerate(PIPES)}
CHIP_PID = 0  # the chip-wide lanes: HBM counters and the critical path
WRITE_EVENTS = 4096  # events encoded per write: one gzip/file call per chunk, not per event
GZIP_LEVEL = 6  # zlib's default level: ~2x faster than gzip's 9 on trace JSON, a few % larger
GZIP_ABOVE_EVENTS = 50_000  # a trace with more events than this (~6 MB of JSON) is written gzipped: trace.json.gz
SAMPLE_RULE = "every op of the first and last task of each kernel"
Detail = Literal["ops", "sample", "tasks"]


def sample_tasks(execution: Execution, timeline: Timeline) -> list[int]:
    """The tasks whose ops a sampled trace shows: the first and last task of each kernel."""
    chosen: set[int] = set()
    for group in kernel_groups(execution, timeline):
        chosen.update((group.runs[0].task, group.runs[-1].task))
    return sorted(chosen)


def op_tasks(execution: Execution, timeline: Timeline, detail: Detail) -> set[int]:
    """The tasks whose op steps the trace shows as pipe slices."""
    if detail == "ops":
        return {r.task for r in timeline.runs}
    return set(sample_tasks(execution, timeline)) if detail == "sample" else set()


def event_count(timeline: Timeline, with_ops: set[int]) -> int:
    """How many events the trace will hold (slices, flow halves, counters; metadata not counted)."""
    runs = timeline.runs
    slices = sum(len(r.cores) for r in runs)
    ops = sum(len(runs[t].schedule.ops) for t in with_ops)
    return slices + ops + 2 * sum(len(d) for d in timeline.deps) + 4 * len(runs)


def file_name(timeline: Timeline, with_ops: set[int]) -> str:
    return "trace.json.gz" if event_count(timeline, with_ops) > GZIP_ABOVE_EVENTS else "trace.json"


def aiv_base(num_aic: int) -> int:
    """The pid of AIV 0: 1000, or the next multiple of 1000 that clears every AIC pid."""
    return 1000 * (num_aic // 1000 + 1)


class _Lanes:
    """Core pids and cycles-to-ns conversion for one timeline."""

    def __init__(self, timeline: Timeline) -> None:
        self.base = aiv_base(timeline.hw.num_aic)
        self.ns_per_cycle = 1e9 / timeline.hw.clock_hz

    def pid(self, kind: str, core: int) -> int:
        return 1 + core if kind == "aic" else self.base + core

    def ns(self, cycles: float) -> int:
        return round(cycles * self.ns_per_cycle)

    def home(self, run: TaskRun) -> int:
        """The pid whose tasks lane carries a task's dependency arrows (the AIC of a mix task)."""
        return self.pid(*_cores(run)[0])


def _us(ns: int) -> float:
    return ns / 1000


def _cores(run: TaskRun) -> list[tuple[str, int]]:
    return run.cores


def _op_core(run: TaskRun, side: str) -> tuple[str, int]:
    """The core an op step runs on: its side's (first) core, or the task's only core if it lacks that side
    (a split task's AIV steps are shown on its first lane, whose schedule they are)."""
    cores = dict(reversed(_cores(run)))
    if side in cores:
        return side, cores[side]
    return next(iter(cores.items()))


def _metadata(timeline: Timeline, lanes: _Lanes, with_ops: set[int]) -> Iterator[dict[str, Any]]:
    """Process and thread names and sort order for the chip lanes and every core and pipe lane that appears."""
    yield {"ph": "M", "name": "process_name", "pid": CHIP_PID, "tid": TASK_TID, "args": {"name": "chip"}}
    yield {"ph": "M", "name": "process_sort_index", "pid": CHIP_PID, "tid": TASK_TID, "args": {"sort_index": CHIP_PID}}
    yield {"ph": "M", "name": "thread_name", "pid": CHIP_PID, "tid": TASK_TID, "args": {"name": "critical path"}}
    used: dict[tuple[str, int], set[str]] = {}
    for r in timeline.runs:
        for core in _cores(r):
            used.setdefault(core, set())
        if r.task in with_ops:
            for op in r.schedule.ops:
                used[_op_core(r, op.side)].add(op.pipe)
    for kind, core in sorted(used, key=lambda kc: (kc[0] != "aic", kc[1])):
        pid = lanes.pid(kind, core)
        yield {"ph": "M", "name": "process_name", "pid": pid, "tid": TASK_TID,
               "args": {"name": f"{kind.upper()} {core}"}}
        yield {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": TASK_TID, "args": {"sort_index": pid}}
        threads = [("tasks", TASK_TID)] + [(p.upper(), PIPE_TID[p]) for p in PIPES if p in used[(kind, core)]]
        for name, tid in threads:
            yield {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}
            yield {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": tid}}


def _task_events(execution: Execution, timeline: Timeline, lanes: _Lanes, run: TaskRun, critical: bool
                 ) -> Iterator[dict[str, Any]]:
    task = execution.tasks[run.task]
    b, e = lanes.ns(run.start), lanes.ns(run.end)
    loc = execution.instrs[task.instr].loc
    args = {
        "task": task.id, "kernel": task.kernel, "scope": task.scopes[-1] if task.scopes else "",
        "source": f"{loc.file}:{loc.line}", "context": task.context, "core": task.core,
        "standalone_cycles": round(run.schedule.cycles, 3), "cycles": round(run.end - run.start, 3),
        "stretch": round(run.stretch, 6), "gm_bytes": run.schedule.gm_bytes,
        "peak_buffer_bytes": dict(sorted(run.schedule.peak_bytes.items())),
        "predecessors": len(timeline.deps[run.task]),
    }
    if critical:
        args["critical"] = True
    for kind, core in _cores(run):
        yield {"ph": "X", "cat": "task", "name": task.kernel, "pid": lanes.pid(kind, core), "tid": TASK_TID,
               "ts": _us(b), "dur": _us(e - b), "args": args}


def _op_events(execution: Execution, lanes: _Lanes, run: TaskRun) -> Iterator[dict[str, Any]]:
    """One slice per op step, named by its cost key (TLOAD, TEXP, TMATMUL, MOVE, ...), on its pipe lane."""
    task = execution.tasks[run.task]
    task_b, task_e = lanes.ns(run.start), lanes.ns(run.end)
    scope = task.scopes[-1] if task.scopes else ""
    for timing in run.schedule.ops:
        record = task.ops[timing.op]
        instr = execution.instrs[record.instr]
        b = min(max(lanes.ns(run.kernel_start + timing.start * run.stretch), task_b), task_e)
        e = min(max(lanes.ns(run.kernel_start + timing.end * run.stretch), b), task_e)
        sig = record.sig
        tile = result_tile(sig)
        args: dict[str, Any] = {
            "op": instr.op, "task": task.id, "kernel": task.kernel, "scope": scope, "source": str(instr.loc),
            "text": instr.text, "shape": list(tile.shape), "valid": list(tile.valid), "dtype": tile.dtype,
            "tile": "dynamic" if tile.dynamic else "static",
        }
        if timing.path:
            args.update(path=timing.path, bytes=timing.nbytes)
        kind, core = _op_core(run, timing.side)
        yield {"ph": "X", "cat": "op", "name": sig.key, "pid": lanes.pid(kind, core), "tid": PIPE_TID[timing.pipe],
               "ts": _us(b), "dur": _us(e - b), "args": args}


def _flow_events(timeline: Timeline, lanes: _Lanes) -> Iterator[dict[str, Any]]:
    """A start inside each predecessor's slice (1 ns before its end) and a finish 1 ns into the task's,
    so both bind to the right slice whatever order a viewer sorts equal timestamps in."""
    runs = timeline.runs
    flow = 0
    for task, preds in enumerate(timeline.deps):
        run = runs[task]
        tb, te = lanes.ns(run.start), lanes.ns(run.end)
        for p in preds:
            pred = runs[p]
            pb, pe = lanes.ns(pred.start), lanes.ns(pred.end)
            flow += 1
            common = {"cat": "dependency", "name": "dep", "id": flow, "tid": TASK_TID}
            yield {**common, "ph": "s", "pid": lanes.home(pred), "ts": _us(max(pb, pe - 1)),
                   "args": {"from": p, "to": task}}
            yield {**common, "ph": "f", "bp": "e", "pid": lanes.home(run), "ts": _us(min(te, tb + 1)),
                   "args": {"from": p, "to": task}}


def _critical_events(execution: Execution, timeline: Timeline, lanes: _Lanes, chain: list[int]
                     ) -> Iterator[dict[str, Any]]:
    """The critical path on the chip's lane: one slice per task, an arrow from each to the next."""
    for i, t in enumerate(chain):
        run = timeline.runs[t]
        b, e = lanes.ns(run.start), lanes.ns(run.end)
        cores = " + ".join(f"{kind.upper()} {core}" for kind, core in _cores(run))
        yield {"ph": "X", "cat": "critical_path", "name": execution.tasks[t].kernel, "pid": CHIP_PID,
               "tid": TASK_TID, "ts": _us(b), "dur": _us(e - b), "args": {"task": t, "cores": cores, "step": i}}
    first_id = sum(len(d) for d in timeline.deps) + 1  # after the dependency flows' ids
    for i, (p, t) in enumerate(itertools.pairwise(chain)):
        pb, pe = lanes.ns(timeline.runs[p].start), lanes.ns(timeline.runs[p].end)
        tb, te = lanes.ns(timeline.runs[t].start), lanes.ns(timeline.runs[t].end)
        common = {"cat": "critical_path", "name": "critical", "id": first_id + i, "pid": CHIP_PID, "tid": TASK_TID}
        yield {**common, "ph": "s", "ts": _us(max(pb, pe - 1)), "args": {"from": p, "to": t}}
        yield {**common, "ph": "f", "bp": "e", "ts": _us(min(te, tb + 1)), "args": {"from": p, "to": t}}


def _counter_events(timeline: Timeline, lanes: _Lanes) -> Iterator[dict[str, Any]]:
    """HBM bandwidth in use and demanded, GB/s, as counter tracks of the chip process."""
    steps = hbm_steps(timeline)
    to_gbps = timeline.hw.clock_hz / 1e9
    for t, used, wanted in zip(steps.times, steps.in_use, steps.demand, strict=True):
        ts = _us(lanes.ns(t))
        yield {"ph": "C", "cat": "hbm", "name": "HBM in use GB/s", "pid": CHIP_PID, "tid": TASK_TID, "ts": ts,
               "args": {"GB/s": round(used * to_gbps, 3)}}
        yield {"ph": "C", "cat": "hbm", "name": "HBM demand GB/s", "pid": CHIP_PID, "tid": TASK_TID, "ts": ts,
               "args": {"GB/s": round(wanted * to_gbps, 3)}}


def trace_events(execution: Execution, timeline: Timeline, with_ops: set[int], chain: list[int]
                 ) -> Iterator[dict[str, Any]]:
    """Every trace event of the run: metadata, the HBM counters, the critical path, then per task its task
    and op slices, then the dependency flows."""
    lanes = _Lanes(timeline)
    on_path = set(chain)
    yield from _metadata(timeline, lanes, with_ops)
    yield from _counter_events(timeline, lanes)
    yield from _critical_events(execution, timeline, lanes, chain)
    for run in timeline.runs:
        yield from _task_events(execution, timeline, lanes, run, run.task in on_path)
        if run.task in with_ops:
            yield from _op_events(execution, lanes, run)
    yield from _flow_events(timeline, lanes)


def write_trace(path: Path, execution: Execution, timeline: Timeline, chain: list[int], detail: Detail = "ops",
                provenance: dict[str, Any] | None = None) -> dict[str, int]:
    """Write the trace atomically (gzipped when `path` ends in .gz, reproducibly: no name or time in the gzip
    header); `provenance` goes into otherData. Returns how many events of each kind it holds."""
    counts = {"task_events": 0, "op_events": 0, "flow_events": 0, "metadata_events": 0, "counter_events": 0,
              "critical_events": 0}
    key = {"task": "task_events", "op": "op_events", "dependency": "flow_events", "critical_path": "critical_events"}
    hw = timeline.hw
    with_ops = op_tasks(execution, timeline, detail)
    other: dict[str, Any] = {
        "generator": f"npusim {__version__}", "config": hw.name, "clock_hz": hw.clock_hz,
        "cycles": round(timeline.cycles, 3), "us": round(timeline.cycles / hw.clock_hz * 1e6, 4),
        "tasks": len(timeline.runs), "program": execution.instrs[0].loc.file if execution.instrs else "",
        "op_events": detail,
        **(provenance or {}),
    }
    if detail == "sample":
        other["op_sample"] = {"rule": SAMPLE_RULE, "tasks": len(with_ops), "of_tasks": len(timeline.runs),
                              "ops": sum(len(timeline.runs[t].schedule.ops) for t in with_ops),
                              "of_ops": sum(len(r.schedule.ops) for r in timeline.runs)}

    encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode

    def encoded() -> Iterator[str]:
        for event in trace_events(execution, timeline, with_ops, chain):
            if event["ph"] == "M":
                counts["metadata_events"] += 1
            elif event["ph"] == "C":
                counts["counter_events"] += 1
            elif event["ph"] != "f" and not (event["ph"] == "s" and event["cat"] == "critical_path"):
                counts[key[event["cat"]]] += 1
            yield encode(event)

    def stream(fh: BinaryIO) -> None:
        fh.write(b'{"traceEvents":[\n')
        events, separator = encoded(), b""
        while chunk := list(itertools.islice(events, WRITE_EVENTS)):
            fh.write(separator + ",\n".join(chunk).encode())
            separator = b",\n"
        tail = encode({"displayTimeUnit": "ns", "otherData": other})
        fh.write(b"\n]," + tail.encode()[1:] + b"\n")

    def write(fh: BinaryIO) -> None:
        if path.suffix == ".gz":
            with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=GZIP_LEVEL) as gz:
                stream(gz)  # type: ignore[arg-type]
        else:
            stream(fh)

    write_atomic(path, write)
    return counts
