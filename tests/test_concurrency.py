"""Runs into one output directory, and signals: a second run into a locked directory is refused; two runs
racing into one --out leave one run's complete set, never a mix; a reader sees the old set or the new one;
SIGTERM is handled like Ctrl-C (old set intact, nothing left behind, exit 143); Ctrl-C after the report is in
place says so."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from npusim.cli import main
from npusim.output import artefacts

from .conftest import PROGRAMS, REPO
from .test_reliability import fails

RUN = [sys.executable, "-m", "npusim", "run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics",
       "-q"]
VARIANTS = {"A": [], "B": ["--set", "N_CHUNK=32"]}  # two runs with different artefacts (B has twice the tasks)


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture(scope="module")
def expected_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Each variant's complete set of artefacts, from a run alone."""
    sets = {}
    for name, extra in VARIANTS.items():
        out = tmp_path_factory.mktemp(name) / "out"
        subprocess.run([*RUN, *extra, "--out", str(out)], check=True, env=env())
        sets[name] = digest(out)
    assert sets["A"] != sets["B"] and set(sets["A"]) == set(sets["B"])
    assert {"report.json", "timeline.png", "utilisation.png", "trace.json", "kernels.csv"} <= set(sets["A"])
    return sets


def test_a_second_run_into_a_locked_directory_is_refused(cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with artefacts.OutputDir(out, [], []):
        result = cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics", "-q",
                                   "--out", str(out)])
        assert result.exit_code == 2
        assert result.stderr.strip() == (f"error: --out {out}: another npusim run is writing into it; wait for it to "
                                         "finish or choose another --out")
    result = cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics", "-q",
                               "--out", str(out)])
    assert result.exit_code == 0, result.stderr


def test_two_runs_racing_into_one_out_leave_one_complete_set(tmp_path: Path,
                                                             expected_sets: dict[str, dict[str, str]]) -> None:
    """20 tries of A and B started together into one --out: the directory always holds exactly A's or B's
    set; a run that finds the directory locked is refused with exit 2; nothing is left beside it."""
    outcomes = []
    for i in range(20):
        out = tmp_path / f"race{i}" / "out"
        procs = {name: subprocess.Popen([*RUN, *extra, "--out", str(out)], env=env(), stderr=subprocess.PIPE,
                                        text=True) for name, extra in VARIANTS.items()}
        results = {name: (p.wait(timeout=120), p.stderr.read() if p.stderr else "") for name, p in procs.items()}
        for proc in procs.values():
            if proc.stderr:
                proc.stderr.close()
        final = digest(out)
        assert final in (expected_sets["A"], expected_sets["B"]), (i, results, final)
        winner = "A" if final == expected_sets["A"] else "B"
        assert results[winner][0] == 0, results
        loser = "B" if winner == "A" else "A"
        assert results[loser][0] in (0, 2), results
        if results[loser][0] == 2:
            assert "another npusim run is writing into it" in results[loser][1]
        assert not [p.name for p in out.parent.iterdir() if p.name != "out"], "a staging directory was left"
        outcomes.append((winner, results[loser][0]))
    print(f"\n20 races: final set {[w for w, _ in outcomes]}, the other run's exit {[c for _, c in outcomes]}")


