"""`npusim sweep`: run many variants of one program (a grid or a sample of params, on one or more configs),
timing-only by default, on a local process pool or a Ray cluster, and summarise them in sweep.csv,
sweep.json and sweep.png. Identical variants (the same content key) are computed once, and results are
cached on disk, so rerunning a sweep runs only what changed."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from npusim.dtypes import itemsize
from npusim.errors import NpusimError
from npusim.output import artefacts
from npusim.output.sweep import SweepRow, write_sweep, write_sweep_figure
from npusim.runner import RunOptions, load, protected_places
from npusim.timing import load_config, resolve_config_path
from npusim.timing.hardware import config_sha256

from .engines import TIMING_WORKER_BYTES, EngineName, make_engine
from .evaluate import Cache, evaluate
from .variants import Job, Number, check_names, job_key, program_digest, variants

DEFAULT_CACHE = Path("reports") / ".cache" / "variants"


@dataclass
class SweepSpec:
    """What to sweep and how."""

    program: Path
    grid: dict[str, list[Number]]
    configs: list[str]
    preset: str | None = None
    overrides: dict[str, Number] = field(default_factory=dict)  # --set values common to every variant
    numerics: bool = False
    seed: int = 0
    sample: int | None = None
    engine: EngineName = "local"
    address: str | None = None
    workers: int | None = None
    cache: Path | None = DEFAULT_CACHE


@dataclass
class SweepResult:
    rows: list[SweepRow]
    out_dir: Path | None
    computed: int  # variants run by this sweep
    cached: int  # variants whose result came from the cache
    duplicates: int  # variants identical to another of this sweep
    wall_s: float


def plan(spec: SweepSpec) -> list[Job]:
    """Check the program, the names and the configs, and list the variants with their content keys."""
    for name in spec.grid:
        if name in spec.overrides:
            raise NpusimError(f"--grid {name}: also given with --set; sweep it or set it, not both")
    if not spec.grid and len(spec.configs) < 2:
        raise NpusimError("a sweep needs a --grid NAME=V1,V2,... or at least two --config")
    program, _ = load(RunOptions(program=spec.program, config=spec.configs[0], preset=spec.preset,
                                 overrides=dict(spec.overrides)))
    check_names(spec.grid, program.params)
    config_shas = {c: config_sha256(load_config(c)) for c in spec.configs}
    program_sha = program_digest(spec.program)
    jobs = []
    for i, (params, config) in enumerate(variants(spec.grid, spec.configs, spec.sample, spec.seed)):
        job = Job(i, spec.program, spec.preset, params, tuple(spec.overrides.items()), config, spec.numerics,
                  spec.seed)
        jobs.append(dataclasses.replace(job, key=job_key(job, program_sha, config_shas[config])))
    return jobs


def worker_bytes(spec: SweepSpec) -> int:
    """Memory one variant's run needs: a timing-only run's, plus twice the GM tensors with numerics (the
    tensors and the reference's copies)."""
    if not spec.numerics:
        return TIMING_WORKER_BYTES
    program, _ = load(RunOptions(program=spec.program, config=spec.configs[0], preset=spec.preset,
                                 overrides=dict(spec.overrides)))
    gm = sum(math.prod(t.shape) * itemsize(t.dtype) for t in program.tensors.values())
    return TIMING_WORKER_BYTES + 2 * gm


def run_jobs(jobs: list[Job], spec: SweepSpec, evaluate_fn: Callable[[Job], SweepRow] = evaluate,
             progress: Callable[[int], None] | None = None) -> tuple[list[SweepRow], int, int, int]:
    """Rows for `jobs` in order: each distinct key once, from the cache where it is there, else evaluated on
    the engine. Returns (rows, computed, cached, duplicates)."""
    cache = Cache(spec.cache)
    first: dict[str, Job] = {}
    for job in jobs:
        first.setdefault(job.key, job)
    by_key: dict[str, SweepRow] = {}
    for key, job in first.items():
        hit = cache.get(job)
        if hit is not None:
            by_key[key] = hit
    todo = [job for key, job in first.items() if key not in by_key]
    cached = len(by_key)
    engine = make_engine(spec.engine, spec.address, spec.workers, worker_bytes(spec))
    for row in engine.map(evaluate_fn, todo):
        cache.put(row)
        by_key[row.key] = row
        if progress:
            progress(1)
    rows = []
    for job in jobs:
        row = by_key[job.key]
        rows.append(row if row.variant == job.variant else
                    row.model_copy(update={"variant": job.variant, "params": dict(job.params), "config": job.config}))
    return rows, len(todo), cached, len(jobs) - len(first)


def sweep(spec: SweepSpec, out: Path | None = None, write: bool = True,
          progress: Callable[[int], None] | None = None) -> SweepResult:
    """Plan, run and (unless `write` is False) write sweep.csv, sweep.json and sweep.png into `out` (default
    reports/sweep-<program>-<key>), staged and put in place together like a run's artefacts."""
    start = time.perf_counter()
    jobs = plan(spec)
    if not write:
        rows, computed, cached, duplicates = run_jobs(jobs, spec, progress=progress)
        return SweepResult(rows, None, computed, cached, duplicates, time.perf_counter() - start)
    ident = hashlib.sha256(repr(sorted(j.key for j in jobs)).encode()).hexdigest()[:8]
    out = out or Path("reports") / artefacts.safe_component(f"sweep-{spec.program.stem}-{ident}")
    inputs = [spec.program, *(resolve_config_path(c) for c in spec.configs)]
    with artefacts.OutputDir(out, inputs, protected_places()) as target:
        rows, computed, cached, duplicates = run_jobs(jobs, spec, progress=progress)
        meta = {"program": str(spec.program), "preset": spec.preset, "overrides": spec.overrides,
                "grid": spec.grid, "configs": spec.configs, "numerics": spec.numerics, "seed": spec.seed,
                "sample": spec.sample, "variants": len(jobs)}
        names = ", ".join(spec.grid) or "configs"
        title = (f"{spec.program.name}: {len(rows)} variants over {names}"
                 + (f" (preset {spec.preset})" if spec.preset else "") + (", timing-only" if not spec.numerics else ""))
        with target.writing() as stage:
            write_sweep_figure(stage / "sweep.png", rows, title)
            write_sweep(stage, rows, meta)
        target.commit("sweep.json")
    return SweepResult(rows, target.shown, computed, cached, duplicates, time.perf_counter() - start)
