"""Fuzzing: mutate the shipped programs and configs (deleted keys, wrong types, swapped, huge, zero or
negative shapes, random unicode, deep nesting, truncated or shuffled text) and check that every case either
validates or fails with exit status 2 and one located message: never a traceback, never an internal error,
never a hang. Mutated programs go through `npusim validate`, which loads them, runs every loop body once
and prices every kernel against the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npusim.cli import main
from npusim.frontend.yaml_source import parse_yaml
from npusim.timing import CONFIG_DIR

from .conftest import PROGRAMS

PROGRAM_FILES = sorted(PROGRAMS.glob("*.yaml"))
CONFIG_FILES = sorted(CONFIG_DIR.glob("*.yaml"))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
RUNNER = CliRunner()

WRONG_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.sampled_from([0, -1, 10**12, 2**31, 10**18]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.lists(st.integers(-5, 5), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value in a YAML data tree."""
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


def _get(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


@st.composite
def mutated_yaml(draw: st.DrawFn, files: list[Path]) -> str:
    """The text of a shipped file with one random mutation."""
    text = draw(st.sampled_from(files)).read_text()
    kind = draw(st.sampled_from(["delete", "retype", "shape", "unicode", "nest", "truncate", "lines", "rename"]))
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "lines":
        lines = text.splitlines()
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        if draw(st.booleans()):
            del lines[draw(st.integers(0, len(lines) - 1))]
        return "\n".join(lines)
    data = parse_yaml(text, "fuzz").data  # as npusim reads it: 1.85e9 is a number (PyYAML's YAML 1.1: a string)
    paths = [p for p in _paths(data) if p]
    path = draw(st.sampled_from(paths))
    parent, key = _get(data, path[:-1]), path[-1]
    if kind == "delete":
        del parent[key]
    elif kind == "retype":
        parent[key] = draw(WRONG_VALUES)
    elif kind == "shape":
        shapes = [p for p in paths if p[-1] == "shape" or (len(p) > 1 and p[-2] == "shape")]
        target = draw(st.sampled_from(shapes or paths))
        holder, k = _get(data, target[:-1]), target[-1]
        value = holder[k]
        if isinstance(value, list) and len(value) > 1:
            holder[k] = list(reversed(value)) if draw(st.booleans()) else [*value, value[0]]
        else:
            holder[k] = draw(st.sampled_from([0, -4, 10**12, 10**18, 2.5, "max_seq * 10**9", "1 // 0"]))
    elif kind == "unicode":
        parent[key] = draw(st.text(min_size=1, max_size=30))
    elif kind == "nest":
        value = parent[key]
        for _ in range(draw(st.integers(1, 80))):
            value = [value]
        parent[key] = value
    elif kind == "rename" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(key)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)


def _assert_clean(result: Any, path: Path) -> None:
    output = result.output + result.stderr
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: {output}\n--- {path.read_text()[:2000]}"
    assert "Traceback" not in output and "internal error" not in output, output
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


@FUZZ
@given(mutated_yaml(PROGRAM_FILES))
def test_mutated_programs_validate_or_fail_cleanly(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "program.yaml"
    path.write_text(text)
    result = RUNNER.invoke(main, ["validate", str(path), "--preset", "tiny"])
    _assert_clean(result, path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated_yaml(CONFIG_FILES))
def test_mutated_configs_check_or_fail_cleanly(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_text(text)
    _assert_clean(RUNNER.invoke(main, ["config", "check", str(path)]), path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutated_yaml([PROGRAMS / "matmul.yaml", PROGRAMS / "softmax.yaml"]))
def test_mutated_programs_run_or_fail_cleanly(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    """A few full timing-only runs of mutated small programs: a run that starts either ends or fails cleanly."""
    tmp = tmp_path_factory.mktemp("fuzzrun")
    path = tmp / "program.yaml"
    path.write_text(text)
    result = RUNNER.invoke(main, ["run", str(path), "--preset", "tiny", "--no-numerics", "--no-plot", "--no-trace",
                                  "-q", "--out", str(tmp / "out"), "--max-loop-iterations", "200000"])
    _assert_clean(result, path)
    if result.exit_code == 2:
        assert not (tmp / "out" / "report.json").exists()
