"""Kernel replay: a kernel is interpreted once per distinct *structure* and its later executions are replayed
from that template, without walking their ops (timing-only runs), or are interpreted for their values and take
their task record from it (runs with numerics).

A kernel's op records, core kind and loop-iteration count depend only on the values its shapes, valid shapes,
scalar operands, loop bounds, conditions and tile windows take (its *outcome*), and on the shapes, dtypes and
aliasing of the GM values it names. A static dataflow pass over the kernel body follows each scalar as an
affine *form*: `sum(coefficient * entry scalar)` plus a part fixed by the outcome. A scalar that reaches GM
offsets only through such forms stays *symbolic*: each GM window of a replayed execution is the template's
window shifted by `sum(coefficient * change)` plus the change of its view's offset. The outcome of an
execution is found by running the kernel's scalar work alone (`_Skeleton`), once per distinct value of the
entry scalars it turns on, so executions whose conditions and bounds come out the same (a loop over blocks
cut short by the context length at different block offsets, say) share one template. A scalar that reaches a
GM offset other than affinely is *structural*: its value is part of the key. The replay shifts the template's
footprint (re-coalescing it only when one tensor's windows shift unequally), checks the shifted windows
against their views as the interpreter would, and leaves the names the kernel assigns as the interpreter
would have left them. Anything the pass cannot follow (a `read` in the kernel, a name bound to GM on one path
and a tile on another, a GM window it cannot shift) is interpreted every time; a replay whose windows would
leave their views is interpreted instead, so the error is the interpreter's own.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from npusim.errors import ProgramError
from npusim.frontend.expressions import INT_MAX, INT_MIN
from npusim.frontend.program import ForLoop, IfBlock, Instr, OpCall, ScalarAssign, ScopeBlock
from npusim.graph import DmaSig, MovedWindows, Region, Task, coalesce

from .values import RUNTIME_ERRORS, GMTensor, GMView, Tile, as_view

if TYPE_CHECKING:
    from .compile import Interpreter

Form = dict[str, int]  # a scalar as sum(coefficient * symbolic scalar) + a part fixed by the outcome
Dyn = frozenset[str]  # a scalar fixed by the outcome and these entry scalars, but not affinely (min(64, n - s0))
Coeffs = tuple[tuple[tuple[str, int], ...], ...]  # one form per dimension of a GM window's offset
_UNDEF = object()  # analysis: not assigned yet (a name the kernel assigns before it reads it, if at all)
_FRESH = object()  # run time: the value of such a name while a template is recorded
_SKIPPED_KINDS = ("dtype", "dtype_opt", "choice", "flag")
_MAX_PASSES = 64


class _Restart(Exception):
    """Symbolic scalars found to reach the kernel's structure: the pass starts again with them structural."""

    def __init__(self, names: set[str]) -> None:
        self.names = names


class _NotReplayable(Exception):
    """A kernel the pass cannot follow: it is interpreted at every execution."""


@dataclass(frozen=True)
class Access:
    """A GM-access instruction: the interface name it reads or writes through, how its window's offset moves
    with the symbolic scalars, and whether its window is checked against the view (slice, assemble)."""

    binding: str
    coeffs: Coeffs
    checked: bool


@dataclass
class Plan:
    """What the dataflow pass found for one kernel."""

    scalars: tuple[str, ...]  # interface scalar names the kernel may read before assigning, sorted
    values: tuple[str, ...]  # interface GM names it may read before assigning, sorted
    structural: frozenset[str]
    fresh: tuple[str, ...]  # names it assigns before any read on every path
    assigned_scalars: tuple[str, ...]
    assigned_values: tuple[str, ...]
    accesses: dict[int, Access]
    exits: dict[str, Form]  # scalar names it may assign: their value at the kernel's end
    outcome: tuple[str, ...]  # entry scalars its outcome (and its Dyn exits) turn on, sorted; () for none
    dyn_exits: tuple[str, ...]  # scalar names it may assign whose value at the end is no form: the skeleton gives it
    tile_windows: frozenset[int]  # ids of its slices and assembles of tiles (their offsets are outcome)


def _names_in(node: Any) -> list[str]:
    """Names an expression reads (the callee of a call is not a name read)."""
    if not isinstance(node, ast.AST):
        return []
    out: list[str] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Call):
            if isinstance(n.func, ast.Name) and n.func.id == "read":
                raise _NotReplayable  # a kernel's control flow steered by GM values
            stack.extend(n.args)
            continue
        if isinstance(n, ast.Name):
            out.append(n.id)
        stack.extend(ast.iter_child_nodes(n))
    return out


