"""`with pl.auto_incore():` expanded into kernels as PyPTO b2104ad64 does it, in three steps over the IR:

1. SplitChunkedLoops (`src/ir/transforms/split_chunked_loops_pass.cpp`): a loop `chunk=C` of trip count T
   becomes an outer loop of T // C iterations around an inner loop of C, plus a remainder loop of T % C
   (the loop variable re-derived at the top of each iteration). PyPTO omits a part whose count is 0; here a
   part is kept (a remainder behind an `if`) unless that would change how a parent chunk loop interchanges,
   so one imported program serves every size.
2. InterchangeChunkLoops (`interchange_chunk_loops_pass.cpp`): a chain of directly nested chunk loops whose
   inner loops are all parallel is rebuilt as `outers... { kernel { inners... { body } } }`: one kernel per
   chunk. Remainder loops are recursed into; standalone parallel sub-remainders become kernels.
3. WrapNonIncoreStatementsInInCore: the statements still outside a kernel that hold compute ops or chunk
   loops are grouped, each run of consecutive ones into one kernel; pure scalar assignments and host-side
   ops (create_tensor, slice, assemble, read, reshape) stay in orchestration.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field
from typing import Any

from npusim.errors import Location, ProgramError
from npusim.frontend.expressions import ExprCompiler
from npusim.ops import OPS

from .exprs import literal, simplify
from .ir import SCALAR, ForStmt, IfStmt, KernelStmt, ManualStmt, OpStmt, ScalarStmt, ScopeStmt, Stmt, Type, name, walk

HOST_SIDE = {"create_tensor", "slice", "assemble", "read", "reshape"}


@dataclass
class Expander:
    consts: dict[str, Any]
    types: dict[str, Type]
    fresh: Any  # (base, type) -> a new npusim name
    assumptions: list[tuple[str, str]] = field(default_factory=list)  # (requirement text, why) for the YAML

    # -- 1. split chunked loops --
    def split(self, stmts: list[Stmt], direct: bool = False) -> list[Stmt]:
        """`direct`: `stmts` is the whole body of a chunk loop (a chunk loop alone in it chains with it)."""
        out: list[Stmt] = []
        alone = direct and len(stmts) == 1
        for s in stmts:
            if isinstance(s, ForStmt) and s.chunk is not None and s.origin == "original":
                out.extend(self.split_loop(s, static=alone))
            elif isinstance(s, ForStmt):
                s.body = self.split(s.body, direct=s.origin != "original")
                out.append(s)
            elif isinstance(s, IfStmt):
                s.then, s.orelse = self.split(s.then), self.split(s.orelse)
                out.append(s)
            elif isinstance(s, ScopeStmt):
                s.body = self.split(s.body)
                out.append(s)
            else:
                out.append(s)
        return out

    def _const(self, node: ast.expr) -> Any:
        try:
            return ExprCompiler(self.consts).compile_node(node, ast.unparse(node), _NOWHERE).const
        except ProgramError:
            return None

    def split_loop(self, loop: ForStmt, static: bool) -> list[Stmt]:
        assert loop.chunk is not None
        step = self._const(loop.step)
        if not isinstance(step, int) or isinstance(step, bool) or step == 0:
            raise ProgramError("a chunked loop's step must be a non-zero compile-time integer", loop.loc)
        chunk = loop.chunk
        start, stop = self._const(loop.start), self._const(loop.stop)
        span = ast.BinOp(loop.stop, ast.Sub(), loop.start) if step > 0 else ast.BinOp(loop.start, ast.Sub(), loop.stop)
        trips_expr = simplify(span if abs(step) == 1 else
                              ast.BinOp(ast.BinOp(span, ast.Add(), literal(abs(step) - 1)), ast.FloorDiv(),
                                        literal(abs(step))))
        trips = None
        if isinstance(start, int) and isinstance(stop, int):
            trips = max(0, -(-(stop - start) // step) if step > 0 else -(-(start - stop) // -step))
        else:
            trips_expr = ast.Call(name("max"), [trips_expr, literal(0)], [])
        n_full = simplify(ast.BinOp(trips_expr, ast.FloorDiv(), literal(chunk))) if chunk != 1 else trips_expr
        n_rem = ast.BinOp(trips_expr, ast.Mod(), literal(chunk))
        full_count = None if trips is None else trips // chunk
        rem_count = None if trips is None else trips % chunk
        body = self.split(loop.body, direct=True)
        out: list[Stmt] = []
        emit_full = full_count is None or full_count > 0 or not static
        emit_rem = chunk != 1 and (rem_count is None or rem_count > 0 or not static)
        if static and trips is not None:
            text = ast.unparse(trips_expr)
            self.assumptions.append((f"{text} // {chunk} {'>' if full_count else '=='} 0" if chunk != 1 else
                                     f"{text} {'>' if full_count else '=='} 0",
                                     f"the chunks of the loop at line {loop.loc.line} interchange as imported"))
            if chunk != 1:
                self.assumptions.append((f"{text} % {chunk} {'!' if rem_count else '='}= 0",
                                         f"the remainder of the loop at line {loop.loc.line} exists as imported"))
        var = loop.var
        if emit_full:
            outer = self.fresh(f"{var}_o", SCALAR)
            inner = self.fresh(f"{var}_i", SCALAR)
            index = simplify(ast.BinOp(loop.start, ast.Add(), ast.BinOp(
                ast.BinOp(ast.BinOp(name(outer), ast.Mult(), literal(chunk)), ast.Add(), name(inner)),
                ast.Mult(), loop.step)))
            inner_loop = ForStmt(loop.loc, inner, literal(0), literal(chunk), literal(1), loop.parallel, body,
                                 origin="chunk_inner", stages=loop.stages,
                                 prologue=[ScalarStmt(loop.loc, var, index)], text=loop.text)
            out.append(ForStmt(loop.loc, outer, literal(0), n_full, literal(1), loop.parallel, [inner_loop],
                               origin="chunk_outer", text=loop.text))
        if emit_rem:
            rem = self.fresh(f"{var}_r", SCALAR)
            index = simplify(ast.BinOp(loop.start, ast.Add(), ast.BinOp(
                ast.BinOp(ast.BinOp(n_full, ast.Mult(), literal(chunk)), ast.Add(), name(rem)), ast.Mult(),
                loop.step)))
            rem_loop = ForStmt(loop.loc, rem, literal(0), n_rem, literal(1), loop.parallel,
                               copy.deepcopy(body) if emit_full else body, origin="chunk_remainder",
                               stages=loop.stages, prologue=[ScalarStmt(loop.loc, var, index)], text=loop.text)
            if static:
                out.append(rem_loop)
            else:
                cond = ast.Compare(copy.deepcopy(n_rem), [ast.Gt()], [literal(0)])
                out.append(IfStmt(loop.loc, cond, [rem_loop], guard=True))
        return out

    # -- 2. interchange --
    def interchange(self, stmts: list[Stmt], in_kernel: bool, hint: str | None) -> list[Stmt]:
        out: list[Stmt] = []
        for s in stmts:
            if isinstance(s, ForStmt) and s.origin == "chunk_outer":
                out.append(self.outer(s, in_kernel, hint))
            elif isinstance(s, ForStmt) and s.origin == "chunk_remainder":
                out.append(self.remainder(s, in_kernel, hint))
            elif isinstance(s, ForStmt):
                s.body = self.interchange(s.body, in_kernel, hint)
                out.append(s)
            elif isinstance(s, IfStmt):
                s.then = self.interchange(s.then, in_kernel, hint)
                s.orelse = self.interchange(s.orelse, in_kernel, hint)
                out.append(s)
            else:
                out.append(s)
        return out

    def outer(self, loop: ForStmt, in_kernel: bool, hint: str | None) -> Stmt:
        chain = [loop]
        body = loop.body
        while len(body) == 1 and isinstance(body[0], ForStmt) and body[0].origin != "original":
            chain.append(body[0])
            body = body[0].body
        outers = [f for f in chain if f.origin == "chunk_outer"]
        inners = [f for f in chain if f.origin == "chunk_inner"]
        if not inners or not all(f.parallel for f in inners) or contains_kernel(chain[-1].body):
            loop.body = self.interchange(loop.body, in_kernel, hint)
            return loop
        current: list[Stmt] = self.interchange(inners[-1].body, True, hint)
        for f in reversed(inners):
            f.body = current
            current = [f]
        if not in_kernel:
            current = [KernelStmt(loop.loc, hint, current, text=loop.text)]
        for f in reversed(outers):
            f.body = current
            current = [f]
        return current[0]

    def remainder(self, loop: ForStmt, in_kernel: bool, hint: str | None) -> Stmt:
        loop.body = self.interchange(loop.body, in_kernel, hint)
        if not in_kernel:
            loop.body = [self._kernel_if_remainder(s, hint) for s in loop.body]
        return loop

    def _kernel_if_remainder(self, s: Stmt, hint: str | None) -> Stmt:
        if isinstance(s, IfStmt) and s.guard:
            s.then = [self._kernel_if_remainder(t, hint) for t in s.then]
            return s
        if isinstance(s, ForStmt) and s.origin == "chunk_remainder" and s.parallel and not contains_kernel(s.body):
            return KernelStmt(s.loc, hint, [s], text=s.text)
        return s

    # -- 3. wrap the rest --
    def wrap(self, stmts: list[Stmt], hint: str | None) -> list[Stmt]:
        out: list[Stmt] = []
        pending: list[Stmt] = []

        def flush() -> None:
            if not pending:
                return
            if len(pending) == 1 and isinstance(pending[0], IfStmt) and pending[0].guard:
                guard = pending[0]  # a lone guarded remainder: the kernel inside the guard, never an empty one
                guard.then = [KernelStmt(guard.loc, hint, guard.then, text=_text(guard.then[0]))]
                out.append(guard)
            else:
                out.append(KernelStmt(pending[0].loc, hint, list(pending), text=_text(pending[0])))
            pending.clear()

        for s in stmts:
            if self.needs_kernel(s):
                pending.append(s)
            else:
                flush()
                if isinstance(s, ForStmt) and contains_kernel(s.body):
                    s.body = self.wrap(s.body, hint)
                elif isinstance(s, IfStmt) and s.guard:
                    for t in s.then:
                        if isinstance(t, ForStmt) and contains_kernel(t.body):
                            t.body = self.wrap(t.body, hint)
                out.append(s)
        flush()
        return out

    def needs_kernel(self, s: Stmt) -> bool:
        if isinstance(s, IfStmt) and s.guard:
            return all(self.needs_kernel(t) for t in s.then)
        if contains_kernel(s) or self.pure_scalar(s):
            return False
        return contains_chunk_loop(s) or contains_compute(s)

    def pure_scalar(self, s: Stmt) -> bool:
        if not isinstance(s, ScalarStmt) or self.types.get(s.target) != SCALAR:
            return False
        return not any(isinstance(n, ast.Name) and self.types.get(n.id, SCALAR) != SCALAR for n in ast.walk(s.expr))

    def expand(self, kernel: KernelStmt) -> list[Stmt]:
        body = self.split(kernel.body)
        body = self.interchange(body, False, kernel.name)
        return self.wrap(body, kernel.name)


_NOWHERE = Location("<import>")


def _text(s: Stmt) -> str:
    return getattr(s, "text", "") or "pl.auto_incore()"


def contains_kernel(x: Stmt | list[Stmt]) -> bool:
    stmts = x if isinstance(x, list) else [x]
    for s in stmts:
        if isinstance(s, KernelStmt):
            return True
        if isinstance(s, ForStmt | ScopeStmt | ManualStmt) and contains_kernel(s.body):
            return True
        if isinstance(s, IfStmt) and (contains_kernel(s.then) or contains_kernel(s.orelse)):
            return True
    return False


def contains_chunk_loop(s: Stmt) -> bool:
    if isinstance(s, ForStmt):
        return s.origin != "original" or any(contains_chunk_loop(b) for b in s.body)
    if isinstance(s, ScopeStmt):
        return any(contains_chunk_loop(b) for b in s.body)
    return False


def contains_compute(s: Stmt) -> bool:
    """Whether `s` holds an op that must run on a core (PyPTO's IsComputeTensorOp)."""
    return any(isinstance(t, OpStmt) and t.op not in HOST_SIDE and OPS[t.op].lowering == "compute"
               for t in walk([s]))


def expand_auto(body: list[Stmt], expander: Expander) -> list[Stmt]:
    """Every `auto_incore` kernel in `body` replaced by the kernels it expands to."""
    out: list[Stmt] = []
    for s in body:
        if isinstance(s, KernelStmt) and s.auto:
            out.extend(expander.expand(s))
            continue
        if isinstance(s, ForStmt | ScopeStmt | ManualStmt):
            s.body = expand_auto(s.body, expander)
        elif isinstance(s, IfStmt):
            s.then, s.orelse = expand_auto(s.then, expander), expand_auto(s.orelse, expander)
        out.append(s)
    return out
