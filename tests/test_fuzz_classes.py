"""Fuzzing by class of hostile input (issue 16), one generator each, so the next bug of a class is found here:
config values at and just beyond their bounds (then a run on the config must end), special files as program
or config, path-like program and preset names (nothing may be written outside reports/), integers of up to
6000 digits wherever a number goes, and names defined only on branches or loops that do not run. Every case
ends with exit 0, or exit 2 and one `error:` line: never a traceback, an internal error or a hang (a SIGALRM
guard fails the example instead). NPUSIM_FUZZ_SCALE=N runs N times the examples."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from npusim.cli import main
from npusim.frontend.yaml_source import parse_yaml
from npusim.timing import CONFIG_DIR
from npusim.timing.hardware import HardwareConfig

from .conftest import PROGRAMS

RUNNER = CliRunner()
CONFIG_TEXT = (CONFIG_DIR / "ascend910b.yaml").read_text()
CONFIG = parse_yaml(CONFIG_TEXT, "cfg").data  # npusim's reading: 1.85e9 is a number, as in a config check
MATMUL = (PROGRAMS / "matmul.yaml").read_text()
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
SCALE = int(os.environ.get("NPUSIM_FUZZ_SCALE", "1"))  # more examples per generator, for a longer hunt


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block takes longer than `seconds`."""

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"no result after {seconds} s: a hang")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def clean(result: Any, context: Any) -> None:
    out = result.output + result.stderr
    assert not isinstance(result.exception, TimeoutError), context
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: {out}\n--- {context}"
    assert "Traceback" not in out and "internal error" not in out, f"{out}\n--- {context}"
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{result.stderr}\n--- {context}"


def invoke(args: list[str], seconds: int = 120) -> Any:
    with time_limit(seconds):
        return RUNNER.invoke(main, args)


# --- config values at their bounds ----------------------------------------------------------------------------

def _numeric_fields(model: type[BaseModel], prefix: tuple, data: Any) -> Iterator[tuple[tuple, Any]]:
    """(path, field info) of every number in the config data, with the pydantic field that checks it."""
    for name, info in model.model_fields.items():
        if name not in data:
            continue
        value, ann = data[name], info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _numeric_fields(ann, (*prefix, name), value)
        elif isinstance(value, dict):
            inner = get_args(ann)[1] if get_args(ann) else None
            for key, item in value.items():
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    yield from _numeric_fields(inner, (*prefix, name, key), item)
                elif isinstance(item, int | float):
                    yield (*prefix, name, key), inner
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield (*prefix, name), info


NUMERIC = list(_numeric_fields(HardwareConfig, (), CONFIG))


def _bounds(info: Any) -> list[float]:
    metadata = getattr(info, "metadata", None) or getattr(get_args(info)[1] if get_args(info) else None,
                                                          "metadata", [])
    if info is not None and not metadata and get_args(info):
        metadata = get_args(info)[1:]
    out = []
    for meta in metadata:
        for name in ("ge", "gt", "le", "lt"):
            bound = getattr(meta, name, None)
            if bound is not None:
                out.append(float(bound))
    return out


@st.composite
def config_at_bounds(draw: st.DrawFn) -> tuple[str, list]:
    """The 910B config with some of its numbers set at, just inside or just beyond a bound of their range (or
    to a value no range takes: NaN, infinity, a bool, a string)."""
    data = json.loads(json.dumps(CONFIG))
    changes = []
    for path, info in draw(st.lists(st.sampled_from(NUMERIC), min_size=1, max_size=6, unique_by=lambda p: p[0])):
        bounds = _bounds(info) or [0.0, 1e9]
        lo, hi = min(bounds), max(bounds)
        is_int = isinstance(_get(data, path), int)
        step = 1 if is_int else max(abs(hi) * 1e-9, 1e-12)
        inside = [lo, hi, lo + step, hi - step]  # at and just inside the range: must check and then run
        outside = [lo - step, hi + step, hi * 2, math.nan, math.inf, True, "24"]
        value = draw(st.sampled_from(inside) if draw(st.integers(0, 3)) else st.sampled_from(outside))
        if is_int and isinstance(value, float) and math.isfinite(value):
            value = int(value)
        _set(data, path, value)
        changes.append((path, value))
    return yaml.safe_dump(data, sort_keys=False), changes


def _get(data: Any, path: tuple) -> Any:
    for p in path:
        data = data[p]
    return data


