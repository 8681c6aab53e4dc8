"""Shared helpers of the PyPTO-frontend tests: the test programs' folder, a run of one program, and the
instruction tree as (depth, kind, text) rows to compare with listings worked out by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from npusim.frontend.program import ForLoop, IfBlock, Instr, KernelBlock, ManualBlock, ScopeBlock
from npusim.runner import RunOptions, RunResult, run

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"


def rows(instrs: list[Instr], depth: int = 0) -> list[tuple[int, str]]:
    """The tree as (depth, text) rows; `else` blocks appear as a row of their own."""
    out: list[tuple[int, str]] = []
    for i in instrs:
        out.append((depth, i.text))
        if isinstance(i, ForLoop | KernelBlock | ScopeBlock | ManualBlock):
            out += rows(i.body, depth + 1)
        elif isinstance(i, IfBlock):
            out += rows(i.then, depth + 1)
            if i.orelse:
                out.append((depth, "else"))
                out += rows(i.orelse, depth + 1)
    return out


def listing(text: str) -> list[tuple[int, str]]:
    """A hand-written listing (two spaces of indentation per level) as rows."""
    out = []
    for line in text.strip("\n").split("\n"):
        stripped = line.lstrip(" ")
        out.append(((len(line) - len(stripped)) // 2, stripped))
    return out


def run_program(path: Path, tmp: Path, **kw: Any) -> RunResult:
    opts = dict(program=path, out=tmp, quiet=True, plot=False, trace=False)
    opts.update(kw)
    return run(RunOptions(**opts))


def final(result: RunResult, name: str) -> np.ndarray:
    data = result.execution.tensors[name].data
    assert data is not None
    return np.asarray(data).astype(np.float64)


def write(folder: Path, name: str, text: str) -> Path:
    """A test program written to a file (test programs that exist to fail, or are variants of one)."""
    path = folder / name
    path.write_text(text.lstrip("\n"))
    return path
