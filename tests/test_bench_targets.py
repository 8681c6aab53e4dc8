"""The benchmark's reading of issue 17's targets (benchmarks/bench.py `verdicts`): each limit applied to
hand-made measurements just inside and just outside it. The benchmark measures; nothing here times anything."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench
    finally:
        sys.path.pop(0)
    return bench


def run(wall: float, rss: float = 100.0, process: float | None = None, system: float = 0.0) -> dict:
    return {"wall_s": wall, "peak_rss_mb": rss, "process_s": wall if process is None else process,
            "system_mb": system}


def layer(numerics: float, rss: float, numpy: float, gm: float, timing_process: float) -> dict:
    return {"numerics": run(numerics, rss), "timing": run(timing_process - 0.1, process=timing_process),
            "numpy": {"wall_s": numpy, "gm_mb": gm}}


def test_each_target_is_met_at_its_limit_and_missed_beyond_it(bench) -> None:
    # GM 1000 MB: memory limit 1.5 x 1000 + 500 = 2000 MB; numpy 4 s: 3x is 12 s, so 10 s binds the wall
    results = {"default": layer(10.0, 2000.0, 4.0, 1000.0, 1.0), "full_max_seq": layer(12.0, 2100.0, 3.0, 1000.0, 1.01)}
    starts = {"--help": {"wall_s": 0.3, "cpu_s": 0.3}, "validate matmul": {"wall_s": 0.31, "cpu_s": 0.3}}
    lines = bench.verdicts(results, starts, {"variants": 20, "wall_s": 24.0, "per_variant_s": 1.0})
    assert lines == [
        "met: default with numerics 10.00 s <= 10 s",
        "met: default with numerics 2.50x numpy <= 3x",
        "met: default with numerics 2000 MB <= 1.5 x 1000 + 500 = 2000 MB",
        "met: default timing-only with start-up 1.00 s <= 1 s",
        "NOT met: full_max_seq timing-only with start-up 1.01 s <= 1 s",
        "met: sweep of 100 variants 120 s <= 120 s",  # 24 s for 20 variants
        "met: npusim --help 0.300 s <= 0.3 s",
        "NOT met: npusim validate matmul 0.310 s <= 0.3 s",
    ]


def test_the_numpy_ratio_and_the_machines_memory_drop_count(bench) -> None:
    results = {"default": layer(9.0, 1500.0, 2.9, 1000.0, 0.5)}  # 9 / 2.9 = 3.10x
    results["default"]["numerics"]["system_mb"] = 2001.0  # the forked reference's memory: over 2000 MB
    lines = bench.verdicts(results, {}, None)
    assert lines[1:3] == ["NOT met: default with numerics 3.10x numpy <= 3x",
                          "NOT met: default with numerics 2001 MB <= 1.5 x 1000 + 500 = 2000 MB"]


def test_the_scaling_ends_against_the_line_through_their_neighbours(bench) -> None:
    # max_seq: 4096 -> 2 s, 8192 -> 3 s, so the line gives 5 s at 16384; batch: 16 -> 2 s, 32 -> 4 s, 8 s at 64
    def case(numerics: float, timing: float, rss: float) -> dict:
        return {"numerics": run(numerics, rss), "timing": run(timing), "numpy": {"wall_s": 1.0, "gm_mb": 1.0}}

    results = {"default": case(2.0, 1.0, 100.0), "max_seq=8192": case(3.0, 2.0, 200.0),
               "max_seq=16384": case(6.0, 3.6, 400.0), "batch=32": case(4.0, 2.0, 150.0),
               "batch=64": case(9.7, 2.0, 250.0)}
    scaling = [line for line in bench.verdicts(results, {}, None) if "its line" in line]
    assert scaling == [
        "met: max_seq=16384 numerics time 1.20x its line <= 1.2x",  # 6 / 5
        "met: max_seq=16384 timing time 0.90x its line <= 1.2x",  # 3.6 / 4
        "met: max_seq=16384 numerics memory 1.00x its line <= 1.2x",  # 400 / 400
        "NOT met: batch=64 numerics time 1.21x its line <= 1.2x",  # 9.7 / 8
        "met: batch=64 timing time 0.50x its line <= 1.2x",  # 2 / 4
        "met: batch=64 numerics memory 1.00x its line <= 1.2x",  # 250 / 250
    ]
