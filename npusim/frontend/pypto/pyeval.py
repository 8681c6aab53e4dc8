"""A bounded evaluator of the pure Python around PyPTO programs: module constants, dataclass configs and the
functions that compute them, and the harness's `__main__` block, read from the syntax tree and evaluated over
npusim's own values, never imported, `exec`ed or `eval`ed.

Values are numbers, strings, None, tuples, lists, dicts, ranges, dataclass types and their (frozen)
instances with their `@property`s, the module's own functions (called with a step budget), `pl.dynamic`
dims, and argparse parsers whose `parse_args()` gives every option its default. Nothing of the outside world
is read: `os.environ.get(K, D)` and `os.getenv(K, D)` give their default D, `sys.argv` is the script's name
alone, and any other call (torch, I/O, an unknown function) is `Unfoldable`: an error only where something
uses its value. Loops, calls and container sizes are bounded, so a hostile file costs at most
`MAX_STEPS` evaluation steps."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from npusim.errors import Location

from . import torchvalues as tv

MAX_INT_BITS = 256  # folded integers beyond this are refused: no constant needs them, a hostile file might
MAX_STEPS = 400_000  # evaluation steps of one value (a call, a loop iteration, a node)
MAX_TOTAL_STEPS = 5_000_000  # evaluation steps of one import
MAX_LEN = 100_000  # elements of a folded sequence, characters of a folded string
MAX_CALL_DEPTH = 40


@dataclass(frozen=True)
class Unfoldable:
    """A name whose value the importer cannot compute without running code, and why."""

    reason: str
    loc: Location


class FoldError(Exception):
    """Why an expression does not fold; `node` is where."""

    def __init__(self, reason: str, node: ast.AST) -> None:
        super().__init__(reason)
        self.reason = reason
        self.node = node


@dataclass(frozen=True)
class ModuleAlias:
    """A name bound by an import (`import pypto.language as pl`): never imported, only recognised."""

    module: str


@dataclass(frozen=True)
class DynDim:
    """`pl.dynamic("NAME")`: a dimension bound at specialisation from the harness's tensors."""

    name: str


@dataclass(eq=False)
class FunctionValue:
    """A function of the program's module (or a sibling module): its syntax, the names it sees and its file."""

    node: ast.FunctionDef | ast.AsyncFunctionDef
    lookup: Callable[[str], Any] | None = None
    file: str = ""


@dataclass(eq=False)
class SiblingModule:
    """A module of the program's folder bound by `import NAME`: its names, read statically (`scope`: where
    they live, so that `config.X = ...` in an importer rebinds them, as Python does)."""

    name: str
    lookup: Callable[[str], Any]
    scope: Any = None


@dataclass(eq=False)
class DataclassType:
    """A `@dataclass` class: its fields in order (with default expressions) and its `@property` getters."""

    name: str
    fields: list[tuple[str, ast.expr | None]]
    properties: dict[str, ast.FunctionDef]
    lookup: Callable[[str], Any]


@dataclass(eq=False)
class Instance:
    """An instance of a `@dataclass` (treated as frozen)."""

    cls: DataclassType
    values: dict[str, Any]


@dataclass(eq=False)
class ArgParser:
    """`argparse.ArgumentParser()`: its options' defaults (a harness run with no command line)."""

    defaults: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParserMethod:
    """A method of an argument parser (`add_argument`, `parse_args`, ...)."""

    parser: ArgParser
    method: str


@dataclass(eq=False)
class Namespace:
    """What `parse_args()` returns: each option's default."""

    values: dict[str, Any]


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and b >= 0 \
            and abs(a) > 1 and b * max(a.bit_length(), 1) > MAX_INT_BITS:
        raise OverflowError("number too large")
    return operator.pow(a, b)


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _pow, ast.LShift: operator.lshift,
    ast.RShift: operator.rshift, ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_,
                                           ast.Invert: operator.invert}
