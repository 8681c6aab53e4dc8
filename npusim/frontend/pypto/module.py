"""The Python around a PyPTO program, read statically: module constants, the builder function whose keyword
defaults and locals the `@pl.program` class closes over, the test harness (`build_tensor_specs`) and its
golden, `assert`s and `if ...: raise` guards. Module constants and the builder's and harness's keyword
defaults are the program's params; `--set NAME=V` replaces that assignment's right-hand side and every
later definition is folded again, as if the source had been edited."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from npusim.errors import Location, ProgramError, did_you_mean

from ..params import Number, check_override
from .source import Definition, Folder, FoldError, Scope, Source, Unfoldable, assigned_names, is_number

PL_MODULES = ("pypto.language",)


@dataclass(frozen=True)
class ModuleAlias:
    """A name bound by an import (`import pypto.language as pl`): never imported, only recognised."""

    module: str


@dataclass
class Requirement:
    """`assert COND` (or `if COND: raise`, stored negated) in the module or the builder."""

    test: ast.expr
    negate: bool
    loc: Location
    scope: Scope


@dataclass
class ProgramSite:
    """The `@pl.program` class and the closure its methods see (a snapshot at the class statement)."""

    cls: ast.ClassDef
    closure: Scope
    builder: ast.FunctionDef | None


@dataclass
class Harness:
    """The function building the TensorSpecs, the scope its locals live in, and the golden's name."""

    fn: ast.FunctionDef
    scope: Scope
    golden: str | None  # the golden passed to run(...); None: run(golden=None); "": none named


@dataclass
class ModuleModel:
    source: Source
    globals: Scope
    program: ProgramSite
    harness: Harness | None
    requirements: list[Requirement]
    params: dict[str, Definition]  # name -> its definition (the builder's when several)
    param_scopes: list[Scope] = field(default_factory=list)

    def is_pl(self, node: ast.AST, scope: Scope) -> bool:
        """Whether `node` names the `pypto.language` module (through whatever alias)."""
        if not isinstance(node, ast.Name):
            return False
        try:
            value = scope.lookup(node.id)
        except KeyError:
            return False
        return isinstance(value, ModuleAlias) and value.module in PL_MODULES


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    return ast.unparse(target)


def _is_program_class(node: ast.stmt) -> bool:
    return isinstance(node, ast.ClassDef) and any(_decorator_name(d).endswith(".program") or
                                                  _decorator_name(d) == "program" for d in node.decorator_list)


def _contains(fn: ast.FunctionDef, pred: Any) -> bool:
    return any(pred(n) for n in ast.walk(fn))


def _calls_tensor_spec(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id == "TensorSpec")
        or (isinstance(node.func, ast.Attribute) and node.func.attr == "TensorSpec"))


