"""The importer's own statement tree, between the Python syntax and npusim's program model: PyPTO's
tensor-level program after nested calls are flattened (one op per statement), before the kernel structure
is final. Chunked loops, `auto_incore` regions and kernels are explicit here so the passes that mirror
PyPTO's (chunk splitting and interchange, outlining) can rewrite them; every statement keeps its `.py`
location. Expressions are npusim expression syntax trees over the importer's variable names."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Literal

from npusim.errors import Location

Origin = Literal["original", "chunk_outer", "chunk_inner", "chunk_remainder"]


class Dim(int):
    """A static dimension: its value, and the npusim expression (text) it was written as, so that shapes the
    importer derives (an escaping tile's GM tensor) stay expressions of the params."""

    expr: str

    def __new__(cls, value: int, expr: str | None = None) -> Dim:
        obj = super().__new__(cls, value)
        obj.expr = expr if expr is not None else str(value)
        return obj


def dim_expr(d: int) -> str:
    return d.expr if isinstance(d, Dim) else str(d)


@dataclass(frozen=True)
class ScalarType:
    pass


@dataclass(frozen=True)
class ValueType:
    """A tensor-level value (a GM tensor, a view, or a tile once inside a kernel): static shape and dtype."""

    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class TaskIdType:
    """A task id (PyPTO `pl.Scalar[pl.TASK_ID]`): what `with ... as tid` binds and `deps=[...]` takes."""


@dataclass(frozen=True)
class TaskArrayType:
    """A task-id array (PyPTO `pl.array.create(n, pl.TASK_ID)`, a `pl.Array[n, pl.TASK_ID]` parameter)."""

    size: int


Type = ScalarType | ValueType | TaskIdType | TaskArrayType
SCALAR = ScalarType()
TASK_ID = TaskIdType()


@dataclass
class Stmt:
    loc: Location


@dataclass
class OpStmt(Stmt):
    """`target = op(args)`: `args` maps each npusim parameter to an expression node or a constant."""

    target: str | None
    op: str
    args: dict[str, Any]
    pl_name: str  # the PyPTO op as written (for messages): `pl.slice`


@dataclass
class ScalarStmt(Stmt):
    """`target = expr`: a scalar, or (`expr` a Name of a value) a second name for a value."""

    target: str
    expr: ast.expr


@dataclass
class ForStmt(Stmt):
    var: str
    start: ast.expr
    stop: ast.expr
    step: ast.expr
    parallel: bool
    body: list[Stmt]
    chunk: int | None = None
    origin: Origin = "original"
    stages: int = 1
    prologue: list[ScalarStmt] = field(default_factory=list)  # bindings at the top of each iteration
    text: str = ""


@dataclass
class IfStmt(Stmt):
    cond: ast.expr
    then: list[Stmt]
    orelse: list[Stmt] = field(default_factory=list)
    guard: bool = False  # an importer-made guard around a chunk remainder (never part of a kernel group)


@dataclass
class KernelStmt(Stmt):
    """`with pl.incore():` / `pl.at(...)` (auto=False) or `with pl.auto_incore():` (auto=True) before
    expansion; `blocks`/`block_var`: an SPMD kernel (`pl.spmd(n)`); `split`: `pl.split(mode)`; `tid`: the name
    `with ... as tid` binds; `deps`: the task-id names of `deps=[...]`."""

    name: str | None
    body: list[Stmt]
    auto: bool = False
    text: str = ""
    blocks: ast.expr | None = None
    block_var: str | None = None
    split: str = "none"
    tid: str | None = None
    deps: list[str] = field(default_factory=list)


@dataclass
class ManualStmt(Stmt):
    """`with pl.manual_scope():` (or `pl.scope(mode=pl.ScopeMode.MANUAL)`)."""

    body: list[Stmt]


@dataclass
class TaskIdsStmt(Stmt):
    """`target = pl.system.task_dummy(deps=[...])`: a task id standing for all of `sources`; `index`: the
    element `target[index]` of a task-id array is set; `source_indices[k]`: source k is an array's element."""

    target: str
    sources: list[str]
    index: ast.expr | None = None
    source_indices: list[ast.expr | None] = field(default_factory=list)


@dataclass
class ExternStmt(Stmt):
    """A call of a `@pl.jit.extern` kernel inside a kernel scope: its name, core ("aiv", "aic", "mix"), AIV
    lanes, and the GM values it reads and writes (its pl.Out / pl.InOut parameters write)."""

    name: str
    core: str
    lanes: int
    reads: list[str]
    writes: list[str]


@dataclass
class TaskArrayStmt(Stmt):
    """`target = pl.array.create(size, pl.TASK_ID)`."""

    target: str
    size: ast.expr


@dataclass
class ScopeStmt(Stmt):
    """A named region from a `# Scope N:` comment."""

    name: str
    body: list[Stmt]


def children(stmt: Stmt) -> list[list[Stmt]]:
    """The statement lists directly inside `stmt`."""
    if isinstance(stmt, ForStmt):
        return [stmt.body]
    if isinstance(stmt, IfStmt):
        return [stmt.then, stmt.orelse]
    if isinstance(stmt, KernelStmt | ScopeStmt | ManualStmt):
        return [stmt.body]
    return []


def walk(stmts: list[Stmt]):
    """Every statement, depth first, in program order (loop prologues before bodies)."""
    for s in stmts:
        yield s
        if isinstance(s, ForStmt):
            yield from s.prologue
        for block in children(s):
            yield from walk(block)


def names_read(stmt: Stmt) -> set[str]:
    """Names a statement itself reads (not its nested blocks)."""
    nodes: list[Any] = []
    if isinstance(stmt, OpStmt):
        nodes = [v for v in stmt.args.values() if isinstance(v, ast.AST)]
    elif isinstance(stmt, ScalarStmt):
        nodes = [stmt.expr]
    elif isinstance(stmt, ForStmt):
        nodes = [stmt.start, stmt.stop, stmt.step]
    elif isinstance(stmt, IfStmt):
        nodes = [stmt.cond]
    elif isinstance(stmt, KernelStmt) and stmt.blocks is not None:
        nodes = [stmt.blocks]
    elif isinstance(stmt, ExternStmt):
        return {*stmt.reads, *stmt.writes}
    out: set[str] = set()
    for node in nodes:
        out.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
    return out


def name(id_: str) -> ast.Name:
    return ast.Name(id=id_, ctx=ast.Load())
