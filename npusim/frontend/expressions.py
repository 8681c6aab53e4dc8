"""The safe scalar-expression language of programs: parsed with `ast`, checked against a whitelist, compiled
to closures with constant folding. Nothing is ever passed to `eval` or `exec`.

Allowed: int/float/bool literals, names (params, lets, loop variables, scalars), `+ - * / // %`, unary `- +`,
comparisons, `and or not`, and the calls `min(...)`, `max(...)`, `abs(x)`, `sqrt(x)` (plus `read(t, [i, ...])` where the
caller allows it). Size and nesting are bounded so a hostile file cannot exhaust the parser.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from npusim.defaults import ExprLimits
from npusim.errors import Location, ProgramError, did_you_mean, shown

Env = dict[str, Any]
Compiled = tuple[Callable[[Env], Any], Any]  # (closure, folded constant or None)


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_BINOP_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
_UNARYOPS: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
FUNCTIONS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "abs": abs, "sqrt": math.sqrt}
_FUNCTION_ARITY = {"min": (2, 16), "max": (2, 16), "abs": (1, 1), "sqrt": (1, 1)}

INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # scalar integers are 64-bit, as on the device's scalar unit


def number_problem(value: Any) -> str | None:
    """Why a scalar value cannot be used (an integer beyond 64 bits, a NaN or infinite float), or None."""
    if value.__class__ is int and not INT_MIN <= value <= INT_MAX:
        return f"{shown(value)} does not fit in a 64-bit integer"
    if value.__class__ is float and not math.isfinite(value):
        return f"{value} is not a finite number"
    return None



def _nesting_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def parse_python(text: str, loc: Location, mode: str, limits: ExprLimits, what: str = "expression") -> ast.AST:
    """`ast.parse` behind size and nesting guards, with a located message on a syntax error."""
    if len(text) > limits.max_chars:
        raise ProgramError(
            f"{what} is {len(text)} characters long, more than the limit of {limits.max_chars}", loc
        )
    if _nesting_depth(text) > limits.max_depth:
        raise ProgramError(f"{what} is nested more than {limits.max_depth} levels deep", loc)
    try:
        tree = ast.parse(text, mode=mode)
    except SyntaxError as exc:
        col = (loc.col or 1) + max((exc.offset or 1) - 1, 0) if loc.col else None
        raise ProgramError(f"syntax error in {what} {text!r}: {exc.msg}", Location(loc.file, loc.line, col)) from None
    except (RecursionError, MemoryError, ValueError):
        raise ProgramError(f"{what} is too complex to parse", loc) from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > limits.max_nodes:
        raise ProgramError(f"{what} has {nodes} syntax nodes, more than the limit of {limits.max_nodes}", loc)
    return tree


class Expr:
    """A compiled scalar expression: call `fn(env)` for its value; `const` is set when it folded."""

    __slots__ = ("const", "fn", "loc", "text")

    def __init__(self, text: str, loc: Location, fn: Callable[[Env], Any], const: Any = None) -> None:
        self.text = text
        self.loc = loc
        self.fn = fn
        self.const = const

    @property
    def is_const(self) -> bool:
        return self.const is not None

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"


ReadCompiler = Callable[[str, list["Expr"], Location], Callable[[Env], Any]]


class ExprCompiler:
    """Compiles expression ASTs against known constants and runtime scalar names."""

    def __init__(
        self,
        consts: Mapping[str, Any],
        runtime_names: Iterable[str] = (),
        read: ReadCompiler | None = None,
        limits: ExprLimits = ExprLimits(),
    ) -> None:
        self.consts = consts
        self.runtime_names = set(runtime_names)
        self.read = read
        self.limits = limits

    def compile_text(self, source: Any, loc: Location) -> Expr:
        """Compile a YAML value (a number or an expression string)."""
        if isinstance(source, bool) or not isinstance(source, int | float | str):
            raise ProgramError(f"expected a number or an expression, got {source!r}", loc)
        if isinstance(source, int | float):
            return Expr(repr(source), loc, lambda env, v=source: v, source)
        tree = parse_python(source.strip(), loc, "eval", self.limits)
        return self.compile_node(tree.body, source.strip(), loc)  # type: ignore[attr-defined]

    def compile_node(self, node: ast.AST, text: str, loc: Location) -> Expr:
        fn, const = self._compile(node, text, loc)
        return Expr(text, loc, fn, const)

    # -- the whitelist ------------------------------------------------------------------------------
    def _fail(self, message: str, node: ast.AST, loc: Location) -> ProgramError:
        col = loc.col + node.col_offset if loc.col is not None and hasattr(node, "col_offset") else loc.col
        return ProgramError(message, Location(loc.file, loc.line, col))

    def _compile(self, node: ast.AST, text: str, loc: Location) -> Compiled:
        """Return (closure, folded constant or None), by the node's type; anything else is forbidden."""
        rule = self._RULES.get(type(node))
        if rule is None:
            raise self._fail(self._describe_forbidden(node), node, loc)
        return rule(self, node, text, loc)

    def _constant(self, node: ast.Constant, text: str, loc: Location) -> Compiled:
        value = node.value
        if isinstance(value, bool | int | float):
            problem = number_problem(value)
            if problem is not None:
                raise self._fail(f"literal {problem}", node, loc)
            return (lambda env: value), value
        raise self._fail(f"literal {value!r} is not allowed in an expression (only numbers)", node, loc)

    def _name(self, node: ast.Name, text: str, loc: Location) -> Compiled:
        name = node.id
        if name in self.consts:
            value = self.consts[name]
            return (lambda env: value), value
        if name in self.runtime_names:
            undefined = self._fail(f"{name!r} has no value when this line runs: it is assigned only in an 'if' "
                                   "branch not taken or in a loop that ran no iterations", node, loc)

            def get(env: Env) -> Any:
                try:
                    return env[name]
                except KeyError:
                    raise undefined from None

            return get, None
        known = list(self.consts) + list(self.runtime_names)
        raise self._fail(f"unknown name {name!r}{did_you_mean(name, known)}", node, loc)

    def _binop(self, node: ast.BinOp, text: str, loc: Location) -> Compiled:
        if type(node.op) not in _BINOPS:
            raise self._fail(self._describe_forbidden(node), node, loc)
        op = _BINOPS[type(node.op)]
        lf, lc = self._compile(node.left, text, loc)
        rf, rc = self._compile(node.right, text, loc)
        if lc is not None and rc is not None:
            return self._fold(op, (lc, rc), node, loc)
        return (lambda env: op(lf(env), rf(env))), None

    def _unaryop(self, node: ast.UnaryOp, text: str, loc: Location) -> Compiled:
        if type(node.op) not in _UNARYOPS:
            raise self._fail(self._describe_forbidden(node), node, loc)
        f, c = self._compile(node.operand, text, loc)
        uop = _UNARYOPS[type(node.op)]
        if c is not None:
            return self._fold(uop, (c,), node, loc)
        return (lambda env: uop(f(env))), None

    def _boolop(self, node: ast.BoolOp, text: str, loc: Location) -> Compiled:
        parts = [self._compile(v, text, loc) for v in node.values]
        fns = [p[0] for p in parts]
        if isinstance(node.op, ast.And):
            fn = lambda env: all(f(env) for f in fns)  # noqa: E731
        else:
            fn = lambda env: any(f(env) for f in fns)  # noqa: E731
        if all(p[1] is not None for p in parts):
            return self._fold(lambda: fn({}), (), node, loc)
        return fn, None

    def _compare(self, node: ast.Compare, text: str, loc: Location) -> Compiled:
        parts = [self._compile(v, text, loc) for v in [node.left, *node.comparators]]
        for op in node.ops:
            if type(op) not in _CMPOPS:
                raise self._fail(f"comparison {type(op).__name__} is not allowed", node, loc)
        ops = [_CMPOPS[type(op)] for op in node.ops]
        fns = [p[0] for p in parts]

        def compare(env: Env) -> bool:
            values = [f(env) for f in fns]
            return all(op(values[i], values[i + 1]) for i, op in enumerate(ops))

        if all(p[1] is not None for p in parts):
            return self._fold(lambda: compare({}), (), node, loc)
        return compare, None

    def _call(self, node: ast.Call, text: str, loc: Location) -> Compiled:
        if isinstance(node.func, ast.Lambda):
            raise self._fail(self._describe_forbidden(node.func), node.func, loc)
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self._fail(self._describe_forbidden(node), node, loc)
        name = node.func.id
        if name == "read" and self.read is not None:
            return self._compile_read(node, text, loc), None
        if name not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise self._fail(
                f"call of {name!r} is not allowed in an expression (allowed: {allowed}"
                + (", read" if self.read else "")
                + "); one op per line, no nested op calls",
                node,
                loc,
            )
        lo, hi = _FUNCTION_ARITY[name]
        if not lo <= len(node.args) <= hi:
            raise self._fail(f"{name}() takes {lo}..{hi} arguments, got {len(node.args)}", node, loc)
        func = FUNCTIONS[name]
        parts = [self._compile(a, text, loc) for a in node.args]
        fns = [p[0] for p in parts]
        if all(p[1] is not None for p in parts):
            return self._fold(func, tuple(p[1] for p in parts), node, loc)
        return (lambda env: func(*[f(env) for f in fns])), None

    _RULES: ClassVar[dict[type, Callable[..., Compiled]]] = {
        ast.Constant: _constant, ast.Name: _name, ast.BinOp: _binop, ast.UnaryOp: _unaryop, ast.BoolOp: _boolop,
        ast.Compare: _compare, ast.Call: _call,
    }

    @staticmethod
    def _describe_forbidden(node: ast.AST) -> str:
        kinds = {
            ast.Attribute: "attribute access",
            ast.Subscript: "subscripting",
            ast.Lambda: "lambda",
            ast.Call: "this call",
            ast.Pow: "'**'",
            ast.IfExp: "conditional expressions",
            ast.List: "a list",
            ast.Tuple: "a tuple",
            ast.Dict: "a dict",
            ast.JoinedStr: "f-strings",
        }
        if isinstance(node, ast.BinOp):
            return f"operator {type(node.op).__name__} is not allowed in an expression"
        if isinstance(node, ast.Call):
            callee = ast.unparse(node.func)
            return f"call of {callee[:40]!r} is not allowed in an expression"
        return f"{kinds.get(type(node), type(node).__name__)} is not allowed in an expression"

    def _fold(self, fn: Callable[..., Any], args: tuple[Any, ...], node: ast.AST, loc: Location) -> Compiled:
        try:
            value = fn(*args)
        except ZeroDivisionError:
            raise self._fail("division by zero", node, loc) from None
        except (OverflowError, ValueError, TypeError) as exc:
            raise self._fail(f"cannot evaluate: {exc}", node, loc) from None
        problem = number_problem(value)
        if problem is not None:
            raise self._fail(f"cannot evaluate: {problem}", node, loc)
        return (lambda env: value), value

    def _compile_read(self, node: ast.Call, text: str, loc: Location) -> Callable[[Env], Any]:
        if len(node.args) != 2 or not isinstance(node.args[0], ast.Name) or not isinstance(node.args[1], ast.List):
            raise self._fail("read takes a tensor name and an index list: read(t, [i, ...])", node, loc)
        indices = [self.compile_node(e, text, loc) for e in node.args[1].elts]
        assert self.read is not None
        return self.read(node.args[0].id, indices, loc)