class _Reader:
    """Folds the module body, the builder and the harness in source order, applying `--set` overrides."""

    def __init__(self, source: Source, overrides: Mapping[str, Number]) -> None:
        self.source = source
        self.overrides = dict(overrides)
        self.used_overrides: set[str] = set()
        self.requirements: list[Requirement] = []
        self.params: dict[str, Definition] = {}
        self.program: ProgramSite | None = None
        self.builder: ast.FunctionDef | None = None
        self.harness_fn: ast.FunctionDef | None = None
        self.harness_scope: Scope | None = None
        self.param_scopes: list[Scope] = []

    def loc(self, node: ast.AST) -> Location:
        return self.source.loc(node)

    # -- definitions --
    def define(self, scope: Scope, name: str, expr: ast.expr | None, node: ast.AST, kind: str,
               value: Any = None) -> Definition:
        overridden = False
        if name in self.overrides and kind in ("module", "param"):
            default = value if expr is None else self._fold(scope, expr)
            if not isinstance(default, Unfoldable):
                check_override(name, default, self.overrides[name])
            value, overridden = self.overrides[name], True
            self.used_overrides.add(name)
        elif expr is not None:
            value = self._fold(scope, expr)
        d = Definition(name, expr, value, self.loc(node), kind, overridden)
        scope.define(d)
        if kind in ("module", "param") and is_number(d.value) and (kind == "param" or name not in self.params
                                                                   or self.params[name].kind == "module"):
            self.params[name] = d
        return d

    def _fold(self, scope: Scope, expr: ast.expr) -> Any:
        try:
            return Folder(scope.lookup).fold(expr)
        except FoldError as exc:
            return Unfoldable(exc.reason, self.loc(exc.node))

    def unfoldable(self, scope: Scope, stmts: list[ast.stmt], why: str) -> None:
        for name, node in assigned_names(stmts):
            scope.define(Definition(name, None, Unfoldable(why, self.loc(node)), self.loc(node), "local"))

    # -- statements --
    def block(self, scope: Scope, stmts: list[ast.stmt], kind: str, in_builder: ast.FunctionDef | None) -> None:
        for stmt in stmts:
            self.statement(scope, stmt, kind, in_builder)

    def statement(self, scope: Scope, stmt: ast.stmt, kind: str, in_builder: ast.FunctionDef | None) -> None:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                name = alias.asname or alias.name.split(".")[0]
                module = alias.name if alias.asname else alias.name.split(".")[0]
                scope.define(Definition(name, None, ModuleAlias(module), self.loc(stmt), "local"))
        elif isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                module = f"{stmt.module}.{alias.name}" if stmt.module else alias.name
                scope.define(Definition(alias.asname or alias.name, None, ModuleAlias(module), self.loc(stmt),
                                        "local"))
        elif isinstance(stmt, ast.Assign):
            self.assign(scope, stmt.targets, stmt.value, stmt, kind)
        elif isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self.assign(scope, [stmt.target], stmt.value, stmt, kind)
        elif isinstance(stmt, ast.AugAssign):
            if isinstance(stmt.target, ast.Name):
                expr = ast.copy_location(ast.BinOp(ast.Name(stmt.target.id, ast.Load()), stmt.op, stmt.value), stmt)
                d = self.define(scope, stmt.target.id, expr, stmt, "local")
                d.expr = None  # x += 1 refers to the old x: written back as its value
            else:
                self.unfoldable(scope, [stmt], "an augmented assignment")
        elif isinstance(stmt, ast.Assert):
            self.requirements.append(Requirement(stmt.test, False, self.loc(stmt), scope))
        elif isinstance(stmt, ast.If):
            self.if_statement(scope, stmt, kind, in_builder)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(scope, stmt, in_builder)
        elif isinstance(stmt, ast.ClassDef):
            if _is_program_class(stmt):
                if self.program is not None:
                    raise ProgramError(f"a second @pl.program class {stmt.name!r}: npusim runs one program per "
                                       f"file (the first is {self.program.cls.name!r})", self.loc(stmt))
                closure = Scope(dict(scope.defs), scope.parent)
                self.program = ProgramSite(stmt, closure, in_builder)
            scope.define(Definition(stmt.name, None, Unfoldable("a class", self.loc(stmt)), self.loc(stmt), "local"))
        elif isinstance(stmt, ast.Expr | ast.Pass | ast.Return | ast.Raise):
            pass  # never executed: prints, docstrings, returns
        elif isinstance(stmt, ast.For | ast.While | ast.With | ast.Try | ast.AsyncFor | ast.AsyncWith):
            self.unfoldable(scope, [stmt], f"assigned in a `{type(stmt).__name__.lower()}` statement, which "
                            "npusim does not run")
        else:
            self.unfoldable(scope, [stmt], f"a `{type(stmt).__name__}` statement")

    def assign(self, scope: Scope, targets: list[ast.expr], value: ast.expr, stmt: ast.stmt, kind: str) -> None:
        for target in targets:
            if isinstance(target, ast.Name):
                self.define(scope, target.id, value, stmt, kind)
            elif isinstance(target, ast.Tuple | ast.List) and isinstance(value, ast.Tuple | ast.List) \
                    and len(target.elts) == len(value.elts) and all(isinstance(t, ast.Name) for t in target.elts):
                for t, v in zip(target.elts, value.elts, strict=True):
                    self.define(scope, t.id, v, stmt, kind)  # type: ignore[attr-defined]
            else:
                self.unfoldable(scope, [ast.Assign(targets=[target], value=value)], "a destructuring assignment")

    def if_statement(self, scope: Scope, stmt: ast.If, kind: str, in_builder: ast.FunctionDef | None) -> None:
        test = stmt.test
        if kind == "module" and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) \
                and test.left.id == "__name__":
            return  # the script's main block: never run
        raises = [s for s in stmt.body if isinstance(s, ast.Raise)]
        if raises:  # `if COND: raise ...` is a guard: the program requires `not COND`
            self.requirements.append(Requirement(test, True, self.loc(stmt), scope))
        try:
            taken = Folder(scope.lookup).fold(test)
        except FoldError as exc:
            why = f"assigned under `if {ast.unparse(test)[:40]}`, which cannot be decided statically ({exc.reason})"
            self.unfoldable(scope, stmt.body + stmt.orelse, why)
            return
        branch = [s for s in (stmt.body if taken else stmt.orelse) if not isinstance(s, ast.Raise)]
        self.block(scope, branch, kind, in_builder)

    def function(self, scope: Scope, fn: ast.FunctionDef | ast.AsyncFunctionDef,
                 in_builder: ast.FunctionDef | None) -> None:
        scope.define(Definition(fn.name, None, FunctionValue(fn), self.loc(fn), "local"))
        if in_builder is not None or not isinstance(fn, ast.FunctionDef):
            return
        is_builder = _contains(fn, _is_program_class)
        is_harness = _contains(fn, _calls_tensor_spec) and not is_builder
        if not (is_builder or is_harness) or (is_harness and self.harness_fn is not None):
            return
        local = Scope(parent=scope)
        self.bind_defaults(scope, local, fn)
        if is_builder:
            self.builder = fn
            self.block(local, fn.body, "local", fn)
        else:
            self.harness_fn, self.harness_scope = fn, local
            self.block(local, fn.body, "local", fn)
        self.param_scopes.append(local)

    def bind_defaults(self, outer: Scope, local: Scope, fn: ast.FunctionDef) -> None:
        """Keyword defaults are evaluated where the `def` stands (module scope), and become params."""
        args = fn.args
        positional = [*args.posonlyargs, *args.args]
        defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        pairs = [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
        for arg, default in pairs:
            if default is None:
                local.define(Definition(arg.arg, None, Unfoldable(f"parameter {arg.arg!r} of {fn.name} has no "
                                                                  "default", self.loc(arg)), self.loc(arg), "local"))
                continue
            value = self._fold(outer, default)
            d = self.define(local, arg.arg, None, arg, "param", value)
            d.expr = default


@dataclass(frozen=True)
class FunctionValue:
    """A function defined in the module or the builder (a helper, an init function, a golden)."""

    node: ast.FunctionDef | ast.AsyncFunctionDef


def read_module(source: Source, overrides: Mapping[str, Number]) -> ModuleModel:
    """Fold the module, find the `@pl.program` class and the harness, apply `--set`, check `assert`s."""
    known = _param_names(source.tree)
    for name in overrides:
        if name not in known:
            raise ProgramError(f"--set {name}: no such param{did_you_mean(name, known)}; params: "
                               f"{', '.join(known) or 'none'}")
    reader = _Reader(source, overrides)
    globals_ = Scope()
    reader.block(globals_, source.tree.body, "module", None)
    for name in overrides:
        if name not in reader.used_overrides:
            raise ProgramError(f"--set {name}: {name} is not a number or boolean constant here",
                               Location(source.file))
    if reader.program is None:
        raise ProgramError("no @pl.program class found (npusim reads the seed-era form: a builder function "
                           "returning a @pl.program class)", Location(source.file))
    harness = None
    if reader.harness_fn is not None and reader.harness_scope is not None:
        harness = Harness(reader.harness_fn, reader.harness_scope, _golden(source.tree))
    model = ModuleModel(source, globals_, reader.program, harness, reader.requirements, reader.params,
                        reader.param_scopes)
    check_requirements(model)
    return model


def _param_names(tree: ast.Module) -> list[str]:
    """Names `--set` may name: module constants and the keyword parameters of module functions."""
    names: list[str] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign):
            names += [t.id for t in stmt.targets if isinstance(t, ast.Name)]
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names.append(stmt.target.id)
        elif isinstance(stmt, ast.FunctionDef) and (_contains(stmt, _is_program_class)
                                                    or _contains(stmt, _calls_tensor_spec)):
            args = stmt.args
            with_defaults = [*[a.arg for a in args.args[len(args.args) - len(args.defaults):]],
                             *[a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]]
            names += with_defaults
    return list(dict.fromkeys(names))


