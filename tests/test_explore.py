"""Sweeps and tuning: each variant's numbers are those of the same run made directly, infeasible variants say
why, identical variants and reruns are not recomputed, the local pool, one process and Ray give the same
rows, the search is reproducible and its best is the best of its trials; the notebook API."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

import npusim
from npusim.cli import main
from npusim.explore.sweep import SweepSpec, sweep
from npusim.explore.tune import TuneSpec, tune
from npusim.output.sweep import TIMING_COLUMNS, best_rows, sweep_csv
from npusim.runner import RunOptions, run

from .conftest import PROGRAMS

QWEN = PROGRAMS / "qwen3_decode.yaml"


def spec(tmp_path: Path, **kw) -> SweepSpec:
    base = dict(program=QWEN, grid={"SEQ_TILE": [32, 64, 512]}, configs=["ascend910b"], preset="tiny",
                workers=1, cache=tmp_path / "cache")
    base.update(kw)
    return SweepSpec(**base)  # type: ignore[arg-type]


def reproducible(text: str) -> list[dict[str, str]]:
    """sweep.csv without its timing columns."""
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(io.StringIO(text))]


def test_a_sweep_row_is_the_direct_run_and_infeasible_variants_say_why(tmp_path: Path) -> None:
    result = sweep(spec(tmp_path), tmp_path / "out")
    assert [r.params for r in result.rows] == [{"SEQ_TILE": 32}, {"SEQ_TILE": 64}, {"SEQ_TILE": 512}]
    for row in result.rows[:2]:
        direct = run(RunOptions(program=QWEN, preset="tiny", overrides=row.params, numerics=False, plot=False,
                                trace=False, quiet=True)).report
        assert row.status == "ok" and row.total_us == direct.total.us and row.tasks == direct.total.tasks
        assert row.scopes_us == {s.name: s.us for s in direct.scopes}
        slowest = max((s for s in direct.scopes if "/" not in s.name), key=lambda s: s.us)
        assert (row.slowest_scope, row.bound_by) == (slowest.name, slowest.bound_by)
    bad = result.rows[2]  # a 512-row window of a 256-position cache
    assert bad.status == "infeasible" and "qwen3_decode.yaml:" in bad.reason and "outside k_cache" in bad.reason
    assert best_rows(result.rows)["ascend910b"] is min(result.rows[:2], key=lambda r: r.total_us)
    for name in ("sweep.csv", "sweep.json", "sweep.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    saved = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert saved["grid"] == {"SEQ_TILE": [32, 64, 512]} and len(saved["rows"]) == 3


def test_reruns_and_identical_variants_are_not_recomputed(tmp_path: Path) -> None:
    first = sweep(spec(tmp_path, configs=["ascend910b", "ascend910b"]), write=False)
    assert (first.computed, first.duplicates, first.cached) == (3, 3, 0)
    assert [r.variant for r in first.rows] == list(range(6))
    again = sweep(spec(tmp_path, grid={"SEQ_TILE": [32, 64, 512, 128]}), write=False)
    assert (again.computed, again.cached) == (1, 3)  # only the new value runs
    assert reproducible(sweep_csv(again.rows[:3])) == reproducible(sweep_csv(first.rows[:3]))


def test_engines_give_the_same_rows(tmp_path: Path) -> None:
    """One process, the local pool of two and a local Ray instance: the same CSV but for wall times."""
    grid = {"SEQ_TILE": [32, 64], "K_CHUNK": [64, 128]}
    one = sweep(spec(tmp_path, grid=grid, cache=None, workers=1), write=False)
    pool = sweep(spec(tmp_path, grid=grid, cache=None, workers=2), write=False)
    ray = sweep(spec(tmp_path, grid=grid, cache=None, engine="ray"), write=False)
    assert reproducible(sweep_csv(one.rows)) == reproducible(sweep_csv(pool.rows)) == reproducible(sweep_csv(ray.rows))
    assert one.computed == pool.computed == ray.computed == 4


def test_tune_finds_the_best_of_its_trials_reproducibly(tmp_path: Path) -> None:
    ts = TuneSpec(QWEN, {"SEQ_TILE": [32, 64, 128, 256], "K_CHUNK": None}, "ascend910b", preset="tiny", trials=8,
                  seed=3, batch=4, workers=1, cache=tmp_path / "cache")
    first = tune(ts, tmp_path / "t1")
    second = tune(ts, tmp_path / "t2")
    assert [r.params for r in first.trials] == [r.params for r in second.trials]  # the same search
    assert first.search_space["K_CHUNK"] == [16, 32, 64, 128, 256, 512, 1024]  # 128 times 2**-3 .. 2**3
    feasible = [r for r in first.trials if r.status == "ok"]
    assert first.best.total_us == min(r.total_us for r in [first.default, *feasible])
    assert first.default.params == {"SEQ_TILE": 64, "K_CHUNK": 128}
    assert first.gain_pct == pytest.approx(100 * (first.default.total_us - first.best.total_us)
                                           / first.default.total_us)
    assert json.loads((tmp_path / "t1" / "tune.json").read_text())["best"]["params"] == first.best.params


def test_the_notebook_api(tmp_path: Path) -> None:
    report = npusim.run(PROGRAMS / "softmax.yaml", preset="tiny")
    assert report.check is not None and report.check.passed and report.total.tasks > 0
    frame = npusim.sweep(QWEN, {"SEQ_TILE": [32, 64]}, preset="tiny", workers=1, cache=tmp_path / "cache")
    direct = sweep(spec(tmp_path, grid={"SEQ_TILE": [32, 64]}), write=False)
    assert list(frame["SEQ_TILE"]) == [32, 64]
    assert list(frame["total_us"]) == [pytest.approx(r.total_us) for r in direct.rows]


@pytest.mark.parametrize(("args", "message"), [
    (["--grid", "SEQ_TILES=32,64"], "--grid SEQ_TILES: no such param (did you mean 'SEQ_TILE'?)"),
    (["--grid", "SEQ_TILE"], "--grid expects NAME=V1,V2,..., got 'SEQ_TILE'"),
    (["--grid", "SEQ_TILE=32,x"], "--grid SEQ_TILE: 'x' is not a number"),
    (["--grid", "SEQ_TILE=32", "--address", "1.2.3.4:6379"], "--address is for --engine ray"),
    (["--grid", "SEQ_TILE=32", "--set", "SEQ_TILE=64"], "--grid SEQ_TILE: also given with --set"),
])
def test_bad_sweep_options_are_one_line(cli, tmp_path: Path, args: list[str], message: str) -> None:
    result = cli.invoke(main, ["sweep", str(QWEN), "--preset", "tiny", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"error: {message}" or result.stderr.strip().startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
