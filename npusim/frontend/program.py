"""The program model every frontend produces and the interpreter runs: GM tensor declarations, resolved
params and constants, and the instruction tree, every instruction knowing its file, line and column."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from npusim.errors import Location
from npusim.ops import OpSpec
from npusim.vocabulary import CoreKind, SplitMode

from .expressions import ExprLimits


@dataclass
class Instr:
    loc: Location
    text: str


@dataclass
class OpCall(Instr):
    """`target = op(args)`: one tile op. `args` maps each parameter name to its syntax node (or default)."""

    target: str | None
    spec: OpSpec
    args: dict[str, Any]


@dataclass
class ScalarAssign(Instr):
    target: str
    expr: ast.expr


@dataclass
class ScopeBlock(Instr):
    name: str
    body: list[Instr]


@dataclass
class KernelBlock(Instr):
    """One kernel; each execution is one dispatch (a runtime task). `blocks`: PyPTO `pl.spmd(n)`, n blocks of
    the kernel in one dispatch, each on its own core, the block index bound to `block_var`; `split`: the
    vector work of a mixed kernel halved across the two AIV lanes of its cluster (`pl.split`); `tid`: a name
    bound to the dispatch's task id; `deps`: names of task ids the dispatch waits for (`deps=[...]`), edges
    added to those its GM footprint gives."""

    name: str | None
    body: list[Instr]
    blocks: ast.expr | None = None
    block_var: str | None = None
    split: SplitMode = "none"
    tid: str | None = None
    deps: list[str] = field(default_factory=list)


@dataclass
class ManualBlock(Instr):
    """PyPTO `with pl.manual_scope():`: dispatches inside get no dependencies from GM footprints and are not
    seen by the footprint tracking of later dispatches; only explicit `deps` order them."""

    body: list[Instr]


@dataclass
class TaskIdsAssign(Instr):
    """`target = task_ids(a, b, ...)`: a task id standing for all of the given ones (PyPTO
    `pl.system.task_dummy(deps=[...])`: a barrier, no kernel runs). `index`: `target[index] = ...` sets one
    element of a task-id array; `source_indices[k]` (when given): source k is `sources[k][index]`, an element."""

    target: str
    sources: list[str]
    index: ast.expr | None = None
    source_indices: list[ast.expr | None] = field(default_factory=list)


@dataclass
class ExternCall(Instr):
    """`extern("NAME", core=..., lanes=..., reads=[...], writes=[...])` in a kernel: a hand-written kernel
    (PyPTO `@pl.jit.extern`) npusim cannot see into. It runs on `core` ("aiv", "aic", or "mix": an AIC with
    `lanes` AIV lanes); what it is known to do is read the GM tensors or views `reads` and write `writes` (its
    pl.Out / pl.InOut parameters; an InOut is in both). Its results cannot be computed."""

    name: str
    core: CoreKind
    lanes: int
    reads: list[str]
    writes: list[str]


@dataclass
class TaskArray(Instr):
    """`target = task_array(n)`: n task ids, each standing for no task until set (PyPTO
    `pl.array.create(n, pl.TASK_ID)`), set and read by runtime indices through `TaskIdsAssign`."""

    target: str
    size: ast.expr


@dataclass
class ForLoop(Instr):
    """`for` / `parallel` over a range. `stages`: the buffer slots the program asks for the tiles the body
    produces (PyPTO `pl.pipeline(..., stage=F)`); 1 for a plain loop."""

    var: str
    range_args: list[ast.expr]
    parallel: bool
    body: list[Instr]
    stages: int = 1


@dataclass
class IfBlock(Instr):
    cond: ast.expr
    then: list[Instr]
    orelse: list[Instr] = field(default_factory=list)


@dataclass
class Tensor:
    """A GM tensor declared at the top of the program, with its shape evaluated."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    role: str
    init: str | None
    loc: Location


@dataclass
class Program:
    file: str
    name: str
    doc: str
    preset: str | None
    params: dict[str, int | float]
    consts: dict[str, int | float]  # params + lets
    tensors: dict[str, Tensor]
    reference: str | None
    body: list[Instr]
    limits: ExprLimits
    presets: dict[str, dict[str, int | float]] = field(default_factory=dict)  # named param overrides
    reference_loc: Location | None = None  # where the program names its reference