def _golden(tree: ast.Module) -> str | None:
    """The golden a `run(..., golden=NAME)` call passes, or a module function named golden*; None when the
    harness runs with `golden=None` (no check wanted); "" when the file names none."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "golden":
                    return kw.value.id if isinstance(kw.value, ast.Name) else None
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("golden"):
            return stmt.name
    return ""


def check_requirements(model: ModuleModel) -> None:
    """Every `assert` (and raise guard) of the module and builder, checked with the params of this run."""
    for req in model.requirements:
        try:
            value = Folder(req.scope.lookup).fold(req.test)
        except FoldError as exc:
            raise ProgramError(f"cannot check `{ast.unparse(req.test)[:80]}` without running the program: "
                               f"{exc.reason}", req.loc) from None
        holds = not value if req.negate else bool(value)
        if not holds:
            names = sorted({n.id for n in ast.walk(req.test) if isinstance(n, ast.Name)})
            shown = []
            for n in names:
                try:
                    v = req.scope.lookup(n)
                except KeyError:
                    continue
                if isinstance(v, bool | int | float):
                    shown.append(f"{n}={v}")
            what = f"not ({ast.unparse(req.test)})" if req.negate else ast.unparse(req.test)
            raise ProgramError(f"requirement failed: {what}" + (f" ({', '.join(shown)})" if shown else ""), req.loc)
