"""The `@pl.program` class translated statement by statement into the importer's IR, as PyPTO's parser and
its FlattenCallExpr pass read it: op calls nested in arguments become temporaries in Python's evaluation
order, subscripts become `slice` / `read` / `assemble`, closure constants stay names (their values are the
program's consts), `self.f(...)` calls are inlined (an InCore callee as a kernel), and `# Scope N:`
comments become named scopes. Every value gets its static shape and dtype by npusim's own shape rules, so a
mismatch is reported at its `.py` line. Anything outside the supported subset is one located error naming
the construct."""

from __future__ import annotations

import ast
import copy
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from npusim.dtypes import NUMPY_DTYPES
from npusim.errors import Location, ProgramError, did_you_mean
from npusim.frontend.expressions import FUNCTIONS
from npusim.ops import OPS as NPU_OPS
from npusim.ops import REQUIRED, OpError, TileType

from . import optable
from .exprs import literal, to_npusim
from .ir import (
    SCALAR,
    TASK_ID,
    Dim,
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
    TaskArrayType,
    TaskIdsStmt,
    Type,
    ValueType,
    dim_expr,
    name,
    walk,
)
from .module import ModuleModel, dsl_kind
from .pyeval import DynDim, FunctionValue
from .source import Folder, FoldError, LookupScope, Scope, Unfoldable

_SCOPE_COMMENT = re.compile(r"\bScope\s+([A-Za-z0-9_]+)\s*:")
_SCOPE_END = re.compile(r"\bend\s+(?:of\s+)?scope\b", re.IGNORECASE)
RESERVED = set(NPU_OPS) | set(FUNCTIONS) | {"range", "True", "False", "read"} | set(NUMPY_DTYPES)
MAX_LOOP_DEPTH = 12  # loops in loops
MAX_CHUNK_DEPTH = 6  # chunked loops in chunked loops: each level doubles the body (a remainder copy)


@dataclass
class ParamTensor:
    """A tensor parameter of the entry function: npusim GM tensor `name`."""

    name: str
    type: ValueType
    direction: str  # "in", "out", "inout" as annotated (In is upgraded later if the body writes it)
    loc: Location


@dataclass(frozen=True)
class Scalar:
    """A scalar operand: its npusim expression, and its value when it folds at import."""

    expr: ast.expr
    value: Any = None


@dataclass(frozen=True)
class Value:
    """A tensor-level operand: the npusim name of a value."""

    ir: str


Operand = Scalar | Value


@dataclass
class Translated:
    func: str
    params: list[ParamTensor]
    body: list[Stmt]
    types: dict[str, Type]
    pynames: dict[str, str]  # npusim name -> the Python name it came from
    fresh: Any = None  # (base, type) -> a new npusim name, for the passes after translation


@dataclass(frozen=True)
class Tid:
    """A task-id operand: the npusim name of a task id."""

    ir: str


@dataclass(frozen=True)
class TidArray:
    """A task-id array operand (`pl.array.create(n, pl.TASK_ID)`): its npusim name."""

    ir: str


