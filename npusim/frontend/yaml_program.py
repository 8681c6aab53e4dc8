"""Program loading: YAML -> a validated `Program` whose instructions know their file, line and column.

Top-level keys are validated with pydantic (unknown keys are errors, with a suggestion); params are
resolved from defaults, a preset and `--set` overrides; `let` constants and `require` checks are evaluated
with the safe expression compiler; the body is parsed line by line into an instruction tree.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from npusim.dtypes import MAX_DIMS, NUMPY_DTYPES
from npusim.errors import Location, ProgramError, did_you_mean, shown
from npusim.ops import OPS, REQUIRED
from npusim.vocabulary import SPLIT_MODES

from .expressions import FUNCTIONS, ExprCompiler, ExprLimits, number_problem, parse_python
from .params import resolve_params
from .program import (
    ExternCall,
    ForLoop,
    IfBlock,
    Instr,
    KernelBlock,
    ManualBlock,
    OpCall,
    Program,
    ScalarAssign,
    ScopeBlock,
    TaskArray,
    TaskIdsAssign,
    Tensor,
)
from .yaml_source import YamlDoc, YamlLimits, load_yaml, pydantic_message

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_SCOPE_RE = re.compile(rf"^scope\s+({_IDENT})$")
_INCORE_RE = re.compile(rf"^incore(?:\s+({_IDENT}))?\s*(\(.*\))?$", re.S)
_LOOP_RE = re.compile(rf"^(for|parallel)\s+({_IDENT})\s+in\s+((range|pipeline)\s*\(.*\))$", re.S)
_IF_RE = re.compile(r"^if\s+(.+)$", re.S)
_CONTROL_FORMS = ("scope NAME, incore [NAME][(blocks=N, block=V, split=MODE, tid=T, deps=[...])], manual, "
                  "for V in range(...), for V in pipeline(..., stage=F), parallel V in range(...), if EXPR, else")
_KERNEL_OPTIONS = ("blocks", "block", "split", "tid", "deps")
MAX_STAGES = 16  # buffer slots a pipelined loop may ask for
_RESERVED = (set(OPS) | set(FUNCTIONS) | {"range", "pipeline", "True", "False", "task_ids", "task_array", "extern"}
             | set(NUMPY_DTYPES))
# A program's name and its presets' names name its default report directory (reports/NAME-PRESET-...; other
# characters are made '_' there): printable, at most 100 characters, no path separator, not starting with '.'
# or '-', so never '.', '..', '/abs' or '../x', a NUL or a lone surrogate
_PATH_NAME_RULE = "printable, at most 100 characters, no '/' or '\\', not starting with '.' or '-'"


def _usable_name(name: str) -> bool:
    return (0 < len(name) <= 100 and name.isprintable() and not {"/", "\\"} & set(name)
            and not name.startswith((".", "-")))


# --- the file schema ----------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TensorDecl(_Strict):
    shape: Annotated[list[int | str], Field(min_length=1, max_length=MAX_DIMS)]
    dtype: Literal["bf16", "fp16", "fp32", "int32", "int8", "uint8", "int64", "fp8e4m3fn", "fp8e5m2"]
    role: Literal["input", "output", "inout", "scratch"]
    init: str | None = None


class ProgramFile(_Strict):
    name: str
    doc: str = ""
    params: dict[str, int | float] = {}
    presets: dict[str, dict[str, int | float]] = {}
    let: dict[str, int | float | str] = {}
    require: list[str] = []
    tensors: dict[str, TensorDecl]
    reference: str | None = None
    body: list[Any]

    @field_validator("params", "let", "tensors")
    @classmethod
    def _identifiers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not re.fullmatch(_IDENT, key) or key in _RESERVED:
                raise ValueError(f"{shown(key)} is not a usable name (identifiers only; not an op, dtype or builtin)")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _usable_name(value):
            raise ValueError(f"cannot name a report directory ({_PATH_NAME_RULE})")
        return value


# --- loading ------------------------------------------------------------------------------------------


def _pydantic_error(doc: YamlDoc, exc: ValidationError) -> ProgramError:
    message, where = pydantic_message(doc, exc, {(): ProgramFile, ("tensors", "*"): TensorDecl})
    return ProgramError(message, where)


def load_program(
    path: str | Path,
    preset: str | None = None,
    overrides: dict[str, int | float] | None = None,
    yaml_limits: YamlLimits | None = None,
    expr_limits: ExprLimits | None = None,
) -> Program:
    """Read, validate and resolve a YAML program: params (with the preset and `--set` overrides), lets and
    requirements, tensors, and the body."""
    expr_limits = expr_limits or ExprLimits()
    doc = load_yaml(path, yaml_limits or YamlLimits(), what="program")
    if not isinstance(doc.data, dict):
        raise ProgramError("a program is a YAML mapping with keys name, tensors, body, ...", doc.where(()))
    try:
        pf = ProgramFile.model_validate(doc.data)
    except ValidationError as exc:
        raise _pydantic_error(doc, exc) from None
    _check_names_and_numbers(pf, doc)
    params = resolve_params(pf.params, pf.presets, preset, overrides or {},
                            lambda key: doc.where(("presets", preset, key)))
    consts: dict[str, int | float] = dict(params)
    compiler = ExprCompiler(consts, limits=expr_limits)
    _evaluate_lets(pf, doc, compiler, consts)
    _check_requirements(pf, doc, compiler, consts)
    tensors = _tensors(pf, doc, compiler, consts)
    body = BodyParser(doc, expr_limits, compiler).parse_block(pf.body, ("body",))
    return Program(
        file=doc.file,
        name=pf.name,
        doc=pf.doc,
        preset=preset,
        params=params,
        consts=consts,
        tensors=tensors,
        reference=pf.reference,
        reference_loc=doc.where(("reference",)) if pf.reference is not None else None,
        body=body,
        limits=expr_limits,
        presets=pf.presets,
    )


def _check_names_and_numbers(pf: ProgramFile, doc: YamlDoc) -> None:
    """Preset names name report directories; params, preset values and numeric lets are 64-bit integers or
    finite floats (`.nan` and `.inf` are refused where they are written, not after the run)."""
    for name, values in pf.presets.items():
        if not _usable_name(name):
            raise ProgramError(f"preset {shown(name)} cannot name a report directory ({_PATH_NAME_RULE})",
                               doc.where_key(("presets", name)))
        for key, value in values.items():
            if (problem := number_problem(value)) is not None:
                raise ProgramError(f"preset {name}: {key}: {problem}", doc.where(("presets", name, key)))
    for section, values in (("params", pf.params), ("let", pf.let)):
        for key, value in values.items():
            if not isinstance(value, str) and (problem := number_problem(value)) is not None:
                raise ProgramError(f"{section} {key}: {problem}", doc.where((section, key)))


def _evaluate_lets(pf: ProgramFile, doc: YamlDoc, compiler: ExprCompiler, consts: dict[str, int | float]) -> None:
    """Each `let` folded to a constant, in order, into `consts`."""
    for name, source in pf.let.items():
        if name in consts:
            raise ProgramError(f"let {name!r} shadows a param", doc.where_key(("let", name)))
        try:
            consts[name] = compiler.compile_text(source, doc.where(("let", name))).const
        except ProgramError as exc:
            raise ProgramError(f"let {name}: {exc.message}", exc.location) from None


def _check_requirements(pf: ProgramFile, doc: YamlDoc, compiler: ExprCompiler, consts: dict[str, int | float]
                        ) -> None:
    for i, source in enumerate(pf.require):
        where = doc.where(("require", i))
        if not compiler.compile_text(source, where).const:
            names = sorted({n.id for n in ast.walk(ast.parse(source, mode="eval")) if isinstance(n, ast.Name)})
            values = ", ".join(f"{n}={shown(consts[n])}" for n in names if n in consts)
            raise ProgramError(f"requirement failed: {source} ({values})", where)


def _tensors(pf: ProgramFile, doc: YamlDoc, compiler: ExprCompiler, consts: dict[str, int | float]
             ) -> dict[str, Tensor]:
    """The GM tensors with their shapes evaluated; inputs need an init rule, outputs and scratch none."""
    tensors: dict[str, Tensor] = {}
    for name, decl in pf.tensors.items():
        where = doc.where(("tensors", name))
        shape = []
        for i, dim in enumerate(decl.shape):
            value = compiler.compile_text(dim, doc.where(("tensors", name, "shape", i))).const
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ProgramError(
                    f"tensor {name}: dimension {i} is {shown(value)}; dimensions must be positive integers",
                    doc.where(("tensors", name, "shape", i)),
                )
            shape.append(value)
        if decl.role in ("input", "inout") and decl.init is None:
            raise ProgramError(f"tensor {name}: role {decl.role} needs an init rule", where)
        if decl.role in ("output", "scratch") and decl.init is not None:
            raise ProgramError(f"tensor {name}: role {decl.role} takes no init (only inputs and inouts do)", where)
        tensors[name] = Tensor(name, tuple(shape), decl.dtype, decl.role, decl.init, where)
    for name in tensors:
        if name in consts:
            raise ProgramError(f"tensor {name!r} has the same name as a param or let", doc.where(("tensors", name)))
    return tensors


# --- the body -----------------------------------------------------------------------------------------


class BodyParser:
    """Parses body items (strings and one-key mappings) into instructions. `consts` folds the constant
    arguments the parser itself needs (a pipeline's stage count)."""

    def __init__(self, doc: YamlDoc, limits: ExprLimits, consts: ExprCompiler) -> None:
        self.doc = doc
        self.limits = limits
        self.consts = consts

    def parse_block(self, items: Any, path: tuple[Any, ...]) -> list[Instr]:
        if not isinstance(items, list):
            raise ProgramError("a block must be a list of instructions", self.doc.where(path))
        out: list[Instr] = []
        for i, item in enumerate(items):
            ipath = (*path, i)
            loc = self.doc.where(ipath)
            if isinstance(item, str):
                out.append(self.parse_line(item, loc))
            elif isinstance(item, dict) and len(item) == 1:
                (head, sub), = item.items()
                if not isinstance(head, str):
                    raise ProgramError(f"expected a control line, got {head!r}", loc)
                sub_path = (*ipath, head)
                if head.strip() == "else":
                    if not out or not isinstance(out[-1], IfBlock) or out[-1].orelse:
                        raise ProgramError("'else' must follow an 'if' block", loc)
                    out[-1].orelse = self.parse_block(sub, sub_path)
                    continue
                out.append(self.parse_control(head.strip(), sub, sub_path, loc))
            elif isinstance(item, dict):
                raise ProgramError(
                    f"a control line must be a single key (one of: {_CONTROL_FORMS}); got {len(item)} keys", loc
                )
            else:
                raise ProgramError(f"expected an instruction string or a control block, got {item!r:.60}", loc)
        return out

    def parse_control(self, head: str, sub: Any, path: tuple[Any, ...], loc: Location) -> Instr:
        if sub is None:
            raise ProgramError(f"'{head}:' has an empty body", loc)
        if m := _SCOPE_RE.match(head):
            return ScopeBlock(loc, head, m.group(1), self.parse_block(sub, path))
        if m := _INCORE_RE.match(head):
            return self.parse_kernel(head, m.group(1), m.group(2), sub, path, loc)
        if head == "manual":
            return ManualBlock(loc, head, self.parse_block(sub, path))
        if m := _LOOP_RE.match(head):
            call = parse_python(m.group(3), loc, "eval", self.limits, "loop range").body  # type: ignore[attr-defined]
            pipelined = m.group(4) == "pipeline"
            stages = self._stages(call, loc, m.group(1)) if pipelined else 1
            if not isinstance(call, ast.Call) or (call.keywords and not pipelined) or not 1 <= len(call.args) <= 3:
                form = "pipeline" if pipelined else "range"
                extra = ", stage=F" if pipelined else ""
                raise ProgramError(f"a loop needs {form}(stop{extra}), {form}(start, stop{extra}) or "
                                   f"{form}(start, stop, step{extra})", loc)
            return ForLoop(loc, head, m.group(2), call.args, m.group(1) == "parallel", self.parse_block(sub, path),
                           stages)
        if m := _IF_RE.match(head):
            cond = parse_python(m.group(1), loc, "eval", self.limits, "condition").body  # type: ignore[attr-defined]
            return IfBlock(loc, head, cond, self.parse_block(sub, path))
        word = head.split()[0] if head.split() else head
        hint = did_you_mean(word, ["scope", "incore", "manual", "for", "parallel", "if", "else"])
        raise ProgramError(f"unknown control line {head!r}{hint}; expected one of: {_CONTROL_FORMS}", loc)

    def parse_kernel(self, head: str, name: str | None, options: str | None, sub: Any, path: tuple[Any, ...],
                     loc: Location) -> KernelBlock:
        """`incore NAME(blocks=N, block=V, split="up_down", tid=T, deps=[a, b])`: every option optional."""
        kernel = KernelBlock(loc, head, name, [])
        if options is not None:
            call = parse_python(f"incore{options}", loc, "eval", self.limits, "kernel options").body  # type: ignore
            if not isinstance(call, ast.Call) or call.args:
                raise ProgramError(f"kernel options are keywords: {', '.join(_KERNEL_OPTIONS)}", loc)
            for kw in call.keywords:
                if kw.arg not in _KERNEL_OPTIONS:
                    raise ProgramError(f"incore has no option {kw.arg!r}{did_you_mean(kw.arg or '', _KERNEL_OPTIONS)};"
                                       f" options: {', '.join(_KERNEL_OPTIONS)}", loc)
                value = kw.value
                if kw.arg == "blocks":
                    kernel.blocks = value
                elif kw.arg in ("block", "tid"):
                    if not isinstance(value, ast.Name) or value.id in _RESERVED:
                        raise ProgramError(f"incore {kw.arg}= takes a name", loc)
                    setattr(kernel, "block_var" if kw.arg == "block" else "tid", value.id)
                elif kw.arg == "split":
                    if not (isinstance(value, ast.Constant) and value.value in SPLIT_MODES):
                        raise ProgramError(f"incore split= is one of {', '.join(map(repr, SPLIT_MODES))}", loc)
                    kernel.split = value.value
                else:
                    if not (isinstance(value, ast.List) and all(isinstance(e, ast.Name) for e in value.elts)):
                        raise ProgramError("incore deps= takes a list of task-id names, like [t1, t2]", loc)
                    kernel.deps = [e.id for e in value.elts]  # type: ignore[attr-defined]
            if kernel.block_var is not None and kernel.blocks is None:
                raise ProgramError("incore block= names the block index of an SPMD kernel: give blocks= too", loc)
        kernel.body = self.parse_block(sub, path)
        return kernel

    def _stages(self, call: ast.expr, loc: Location, kind: str) -> int:
        """`stage=F` of `pipeline(...)`: a constant integer from 1 to MAX_STAGES (PyPTO `pl.pipeline(..., stage=F)`:
        F buffer slots for the tiles the loop body produces)."""
        if kind == "parallel":
            raise ProgramError("pipeline(...) buffers a kernel's sequential loop: write 'for V in pipeline(...)'", loc)
        keywords = call.keywords if isinstance(call, ast.Call) else []
        names = [k.arg for k in keywords]
        if names != ["stage"]:
            raise ProgramError(f"pipeline(...) takes one keyword, stage=F (the buffer slots of the loop's tiles); "
                               f"got {', '.join(str(n) for n in names) or 'none'}", loc)
        node = keywords[0].value
        value = self.consts.compile_node(node, ast.unparse(node), loc).const
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_STAGES:
            raise ProgramError(f"pipeline: stage must be a constant integer from 1 to {MAX_STAGES}, got "
                               f"{ast.unparse(node)} = {value!r}", loc)
        return value

    def parse_line(self, text: str, loc: Location) -> Instr:
        text = text.strip()
        tree = parse_python(text, loc, "exec", self.limits, "instruction")
        stmts = tree.body  # type: ignore[attr-defined]
        if len(stmts) != 1:
            raise ProgramError("one instruction per line", loc)
        stmt = stmts[0]
        target: str | None = None
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Subscript):
            return self.parse_task_element(text, loc, stmt.targets[0], stmt.value)
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                raise ProgramError("the left-hand side must be a single name", loc)
            target = stmt.targets[0].id
            if target in _RESERVED:
                raise ProgramError(f"{target!r} is reserved (an op, dtype or builtin name)", loc)
            value = stmt.value
        elif isinstance(stmt, ast.Expr):
            value = stmt.value
        else:
            raise ProgramError(
                f"expected 'name = op(...)' or 'name = expression', got a {type(stmt).__name__} statement", loc
            )
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "task_ids":
            if target is None:
                raise ProgramError("task_ids assigns a task id: 't = task_ids(a, b)'", loc)
            sources, indices = _task_refs(value, loc)
            return TaskIdsAssign(loc, text, target, sources, source_indices=indices)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "extern":
            if target is not None:
                raise ProgramError("extern(...) is a statement: its writes= name what it writes", loc)
            return _extern(text, loc, value)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "task_array":
            if target is None or value.keywords or len(value.args) != 1:
                raise ProgramError("task_array takes the element count: 'ts = task_array(n)'", loc)
            return TaskArray(loc, text, target, value.args[0])
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in OPS \
                and value.func.id != "read":
            return self.parse_op(text, loc, target, value)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and target is not None \
                and value.func.id not in (*FUNCTIONS, "read"):
            name = value.func.id
            raise ProgramError(f"unknown op {name!r}{did_you_mean(name, OPS)}", loc)
        if target is None:
            raise ProgramError("an expression line must assign its value: 'name = expression'", loc)
        return ScalarAssign(loc, text, target, value)

    def parse_task_element(self, text: str, loc: Location, target: ast.Subscript, value: ast.expr) -> TaskIdsAssign:
        """`ts[i] = task_ids(a, b[j])`: one element of a task-id array set."""
        if not (isinstance(target.value, ast.Name) and isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id == "task_ids") or isinstance(target.slice, ast.Slice | ast.Tuple):
            raise ProgramError("only an element of a task-id array is assigned by index: 'ts[i] = task_ids(a)'", loc)
        sources, indices = _task_refs(value, loc)
        return TaskIdsAssign(loc, text, target.value.id, sources, target.slice, indices)

    def parse_op(self, text: str, loc: Location, target: str | None, call: ast.Call) -> OpCall:
        spec = OPS[call.func.id]  # type: ignore[attr-defined]
        params = spec.params
        if len(call.args) > len(params):
            raise ProgramError(f"{spec.name} takes at most {len(params)} arguments, got {len(call.args)}", loc)
        args: dict[str, Any] = {}
        for param, node in zip(params, call.args, strict=False):
            args[param.name] = node
        names = [p.name for p in params]
        for kw in call.keywords:
            if kw.arg is None:
                raise ProgramError("'**' arguments are not allowed", loc)
            if kw.arg not in names:
                raise ProgramError(
                    f"{spec.name} has no argument {kw.arg!r}{did_you_mean(kw.arg, names)}; "
                    f"arguments: {', '.join(names)}",
                    loc,
                )
            if kw.arg in args:
                raise ProgramError(f"{spec.name}: argument {kw.arg!r} given twice", loc)
            args[kw.arg] = kw.value
        for param in params:
            if param.name not in args:
                if param.default is REQUIRED:
                    raise ProgramError(f"{spec.name}: missing argument {param.name!r}", loc)
                args[param.name] = param.default
        for node in [*call.args, *(kw.value for kw in call.keywords)]:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in OPS:
                    raise ProgramError(
                        f"nested op call {sub.func.id}(...) inside {spec.name}: one op per line, "
                        "assign the inner result to a name first",
                        Location(loc.file, loc.line, (loc.col or 1) + sub.col_offset),
                    )
        return OpCall(loc, text, target, spec, args)


