"""An imported PyPTO program written as an equivalent, editable YAML program (`npusim import`): the closure
constants the program uses become params (those written as numbers) and lets (those derived from others,
kept as expressions so that editing a param moves everything derived from it), `assert`s become
`require`s, the tensors keep their shapes as expressions, and the body is the imported instruction list,
each line ending with its `.py` line. A value npusim's expression language cannot derive is written as its
number; a structural decision the import took for these params (how a chunked loop splits) becomes a
`require`, so that an edit that would change it fails loudly instead of running a different program."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import yaml

from npusim.errors import Location, ProgramError
from npusim.frontend.expressions import ExprCompiler

from ..program import (
    ExternCall,
    ForLoop,
    IfBlock,
    Instr,
    KernelBlock,
    ManualBlock,
    OpCall,
    ScalarAssign,
    ScopeBlock,
    TaskArray,
    TaskIdsAssign,
)
from .exprs import literal, to_npusim
from .source import Definition, Scope, Unfoldable
from .translate import RESERVED

_NOWHERE = Location("<yaml writer>")


def _scalar(text: str) -> str:
    """A YAML scalar for `text`: plain where YAML reads it back as this very string, else double-quoted."""
    try:
        plain_ok = ("\n" not in text and text == text.strip() and not text.endswith(":")
                    and yaml.safe_load(f"k: {text}") == {"k": text})
    except yaml.YAMLError:
        plain_ok = False
    return text if plain_ok else json.dumps(text)


def _number(value: Any) -> str:
    """A number as YAML reads it back: booleans as 1/0, floats with a dot before any exponent (YAML 1.1
    reads `1e-06` as a string)."""
    if isinstance(value, bool):
        return str(int(value))
    text = repr(value)
    if isinstance(value, float) and "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return text


class YamlWriter:
    def __init__(self, imported: Any) -> None:
        self.imp = imported
        self.program = imported.program
        self.consts: dict[str, Any] = self.program.consts
        self.lines: list[str] = []
        self.needed: set[str] = set()

    # -- which definition a const name has --
    def winners(self) -> dict[str, Definition]:
        model = self.imp.model
        out: dict[str, Definition] = {}
        for d in model.globals.order:
            out[d.name] = d
        if model.harness is not None:
            for name, d in model.harness.scope.defs.items():
                if d.kind == "param" and name not in out:
                    out[name] = d
        for name, d in model.program.closure.defs.items():
            out[name] = d
        return {n: d for n, d in out.items() if n in self.consts}

    def expression(self, node: ast.expr, value: Any) -> str | None:
        """`node` (Python) as npusim text over the consts, if it evaluates to `value` exactly."""
        expr = to_npusim(node, lambda n: ast.Name(n.id, ast.Load()) if n.id in self.consts else None)
        if expr is None:
            return None
        text = ast.unparse(expr)
        try:
            got = ExprCompiler(self.consts).compile_text(text, _NOWHERE).const
        except ProgramError:
            return None
        same_kind = isinstance(got, bool) == isinstance(value, bool) and isinstance(got, float) == isinstance(value,
                                                                                                        float)
        if got is None or not same_kind or (got != value and not (got != got and value != value)):
            return None
        return text

    def names_in(self, text: str) -> set[str]:
        return {n.id for n in ast.walk(ast.parse(text, mode="eval")) if isinstance(n, ast.Name)} & set(self.consts)

    # -- sections --
    def write(self) -> str:
        p = self.program
        body_lines: list[str] = []
        self.body(p.body, body_lines, 1)
        tensor_lines = self.tensors()
        require_lines = self.requirements()
        params, lets = self.params_and_lets()
        out = [f"# Imported by npusim from {p.file} (PyPTO {self.imp.model.program.title}, function {p.name}).",
               "# Edit freely: params are the file's constants written as numbers, lets the ones derived from them.",
               f"name: {_scalar(p.name)}", f"doc: {_scalar(p.doc)}"]
        if params:
            out += ["", "params:", *params]
        if lets:
            out += ["", "let:", *lets]
        if require_lines:
            out += ["", "require:", *require_lines]
        out += ["", "tensors:", *tensor_lines]
        if p.reference:
            out += ["", f"reference: {p.reference}"]
        out += ["", "body:", *body_lines]
        return "\n".join(out) + "\n"

    def params_and_lets(self) -> tuple[list[str], list[str]]:
        winners = self.winners()
        order = {id(d): i for i, d in enumerate(self.imp.definitions)}
        pending = set(self.needed)
        chosen: dict[str, tuple[str, str, str]] = {}  # name -> (section, text, comment)
        while pending:
            name = pending.pop()
            if name in chosen:
                continue
            d = winners.get(name)
            value = self.consts[name]
            if d is None:  # a constant of the reference check, derived from the tensors
                same = [n for n in winners if n.lower() == name.lower() and n != name and self.consts[n] == value]
                if same:
                    chosen[name] = ("let", same[0], "for the reference check")
                    pending.add(same[0])
                else:
                    chosen[name] = ("let", _number(value), "for the reference check, from the tensor shapes")
                continue
            text = None
            if d.expr is not None and not d.overridden and not isinstance(d.expr, ast.Constant | ast.UnaryOp):
                text = self.expression(d.expr, value)
            if text is not None:
                chosen[name] = ("let", text, "")
                pending |= self.names_in(text) - set(chosen)
            elif d.kind in ("module", "param"):
                note = "" if not isinstance(value, bool) else f"{value} (a boolean: 1 is true)"
                chosen[name] = ("param", _number(value), note)
            else:
                source = ast.unparse(d.expr)[:60] if d.expr is not None else "set by --set"
                chosen[name] = ("let", _number(value), f"folded from {source}")
        ranked = sorted(chosen, key=lambda n: order.get(id(winners[n]), len(order)) if n in winners else len(order))
        params, lets = [], []
        for name in ranked:
            if name in RESERVED:
                raise ProgramError(f"cannot write {name!r} as a YAML param or let: it is an op, dtype or builtin "
                                   "name there", Location(self.program.file))
            section, text, note = chosen[name]
            line = f"  {name}: {text if section == 'param' else _scalar(text)}" + (f"  # {note}" if note else "")
            (params if section == "param" else lets).append(line)
        return params, lets

    def requirements(self) -> list[str]:
        lines = []
        for req in self.imp.model.requirements:
            text = self._scope_expression(req.test, req.scope)
            if text is None:
                lines.append(f"  # held at import, not expressible here: {ast.unparse(req.test)[:80]}")
                continue
            text = f"not ({text})" if req.negate else text
            self.needed |= self.names_in(text)
            lines.append(f"  - {_scalar(text)}  # {req.loc}")
        for text, why in self.imp.assumptions:
            self.needed |= self.names_in(text)
            lines.append(f"  - {_scalar(text)}  # {why}")
        return lines

    def _scope_expression(self, node: ast.expr, scope: Scope) -> str | None:
        def names(n: ast.Name) -> ast.expr | None:
            try:
                value = scope.lookup(n.id)
            except KeyError:
                return None
            if isinstance(value, Unfoldable) or not isinstance(value, bool | int | float):
                return None
            if n.id in self.consts and self.consts[n.id] == value:
                return ast.Name(n.id, ast.Load())
            return literal(value)
        expr = to_npusim(node, names)
        return None if expr is None else ast.unparse(expr)

    def tensors(self) -> list[str]:
        lines = []
        types = {p.name: p.type for p in self.imp.translated.params}
        for t in self.program.tensors.values():
            dims = [getattr(d, "expr", str(d)) for d in types[t.name].shape]
            for d in dims:
                self.needed |= self.names_in(d)
            fields = [f"shape: [{', '.join(dims)}]", f"dtype: {t.dtype}", f"role: {t.role}"]
            if t.init is not None:
                self.needed |= self.names_in(t.init)
                fields.append(f"init: {json.dumps(t.init)}")
            lines.append(f"  {t.name}: {{{', '.join(fields)}}}")
        if self.program.reference:
            self.needed |= {n for n in ("batch", "hidden", "head_dim", "max_seq", "num_kv_heads", "num_heads",
                                        "attn_scale", "SEQ_TILE", "eps") if n in self.consts}
        return lines

    # -- the body --
    def body(self, instrs: list[Instr], out: list[str], depth: int) -> None:
        pad = "  " * depth
        for i in instrs:
            where = f"  # L{i.loc.line}" if i.loc.line else ""
            if i.loc.line and i.loc.file != self.program.file:  # a helper of a sibling module
                where = f"  # {Path(i.loc.file).name}:L{i.loc.line}"
            self._names(i)
            if isinstance(i, OpCall | ScalarAssign | TaskIdsAssign | TaskArray | ExternCall):
                out.append(f"{pad}- {_scalar(i.text)}{where}")
                continue
            head = i.text
            out.append(f"{pad}- {_scalar(head)}:{where}")
            sub: list[Instr] = []
            if isinstance(i, ForLoop | KernelBlock | ScopeBlock | ManualBlock):
                sub = i.body
            elif isinstance(i, IfBlock):
                sub = i.then
            self.body(sub, out, depth + 1)
            if isinstance(i, IfBlock) and i.orelse:
                out.append(f"{pad}- else:")
                self.body(i.orelse, out, depth + 1)

    def _names(self, i: Instr) -> None:
        nodes: list[Any] = []
        if isinstance(i, OpCall):
            nodes = [v for v in i.args.values() if isinstance(v, ast.AST)]
        elif isinstance(i, ScalarAssign):
            nodes = [i.expr]
        elif isinstance(i, ForLoop):
            nodes = list(i.range_args)
        elif isinstance(i, IfBlock):
            nodes = [i.cond]
        elif isinstance(i, KernelBlock) and i.blocks is not None:
            nodes = [i.blocks]
        for node in nodes:
            self.needed |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & set(self.consts)


def to_yaml(imported: Any) -> str:
    return YamlWriter(imported).write()
