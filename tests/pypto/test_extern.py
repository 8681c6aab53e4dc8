"""Hand-written kernels (`@pl.jit.extern`): an opaque task on the core its decorator names, whose footprint is
the views it is passed (reads and writes as annotated) and whose standalone length is its block's share of
those bytes at the config's HBM bandwidth, after the runtime's fixed time per task (docs/timing-model.md §6).
Every number below is worked from the program and configs/ascend910b.yaml by hand. A run with numerics stops
at the call: npusim cannot compute what C++ computes."""

from __future__ import annotations

from pathlib import Path

import pytest

from npusim.errors import ProgramError
from npusim.frontend import load_program
from npusim.timing import load_config

from .helpers import PROGRAMS, run_program, write
from .test_yaml_writer import same_program, written

EXTERN = PROGRAMS / "extern" / "extern.py"
HW = load_config("ascend910b")
BYTES_PER_CYCLE = 1.45e12 / 1.85e9  # hbm.read_bytes_per_s / clock_hz of configs/ascend910b.yaml
FIXED = 2.2 * 1.85e3  # the default runtime's exec_fixed_us, in cycles


def test_the_config_numbers_the_hand_work_uses() -> None:
    assert (HW.hbm.read_bytes_per_s, HW.clock_hz) == (1.45e12, 1.85e9)
    assert HW.active_runtime.exec_fixed_us == 2.2


def test_extern_tasks_are_opaque_labelled_and_priced_from_their_views(tmp_path: Path) -> None:
    result = run_program(EXTERN, tmp_path / "out", numerics=False)
    tasks, runs = result.execution.tasks, result.timeline.runs
    assert [(t.kernel, t.core, t.blocks, t.lanes, t.after) for t in tasks] == [
        ("plan (extern)", "aiv", 1, 1, ()), *[("attend (extern)", "mix", 8, 2, (0,))] * 8, ("widen", "aiv", 1, 1, ())]
    assert all(not t.ops for t in tasks[:9])
    # plan reads lens (16 int32 = 64 B) and writes meta (4096 B of UINT8), one block
    plan = runs[0].schedule
    assert (plan.extern_read_bytes, plan.extern_write_bytes, plan.gm_bytes) == (64, 4096, 4160)
    assert plan.cycles == pytest.approx(4160 / BYTES_PER_CYCLE)
    # it runs alone: exec = the runtime's fixed time + its bytes at the whole HBM bandwidth
    assert runs[0].end - runs[0].start == pytest.approx(FIXED + 4160 / BYTES_PER_CYCLE)
    # attend reads q (64 x 256 bf16 = 32768 B), kv (1024 x 256 bf16 = 524288), work (64 x 256 fp32 = 65536, an
    # InOut) and meta (4096); writes attn (32768) and work (65536); each of the 8 blocks moves an eighth
    reads, writes = (32768 + 524288 + 65536 + 4096) // 8, (32768 + 65536) // 8
    for r in runs[1:9]:
        assert (r.schedule.extern_read_bytes, r.schedule.extern_write_bytes) == (reads, writes) == (78336, 12288)
        assert r.schedule.cycles == pytest.approx((reads + writes) / BYTES_PER_CYCLE)
        assert len(r.cores) == 3  # a mixed kernel with dual AIV dispatch: an AIC and both AIVs of its cluster
    # footprints: attend waits for plan (meta) beyond its deps=; widen reads attn, which attend wrote
    deps = result.timeline.deps
    assert all(0 in deps[i] for i in range(1, 9)) and set(deps[9]) == set(range(1, 9))


def test_the_yaml_form_is_the_same_program(tmp_path: Path) -> None:
    yml = written(EXTERN, tmp_path)
    assert 'extern("attend", core="mix", lanes=2, reads=[q, kv, work, meta], writes=[attn, work])' in yml.read_text()
    same_program(load_program(EXTERN), load_program(yml))
    a = run_program(EXTERN, tmp_path / "py", numerics=False).timeline
    b = run_program(yml, tmp_path / "yml", numerics=False).timeline
    assert a.cycles == b.cycles


def test_a_run_with_numerics_stops_at_the_call(tmp_path: Path, cli) -> None:
    from npusim.cli import main

    with pytest.raises(ProgramError) as exc:
        run_program(EXTERN, tmp_path / "out", numerics=True)
    line = next(n for n, t in enumerate(EXTERN.read_text().split("\n"), 1) if "meta = plan(" in t)
    assert str(exc.value).startswith(f"{EXTERN}:{line}:16: plan is a hand-written kernel (@pl.jit.extern)")
    assert "run with --no-numerics" in str(exc.value)
    result = cli.invoke(main, ["run", str(EXTERN), "--no-plot", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 2 and "--no-numerics" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("old", "new", "message"), [
    ("        meta = plan(lens, meta, count)\n",
     "        meta = plan(lens, meta, count)\n        work = pl.create_tensor([ROWS, D], dtype=pl.FP32)\n",
     "a kernel that calls a hand-written kernel (plan) runs only that call"),
    ('core_type="aiv"', 'core_type="gpu"', "core_type is one of 'aiv', 'aic', 'mixed', got 'gpu'"),
    ("attn = attend(attn, q, kv, work, meta)", "attn = attend(attn, q[0:8, :], kv, work, meta)",
     "pass the tensor 'q' as a name"),
])
def test_misuse_is_one_located_error(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = EXTERN.read_text()
    assert old in text
    path = write(tmp_path / "", "bad.py", text.replace(old, new))
    with pytest.raises(ProgramError) as exc:
        run_program(path, tmp_path / "out", numerics=False)
    assert message in str(exc.value) and str(exc.value).startswith(f"{path}:")
    assert "\n" not in str(exc.value)
