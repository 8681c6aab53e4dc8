"""Constructs npusim cannot model, found before anything else of a program is read: collectives across
ranks (`pypto.language.distributed`, `pld.*`), sorting ops and explicit AIV-lane regions (`pl.split_aiv`). The
entry and every helper it calls by name (in this file or a
sibling module) are walked in source order, descending into a helper where it is called, so the first such
construct the program would run is reported as one located error naming it and the chain of calls that
reaches it. Everything else unsupported is reported where translation meets it."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from npusim.errors import ProgramError

from .module import ModuleModel, dsl_kind
from .pyeval import FunctionValue, ModuleAlias
from .source import LookupScope, Scope, Source

DISTRIBUTED = "pypto.language.distributed"
SORT_OPS = ("sort32", "mrgsort")
WHY = {
    "pld": "collectives and remote memory across ranks (pypto.language.distributed); npusim models one chip",
    "sort": "a sorting op; npusim's op table has none",
    "split_aiv": "explicit AIV-lane regions; npusim splits a kernel's vector work only by pl.split",
}


class _Walker:
    def __init__(self, model: ModuleModel) -> None:
        self.model = model
        self.seen: set[int] = set()

    def _value(self, node: ast.AST, scope: Scope) -> object:
        if not isinstance(node, ast.Name):
            return None
        try:
            return scope.lookup(node.id)
        except KeyError:
            return None

    def _path(self, node: ast.AST, scope: Scope) -> tuple[str, str] | None:
        """(module, attribute path) of `alias.a.b` where alias names an imported module."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        value = self._value(node, scope)
        if isinstance(value, ModuleAlias) and parts:
            return value.module, ".".join(reversed(parts))
        return None

    def walk(self, body: list[ast.stmt], scope: Scope, source: Source, chain: list[str]) -> None:
        for stmt in body:
            for node in _in_order(stmt):
                self.visit(node, scope, source, chain)

    def visit(self, node: ast.AST, scope: Scope, source: Source, chain: list[str]) -> None:
        if isinstance(node, ast.Attribute):
            path = self._path(node, scope)
            if path is not None and path[0].startswith(DISTRIBUTED):
                self.fail("pld", f"`{ast.unparse(node)[:40]}`", node, source, chain)
            if path is not None and path[0] in ("pypto.language",):
                last = path[1].split(".")[-1]
                if last in SORT_OPS:
                    self.fail("sort", f"`pl.{path[1]}`", node, source, chain)
                if last == "split_aiv":
                    self.fail("split_aiv", "`pl.split_aiv`", node, source, chain)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            value = self._value(node.func, scope)
            if isinstance(value, FunctionValue):
                kind = dsl_kind(value.node)
                if kind in ("jit.inline", "jit.incore", "jit.opaque", "inline") and id(value.node) not in self.seen:
                    self.seen.add(id(value.node))
                    inner = getattr(value, "scope", None) or (LookupScope(value.lookup) if value.lookup is not None
                                                              else scope)
                    where = f"{value.node.name} ({source.loc(node)})"
                    self.walk(value.node.body, inner, self.model.source_of(value.file or source.file),
                              [*chain, where])

    @staticmethod
    def fail(kind: str, what: str, node: ast.AST, source: Source, chain: list[str]) -> None:
        via = f" (reached through {' -> '.join(chain)})" if len(chain) > 1 else ""
        raise ProgramError(f"{what} is not supported: {WHY[kind]}{via}", source.loc(node))


def _in_order(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under `node`, parents before children, children in source order."""
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _in_order(child)


def check_modelled(model: ModuleModel) -> None:
    """Raise one located error at the first construct npusim cannot model on the entry's path."""
    walker = _Walker(model)
    site = model.program
    if site.jit is not None:
        walker.walk(site.jit.body, site.closure, model.source, [site.jit.name])
    elif site.cls is not None:
        for item in site.cls.body:
            if isinstance(item, ast.FunctionDef):
                walker.walk(item.body, site.closure, model.source, [item.name])
