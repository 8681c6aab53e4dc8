"""The bad-program corpus: every malformed program gives exactly one located line and exit status 2, no
traceback, and runs none of its text. Each case file states its expected location and message in its
first line (`# expect: LINE:COL: MESSAGE`), worked out by hand from the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from npusim.cli import main

from .conftest import REPO

CORPUS = sorted((REPO / "tests" / "bad_programs").glob("*.yaml"))
PWNED = Path("/tmp/npusim-pwned")


def expectation(path: Path) -> str:
    first = path.read_text().splitlines()[:1]
    if not first:
        return "1:1: file is empty"
    assert first[0].startswith("# expect: "), f"{path.name} has no expectation line"
    return first[0].removeprefix("# expect: ")


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 20


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_program_fails_with_one_located_line(cli, tmp_path: Path, path: Path, command: str) -> None:
    PWNED.unlink(missing_ok=True)
    args = [command, str(path)] + (["--out", str(tmp_path / "out"), "--quiet"] if command == "run" else [])
    result = cli.invoke(main, args)
    assert result.exit_code == 2, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"error: {path}:{expectation(path)}"
    assert "Traceback" not in result.output + result.stderr
    assert not PWNED.exists(), "the program's text was executed"
    assert not (tmp_path / "out" / "report.json").exists()


def test_binary_file(cli, tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    result = cli.invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {path}: program looks binary (contains NUL bytes), expected YAML text"


def test_not_utf8(cli, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    result = cli.invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {path}:1: program is not valid UTF-8 text (byte 9)"


def test_missing_file(cli, tmp_path: Path) -> None:
    result = cli.invoke(main, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read program" in result.stderr


def test_real_process_exit_status_and_stderr() -> None:
    """The installed entry point, not just the click runner: exit 2, one line on stderr, nothing on stdout."""
    path = REPO / "tests" / "bad_programs" / "06_shape_mismatch.yaml"
    proc = subprocess.run([sys.executable, "-m", "npusim.cli", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip() == f"error: {path}:{expectation(path)}"
