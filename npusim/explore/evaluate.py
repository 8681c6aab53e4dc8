"""One variant of a sweep, run (timing-only unless asked) and summarised as a row; a variant the program or
the hardware cannot take (a failed requirement, a buffer overflow, any located error its values cause) is
an infeasible row with the reason. Results are cached on disk under their content key."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from npusim.errors import NpusimError
from npusim.output.report import Report
from npusim.output.sweep import SweepRow
from npusim.runner import RunOptions, RunResult, run

from .variants import Job


def _row(job: Job, result: RunResult, wall: float) -> SweepRow:
    report: Report = result.report
    top = [s for s in report.scopes if "/" not in s.name]
    slowest = max(top, key=lambda s: s.us) if top else None
    peaks: dict[str, int] = {}
    for r in result.timeline.runs:
        for buf, n in r.schedule.peak_bytes.items():
            peaks[buf] = max(peaks.get(buf, 0), n)
    return SweepRow(
        variant=job.variant, params=dict(job.params), config=job.config, config_name=result.hw.name, status="ok",
        total_us=report.total.us, total_cycles=report.total.cycles, tasks=report.total.tasks,
        scopes_us={s.name: s.us for s in report.scopes}, gm_read_bytes=report.total.dma.gm_read(),
        gm_write_bytes=report.total.dma.gm_write(), slowest_scope=slowest.name if slowest else "",
        bound_by=(slowest or report.total).bound_by, bound_share=(slowest or report.total).bound_share,
        peak_bytes=dict(sorted(peaks.items())), key=job.key, wall_s=round(wall, 3),
    )


def evaluate(job: Job) -> SweepRow:
    """Run one variant (in this process) and summarise it."""
    start = time.perf_counter()
    opts = RunOptions(program=job.program, config=job.config, preset=job.preset,
                      overrides=dict((*job.overrides, *job.params)), seed=job.seed, numerics=job.numerics,
                      plot=False, trace=False, quiet=True)
    try:
        result = run(opts)
    except NpusimError as exc:
        return SweepRow(variant=job.variant, params=dict(job.params), config=job.config,
                        config_name=Path(job.config).stem, status="infeasible", reason=str(exc), key=job.key,
                        wall_s=round(time.perf_counter() - start, 3))
    return _row(job, result, time.perf_counter() - start)


class Cache:
    """Rows on disk, one JSON file per content key: rerunning a sweep runs only what changed."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def get(self, job: Job) -> SweepRow | None:
        if self.directory is None:
            return None
        path = self.directory / f"{job.key}.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        row = SweepRow.model_validate(data)
        # the cached result of identical content, renumbered for this sweep; no time spent on it now
        return row.model_copy(update={"variant": job.variant, "params": dict(job.params), "config": job.config,
                                      "wall_s": 0.0})

    def put(self, row: SweepRow) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".npusim-", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(row.model_dump_json())
        os.replace(tmp, self.directory / f"{row.key}.json")