def _task_refs(call: ast.Call, loc: Location) -> tuple[list[str], list[ast.expr | None]]:
    """The arguments of `task_ids(a, b[j])`: task-id names, or elements of task-id arrays."""
    names: list[str] = []
    indices: list[ast.expr | None] = []
    for a in call.args:
        if isinstance(a, ast.Name):
            names.append(a.id)
            indices.append(None)
        elif isinstance(a, ast.Subscript) and isinstance(a.value, ast.Name) and not isinstance(a.slice, ast.Slice
                                                                                               | ast.Tuple):
            names.append(a.value.id)
            indices.append(a.slice)
        else:
            raise ProgramError("task_ids takes task ids or task-id array elements: 't = task_ids(a, b[i])'", loc)
    if call.keywords:
        raise ProgramError("task_ids takes no keywords", loc)
    return names, indices if any(i is not None for i in indices) else []


def _extern(text: str, loc: Location, call: ast.Call) -> ExternCall:
    """`extern("NAME", core="mix", lanes=2, reads=[a, b], writes=[c])`: a hand-written kernel's call."""
    form = 'extern("NAME", core="aiv"|"aic"|"mix", lanes=1|2, reads=[...], writes=[...])'
    kw = {k.arg: k.value for k in call.keywords}
    if len(call.args) != 1 or not (isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)) \
            or set(kw) - {"core", "lanes", "reads", "writes"}:
        raise ProgramError(f"expected {form}", loc)
    core = kw.get("core", ast.Constant("aiv"))
    lanes = kw.get("lanes", ast.Constant(1))
    if not (isinstance(core, ast.Constant) and core.value in ("aiv", "aic", "mix")) or not (
            isinstance(lanes, ast.Constant) and lanes.value in (1, 2) and (lanes.value == 1 or core.value == "mix")):
        raise ProgramError(f"expected {form} (2 lanes only for core=\"mix\")", loc)
    names: dict[str, list[str]] = {}
    for key in ("reads", "writes"):
        node = kw.get(key, ast.List([], ast.Load()))
        if not (isinstance(node, ast.List) and all(isinstance(e, ast.Name) for e in node.elts)):
            raise ProgramError(f"extern {key}= takes a list of tensor names", loc)
        names[key] = [e.id for e in node.elts]  # type: ignore[attr-defined]
    return ExternCall(loc, text, call.args[0].value, core.value, lanes.value, names["reads"], names["writes"])
