"""Reading a PyPTO file without running it: the text is parsed with `ast` (size- and depth-guarded), its
comments are tokenised for scope markers, and module-level Python is folded by a small evaluator over a
whitelist of pure expressions. Nothing of the user's file is imported, `eval`ed or executed; a value that
needs anything outside the whitelist (a call of `os.environ.get`, `open`, a loop) is `Unfoldable`, an error
only if something uses it."""

from __future__ import annotations

import ast
import io
import math
import operator
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npusim.errors import Location, ProgramError

MAX_INT_BITS = 256  # folded integers beyond this are refused: no constant needs them, a hostile file might
MAX_DEPTH = 200  # syntax nesting the importer walks (ast.parse itself is guarded separately)

Value = int | float | bool | str | None | tuple


@dataclass(frozen=True)
class Unfoldable:
    """A name whose value the importer cannot compute without running code, and why."""

    reason: str
    loc: Location


@dataclass
class Source:
    """One parsed file: its path as given, its syntax tree and its comments by line."""

    file: str
    tree: ast.Module
    lines: list[str]
    comments: dict[int, tuple[int, str]]  # line -> (0-based column, text after '#')

    def loc(self, node: ast.AST) -> Location:
        """`file:line:col` (1-based) of a syntax node."""
        return Location(self.file, getattr(node, "lineno", None), getattr(node, "col_offset", -1) + 1 or None)


def read_source(path: str | Path, max_bytes: int) -> Source:
    """Parse a .py file (never run it): bounded size, a located syntax error, no traceback."""
    path = Path(path)
    file = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ProgramError(f"cannot read program: {exc.strerror or exc}", Location(file)) from None
    if size > max_bytes:
        raise ProgramError(f"program is {size} bytes, more than the limit of {max_bytes} (--max-yaml-bytes)",
                           Location(file))
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProgramError(f"cannot read program: {exc}", Location(file)) from None
    try:
        tree = ast.parse(text, filename=file)
    except SyntaxError as exc:
        raise ProgramError(f"syntax error: {exc.msg}", Location(file, exc.lineno, exc.offset)) from None
    except (RecursionError, MemoryError, ValueError):
        raise ProgramError("program is nested too deeply to parse", Location(file)) from None
    _check_depth(tree, file)
    return Source(file, tree, text.splitlines(), _comments(text))


def _check_depth(tree: ast.AST, file: str) -> None:
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            line = getattr(node, "lineno", None)
            raise ProgramError(f"program is nested more than {MAX_DEPTH} levels deep", Location(file, line))
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _comments(text: str) -> dict[int, tuple[int, str]]:
    out: dict[int, tuple[int, str]] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = (tok.start[1], tok.string[1:].strip())
    except (tokenize.TokenError, SyntaxError):  # already parsed by ast: cannot really happen
        pass
    return out


# --- the folder --------------------------------------------------------------------------------------


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and b >= 0 \
            and abs(a) > 1 and b * max(a.bit_length(), 1) > MAX_INT_BITS:
        raise OverflowError("number too large")
    return operator.pow(a, b)


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_CMP: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
# Pure functions a constant may call: builtins by name, `math.*` by attribute.
_BUILTINS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "abs": abs, "int": int, "float": float,
                                           "bool": bool, "round": round}
_MATH: dict[str, Callable[..., Any]] = {"sqrt": math.sqrt, "ceil": math.ceil, "floor": math.floor,
                                        "log2": math.log2, "isqrt": math.isqrt}
_MATH_CONSTS = {"pi": math.pi, "e": math.e, "inf": math.inf}


class FoldError(Exception):
    """Why an expression does not fold; `node` is where."""

    def __init__(self, reason: str, node: ast.AST) -> None:
        super().__init__(reason)
        self.reason = reason
        self.node = node


