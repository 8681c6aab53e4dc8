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


def _parsed(text: str, file: str) -> object:
    """The YamlDoc's data and locations, or the located error, of one parse."""
    from npusim.errors import NpusimError
    from npusim.frontend.yaml_source import YamlLimits, parse_yaml

    try:
        doc = parse_yaml(text, file, YamlLimits(max_nodes=400))
    except NpusimError as exc:
        return str(exc)
    return doc.data, doc.locations, doc.key_locations


EXTRA_YAML = [
    "a: [1, 2, {b: 3}]\nc: &x 4\nd: *x\n",  # an alias
    "a: 1\n---\nb: 2\n",  # two documents
    "- 1e-6\n- 1.85e9\n- .5E+3\n- 0x1f\n- 'x'\n",  # YAML 1.2 floats, hex, quoted
    "a: \"\\x07\"\nb: caf\u00e9 \u00fc\n  c: 1\n",  # an escape, non-ASCII columns, then bad indentation
    "a: caf\u00e9\nb: [\u00fc\u00fc, 1, {c: \u00e9}]\n",  # columns after non-ASCII characters
    "k: \u0007\n",  # a control character PyYAML refuses
    "[" + ",".join(["1"] * 500) + "]\n",  # more nodes than the limit
    "a:\n\t- 1\n",  # a tab
]


YAML_FILES = [p for d in ("tests/bad_programs", "programs", "configs") for p in sorted((REPO / d).glob("*.yaml"))]


@pytest.mark.parametrize("case", [*YAML_FILES, *range(len(EXTRA_YAML))], ids=str)
def test_libyaml_composes_what_the_python_loader_does(case: Path | int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path (libyaml) gives the same data, locations and errors as PyYAML's own composer."""
    from npusim.frontend import yaml_source

    text = EXTRA_YAML[case] if isinstance(case, int) else case.read_text(errors="replace")
    fast = _parsed(text, "f.yaml")
    monkeypatch.setattr(yaml_source, "_fast_compose", lambda *_: None)
    assert fast == _parsed(text, "f.yaml")