def test_a_reader_sees_the_old_set_or_the_new_one(tmp_path: Path) -> None:
    """While runs rewrite the directory, a reader that opens it and reads report.json and trace.json through
    that one handle always finds the two of one run (the trace's end cycle is the report's), or finds the old
    set being removed after a newer one took its place (a file gone: it reads again)."""
    out = tmp_path / "out"
    subprocess.run([*RUN, "--no-plot", "--out", str(out)], check=True, env=env())
    stop = threading.Event()
    seen: list[tuple[float, float]] = []

    def read() -> None:
        while not stop.is_set():
            fd = os.open(out, os.O_RDONLY)
            try:
                def load(name: str, fd: int = fd) -> dict:
                    f = os.open(name, os.O_RDONLY, dir_fd=fd)
                    with os.fdopen(f) as fh:
                        return json.load(fh)

                report, trace = load("report.json"), load("trace.json")
            except FileNotFoundError:
                continue
            finally:
                os.close(fd)
            seen.append((report["total"]["end_cycle"], trace["otherData"]["cycles"]))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for extra in (VARIANTS["B"], VARIANTS["A"], VARIANTS["B"], VARIANTS["A"]):
            subprocess.run([*RUN, *extra, "--no-plot", "--out", str(out)], check=True, env=env())
    finally:
        stop.set()
        reader.join()
    assert seen and all(a == b for a, b in seen), [s for s in seen if s[0] != s[1]][:3]
    assert len({a for a, _ in seen}) == 2  # both runs' sets were seen


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    """SIGTERM mid-run: exit 143 and one line, the old set untouched, no temporary or staging files."""
    out = tmp_path / "out"
    subprocess.run([*RUN, "--out", str(out)], check=True, env=env())
    before = digest(out)
    # the default layer with numerics (tens of seconds; a timing-only run can end within the 2 s)
    proc = subprocess.Popen([sys.executable, "-m", "npusim", "run", str(PROGRAMS / "qwen3_decode.yaml"), "-q",
                             "--out", str(out)], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip() == "terminated: no report written"
    assert digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_ctrl_c_after_the_report_is_in_place_says_so(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = artefacts.OutputDir.commit

    def commit_then_interrupt(self: artefacts.OutputDir, main_file: str) -> None:
        real(self, main_file)
        raise KeyboardInterrupt

    monkeypatch.setattr(artefacts.OutputDir, "commit", commit_then_interrupt)
    out = tmp_path / "out"
    result = cli.invoke(main, ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics", "-q",
                               "--out", str(out)])
    assert result.exit_code == 130
    assert result.stderr.strip() == f"interrupted after the report was written: {out / 'report.json'}"
    assert (out / "report.json").exists()


def test_ctrl_c_before_the_commit_leaves_the_old_set(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    args = ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics", "-q", "--out", str(out)]
    assert cli.invoke(main, args).exit_code == 0
    before = digest(out)

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("npusim.output.trace.write_trace", interrupt)
    result = cli.invoke(main, [*args, "--set", "N_CHUNK=32"])
    assert result.exit_code == 130 and result.stderr.strip() == "interrupted: no report written"
    assert digest(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- the reference beside the interpreter ---------------------------------------------------------------------

def _values() -> dict:
    import ml_dtypes
    import numpy as np

    rng = np.random.default_rng(3)
    return {"c": rng.standard_normal((5, 7)), "cache": rng.standard_normal((9, 4)).astype(ml_dtypes.bfloat16),
            "empty": np.zeros((0, 3), dtype=np.float32), "t": rng.standard_normal((3, 4)).T, "scalar": np.array(2.5)}


def test_a_forked_reference_hands_back_its_arrays_bit_for_bit() -> None:
    """Every dtype, an empty array, a 0-d one and a non-contiguous one come back from the child's memfd
    unchanged."""
    import numpy as np

    from npusim import beside

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    got = beside._Forked(_values, (), "the reference check's process").result()
    want = _values()
    assert list(got) == list(want)
    for name, value in want.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape
        assert np.array_equal(got[name].reshape(-1).view(np.uint8), value.reshape(-1).view(np.uint8)), name


def _located_failure() -> dict:
    from npusim.errors import Location, ProgramError

    raise ProgramError("reference r does not fit", Location("prog.yaml", 4, 12))


def test_a_forked_reference_raises_its_error_in_the_run() -> None:
    from npusim import beside
    from npusim.errors import ProgramError

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    with pytest.raises(ProgramError) as caught:
        beside._Forked(_located_failure, (), "the reference check's process").result()
    assert str(caught.value) == "prog.yaml:4:12: reference r does not fit"


def _killed() -> dict:
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def test_a_killed_reference_process_is_one_clear_error() -> None:
    """The OOM killer (here SIGKILL from the child itself) ends the child without a result."""
    from npusim import beside
    from npusim.errors import LimitError

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    with pytest.raises(LimitError, match=r"^the reference check's process was killed by SIGKILL before it finished "
                                         r"\(out of memory\?\)$"):
        beside._Forked(_killed, (), "the reference check's process").result()


def test_closing_a_forked_reference_ends_its_process() -> None:
    """An interrupted or failed run does not leave its reference computing."""
    from npusim import beside

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    pending = beside._Forked(time.sleep, (600,), "the reference check's process")
    pid = pending._pid
    pending.close()
    with pytest.raises(ChildProcessError):  # reaped: no longer our child
        os.waitpid(pid, os.WNOHANG)


def test_a_process_with_other_threads_computes_the_reference_on_a_thread() -> None:
    """Forking a process that runs other threads can deadlock the child."""
    from npusim import beside

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        pending = beside.beside(_values, what="the reference check's process")
        assert isinstance(pending, beside._Thread)
        assert list(pending.result()) == list(_values())
    finally:
        stop.set()
        other.join()
    if beside.sys.platform == "linux":
        assert isinstance(beside.beside(_values, what="the reference check's process"), beside._Forked)


# --- inputs drawn by the forked process -----------------------------------------------------------------------

def _drawn(fill_one):
    """A Drawn of three arrays (a 3x4 fp32, an empty one, a bf16 vector), filled by fill_one(name, out)."""
    import ml_dtypes
    import numpy as np

    from npusim import beside

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    layout = [("a", (3, 4), np.dtype(np.float32)), ("none", (0, 2), np.dtype(np.float32)),
              ("v", (7,), np.dtype(ml_dtypes.bfloat16))]
    return beside.Drawn(layout, fill_one, {})


def _slow_fill(name: str, out):
    time.sleep(0.3 if name == "a" else 0.0)  # the caller asks before the first array is drawn
    out[...] = _wanted(name)
    yield out.size


def _wanted(name: str):
    import ml_dtypes
    import numpy as np

    return {"a": np.arange(12, dtype=np.float32).reshape(3, 4) + 0.5, "none": np.zeros((0, 2), np.float32),
            "v": (np.arange(7) / 8).astype(ml_dtypes.bfloat16)}[name]


def _total(drawn: dict) -> dict:
    import numpy as np

    return {"sum": np.array(float(drawn["a"].sum()) + float(drawn["v"].astype(np.float32).sum()))}


def test_a_forked_process_draws_the_arrays_the_caller_waits_for_then_computes_on_them() -> None:
    """The caller's read-only views show each array once `wait` returns; the process computes on the same."""
    import numpy as np

    from npusim import beside

    drawn = _drawn(_slow_fill)
    pending = beside._Forked(_total, (drawn.arrays,), "the process drawing the inputs", drawn)
    drawn.wait("v")  # (announced after "a": waiting for it waits for "a" too)
    drawn.wait("a")
    for name in ("a", "none", "v"):
        assert np.array_equal(drawn.arrays[name], _wanted(name)) and not drawn.arrays[name].flags.writeable
    drawn.wait_all()
    assert float(pending.result()["sum"]) == 66 + 6 + sum(range(7)) / 8


def _sum_later(inputs: dict) -> dict:
    import numpy as np

    time.sleep(0.3)  # the caller has overwritten the shared array by now
    return {"sum": np.array(float(inputs["a"].sum()))}


def test_an_array_the_caller_changes_is_kept_as_drawn_for_the_forked_computation() -> None:
    """A `changed` array is writable for the caller, who overwrites it once announced; the process computes on
    its own copy of the drawn values. The others stay read-only."""
    import numpy as np

    from npusim import beside

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    inputs: dict = {}
    drawn = beside.Drawn([("a", (3, 4), np.dtype(np.float32)), ("v", (7,), np.dtype(np.float32))], _fill_ones,
                         inputs, changed=frozenset({"a"}))
    assert set(inputs) == {"a", "v"} and inputs["a"].flags.writeable and not inputs["v"].flags.writeable
    pending = beside._Forked(_sum_later, (inputs,), "the process drawing the inputs", drawn)
    drawn.wait("a")
    inputs["a"][...] = 0  # (the interpreter changing an inout in place)
    drawn.wait_all()
    assert float(pending.result()["sum"]) == 12.0


def _ones_b_late(name: str, out):
    time.sleep(0.3 if name == "b" else 0.0)  # the caller writes "a" before "b" is drawn
    out.fill(1)
    yield out.size


def test_an_array_drawn_after_one_the_caller_changes_arrives_whole() -> None:
    """The caller writes into a changed 12-byte array before the next 16-byte one is drawn: its copy-on-write copy
    of the page it wrote must not hold the next array's bytes (they would stay as they were then: zeros)."""
    import numpy as np

    from npusim import beside

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    inputs: dict = {}
    drawn = beside.Drawn([("a", (3,), np.dtype(np.float32)), ("b", (4,), np.dtype(np.float32))], _ones_b_late,
                         inputs, changed=frozenset({"a"}))
    pending = beside._Forked(_total_of_nothing, (), "the process drawing the inputs", drawn)
    drawn.wait("a")
    inputs["a"][0] = 5.0  # (the interpreter storing into an inout in place)
    drawn.wait_all()
    assert inputs["b"].tolist() == [1.0] * 4 and inputs["a"].tolist() == [5.0, 1.0, 1.0]
    assert pending.result() == {}


def _front_then_rest(go: int):
    def fill(name: str, out):
        import select

        out[:1500] = 1.0
        yield 1500  # 6000 bytes: one whole page (1024 fp32) is final
        select.select([go], [], [], 10.0)  # the rest once the caller has looked (or after 10 s)
        out[1500:] = 2.0
        yield out.size
    return fill


def test_the_front_of_an_array_arrives_before_the_rest_in_whole_pages() -> None:
    """A step of `fill` announces the first n elements, rounded down to whole pages (the caller may write those: its
    copy-on-write copy of a page must not miss values drawn later); `wait(name, n)` returns once they are
    there, saying whether all of the array is."""
    import numpy as np

    from npusim import beside

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    go_read, go_write = os.pipe()
    drawn = beside.Drawn([("a", (4096,), np.dtype(np.float32))], _front_then_rest(go_read), {})
    pending = beside._Forked(_total_of_nothing, (), "the process drawing the inputs", drawn)
    assert drawn.wait("a", 1000) is False
    a = drawn.arrays["a"]
    assert drawn._arrived["a"] == 1024 and (a[:1024] == 1.0).all() and (a[1500:] == 0.0).all()
    os.write(go_write, b"go")
    assert drawn.wait("a", 1025) is True and (a[:1500] == 1.0).all() and (a[1500:] == 2.0).all()
    drawn.wait_all()
    assert pending.result() == {}
    os.close(go_read)
    os.close(go_write)


def _a_waits_for_go(go: int):
    def fill(name: str, out):
        import select

        half = out.size // 2
        out[:half] = 1.0
        yield half
        if name == "a":
            select.select([go], [], [], 10.0)  # a's second half once the caller has seen b's first (or 10 s)
        out[half:] = 2.0
        yield out.size
    return fill


def test_arrays_drawn_together_arrive_a_step_of_each_in_turn() -> None:
    """a and b with one `together` key: b's first step does not wait for the end of a (the caller has b's first
    half while a's second half is not drawn yet); c, in a group of its own, comes after both."""
    import numpy as np

    from npusim import beside

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    go_read, go_write = os.pipe()
    layout = [(n, (2048,), np.dtype(np.float32)) for n in ("a", "b", "c")]
    drawn = beside.Drawn(layout, _a_waits_for_go(go_read), {}, together=["kv", "kv", "c"])
    pending = beside._Forked(_total_of_nothing, (), "the process drawing the inputs", drawn)
    assert drawn.wait("b", 1024) is False
    assert drawn._arrived["a"] == 1024 and "c" not in drawn._arrived
    os.write(go_write, b"go")
    drawn.wait_all()
    assert [drawn.arrays[n][[0, -1]].tolist() for n in "abc"] == [[1.0, 2.0]] * 3
    assert pending.result() == {}
    os.close(go_read)
    os.close(go_write)


def test_a_window_waits_for_the_elements_up_to_its_last_in_the_memory_it_lives_in() -> None:
    """arrived(tensor, hi) asks for every element up to the window's last one in memory order; for a reshaped
    view, in its base's memory (worked by hand below); once all are there the tensor stops asking."""
    import numpy as np

    from npusim.interp.values import GMTensor, arrived

    asked: list[int | None] = []
    whole = [False]

    def arriving(n: int | None) -> bool:
        asked.append(n)
        return whole[0]

    data = np.zeros((4, 8), np.float32)
    base = GMTensor("b", (4, 8), "fp32", data, 0, arriving=arriving)
    # rows 2-3 of the base as a [2, 2, 4] view: its element 0 is the base's element 16
    view = GMTensor("v", (2, 2, 4), "fp32", data[2:].reshape(2, 2, 4), 0, base=base, base_offset=16,
                    arriving=arriving)
    arrived(base, (2, 5))  # the window [0:2, 0:5]: its last element is [1, 4] = 1 * 8 + 4
    arrived(view, (1, 2, 3))  # [0:1, 0:2, 0:3]: its last element [0, 1, 2] is the view's 6, the base's 22
    assert asked == [13, 23] and base.arriving is not None and view.arriving is not None
    whole[0] = True
    arrived(view, (1, 1, 1))
    arrived(view, (2, 2, 4))  # (not asked again)
    arrived(base)
    assert asked == [13, 23, 17, None] and view.arriving is None and base.arriving is None


def _whole_then_pause(name: str, out):
    out.fill(1)
    yield out.size  # a last step that fills it all...
    time.sleep(0.3)  # ...and the fill returns later: by then the caller has everything and stops reading


def test_an_array_whose_last_step_fills_it_is_announced_whole_once() -> None:
    """The caller stops reading announcements once it has every array: the drawing process must say an array is
    whole once, last, and not also at the step that filled it (its second announcement would meet a closed pipe,
    and the process fail with BrokenPipeError)."""
    import numpy as np

    from npusim import beside

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    drawn = beside.Drawn([("p", (1024,), np.dtype(np.float32))], _whole_then_pause, {})
    pending = beside._Forked(_total_of_nothing, (), "the process drawing the inputs", drawn)
    drawn.wait_all()
    assert pending.result() == {} and (drawn.arrays["p"] == 1.0).all()


def _fill_ones(name: str, out):
    out.fill(1)
    yield out.size


def test_a_drawn_layout_of_nothing_but_empty_arrays_draws() -> None:
    """No bytes at all to share (no size-0 mapping): the empty arrays still arrive, and can be filled."""
    import numpy as np

    from npusim import beside

    if beside.sys.platform != "linux":
        pytest.skip("the forked reference is Linux's")
    drawn = beside.Drawn([("z", (0, 4), np.dtype(np.float32))], _fill_ones, {})
    pending = beside._Forked(_total_of_nothing, (), "the process drawing the inputs", drawn)
    drawn.wait_all()
    assert pending.result() == {} and drawn.arrays["z"].shape == (0, 4)


def _total_of_nothing() -> dict:
    return {}


def _failing_fill(name: str, out):
    from npusim.errors import Location, ProgramError

    if name == "none":
        raise ProgramError("tensor none: init out of range", Location("prog.yaml", 9, 3))
    out[...] = _wanted(name)
    yield out.size


def test_an_error_while_drawing_is_raised_where_the_caller_waits() -> None:
    from npusim import beside
    from npusim.errors import ProgramError

    drawn = _drawn(_failing_fill)
    beside._Forked(_total, (drawn.arrays,), "the process drawing the inputs", drawn)
    drawn.wait("a")
    with pytest.raises(ProgramError) as caught:
        drawn.wait("v")
    assert str(caught.value) == "prog.yaml:9:3: tensor none: init out of range"


def test_inputs_that_do_not_fit_in_memory_are_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from npusim import beside
    from npusim.errors import LimitError

    def no_room(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(beside.os, "posix_fallocate", no_room)
    drawn = _drawn(_slow_fill)
    beside._Forked(_total, (drawn.arrays,), "the process drawing the inputs", drawn)
    with pytest.raises(LimitError, match=r"^the inputs' 0 MB do not fit in memory$"):
        drawn.wait("a")


def _killing_fill(name: str, out):
    if name == "v":
        os.kill(os.getpid(), signal.SIGKILL)
    out[...] = _wanted(name)
    yield out.size


def test_a_drawing_process_killed_midway_is_one_clear_error() -> None:
    from npusim import beside
    from npusim.errors import LimitError

    drawn = _drawn(_killing_fill)
    beside._Forked(_total, (drawn.arrays,), "the process drawing the inputs", drawn)
    drawn.wait("none")
    with pytest.raises(LimitError, match=r"^the process drawing the inputs was killed by SIGKILL before it finished"):
        drawn.wait("v")


def test_a_reference_that_fails_in_its_process_is_a_located_error(cli, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's check: the reference's error crosses from its process as one located line, exit 2."""
    from npusim.references import REFERENCES

    def broken(inputs: dict, consts: dict) -> dict:
        raise ValueError("operands could not be broadcast")

    monkeypatch.setitem(REFERENCES, "matmul", dataclasses.replace(REFERENCES["matmul"], compute=broken))
    program = PROGRAMS / "matmul.yaml"
    line_no = next(i for i, text in enumerate(program.read_text().splitlines(), 1) if text.startswith("reference:"))
    fails(cli.invoke(main, ["run", str(program), "--preset", "tiny", "-q", "--no-plot", "--no-trace", "--out",
                            str(tmp_path / "o")]),
          "^" + re.escape(f"error: {program}:{line_no}:") + r"\d+: reference matmul does not fit this program's "
          "tensors: ValueError: 'operands could not be broadcast'$")
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())  # no report, no artefact


# --- the dependencies found in a forked process ---------------------------------------------------------------

def _timing_run(monkeypatch: pytest.MonkeyPatch, fork_from: int):
    """A timing-only run of the tiny layer (139 tasks) that forks for its dependencies from `fork_from` tasks
    up, and how many times it took them from a forked process."""
    from npusim import runner

    taken: list[int] = []
    real = runner.waits_of

    def spy(finding):  # type: ignore[no-untyped-def]
        taken.append(1)
        return real(finding)

    monkeypatch.setattr(runner, "FORK_DEPENDENCIES_FROM", fork_from)
    monkeypatch.setattr(runner, "waits_of", spy)
    result = runner.run(runner.RunOptions(program=PROGRAMS / "qwen3_decode.yaml", preset="tiny", numerics=False,
                                          quiet=True, plot=False, trace=False))
    return result, len(taken)


def test_dependencies_found_in_a_forked_process_are_those_found_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same waits (tasks that wait for none and for many among them), so the same timeline."""
    from npusim import runner
    from npusim.graph import dependencies

    if not runner.can_fork():
        pytest.skip("the dependencies are found beside only by a forked process")
    forked, taken = _timing_run(monkeypatch, fork_from=1)
    inline, not_taken = _timing_run(monkeypatch, fork_from=10**9)
    assert (taken, not_taken) == (1, 0)
    assert forked.timeline.deps == inline.timeline.deps == dependencies(inline.execution.tasks)
    assert {len(w) for w in forked.timeline.deps} >= {0, 1} and max(map(len, forked.timeline.deps)) > 8
    assert [(r.start, r.end) for r in forked.timeline.runs] == [(r.start, r.end) for r in inline.timeline.runs]
    assert forked.report.model_dump() == inline.report.model_dump()


def test_a_run_that_fails_while_its_dependencies_are_found_leaves_no_process_or_descriptor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep's or a notebook's process runs on after a failed variant: the forked process is ended and
    reaped, its memfd and pipe closed."""
    from npusim import runner
    from npusim.errors import NpusimError
    from npusim.timing import chip

    if not runner.can_fork():
        pytest.skip("the dependencies are found beside only by a forked process")
    forks: list[int] = []
    real_fork = os.fork

    def counted_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    def failing(*args, **kw):  # type: ignore[no-untyped-def]
        raise NpusimError("a schedule that cannot be made")

    monkeypatch.setattr(chip, "schedules_of", failing)
    monkeypatch.setattr(os, "fork", counted_fork)
    descriptors = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(NpusimError, match=r"^a schedule that cannot be made$"):
        _timing_run(monkeypatch, fork_from=1)
    assert len(forks) == 1
    with pytest.raises(ChildProcessError):  # reaped: no longer our child
        os.waitpid(forks[0], os.WNOHANG)
    assert sorted(os.listdir("/proc/self/fd")) == descriptors
