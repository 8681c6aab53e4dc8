"""The Python around a PyPTO program, read statically: module constants (also those imported from sibling
modules of the same folder, read the same way), the entry (the builder function whose keyword defaults and
locals the `@pl.program` class closes over, or the `@pl.jit` function the `__main__` block runs), the test
harness (`build_tensor_specs`) called as `__main__` calls it with no command line, its golden, `assert`s and
`if ...: raise` guards. Module constants and the builder's and harness's parameters are the program's
params; `--set NAME=V` replaces that assignment's right-hand side and every later definition is folded
again, as if the source had been edited."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npusim.errors import Location, ProgramError, did_you_mean

from ..params import Number, check_override
from .pyeval import (
    MAX_TOTAL_STEPS,
    Budget,
    FunctionValue,
    ModuleAlias,
    Namespace,
    Runner,
    SiblingModule,
    _Return,
    bind,
    dataclass_type,
)
from .source import Definition, Folder, FoldError, Scope, Source, Unfoldable, assigned_names, is_number, read_source

PL_MODULES = ("pypto.language",)
MAX_SIBLINGS = 64  # sibling modules one import may read
JIT_KINDS = ("jit", "jit.inline", "jit.incore", "jit.opaque", "jit.extern", "jit.host", "inline", "function")


def dsl_kind(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """Which PyPTO decorator a module-level function carries: `jit`, `jit.inline`, `jit.incore`, ... (the
    decorator's attribute path after the `pl` alias), or None for plain Python."""
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        parts = []
        while isinstance(target, ast.Attribute):
            parts.append(target.attr)
            target = target.value
        path = ".".join(reversed(parts))
        if isinstance(target, ast.Name) and path in JIT_KINDS:
            return path
    return None


class Siblings:
    """The modules of the program's folder, each read once (parsed and folded, never imported) when a file of
    the folder imports it: `from config import M` finds `config.py` beside the importer."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.scopes: dict[str, Scope] = {}
        self.sources: dict[str, Source] = {}
        self.loading: set[str] = set()
        self.budget = Budget(MAX_TOTAL_STEPS)

    def find(self, module: str | None, level: int) -> Path | None:
        if module is None or level or "." in module:
            return None
        path = self.folder / f"{module}.py"
        return path if path.is_file() else None

    def load(self, path: Path, where: Location) -> Scope:
        key = str(path)
        if key in self.scopes:
            return self.scopes[key]
        if key in self.loading:
            raise ProgramError(f"{path.name} imports itself (a cycle of sibling imports)", where)
        if len(self.scopes) + len(self.loading) >= MAX_SIBLINGS:
            raise ProgramError(f"more than {MAX_SIBLINGS} sibling modules imported", where)
        self.loading.add(key)
        try:
            source = read_source(path, self.max_bytes)
            self.sources[key] = source
            reader = _Reader(source, {}, self)
            scope = Scope()
            reader.block(scope, source.tree.body, "module", None)
            check_requirements_of(reader.requirements)
        finally:
            self.loading.discard(key)
        self.scopes[key] = scope
        return scope


@dataclass
class Requirement:
    """`assert COND` (or `if COND: raise`, stored negated) in the module or the builder."""

    test: ast.expr
    negate: bool
    loc: Location
    scope: Scope
    soft: bool = False  # a guard of the harness: one npusim cannot decide (it tests torch data) is skipped


@dataclass
class ProgramSite:
    """The entry and the closure it sees: the `@pl.program` class (a snapshot of the closure at the class
    statement), or a `@pl.jit` function over its module's globals (`jit`)."""

    cls: ast.ClassDef | None
    closure: Scope
    builder: ast.FunctionDef | None
    jit: ast.FunctionDef | None = None

    @property
    def title(self) -> str:
        return f"@pl.jit {self.jit.name}" if self.jit is not None else f"@pl.program {self.cls.name}"  # type: ignore


@dataclass
class RunCall:
    """The harness's run call (`run_jit(fn=..., specs=...)`, `run(program=..., specs=...)`) as the `__main__`
    block makes it with no command line: the call, the names it sees, and how each was assigned."""

    node: ast.Call
    lookup: Any
    exprs: dict[str, ast.expr]
    module_level: bool = True  # made by the `__main__` block itself (its assignments rebind module globals)

    def argument(self, name: str, position: int) -> ast.expr | None:
        for kw in self.node.keywords:
            if kw.arg == name:
                return kw.value
        return self.node.args[position] if len(self.node.args) > position else None

    def resolve(self, node: ast.expr | None) -> ast.expr | None:
        """An argument through the names main assigned it from (`specs = build(...)`; `specs=specs`)."""
        seen = 0
        while isinstance(node, ast.Name) and node.id in self.exprs and seen < 8:
            node, seen = self.exprs[node.id], seen + 1
        return node


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
    siblings: Siblings | None = None

    def source_of(self, file: str) -> Source:
        """The parsed source of the program's file or of a sibling module it imported."""
        if file == self.source.file or self.siblings is None:
            return self.source
        return self.siblings.sources.get(file, self.source)

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

    def __init__(self, source: Source, overrides: Mapping[str, Number], siblings: Siblings) -> None:
        self.source = source
        self.siblings = siblings
        self.jit_entries: list[ast.FunctionDef] = []
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
            return Folder(scope.lookup, budget=self.siblings.budget.child()).fold(expr)
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
                sibling = self.siblings.find(alias.name, 0)
                if sibling is not None and str(sibling) != self.source.file:
                    other = self.siblings.load(sibling, self.loc(stmt))
                    scope.define(Definition(name, None, SiblingModule(alias.name, other.lookup, other),
                                            self.loc(stmt), "local"))
                    continue
                scope.define(Definition(name, None, ModuleAlias(module), self.loc(stmt), "local"))
        elif isinstance(stmt, ast.ImportFrom):
            sibling = self.siblings.find(stmt.module, stmt.level)
            if sibling is not None and str(sibling) != self.source.file:
                self.import_from(scope, stmt, sibling)
                return
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
            soft = in_builder is not None and in_builder is self.harness_fn
            self.requirements.append(Requirement(stmt.test, False, self.loc(stmt), scope, soft))
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
            cls = dataclass_type(stmt, scope.lookup)
            scope.define(Definition(stmt.name, None, cls if cls is not None else Unfoldable("a class", self.loc(stmt)),
                                    self.loc(stmt), "local"))
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
            elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) \
                    and isinstance(self._peek(scope, target.value.id), SiblingModule):
                module = self._peek(scope, target.value.id)  # `config.X = ...`: rebinds X in that module
                module.scope.define(Definition(target.attr, value, self._fold(scope, value), self.loc(stmt), "local"))
            else:
                self.unfoldable(scope, [ast.Assign(targets=[target], value=value)], "a destructuring assignment")

    @staticmethod
    def _peek(scope: Scope, name: str) -> Any:
        try:
            return scope.lookup(name)
        except KeyError:
            return None

    def import_from(self, scope: Scope, stmt: ast.ImportFrom, path: Path) -> None:
        """`from sibling import a, b as c`: the sibling's values (its functions keep their own module)."""
        other = self.siblings.load(path, self.loc(stmt))
        names = [(a.name, a.asname or a.name) for a in stmt.names]
        if names == [("*", "*")]:
            names = [(n, n) for n in other.defs if not n.startswith("_")]
        for name, as_name in names:
            d = other.defs.get(name)
            value = d.value if d is not None else Unfoldable(f"{path.name} defines no {name!r}", self.loc(stmt))
            scope.define(Definition(as_name, None, value, self.loc(stmt), "imported"))

    def if_statement(self, scope: Scope, stmt: ast.If, kind: str, in_builder: ast.FunctionDef | None) -> None:
        test = stmt.test
        if kind == "module" and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) \
                and test.left.id == "__name__":
            return  # the script's main block: never run
        raises = [s for s in stmt.body if isinstance(s, ast.Raise)]
        if raises:  # `if COND: raise ...` is a guard: the program requires `not COND`
            soft = in_builder is not None and in_builder is self.harness_fn
            self.requirements.append(Requirement(test, True, self.loc(stmt), scope, soft))
        try:
            taken = Folder(scope.lookup, budget=self.siblings.budget.child()).fold(test)
        except FoldError as exc:
            why = f"assigned under `if {ast.unparse(test)[:40]}`, which cannot be decided statically ({exc.reason})"
            self.unfoldable(scope, stmt.body + stmt.orelse, why)
            return
        branch = [s for s in (stmt.body if taken else stmt.orelse) if not isinstance(s, ast.Raise)]
        self.block(scope, branch, kind, in_builder)

    def function(self, scope: Scope, fn: ast.FunctionDef | ast.AsyncFunctionDef,
                 in_builder: ast.FunctionDef | None) -> None:
        value = FunctionValue(fn, scope.lookup, self.source.file)
        value.scope = scope  # type: ignore[attr-defined]  # the translator resolves a helper's names here
        scope.define(Definition(fn.name, None, value, self.loc(fn), "local"))
        if in_builder is not None or not isinstance(fn, ast.FunctionDef):
            return
        if dsl_kind(fn) in ("jit", "jit.host"):
            self.jit_entries.append(fn)
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

    def harness_from(self, scope: Scope, fn: ast.FunctionDef, given: dict[str, Any]) -> None:
        """The harness as `__main__` calls it: its parameters bound to the values passed there."""
        if self.harness_scope is not None and self.harness_scope in self.param_scopes:
            self.param_scopes.remove(self.harness_scope)
        local = Scope(parent=scope)
        self.bind_defaults(scope, local, fn, given)
        self.harness_fn, self.harness_scope = fn, local
        self.block(local, fn.body, "local", fn)
        self.param_scopes.append(local)

    def bind_defaults(self, outer: Scope, local: Scope, fn: ast.FunctionDef,
                      given: dict[str, Any] | None = None) -> None:
        """Keyword defaults are evaluated where the `def` stands (module scope), and become params; `given`:
        the values the `__main__` block passes (for a parameter without a default, or a different value)."""
        args = fn.args
        positional = [*args.posonlyargs, *args.args]
        defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
        pairs = [*zip(positional, defaults, strict=True), *zip(args.kwonlyargs, args.kw_defaults, strict=True)]
        for arg, default in pairs:
            if given is not None and arg.arg in given and not isinstance(given[arg.arg], Unfoldable):
                value = given[arg.arg]
                if default is None or value != self._fold(outer, default):
                    self.define(local, arg.arg, None, arg, "param" if is_number(value) else "local", value)
                    continue
            if default is None:
                local.define(Definition(arg.arg, None, Unfoldable(f"parameter {arg.arg!r} of {fn.name} has no "
                                                                  "default", self.loc(arg)), self.loc(arg), "local"))
                continue
            value = self._fold(outer, default)
            d = self.define(local, arg.arg, None, arg, "param", value)
            d.expr = default


