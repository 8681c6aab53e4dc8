"""Hostile input: files that try to exhaust memory or time, or to run code, fail quickly with exit 2 and one
message, allocating nothing large; Ctrl-C leaves no report; inputs are never written."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from npusim.cli import main
from npusim.frontend import load_program
from npusim.frontend.inputs import initial_values
from npusim.interp import execute

from .conftest import PROGRAMS, REPO

BAD = REPO / "tests" / "bad_programs"


_BUILT = {
    "5000_deep_parentheses": "name: h\ntensors: {}\nbody:\n  - n = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
    "deep_yaml_nesting": "name: h\ntensors: {}\nbody: " + "[" * 5000 + "]" * 5000 + "\n",
    "long_string": "name: " + "x" * 20000 + "\ntensors: {}\nbody: []\n",
    "five_megabytes": "name: h\ntensors: {}\nbody: []\n" + "# padding\n" * 500_000,
    "many_values": "name: h\ntensors: {}\nbody: []\nextra: [" + ", ".join(["1"] * 250_000) + "]\n",
    "expression_injection": 'name: h\ntensors: {}\nbody:\n  - "n = __import__(\'os\').system(\'true\')"\n',
    "dunder_class": "name: h\ntensors: {}\nbody:\n  - n = ().__class__.__bases__[0].__subclasses__()\n",
}
_FROM_CORPUS = ("13_huge_tensor", "29_alias_bomb", "31_loop_too_long", "24_ub_overflow", "14_dunder_import",
                "15_attribute_access", "16_lambda", "18_empty", "30_python_tag")
HOSTILE = [*_BUILT, "binary", *_FROM_CORPUS]


def hostile_file(name: str, tmp: Path) -> Path:
    """A hostile program: built on the fly (too big or too odd to keep in the repository) or from the corpus."""
    if name in _FROM_CORPUS:
        return BAD / f"{name}.yaml"
    path = tmp / f"{name}.yaml"
    if name == "binary":
        path.write_bytes(bytes(range(256)) * 64)
    else:
        path.write_text(_BUILT[name])
    return path


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_programs_fail_fast_and_small(name: str, cli, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = hostile_file(name, tmp_path)
    tracemalloc.start()
    start = time.perf_counter()
    result = cli.invoke(main, ["run", str(path), "--out", str(tmp_path / "out"), "-q"])
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.exit_code == 2, (name, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), (name, result.stderr)
    assert "Traceback" not in result.stderr
    assert peak < 64 * 2**20, f"{name} allocated {peak} bytes"  # the 10^18-element tensor allocates nothing
    assert not (tmp_path / "out" / "report.json").exists()
    message = lines[0][len(f"error: {path}"):][:70]
    with capsys.disabled():
        print(f"\n{name:24s} {seconds * 1e3:8.1f} ms {peak / 2**20:7.2f} MiB  {message}", end="")


def test_ctrl_c_leaves_no_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # the default layer with numerics (tens of seconds; a timing-only run can end within the 1.5 s)
    # a job started in the background (`cmd &`, as CI runners may) inherits SIGINT ignored: give the run the
    # default disposition, so that Python turns Ctrl-C into KeyboardInterrupt as in a terminal
    proc = subprocess.Popen([sys.executable, "-m", "npusim", "run", str(PROGRAMS / "qwen3_decode.yaml"), "-q",
                             "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted: no report written"
    assert not (out / "report.json").exists()
    assert not [p for p in out.glob(".npusim-*")], "a temporary file was left behind"


def test_inputs_are_never_written(cli, tmp_path: Path) -> None:
    files = [PROGRAMS / "softmax.yaml", REPO / "configs" / "ascend910b.yaml"]
    before = {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files}
    assert cli.invoke(main, ["run", str(files[0]), "--preset", "tiny", "--out", str(tmp_path / "o"), "-q",
                             "--save-tensors"]).exit_code == 0
    assert before == {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in files}
    # the input arrays given to the interpreter keep their values; inout tensors are updated on copies
    program = load_program(PROGRAMS / "qwen3_decode.yaml", preset="tiny")
    inputs = initial_values(program, 0)
    snapshot = {n: a.copy() for n, a in inputs.items()}
    result = execute(program, inputs)
    assert all(np.array_equal(inputs[n].view(np.uint8), snapshot[n].view(np.uint8)) for n in inputs)
    assert not np.array_equal(result.tensors["k_cache"].data.view(np.uint8), snapshot["k_cache"].view(np.uint8))
