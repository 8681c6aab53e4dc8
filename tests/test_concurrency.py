"""Runs into one output directory, and signals: a second run into a locked directory is refused; two runs
racing into one --out leave one run's complete set, never a mix; a reader sees the old set or the new one;
SIGTERM is handled like Ctrl-C (old set intact, nothing left behind, exit 143); Ctrl-C after the report is in
place says so."""

from __future__ import annotations

import hashlib
import json
import os
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
