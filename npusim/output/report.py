"""The report: a typed model of one run (per-scope latency, DMA traffic and pipe busy cycles, utilisation,
the critical path, output digests, the reference check), built from the timeline. `report.json` is its
dump; compare, plots and the CLI read it by attribute, and a saved report loads back into it."""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from pydantic import BaseModel, ConfigDict

from npusim import __version__
from npusim.graph import Execution
from npusim.numerics import digest
from npusim.references import CheckResult
from npusim.timing import TaskRun, Timeline, critical_path
from npusim.vocabulary import PIPES


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DmaTraffic(_Model):
    """Bytes and transfers per DMA path (GM and on-chip paths alike; see `gm_read` / `gm_write`)."""

    bytes: dict[str, int]
    transfers: dict[str, int]

    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    def total_transfers(self) -> int:
        return sum(self.transfers.values())

    def gm_read(self) -> int:
        return sum(n for path, n in self.bytes.items() if path.startswith("gm_"))

    def gm_write(self) -> int:
        return sum(n for path, n in self.bytes.items() if path.endswith("_gm"))


class Summary(_Model):
    """A set of tasks: from the first start to the last end, with their traffic and pipe busy cycles."""

    start_cycle: float
    end_cycle: float
    cycles: float
    us: float
    tasks: int
    dma: DmaTraffic
    busy_cycles: dict[str, float]


class ScopeSummary(Summary):
    name: str  # the scope path, nested scopes as outer/inner


class OutputDigest(_Model):
    dtype: str
    shape: list[int]
    sha256: str | None  # of the raw little-endian bytes of the final value; None without numerics


class CoreUtilisation(_Model):
    """Busy core-cycles over (span x cores), per core kind."""

    aic: float
    aiv: float


class CriticalPath(_Model):
    tasks: int
    busy_cycles: float
    kernels: dict[str, float]  # cycles on the path per kernel, longest first


class Report(_Model):
    """report.json (docs/sources.md DESIGN §7)."""

    npusim_version: str
    program: str
    program_file: str
    preset: str | None
    params: dict[str, int | float]
    config: str
    seed: int
    clock_hz: float
    numerics: bool
    total: Summary
    scopes: list[ScopeSummary]
    utilisation: CoreUtilisation
    critical_path: CriticalPath
    ops: int
    loop_iterations: int
    outputs: dict[str, OutputDigest]
    check: CheckResult | None = None
    trace_events: Literal["ops", "tasks"] | None = None  # what trace.json holds, when it was written
    artefacts: list[str] = []

    def scope(self, name: str) -> ScopeSummary:
        return next(s for s in self.scopes if s.name == name)


def _span(runs: list[TaskRun], timeline: Timeline) -> dict:
    paths = list(timeline.hw.dma)
    dma_bytes, transfers = dict.fromkeys(paths, 0), dict.fromkeys(paths, 0)
    busy = dict.fromkeys(PIPES, 0.0)
    for r in runs:
        for path, n in r.schedule.dma_bytes.items():
            dma_bytes[path] += n
        for path, n in r.schedule.dma_transfers.items():
            transfers[path] += n
        for pipe, c in r.schedule.busy.items():
            busy[pipe] += c
    start = min((r.start for r in runs), default=0.0)
    end = max((r.end for r in runs), default=0.0)
    cycles = end - start
    return {
        "start_cycle": round(start, 3),
        "end_cycle": round(end, 3),
        "cycles": round(cycles, 3),
        "us": round(cycles / timeline.hw.clock_hz * 1e6, 4),
        "tasks": len(runs),
        "dma": DmaTraffic(bytes=dma_bytes, transfers=transfers),
        "busy_cycles": {p: round(c, 3) for p, c in busy.items()},
    }


def outputs_digest(execution: Execution, roles: dict[str, str]) -> dict[str, OutputDigest]:
    """dtype, shape and sha256 of the final value of every output and inout tensor."""
    return {
        name: OutputDigest(dtype=t.dtype, shape=list(t.shape), sha256=digest(t.data) if t.data is not None else None)
        for name, t in execution.tensors.items() if roles.get(name) in ("output", "inout")
    }


def build_report(
    *,
    program_file: str,
    params: dict[str, int | float],
    config_name: str,
    seed: int,
    execution: Execution,
    timeline: Timeline,
    roles: dict[str, str],
    check: CheckResult | None,
    trace_events: Literal["ops", "tasks"] | None = None,
    artefacts: list[str] | None = None,
) -> Report:
    """The report of one run, complete: the artefacts it lists are those the run is about to write."""
    tasks = execution.tasks
    by_scope: dict[str, list[TaskRun]] = defaultdict(list)
    for run in timeline.runs:
        for scope in tasks[run.task].scopes:
            by_scope[scope].append(run)
    total = Summary(**_span(timeline.runs, timeline))
    hw = timeline.hw
    core_cycles = {"aic": 0.0, "aiv": 0.0}
    for r in timeline.runs:
        for kind, core in (("aic", r.aic), ("aiv", r.aiv)):
            if core is not None:
                core_cycles[kind] += r.end - r.start
    span = total.cycles or 1.0
    chain = critical_path(timeline)
    chain_kernels: dict[str, float] = defaultdict(float)
    for t in chain:
        chain_kernels[tasks[t].kernel] += timeline.runs[t].end - timeline.runs[t].start
    return Report(
        npusim_version=__version__,
        program=execution.program,
        program_file=program_file,
        preset=execution.preset,
        params=params,
        config=config_name,
        seed=seed,
        clock_hz=hw.clock_hz,
        numerics=execution.numerics,
        total=total,
        scopes=[ScopeSummary(name=name, **_span(by_scope[name], timeline)) for name in execution.scopes],
        utilisation=CoreUtilisation(aic=round(core_cycles["aic"] / (span * hw.num_aic), 4),
                                    aiv=round(core_cycles["aiv"] / (span * hw.num_aiv), 4)),
        critical_path=CriticalPath(
            tasks=len(chain),
            busy_cycles=round(sum(chain_kernels.values()), 3),
            kernels={k: round(v, 3) for k, v in sorted(chain_kernels.items(), key=lambda kv: -kv[1])},
        ),
        ops=execution.op_count,
        loop_iterations=execution.loop_iterations,
        outputs=outputs_digest(execution, roles),
        check=check,
        trace_events=trace_events,
        artefacts=sorted(artefacts or []),
    )