def read_module(source: Source, overrides: Mapping[str, Number], max_bytes: int = 2_000_000) -> ModuleModel:
    """Fold the module (and the sibling modules it imports), find the entry (a `@pl.program` class or the
    `@pl.jit` function `__main__` runs) and the harness, apply `--set`, check `assert`s."""
    known = _param_names(source.tree)
    for name in overrides:
        if name not in known:
            raise ProgramError(f"--set {name}: no such param{did_you_mean(name, known)}; params: "
                               f"{', '.join(known) or 'none'}")
    siblings = Siblings(Path(source.file).resolve().parent, max_bytes)
    reader = _Reader(source, overrides, siblings)
    globals_ = Scope()
    reader.block(globals_, source.tree.body, "module", None)
    run_call = main_run_call(source, globals_, siblings.budget.child())
    site = reader.program
    if site is None:
        site = _jit_site(source, reader, globals_, run_call)
    if run_call is not None:
        _rebind_from_main(globals_, run_call)
        _harness_from_main(reader, globals_, run_call)
    for name in overrides:
        if name not in reader.used_overrides:
            raise ProgramError(f"--set {name}: {name} is not a number or boolean constant here",
                               Location(source.file))
    harness = None
    if reader.harness_fn is not None and reader.harness_scope is not None:
        harness = Harness(reader.harness_fn, reader.harness_scope, _golden(source.tree))
    model = ModuleModel(source, globals_, site, harness, reader.requirements, reader.params,
                        reader.param_scopes, siblings)
    check_requirements(model)
    return model


