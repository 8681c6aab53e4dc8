"""PyPTO programs (`import pypto.language as pl`: the seed-era `@pl.program` form and the current `@pl.jit`
form) read without running them: `source` parses the file and `pyeval` folds its pure Python, `module` finds
the entry, the sibling modules it imports, the harness and the params, `reach` refuses what npusim cannot
model, `harness` reads the TensorSpecs (a `@pl.jit` entry is specialised on them), `translate` turns the DSL
into the importer's IR (op names through `optable`), `autoincore` and `outline` draw the kernels as PyPTO's
passes do, `emit` writes npusim's program model and `to_yaml` an equivalent YAML program."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npusim.errors import Location, ProgramError, did_you_mean

from ..expressions import ExprLimits
from ..inputs import parse_init
from ..params import Number
from ..program import Program, Tensor
from .autoincore import Expander, expand_auto
from .emit import Emitter
from .harness import SpecReader, match_golden
from .module import ModuleModel, read_module
from .outline import outline
from .reach import check_modelled
from .source import Definition, is_number, read_source
from .translate import Translated, translate

DEFAULT_MAX_BYTES = 2_000_000


@dataclass
class Imported:
    """A PyPTO program read into npusim's model, with what the YAML writer needs to keep it editable: the
    closure definitions as written, the requirements, and the structural assumptions of the import."""

    program: Program
    model: ModuleModel
    translated: Translated
    definitions: list[Definition]
    assumptions: list[tuple[str, str]] = field(default_factory=list)


def import_pypto(path: str | Path, overrides: dict[str, Number] | None = None, inits: dict[str, str] | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES, expr_limits: ExprLimits | None = None) -> Imported:
    """Read a PyPTO file into a `Program` (never importing or running it)."""
    expr_limits = expr_limits or ExprLimits()
    inits = dict(inits or {})
    source = read_source(path, max_bytes)
    model = read_module(source, overrides or {}, max_bytes)
    check_modelled(model)
    definitions = _definitions(model)
    consts = _consts(model)
    jit_specs: dict[str, Any] = {}
    specs: list[Any] = []
    if model.program.jit is not None and model.harness is not None:  # the entry is specialised on them
        reader = SpecReader(model, model.harness, consts)
        specs = reader.specs()
        jit_specs = {s.name: s for s in [*specs, *reader.scalar_specs()]}
    tr = translate(model, consts, jit_specs)
    expander = Expander(consts, tr.types, tr.fresh)
    body = expand_auto(tr.body, expander)
    written = outline(body, [p.name for p in tr.params], tr.types, tr.pynames, tr.fresh)
    instrs = Emitter(tr.func).block(body)

    if model.program.jit is None:
        specs = SpecReader(model, model.harness, consts).specs() if model.harness is not None else []
    by_name = {s.name: s for s in specs}
    param_names = {p.name for p in tr.params}
    for s in specs:
        if s.name not in param_names:
            raise ProgramError(f"TensorSpec {s.name!r} names no parameter of {tr.func}"
                               f"{did_you_mean(s.name, param_names)}", s.loc)
    for name_ in inits:
        if name_ not in param_names:
            raise ProgramError(f"--init {name_}: no such tensor{did_you_mean(name_, param_names)}; tensors: "
                               f"{', '.join(sorted(param_names))}")
    tensors: dict[str, Tensor] = {}
    init_sources: dict[str, str] = {}
    for p in tr.params:
        role = {"out": "output", "inout": "inout"}.get(p.direction) or ("inout" if p.name in written else "input")
        shape = tuple(int(d) for d in p.type.shape)
        spec = by_name.get(p.name)
        if spec is not None:
            if spec.dtype != p.type.dtype:
                raise ProgramError(f"TensorSpec {p.name!r} is {spec.dtype} but the program's parameter is "
                                   f"{p.type.dtype}", spec.loc)
            if tuple(spec.shape) != shape:
                raise ProgramError(f"TensorSpec {p.name!r} has shape {list(spec.shape)} but the program's "
                                   f"parameter has {list(shape)}", spec.loc)
        init = None
        if role in ("input", "inout"):
            if p.name in inits:
                init, init_sources[p.name] = inits[p.name], "--init"
            elif spec is not None and spec.init is not None:
                init, init_sources[p.name] = spec.init, f"TensorSpec at line {spec.loc.line}"
            elif spec is not None:
                raise ProgramError(f"tensor {p.name}: its init_value cannot be read statically ({spec.why}); "
                                   f"give --init {p.name}=RULE (e.g. 'uniform(-0.5, 0.5)')", spec.loc)
            else:
                where = "no build_tensor_specs harness" if model.harness is None else "no TensorSpec"
                raise ProgramError(f"tensor {p.name}: {where} gives its values; give --init {p.name}=RULE "
                                   "(e.g. 'uniform(-0.5, 0.5)')", p.loc)
        elif p.name in inits:
            raise ProgramError(f"--init {p.name}: {p.name} is an output (outputs start at zero)")
        tensors[p.name] = Tensor(p.name, shape, p.type.dtype, role, init, spec.loc if spec and init_sources.get(
            p.name, "").startswith("TensorSpec") else p.loc)

    reference = None
    if model.harness is not None and model.harness.golden is not None:  # not run(..., golden=None)
        match = match_golden({n: (t.dtype, t.role, t.shape) for n, t in tensors.items()}, consts)
        if match is not None and all(consts.get(k, v) == v for k, v in match[1].items()):
            reference = match[0]
            for k, v in match[1].items():
                consts.setdefault(k, v)
    params = {name_: d.value for name_, d in model.params.items()}
    program = Program(file=source.file, name=tr.func, doc=_doc(model), preset=None, params=params, consts=consts,
                      tensors=tensors, reference=reference, body=instrs, limits=expr_limits)
    for t in tensors.values():
        if t.init is not None:
            parse_init(t, program)  # a bad --init or harness rule fails here, located
    return Imported(program, model, tr, definitions, expander.assumptions)


def load_pypto(path: str | Path, preset: str | None = None, overrides: dict[str, Number] | None = None,
               max_bytes: int = DEFAULT_MAX_BYTES, expr_limits: ExprLimits | None = None,
               inits: dict[str, str] | None = None) -> Program:
    if preset is not None:
        raise ProgramError(f"--preset {preset}: a PyPTO program has no presets; set its params with --set NAME=V",
                           Location(str(path)))
    return import_pypto(path, overrides, inits, max_bytes, expr_limits).program


def _definitions(model: ModuleModel) -> list[Definition]:
    """Every closure definition the program sees, in source order: module, then builder (and harness)."""
    seen: list[Definition] = list(model.globals.order)
    for scope in model.param_scopes:
        seen.extend(scope.order)
    return seen


def _consts(model: ModuleModel) -> dict[str, Any]:
    """The numbers the program's expressions may name: module constants, the harness's keyword params, then
    the builder's params and locals (which shadow module names, as Python's closures do)."""
    consts: dict[str, Any] = {}
    for name_, d in model.globals.defs.items():
        if is_number(d.value):
            consts[name_] = d.value
    if model.harness is not None:
        for name_, d in model.harness.scope.defs.items():
            if d.kind == "param" and is_number(d.value) and name_ not in consts:
                consts[name_] = d.value
    if model.program.jit is None:
        for name_, d in model.program.closure.defs.items():
            if is_number(d.value):
                consts[name_] = d.value
    return consts


def _doc(model: ModuleModel) -> str:
    doc = ast.get_docstring(model.source.tree) or ""
    first = doc.strip().split("\n")[0] if doc else ""
    return f"Imported from {Path(model.source.file).name} (PyPTO {model.program.title}). {first}".strip()
