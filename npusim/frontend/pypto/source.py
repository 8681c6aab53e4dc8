"""Reading a PyPTO file without running it: the text is parsed with `ast` (size- and depth-guarded), its
comments are tokenised for scope markers, and module-level Python is folded by npusim's bounded evaluator
(`pyeval`). Nothing of the user's file is imported, `eval`ed or executed; a value that needs anything the
evaluator refuses (a torch call, file I/O) is `Unfoldable`, an error only if something uses it. Closure
values live in `Scope`s of `Definition`s, which keep each assignment's expression for `npusim import`."""

from __future__ import annotations

import ast
import io
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npusim.errors import Location, ProgramError

from .pyeval import MAX_INT_BITS, Folder, FoldError, Unfoldable

__all__ = [
    "MAX_INT_BITS",
    "Definition",
    "FoldError",
    "Folder",
    "LookupScope",
    "Scope",
    "Source",
    "Unfoldable",
    "assigned_names",
    "is_number",
    "read_source",
]

MAX_DEPTH = 200  # syntax nesting the importer walks (ast.parse itself is guarded separately)

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


class LookupScope(Scope):
    """The names a function defined inside another function sees (a helper a factory built): a lookup
    function, no definitions of its own."""

    def __init__(self, lookup: Any) -> None:
        super().__init__()
        self._lookup = lookup

    def lookup(self, name: str) -> Any:
        return self._lookup(name)

    def definition(self, name: str) -> Definition | None:
        return None


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