def _jit_site(source: Source, reader: _Reader, globals_: Scope, run_call: RunCall | None) -> ProgramSite:
    """The `@pl.jit` entry: the function `run_jit(fn=...)` names in `__main__`, else the module's only one."""
    where = Location(source.file)
    entry: ast.FunctionDef | None = None
    if run_call is not None:
        fn_node = run_call.resolve(run_call.argument("fn", 0))
        if isinstance(fn_node, ast.Name):
            d = globals_.definition(fn_node.id)
            if d is not None and isinstance(d.value, FunctionValue) and dsl_kind(d.value.node) in ("jit", "jit.host"):
                entry = d.value.node  # type: ignore[assignment]
    if entry is None:
        if not reader.jit_entries:
            raise ProgramError("no @pl.jit function or @pl.program class found (a helper module: npusim runs the "
                               "entry a file's __main__ block runs)", where)
        plain = [f for f in reader.jit_entries if dsl_kind(f) == "jit"] or reader.jit_entries[:1]  # else a host
        if len(plain) != 1:
            names = ", ".join(f.name for f in plain) or "none"
            raise ProgramError(f"cannot tell which @pl.jit function is the entry (the __main__ block names none "
                               f"npusim can read; @pl.jit functions: {names})", where)
        entry = plain[0]
    if dsl_kind(entry) == "jit.host":
        raise ProgramError(f"@pl.jit.host entry {entry.name!r} is not supported (host-level orchestration of "
                           "several devices; npusim models one chip)", source.loc(entry))
    return ProgramSite(None, globals_, None, entry)