def _set(data: Any, path: tuple, value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


@settings(max_examples=60 * SCALE, **SETTINGS)
@given(config_at_bounds())
def test_configs_at_their_bounds_check_and_run_cleanly(tmp_path_factory: pytest.TempPathFactory,
                                                       case: tuple[str, list]) -> None:
    text, changes = case
    tmp = tmp_path_factory.mktemp("bounds")
    path = tmp / "cfg.yaml"
    path.write_text(text)
    result = invoke(["config", "check", str(path)], 30)
    clean(result, changes)
    if result.exit_code == 0:  # a config check passes must run: no hang, no division by zero
        clean(invoke(["run", str(PROGRAMS / "qwen3_decode.yaml"), "--preset", "tiny", "--config", str(path),
                      "--no-numerics", "-q", "--no-plot", "--no-trace", "--out", str(tmp / "out")]), changes)


# --- special files ---------------------------------------------------------------------------------------------

def _special(kind: str, tmp: Path, suffix: str = ".yaml") -> Path:
    path = tmp / f"{kind}{suffix}"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind in ("dev_zero", "dev_null", "dev_urandom"):
        return Path("/dev") / kind.removeprefix("dev_")
    elif kind == "directory":
        path.mkdir()
    elif kind == "proc":
        return Path("/proc/self/status")
    elif kind == "symlink_to_fifo":
        os.mkfifo(tmp / "target")
        path.symlink_to(tmp / "target")
    elif kind == "dangling_symlink":
        path.symlink_to(tmp / "nowhere")
    elif kind == "symlink_loop":
        path.symlink_to(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    return path


SPECIAL = ["fifo", "dev_zero", "dev_null", "dev_urandom", "directory", "proc", "symlink_to_fifo",
           "dangling_symlink", "symlink_loop", "socket"]


@pytest.mark.parametrize("kind", SPECIAL)
@pytest.mark.parametrize("role", ["program", "config", "compare_b", "saved_report", "expect", "out"])
def test_special_files_fail_fast_and_cleanly(tmp_path: Path, kind: str, role: str) -> None:
    path = _special(kind, tmp_path, ".json" if role == "saved_report" else ".npz" if role == "expect" else ".yaml")
    if path.suffix != ".json" and role == "saved_report":  # /dev/..., /proc/...: a saved report by name only
        link = tmp_path / "report.json"
        link.symlink_to(path)
        path = link
    if role == "saved_report":
        args = ["compare", str(path), str(path), "-q", "--out", str(tmp_path / "out")]
    elif role == "expect":
        args = ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--expect", str(path), "-q", "--out",
                str(tmp_path / "out")]
    elif role == "out":
        if kind == "directory":  # an empty directory is a fine --out
            return
        args = ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--no-numerics", "-q", "--out", str(path)]
    elif role == "program":
        args = ["run", str(path), "-q", "--out", str(tmp_path / "out")]
    elif role == "config":
        args = ["run", str(PROGRAMS / "matmul.yaml"), "--preset", "tiny", "--config", str(path), "-q", "--out",
                str(tmp_path / "out")]
    else:
        args = ["compare", str(PROGRAMS / "matmul.yaml"), str(path), "--preset", "tiny", "-q", "--out",
                str(tmp_path / "out")]
    result = invoke(args, 20)
    clean(result, (kind, role))
    assert result.exit_code == 2 or (role, kind) == ("out", "dangling_symlink")  # that one is made at its target


# --- path-like names -----------------------------------------------------------------------------------------

PATHISH = st.lists(st.sampled_from(["/", ".", "..", "\\", "\x00", "\udc80", "\n", "~", "a", "-", " ", ":", "*", "é",
                                    "\u202e"]), min_size=1, max_size=12).map("".join) | st.sampled_from(
    ["..", ".", "/", "../../x", "/abs/x", "a/../../b", "x" * 300, "-rf", "~root", "CON", "a\x00b"])


def _quoted(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar, escapes included


@settings(max_examples=80 * SCALE, **SETTINGS)
@given(PATHISH, st.booleans())
def test_path_like_names_never_write_outside_reports(tmp_path_factory: pytest.TempPathFactory, name: str,
                                                     as_preset: bool) -> None:
    tmp = tmp_path_factory.mktemp("names")
    work = tmp / "work"
    work.mkdir()
    if as_preset:
        text = MATMUL.replace("tiny: {K: 512, N: 128}", f"tiny: {{K: 512, N: 128}}\n  {_quoted(name)}: {{K: 512}}")
    else:
        text = MATMUL.replace("name: matmul", f"name: {_quoted(name)}", 1)
    program = tmp / "p.yaml"
    program.write_text(text)
    preset = name if as_preset else "tiny"
    old = Path.cwd()
    os.chdir(work)
    try:
        result = invoke(["run", str(program), "--preset", preset, "--no-numerics", "-q", "--no-plot"], 60)
    finally:
        os.chdir(old)
    clean(result, repr(name))
    written = [p for p in tmp.rglob("*") if p != program and p.is_file()]
    for p in written:  # only reports/<one component>/<artefact>
        rel = p.relative_to(work)
        assert len(rel.parts) == 3 and rel.parts[0] == "reports", (repr(name), rel)


# --- huge integers ---------------------------------------------------------------------------------------------

HUGE = st.integers(19, 6000).flatmap(lambda n: st.sampled_from(["9" * n, "-" + "9" * n, str(2**63), str(-(2**63) - 1),
                                                                str(2**63 - 1), str(2**64)]))


@settings(max_examples=80 * SCALE, **SETTINGS)
@given(HUGE, st.sampled_from(["param", "set", "let", "shape", "loop", "loop_start", "offset", "init", "scalar",
                              "full", "require"]))
def test_huge_integers_anywhere_fail_cleanly(tmp_path_factory: pytest.TempPathFactory, value: str, where: str) -> None:
    tmp = tmp_path_factory.mktemp("huge")
    v = value
    head = "name: h\nparams:\n  P: 4\n"
    tensors = "tensors:\n  a: {shape: [16, 64], dtype: fp32, role: input, init: ones}\n"
    body = "body:\n  - x = 1\n"
    extra: list[str] = []
    if where == "param":
        head = f"name: h\nparams:\n  P: {v}\n"
    elif where == "set":
        extra = ["--set", f"P={v}"]
    elif where == "let":
        head += f"let:\n  L: \"P * {v[:900]}\"\n"
    elif where == "shape":
        tensors = f"tensors:\n  a: {{shape: [16, {v}], dtype: fp32, role: input, init: ones}}\n"
    elif where == "loop":
        body = f"body:\n  - for i in range({v[:900]}):\n    - x = i\n"
    elif where == "loop_start":
        body = f"body:\n  - for i in range({v[:900]}, {v[:900]} + 2):\n    - x = i * i\n"
    elif where == "offset":
        body = f"body:\n  - incore k:\n    - t = slice(a, [16, 64], [0, {v[:900]}])\n"
    elif where == "init":
        tensors = f"tensors:\n  a: {{shape: [16, 64], dtype: fp32, role: input, init: \"full({v[:900]})\"}}\n"
    elif where == "scalar":
        body = f"body:\n  - x = {v[:900]}\n  - y = x * x * x\n"
    elif where == "full":
        body = f"body:\n  - incore k:\n    - t = full([16, 64], fp32, {v[:900]})\n"
    else:
        head += f"require:\n  - \"P < {v[:900]} * {v[:900]}\"\n"
    path = tmp / "p.yaml"
    path.write_text(head + tensors + body)
    clean(invoke(["validate", str(path), *extra], 30), (where, len(v)))
    clean(invoke(["run", str(path), *extra, "-q", "--no-plot", "--no-trace", "--out", str(tmp / "o")], 60),
          (where, len(v)))


# --- names defined only on untaken branches ----------------------------------------------------------------------

DEFINITIONS = {  # (line defining the name, in a kernel?)
    "scalar": ("x = P + 1", False),
    "alias": ("x = a", False),
    "view": ("x = slice(a, [16, 64], [0, 0])", False),
    "tile": ("x = slice(a, [16, 64], [0, 0])", True),
    "full": ("x = full([16, 64], fp32, 1.0)", True),
}
USES = {  # (line using x, in a kernel?)
    "expression": ("y = x + 1", False),
    "range": ("for j in range(x):", False),
    "condition": ("if x > 0:", False),
    "read": ("y = read(x, [0, 0])", False),
    "op": ("y = exp(x)", True),
    "store": ("b = assemble(b, x, [0, 0])", True),
    "load": ("y = slice(x, [16, 64], [0, 0])", True),
    "assemble_into": ("b = assemble(x, t0, [0, 0])", True),
    "shape": ("y = full([x, 64], fp32, 1.0)", True),
    "alias_of": ("y = x", False),
}
GUARDS = ["if P > 100:", "if P < 0:", "for i in range(0):", "for i in range(P, 0):", "for i in range(P - P):"]


@settings(max_examples=120 * SCALE, **SETTINGS)
@given(st.sampled_from(sorted(DEFINITIONS)), st.sampled_from(sorted(USES)), st.sampled_from(GUARDS),
       st.booleans())
def test_names_defined_only_on_untaken_branches_fail_cleanly(tmp_path_factory: pytest.TempPathFactory, defined: str,
                                                             used: str, guard: str, numerics: bool) -> None:
    define, define_in_kernel = DEFINITIONS[defined]
    use, use_in_kernel = USES[used]
    lines = ["name: u", "params: {P: 4}", "tensors:",
             "  a: {shape: [16, 64], dtype: fp32, role: input, init: ones}",
             "  b: {shape: [16, 64], dtype: fp32, role: output}", "body:"]
    kernel = define_in_kernel or use_in_kernel
    pad = "    " if kernel else "  "
    if kernel:
        lines += ["  - incore k:", "    - t0 = slice(a, [16, 64], [0, 0])"]
    lines += [f"{pad}- {guard}", f"{pad}  - {define}"]
    lines.append(f"{pad}- {use}")
    if use.endswith(":"):
        lines.append(f"{pad}  - z = 1")
    tmp = tmp_path_factory.mktemp("undef")
    path = tmp / "p.yaml"
    path.write_text("\n".join(lines) + "\n")
    args = ["run", str(path), "-q", "--no-plot", "--no-trace", "--out", str(tmp / "o")]
    clean(invoke(["validate", str(path)], 30), path.read_text())
    clean(invoke([*args] if numerics else [*args, "--no-numerics"], 60), path.read_text())