_CMP: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
    ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b,
}


def _int(x: Any = 0, base: int | None = None) -> int:
    return int(x) if base is None else int(x, base)


# Pure functions a constant may call: builtins by name, `math.*` by attribute.
_BUILTINS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "abs": abs, "int": _int, "float": float, "bool": bool, "round": round, "str": str,
    "len": len, "range": range, "list": list, "tuple": tuple, "dict": dict, "set": set, "sorted": sorted,
    "sum": sum, "any": any, "all": all, "enumerate": lambda x, start=0: list(enumerate(x, start)),
    "zip": lambda *xs: list(zip(*xs, strict=False)), "reversed": lambda x: list(reversed(x)), "divmod": divmod,
    "isinstance": None,  # handled below: only against the builtin types
}
_MATH: dict[str, Callable[..., Any]] = {"sqrt": math.sqrt, "ceil": math.ceil, "floor": math.floor, "log2": math.log2,
                                        "isqrt": math.isqrt, "log": math.log, "exp": math.exp, "prod": math.prod,
                                        "gcd": math.gcd, "lcm": math.lcm, "log10": math.log10, "pow": math.pow,
                                        "cos": math.cos, "sin": math.sin, "isclose": math.isclose}
_MATH_CONSTS = {"pi": math.pi, "e": math.e, "inf": math.inf}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple": tuple, "list": list, "dict": dict}
# Methods of the builtin value types that only compute (list.append/extend mutate our own lists).
_METHODS: dict[type, frozenset[str]] = {
    str: frozenset({"startswith", "endswith", "split", "strip", "lstrip", "rstrip", "lower", "upper", "replace",
                    "join", "isdigit", "partition", "rpartition", "count", "find", "removeprefix",
                    "removesuffix", "title", "rsplit"}),
    list: frozenset({"append", "extend", "index", "count", "copy", "insert", "pop"}),
    tuple: frozenset({"index", "count"}),
    dict: frozenset({"get", "keys", "values", "items", "copy", "setdefault", "update"}),
}


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Budget:
    """Evaluation steps left: of one value (`MAX_STEPS`), within the whole import's (`parent`, MAX_TOTAL_STEPS)."""

    def __init__(self, steps: int = MAX_STEPS, parent: Budget | None = None) -> None:
        self.left = steps
        self.steps = steps
        self.parent = parent
        self.depth = 0

    def spend(self, node: ast.AST) -> None:
        self.left -= 1
        if self.left < 0:
            raise FoldError(f"the value needs more than {self.steps} evaluation steps", node)
        if self.parent is not None:
            self.parent.spend(node)

    def child(self) -> Budget:
        """A budget of MAX_STEPS for one value, drawn from this one."""
        return Budget(MAX_STEPS, self)


_DEFAULT_BUDGET = Budget(10**12)  # folds of single expressions (the common case) are never long


