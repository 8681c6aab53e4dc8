"""Python expressions rewritten as npusim expressions: the same operators where npusim's expression
language has them (`+ - * / // %`, comparisons, `and/or/not`, `min/max/abs/sqrt`), `x ** 0.5` as
`sqrt(x)`, `math.sqrt` as `sqrt`; anything else has no npusim spelling (the caller then writes the folded
number instead). Names are mapped by the caller (a DSL variable to its npusim name, a closure constant to
itself, a harness local to its definition)."""

from __future__ import annotations

import ast
from collections.abc import Callable

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)
_FUNCS = {"min": (2, 16), "max": (2, 16), "abs": (1, 1)}

NameMap = Callable[[ast.Name], ast.expr | None]


def to_npusim(node: ast.AST, names: NameMap, math_aliases: frozenset[str] = frozenset({"math"})) -> ast.expr | None:
    """`node` as an npusim expression tree, or None where npusim's language cannot say it."""
    if isinstance(node, ast.Constant):
        return ast.Constant(node.value) if isinstance(node.value, bool | int | float) else None
    if isinstance(node, ast.Name):
        return names(node)
    if isinstance(node, ast.BinOp):
        left = to_npusim(node.left, names, math_aliases)
        if isinstance(node.op, ast.Pow):
            if isinstance(node.right, ast.Constant) and node.right.value == 0.5 and left is not None:
                return ast.Call(ast.Name("sqrt", ast.Load()), [left], [])
            return None
        right = to_npusim(node.right, names, math_aliases)
        if left is None or right is None or not isinstance(node.op, _BINOPS):
            return None
        return ast.BinOp(left, node.op, right)
    if isinstance(node, ast.UnaryOp):
        operand = to_npusim(node.operand, names, math_aliases)
        return None if operand is None else ast.UnaryOp(node.op, operand)
    if isinstance(node, ast.BoolOp):
        values = [to_npusim(v, names, math_aliases) for v in node.values]
        return None if any(v is None for v in values) else ast.BoolOp(node.op, values)  # type: ignore[arg-type]
    if isinstance(node, ast.Compare):
        parts = [to_npusim(v, names, math_aliases) for v in [node.left, *node.comparators]]
        if any(p is None for p in parts) or any(isinstance(op, ast.In | ast.NotIn | ast.Is | ast.IsNot)
                                                for op in node.ops):
            return None
        return ast.Compare(parts[0], node.ops, parts[1:])  # type: ignore[arg-type]
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        fname = None
        if isinstance(func, ast.Name) and func.id in _FUNCS:
            fname = func.id
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id in math_aliases and func.attr == "sqrt":
            fname = "sqrt"
        if fname is None:
            return None
        args = [to_npusim(a, names, math_aliases) for a in node.args]
        lo, hi = _FUNCS.get(fname, (1, 1))
        if any(a is None for a in args) or not lo <= len(args) <= hi:
            return None
        return ast.Call(ast.Name(fname, ast.Load()), args, [])  # type: ignore[arg-type]
    return None


def literal(value: bool | int | float) -> ast.expr:
    """A number as an expression node (negative numbers as a unary minus, as the parser would read them)."""
    if isinstance(value, bool) or value >= 0 or value != value:
        return ast.Constant(value)
    return ast.UnaryOp(ast.USub(), ast.Constant(-value))


def text(node: ast.AST) -> str:
    return ast.unparse(node)


def simplify(node: ast.expr) -> ast.expr:
    """Drop `+ 0`, `* 1`, `// 1` and fold literal-only arithmetic, so generated index expressions read like
    hand-written ones (`ki_o * 8 + ki_i`, not `0 + (ki_o * 8 + ki_i) * 1`)."""
    if isinstance(node, ast.BinOp):
        left, right = simplify(node.left), simplify(node.right)
        lc = left.value if isinstance(left, ast.Constant) and not isinstance(left.value, bool) else None
        rc = right.value if isinstance(right, ast.Constant) and not isinstance(right.value, bool) else None
        if lc is not None and rc is not None and isinstance(lc, int) and isinstance(rc, int):
            ops = {ast.Add: lc + rc, ast.Sub: lc - rc, ast.Mult: lc * rc}
            if type(node.op) in ops:
                return literal(ops[type(node.op)])
        if isinstance(node.op, ast.Add) and rc == 0:
            return left
        if isinstance(node.op, ast.Add) and lc == 0:
            return right
        if isinstance(node.op, ast.Sub) and rc == 0:
            return left
        if isinstance(node.op, ast.Mult | ast.FloorDiv) and rc == 1:
            return left
        if isinstance(node.op, ast.Mult) and lc == 1:
            return right
        if isinstance(node.op, ast.Mult) and (lc == 0 or rc == 0):
            return ast.Constant(0)
        return ast.BinOp(left, node.op, right)
    return node