def _rebind_from_main(globals_: Scope, run_call: RunCall) -> None:
    """`X = v` in the `__main__` block before its run call rebinds the module constant X for the run, as in
    Python (an entry reads its globals when it is traced, after `__main__` assigned them); what the module
    derived from X before stays as it was."""
    if not run_call.module_level:
        return
    for name_, expr in run_call.exprs.items():
        d = globals_.defs.get(name_)
        if d is None or d.kind != "module" or not is_number(d.value) or d.overridden:
            continue
        try:
            value = run_call.lookup(name_)
        except KeyError:
            continue
        if is_number(value) and type(value) is type(d.value) and value != d.value:
            d.value, d.expr = value, expr


def _harness_from_main(reader: _Reader, globals_: Scope, run_call: RunCall) -> None:
    """Bind the harness's parameters to what `__main__` passes: `specs=build_tensor_specs(B, S)`."""
    call = run_call.resolve(run_call.argument("specs", 1))
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
        return
    d = globals_.definition(call.func.id)
    if d is None or not isinstance(d.value, FunctionValue) or not isinstance(d.value.node, ast.FunctionDef):
        return
    fn = d.value.node
    folder = Folder(run_call.lookup)
    given: dict[str, Any] = {}
    params = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
    for p, node in zip(params, call.args, strict=False):
        given[p] = _try_fold(folder, node)
    for kw in call.keywords:
        if kw.arg is not None:
            given[kw.arg] = _try_fold(folder, kw.value)
    reader.harness_from(globals_, fn, given)


def _try_fold(folder: Folder, node: ast.expr) -> Any:
    try:
        return folder.fold(node)
    except FoldError as exc:
        return Unfoldable(exc.reason, Location("<main>", getattr(exc.node, "lineno", None)))


class _Found(Exception):
    def __init__(self, call: RunCall) -> None:
        self.call = call


class _Stop(Exception):
    pass


