"""The importer's IR written out as npusim's program model: one instruction per statement, each with its
`.py` location and the text it would have in a YAML program; kernels without a `name_hint` named as PyPTO's
outlining names them (`<function>_incore_<n>`, in program order)."""

from __future__ import annotations

import ast
import copy
from typing import Any

from npusim.errors import ProgramError
from npusim.ops import OPS, REQUIRED

from ..program import (
    ExternCall,
    ForLoop,
    IfBlock,
    Instr,
    KernelBlock,
    ManualBlock,
    OpCall,
    ScalarAssign,
    ScopeBlock,
    TaskArray,
    TaskIdsAssign,
)
from .ir import (
    ExternStmt,
    ForStmt,
    IfStmt,
    KernelStmt,
    ManualStmt,
    OpStmt,
    ScalarStmt,
    ScopeStmt,
    Stmt,
    TaskArrayStmt,
    TaskIdsStmt,
)

_LOCATION_FIELDS = ("lineno", "col_offset", "end_lineno", "end_col_offset")


def clean(node: ast.AST) -> ast.AST:
    """A copy without source positions: errors inside an expression point at its instruction."""
    node = copy.deepcopy(node)
    for n in ast.walk(node):
        for f in _LOCATION_FIELDS:
            n.__dict__.pop(f, None)
    return node


def range_args(loop: ForStmt) -> list[ast.expr]:
    start, step = loop.start, loop.step
    is_zero = isinstance(start, ast.Constant) and start.value == 0
    is_one = isinstance(step, ast.Constant) and step.value == 1
    if is_one:
        return [loop.stop] if is_zero else [start, loop.stop]
    return [start, loop.stop, step]


def op_text(target: str | None, op: str, args: dict[str, Any]) -> str:
    spec = OPS[op]
    parts = []
    for p in spec.params:
        value = args.get(p.name, p.default)
        if p.default is REQUIRED:
            parts.append(ast.unparse(value))
        elif isinstance(value, ast.AST):
            parts.append(f"{p.name}={ast.unparse(value)}")
    call = f"{op}({', '.join(parts)})"
    return f"{target} = {call}" if target is not None else call


class Emitter:
    def __init__(self, func: str) -> None:
        self.func = func
        self.unnamed = 0

    def block(self, stmts: list[Stmt]) -> list[Instr]:
        return [self.stmt(s) for s in stmts]

    def stmt(self, s: Stmt) -> Instr:
        if isinstance(s, OpStmt):
            args = {k: clean(v) if isinstance(v, ast.AST) else v for k, v in s.args.items()}
            for p in OPS[s.op].params:  # the optional ones the importer did not write
                if p.name not in args and p.default is not REQUIRED:
                    args[p.name] = p.default
            return OpCall(s.loc, op_text(s.target, s.op, args), s.target, OPS[s.op], args)
        if isinstance(s, ScalarStmt):
            expr = clean(s.expr)
            return ScalarAssign(s.loc, f"{s.target} = {ast.unparse(expr)}", s.target, expr)  # type: ignore[arg-type]
        if isinstance(s, ForStmt):
            args = [clean(a) for a in range_args(s)]
            spelled = ", ".join(map(ast.unparse, args))
            loop = f"pipeline({spelled}, stage={s.stages})" if s.stages > 1 else f"range({spelled})"
            text = f"{'parallel' if s.parallel else 'for'} {s.var} in {loop}"
            body = self.block([*s.prologue, *s.body])
            return ForLoop(s.loc, text, s.var, args, s.parallel, body, s.stages)  # type: ignore[arg-type]
        if isinstance(s, IfStmt):
            cond = clean(s.cond)
            return IfBlock(s.loc, f"if {ast.unparse(cond)}", cond, self.block(s.then),  # type: ignore[arg-type]
                           self.block(s.orelse))
        if isinstance(s, KernelStmt):
            if s.auto:
                raise ProgramError("internal: an auto_incore scope was not expanded", s.loc)
            name = s.name
            if name is None:
                name = f"{self.func}_incore_{self.unnamed}"
                self.unnamed += 1
            blocks = clean(s.blocks) if s.blocks is not None else None
            options = []
            if blocks is not None:
                options.append(f"blocks={ast.unparse(blocks)}")
            if s.block_var is not None:
                options.append(f"block={s.block_var}")
            if s.split != "none":
                options.append(f"split={s.split!r}".replace("'", '"'))
            if s.tid is not None:
                options.append(f"tid={s.tid}")
            if s.deps:
                options.append(f"deps=[{', '.join(s.deps)}]")
            text = f"incore {name}" + (f"({', '.join(options)})" if options else "")
            return KernelBlock(s.loc, text, name, self.block(s.body), blocks,  # type: ignore[arg-type]
                               s.block_var, s.split, s.tid, list(s.deps))  # type: ignore[arg-type]
        if isinstance(s, ScopeStmt):
            return ScopeBlock(s.loc, f"scope {s.name}", s.name, self.block(s.body))
        if isinstance(s, ManualStmt):
            return ManualBlock(s.loc, "manual", self.block(s.body))
        if isinstance(s, TaskIdsStmt):
            index = clean(s.index) if s.index is not None else None
            picks = [clean(i) if i is not None else None for i in s.source_indices]
            refs = [n if i is None else f"{n}[{ast.unparse(i)}]"
                    for n, i in zip(s.sources, picks or [None] * len(s.sources), strict=True)]
            target = s.target if index is None else f"{s.target}[{ast.unparse(index)}]"
            return TaskIdsAssign(s.loc, f"{target} = task_ids({', '.join(refs)})", s.target, list(s.sources),
                                 index, picks)  # type: ignore[arg-type]
        if isinstance(s, ExternStmt):
            text = (f"extern({s.name!r}, core={s.core!r}, lanes={s.lanes}, reads=[{', '.join(s.reads)}], "
                    f"writes=[{', '.join(s.writes)}])").replace("'", '"')
            return ExternCall(s.loc, text, s.name, s.core, s.lanes, list(s.reads), list(s.writes))  # type: ignore
        if isinstance(s, TaskArrayStmt):
            size = clean(s.size)
            return TaskArray(s.loc, f"{s.target} = task_array({ast.unparse(size)})", s.target, size)  # type: ignore
        raise AssertionError(type(s))