def _instr_reads(instr: Instr) -> list[str]:
    if isinstance(instr, OpCall):
        return [name for p in instr.spec.params if p.kind not in _SKIPPED_KINDS
                for name in _names_in(instr.args.get(p.name))]
    if isinstance(instr, ScalarAssign):
        return _names_in(instr.expr)
    if isinstance(instr, ForLoop):
        return [n for a in instr.range_args for n in _names_in(a)]
    if isinstance(instr, IfBlock):
        return _names_in(instr.cond)
    return []


def _dyn(*forms: Form | Dyn) -> Form | Dyn:
    """A scalar computed from these other than affinely: fixed by the outcome and their entry scalars."""
    names = frozenset().union(*forms)
    return names if names else {}


class _Analyzer:
    """The dataflow pass over one kernel body (see the module docstring)."""

    def __init__(self, interp: Interpreter, body: list[Instr], loop_vars: set[str]) -> None:
        self.interp = interp
        self.consts = interp.program.consts
        self.kinds = interp.kinds
        self.body = body
        self.reads: set[str] = set()
        self.assigned: set[str] = set()
        self._definite(body, set())
        # an enclosing loop variable the kernel reassigns is read by the task's context
        self.reads |= self.assigned & loop_vars
        self.structural: set[str] = set()
        self.accesses: dict[int, Access] = {}
        self.outcome: set[str] = set()
        self.tile_windows: set[int] = set()

    # -- which names are read before they are assigned (definite assignment) --
    def _definite(self, body: list[Instr], done: set[str]) -> set[str]:
        for instr in body:
            for name in _instr_reads(instr):
                if name not in done and name not in self.consts:
                    self.reads.add(name)
            if isinstance(instr, OpCall | ScalarAssign):
                if instr.target is not None:
                    self.assigned.add(instr.target)
                    done = done | {instr.target}
            elif isinstance(instr, ForLoop):
                self.assigned.add(instr.var)
                after = self._definite(instr.body, done | {instr.var})
                if self._runs(instr):
                    done = after
            elif isinstance(instr, IfBlock):
                done = self._definite(instr.then, set(done)) & self._definite(instr.orelse, set(done))
            elif isinstance(instr, ScopeBlock):
                done = self._definite(instr.body, done)
            else:
                raise _NotReplayable
        return done

    def _const(self, node: Any) -> Any:
        """The value of an expression made of literals and params only, else None."""
        if not isinstance(node, ast.AST):
            return node
        if any(n not in self.consts for n in _names_in(node)):
            return None
        try:
            return self.interp.compiler.compile_node(node, "", self.body[0].loc).const
        except ProgramError:
            return None

    def _runs(self, loop: ForLoop) -> bool:
        """A loop whose range is a constant and not empty: its body runs at least once."""
        args = [self._const(a) for a in loop.range_args]
        if any(a.__class__ is not int for a in args):
            return False
        try:
            return len(range(*args)) > 0
        except ValueError:
            return False

    # -- the abstract pass --
    def plan(self) -> Plan:
        for _ in range(_MAX_PASSES):
            try:
                env = self._pass()
            except _Restart as r:
                self.structural |= r.names
                continue
            scalars = sorted(n for n in self.reads if self.kinds.get(n) == "scalar")
            values = sorted(n for n in self.reads if self.kinds.get(n) == "value")
            if len(scalars) + len(values) != len(self.reads):
                raise _NotReplayable
            assigned = [n for n in self.assigned if self.kinds.get(n) == "scalar" and env[n] is not _UNDEF]
            dyn_exits = sorted(n for n in assigned if isinstance(env[n], frozenset))
            for n in dyn_exits:
                self.outcome |= env[n]
            return Plan(
                scalars=tuple(scalars), values=tuple(values), structural=frozenset(self.structural),
                fresh=tuple(sorted(self.assigned - self.reads)),
                assigned_scalars=tuple(sorted(n for n in self.assigned if self.kinds.get(n) == "scalar")),
                assigned_values=tuple(sorted(n for n in self.assigned if self.kinds.get(n) == "value")),
                accesses=dict(self.accesses),
                exits={n: env[n] for n in assigned if isinstance(env[n], dict)},
                outcome=tuple(sorted(self.outcome)), dyn_exits=tuple(dyn_exits),
                tile_windows=frozenset(self.tile_windows),
            )
        raise _NotReplayable

    def _pass(self) -> dict[str, Any]:
        self.accesses = {}
        self.outcome = set()
        self.tile_windows = set()
        env: dict[str, Any] = {}
        for name in self.reads:
            if self.kinds.get(name) == "scalar":
                env[name] = {} if name in self.structural else {name: 1}
            else:
                env[name] = ("gm", name)
        for name in self.assigned - self.reads:
            env[name] = _UNDEF
        self._block(self.body, env)
        return env

    def _block(self, body: list[Instr], env: dict[str, Any]) -> None:
        for instr in body:
            self._instr(instr, env)

    def _instr(self, instr: Instr, env: dict[str, Any]) -> None:
        if isinstance(instr, OpCall):
            instr = self.interp.scalar_function(instr) or instr  # abs, sqrt of scalars: a call, not affine
        if isinstance(instr, OpCall):
            self._op(instr, env)
        elif isinstance(instr, ScalarAssign):
            if isinstance(instr.expr, ast.Name) and self.kinds.get(instr.expr.id) == "value":
                env[instr.target] = self._binding(instr.expr.id, env)
            else:
                env[instr.target] = self._form(instr.expr, env)
        elif isinstance(instr, ForLoop):
            for a in instr.range_args:
                self._use(self._form(a, env))
            for _ in range(_MAX_PASSES):
                after = dict(env)
                after[instr.var] = {}
                self._block(instr.body, after)
                joined = self._join(env, after)
                if joined == env:
                    break
                env.update(joined)
            else:
                raise _NotReplayable
        elif isinstance(instr, IfBlock):
            self._use(self._form(instr.cond, env))
            then, orelse = dict(env), dict(env)
            self._block(instr.then, then)
            self._block(instr.orelse, orelse)
            env.update(self._join(then, orelse))
        elif isinstance(instr, ScopeBlock):
            self._block(instr.body, env)
        else:
            raise _NotReplayable

    @staticmethod
    def _join(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, x in a.items():
            y = b[name]
            if x is _UNDEF or x == y:
                out[name] = y
            elif y is _UNDEF:
                out[name] = x
            elif isinstance(x, dict | frozenset) and isinstance(y, dict | frozenset):
                out[name] = _dyn(x, y)  # which path ran is outcome
            else:
                raise _NotReplayable  # a value bound to different things on different paths
        return out

    def _use(self, form: Form | Dyn) -> None:
        """A scalar the kernel's structure turns on: its value is outcome."""
        self.outcome |= set(form)

    @staticmethod
    def _affine(form: Form | Dyn) -> Form:
        """A scalar that moves a GM window: a form, or its entry scalars become structural."""
        if isinstance(form, frozenset):
            raise _Restart(set(form))
        return form

    def _binding(self, name: str, env: dict[str, Any]) -> Any:
        b = env.get(name, _UNDEF)
        if b is _UNDEF or isinstance(b, dict | frozenset):
            raise _NotReplayable
        return b

    def _form(self, node: Any, env: dict[str, Any]) -> Form | Dyn:
        if not isinstance(node, ast.AST) or isinstance(node, ast.Constant):
            return {}
        if isinstance(node, ast.Name):
            if node.id in self.consts:
                return {}
            form = env.get(node.id, _UNDEF)
            if not isinstance(form, dict | frozenset):
                raise _NotReplayable
            return form
        if isinstance(node, ast.BinOp):
            left, right = self._form(node.left, env), self._form(node.right, env)
            if isinstance(left, frozenset) or isinstance(right, frozenset):
                return _dyn(left, right)
            if isinstance(node.op, ast.Add | ast.Sub):
                sign = 1 if isinstance(node.op, ast.Add) else -1
                out = dict(left)
                for v, c in right.items():
                    out[v] = out.get(v, 0) + sign * c
                return {v: c for v, c in out.items() if c}
            if isinstance(node.op, ast.Mult) and (not left or not right):
                form, other = (left, node.right) if left else (right, node.left)
                if not form:
                    return {}
                factor = self._const(other)
                if factor.__class__ is int:
                    return {v: c * factor for v, c in form.items() if c * factor}
            return _dyn(left, right)
        if isinstance(node, ast.UnaryOp):
            form = self._form(node.operand, env)
            if isinstance(node.op, ast.USub) and isinstance(form, dict):
                return {v: -c for v, c in form.items()}
            if isinstance(node.op, ast.UAdd):
                return form
            return _dyn(form)
        if isinstance(node, ast.Compare | ast.BoolOp | ast.Call):
            parts = [node.left, *node.comparators] if isinstance(node, ast.Compare) else \
                node.values if isinstance(node, ast.BoolOp) else node.args
            return _dyn(*[self._form(part, env) for part in parts])
        raise _NotReplayable

    def _op(self, instr: OpCall, env: dict[str, Any]) -> None:
        spec, lowering = instr.spec, instr.spec.lowering
        iid = self.interp.iid_of[id(instr)]
        bindings: dict[str, Any] = {}
        for p in spec.params:
            node = instr.args.get(p.name)
            if not isinstance(node, ast.AST) or p.kind in _SKIPPED_KINDS:
                continue
            if p.kind in ("value", "value_or_scalar") and isinstance(node, ast.Name) \
                    and self.kinds.get(node.id) == "value":
                bindings[p.name] = self._binding(node.id, env)
            elif p.kind in ("value_or_scalar", "scalar"):
                self._use(self._form(node, env))
            elif p.kind in ("shape", "shape_opt", "index"):
                if p.name == "offset" and lowering in ("slice", "assemble"):
                    continue
                for e in getattr(node, "elts", ()):
                    self._use(self._form(e, env))
            else:
                raise _NotReplayable
        result: Any = "tile"
        if lowering in ("slice", "assemble"):
            where = bindings.get("t" if lowering == "slice" else "target")
            forms = [self._form(e, env) for e in getattr(instr.args.get("offset"), "elts", ())]
            if where is None:
                raise _NotReplayable
            if where == "tile":
                self.tile_windows.add(id(instr))
                for form in forms:
                    self._use(form)
            else:
                self._access(iid, where, [self._affine(f) for f in forms], True)
                if lowering == "assemble":
                    result = where
        elif lowering == "compute":
            gm = {b for b in bindings.values() if b != "tile"}
            if len(gm) > 1:
                raise _NotReplayable
            for b in gm:
                self._access(iid, b, [], False)
        else:
            raise _NotReplayable
        if instr.target is not None:
            env[instr.target] = result

    def _access(self, iid: int, binding: Any, forms: list[Form], checked: bool) -> None:
        coeffs = tuple(tuple(sorted(f.items())) for f in forms)
        self.accesses[iid] = Access(binding[1], coeffs, checked)


# -- the outcome of an execution ---------------------------------------------------------------------------


class _Unknown(Exception):
    """An execution whose scalar work the skeleton does not follow (an error, the loop budget): interpret it."""


Step = Callable[[dict[str, Any], list[Any]], None]


class _Skeleton:
    """A kernel's scalar work alone: its assignments, loops and branches, recording the values its outcome is
    made of (loop ranges, conditions, op scalars and shapes, tile windows) and leaving its Dyn exits. Checks
    mirror the interpreter's; an execution they would stop is left to the interpreter (None)."""

    def __init__(self, interp: Interpreter, body: list[Instr], plan: Plan) -> None:
        self.interp = interp
        self.plan = plan
        self.left = 0  # loop iterations the run in progress may still take
        self.steps = self._block(body)

    def run(self, env0: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        env, out = dict(env0), []
        self.left = self.interp.limits.max_loop_iterations
        try:
            for step in self.steps:
                step(env, out)
        except (_Unknown, ProgramError, KeyError, *RUNTIME_ERRORS):
            return None
        return tuple(out), {name: env[name] for name in self.plan.dyn_exits if name in env}

    def _block(self, body: list[Instr]) -> list[Step]:
        steps: list[Step] = []
        for instr in body:
            if isinstance(instr, ScopeBlock):
                steps.extend(self._block(instr.body))
            else:
                step = self._step(instr)
                if step is not None:
                    steps.append(step)
        return steps

    def _step(self, instr: Instr) -> Step | None:
        interp = self.interp
        if isinstance(instr, OpCall):
            instr = interp.scalar_function(instr) or instr
        if isinstance(instr, ScalarAssign):
            if isinstance(instr.expr, ast.Name) and interp.kinds.get(instr.expr.id) == "value":
                return None  # an alias of a tile or tensor
            return self._assign(instr.target, interp._expr(instr.expr, instr).fn)
        if isinstance(instr, OpCall):
            return self._recorder(self._op_scalars(instr))
        if isinstance(instr, ForLoop):
            return self._loop(instr.var, [interp._expr(a, instr).fn for a in instr.range_args],
                              self._block(instr.body))
        if isinstance(instr, IfBlock):
            return self._branch(interp._expr(instr.cond, instr).fn, self._block(instr.then), self._block(instr.orelse))
        raise _NotReplayable

    def _op_scalars(self, instr: OpCall) -> list[Callable[[dict[str, Any]], Any]]:
        """The op's scalar operands and shapes that are not constant (a GM window's offset moves its window)."""
        fns = []
        for p in instr.spec.params:
            node = instr.args.get(p.name)
            if not isinstance(node, ast.AST) or p.kind in _SKIPPED_KINDS or p.kind == "value" or \
                    (isinstance(node, ast.Name) and self.interp.kinds.get(node.id) == "value"):
                continue
            if p.name == "offset" and instr.spec.lowering in ("slice", "assemble") and \
                    id(instr) not in self.plan.tile_windows:
                continue
            for n in [node] if p.kind in ("value_or_scalar", "scalar") else getattr(node, "elts", ()):
                expr = self.interp._expr(n, instr)
                if not expr.is_const:
                    fns.append(expr.fn)
        return fns

    @staticmethod
    def _assign(target: str, fn: Callable[[dict[str, Any]], Any]) -> Step:
        def assign(env: dict[str, Any], out: list[Any]) -> None:
            value = fn(env)
            if value.__class__ is int and not INT_MIN <= value <= INT_MAX:
                raise _Unknown
            env[target] = value
        return assign

    @staticmethod
    def _recorder(fns: list[Callable[[dict[str, Any]], Any]]) -> Step | None:
        if not fns:
            return None

        def record(env: dict[str, Any], out: list[Any]) -> None:
            for fn in fns:
                value = fn(env)
                out.append((value.__class__, value))
        return record

    def _loop(self, var: str, args: list[Callable[[dict[str, Any]], Any]], body: list[Step]) -> Step:
        def loop(env: dict[str, Any], out: list[Any]) -> None:
            values = tuple([fn(env) for fn in args])
            if any(v.__class__ is not int or not INT_MIN <= v <= INT_MAX for v in values) or \
                    (len(values) == 3 and values[2] == 0):
                raise _Unknown
            rng = range(*values)
            self.left -= len(rng)
            if self.left < 0:
                raise _Unknown
            out.append(values)
            for v in rng:
                env[var] = v
                for step in body:
                    step(env, out)
        return loop

    @staticmethod
    def _branch(cond: Callable[[dict[str, Any]], Any], then: list[Step], orelse: list[Step]) -> Step:
        def branch(env: dict[str, Any], out: list[Any]) -> None:
            taken = bool(cond(env))
            out.append(taken)
            for step in then if taken else orelse:
                step(env, out)
        return branch


# -- templates and their replay ----------------------------------------------------------------------------


@dataclass
class _Entry:
    """The values a kernel execution starts from, as the replay needs them."""

    symbolic: dict[str, int]
    objects: dict[str, GMTensor | GMView]  # interface GM names -> their values


@dataclass(frozen=True)
class _Group:
    """The instructions of a template that access GM through one name with one offset form: they move
    together. `bounds`: for checked windows, the lowest offsets and highest ends (relative to the view) the
    template reached, and the view's shape."""

    binding: str
    coeffs: Coeffs
    bounds: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None


@dataclass
class Template:
    """One interpreted execution of a kernel, to be replayed for executions of the same structure."""

    ops: list
    core: Any
    iterations: int
    reads: list[Region]
    writes: list[Region]
    raw: list[tuple[int, bool, Region]]  # (group, is a write, window) in program order
    accesses: list[tuple[int, int, bool, Region]]  # per DMA op in op order (L2 model): (op, group, write, window)
    entry: _Entry
    groups: list[_Group]
    by_tensor: dict[int, tuple[int, ...]]  # template tensor id -> the groups accessing it
    exits: list[tuple[str, str, Any]]  # (name, how, what)


@dataclass
class ReplayCache:
    """Plans per kernel, templates per (kernel, key, outcome), and the replay of an execution. With `values`
    (a run with numerics) every execution is interpreted for its values, and one a template fits takes its
    task record from the template instead: the same record (tests/test_speed_equivalence.py), but with the
    template's op list and windows shared, as in a timing-only run, so the timing model's per-template work
    is done once per template here too."""

    interp: Interpreter
    values: bool = False
    plans: dict[int, Plan | None] = field(default_factory=dict)
    skeletons: dict[int, _Skeleton] = field(default_factory=dict)
    # (kernel, key, values of its outcome scalars) -> (outcome id, Dyn exits), None for one to interpret
    outcomes: dict[tuple, tuple[int, dict[str, Any]] | None] = field(default_factory=dict)
    outcome_ids: dict[tuple, int] = field(default_factory=dict)
    templates: dict[tuple, Template | None] = field(default_factory=dict)
    replayed: int = 0

    def kernel(self, iid: int, body: list[Instr], task: Task, interpret: Callable[[Task, bool], tuple[list, list]],
               finish: Callable[[Task], None]) -> None:
        """Run one kernel execution into `task`: replayed when a template fits, else interpreted (`finish`
        completes the record of an execution interpreted without summarising it)."""
        interp = self.interp
        if iid not in self.plans:
            self._plan(iid, body)
        plan = self.plans[iid]
        keyed = _key(plan, interp.env) if plan is not None else None
        if keyed is None:
            interpret(task)
            return
        key, entry = keyed
        assert plan is not None
        dyn: dict[str, Any] = {}
        if plan.outcome:
            found = self._outcome(iid, key, plan)
            if found is None:
                interpret(task)
                return
            oid, dyn = found
            tkey: tuple = (iid, key, oid)
        else:
            tkey = (iid, key)
        if tkey in self.templates:
            tmpl = self.templates[tkey]
            if self.values:
                interpret(task, tmpl is None)
                if tmpl is not None:
                    if _apply(tmpl, entry, task, interp, {}, record_only=True):
                        self.replayed += 1
                    else:
                        finish(task)
                return
            if tmpl is not None and _apply(tmpl, entry, task, interp, dyn):
                self.replayed += 1
                return
            interpret(task)
            return
        self.templates[tkey] = _record(plan, entry, task, interp, interpret)

    def _plan(self, iid: int, body: list[Instr]) -> None:
        try:
            plan = _Analyzer(self.interp, body, set(self.interp.loop_vars)).plan()
            if plan.outcome:
                self.skeletons[iid] = _Skeleton(self.interp, body, plan)
        except (_NotReplayable, ProgramError):
            plan = None
        self.plans[iid] = plan

    def _outcome(self, iid: int, key: tuple, plan: Plan) -> tuple[int, dict[str, Any]] | None:
        """The outcome of this execution (interned) and its Dyn exits, run once per value of the scalars it
        turns on."""
        env = self.interp.env
        okey = (iid, key, tuple([(v.__class__, v) for v in [env.get(n, _UNDEF) for n in plan.outcome]]))
        if okey not in self.outcomes:
            ran = self.skeletons[iid].run({n: env[n] for n in plan.scalars if n in env})
            self.outcomes[okey] = None if ran is None else \
                (self.outcome_ids.setdefault(ran[0], len(self.outcome_ids)), ran[1])
        return self.outcomes[okey]


def _key(plan: Plan, env: dict[str, Any]) -> tuple[tuple, _Entry] | None:
    """What fixes the structure of an execution, and the values it shifts by; None for one to interpret."""
    parts: list[Any] = []
    symbolic: dict[str, int] = {}
    for name in plan.scalars:
        value = env.get(name, _UNDEF)
        if value is _UNDEF:
            parts.append(None)
        elif name in plan.structural:
            parts.append((value.__class__, value))
        elif value.__class__ is int:
            symbolic[name] = value
        else:
            parts.append((name, value.__class__, value))  # no shift to follow: executions share it by value
    objects: dict[str, GMTensor | GMView] = {}
    seen_objects: list[Any] = []
    seen_tensors: list[Any] = []
    for name in plan.values:
        value = env.get(name, _UNDEF)
        if value is _UNDEF:
            parts.append(None)
            continue
        if value.__class__ is not GMTensor and value.__class__ is not GMView:
            return None  # a tile from elsewhere: the interpreter reports it
        view = as_view(value)
        tensor = view.tensor
        same_object = next((i for i, o in enumerate(seen_objects) if o is value), len(seen_objects))
        same_tensor = next((i for i, t in enumerate(seen_tensors) if t is tensor), len(seen_tensors))
        seen_objects.append(value)
        seen_tensors.append(tensor)
        parts.append((view.shape, tensor.shape, tensor.dtype, same_object, same_tensor))
        objects[name] = value
    return tuple(parts), _Entry(symbolic, objects)


def _record(plan: Plan, entry: _Entry, task: Task, interp: Interpreter,
            interpret: Callable[[Task], tuple[list, list]]) -> Template | None:
    """Interpret `task`, keeping what replaying it takes; None when this execution cannot be a template."""
    env = interp.env
    saved = {name: env.get(name, _UNDEF) for name in plan.fresh}
    for name in plan.fresh:
        env[name] = _FRESH
    iterations = interp.iterations
    try:
        raw_reads, raw_writes = interpret(task)
    finally:
        unassigned = {name for name in plan.fresh if env.get(name) is _FRESH}
        for name in unassigned:
            if saved[name] is _UNDEF:
                del env[name]
            else:
                env[name] = saved[name]
    return _template(plan, entry, task, interp, raw_reads, raw_writes, interp.iterations - iterations, unassigned)


def _template(plan: Plan, entry: _Entry, task: Task, interp: Interpreter, raw_reads: list[Region],
              raw_writes: list[Region], iterations: int, unassigned: set[str]) -> Template | None:
    env = interp.env
    if any(as_view(obj).tensor.base is not None for obj in entry.objects.values()):
        return None  # a reshaped GM view: its windows fall on its base's memory by a box, not by a shift
    # which instruction made each window: loads and stores record one window each, in program order
    load_ids, store_ids = [], []
    for op in task.ops:
        sig = op.sig
        if sig.__class__ is DmaSig:
            if 0 in sig.tile.valid:
                return None  # a window with nothing in it leaves no footprint to shift
            (load_ids if sig.key == "TLOAD" else store_ids).append((op.instr, sig.tile.shape))
    if len(load_ids) != len(raw_reads) or len(store_ids) != len(raw_writes):
        return None
    offsets = {name: as_view(obj).offset for name, obj in entry.objects.items()}
    tids = {name: as_view(obj).tensor.tid for name, obj in entry.objects.items()}
    group_of: dict[tuple[str, Coeffs, bool], int] = {}
    lows: list[list[int] | None] = []
    highs: list[list[int] | None] = []
    raw: list[tuple[int, bool, Region]] = []
    by_tensor: dict[int, set[int]] = {}
    for is_write, ids, regions in ((False, load_ids, raw_reads), (True, store_ids, raw_writes)):
        for (iid, shape), region in zip(ids, regions, strict=True):
            access = plan.accesses.get(iid)
            if access is None or access.binding not in offsets or tids[access.binding] != region[0]:
                return None
            g = group_of.setdefault((access.binding, access.coeffs, access.checked), len(group_of))
            if g == len(lows):
                lows.append(None)
                highs.append(None)
            raw.append((g, is_write, region))
            by_tensor.setdefault(region[0], set()).add(g)
            if access.checked:
                rel = [lo - b for lo, b in zip(region[1], offsets[access.binding], strict=True)]
                size = [h - lo for lo, h in zip(region[1], region[2], strict=True)] if is_write else shape
                top = [r + n for r, n in zip(rel, size, strict=True)]
                lo_, hi_ = lows[g], highs[g]
                lows[g] = rel if lo_ is None else [min(a, b) for a, b in zip(lo_, rel, strict=True)]
                highs[g] = top if hi_ is None else [max(a, b) for a, b in zip(hi_, top, strict=True)]
    # each op's GM window (task.accesses, in op order) with the group that moves it: the k-th read access is
    # the k-th load window above, the k-th write access the k-th store window
    by_kind: dict[bool, list[int]] = {False: [g for g, w, _ in raw if not w], True: [g for g, w, _ in raw if w]}
    if [region for _, region, write in task.accesses if not write] != raw_reads or \
            [region for _, region, write in task.accesses if write] != raw_writes:
        return None
    seen = {False: 0, True: 0}
    accesses: list[tuple[int, int, bool, Region]] = []
    for op, region, write in task.accesses:
        accesses.append((op, by_kind[write][seen[write]], write, region))
        seen[write] += 1
    groups = []
    for (binding, coeffs, checked), g in group_of.items():
        low, high = lows[g], highs[g]
        bounds = (tuple(low), tuple(high), as_view(entry.objects[binding]).shape) \
            if checked and low is not None and high is not None else None
        groups.append(_Group(binding, coeffs if any(coeffs) else (), bounds))
    exits: list[tuple[str, str, Any]] = []
    for name in plan.assigned_scalars:
        if name in unassigned or name not in env or name in plan.dyn_exits:
            continue
        value, form = env[name], plan.exits.get(name, {})
        if form and value.__class__ is not int:
            return None
        exits.append((name, "scalar", (value, tuple(form.items()))))
    for name in plan.assigned_values:
        if name in unassigned or name not in env:
            continue
        value = env[name]
        if value.__class__ is Tile:
            if value.owner != task.id:
                return None
            exits.append((name, "tile", (value.sig, value.buf, value.op)))
            continue
        source = next((n for n, obj in entry.objects.items() if obj is value), None)
        if source is None:
            return None
        exits.append((name, "entry", source))
    return Template(task.ops, task.core, iterations, list(task.reads), list(task.writes), raw, accesses, entry, groups,
                    {t: tuple(sorted(s)) for t, s in by_tensor.items()}, exits)


def _apply(tmpl: Template, entry: _Entry, task: Task, interp: Interpreter, dyn: dict[str, Any],
           record_only: bool = False) -> bool:
    """Fill `task` from the template for this entry, leaving the Dyn exits `dyn`; False (nothing changed) when
    its windows would leave their views, a scalar exit would not fit in 64 bits or the loop budget would run
    out: the interpreter then runs it and says so. `record_only`:
    the execution was interpreted already (its names and loop iterations are the interpreter's), only its
    task record is replaced."""
    if not record_only and interp.iterations + tmpl.iterations > interp.limits.max_loop_iterations:
        return False
    base = tmpl.entry
    delta = {v: x - base.symbolic[v] for v, x in entry.symbolic.items() if x != base.symbolic[v]}
    shifts: list[tuple[int, ...]] = []
    tid_map: dict[int, int] = {}
    moved = relabel = False
    for group in tmpl.groups:
        new_view, old_view = as_view(entry.objects[group.binding]), as_view(base.objects[group.binding])
        old_tid, new_tid = old_view.tensor.tid, new_view.tensor.tid
        tid_map[old_tid] = new_tid
        relabel = relabel or old_tid != new_tid
        shift = tuple([n - o for n, o in zip(new_view.offset, old_view.offset, strict=True)])
        if delta and group.coeffs:
            rel = [sum([c * delta.get(v, 0) for v, c in dim]) for dim in group.coeffs]
            if group.bounds is not None:
                lo, hi, dims = group.bounds
                if any(a + r < 0 for a, r in zip(lo, rel, strict=True)) or \
                        any(a + r > d for a, r, d in zip(hi, rel, dims, strict=True)):
                    return False
            shift = tuple([s + r for s, r in zip(shift, rel, strict=True)])
        moved = moved or any(shift)
        shifts.append(shift)
    accesses = MovedWindows(tmpl.accesses, shifts, tid_map)  # (the L2 model reads a template's windows once)
    if not moved and not relabel:
        reads, writes = list(tmpl.reads), list(tmpl.writes)
    else:
        per_tensor: dict[int, tuple[int, ...]] = {}
        for tid, groups in tmpl.by_tensor.items():
            first = shifts[groups[0]]
            if any(shifts[g] != first for g in groups[1:]):
                break
            per_tensor[tid] = first
        if len(per_tensor) == len(tmpl.by_tensor):
            reads = _moved(tmpl.reads, per_tensor, tid_map)
            writes = _moved(tmpl.writes, per_tensor, tid_map)
        else:
            raw_reads, raw_writes = [], []
            for g, is_write, (tid, lo, hi) in tmpl.raw:
                s = shifts[g]
                region = (tid_map[tid], tuple([a + b for a, b in zip(lo, s, strict=True)]),
                          tuple([a + b for a, b in zip(hi, s, strict=True)]))
                (raw_writes if is_write else raw_reads).append(region)
            reads, writes = coalesce(raw_reads), coalesce(raw_writes)
    if record_only:
        task.ops, task.core, task.reads, task.writes, task.accesses = tmpl.ops, tmpl.core, reads, writes, accesses
        return True
    scalars = {}
    for name, how, what in tmpl.exits:
        if how == "scalar":
            value, form = what
            if delta and form:
                value += sum(c * delta.get(v, 0) for v, c in form)
                if not INT_MIN <= value <= INT_MAX:
                    return False
            scalars[name] = value
    env = interp.env
    env.update(scalars)
    for name, how, what in tmpl.exits:
        if how == "tile":
            sig, buf, op = what
            env[name] = Tile(None, sig, buf, op, task.id)
        elif how == "entry":
            env[name] = entry.objects[what]
    env.update(dyn)
    interp.iterations += tmpl.iterations
    task.ops, task.core, task.reads, task.writes, task.accesses = tmpl.ops, tmpl.core, reads, writes, accesses
    return True


def _moved(regions: list[Region], shifts: dict[int, tuple[int, ...]], tid_map: dict[int, int]) -> list[Region]:
    """Coalesced windows each moved with its tensor: coalescing commutes with a shift common to one tensor's
    windows, and its result is sorted, so sorting the moved windows gives what coalescing them would."""
    out = []
    for tid, lo, hi in regions:
        s = shifts[tid]
        if any(s):
            lo = tuple([a + b for a, b in zip(lo, s, strict=True)])
            hi = tuple([a + b for a, b in zip(hi, s, strict=True)])
        out.append((tid_map[tid], lo, hi))
    return sorted(out) if len(out) > 1 else out