class _MainRunner(Runner):
    """The `__main__` block run as far as its first harness run call, tolerantly: a statement npusim cannot
    evaluate leaves what it assigns unknown, a loop runs its first iteration only (the harness's first run),
    and `raise` (a `SystemExit`) ends the walk."""

    RUN_NAMES = ("run", "run_jit")

    def __init__(self, outer: Any, budget: Budget) -> None:
        super().__init__({}, outer, frozenset({"math"}), budget)
        self.exprs: dict[str, ast.expr] = {}
        self.depth = 0

    def lookup_or_none(self, name: str) -> Any:
        try:
            return self.lookup(name)
        except KeyError:
            return None

    def statement(self, s: ast.stmt) -> None:
        call = s.value if isinstance(s, ast.Expr | ast.Assign | ast.AnnAssign) else None
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) \
                and isinstance(call.func.value, ast.Name) and call.func.attr in ("compile", "lower"):
            fn = self.lookup_or_none(call.func.value.id)
            if isinstance(fn, FunctionValue) and dsl_kind(fn.node) in ("jit", "jit.host"):  # `entry.compile(*args)`
                run = ast.Call(ast.Name("run_jit", ast.Load()), [], [ast.keyword("fn", call.func.value)])
                raise _Found(RunCall(run, self.lookup, dict(self.exprs), self.depth == 0))
        if isinstance(call, ast.Call):
            func = call.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in self.RUN_NAMES:
                raise _Found(RunCall(call, self.lookup, dict(self.exprs), self.depth == 0))
        if isinstance(s, ast.Assign | ast.AnnAssign) and s.value is not None:
            for t in (s.targets if isinstance(s, ast.Assign) else [s.target]):
                if isinstance(t, ast.Name):
                    self.exprs[t.id] = s.value
                elif isinstance(t, ast.Tuple) and isinstance(s.value, ast.Tuple) and len(t.elts) == len(s.value.elts):
                    for a, b in zip(t.elts, s.value.elts, strict=True):
                        if isinstance(a, ast.Name):
                            self.exprs[a.id] = b
        if isinstance(s, ast.Raise):
            raise _Stop
        if isinstance(s, ast.Expr) and isinstance(call, ast.Call) and isinstance(call.func, ast.Name) \
                and not call.args and not call.keywords:  # `main()` as a statement; `x = f()` is an assignment
            fn = self.lookup_or_none(call.func.id)
            if isinstance(fn, FunctionValue) and fn.lookup is not None and dsl_kind(fn.node) is None \
                    and self.depth < 4:  # `main()`: the run call is in the script's main function
                inner = _MainRunner(fn.lookup, self.budget)
                inner.depth = self.depth + 1
                with contextlib.suppress(_Return):
                    inner.block(fn.node.body)
                return
        if isinstance(s, ast.For):
            try:
                items = self.folder._iterate(self.folder._eval(s.iter), s.iter)
            except FoldError:
                return
            if items:
                try:
                    bind(s.target, items[0], self.local, s)
                except FoldError:
                    return
                self.block(s.body)
            return
        if isinstance(s, ast.If):
            try:
                taken = self.folder._eval(s.test)
            except FoldError:
                return
            self.block(s.body if taken else s.orelse)
            return
        if isinstance(s, ast.With | ast.Try):
            self.block(s.body)
            return
        try:
            super().statement(s)
        except FoldError as exc:
            if isinstance(s, ast.Assign | ast.AnnAssign):
                unknown = Unfoldable(exc.reason, Location("<main>", s.lineno))
                for t in (s.targets if isinstance(s, ast.Assign) else [s.target]):
                    if isinstance(t, ast.Attribute):
                        try:
                            base = self.folder._eval(t.value)
                        except FoldError:
                            continue
                        if isinstance(base, Namespace):
                            base.values[t.attr] = unknown
                        continue
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            self.local[n.id] = unknown


def main_run_call(source: Source, globals_: Scope, budget: Budget) -> RunCall | None:
    """The first harness run call the `__main__` block makes with no command line, or None."""
    for stmt in source.tree.body:
        if isinstance(stmt, ast.If) and isinstance(stmt.test, ast.Compare) and isinstance(stmt.test.left, ast.Name) \
                and stmt.test.left.id == "__name__":
            runner = _MainRunner(globals_.lookup, budget)
            try:
                runner.block(stmt.body)
            except _Found as found:
                return found.call
            except (_Stop, FoldError):
                return None
            return None
    return None


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
            names += [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
    return list(dict.fromkeys(names))


def _golden(tree: ast.Module) -> str | None:
    """The golden a `run(..., golden=NAME)` (`golden_fn=`) call passes, or a module function named golden*;
    None when the harness runs with `golden=None` (no check wanted); "" when the file names none."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg in ("golden", "golden_fn"):
                    return kw.value.id if isinstance(kw.value, ast.Name) else None
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name.startswith("golden"):
            return stmt.name
    return ""


def check_requirements(model: ModuleModel) -> None:
    """Every `assert` (and raise guard) of the module and builder, checked with the params of this run."""
    check_requirements_of(model.requirements)


def check_requirements_of(requirements: list[Requirement]) -> None:
    for req in requirements:
        try:
            value = Folder(req.scope.lookup).fold(req.test)
        except FoldError as exc:
            if req.soft:
                continue
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
