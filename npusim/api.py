"""The Python API, for notebooks and scripts: `npusim.run` returns the typed report of one run,
`npusim.sweep` a pandas DataFrame of a sweep (pandas is an optional extra: pip install 'npusim[pandas]')."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .explore.engines import EngineName
from .explore.sweep import DEFAULT_CACHE, SweepSpec
from .explore.sweep import sweep as run_sweep
from .output.report import Report
from .output.sweep import sweep_csv
from .runner import RunOptions
from .runner import run as run_once
from .timing import DEFAULT_CONFIG

Number = int | float


def run(program: str | Path, *, config: str = DEFAULT_CONFIG, preset: str | None = None,
        set: Mapping[str, Number] | None = None, seed: int = 0, numerics: bool = True,
        out: str | Path | None = None) -> Report:
    """Simulate one program; with `out`, also write its report, tables and figures there."""
    opts = RunOptions(program=Path(program), config=config, preset=preset, overrides=dict(set or {}), seed=seed,
                      numerics=numerics, out=Path(out) if out else None, plot=out is not None,
                      trace=out is not None, quiet=True)
    return run_once(opts).report


def sweep(program: str | Path, grid: Mapping[str, Iterable[Number]], *, configs: Iterable[str] = (DEFAULT_CONFIG,),
          preset: str | None = None, set: Mapping[str, Number] | None = None, numerics: bool = False,
          seed: int = 0, sample: int | None = None, engine: EngineName = "local", address: str | None = None,
          workers: int | None = None, cache: str | Path | None = DEFAULT_CACHE, out: str | Path | None = None
          ) -> Any:
    """A sweep as a pandas DataFrame, one row per variant (the columns of sweep.csv); with `out`, also
    sweep.csv, sweep.json and sweep.png there."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("npusim.sweep returns a pandas DataFrame: pip install 'npusim[pandas]'") from None
    spec = SweepSpec(Path(program), {k: list(v) for k, v in grid.items()}, list(configs), preset, dict(set or {}),
                     numerics, seed, sample, engine, address, workers, Path(cache) if cache else None)
    result = run_sweep(spec, Path(out) if out else None, write=out is not None)


    return pd.read_csv(io.StringIO(sweep_csv(result.rows)))