@dataclass
class Folder:
    """Evaluates pure expressions against `lookup` (a name's value, an `Unfoldable`, or KeyError)."""

    lookup: Callable[[str], Any]
    math_aliases: frozenset[str] = frozenset({"math"})

    def fold(self, node: ast.AST) -> Value:
        return self._eval(node)

    def _eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool | int | float | str) or node.value is None:
                return node.value
            raise FoldError(f"literal {node.value!r} is not a number", node)
        if isinstance(node, ast.Name):
            try:
                value = self.lookup(node.id)
            except KeyError:
                raise FoldError(f"unknown name {node.id!r}", node) from None
            if isinstance(value, Unfoldable):
                raise FoldError(f"{node.id!r} cannot be computed without running the program ({value.reason}, "
                                f"{value.loc})", node)
            return value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self._eval(node.left), self._eval(node.right)
            if isinstance(left, str | tuple) or isinstance(right, str | tuple):
                raise FoldError("only numbers can be combined", node)
            return self._checked(_BINOPS[type(node.op)], (left, right), node)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return self._checked(_UNARY[type(node.op)], (self._eval(node.operand),), node)
        if isinstance(node, ast.BoolOp):
            values = [self._eval(v) for v in node.values]
            result = values[0]
            for v in values[1:]:
                result = (result and v) if isinstance(node.op, ast.And) else (result or v)
            return result
        if isinstance(node, ast.Compare) and all(type(op) in _CMP for op in node.ops):
            values = [self._eval(v) for v in [node.left, *node.comparators]]
            return all(self._checked(_CMP[type(op)], (values[i], values[i + 1]), node)
                       for i, op in enumerate(node.ops))
        if isinstance(node, ast.IfExp):
            return self._eval(node.body) if self._eval(node.test) else self._eval(node.orelse)
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(self._eval(e) for e in node.elts)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in self.math_aliases and node.attr in _MATH_CONSTS:
            return _MATH_CONSTS[node.attr]
        if isinstance(node, ast.Call) and not node.keywords:
            fn = self._function(node.func)
            if fn is not None:
                args = [self._eval(a) for a in node.args]
                if any(isinstance(a, str | tuple) and fn is not len for a in args):
                    raise FoldError("only numbers can be passed to functions", node)
                return self._checked(fn, tuple(args), node)
        raise FoldError(f"{_describe(node)} cannot be computed without running the program", node)

    def _function(self, func: ast.expr) -> Callable[..., Any] | None:
        if isinstance(func, ast.Name) and func.id in _BUILTINS:
            try:
                shadow = self.lookup(func.id)
            except KeyError:
                return _BUILTINS[func.id]
            return None if shadow is not None else _BUILTINS[func.id]
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id in self.math_aliases and func.attr in _MATH:
            return _MATH[func.attr]
        return None

    @staticmethod
    def _checked(fn: Callable[..., Any], args: tuple, node: ast.AST) -> Any:
        try:
            value = fn(*args)
        except ZeroDivisionError:
            raise FoldError("division by zero", node) from None
        except (OverflowError, ValueError, TypeError) as exc:
            raise FoldError(f"cannot evaluate: {exc}", node) from None
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            raise FoldError("number too large", node)
        return value


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return f"the call `{ast.unparse(node.func)[:40]}(...)`"
    if isinstance(node, ast.Attribute):
        return f"`{ast.unparse(node)[:40]}`"
    return f"a {type(node).__name__} expression"


# --- scopes of closure values ------------------------------------------------------------------------


@dataclass
class Definition:
    """One assignment of a closure constant, as written: the importer keeps the expression so that an
    imported program can be written back with its derivations (`HIDDEN = NUM_HEADS * HEAD_DIM`)."""

    name: str
    expr: ast.expr | None  # None: set by --set, or not an expression (an import, a def)
    value: Any  # a number/bool/str/tuple, or Unfoldable
    loc: Location
    kind: str  # "module", "param" (a keyword default), "local"
    overridden: bool = False


@dataclass
class Scope:
    """Closure values by name, with a parent (a function's locals over the module's globals)."""

    defs: dict[str, Definition] = field(default_factory=dict)
    parent: Scope | None = None
    order: list[Definition] = field(default_factory=list)  # every definition in source order

    def lookup(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.defs:
                return scope.defs[name].value
            scope = scope.parent
        raise KeyError(name)

    def definition(self, name: str) -> Definition | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.defs:
                return scope.defs[name]
            scope = scope.parent
        return None

    def define(self, d: Definition) -> None:
        self.defs[d.name] = d
        self.order.append(d)


def is_number(value: Any) -> bool:
    return isinstance(value, bool | int | float)


def assigned_names(stmts: list[ast.stmt]) -> list[tuple[str, ast.AST]]:
    """Names bound anywhere in `stmts` (assignments, loop targets, imports, defs), with where."""
    out: list[tuple[str, ast.AST]] = []
    for stmt in stmts:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                out.append((node.id, node))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                out.append((node.name, node))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                out.extend(((a.asname or a.name).split(".")[0], node) for a in node.names)
    return out
