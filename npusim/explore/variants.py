"""What a sweep runs: variants of one program (values of some of its params, on one of several configs),
from a grid (the cartesian product) or a seeded random sample of it, and the content key each result is
cached under."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from npusim.errors import NpusimError, did_you_mean
from npusim.version import __version__

Number = int | float


@dataclass(frozen=True)
class Job:
    """Everything one variant's run depends on; small and picklable, for worker processes and Ray."""

    variant: int
    program: Path
    preset: str | None
    params: tuple[tuple[str, Number], ...]  # the swept params' values (besides the program's --set)
    overrides: tuple[tuple[str, Number], ...]  # --set values common to every variant
    config: str
    numerics: bool
    seed: int
    key: str = field(default="", compare=False)


def parse_grid(items: list[str]) -> dict[str, list[Number]]:
    """`--grid NAME=v1,v2,...` options to {NAME: [values]}."""
    grid: dict[str, list[Number]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name or not values.strip():
            raise NpusimError(f"--grid expects NAME=V1,V2,..., got {item!r}")
        if name in grid:
            raise NpusimError(f"--grid {name}: given twice")
        grid[name] = [_number(name, v.strip()) for v in values.split(",") if v.strip()]
    return grid


def _number(name: str, text: str) -> Number:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise NpusimError(f"--grid {name}: {text!r} is not a number") from None


def check_names(grid: dict[str, list[Number]], params: dict[str, Number]) -> None:
    """Every swept name must be a param of the program."""
    for name in grid:
        if name not in params:
            raise NpusimError(f"--grid {name}: no such param{did_you_mean(name, params)}; params: {', '.join(params)}")


def variants(grid: dict[str, list[Number]], configs: list[str], sample: int | None = None, seed: int = 0
             ) -> list[tuple[tuple[tuple[str, Number], ...], str]]:
    """(param values, config) of every variant: the cartesian product, configs outermost, or `sample` of them
    drawn without replacement by a generator seeded with `seed` (kept in product order)."""
    names = list(grid)
    points = [tuple(zip(names, values, strict=True)) for values in itertools.product(*grid.values())]
    everything = [(p, c) for c in configs for p in points]
    if sample is not None and sample < len(everything):
        chosen = sorted(random.Random(seed).sample(range(len(everything)), sample))
        everything = [everything[i] for i in chosen]
    return everything


def program_digest(program: Path) -> str:
    """sha256 of a program's source: the file, and for a PyPTO program the sibling modules it may read."""
    h = hashlib.sha256()
    files = [program]
    if program.suffix == ".py":
        files = sorted(p for p in program.parent.glob("*.py") if p.is_file())
    for path in files:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def job_key(job: Job, program_sha: str, config_sha: str) -> str:
    """The content key of a variant's result: program source, preset, params, config values, numerics, seed
    and npusim version. Identical variants share it (computed once; cached on disk under it)."""
    ident = {"program": program_sha, "preset": job.preset, "params": sorted((*job.overrides, *job.params)),
             "config": config_sha, "numerics": job.numerics, "seed": job.seed, "npusim": __version__}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