@dataclass
class Folder:
    """Evaluates pure expressions against `lookup` (a name's value, an `Unfoldable`, or KeyError); calls of
    the module's own functions run their bodies with a local scope over the function's module."""

    lookup: Callable[[str], Any]
    math_aliases: frozenset[str] = frozenset({"math"})
    budget: Budget = field(default_factory=lambda: _DEFAULT_BUDGET)

    def fold(self, node: ast.AST) -> Any:
        return self._eval(node)

    # -- names --
    def _name(self, name: str, node: ast.AST) -> Any:
        try:
            value = self.lookup(name)
        except KeyError:
            if name in _TYPES:  # a builtin type as a value (`type=int` of an argparse option)
                return _TYPES[name]
            if _BUILTINS.get(name) is not None:
                return _BUILTINS[name]
            raise FoldError(f"unknown name {name!r}", node) from None
        if isinstance(value, Unfoldable):
            raise FoldError(f"{name!r} cannot be computed without running the program ({value.reason}, "
                            f"{value.loc})", node)
        return value

    def _shadowed(self, name: str) -> bool:
        try:
            return self.lookup(name) is not None
        except KeyError:
            return False

    # -- expressions --
    def _eval(self, node: ast.AST) -> Any:
        self.budget.spend(node)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool | int | float | str) or node.value is None:
                return node.value
            raise FoldError(f"literal {node.value!r} is not a number", node)
        if isinstance(node, ast.Name):
            return self._name(node.id, node)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = self._eval(node.left), self._eval(node.right)
            if isinstance(left, _TORCH) or isinstance(right, _TORCH):
                return self._torch(tv.binop, (_BINOPS[type(node.op)], left, right), node)
            if not (_plain(left) and _plain(right)):
                raise FoldError("only numbers, strings and sequences can be combined", node)
            return self._checked(_BINOPS[type(node.op)], (left, right), node)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            operand = self._eval(node.operand)
            if isinstance(operand, _TORCH) and isinstance(node.op, ast.USub | ast.UAdd):
                factor = -1 if isinstance(node.op, ast.USub) else 1
                return self._torch(tv.binop, (operator.mul, operand, factor), node)
            return self._checked(_UNARY[type(node.op)], (operand,), node)
        if isinstance(node, ast.BoolOp):
            result = self._eval(node.values[0])
            for v in node.values[1:]:
                if (not result) if isinstance(node.op, ast.And) else bool(result):
                    break
                result = self._eval(v)
            return result
        if isinstance(node, ast.Compare):
            values = [self._eval(v) for v in [node.left, *node.comparators]]
            if any(isinstance(v, _TORCH) for v in values):
                raise FoldError("a comparison of a value read back from a torch tensor", node)
            return all(self._checked(_CMP[type(op)], (values[i], values[i + 1]), node)
                       for i, op in enumerate(node.ops))
        if isinstance(node, ast.IfExp):
            return self._eval(node.body) if self._eval(node.test) else self._eval(node.orelse)
        if isinstance(node, ast.Tuple):
            return tuple(self._starred(node.elts))
        if isinstance(node, ast.List):
            return list(self._starred(node.elts))
        if isinstance(node, ast.Set):
            return set(self._starred(node.elts))
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for k, v in zip(node.keys, node.values, strict=True):
                if k is None:
                    out.update(self._eval(v))
                else:
                    out[self._key(self._eval(k), k)] = self._eval(v)
            return out
        if isinstance(node, ast.ListComp | ast.GeneratorExp | ast.SetComp):
            items = self._comprehension(node.generators, lambda f: [f._eval(node.elt)], node)
            return set(items) if isinstance(node, ast.SetComp) else list(items)
        if isinstance(node, ast.DictComp):
            pairs = self._comprehension(node.generators, lambda f: [(f._eval(node.key), f._eval(node.value))], node)
            return {self._key(k, node): v for k, v in pairs}
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.Attribute):
            return self._attribute(self._eval_base(node.value), node.attr, node)
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                if isinstance(v, ast.FormattedValue):
                    spec = self._eval(v.format_spec) if v.format_spec is not None else ""
                    parts.append(format(self._eval(v.value), spec))
                else:
                    parts.append(self._eval(v))
            return self._sized("".join(parts), node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise FoldError(f"{describe(node)} cannot be computed without running the program", node)

    def _eval_base(self, node: ast.expr) -> Any:
        """The value an attribute is read from: an unknown module name (`os`, `math`) stands for itself."""
        if isinstance(node, ast.Name):
            try:
                value = self.lookup(node.id)
            except KeyError:
                return ModuleAlias(node.id) if node.id in ("math", "os", "sys") else self._name(node.id, node)
            if isinstance(value, Unfoldable):
                return self._name(node.id, node)
            return value
        return self._eval(node)

    def _starred(self, elts: list[ast.expr]) -> list[Any]:
        out: list[Any] = []
        for e in elts:
            if isinstance(e, ast.Starred):
                out.extend(self._eval(e.value))
            else:
                out.append(self._eval(e))
        return self._sized(out, elts[0] if elts else ast.Constant(0))

    @staticmethod
    def _key(k: Any, node: ast.AST) -> Any:
        try:
            hash(k)
        except TypeError:
            raise FoldError("a dict key must be a number, string or tuple", node) from None
        return k

    def _comprehension(self, gens: list[ast.comprehension], body: Callable[[Folder], list[Any]],
                       node: ast.AST) -> list[Any]:
        local: dict[str, Any] = {}
        inner = Folder(lambda n: local[n] if n in local else self.lookup(n), self.math_aliases, self.budget)
        out: list[Any] = []

        def level(i: int) -> None:
            if i == len(gens):
                out.extend(body(inner))
                if len(out) > MAX_LEN:
                    raise FoldError(f"a comprehension of more than {MAX_LEN} items", node)
                return
            g = gens[i]
            for item in inner._iterate(inner._eval(g.iter), g.iter):
                bind(g.target, item, local, g)
                if all(inner._eval(c) for c in g.ifs):
                    level(i + 1)
        level(0)
        return out

    def _iterate(self, value: Any, node: ast.AST) -> list[Any]:
        if isinstance(value, dict):
            return list(value)
        if isinstance(value, list | tuple | str | range | set):
            if len(value) > MAX_LEN:
                raise FoldError(f"iterating over more than {MAX_LEN} items", node)
            return sorted(value) if isinstance(value, set) else list(value)
        raise FoldError(f"cannot iterate over {type(value).__name__}", node)

    def _subscript(self, node: ast.Subscript) -> Any:
        base = self._eval(node.value)
        if isinstance(node.slice, ast.Slice):
            s = node.slice
            idx: Any = slice(*(self._eval(x) if x is not None else None for x in (s.lower, s.upper, s.step)))
        else:
            idx = self._eval(node.slice)
        if isinstance(base, tv.TorchTensor):
            return self._torch(tv.index, (base, idx), node)
        if not isinstance(base, list | tuple | str | dict | range):
            raise FoldError(f"cannot index {type(base).__name__}", node)
        try:
            return base[idx]
        except (KeyError, IndexError, TypeError) as exc:
            raise FoldError(f"cannot index: {exc}", node) from None

    def _attribute(self, base: Any, attr: str, node: ast.AST) -> Any:
        if isinstance(base, ModuleAlias):
            if base.module == "math" and attr in _MATH_CONSTS:
                return _MATH_CONSTS[attr]
            if base.module == "sys" and attr == "argv":
                return ["<script>"]
            if base.module in ("os", "os.environ") or base.module == "math" or base.module == "sys":
                return ModuleAlias(f"{base.module}.{attr}")
            return ModuleAlias(f"{base.module}.{attr}")
        if isinstance(base, SiblingModule):
            try:
                value = base.lookup(attr)
            except KeyError:
                raise FoldError(f"module {base.name} has no name {attr!r}", node) from None
            if isinstance(value, Unfoldable):
                raise FoldError(f"{base.name}.{attr} cannot be computed without running the program "
                                f"({value.reason}, {value.loc})", node)
            return value
        if isinstance(base, Instance):
            if attr in base.values:
                return base.values[attr]
            prop = base.cls.properties.get(attr)
            if prop is not None:
                return self.call_function(FunctionValue(prop, base.cls.lookup), [base], {}, node)
            raise FoldError(f"{base.cls.name} has no field {attr!r}", node)
        if isinstance(base, Namespace):
            if attr in base.values:
                return base.values[attr]
            raise FoldError(f"the harness's arguments have no option {attr!r}", node)
        if isinstance(base, DynDim) and attr == "name":
            return base.name
        if isinstance(base, tv.TorchTensor | tv.Generator):
            return tv.attribute(base, attr) if isinstance(base, tv.TorchTensor) else tv.Method(base, attr)
        if isinstance(base, ArgParser):
            return ParserMethod(base, attr)
        if type(base) in _METHODS and attr in _METHODS[type(base)]:
            return getattr(base, attr)
        raise FoldError(f"`{ast.unparse(node)[:40]}` cannot be computed without running the program", node)

    # -- calls --
    def _call(self, node: ast.Call) -> Any:
        args = self._starred(node.args) if node.args else []
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                extra = self._eval(kw.value)
                if not isinstance(extra, dict):
                    raise FoldError("`**` of a non-dict", node)
                kwargs.update(extra)
            else:
                kwargs[kw.arg] = self._eval(kw.value)
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("int", "float", "abs", "round") and not self._shadowed(func.id) \
                and any(isinstance(a, tv.Opaque) for a in args):
            return tv.Opaque()  # a number read back from a tensor stays unknown
        if isinstance(func, ast.Name) and func.id in _BUILTINS and not self._shadowed(func.id):
            if func.id == "isinstance":
                if len(args) != 2 or not all(isinstance(t, type) for t in _as_tuple(args[1])):
                    raise FoldError("isinstance against builtin types only", node)
                return isinstance(args[0], _as_tuple(args[1]))
            return self._checked(_BUILTINS[func.id], tuple(args), node, kwargs)
        if isinstance(func, ast.Name) and func.id in _TYPES and not self._shadowed(func.id):
            return self._checked(_TYPES[func.id], tuple(args), node, kwargs)
        target = self._eval_base(func) if isinstance(func, ast.Name) else (
            self._attribute(self._eval_base(func.value), func.attr, func) if isinstance(func, ast.Attribute)
            else self._eval(func))
        return self.apply(target, args, kwargs, node)

    def apply(self, target: Any, args: list[Any], kwargs: dict[str, Any], node: ast.AST) -> Any:
        """Call a value: a module function, a dataclass, an allowed builtin method, or a known library call."""
        if isinstance(target, FunctionValue):
            return self.call_function(target, args, kwargs, node)
        if isinstance(target, DataclassType):
            return self.construct(target, args, kwargs, node)
        if isinstance(target, ModuleAlias):
            return self._library(target.module, args, kwargs, node)
        if isinstance(target, ParserMethod):
            return parser_call(target.parser, target.method, args, kwargs)
        if isinstance(target, tv.Method):
            return self._torch(tv.call_method, (target, args, kwargs), node)
        if callable(target) and getattr(target, "__self__", None) is not None \
                and type(target.__self__) in _METHODS:  # a whitelisted method of one of our values
            return self._checked(target, tuple(args), node, kwargs)
        if target in _MATH.values() or target in _BUILTINS.values():
            return self._checked(target, tuple(args), node, kwargs)
        raise FoldError(f"{describe(node)} cannot be computed without running the program", node)

    def _library(self, name: str, args: list[Any], kwargs: dict[str, Any], node: ast.AST) -> Any:
        short = name.split(".", 1)[1] if name.startswith("math.") else None
        if short in _MATH:
            return self._checked(_MATH[short], tuple(args), node, kwargs)
        if name in ("os.environ.get", "os.getenv"):
            return args[1] if len(args) > 1 else kwargs.get("default")  # npusim never reads the environment
        if name.endswith(".dynamic") or name == "dynamic":
            if len(args) != 1 or not isinstance(args[0], str):
                raise FoldError("pl.dynamic(\"NAME\")", node)
            return DynDim(args[0])
        if name in ("dataclasses.replace", "replace"):
            if len(args) != 1 or not isinstance(args[0], Instance):
                raise FoldError("replace(instance, field=value, ...)", node)
            inst = args[0]
            unknown = set(kwargs) - set(inst.values)
            if unknown:
                raise FoldError(f"{inst.cls.name} has no field {sorted(unknown)[0]!r}", node)
            return Instance(inst.cls, {**inst.values, **kwargs})
        if name.endswith("ArgumentParser"):
            return ArgParser()
        if name.startswith("torch.") and name.count(".") == 1:
            return self._torch(tv.factory, (name.split(".", 1)[1], args, kwargs), node)
        raise FoldError(f"the call of `{name}` cannot be computed without running the program", node)

    def construct(self, cls: DataclassType, args: list[Any], kwargs: dict[str, Any], node: ast.AST) -> Instance:
        names = [f for f, _ in cls.fields]
        if len(args) > len(names):
            raise FoldError(f"{cls.name} takes {len(names)} fields, got {len(args)} positional arguments", node)
        values = dict(zip(names, args, strict=False))
        for k, v in kwargs.items():
            if k not in names:
                raise FoldError(f"{cls.name} has no field {k!r}", node)
            values[k] = v
        folder = Folder(cls.lookup, self.math_aliases, self.budget)
        for f, default in cls.fields:
            if f not in values:
                if default is None:
                    raise FoldError(f"{cls.name}: field {f!r} has no value", node)
                values[f] = folder._eval(default)
        return Instance(cls, values)

    def call_function(self, fn: FunctionValue, args: list[Any], kwargs: dict[str, Any], node: ast.AST) -> Any:
        """Run a module function's body (its statements evaluated here, bounded), returning its value."""
        if self.budget.depth >= MAX_CALL_DEPTH:
            raise FoldError(f"calls nested more than {MAX_CALL_DEPTH} deep", node)
        if fn.lookup is None:
            raise FoldError(f"function {fn.node.name} cannot be called here", node)
        local: dict[str, Any] = {}
        a = fn.node.args
        if a.vararg or a.kwarg:
            raise FoldError(f"function {fn.node.name} takes *args or **kwargs", node)
        params = [*a.posonlyargs, *a.args]
        defaults = [None] * (len(params) - len(a.defaults)) + list(a.defaults)
        if len(args) > len(params):
            raise FoldError(f"{fn.node.name} takes {len(params)} arguments, got {len(args)}", node)
        outer = Folder(fn.lookup, self.math_aliases, self.budget)
        for p, v in zip(params, args, strict=False):
            local[p.arg] = v
        for k, v in kwargs.items():
            if k not in [p.arg for p in params] + [p.arg for p in a.kwonlyargs]:
                raise FoldError(f"{fn.node.name} has no parameter {k!r}", node)
            local[k] = v
        for p, d in [*zip(params, defaults, strict=True), *zip(a.kwonlyargs, a.kw_defaults, strict=True)]:
            if p.arg not in local:
                if d is None:
                    raise FoldError(f"{fn.node.name}: parameter {p.arg!r} has no value", node)
                local[p.arg] = outer._eval(d)
        runner = Runner(local, fn.lookup, self.math_aliases, self.budget, fn.file)
        self.budget.depth += 1
        try:
            runner.block(fn.node.body)
        except _Return as ret:
            return ret.value
        finally:
            self.budget.depth -= 1
        return None

    @staticmethod
    def _torch(fn: Callable[..., Any], args: tuple, node: ast.AST) -> Any:
        """A step of a harness's torch expression (torchvalues), its refusal a FoldError."""
        try:
            return fn(*args)
        except tv.TorchError as exc:
            raise FoldError(f"`{ast.unparse(node)[:40]}`: {exc} is not followed", node) from None
        except (TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            raise FoldError(f"`{ast.unparse(node)[:40]}`: {exc}", node) from None

    @staticmethod
    def _sized(value: Any, node: ast.AST) -> Any:
        if isinstance(value, str | list | tuple | dict | set) and len(value) > MAX_LEN:
            raise FoldError(f"a value of more than {MAX_LEN} items", node)
        return value

    def _checked(self, fn: Callable[..., Any], args: tuple, node: ast.AST, kwargs: dict | None = None) -> Any:
        if fn is operator.mul and any(isinstance(a, str | list | tuple) for a in args):
            n = next((a for a in args if isinstance(a, int)), 0)
            seq = next(a for a in args if isinstance(a, str | list | tuple))
            if n * len(seq) > MAX_LEN:
                raise FoldError("sequence too long", node)
        try:
            value = fn(*args, **(kwargs or {}))
        except ZeroDivisionError:
            raise FoldError("division by zero", node) from None
        except (OverflowError, ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            raise FoldError(f"cannot evaluate: {exc}", node) from None
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            raise FoldError("number too large", node)
        if isinstance(value, range) and len(value) > MAX_LEN:
            raise FoldError("range too long", node)
        if isinstance(value, type({}.keys()) | type({}.values()) | type({}.items())):
            value = list(value)
        return self._sized(value, node)


_TORCH = (tv.TorchTensor, tv.Opaque, tv.Generator)


def _plain(v: Any) -> bool:
    return isinstance(v, bool | int | float | str | tuple | list | type(None))


def _as_tuple(v: Any) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def bind(target: ast.expr, value: Any, local: dict[str, Any], node: ast.AST) -> None:
    """Assign `value` to a target (a name or a tuple of targets) in `local`."""
    if isinstance(target, ast.Name):
        local[target.id] = value
    elif isinstance(target, ast.Tuple | ast.List):
        items = list(value) if isinstance(value, list | tuple) else None
        if items is None or len(items) != len(target.elts):
            raise FoldError("cannot unpack this value", node)
        for t, v in zip(target.elts, items, strict=True):
            bind(t, v, local, node)
    else:
        raise FoldError(f"assignment to `{ast.unparse(target)[:30]}`", node)


class Runner:
    """A function body's statements, evaluated over a local scope on top of the function's module."""

    def __init__(self, local: dict[str, Any], outer: Callable[[str], Any], math_aliases: frozenset[str],
                 budget: Budget, file: str = "") -> None:
        self.local = local
        self.outer = outer
        self.file = file
        self.folder = Folder(self.lookup, math_aliases, budget)
        self.budget = budget

    def lookup(self, name: str) -> Any:
        return self.local[name] if name in self.local else self.outer(name)

    def block(self, stmts: list[ast.stmt]) -> None:
        for s in stmts:
            self.statement(s)

    def statement(self, s: ast.stmt) -> None:
        self.budget.spend(s)
        ev = self.folder._eval
        if isinstance(s, ast.Assign):
            value = ev(s.value)
            for t in s.targets:
                self.assign(t, value, s)
        elif isinstance(s, ast.AnnAssign):
            if s.value is not None:
                self.assign(s.target, ev(s.value), s)
        elif isinstance(s, ast.AugAssign):
            current = ev(ast.copy_location(ast.Name(s.target.id, ast.Load()), s)) if isinstance(s.target, ast.Name) \
                else ev(s.target)  # type: ignore[arg-type]
            self.assign(s.target, self.folder._checked(_BINOPS[type(s.op)], (current, ev(s.value)), s), s)
        elif isinstance(s, ast.Return):
            raise _Return(ev(s.value) if s.value is not None else None)
        elif isinstance(s, ast.If):
            self.block(s.body if ev(s.test) else s.orelse)
        elif isinstance(s, ast.For):
            for item in self.folder._iterate(ev(s.iter), s.iter):
                bind(s.target, item, self.local, s)
                try:
                    self.block(s.body)
                except _Break:
                    break
                except _Continue:
                    continue
            else:
                self.block(s.orelse)
        elif isinstance(s, ast.While):
            while ev(s.test):
                self.budget.spend(s)
                try:
                    self.block(s.body)
                except _Break:
                    break
                except _Continue:
                    continue
        elif isinstance(s, ast.Break):
            raise _Break
        elif isinstance(s, ast.Continue):
            raise _Continue
        elif isinstance(s, ast.Expr):
            if not isinstance(s.value, ast.Constant):
                ev(s.value)
        elif isinstance(s, ast.Pass):
            pass
        elif isinstance(s, ast.Import | ast.ImportFrom):
            for alias in s.names:
                name = alias.asname or alias.name.split(".")[0]
                self.local[name] = ModuleAlias(alias.name if alias.asname or isinstance(s, ast.Import) else
                                               f"{s.module}.{alias.name}")
        elif isinstance(s, ast.FunctionDef):
            self.local[s.name] = FunctionValue(s, self.lookup, self.file)
        elif isinstance(s, ast.Assert):
            if not ev(s.test):
                raise FoldError(f"assertion failed: {ast.unparse(s.test)[:60]}", s)
        elif isinstance(s, ast.Raise):
            raise FoldError("the function raises", s)
        else:
            raise FoldError(f"a `{type(s).__name__}` statement", s)

    def assign(self, target: ast.expr, value: Any, node: ast.AST) -> None:
        if isinstance(target, ast.Subscript):
            base = self.folder._eval(target.value)
            if isinstance(target.slice, ast.Slice) and isinstance(base, list):
                s = target.slice
                idx: Any = slice(*(self.folder._eval(x) if x is not None else None for x in (s.lower, s.upper, s.step)))
            else:
                idx = self.folder._eval(target.slice)
            if isinstance(base, tv.TorchTensor):  # a store into a tensor: its values are no longer one rule's
                base.rule, base.why = None, "values stored element by element"
                return
            if not isinstance(base, list | dict):
                raise FoldError(f"cannot assign into {type(base).__name__}", node)
            try:
                base[idx] = value
            except (IndexError, TypeError) as exc:
                raise FoldError(f"cannot assign: {exc}", node) from None
            return
        if isinstance(target, ast.Attribute):
            base = self.folder._eval(target.value)
            if not isinstance(base, Namespace):
                raise FoldError("assigning an attribute", node)
            base.values[target.attr] = value  # `args.x = ...` of the harness's options
            return
        bind(target, value, self.local, node)


def describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return f"the call `{ast.unparse(node.func)[:40]}(...)`"
    if isinstance(node, ast.Attribute):
        return f"`{ast.unparse(node)[:40]}`"
    return f"a {type(node).__name__} expression"


def dataclass_type(node: ast.ClassDef, lookup: Callable[[str], Any]) -> DataclassType | None:
    """A `@dataclass` (or `@dataclass(frozen=True)`) class statement as a type; None for any other class."""
    if not any((ast.unparse(d.func if isinstance(d, ast.Call) else d)).split(".")[-1] == "dataclass"
               for d in node.decorator_list):
        return None
    fields: list[tuple[str, ast.expr | None]] = []
    props: dict[str, ast.FunctionDef] = {}
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            if "ClassVar" in ast.unparse(item.annotation):
                continue
            fields.append((item.target.id, item.value))
        elif isinstance(item, ast.FunctionDef) and any(ast.unparse(d) == "property" for d in item.decorator_list):
            props[item.name] = item
    return DataclassType(node.name, fields, props, lookup)


def parser_call(parser: ArgParser, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """`parser.add_argument(...)` records a default; `parser.parse_args()` gives them all."""
    if method == "add_argument":
        names = [a for a in args if isinstance(a, str)]
        long = next((n for n in names if n.startswith("--")), None)
        dest = kwargs.get("dest") or (long or (names[0] if names else "")).lstrip("-").replace("-", "_")
        default = kwargs.get("default")
        if default is None and kwargs.get("action") == "store_true":
            default = False
        elif default is None and kwargs.get("action") == "store_false":
            default = True
        parser.defaults[dest] = default
        return None
    if method in ("parse_args", "parse_known_args"):
        ns = Namespace(dict(parser.defaults))
        return ns if method == "parse_args" else (ns, [])
    return None
