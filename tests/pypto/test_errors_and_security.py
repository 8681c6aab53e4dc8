"""Anything outside the supported subset is one located error naming the construct (exit status 2, one line),
never a skip; and a PyPTO file is never run: its module body, decorators and default arguments may call
os.system, open files or import modules, and none of it happens."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from npusim.cli import main
from npusim.errors import ProgramError
from npusim.frontend import load_program

from .helpers import write

TEMPLATE = '''
import pypto.language as pl
import torch

N = 16


def build():
    @pl.program
    class P:
        @pl.function
        def f(self, a: pl.Tensor[[N, N], pl.FP32], b: pl.Tensor[[N, N], pl.FP32], y: pl.Out[pl.Tensor[[N,N], pl.FP32]]):
            t = pl.create_tensor([N, N], dtype=pl.FP32)
            BODY
            return y
    return P


def build_tensor_specs():
    from pypto.runtime import TensorSpec
    return [TensorSpec("a", [N, N], torch.float32, init_value=torch.rand),
            TensorSpec("b", [N, N], torch.float32, init_value=torch.rand),
            TensorSpec("y", [N, N], torch.float32, is_output=True)]
'''

CASES = [
    ("with pl.incore():\n                y = pl.gather(a, b)", 14,
     "`pl.gather` is not supported yet (a gather/scatter op)"),
    ("with pl.incore():\n                y = pl.concat(a, b)", 14, "`pl.concat` is not supported yet"),
    ("for lane in pl.split_aiv(2, mode=pl.SplitMode.UP_DOWN):\n                pass", 13,
     "`pl.split_aiv` is not supported: explicit AIV-lane regions"),
    ("for i in pl.parallel(0, N, 1, chunk=4):\n                pass", 13,
     "chunk=... loops are only valid inside with pl.auto_incore() (PyPTO rejects this too)"),
    ("while N > 0:\n                pass", 13, "a `while` loop is not supported yet"),
    ("with pl.incore():\n                y = pl.matmul(a, b, c_matrix_nz=True)", 14,
     "`pl.matmul(c_matrix_nz=True)` is not supported yet"),
    ("with pl.incore():\n                y = pl.cast(a, target_type=pl.INT4)", 14,
     "dtype `pl.INT4` is not supported yet"),
    ("with pl.incore():\n                y = pl.sort32(a, b)", 14, "`pl.sort32` is not supported: a sorting op"),
    ("with pl.incore():\n                y = pl.assemble(y, a, [0, 0], atomic=pl.AtomicType.Max)", 14,
     "`atomic=pl.AtomicType.Max` is not supported yet (npusim models Add)"),
    ("y = pl.add(a, b)", 13, "`pl.add` outside a kernel: put it in `with pl.incore():`"),
    ("y = y", 13, None),
    ("N += 1", 13, "augmented assignment (`x += ...`) is not allowed in a PyPTO function"),
    ("assert N > 0", 13, "`assert` is not allowed in a PyPTO function body"),
    ("with pl.incore():\n                y = pl.frobnicate(a)", 14, "`pl.frobnicate` is not a PyPTO op npusim knows"),
    ("with pl.cluster():\n                pass", 13, "`pl.cluster` is not supported yet"),
    ("with pl.incore():\n                with pl.incore():\n                    pass", 14,
     "a kernel scope inside another kernel scope"),
    ("for i in range(4):\n                pass", 13, "a PyPTO loop iterates over pl.range, pl.parallel"),
    ("with pl.incore():\n                y = pl.add(pl.slice(a, [4, N], [0, 0]), b)", 14, "`pl.add`: shapes differ"),
    ("with pl.incore():\n                y = pl.add(a, c)", 14, "unknown name 'c'"),
    ("for i, (x,) in pl.range(4, init_values=(a,)):\n                pass", 13, "a tuple loop target is not supported"),
    ("y = pl.assemble(y, a, [0, 0])", 13, "of one GM tensor into another outside a kernel (a copy) is not supported"),
    ("with pl.incore():\n                y = pl.tile.load(a, [0, 0], [N, N])", 14,
     "`pl.tile.load` is not supported yet (explicit tile-level programming)"),
    ("with pl.incore():\n                y = pl.slice(a, [N, N], [0, 0, 0])", 14,
     "the source is 2-D but shape [16, 16] and offset have 2 and 3 entries"),
    ("import os", 13, "a `Import` statement in a PyPTO function is not supported yet"),
]


@pytest.mark.parametrize(("body", "line", "message"), CASES)
def test_unsupported_constructs_are_one_located_error(tmp_path: Path, body: str, line: int, message: str | None
                                                      ) -> None:
    path = write(tmp_path, "prog.py", TEMPLATE.replace("BODY", body))
    if message is None:  # the control case: the template itself is fine
        load_program(path)
        return
    with pytest.raises(ProgramError) as exc:
        load_program(path)
    text = str(exc.value)
    assert message in text
    assert text.startswith(f"{path}:{line}:"), text


def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path, cli) -> None:
    gather = "with pl.incore():\n                y = pl.gather(a, b)"
    path = write(tmp_path, "prog.py", TEMPLATE.replace("BODY", gather))
    for command in (["run", str(path), "--out", str(tmp_path / "o")], ["validate", str(path)],
                    ["import", str(path)]):
        result = cli.invoke(main, command)
        assert result.exit_code == 2
        assert result.output.count("\n") == 1 and result.output.startswith(f"error: {path}:14:"), result.output
    assert not (tmp_path / "o").exists()


def test_python_that_needs_running_is_reported_where_it_is_used(tmp_path: Path) -> None:
    path = write(tmp_path, "prog.py", TEMPLATE.replace("N = 16", 'import os\nN = int(os.environ["N"])')
                 .replace("BODY", "pass"))
    with pytest.raises(ProgramError) as exc:
        load_program(path)
    assert "'N' cannot be computed without running the program" in str(exc.value)
    syntax = write(tmp_path, "syntax.py", "def f(:\n")
    with pytest.raises(ProgramError, match=re.escape("syntax.py:1:7: syntax error")):
        load_program(syntax)
    plain = write(tmp_path, "plain.py", "x = 1\n")
    with pytest.raises(ProgramError, match=r"no @pl\.jit function or @pl\.program class found"):
        load_program(plain)


def test_a_name_assigned_on_a_path_not_taken_is_located(tmp_path: Path, cli) -> None:
    """Python lets a variable assigned in one branch be read after the `if`; when the branch is not taken the
    run stops at the read, located (the chunk-remainder copies of a loop body make such paths common)."""
    body = "if N > 100:\n                k = 1\n            with pl.incore():\n                y = pl.assemble(y, " \
        "pl.exp(pl.slice(a, [N, N], [0, 0])), [k, 0])"
    path = write(tmp_path, "prog.py", TEMPLATE.replace("BODY", body))
    result = cli.invoke(main, ["run", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output == f"error: {path}:16:21: 'k' has no value when this line runs: it is assigned only in an " \
        "'if' branch not taken or in a loop that ran no iterations\n"


def test_deep_nesting_is_bounded(tmp_path: Path) -> None:
    """Loops in loops cost the passes work per level: 13 levels (or 7 chunked ones) are refused, located."""
    cases = ((13, "for i{k} in pl.range(2):", 12), (7, "for i{k} in pl.parallel(0, 3, 1, chunk=2):", 6))
    for depth, header, limit in cases:
        lines = [" " * (16 + 4 * k) + header.format(k=k) for k in range(depth)]
        lines.append(" " * (16 + 4 * depth) + "t = pl.slice(a, [1, N], [0, 0])")
        body = "with pl.auto_incore():\n" + "\n".join(lines)
        path = write(tmp_path, f"deep{depth}.py", TEMPLATE.replace("BODY", body))
        with pytest.raises(ProgramError, match=f"nested more than {limit} deep"):
            load_program(path)


HOSTILE = '''
import os
import shutil
import subprocess

import pypto.language as pl

os.system("touch {d}/module_system")
open("{d}/module_open", "w").write("x")
subprocess.run(["touch", "{d}/module_subprocess"])
__import__("shutil").copy(__file__, "{d}/module_import")
N = 16


def hook(fn):
    os.system("touch {d}/decorator_system")
    return fn


def build(n: int = N, side=os.system("touch {d}/default_system"), fh=open("{d}/default_open", "w")):
    os.system("touch {d}/builder_system")
    shutil.rmtree("{d}/keep")

    @pl.program
    @hook
    class P:
        @hook
        @pl.function(type=pl.FunctionType.Opaque)
        def f(self, a: pl.Tensor[[n, n], pl.FP32], y: pl.Out[pl.Tensor[[n, n], pl.FP32]]):
            with pl.incore():
                y = pl.assemble(y, pl.exp(pl.slice(a, [n, n], [0, 0])), [0, 0])
            return y

    return P


def build_tensor_specs(n: int = N, side=open("{d}/harness_default", "w")):
    import torch
    from pypto.runtime import TensorSpec

    os.system("touch {d}/harness_system")
    return [TensorSpec("a", [n, n], torch.float32, init_value=torch.rand),
            TensorSpec("y", [n, n], torch.float32, is_output=True)]


if __name__ == "__main__":
    os.system("touch {d}/main_system")
'''


def test_a_hostile_program_runs_and_nothing_of_it_executes(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    (sandbox / "keep").mkdir(parents=True)
    path = write(tmp_path, "hostile.py", HOSTILE.replace("{d}", str(sandbox)))
    env_run = [sys.executable, "-m", "npusim"]
    run = subprocess.run([*env_run, "run", str(path), "--out", str(tmp_path / "out"), "-q"], cwd=sandbox,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    for command in (["validate", str(path)], ["import", str(path), "-o", str(tmp_path / "h.yaml")]):
        done = subprocess.run([*env_run, *command], cwd=sandbox, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    # a variant whose shape needs one of those calls fails cleanly, still running none of them
    failing = write(tmp_path, "hostile2.py", HOSTILE.replace("{d}", str(sandbox))
                    .replace("N = 16", 'N = int(os.popen("touch {d}/popen; echo 16").read())'.replace("{d}",
                                                                                                      str(sandbox))))
    done = subprocess.run([*env_run, "run", str(failing), "--out", str(tmp_path / "out2")], cwd=sandbox,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot be computed without running the program" in done.stderr
    assert sorted(p.name for p in sandbox.iterdir()) == ["keep"]  # no sentinel file, nothing removed
