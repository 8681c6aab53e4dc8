"""`npusim tune`: search the legal values of some params for the lowest total latency with optuna's TPE
sampler (seeded, trials asked and told in fixed-size rounds so the search is reproducible on any machine),
each trial a sweep variant (timing-only, cached, run on the chosen engine); infeasible trials (a failed
requirement, a buffer overflow) are pruned. It reports the best tiling, its gain over the program's
defaults, and why: the scope that gained most and what bounds it before and after."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from npusim.errors import NpusimError, did_you_mean
from npusim.output import artefacts
from npusim.output.artefacts import write_json
from npusim.output.sweep import SweepRow
from npusim.runner import RunOptions, load, protected_places
from npusim.timing import load_config, resolve_config_path
from npusim.timing.hardware import config_sha256

from .engines import EngineName
from .sweep import DEFAULT_CACHE, SweepSpec, run_jobs
from .variants import Job, Number, job_key, parse_grid, program_digest

# Without explicit values, a param is tried at its default times 2**k for k in this range (tile sizes and
# chunks are powers of two in practice); requirements and buffer capacity then rule values out.
AUTO_OCTAVES = range(-3, 4)


@dataclass
class TuneSpec:
    program: Path
    params: dict[str, list[Number] | None]  # NAME: values to try, or None for the automatic set
    config: str
    preset: str | None = None
    overrides: dict[str, Number] = field(default_factory=dict)
    trials: int = 30
    seed: int = 0
    batch: int = 4  # trials asked per round (a fixed size: the same search on any number of cores)
    engine: EngineName = "local"
    address: str | None = None
    workers: int | None = None
    cache: Path | None = DEFAULT_CACHE


@dataclass
class TuneResult:
    best: SweepRow
    default: SweepRow
    trials: list[SweepRow]
    search_space: dict[str, list[Number]]
    gain_pct: float  # how much lower the best total latency is than the defaults'
    why: str
    out_dir: Path | None
    wall_s: float


def parse_params(items: list[str]) -> dict[str, list[Number] | None]:
    """`--param NAME` (automatic values) or `--param NAME=V1,V2,...`."""
    out: dict[str, list[Number] | None] = {}
    for item in items:
        name, sep, _ = item.partition("=")
        name = name.strip()
        if not name:
            raise NpusimError(f"--param expects NAME or NAME=V1,V2,..., got {item!r}")
        if sep:
            out[name] = parse_grid([item])[name]
        else:
            out[name] = None
    return out


def search_space(spec: TuneSpec, params: dict[str, Number]) -> dict[str, list[Number]]:
    space: dict[str, list[Number]] = {}
    for name, values in spec.params.items():
        if name not in params:
            raise NpusimError(f"--param {name}: no such param{did_you_mean(name, params)}; params: {', '.join(params)}")
        default = params[name]
        if values is None:
            if not isinstance(default, int) or default < 1:
                raise NpusimError(f"--param {name}: its default {default!r} is not a positive integer; give the "
                                  f"values to try as --param {name}=V1,V2,...")
            values = [default << k if k >= 0 else default >> -k for k in AUTO_OCTAVES
                      if k >= 0 or default % (1 << -k) == 0]
        space[name] = values
    return space


def _why(best: SweepRow, default: SweepRow) -> str:
    """The scope whose latency fell most, and what bounds it before and after."""
    if best.key == default.key:
        return "no tried tiling beats the defaults"
    deltas = {s: default.scopes_us[s] - best.scopes_us.get(s, 0.0) for s in default.scopes_us if "/" not in s}
    if not deltas:
        return ""
    scope = max(deltas, key=deltas.__getitem__)
    return (f"{scope} gains {deltas[scope]:.2f} µs ({default.scopes_us[scope]:.2f} -> {best.scopes_us[scope]:.2f}); "
            f"the slowest scope is {default.slowest_scope} (bound by {default.bound_by}) with the defaults, "
            f"{best.slowest_scope} (bound by {best.bound_by}) with the best tiling")


def tune(spec: TuneSpec, out: Path | None = None, progress: Callable[[int], None] | None = None) -> TuneResult:
    try:
        import optuna
    except ImportError:
        raise NpusimError("npusim tune needs optuna: pip install 'npusim[tune]'") from None
    start = time.perf_counter()
    program, _ = load(RunOptions(program=spec.program, config=spec.config, preset=spec.preset,
                                 overrides=dict(spec.overrides)))
    space = search_space(spec, program.params)
    program_sha, config_sha = program_digest(spec.program), config_sha256(load_config(spec.config))
    sweep_spec = SweepSpec(spec.program, {}, [spec.config], spec.preset, dict(spec.overrides), False, spec.seed,
                           engine=spec.engine, address=spec.address, workers=spec.workers, cache=spec.cache)

    def job(index: int, values: dict[str, Number]) -> Job:
        j = Job(index, spec.program, spec.preset, tuple(values.items()), tuple(spec.overrides.items()), spec.config,
                False, spec.seed)
        return dataclasses.replace(j, key=job_key(j, program_sha, config_sha))

    defaults = {name: program.params[name] for name in space}
    (default_row,), _, _, _ = run_jobs([job(0, defaults)], sweep_spec)
    if default_row.status != "ok":
        raise NpusimError(f"the program's defaults do not run: {default_row.reason}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=spec.seed, multivariate=True,
                                         n_startup_trials=min(10, max(2, spec.trials // 3)))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    distributions = {name: optuna.distributions.CategoricalDistribution(values) for name, values in space.items()}
    if all(defaults[name] in values for name, values in space.items()):  # what the defaults gave, as a first trial
        study.add_trial(optuna.trial.create_trial(params=defaults, distributions=distributions,
                                                  value=default_row.total_us))
    rows: list[SweepRow] = []
    while len(rows) < spec.trials:
        asked = [study.ask(distributions) for _ in range(min(spec.batch, spec.trials - len(rows)))]
        jobs = [job(len(rows) + i + 1, dict(t.params)) for i, t in enumerate(asked)]
        results, _, _, _ = run_jobs(jobs, sweep_spec, progress=progress)
        for trial, row in zip(asked, results, strict=True):
            if row.status == "ok":
                study.tell(trial, row.total_us)
            else:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        rows += results
    feasible = [r for r in rows if r.status == "ok"]
    best = min([default_row, *feasible], key=lambda r: (r.total_us, r.variant))
    gain = 100.0 * (default_row.total_us - best.total_us) / default_row.total_us  # type: ignore[operator]
    result = TuneResult(best, default_row, rows, space, gain, _why(best, default_row), None,
                        time.perf_counter() - start)
    ident = hashlib.sha256(repr((sorted(space.items()), default_row.key, spec.trials, spec.seed)).encode()
                           ).hexdigest()[:8]
    out = out or Path("reports") / artefacts.safe_component(f"tune-{spec.program.stem}-{ident}")
    with artefacts.OutputDir(out, [spec.program, resolve_config_path(spec.config)], protected_places()) as target:
        with target.writing() as stage:
            write_json(stage / "tune.json", {
                "program": str(spec.program), "config": spec.config, "preset": spec.preset,
                "overrides": spec.overrides, "search_space": space, "trials": spec.trials, "seed": spec.seed,
                "batch": spec.batch, "default": default_row.model_dump(mode="json"),
                "best": best.model_dump(mode="json"), "gain_pct": round(gain, 3), "why": result.why,
                "rows": [r.model_dump(mode="json") for r in rows],
            })
        target.commit("tune.json")
    result.out_dir = target.shown
    return result