class Translator:
    def __init__(self, model: ModuleModel, consts: dict[str, Any], specs: dict[str, Any] | None = None) -> None:
        self.model = model
        self.source = model.source
        self.closure: Scope = model.program.closure
        self.entry_closure = self.closure
        self.consts = consts
        self.specs = specs or {}
        self.dyn: dict[str, int] = {}  # pl.dynamic dims bound from the harness's tensors
        self.head = model.program.jit is not None  # pypto HEAD's subscript rules (a scalar index drops its dim)
        self.block_var: str | None = None  # the block index inside an SPMD kernel
        self.static: dict[str, Any] = {}  # DSL scalars (npusim names) of a compile-time value (see `fold`)
        self.assign_counts: list[Counter[str]] = []  # per function being translated: assignments per name
        self.env: dict[str, str] = {}
        self.types: dict[str, Type] = {}
        self.pynames: dict[str, str] = {}
        self.taken: set[str] = set(consts) | RESERVED
        self.temps = 0
        self.out: list[Stmt] = []
        self.in_kernel = False
        self.in_auto = False
        self.loop_depth = 0
        self.chunk_depth = 0
        self.calls: list[str] = []
        self.functions: dict[str, tuple[ast.FunctionDef, str]] = {}
        self.func_name = ""

    # -- errors and locations --
    def loc(self, node: ast.AST) -> Location:
        return self.source.loc(node)

    def fail(self, message: str, node: ast.AST) -> ProgramError:
        return ProgramError(message, self.loc(node))

    def unsupported(self, what: str, node: ast.AST, why: str = "") -> ProgramError:
        return self.fail(f"{what} is not supported yet" + (f" ({why})" if why else ""), node)

    # -- names --
    def fresh(self, base: str, type_: Type) -> str:
        candidate, n = base, 1
        while candidate in self.taken:
            n += 1
            candidate = f"{base}_{n}"
        self.taken.add(candidate)
        self.types[candidate] = type_
        self.pynames.setdefault(candidate, base)
        return candidate

    def bind(self, py: str, type_: Type) -> str:
        """The npusim name a Python variable gets when assigned a value of `type_`: its current one when the
        type is the same (a rebinding, as PyPTO requires), else a new one."""
        current = self.env.get(py)
        if current is not None and self.types.get(current) == type_:
            return current
        ir = self.fresh(py, type_)
        self.env[py] = ir
        return ir

    def temp(self, type_: Type) -> str:
        self.temps += 1
        return self.fresh(f"_t{self.temps}", type_)

    def emit(self, stmt: Stmt) -> None:
        self.out.append(stmt)

    @contextmanager
    def collecting(self) -> Iterator[list[Stmt]]:
        saved, self.out = self.out, []
        try:
            yield self.out
        finally:
            self.out = saved

    # -- the class --
    def program(self) -> Translated:
        if self.model.program.jit is not None:
            return self.jit_program(self.model.program.jit)
        cls = self.model.program.cls
        assert cls is not None
        for item in cls.body:
            if isinstance(item, ast.FunctionDef):
                kind = self._function_type(item)
                if kind is not None:
                    self.functions[item.name] = (item, kind)
            elif not (isinstance(item, ast.Expr) and isinstance(item.value, ast.Constant)) \
                    and not isinstance(item, ast.Pass):
                raise self.unsupported(f"a `{type(item).__name__}` statement in a @pl.program class", item)
        if not self.functions:
            raise self.fail(f"@pl.program class {cls.name!r} has no @pl.function method", cls)
        called = {n.func.attr for f, _ in self.functions.values() for n in ast.walk(f)
                  if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                  and isinstance(n.func.value, ast.Name) and n.func.value.id == "self"}
        entries = [f for name_, (f, kind) in self.functions.items() if name_ not in called
                   and kind in ("Opaque", "Orchestration")]
        if len(entries) != 1:
            found = ", ".join(f.name for f in entries) or "none"
            raise self.fail(f"expected one entry @pl.function (Opaque or Orchestration, called by no other); "
                            f"found: {found}", cls)
        entry = entries[0]
        self.func_name = entry.name
        params = self._entry_params(entry)
        self.calls.append(entry.name)
        body = self.block(entry.body)
        if not any(isinstance(st, ScopeStmt) for st in walk(body)):
            body = _name_hint_scopes(body)
        return Translated(entry.name, params, body, self.types, self.pynames, self.fresh)

    def jit_program(self, entry: ast.FunctionDef) -> Translated:
        """A `@pl.jit` entry specialised on the harness's specs: bare `pl.Tensor` parameters take their
        TensorSpec's shape and dtype, `pl.dynamic` dims are bound from them, `pl.Scalar` parameters their
        ScalarSpec's value; helpers it calls by name are inlined (`.inline`, `.opaque`) or kernels (`.incore`)."""
        self.func_name = entry.name
        args = entry.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
            raise self.unsupported("*args, **kwargs or keyword-only parameters in the entry function", entry)
        params = []
        for arg in args.args:
            scalar = self._scalar_param(arg)
            if scalar is not None:  # a name of its own: it shadows a module constant of the same name
                self.env[arg.arg] = self.fresh(arg.arg, SCALAR)
                self.emit(ScalarStmt(self.loc(arg), self.env[arg.arg], literal(scalar)))
                continue
            if arg.arg in self.consts and arg.arg not in RESERVED:
                # the parameter shadows a module constant in the entry (as in Python); npusim's tensor keeps the
                # name, so the constant is written as its value wherever the program uses it
                del self.consts[arg.arg]
                self.taken.discard(arg.arg)
            if arg.arg in self.taken:
                raise self.fail(f"parameter {arg.arg!r} has the name of an npusim op or dtype; rename it", arg)
            type_, direction = self._jit_annotation(arg)
            self.taken.add(arg.arg)
            self.types[arg.arg] = type_
            self.pynames[arg.arg] = arg.arg
            self.env[arg.arg] = arg.arg
            params.append(ParamTensor(arg.arg, type_, direction, self.loc(arg)))
        self.calls.append(entry.name)
        self.assign_counts.append(_assignments(entry))
        prologue, self.out = self.out, []
        body = prologue + self.block(entry.body)
        if not any(isinstance(st, ScopeStmt) for st in walk(body)):
            body = _name_hint_scopes(body)
        return Translated(entry.name, params, body, self.types, self.pynames, self.fresh)

    def _scalar_param(self, arg: ast.arg) -> Any:
        """The value of a `pl.Scalar[...]` entry parameter: its ScalarSpec's (None for a tensor parameter)."""
        ann = arg.annotation
        if not (isinstance(ann, ast.Subscript) and self._pl_attr(ann.value) == "Scalar"):
            return None
        spec = self.specs.get(arg.arg)
        if spec is None or getattr(spec, "value", None) is None:
            raise self.fail(f"scalar parameter {arg.arg!r} needs a ScalarSpec({arg.arg!r}, dtype, value) in the "
                            "harness", arg)
        return spec.value

    def _jit_annotation(self, arg: ast.arg) -> tuple[ValueType, str]:
        """A tensor parameter's type: as annotated, its bare `pl.Tensor` (or missing) parts from its TensorSpec,
        its `pl.dynamic` dims bound from the spec's shape."""
        ann = arg.annotation
        direction = "in"
        if isinstance(ann, ast.Subscript) and self._pl_attr(ann.value) in ("Out", "InOut"):
            direction = "out" if self._pl_attr(ann.value) == "Out" else "inout"
            ann = ann.slice
        spec = self.specs.get(arg.arg)
        if ann is None or self._pl_attr(ann) == "Tensor":
            if spec is None or not hasattr(spec, "shape"):
                raise self.fail(f"parameter {arg.arg!r} is a bare pl.Tensor: its shape and dtype come from the "
                                f"harness's TensorSpec({arg.arg!r}, ...), which npusim did not find", arg)
            return ValueType(tuple(Dim(d) for d in spec.shape), spec.dtype), direction
        if not (isinstance(ann, ast.Subscript) and self._pl_attr(ann.value) == "Tensor"
                and isinstance(ann.slice, ast.Tuple) and len(ann.slice.elts) >= 2
                and isinstance(ann.slice.elts[0], ast.List | ast.Tuple)):
            raise self.fail(f"expected `pl.Tensor[[dims], dtype]`, got `{ast.unparse(ann)[:60]}`", ann)
        dims_node = ann.slice.elts[0]
        shape = []
        for i, d in enumerate(dims_node.elts):  # type: ignore[attr-defined]
            value = self._closure_fold(d)
            if isinstance(value, DynDim):
                if spec is None or not hasattr(spec, "shape") or i >= len(spec.shape):
                    raise self.fail(f"dimension {i} of {arg.arg!r} is pl.dynamic({value.name!r}): it is bound by the "
                                    f"harness's TensorSpec({arg.arg!r}, ...), which npusim did not find", d)
                bound = spec.shape[i]
                if self.dyn.setdefault(value.name, bound) != bound:
                    raise self.fail(f"pl.dynamic({value.name!r}) is {self.dyn[value.name]} elsewhere but "
                                    f"{arg.arg!r}'s TensorSpec makes it {bound}", d)
                shape.append(Dim(bound))
            else:
                shape.append(self.static_dim(d))
        dtype = self.dtype(ann.slice.elts[1])
        if any(x < 1 for x in shape):
            raise self.fail(f"tensor dimensions must be positive, got {[int(x) for x in shape]}", dims_node)
        return ValueType(tuple(shape), dtype), direction

    def _closure_fold(self, node: ast.AST) -> Any:
        try:
            return self.fold(node, dyn=False)
        except FoldError as exc:
            raise self.fail(f"a shape must be a compile-time constant: `{ast.unparse(node)[:60]}` ({exc.reason})",
                            node) from None

    def _function_type(self, fn: ast.FunctionDef) -> str | None:
        for dec in fn.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            if isinstance(target, ast.Attribute) and target.attr == "function" and self.model.is_pl(target.value,
                                                                                                   self.closure):
                kind = "Opaque"
                if isinstance(dec, ast.Call):
                    for kw in dec.keywords:
                        if kw.arg == "type":
                            kind = kw.value.attr if isinstance(kw.value, ast.Attribute) else "?"
                        elif kw.arg not in ("strict_ssa", "level", "role", "attrs"):
                            raise self.unsupported(f"`@pl.function({kw.arg}=...)`", dec)
                if kind not in ("Opaque", "Orchestration", "InCore"):
                    raise self.unsupported(f"a function of type {kind}", dec)
                return kind
            if isinstance(target, ast.Attribute) and target.attr in ("inline", "jit"):
                raise self.unsupported(f"`@pl.{target.attr}` functions", dec, "issue 12")
        return None

    def _entry_params(self, fn: ast.FunctionDef) -> list[ParamTensor]:
        args = fn.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
            raise self.unsupported("*args, **kwargs or keyword-only parameters in the entry function", fn)
        if not args.args or args.args[0].arg != "self":
            raise self.fail("a @pl.program method takes `self` first", fn)
        params = []
        for arg in args.args[1:]:
            if arg.annotation is None:
                raise self.fail(f"parameter {arg.arg!r} needs a `pl.Tensor[[...], dtype]` annotation", arg)
            type_, direction = self._annotation(arg.annotation)
            if arg.arg in self.taken:
                raise self.fail(f"parameter {arg.arg!r} has the name of a constant or an npusim op; rename it", arg)
            self.taken.add(arg.arg)
            self.types[arg.arg] = type_
            self.pynames[arg.arg] = arg.arg
            self.env[arg.arg] = arg.arg
            params.append(ParamTensor(arg.arg, type_, direction, self.loc(arg)))
        return params

    def _annotation(self, ann: ast.expr) -> tuple[ValueType, str]:
        """`pl.Tensor[[d0, d1], pl.DT]`, optionally inside `pl.Out[...]` / `pl.InOut[...]`."""
        direction = "in"
        if isinstance(ann, ast.Subscript) and self._pl_attr(ann.value) in ("Out", "InOut"):
            direction = "out" if self._pl_attr(ann.value) == "Out" else "inout"
            ann = ann.slice
        if isinstance(ann, ast.Subscript) and self._pl_attr(ann.value) == "Scalar":
            raise self.unsupported("a `pl.Scalar` parameter", ann, "the harness has no ScalarSpec reader yet")
        if not (isinstance(ann, ast.Subscript) and self._pl_attr(ann.value) == "Tensor"
                and isinstance(ann.slice, ast.Tuple) and len(ann.slice.elts) >= 2
                and isinstance(ann.slice.elts[0], ast.List | ast.Tuple)):
            raise self.fail(f"expected `pl.Tensor[[dims], dtype]`, got `{ast.unparse(ann)[:60]}`", ann)
        dims_node, dtype_node = ann.slice.elts[0], ann.slice.elts[1]
        if len(ann.slice.elts) > 2:
            layout = self._pl_attr(ann.slice.elts[2])
            if layout not in ("ND", "TensorLayout.ND"):
                raise self.unsupported(f"tensor layout `{ast.unparse(ann.slice.elts[2])}`", ann.slice.elts[2])
        shape = tuple(self.static_dim(d) for d in dims_node.elts)  # type: ignore[attr-defined]
        if any(d < 1 for d in shape):
            raise self.fail(f"tensor dimensions must be positive, got {[int(d) for d in shape]}", dims_node)
        return ValueType(shape, self.dtype(dtype_node)), direction

    def _pl_attr(self, node: ast.AST) -> str | None:
        """`X` of `pl.X` (or `Y.X` of `pl.Y.X`), else None."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if parts and self.model.is_pl(node, self.closure):
            return ".".join(reversed(parts))
        return None

    # -- constants --
    def closure_value(self, ident: str) -> Any:
        try:
            return self._dyn(self.closure.lookup(ident))
        except KeyError:
            return KeyError

    def _dyn(self, value: Any) -> Any:
        """A `pl.dynamic` dim as the number the specs bound it to."""
        if isinstance(value, DynDim) and value.name in self.dyn:
            return self.dyn[value.name]
        return value

    def fold(self, node: ast.AST, dyn: bool = True, static: bool = False) -> Any:
        """The value of a closure-only expression (raises FoldError if it reads a DSL variable; with `static`,
        a DSL scalar assigned once from a compile-time value, `t_dim = pl.tensor.dim(x, 0)`, has that value)."""
        def lookup(ident: str) -> Any:
            if ident in self.env:
                ir = self.env[ident]
                if static and ir in self.static:
                    return self.static[ir]
                raise KeyError(ident)
            value = self.closure.lookup(ident)
            return self._dyn(value) if dyn else value
        value = Folder(lookup).fold(node)
        return self._dyn(value) if dyn else value

    @property
    def foreign(self) -> bool:
        """Translating a helper of another module: its closure names are not the program's consts."""
        return self.closure is not self.entry_closure

    def static_dim(self, node: ast.AST) -> Dim:
        try:
            value = self.fold(node, static=True)
        except FoldError as exc:
            raise self.fail(f"a shape must be a compile-time constant: `{ast.unparse(node)[:60]}` "
                            f"({exc.reason})", node) from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"a dimension must be an integer, got {value!r}", node)
        expr = self.closure_expr(node)
        return Dim(value, ast.unparse(expr) if expr is not None else str(value))

    def closure_expr(self, node: ast.AST) -> ast.expr | None:
        """A closure-only expression in npusim syntax (its names are consts), or None."""
        def names(n: ast.Name) -> ast.expr | None:
            value = self.closure_value(n.id)
            if isinstance(value, bool | int | float) and n.id in self.consts and n.id not in self.env \
                    and not self.foreign and self.consts[n.id] == value:
                return ast.Name(n.id, ast.Load())
            return None
        return to_npusim(node, names)

    def dtype(self, node: ast.AST) -> str:
        attr = self._pl_attr(node)
        if attr is not None:
            attr = attr.removeprefix("DataType.")
            if attr in optable.DTYPES:
                return optable.DTYPES[attr]
            if attr in optable.UNSUPPORTED_DTYPES:
                raise self.unsupported(f"dtype `pl.{attr}`", node, "npusim has bf16, fp16, fp32 and int32")
        raise self.fail(f"expected a dtype such as pl.FP32, got `{ast.unparse(node)[:40]}`", node)

    # -- statements --
    def block(self, stmts: list[ast.stmt]) -> list[Stmt]:
        """A statement list, with the scopes its `# Scope ...:` comments open (outside kernels only)."""
        with self.collecting() as out:
            open_scopes: list[tuple[ScopeStmt, bool, list[Stmt]]] = []  # (scope, numbered, the list it sits in)

            def close(keep: int) -> None:
                while len(open_scopes) > keep:
                    scope, _, parent = open_scopes.pop()
                    if scope.body:
                        parent.append(scope)

            for s in stmts:
                marker = self._scope_marker(s, stmts) if not (self.in_kernel or self.in_auto) else None
                if marker == "":
                    close(len(open_scopes) - 1 if open_scopes else 0)
                elif marker is not None:
                    numbered = marker.startswith("scope") and marker[5:].isdigit()
                    close(0 if numbered else sum(1 for _, n, _ in open_scopes if n))
                    parent = open_scopes[-1][0].body if open_scopes else out
                    open_scopes.append((ScopeStmt(self.loc(s), marker, []), numbered, parent))
                target = open_scopes[-1][0].body if open_scopes else out
                with self.collecting() as part:
                    self.statement(s)
                target.extend(part)
            close(0)
        return out

    def _scope_marker(self, s: ast.stmt, block: list[ast.stmt]) -> str | None:
        """The scope a comment just before `s` (at the block's indentation) opens: `# Scope N:` a numbered one
        (`scopeN`, closing every open scope), `# Scope NAME:` a named one (nested in the open numbered one; a NAME
        that starts with a digit, `3b`, is `scope3b`, so that it stays a name); "" for `# End of scope` (closing the
        innermost); None for no marker."""
        col = block[0].col_offset
        i = next(k for k, t in enumerate(block) if t is s)
        lo = self._block_start(s) if i == 0 else (getattr(block[i - 1], "end_lineno", None) or block[i - 1].lineno) + 1
        marker = None
        for line in range(lo, s.lineno):
            comment = self.source.comments.get(line)
            if comment is None or comment[0] != col:
                continue
            if m := _SCOPE_COMMENT.search(comment[1]):
                marker = f"scope{m.group(1)}" if m.group(1)[0].isdigit() else m.group(1)
            elif _SCOPE_END.search(comment[1]):
                marker = ""
        return marker

    def _block_start(self, s: ast.stmt) -> int:
        """The first line a comment before `s` may sit on: after the line that opened its block."""
        line = s.lineno - 1
        while line > 0 and (line in self.source.comments or not self.source.lines[line - 1].strip()):
            line -= 1
        return line + 1

    def statement(self, s: ast.stmt) -> None:
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1:
                raise self.unsupported("chained assignment `a = b = ...`", s)
            self.assign(s.targets[0], s.value, s)
        elif isinstance(s, ast.AnnAssign):
            if s.value is None:
                raise self.fail("an annotation without a value declares nothing", s)
            self.assign(s.target, s.value, s)
        elif isinstance(s, ast.For):
            self.for_loop(s)
        elif isinstance(s, ast.If):
            self.if_statement(s)
        elif isinstance(s, ast.With):
            self.with_statement(s)
        elif isinstance(s, ast.Expr):
            self.expression_statement(s)
        elif isinstance(s, ast.Return):
            self.return_statement(s)
        elif isinstance(s, ast.Pass):
            pass
        elif isinstance(s, ast.AugAssign):
            raise self.fail("augmented assignment (`x += ...`) is not allowed in a PyPTO function (PyPTO rejects "
                            "it too): write `x = x + ...` or `x = pl.add(x, ...)`", s)
        elif isinstance(s, ast.Assert):
            raise self.fail("`assert` is not allowed in a PyPTO function body (PyPTO rejects it too): use "
                            "pl.static_assert, or assert in the builder function", s)
        elif isinstance(s, ast.While):
            raise self.unsupported("a `while` loop", s)
        elif isinstance(s, ast.Break | ast.Continue):
            raise self.unsupported(f"`{type(s).__name__.lower()}`", s)
        else:
            raise self.unsupported(f"a `{type(s).__name__}` statement in a PyPTO function", s)

    def assign(self, target: ast.expr, value: ast.expr, stmt: ast.stmt) -> None:
        if isinstance(target, ast.Subscript):
            self.subscript_assign(target, value, stmt)
            return
        if isinstance(target, ast.Tuple):
            self.tuple_assign(target, value, stmt)
            return
        if not isinstance(target, ast.Name):
            raise self.unsupported(f"assignment to `{ast.unparse(target)[:40]}`", stmt)
        py = target.id
        if isinstance(value, ast.Call) and self._op_name(value) == "array.create":
            self.task_array(py, value)
            return
        if isinstance(value, ast.Call) and self._op_name(value) is not None:
            operand = self.op_call(value, py)
            if isinstance(operand, Scalar):
                self._scalar_stmt(py, operand, stmt)
            return
        if isinstance(value, ast.Call) and (self._self_call(value) is not None or self._helper(value) is not None):
            results = self.inline_call(value) if self._self_call(value) is not None else self.call_helper(value)
            if len(results) != 1:
                raise self.fail(f"{ast.unparse(value.func)} returns {len(results)} values", stmt)
            self._bind_operand(py, results[0], stmt)
            return
        if isinstance(value, ast.Subscript):
            operand = self.subscript(value, py)
            if isinstance(operand, Scalar):
                self._scalar_stmt(py, operand, stmt)
            return
        self._bind_operand(py, self.expr(value), stmt)

    def _bind_operand(self, py: str, operand: Operand, stmt: ast.AST) -> None:
        if isinstance(operand, Tid | TidArray):
            ir = self.bind(py, self.types[operand.ir] if isinstance(operand, TidArray) else TASK_ID)
            if ir != operand.ir:
                self.emit(ScalarStmt(self.loc(stmt), ir, name(operand.ir)))
            return
        if isinstance(operand, Value):
            type_ = self.types[operand.ir]
            ir = self.bind(py, type_)
            if ir != operand.ir:
                self.emit(ScalarStmt(self.loc(stmt), ir, name(operand.ir)))
        else:
            self._scalar_stmt(py, operand, stmt)

    def _scalar_stmt(self, py: str, operand: Scalar, stmt: ast.AST) -> None:
        """`py = scalar`; a compile-time value of a name the function assigns once is remembered (`static`)."""
        ir = self.bind(py, SCALAR)
        self.emit(ScalarStmt(self.loc(stmt), ir, operand.expr))
        if operand.value is not None and self.assign_counts and self.assign_counts[-1].get(py, 0) == 1:
            self.static[ir] = operand.value
        else:
            self.static.pop(ir, None)

    def tuple_assign(self, target: ast.Tuple, value: ast.expr, stmt: ast.stmt) -> None:
        if not all(isinstance(t, ast.Name) for t in target.elts):
            raise self.unsupported("nested tuple targets", stmt)
        if isinstance(value, ast.Call) and self._self_call(value) is not None:
            results = self.inline_call(value)
        elif isinstance(value, ast.Call) and self._helper(value) is not None:
            results = self.call_helper(value)
        elif isinstance(value, ast.Call) and self._op_name(value) == "yield_":
            raise self.unsupported("`pl.yield_`", value, "loop-carried values with init_values=")
        elif isinstance(value, ast.Tuple):
            results = [self.expr(v) for v in value.elts]
        elif isinstance(value, ast.Attribute) and value.attr == "shape" and isinstance(
                shaped := self.expr(value.value), Value):  # `M, N = a.shape`: the specialised dims
            results = [Scalar(ast.parse(dim_expr(d), mode="eval").body, int(d)) for d in self.types[shaped.ir].shape]
        else:
            raise self.unsupported("tuple assignment from this expression", stmt)
        if len(results) != len(target.elts):
            raise self.fail(f"cannot unpack {len(results)} values into {len(target.elts)} names", stmt)
        for t, r in zip(target.elts, results, strict=True):
            self._bind_operand(t.id, r, stmt)  # type: ignore[attr-defined]

    def for_loop(self, s: ast.For) -> None:
        if s.orelse:
            raise self.unsupported("`for ... else`", s)
        it = s.iter
        kind = self._op_name(it) if isinstance(it, ast.Call) else None
        if kind == "spmd":
            self.spmd_loop(s, it)  # type: ignore[arg-type]
            return
        if kind == "split_aiv":
            raise self.unsupported("`pl.split_aiv`", it, optable.UNSUPPORTED_SCOPES["split_aiv"])
        if kind not in optable.LOOPS:
            what = ast.unparse(it.func if isinstance(it, ast.Call) else it)[:40]
            raise self.fail(f"a PyPTO loop iterates over pl.range, pl.parallel, pl.unroll or pl.pipeline, not "
                            f"`{what}`", it)
        assert isinstance(it, ast.Call)
        if not isinstance(s.target, ast.Name):
            raise self.unsupported("a tuple loop target", s.target, "loop-carried values with init_values=")
        keywords = {kw.arg: kw.value for kw in it.keywords}
        for key, node in keywords.items():
            if key not in optable.LOOP_KEYWORDS:
                raise self.fail(f"pl.{kind} has no keyword {key!r}", node)
        if "init_values" in keywords:
            raise self.unsupported("`init_values=` (loop-carried values with pl.yield_)", keywords["init_values"])
        if not 1 <= len(it.args) <= 3:
            raise self.fail(f"pl.{kind} takes 1 to 3 bounds (stop / start, stop / start, stop, step)", it)
        bounds = [self.scalar(a, f"a bound of pl.{kind}") for a in it.args]
        start, stop, step = ([Scalar(literal(0), 0), bounds[0], Scalar(literal(1), 1)] if len(bounds) == 1 else
                             [*bounds, Scalar(literal(1), 1)] if len(bounds) == 2 else bounds)
        chunk = None
        if "chunk" in keywords:
            if not self.in_auto:
                raise self.fail("chunk=... loops are only valid inside with pl.auto_incore() (PyPTO rejects this "
                                "too)", keywords["chunk"])
            chunk = self._const_int(keywords["chunk"], "chunk", positive=True)
            policy = keywords.get("chunk_policy")
            if policy is not None and not (isinstance(policy, ast.Constant) and policy.value == "leading_full"):
                raise self.fail("chunk_policy must be 'leading_full'", policy)
        stages = 1
        if kind == "pipeline":
            if "stage" not in keywords:
                raise self.fail("pl.pipeline needs stage=F", it)
            stages = self._const_int(keywords["stage"], "stage", positive=True)
        elif "stage" in keywords:
            raise self.fail(f"pl.{kind} has no keyword 'stage'", keywords["stage"])
        if self.loop_depth >= MAX_LOOP_DEPTH:
            raise self.fail(f"loops are nested more than {MAX_LOOP_DEPTH} deep", s)
        if chunk is not None and self.chunk_depth >= MAX_CHUNK_DEPTH:
            raise self.fail(f"chunked loops are nested more than {MAX_CHUNK_DEPTH} deep", s)
        var = self.bind(s.target.id, SCALAR)
        loop = ForStmt(self.loc(s), var, start.expr, stop.expr, step.expr, optable.LOOPS[kind], [], chunk,
                       stages=stages, text=f"for {s.target.id} in {ast.unparse(it)}")
        self.loop_depth += 1
        self.chunk_depth += chunk is not None
        try:
            loop.body = self.block(s.body)
        finally:
            self.loop_depth -= 1
            self.chunk_depth -= chunk is not None
        self.emit(loop)

    def spmd_loop(self, s: ast.For, it: ast.Call) -> None:
        """`for i in pl.spmd(n, name_hint=...)`: one kernel of n blocks (one dispatch), `i` its block index."""
        if not isinstance(s.target, ast.Name):
            raise self.fail("pl.spmd binds one block index", s.target)
        keywords = {kw.arg: kw.value for kw in it.keywords}
        for key, node in keywords.items():
            if key not in optable.SPMD_LOOP_KEYWORDS:
                raise self.fail(f"pl.spmd has no keyword {key!r}{did_you_mean(key or '', optable.SPMD_LOOP_KEYWORDS)}",
                                node)
        if "deps" in keywords:
            raise self.fail("deps= needs the `with pl.spmd(...) as tid:` form (PyPTO requires it too)",
                            keywords["deps"])
        if self.in_kernel or self.in_auto:
            raise self.fail("pl.spmd inside a kernel (PyPTO rejects nested InCore too)", s)
        blocks = self._spmd_count(it)
        split = self._optimizations(keywords["optimizations"]) if "optimizations" in keywords else "none"
        hint = self._name_hint(keywords.get("name_hint"))
        saved = self.in_kernel, self.block_var
        self.in_kernel = True
        var = self.block_var = self.bind(s.target.id, SCALAR)
        try:
            body = self.block(s.body)
        finally:
            self.in_kernel, self.block_var = saved
        self.emit(KernelStmt(self.loc(s), hint, body, False, text=f"for {s.target.id} in {ast.unparse(it)}",
                             blocks=blocks, block_var=var, split=split))

    def _const_int(self, node: ast.AST, what: str, positive: bool = False) -> int:
        try:
            value = self.fold(node, static=True)
        except FoldError as exc:
            raise self.fail(f"{what} must be a compile-time integer ({exc.reason})", node) from None
        if isinstance(value, bool) or not isinstance(value, int) or (positive and value < 1):
            raise self.fail(f"{what} must be a {'positive ' if positive else ''}integer, got {value!r}", node)
        return value

    def if_statement(self, s: ast.If) -> None:
        cond = self.scalar(s.test, "an if condition")
        stmt = IfStmt(self.loc(s), cond.expr, self.block(s.body), self.block(s.orelse))
        self.emit(stmt)

    def with_statement(self, s: ast.With) -> None:
        if len(s.items) != 1:
            raise self.fail("one context manager per `with` (as PyPTO requires)", s)
        item = s.items[0]
        call = item.context_expr
        kind = self._op_name(call) if isinstance(call, ast.Call) else None
        if kind in optable.UNSUPPORTED_SCOPES:
            raise self.unsupported(f"`pl.{kind}`", call, optable.UNSUPPORTED_SCOPES[kind])
        if kind in ("manual_scope", "scope"):
            self.runtime_scope(s, kind, call)  # type: ignore[arg-type]
            return
        if kind not in optable.SCOPES:
            raise self.fail(f"expected `with pl.at(...)`, `pl.spmd(...)`, `pl.manual_scope()`, `pl.incore()` or "
                            f"`pl.auto_incore()`, got `{ast.unparse(call)[:50]}`", call)
        assert isinstance(call, ast.Call)
        tid = None
        if item.optional_vars is not None:
            if kind not in ("at", "spmd") or not isinstance(item.optional_vars, ast.Name):
                raise self.unsupported(f"`with pl.{kind}(...) as ...`", item.optional_vars,
                                       "only pl.at and pl.spmd bind a task id")
            tid = item.optional_vars.id
        keywords = {kw.arg: kw.value for kw in call.keywords}
        for key, node in keywords.items():
            if key not in optable.SCOPES[kind]:
                raise self.fail(f"pl.{kind} has no keyword {key!r}{did_you_mean(key or '', optable.SCOPES[kind])}",
                                node)
        if call.args and kind not in ("at", "spmd"):
            raise self.fail(f"pl.{kind} takes keyword arguments only", call)
        auto = kind == "auto_incore"
        split = "none"
        blocks = None
        if kind == "at":
            level = keywords.get("level", call.args[0] if call.args else None)
            if level is None or self._pl_attr(level) != "Level.CORE_GROUP":
                raise self.unsupported(f"`pl.at(level={ast.unparse(level) if level else ''})`", call,
                                       "only level=pl.Level.CORE_GROUP makes a kernel")
            opt = keywords.get("optimization")
            if opt is not None:
                opt_name = self._pl_attr(opt.func if isinstance(opt, ast.Call) else opt)
                if opt_name != "chunked_loop_optimizer":
                    raise self.unsupported(f"`optimization={ast.unparse(opt)}`", opt)
                auto = True
                if isinstance(opt, ast.Call):
                    for kw in opt.keywords:
                        if kw.arg == "split":
                            split = self._split_mode(kw.value)
        if "optimizations" in keywords:
            split = self._optimizations(keywords["optimizations"])
        for key in ("no_dep_args", "predicate", "windowize"):
            if key in keywords:
                raise self.unsupported(f"`pl.{kind}({key}=...)`", keywords[key], {
                    "no_dep_args": "opting tensors out of dependency tracking",
                    "predicate": "a predicated SPMD launch", "windowize": "windowed dispatch"}[key])
        if kind == "spmd":
            blocks = self._spmd_count(call)
        if "split" in keywords:
            split = self._split_mode(keywords["split"])
        hint_value = self._name_hint(keywords.get("name_hint"))
        deps = self._deps(keywords.get("deps"), tid is not None or kind == "at")
        if self.in_kernel or self.in_auto:
            raise self.fail("a kernel scope inside another kernel scope (PyPTO rejects nested InCore too)", s)
        saved = self.in_kernel, self.in_auto, self.block_var
        self.in_kernel, self.in_auto = not auto, auto
        block_var = None
        if blocks is not None:
            block_var = self.block_var = self.fresh("block_idx", SCALAR)
        try:
            body = self.block(s.body)
        finally:
            self.in_kernel, self.in_auto, self.block_var = saved
        tid_ir = self.bind(tid, TASK_ID) if tid is not None else None
        self.emit(KernelStmt(self.loc(s), hint_value, body, auto, text=f"with {ast.unparse(call)}:", blocks=blocks,
                             block_var=block_var, split=split, tid=tid_ir, deps=deps))

    def runtime_scope(self, s: ast.With, kind: str, call: ast.Call) -> None:
        """`with pl.manual_scope():` / `pl.scope(mode=pl.ScopeMode.MANUAL)`: footprint tracking off inside;
        `pl.scope()` (AUTO) is the default tracking: its body as is."""
        if s.items[0].optional_vars is not None:
            raise self.fail(f"pl.{kind} binds nothing", s.items[0].optional_vars)
        manual = kind == "manual_scope"
        for kw in call.keywords:
            if kind == "scope" and kw.arg == "mode":
                mode = self._pl_attr(kw.value)
                if mode not in ("ScopeMode.AUTO", "ScopeMode.MANUAL"):
                    raise self.fail(f"pl.scope mode is pl.ScopeMode.AUTO or MANUAL, got `{ast.unparse(kw.value)}`",
                                    kw.value)
                manual = mode == "ScopeMode.MANUAL"
            elif kw.arg not in ("name_hint",):
                raise self.fail(f"pl.{kind} has no keyword {kw.arg!r}", kw.value)
        if self.in_kernel or self.in_auto:
            raise self.fail(f"pl.{kind} belongs to orchestration, not inside a kernel (PyPTO rejects it too)", s)
        body = self.block(s.body)
        if manual:
            if any(isinstance(x, ManualStmt) for x in walk(body)):
                raise self.fail("a manual scope inside another manual scope (the runtime forbids it)", s)
            self.emit(ManualStmt(self.loc(s), body))
        else:
            self.out.extend(body)

    def _name_hint(self, hint: ast.expr | None) -> str | None:
        if hint is None:
            return None
        value = self.fold(hint) if not isinstance(hint, ast.Constant) else hint.value
        if not isinstance(value, str) or (value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value)):
            raise self.fail("name_hint must be an identifier string", hint)
        return value or None

    def _spmd_count(self, call: ast.Call) -> ast.expr:
        """`pl.spmd(n, ...)`: the block count, a scalar of orchestration."""
        count = call.args[0] if call.args else next((kw.value for kw in call.keywords if kw.arg == "core_num"), None)
        if count is None:
            raise self.fail("pl.spmd(n, ...) needs the block count n", call)
        return self.scalar(count, "pl.spmd's block count").expr

    def _optimizations(self, node: ast.expr) -> str:
        """`optimizations=[pl.split(mode), pl.cross_core_slot(slot_num=N)]`: the split mode (the slot count
        sizes the cube <-> vector ring, which npusim does not model)."""
        if not isinstance(node, ast.List | ast.Tuple):
            raise self.fail("optimizations= must be a list written inline, like [pl.split(pl.SplitMode.UP_DOWN)] "
                            "(PyPTO requires it too)", node)
        split = "none"
        for opt in node.elts:
            fn = self._pl_attr(opt.func) if isinstance(opt, ast.Call) else self._pl_attr(opt)
            if fn == "split" and isinstance(opt, ast.Call) and opt.args:
                split = self._split_mode(opt.args[0])
            elif fn == "cross_core_slot":
                continue
            else:
                raise self.unsupported(f"the optimization `{ast.unparse(opt)[:50]}`", opt)
        return split

    def _deps(self, node: ast.expr | None, allowed: bool) -> list[str]:
        """`deps=[tid, ...]`: the task-id names (a list, or a comprehension over a compile-time range)."""
        if node is None:
            return []
        if not allowed:
            raise self.fail("deps= on pl.spmd needs `with pl.spmd(...) as tid` (PyPTO requires it too)", node)
        out: list[str] = []
        for op in self._tid_list(node):
            if op.ir not in out:
                out.append(op.ir)
        return out

    def _tid_list(self, node: ast.expr) -> list[Tid]:
        """`[t1, arr[i], arr2]` (an array standing for all of its elements) or `[arr[i] for i in range(K)]` over
        a compile-time iterable."""
        if isinstance(node, ast.ListComp):
            return [t for e in self._expand_comprehension(node) for t in self._tid_list(ast.List([e], ast.Load()))]
        if isinstance(node, ast.List | ast.Tuple):
            items = []
            for e in node.elts:
                op = self.expr(e)
                if isinstance(op, TidArray):
                    out = self.fresh("_tid", TASK_ID)
                    self.emit(TaskIdsStmt(self.loc(e), out, [op.ir]))
                    op = Tid(out)
                if not isinstance(op, Tid):
                    raise self.fail(f"deps= takes task ids (`with ... as tid`), got `{ast.unparse(e)[:40]}`", e)
                items.append(op)
            return items
        raise self.fail("deps= must be a list of task ids", node)

    def _expand_comprehension(self, node: ast.ListComp) -> list[ast.expr]:
        """`[e for v in ITER]` with a compile-time ITER: `e` once per item, `v` written as the item."""
        if len(node.generators) != 1 or node.generators[0].ifs or not isinstance(node.generators[0].target, ast.Name):
            raise self.unsupported("a comprehension with several `for`s or an `if` in deps=", node)
        gen = node.generators[0]
        try:
            items = list(self.fold(gen.iter))
        except (FoldError, TypeError) as exc:
            why = exc.reason if isinstance(exc, FoldError) else "not a sequence"
            raise self.fail(f"deps= comprehension: `{ast.unparse(gen.iter)[:40]}` must be known at compile time "
                            f"({why})", gen.iter) from None
        var = gen.target.id  # type: ignore[union-attr]
        out = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int):
                raise self.fail(f"deps= comprehension: {var} takes {item!r}, not an integer", gen.iter)
            out.append(_substitute(node.elt, var, item))
        return out

    def _split_mode(self, node: ast.expr) -> str:
        mode = self._pl_attr(node)
        modes = {"SplitMode.NONE": "none", "SplitMode.UP_DOWN": "up_down", "SplitMode.LEFT_RIGHT": "left_right"}
        if mode not in modes:
            raise self.fail(f"a split mode is pl.SplitMode.NONE, UP_DOWN or LEFT_RIGHT, got `{ast.unparse(node)}`",
                            node)
        return modes[mode]

    def expression_statement(self, s: ast.Expr) -> None:
        value = s.value
        if isinstance(value, ast.Constant):
            return  # a docstring
        if isinstance(value, ast.Call):
            op = self._op_name(value)
            if op == "static_assert":
                self.static_assert(value)
                return
            if op == "static_print":
                return
            if op == "write":  # `pl.write(t, [i, j], v)` updates t: `t = write(t, [i, j], v)`
                first = value.args[0] if value.args else next((k.value for k in value.keywords
                                                               if k.arg in ("tile", "tensor")), None)
                if not isinstance(first, ast.Name):
                    raise self.fail("pl.write writes into a tile named by a variable", value)
                self.op_call(value, first.id)
                return
            if op is not None:
                self.op_call(value, None)
                return
            if self._self_call(value) is not None:
                self.inline_call(value)
                return
            if self._helper(value) is not None:
                self.call_helper(value)
                return
            if isinstance(value.func, ast.Attribute) and value.func.attr == "bind_dynamic":
                self.bind_dynamic(value)
                return
        raise self.unsupported(f"the expression statement `{ast.unparse(value)[:50]}`", s)

    def bind_dynamic(self, call: ast.Call) -> None:
        """`x.bind_dynamic(dim, DYN)`: the specialiser marks dim `dim` of x as DYN and deletes the call; the
        dims are already bound from the specs, so this only checks they agree."""
        owner = self.expr(call.func.value)  # type: ignore[attr-defined]
        if not isinstance(owner, Value) or len(call.args) != 2:
            raise self.fail("TENSOR.bind_dynamic(dim, pl.dynamic var)", call)
        axis = self._const_int(call.args[0], "the dimension")
        dyn = self.fold(call.args[1], dyn=False)
        shape = self.types[owner.ir].shape  # type: ignore[union-attr]
        if not isinstance(dyn, DynDim) or not -len(shape) <= axis < len(shape):
            raise self.fail("TENSOR.bind_dynamic(dim, pl.dynamic var)", call)
        if self.dyn.setdefault(dyn.name, int(shape[axis])) != int(shape[axis]):
            raise self.fail(f"pl.dynamic({dyn.name!r}) is {self.dyn[dyn.name]} but dimension {axis} of this tensor "
                            f"is {int(shape[axis])}", call)

    def static_assert(self, call: ast.Call) -> None:
        if not call.args:
            raise self.fail("pl.static_assert(condition, msg='')", call)
        try:
            holds = self.fold(call.args[0])
        except FoldError as exc:
            raise self.fail(f"pl.static_assert needs a compile-time condition ({exc.reason})", call) from None
        if not holds:
            msg = call.args[1].value if len(call.args) > 1 and isinstance(call.args[1], ast.Constant) else ""
            raise self.fail(f"static assertion failed: {ast.unparse(call.args[0])}" + (f": {msg}" if msg else ""),
                            call)

    def return_statement(self, s: ast.Return) -> None:
        if len(self.calls) > 1:
            raise self.fail("a `return` before the end of an inlined function", s)
        values = s.value.elts if isinstance(s.value, ast.Tuple) else [s.value] if s.value is not None else []
        for v in values:
            if isinstance(v, ast.Call) and self._helper(v) is not None:
                self.call_helper(v)  # `return helper(...)`: the helper writes the entry's outputs
                continue
            if not (isinstance(v, ast.Name) and v.id in self.env):
                raise self.unsupported(f"returning `{ast.unparse(v)[:40]}`", v,
                                       "npusim's outputs are the entry function's tensor parameters")

    # -- inlining self.f(...) --
    def _self_call(self, call: ast.Call) -> str | None:
        f = call.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self":
            return f.attr
        return None

    def inline_call(self, call: ast.Call) -> list[Operand]:
        callee_name = self._self_call(call)
        assert callee_name is not None
        if callee_name not in self.functions:
            raise self.fail(f"self.{callee_name} is not a @pl.function of this program"
                            f"{did_you_mean(callee_name, self.functions)}", call)
        if callee_name in self.calls:
            raise self.fail(f"self.{callee_name} calls itself (recursion)", call)
        if call.keywords:
            raise self.fail("calls between @pl.function methods take positional arguments only (as in PyPTO)", call)
        fn, kind = self.functions[callee_name]
        params = [a.arg for a in fn.args.args[1:]]
        if len(call.args) != len(params):
            raise self.fail(f"self.{callee_name} takes {len(params)} arguments, got {len(call.args)}", call)
        operands = [self.expr(a) for a in call.args]
        saved_env = self.env
        self.env = {}
        for p, op in zip(params, operands, strict=True):  # the callee's parameters are its own names
            type_ = self.types[op.ir] if isinstance(op, Value) else SCALAR
            self.emit(ScalarStmt(self.loc(call), self.bind(p, type_), name(op.ir) if isinstance(op, Value)
                                 else op.expr))
        self.calls.append(callee_name)
        try:
            return self._inline_body(fn, kind == "InCore", self.loc(call), None, f"self.{callee_name}(...)")
        finally:
            self.calls.pop()
            self.env = saved_env

    def _inline_body(self, fn: ast.FunctionDef, incore: bool, loc: Location, kernel: str | None,
                     text: str) -> list[Operand]:
        """A called function's body, its parameters bound: one kernel of its own when it is an InCore function
        called outside a kernel, else its statements in place; returns what its final `return` gives."""
        body_stmts = list(fn.body)
        ret: ast.Return | None = None
        if body_stmts and isinstance(body_stmts[-1], ast.Return):
            ret = body_stmts.pop()  # type: ignore[assignment]
        if incore and not (self.in_kernel or self.in_auto):
            self.in_kernel = True
            try:
                body = self.block(body_stmts)
            finally:
                self.in_kernel = False
            self.emit(KernelStmt(loc, kernel, body, False, text=text))
        else:
            for stmt in body_stmts:
                self.statement(stmt)
        if ret is None or ret.value is None:
            return []
        values = ret.value.elts if isinstance(ret.value, ast.Tuple) else [ret.value]
        return [self.expr(v) for v in values]

    # -- helpers called by name (the @pl.jit family) --
    def _helper(self, call: ast.Call) -> tuple[FunctionValue, str] | None:
        """A call of a PyPTO function by bare name (`rms_norm(x, w, out)`): its value and decorator kind."""
        if not isinstance(call.func, ast.Name) or call.func.id in self.env:
            return None
        value = self.closure_value(call.func.id)
        if not isinstance(value, FunctionValue):
            return None
        kind = dsl_kind(value.node)
        if kind is None:
            return None
        return value, kind

    def call_helper(self, call: ast.Call) -> list[Operand]:
        """Inline a `@pl.jit.inline` / `.opaque` helper at its call (its locals its own), or make a
        `@pl.jit.incore` helper one kernel; the helper's names resolve in its own module."""
        found = self._helper(call)
        assert found is not None
        fv, kind = found
        fn = fv.node
        if kind == "jit.extern":
            return self.extern_call(fv, call)
        if kind in ("jit", "jit.host"):
            raise self.fail(f"{fn.name} is a @pl.{kind} entry; an entry calls @pl.jit.inline/.incore/.opaque "
                            "helpers (PyPTO does not discover another @pl.jit)", call)
        if fn.name in self.calls:
            raise self.fail(f"{fn.name} calls itself (recursion)", call)
        if len(self.calls) > 40:
            raise self.fail("helpers nested more than 40 deep", call)
        a = fn.args
        if a.vararg or a.kwarg or a.posonlyargs:
            raise self.unsupported(f"*args or **kwargs in helper {fn.name}", call)
        params = [*a.args, *a.kwonlyargs]
        bound: dict[str, Operand] = {}
        if len(call.args) > len(a.args):
            raise self.fail(f"{fn.name} takes {len(a.args)} positional arguments, got {len(call.args)}", call)
        for p, node in zip(a.args, call.args, strict=False):
            bound[p.arg] = self.expr(node)
        for kw in call.keywords:
            if kw.arg is None or kw.arg not in [p.arg for p in params]:
                raise self.fail(f"{fn.name} has no parameter {kw.arg!r}", kw.value)
            bound[kw.arg] = self.expr(kw.value)
        defaults = dict(zip([p.arg for p in a.args[len(a.args) - len(a.defaults):]], a.defaults, strict=True))
        defaults.update({p.arg: d for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is not None})
        scope = getattr(fv, "scope", None) or (LookupScope(fv.lookup) if fv.lookup is not None else self.closure)
        saved = self.env, self.closure, self.source
        self.env = {}
        self.closure, self.source = scope, self.model.source_of(fv.file or self.source.file)
        self.calls.append(fn.name)
        self.assign_counts.append(_assignments(fn))
        try:
            for p in params:
                if p.arg in bound:
                    op = bound[p.arg]
                elif p.arg in defaults:
                    op = self.expr(defaults[p.arg])
                else:
                    raise ProgramError(f"{fn.name}: missing argument {p.arg!r}", saved[2].loc(call))
                if isinstance(op, Value) and p.annotation is not None:
                    self._check_param_shape(op, p, fn.name)
                self._bind_operand(p.arg, op, p)
            return self._inline_body(fn, kind == "jit.incore", saved[2].loc(call), fn.name, f"{fn.name}(...)")
        finally:
            self.calls.pop()
            self.assign_counts.pop()
            self.env, self.closure, self.source = saved

    def extern_call(self, fv: FunctionValue, call: ast.Call) -> list[Operand]:
        """A `@pl.jit.extern` kernel (hand-written C++) called in a kernel scope (or alone: a kernel of its own):
        one ExternStmt naming the GM values it reads (pl.Tensor, pl.InOut parameters) and writes (pl.Out,
        pl.InOut); its value is its first written argument, as PyPTO binds a single-result extern's return."""
        fn = fv.node
        saved = self.closure, self.source  # the decorator and annotations are read in the extern's own module
        self.closure = getattr(fv, "scope", None) or (LookupScope(fv.lookup) if fv.lookup is not None else saved[0])
        self.source = self.model.source_of(fv.file or saved[1].file)
        try:
            core, lanes = self._extern_core(fn)
            directions = {p.arg: self._direction(p.annotation) for p in fn.args.args}
        finally:
            self.closure, self.source = saved
        a = fn.args
        if a.vararg or a.kwarg or a.posonlyargs or a.kwonlyargs or a.defaults:
            raise self.unsupported(f"extern {fn.name} with defaults, *args or keyword-only parameters", fn)
        if len(call.args) > len(a.args):
            raise self.fail(f"{fn.name} takes {len(a.args)} arguments, got {len(call.args)}", call)
        nodes = dict(zip([p.arg for p in a.args], call.args, strict=False))
        for kw in call.keywords:
            if kw.arg is None or kw.arg not in [p.arg for p in a.args] or kw.arg in nodes:
                raise self.fail(f"{fn.name}: unexpected argument {kw.arg!r}", kw.value)
            nodes[kw.arg] = kw.value
        reads: list[str] = []
        writes: list[str] = []
        for p in a.args:
            if p.arg not in nodes:
                raise self.fail(f"{fn.name}: missing argument {p.arg!r}", call)
            node = nodes[p.arg]
            direction = directions[p.arg]
            if direction == "scalar":
                self.scalar(node, f"{fn.name}'s scalar argument {p.arg!r}")
                continue
            if not isinstance(node, ast.Name):
                raise self.fail(f"{fn.name}: pass the tensor {p.arg!r} as a name (a view made before the kernel)",
                                node)
            op = self.expr(node)
            if not isinstance(op, Value):
                raise self.fail(f"{fn.name}: {p.arg!r} is a tensor parameter, got `{ast.unparse(node)[:40]}`", node)
            if direction in ("in", "inout"):
                reads.append(op.ir)
            if direction in ("out", "inout"):
                writes.append(op.ir)
        stmt = ExternStmt(self.loc(call), fn.name, core, lanes, reads, writes)
        if self.in_kernel:
            self.emit(stmt)
        else:
            if self.in_auto:
                raise self.fail(f"extern {fn.name} inside pl.auto_incore: call it in a pl.at or pl.spmd scope", call)
            self.emit(KernelStmt(self.loc(call), fn.name, [stmt], False, text=f"{fn.name}(...)"))
        return [Value(writes[0])] if writes else []

    def _extern_core(self, fn: ast.FunctionDef) -> tuple[str, int]:
        """(core, AIV lanes) from `@pl.jit.extern(core_type=..., dual_aiv_dispatch=...)`: "aiv" one AIV, "aic"
        one AIC, "mixed" an AIC with one AIV lane, or both with dual_aiv_dispatch=True (pypto e2d0f78ae)."""
        deco = next(d for d in fn.decorator_list if isinstance(d, ast.Call | ast.Attribute))
        keywords = {kw.arg: kw.value for kw in deco.keywords} if isinstance(deco, ast.Call) else {}
        values = {}
        for key, default in (("core_type", "aiv"), ("dual_aiv_dispatch", False)):
            node = keywords.get(key)
            try:
                values[key] = self.fold(node) if node is not None else default
            except FoldError as exc:
                raise self.fail(f"extern {fn.name}: {key} must be a constant ({exc.reason})", node) from None
        cores = {"aiv": "aiv", "aic": "aic", "mixed": "mix"}
        core = cores.get(values["core_type"])  # type: ignore[arg-type]
        if core is None:
            raise self.fail(f"extern {fn.name}: core_type is one of {', '.join(map(repr, cores))}, got "
                            f"{values['core_type']!r}", keywords.get("core_type", deco))
        return core, 2 if core == "mix" and values["dual_aiv_dispatch"] is True else 1

    def _direction(self, ann: ast.expr | None) -> str:
        """"in", "out", "inout" for a tensor parameter's annotation, "scalar" for pl.Scalar[...]."""
        head = ann.value if isinstance(ann, ast.Subscript) else ann
        attr = self._pl_attr(head) if head is not None else None
        return {"Out": "out", "InOut": "inout", "Scalar": "scalar"}.get(attr or "", "in")

    def _check_param_shape(self, op: Value, p: ast.arg, fn: str) -> None:
        """A helper's `pl.Tensor[[dims], dtype]` parameter against its argument: pl.dynamic dims bind (or
        must agree), static dims must match."""
        ann = p.annotation
        if isinstance(ann, ast.Subscript) and self._pl_attr(ann.value) in ("Out", "InOut"):
            ann = ann.slice
        if not (isinstance(ann, ast.Subscript) and self._pl_attr(ann.value) == "Tensor"
                and isinstance(ann.slice, ast.Tuple) and isinstance(ann.slice.elts[0], ast.List | ast.Tuple)):
            return
        shape = self.types[op.ir].shape  # type: ignore[union-attr]
        dims = ann.slice.elts[0].elts  # type: ignore[attr-defined]
        if len(dims) != len(shape):
            raise self.fail(f"{fn}: parameter {p.arg!r} is {len(dims)}-D, its argument {len(shape)}-D", p)
        for i, d in enumerate(dims):
            try:
                value = self.fold(d, dyn=False)
            except FoldError:
                continue
            if isinstance(value, DynDim):
                if self.dyn.setdefault(value.name, int(shape[i])) != int(shape[i]):
                    raise self.fail(f"{fn}: pl.dynamic({value.name!r}) is {self.dyn[value.name]}, but dimension {i} "
                                    f"of the argument for {p.arg!r} is {int(shape[i])}", p)
            elif isinstance(value, int) and not isinstance(value, bool) and value != int(shape[i]):
                raise self.fail(f"{fn}: parameter {p.arg!r} has dimension {i} = {value}, its argument "
                                f"{int(shape[i])}", p)

    # -- expressions --
    def _op_name(self, call: ast.AST) -> str | None:
        """`X` of a call `pl.X(...)`, `pl.tensor.X(...)`, `pl.tile.X(...)`, `pl.system.X(...)`."""
        if not isinstance(call, ast.Call):
            return None
        attr = self._pl_attr(call.func)
        if attr is None:
            return None
        parts = attr.split(".")
        if len(parts) == 2 and parts[0] in ("tensor", "tile", "system"):
            return optable.TENSOR_NAMESPACE.get(parts[1], parts[1]) if parts[0] == "tensor" else parts[1]
        return attr

    def scalar(self, node: ast.expr, what: str) -> Scalar:
        operand = self.expr(node)
        if not isinstance(operand, Scalar):
            raise self.fail(f"{what} must be a scalar, got the tensor `{ast.unparse(node)[:40]}`", node)
        return operand

    def expr(self, node: ast.expr) -> Operand:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool | int | float):
                return Scalar(literal(node.value), node.value)
            raise self.fail(f"the literal {node.value!r} is not a number", node)
        if isinstance(node, ast.Name):
            return self.name_operand(node)
        if isinstance(node, ast.Call):
            if self._op_name(node) is not None:
                return self.op_call(node, None)
            if self._self_call(node) is not None or self._helper(node) is not None:
                results = self.inline_call(node) if self._self_call(node) is not None else self.call_helper(node)
                if len(results) != 1:
                    raise self.fail(f"{ast.unparse(node.func)} returns {len(results)} values", node)
                return results[0]
            return self.builtin_call(node)
        if isinstance(node, ast.Subscript):
            return self.subscript(node, None)
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.Compare | ast.BoolOp):
            return self.scalar_expression(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        raise self.unsupported(f"a {type(node).__name__} expression (`{ast.unparse(node)[:40]}`)", node)

    def name_operand(self, node: ast.Name) -> Operand:
        if node.id in self.env:
            ir = self.env[node.id]
            if self.types.get(ir) == TASK_ID:
                return Tid(ir)  # type: ignore[return-value]
            if isinstance(self.types.get(ir), TaskArrayType):
                return TidArray(ir)  # type: ignore[return-value]
            return Value(ir) if self.types[ir] != SCALAR else Scalar(name(ir), self.static.get(ir))
        value = self.closure_value(node.id)
        if value is KeyError:
            known = list(self.env) + [n for n in self.consts]
            raise self.fail(f"unknown name {node.id!r}{did_you_mean(node.id, known)}", node)
        if isinstance(value, Unfoldable):
            raise self.fail(f"{node.id!r} cannot be computed without running the program: {value.reason} "
                            f"({value.loc})", node)
        if isinstance(value, bool | int | float):
            if node.id in self.consts and not self.foreign and self.consts[node.id] == value:
                return Scalar(name(node.id), value)
            return Scalar(literal(value), value)
        raise self.fail(f"{node.id!r} is not a number, tensor or DSL variable", node)

    def builtin_call(self, node: ast.Call) -> Scalar:
        try:
            value = self.fold(node)
        except FoldError as exc:
            raise self.unsupported(f"the call `{ast.unparse(node.func)[:40]}(...)`", node, exc.reason) from None
        expr = self.closure_expr(node)
        return Scalar(expr if expr is not None else literal(value), value)

    def scalar_expression(self, node: ast.expr) -> Scalar:
        try:
            value = self.fold(node, static=True)
        except FoldError:
            value = None
        if value is not None:
            if not isinstance(value, bool | int | float):
                raise self.fail(f"`{ast.unparse(node)[:40]}` is not a number", node)
            expr = self.closure_expr(node)
            return Scalar(expr if expr is not None else literal(value), value)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Pow):
                raise self.fail("`**` on runtime scalars is not supported (PyPTO rejects it too)", node)
            if not isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.FloorDiv | ast.Mod):
                raise self.unsupported(f"the operator `{type(node.op).__name__}`", node)
            left = self.scalar(node.left, "an operand of arithmetic")
            right = self.scalar(node.right, "an operand of arithmetic")
            expr = ast.BinOp(left.expr, node.op, right.expr)
            if left.value is not None and right.value is not None:  # both known at import (tensor dims)
                try:
                    return Scalar(expr, Folder(_no_names).fold(
                        ast.BinOp(literal(left.value), node.op, literal(right.value))))
                except FoldError:
                    pass
            return Scalar(expr)
        if isinstance(node, ast.UnaryOp):
            return Scalar(ast.UnaryOp(node.op, self.scalar(node.operand, "an operand").expr))
        if isinstance(node, ast.BoolOp):
            return Scalar(ast.BoolOp(node.op, [self.scalar(v, "an operand").expr for v in node.values]))
        assert isinstance(node, ast.Compare)
        if any(isinstance(op, ast.In | ast.NotIn | ast.Is | ast.IsNot) for op in node.ops):
            raise self.unsupported("`in` / `is` comparisons", node)
        parts = [self.scalar(v, "an operand of a comparison").expr for v in [node.left, *node.comparators]]
        return Scalar(ast.Compare(parts[0], node.ops, parts[1:]))

    def attribute(self, node: ast.Attribute) -> Operand:
        """A closure attribute (a config field `C.rows`, a property) folds to its number."""
        try:
            value = self.fold(node)
        except FoldError as exc:
            raise self.fail(f"`{ast.unparse(node)[:40]}` is not a value here ({exc.reason})", node) from None
        if isinstance(value, bool | int | float):
            return Scalar(literal(value), value)
        raise self.fail(f"`{ast.unparse(node)[:40]}` is not a number", node)

    def subscript(self, node: ast.Subscript, target: str | None) -> Operand:
        """`t[a:b, c:d]` -> slice; `t[i, j]` (all scalars, full rank) -> read; `x.shape[k]` -> its dim."""
        base = node.value
        if isinstance(base, ast.Attribute) and base.attr == "shape":
            owner = self.expr(base.value)
            if isinstance(owner, Value):
                k = self._const_int(node.slice, "a shape index")
                shape = self.types[owner.ir].shape  # type: ignore[union-attr]
                if not -len(shape) <= k < len(shape):
                    raise self.fail(f"shape index {k} out of range for a {len(shape)}-D tensor", node)
                d = shape[k]
                return Scalar(ast.parse(dim_expr(d), mode="eval").body, int(d))
        owner = self.expr(base)
        if isinstance(owner, TidArray):
            return self.task_element(owner, node)  # type: ignore[return-value]
        if isinstance(owner, Scalar):
            try:
                value = self.fold(node)
            except FoldError as exc:
                raise self.fail(f"cannot index `{ast.unparse(base)[:30]}` ({exc.reason})", node) from None
            if not isinstance(value, bool | int | float):
                raise self.fail(f"`{ast.unparse(node)[:40]}` is not a number", node)
            return Scalar(literal(value), value)
        src_type = self.types[owner.ir]
        assert isinstance(src_type, ValueType)
        indices = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if len(indices) != len(src_type.shape):
            raise self.fail(f"`{ast.unparse(base)}` is {len(src_type.shape)}-D: give {len(src_type.shape)} "
                            f"indices, got {len(indices)}", node)
        if not any(isinstance(i, ast.Slice) for i in indices):
            idx = [self.scalar(i, "an index").expr for i in indices]
            return Scalar(ast.Call(name("read"), [name(owner.ir), ast.List(idx, ast.Load())], []))
        offsets, shape = self._window(indices, src_type, node)
        result_type = ValueType(tuple(shape), src_type.dtype)
        out = self.bind(target, result_type) if target is not None else self.temp(result_type)
        args = {"t": name(owner.ir), "shape": ast.List([ast.parse(dim_expr(d), mode="eval").body for d in shape],
                                                       ast.Load()),
                "offset": ast.List(offsets, ast.Load()), "valid_shape": None}
        self.emit(OpStmt(self.loc(node), out, "slice", args, f"{ast.unparse(base)}[...]"))
        return Value(out)

    def _window(self, indices: list[ast.expr], src: ValueType, node: ast.AST) -> tuple[list[ast.expr], list[Dim]]:
        offsets: list[ast.expr] = []
        shape: list[Dim] = []
        for i, (index, size) in enumerate(zip(indices, src.shape, strict=True)):
            if isinstance(index, ast.Slice):
                if index.step is not None:
                    raise self.unsupported("a slice step", index)
                lower = self.scalar(index.lower, "a slice bound") if index.lower is not None else Scalar(literal(0), 0)
                if index.upper is None:
                    if lower.value is None:
                        raise self.fail("`a:` needs a compile-time `a` (the extent must be static)", index)
                    extent = Dim(int(size) - lower.value, f"{dim_expr(size)} - {ast.unparse(lower.expr)}"
                                 if lower.value else dim_expr(size))
                else:
                    extent = self._extent(index.lower, index.upper, node)
                offsets.append(lower.expr)
                shape.append(extent)
            else:
                offsets.append(self.scalar(index, f"index {i}").expr)
                shape.append(Dim(1))
        return offsets, shape

    def _extent(self, lower: ast.expr | None, upper: ast.expr, node: ast.AST) -> Dim:
        """`upper - lower` folded: static even when both bounds move with a loop variable (`p:p + 64`)."""
        diff = upper if lower is None else ast.BinOp(upper, ast.Sub(), lower)
        try:
            value = self.fold(diff, static=True)
        except FoldError:
            value = self._static_difference(lower, upper)
            if value is None:
                raise self.fail(f"the extent of `{ast.unparse(node)[:60]}` must be a compile-time constant",
                                node) from None
        expr = self.closure_expr(diff)
        return Dim(value, ast.unparse(expr) if expr is not None else str(value))

    def _static_difference(self, lower: ast.expr | None, upper: ast.expr) -> int | None:
        """`upper - lower` when the two bounds differ by a compile-time integer: both read as sums of terms
        times integers (`(q_base + 8) * 128 - q_base * 128`, `kv_col + HEAD_DIM - (kv_col + HALF_DIM)`), the
        moving terms cancelling."""
        if lower is None:
            return None
        hi, lo = self._linear(upper), self._linear(lower)
        if hi is None or lo is None:
            return None
        terms = dict(hi[0])
        for t, c in lo[0].items():
            terms[t] = terms.get(t, 0) - c
        if any(c for c in terms.values()):
            return None
        return hi[1] - lo[1]

    def _linear(self, node: ast.expr) -> tuple[dict[str, int], int] | None:
        """`node` as (integer coefficient per opaque term, constant), terms keyed by their syntax."""
        try:
            value = self.fold(node, static=True)
        except FoldError:
            value = None
        if value is not None:
            return ({}, value) if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            a, b = self._linear(node.left), self._linear(node.right)
            if a is None or b is None:
                return None
            sign = 1 if isinstance(node.op, ast.Add) else -1
            terms = dict(a[0])
            for t, c in b[0].items():
                terms[t] = terms.get(t, 0) + sign * c
            return terms, a[1] + sign * b[1]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            a, b = self._linear(node.left), self._linear(node.right)
            if a is None or b is None:
                return None
            if not a[0] or not b[0]:
                k, (terms, const) = (a[1], b) if not a[0] else (b[1], a)
                return {t: c * k for t, c in terms.items()}, const * k
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            a = self._linear(node.operand)
            return None if a is None else ({t: -c for t, c in a[0].items()}, -a[1])
        return {ast.dump(node): 1}, 0

    def subscript_assign(self, target: ast.Subscript, value: ast.expr, stmt: ast.stmt) -> None:
        """`t[...] = v` -> `t = assemble(t, v, offsets)` (pypto HEAD's sugar)."""
        owner = self.expr(target.value)
        if isinstance(owner, TidArray):
            self.set_task_element(owner, target, value, stmt)
            return
        if not isinstance(owner, Value) or not isinstance(target.value, ast.Name):
            raise self.fail("only a tensor variable can be assigned into", target)
        src_type = self.types[owner.ir]
        assert isinstance(src_type, ValueType)
        indices = target.slice.elts if isinstance(target.slice, ast.Tuple) else [target.slice]
        if len(indices) != len(src_type.shape):
            raise self.fail(f"give {len(src_type.shape)} indices for `{ast.unparse(target.value)}`", target)
        offsets, _ = self._window(indices, src_type, target)
        source = self.expr(value)
        if not isinstance(source, Value):
            raise self.unsupported("assigning a scalar into a tensor element (`pl.write`)", stmt)
        out = self.bind(target.value.id, src_type)
        args = {"target": name(owner.ir), "source": name(source.ir), "offset": ast.List(offsets, ast.Load())}
        self.emit(OpStmt(self.loc(stmt), out, "assemble", args, f"{ast.unparse(target)} = ..."))

    # -- op calls --
    def op_call(self, call: ast.Call, target: str | None) -> Operand:
        op = self._op_name(call)
        assert op is not None
        shown = f"pl.{ast.unparse(call.func).split('.', 1)[1]}" if "." in ast.unparse(call.func) else op
        if op == "get_block_idx":
            if self.block_var is None:
                raise self.fail(f"`{shown}()` outside an SPMD kernel (pl.spmd)", call)
            return Scalar(name(self.block_var))
        if op == "task_dummy":
            return self.task_dummy(call, target)
        if op in optable.UNSUPPORTED:
            raise self.unsupported(f"`{shown}`", call, optable.UNSUPPORTED[op])
        if op in ("incore", "auto_incore", "at", "range", "parallel", "unroll", "pipeline", "yield_", "cond",
                  "const", "static_assert", "static_print", "function", "program"):
            if op == "const":
                return self.const_call(call)
            raise self.fail(f"`{shown}(...)` cannot be used as a value", call)
        if op not in optable.OPS:
            raise self.fail(f"`{shown}` is not a PyPTO op npusim knows{did_you_mean(op, optable.OPS)}", call)
        plop = optable.OPS[op]
        bound = self._bind_args(plop, call, shown)
        special = plop.special
        if special == "scalar_min_max":
            return self.scalar_min_max(op, bound, call, shown)
        if special == "read":
            return self.read_call(bound, call, shown)
        if special == "dim":
            return self.dim_call(bound, call, shown)
        if special == "cast":
            first = bound.get("input")
            if first is not None and isinstance(self._peek(first), Scalar):
                return self.scalar_cast(bound, call, shown)
        return self.npusim_op(plop, bound, call, shown, target)

    def task_dummy(self, call: ast.Call, target: str | None) -> Tid:
        """`pl.system.task_dummy(deps=[...])`: a task id that stands for all of its deps (no kernel)."""
        deps = next((kw.value for kw in call.keywords if kw.arg == "deps"), None)
        if call.args or any(kw.arg != "deps" for kw in call.keywords):
            raise self.fail("pl.system.task_dummy(deps=[...])", call)
        sources = [op.ir for op in self._tid_list(deps)] if deps is not None else []
        out = self.bind(target, TASK_ID) if target is not None else self.fresh("_tid", TASK_ID)
        self.emit(TaskIdsStmt(self.loc(call), out, sources))
        return Tid(out)

    def task_array(self, py: str, call: ast.Call) -> None:
        """`arr = pl.array.create(n, pl.TASK_ID)`: a task-id array of a compile-time size n."""
        if len(call.args) != 2 or call.keywords or self._pl_attr(call.args[1]) != "TASK_ID":
            raise self.unsupported(f"`{ast.unparse(call)[:50]}`", call,
                                   "pl.array.create(n, pl.TASK_ID) is the one array npusim models")
        if self.in_kernel or self.in_auto:
            raise self.fail("a task-id array belongs to orchestration, not inside a kernel", call)
        size = self._const_int(call.args[0], "a task-id array's size")
        if size < 0:
            raise self.fail(f"a task-id array needs a size >= 0, got {size}", call.args[0])
        ir = self.bind(py, TaskArrayType(size))
        self.emit(TaskArrayStmt(self.loc(call), ir, literal(size)))

    def _task_index(self, array: TidArray, node: ast.Subscript) -> ast.expr:
        if isinstance(node.slice, ast.Slice | ast.Tuple):
            raise self.fail("a task-id array takes one index", node)
        index = self.scalar(node.slice, "a task-id array index")
        size = self.types[array.ir].size  # type: ignore[union-attr]
        if index.value is not None and not (isinstance(index.value, int) and 0 <= index.value < size):
            raise self.fail(f"index {index.value!r} is outside the task-id array of {size} elements", node)
        return index.expr

    def task_element(self, array: TidArray, node: ast.Subscript) -> Tid:
        """`arr[i]` read: a task id bound to that element's value now."""
        index = self._task_index(array, node)
        out = self.fresh("_tid", TASK_ID)
        self.emit(TaskIdsStmt(self.loc(node), out, [array.ir], source_indices=[index]))
        return Tid(out)

    def set_task_element(self, array: TidArray, target: ast.Subscript, value: ast.expr, stmt: ast.stmt) -> None:
        """`arr[i] = tid`: the element stands for that task id from now on."""
        index = self._task_index(array, target)
        source = self.expr(value)
        if not isinstance(source, Tid):
            raise self.fail(f"a task-id array holds task ids, got `{ast.unparse(value)[:40]}`", value)
        self.emit(TaskIdsStmt(self.loc(stmt), array.ir, [source.ir], index=index))

    def const_call(self, call: ast.Call) -> Scalar:
        if not call.args:
            raise self.fail("pl.const(value, dtype)", call)
        value = self.scalar(call.args[0], "pl.const's value")
        if value.value is None:
            raise self.fail("pl.const needs a literal value", call)
        return value

    def _peek(self, node: ast.expr) -> Operand | None:
        """Whether an argument is a scalar, without emitting anything for it (names, constants and the ops
        that give scalars: read, dim, min, max, the block index)."""
        if isinstance(node, ast.Call) and self._op_name(node) in ("read", "dim", "min", "max", "get_block_idx",
                                                                  "const"):
            return Scalar(ast.Constant(0))
        if isinstance(node, ast.Call) and self._op_name(node) == "cast" and node.args \
                and isinstance(self._peek(node.args[0]), Scalar):  # a cast of a scalar is a scalar
            return Scalar(ast.Constant(0))
        if isinstance(node, ast.Constant):
            return Scalar(literal(node.value), node.value) if isinstance(node.value, bool | int | float) else None
        if isinstance(node, ast.Name):
            return self.name_operand(node)
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.Compare | ast.BoolOp) \
                and not any(isinstance(n, ast.Call | ast.Subscript) for n in ast.walk(node)):
            return self.expr(node)
        return None

    def _bind_args(self, plop: PlOpT, call: ast.Call, shown: str) -> dict[str, ast.expr]:
        """PyPTO's arguments by PyPTO parameter name, in source order (positional first)."""
        bound: dict[str, ast.expr] = {}
        if len(call.args) > len(plop.params):
            raise self.fail(f"`{shown}` takes at most {len(plop.params)} positional arguments, got {len(call.args)}",
                            call)
        for param, node in zip(plop.params, call.args, strict=False):
            if isinstance(node, ast.Starred):
                raise self.fail("`*args` is not allowed in an op call", node)
            bound[param] = node
        for kw in call.keywords:
            if kw.arg is None:
                raise self.fail("`**kwargs` is not allowed in an op call", kw.value)
            key = plop.params[0] if kw.arg in plop.aliases else kw.arg
            if key not in plop.params:
                raise self.fail(f"`{shown}` has no argument {kw.arg!r}{did_you_mean(kw.arg, plop.params)}; "
                                f"arguments: {', '.join(plop.params)}", kw.value)
            if key in bound:
                raise self.fail(f"`{shown}`: argument {kw.arg!r} given twice", kw.value)
            bound[key] = kw.value
        return bound

    def scalar_min_max(self, op: str, bound: dict[str, ast.expr], call: ast.Call, shown: str) -> Scalar:
        if call.keywords or len(call.args) != 2:
            raise self.unsupported(f"`{shown}` with axis/keepdim (a tile reduction)", call,
                                   "use pl.row_min / pl.row_max")
        first = self.expr(bound["lhs"])
        if isinstance(first, Value):
            raise self.unsupported(f"`{shown}` of a tile (a reduction along an axis)", call,
                                   "use pl.row_min / pl.row_max")
        second = self.scalar(bound["rhs"], f"the second argument of {shown}")
        if first.value is not None and second.value is not None:
            value = min(first.value, second.value) if op == "min" else max(first.value, second.value)
            expr = self.closure_expr(call)
            return Scalar(expr if expr is not None else literal(value), value)
        return Scalar(ast.Call(name(op), [first.expr, second.expr], []))

    def read_call(self, bound: dict[str, ast.expr], call: ast.Call, shown: str) -> Scalar:
        if "src" not in bound or "offset" not in bound:
            raise self.fail(f"`{shown}`(tensor, [indices])", call)
        src = self.expr(bound["src"])
        if not isinstance(src, Value):
            raise self.fail(f"`{shown}`: the first argument must be a tensor", call)
        idx_node = bound["offset"]
        if not isinstance(idx_node, ast.List | ast.Tuple):
            raise self.fail(f"`{shown}`: the indices must be a list like [i, j]", idx_node)
        idx = [self.scalar(e, "an index").expr for e in idx_node.elts]
        return Scalar(ast.Call(name("read"), [name(src.ir), ast.List(idx, ast.Load())], []))

    def dim_call(self, bound: dict[str, ast.expr], call: ast.Call, shown: str) -> Scalar:
        src = self.expr(bound["tensor"])
        if not isinstance(src, Value):
            raise self.fail(f"`{shown}`: the first argument must be a tensor", call)
        shape = self.types[src.ir].shape  # type: ignore[union-attr]
        axis = self._const_int(bound["axis"], "the axis")
        if not -len(shape) <= axis < len(shape):
            raise self.fail(f"`{shown}`: axis {axis} out of range", call)
        d = shape[axis]
        return Scalar(ast.parse(dim_expr(d), mode="eval").body, int(d))

    def scalar_cast(self, bound: dict[str, ast.expr], call: ast.Call, shown: str) -> Scalar:
        value = self.scalar(bound["input"], "the value")
        dt_node = bound.get("target_type")
        dt = self._pl_attr(dt_node) if dt_node is not None else None
        if dt in ("FP32", "FP16", "BF16"):  # into a float: the value as a float (npusim's scalars are float64)
            return Scalar(ast.BinOp(value.expr, ast.Mult(), ast.Constant(1.0)),
                          float(value.value) if value.value is not None else None)
        if dt not in ("INDEX", "INT32", "INT64", "UINT32"):
            raise self.unsupported(f"`{shown}` of a scalar to `{ast.unparse(dt_node) if dt_node else '?'}`", call)
        return value

    def npusim_op(self, plop: PlOpT, bound: dict[str, ast.expr], call: ast.Call, shown: str,
                  target: str | None) -> Value | Operand:
        spec = NPU_OPS[plop.npusim]
        mode = bound.get("mode")
        if plop.npusim == "cast" and isinstance(mode, ast.Constant) and mode.value == "none" and "target_type" in bound:
            # CAST_NONE is each conversion's default: rint into a float type, trunc into an integer one (pto-isa
            # 3186c381 include/pto/npu/a2a3/TCvt.hpp, the `default:` branches, e.g. L112 vconv_f322f16r, L196
            # vconv_f322s32z)
            into_int = self.dtype(bound["target_type"]).startswith("int")
            bound = {**bound, "mode": ast.copy_location(ast.Constant("trunc" if into_int else "rint"), mode)}
        for param, allowed in plop.dropped.items():
            if param in bound and allowed is not optable._ANY:
                self._check_dropped(param, allowed, bound[param], shown)
        npu_args: dict[str, Any] = {}
        arg_types: dict[str, Any] = {}
        by_npu = {plop.rename.get(p, p): p for p in plop.params if p not in plop.dropped}
        order = [p for p in bound if p not in plop.dropped]  # source order: nested calls flatten in this order
        for pl_param in order:
            npu_param = plop.rename.get(pl_param, pl_param)
            if npu_param == "out_dtype" and plop.special == "matmul":
                continue
            param = spec.param(npu_param)
            node, type_ = self._arg(param.kind, param.choices, bound[pl_param], shown, npu_param)
            npu_args[npu_param] = node
            arg_types[npu_param] = type_
        for param in spec.params:
            if param.name not in npu_args:
                if plop.special == "matmul" and param.name == "out_dtype":
                    # a kernel's matmul result is the accumulator's type (FP32; INT32 for int8 operands)
                    # whatever out_dtype says (PF §7.7)
                    lhs = arg_types.get("lhs")
                    acc = "int32" if isinstance(lhs, TileType) and lhs.dtype == "int8" else "fp32"
                    npu_args["out_dtype"] = name(acc)
                    arg_types["out_dtype"] = acc
                    continue
                if param.default is REQUIRED:
                    pl_name = by_npu.get(param.name, param.name)
                    raise self.fail(f"`{shown}`: missing argument {pl_name!r}", call)
                npu_args[param.name] = param.default
                arg_types[param.name] = param.default
        result = self._result_type(spec, arg_types, call, shown)
        out = self.bind(target, result) if target is not None else self.temp(result)
        self.emit(OpStmt(self.loc(call), out, spec.name, npu_args, shown))
        return Value(out)

    def _check_dropped(self, param: str, allowed: Any, node: ast.expr, shown: str) -> None:
        if param == "layout":
            if self._pl_attr(node) not in ("ND", "TensorLayout.ND"):
                raise self.unsupported(f"`{shown}({param}={ast.unparse(node)})`", node)
            return
        try:
            value = self.fold(node)
        except FoldError as exc:
            raise self.fail(f"`{shown}`: {param} must be a constant ({exc.reason})", node) from None
        if value != allowed:
            raise self.unsupported(f"`{shown}({param}={value!r})`", node)

    def _arg(self, kind: str, choices: tuple[str, ...], node: ast.expr, shown: str, param: str) -> tuple[Any, Any]:
        """One argument as (npusim syntax node, what the shape rule sees)."""
        if kind in ("value", "value_or_scalar"):
            operand = self.expr(node)
            if isinstance(operand, Value):
                t = self.types[operand.ir]
                return name(operand.ir), TileType(t.shape, t.dtype)  # type: ignore[union-attr]
            if kind == "value":
                raise self.fail(f"`{shown}`: {param} must be a tensor, got the scalar `{ast.unparse(node)[:40]}`", node)
            return operand.expr, (operand.value if operand.value is not None else 0.0)
        if kind == "scalar":
            operand = self.scalar(node, f"`{shown}`'s {param}")
            return operand.expr, (operand.value if operand.value is not None else 0.0)
        if kind in ("shape", "shape_opt", "index"):
            if kind == "shape_opt" and isinstance(node, ast.Constant) and node.value is None:
                return None, None
            dims = self._shape_list(node, shown, param, static=param == "shape")
            return ast.List([d[0] for d in dims], ast.Load()), tuple(d[1] for d in dims)
        if kind in ("dtype", "dtype_opt"):
            dt = self.dtype(node)
            return name(dt), dt
        if kind == "choice":
            value = self._choice(node, choices, shown, param)
            return ast.Constant(value), value
        if kind == "flag":
            try:
                value = self.fold(node)
            except FoldError as exc:
                raise self.fail(f"`{shown}`: {param} must be True or False ({exc.reason})", node) from None
            if not isinstance(value, bool):
                raise self.fail(f"`{shown}`: {param} must be True or False", node)
            return ast.Constant(value), value
        raise AssertionError(kind)

    def _shape_list(self, node: ast.expr, shown: str, param: str, static: bool) -> list[tuple[ast.expr, Any]]:
        if isinstance(node, ast.Name) and node.id not in self.env:
            value = self.closure_value(node.id)
            if isinstance(value, tuple | list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return [(literal(v), Dim(v)) for v in value]
        if not isinstance(node, ast.List | ast.Tuple):
            raise self.fail(f"`{shown}`: {param} must be a list like [a, b]", node)
        out = []
        for e in node.elts:
            operand = self.scalar(e, f"an entry of {param}")
            if static:
                d = self.static_dim(e) if operand.value is None or isinstance(operand.value, int) else None
                if d is None:
                    raise self.fail(f"`{shown}`: {param} entries must be integers", e)
                out.append((operand.expr, Dim(int(d), ast.unparse(operand.expr))))
            else:
                out.append((operand.expr, operand.value if operand.value is not None else 1))
        return out

    def _choice(self, node: ast.expr, choices: tuple[str, ...], shown: str, param: str) -> str:
        attr = self._pl_attr(node)
        if attr is not None and attr.startswith("PadValue."):
            member = attr.split(".", 1)[1]
            if member not in optable.PAD_VALUES:
                raise self.unsupported(f"`pad_value=pl.PadValue.{member}`", node)
            return optable.PAD_VALUES[member]
        if attr is not None and attr.startswith("AtomicType."):
            member = attr.split(".", 1)[1]
            if member not in optable.ATOMIC_TYPES:
                raise self.unsupported(f"`atomic=pl.AtomicType.{member}`", node, "npusim models Add")
            return optable.ATOMIC_TYPES[member]
        if isinstance(node, ast.Constant) and node.value in choices:
            return node.value
        raise self.fail(f"`{shown}`: {param} must be one of {', '.join(map(repr, choices))}", node)

    def _result_type(self, spec: Any, arg_types: dict[str, Any], call: ast.Call, shown: str) -> ValueType:
        if spec.lowering == "create_tensor":
            return ValueType(arg_types["shape"], arg_types["dtype"])
        if spec.lowering == "slice":
            src: TileType = arg_types["t"]
            shape, offset = arg_types["shape"], arg_types["offset"]
            if len(shape) < len(src.shape) and len(offset) == len(src.shape):
                raise self.unsupported(f"a rank-reducing `{shown}` ({len(src.shape)}-D source, {len(shape)}-D "
                                       "window)", call, "give the window every dimension and pl.reshape it")
            if len(shape) != len(src.shape) or len(offset) != len(src.shape):
                raise self.fail(f"`{shown}`: the source is {len(src.shape)}-D but shape {list(map(int, shape))} and "
                                f"offset have {len(shape)} and {len(offset)} entries", call)
            return ValueType(shape, src.dtype)
        if spec.lowering in ("assemble", "validshape"):
            t: TileType = arg_types["target" if spec.lowering == "assemble" else "t"]
            return ValueType(t.shape, t.dtype)
        try:
            shape, dtype = spec.infer(**arg_types)
        except OpError as exc:
            raise self.fail(f"`{shown}`: {exc}", call) from None
        return ValueType(tuple(shape), dtype)


PlOpT = optable.PlOp


def _no_names(name: str) -> Any:
    raise KeyError(name)


def _assignments(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Counter[str]:
    """How often a function assigns each name (parameters count once): a name assigned once keeps its value."""
    out: Counter[str] = Counter(a.arg for a in [*fn.args.args, *fn.args.kwonlyargs])
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out[node.id] += 1
        elif isinstance(node, ast.For):
            out.update(n.id for n in ast.walk(node.target) if isinstance(n, ast.Name))  # twice: a loop variable
    return out


def _name_hint_scopes(stmts: list[Stmt]) -> list[Stmt]:
    """A program without `# Scope` comments is scoped by its kernels' name_hints: each named kernel (or
    auto_incore region) in a scope of its name."""
    out: list[Stmt] = []
    for s in stmts:
        if isinstance(s, KernelStmt):
            out.append(ScopeStmt(s.loc, s.name, [s]) if s.name else s)
            continue
        if isinstance(s, ForStmt | ManualStmt):
            s.body = _name_hint_scopes(s.body)
        elif isinstance(s, IfStmt):
            s.then, s.orelse = _name_hint_scopes(s.then), _name_hint_scopes(s.orelse)
        out.append(s)
    return out


def translate(model: ModuleModel, consts: dict[str, Any], specs: dict[str, Any] | None = None) -> Translated:
    return Translator(model, consts, specs).program()


def _substitute(node: ast.expr, var: str, value: int) -> ast.expr:
    """A copy of `node` with the name `var` written as the number `value` (positions kept for errors)."""

    class _Sub(ast.NodeTransformer):
        def visit_Name(self, n: ast.Name) -> ast.AST:
            return ast.copy_location(ast.Constant(value), n) if n.id == var else n

    return _Sub().visit(copy.deepcopy(node))
