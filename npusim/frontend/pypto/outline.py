"""Kernel boundaries as PyPTO's outlining draws them (pypto b2104ad64 OutlineIncoreScopes,
ConvertTensorToTileOps, FuseCreateAssembleToSlice), on the IR once every kernel is explicit:

- a tile computed in a kernel and read after it escapes: a GM tensor of its shape is created before each
  execution, the kernel stores the tile into it at its end, and later readers see that tensor;
- a tensor created in orchestration (an escape's, or the program's own `pl.create_tensor`) whose buffer is
  the source of exactly one `assemble` in orchestration becomes a view of that assemble's target at its
  offset, and the assemble disappears: the producer writes in place, no copy;
- a GM tensor a kernel hands straight to a compute op (not to slice / assemble / matmul / read, which load
  for themselves) is loaded whole once at the kernel's entry, in name order ("Phase 1");
- `pl.create_tensor` inside a kernel is an uninitialised tile (`uninit`: no instruction runs; it reads as NaN,
  INT32_MIN for int32, as uninitialised GM scratch does);
- compute ops left in orchestration and a GM-to-GM assemble are located errors (a reshape of a GM tensor is a
  zero-copy view).

Which definitions reach which uses comes from a reaching-definitions pass over the structured IR.
"""

from __future__ import annotations

import ast
import copy
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from npusim.errors import ProgramError
from npusim.ops import OPS

from .ir import (
    SCALAR,
    ExternStmt,
    ForStmt,
    IfStmt,
    KernelStmt,
    ManualStmt,
    OpStmt,
    ScalarStmt,
    ScopeStmt,
    Stmt,
    Type,
    ValueType,
    children,
    dim_expr,
    name,
    names_read,
    walk,
)

DefKey = Any  # id(stmt) of a defining statement, ("param", name) or ("entry", name)
State = dict[str, frozenset]
SELF_LOADING = {"slice", "assemble", "matmul", "matmul_acc", "read", "create_tensor"}


def _merge(a: State, b: State) -> State:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, frozenset()) | v
    return out


class Flow:
    """Reaching definitions: for each (statement, name it reads), the definitions that may reach it; and the
    state before every statement. `default` gives names not yet defined (none, or an entry marker).

    Reaching definitions are a gen/kill problem, so a loop's head state is its entry state joined with the
    definitions its body generates (those reaching the body's end), whatever the entry: the body is run
    once with an empty state for that (cached per loop) and once to record its uses. Nested loops cost
    two passes each, not two per enclosing iteration."""

    def __init__(self, body: list[Stmt], initial: State, default: Callable[[str], frozenset] | None = None):
        self.reach: dict[tuple[int, str], frozenset] = defaultdict(frozenset)
        self.before: dict[int, State] = {}
        self.kernel_of: dict[int, KernelStmt | None] = {}
        self.stmts: dict[int, Stmt] = {}
        self.default = default or (lambda n: frozenset())
        self._generated: dict[int, State] = {}
        self.run(body, dict(initial), None, True)

    def get(self, state: State, n: str) -> frozenset:
        return state[n] if n in state else self.default(n)

    def run(self, stmts: list[Stmt], state: State, kernel: KernelStmt | None, record: bool) -> State:
        for s in stmts:
            sid = id(s)
            if record:
                self.stmts[sid] = s
                self.kernel_of[sid] = kernel
                self.before[sid] = state
                for n in names_read(s):
                    self.reach[(sid, n)] = self.get(state, n)
            if isinstance(s, KernelStmt):
                state = self.run(s.body, state, s, record)
            elif (isinstance(s, OpStmt) and s.target is not None) or isinstance(s, ScalarStmt):
                state = {**state, s.target: frozenset({sid})}  # type: ignore[union-attr]
            elif isinstance(s, ForStmt):
                state = self.loop(s, state, kernel, record)
            elif isinstance(s, IfStmt):
                state = _merge(self.run(s.then, dict(state), kernel, record),
                               self.run(s.orelse, dict(state), kernel, record))
            elif isinstance(s, ScopeStmt | ManualStmt):
                state = self.run(s.body, state, kernel, record)
        return state

    def loop(self, s: ForStmt, state: State, kernel: KernelStmt | None, record: bool) -> State:
        body = [*s.prologue, *s.body]
        generated = self._generated.get(id(s))
        if generated is None:
            generated = self.run(body, {s.var: frozenset({id(s)})}, kernel, False)
            self._generated[id(s)] = generated
        head = _merge({**state, s.var: frozenset({id(s)})}, generated)
        if record:
            self.run(body, dict(head), kernel, True)
        return head


@dataclass
class Outliner:
    body: list[Stmt]
    params: list[str]
    types: dict[str, Type]
    pynames: dict[str, str]
    fresh: Callable[[str, Type], str]
    made_aliases: set[int] = field(default_factory=set)
    _local_flows: dict[int, tuple[KernelStmt, Flow]] = field(default_factory=dict)
    _location_cache: dict[Any, str] = field(default_factory=dict)

    def flow(self) -> Flow:
        self._local_flows.clear()  # the body may have changed since the last analysis
        self._location_cache.clear()
        return Flow(self.body, {p: frozenset({("param", p)}) for p in self.params})

    # -- where values live --
    def location(self, flow: Flow, key: DefKey) -> str:
        """"gm", "tile" or "scalar" for one definition. Orchestration holds only GM tensors; inside a kernel a
        value is a tile unless it is a GM tensor the kernel received (everything a kernel reads from before
        it, once outlined, is GM) or an assemble into one."""
        cached = self._location_cache.get(key)
        if cached is not None:
            return cached
        if isinstance(key, tuple):
            return "gm"
        s = flow.stmts[key]
        kernel = flow.kernel_of[key]
        if self._is_scalar(s):
            found = "scalar"
        elif kernel is None:
            found = "gm"
        else:
            local = self._local(kernel)
            locs = _closure(key, lambda k: self._location_step(local, k))
            if len(locs) > 1:
                n = getattr(s, "target", "?")
                raise ProgramError(f"{self.pynames.get(n, n)!r} is a tile on one path here and a GM tensor on "
                                   "another; give the two a different name", s.loc)
            found = locs.pop() if locs else "gm"
        self._location_cache[key] = found
        return found

    def _is_scalar(self, s: Stmt) -> bool:
        return isinstance(s, ForStmt) or not isinstance(self.types.get(getattr(s, "target", None) or "", SCALAR),
                                                        ValueType)

    def _local(self, kernel: KernelStmt) -> Flow:
        """A kernel's own reaching definitions: what it reads from before it is an entry value."""
        cached = self._local_flows.get(id(kernel))
        if cached is None or cached[0] is not kernel:
            cached = (kernel, Flow(kernel.body, {}, default=lambda n: frozenset({("entry", n)})))
            self._local_flows[id(kernel)] = cached
        return cached[1]

    def _location_step(self, local: Flow, key: DefKey) -> tuple[str, Any]:
        if isinstance(key, tuple):
            return "terminal", "gm"
        s = local.stmts[key]
        if self._is_scalar(s):
            return "terminal", "scalar"
        if isinstance(s, ScalarStmt):
            return "via", local.reach[(key, s.expr.id)]  # type: ignore[attr-defined]
        if isinstance(s, OpStmt) and s.op == "assemble":
            return "via", local.reach[(key, s.args["target"].id)]
        return "terminal", "tile"

    def loc_of(self, flow: Flow, stmt: Stmt, n: str) -> set[str]:
        return {self.location(flow, d) for d in flow.reach[(id(stmt), n)]}

    # -- kernels --
    def kernels(self) -> list[KernelStmt]:
        return [s for s in walk(self.body) if isinstance(s, KernelStmt)]

    def run(self) -> None:
        self.escapes()
        self.fuse()
        self.remove_dead_aliases()
        self.phase1()
        self.local_tiles()
        self.check_orchestration()

    def _exposed(self, k: KernelStmt) -> set[tuple[int, str]]:
        local = Flow(k.body, {}, default=lambda n: frozenset({("entry", n)}))
        return {key for key, defs in local.reach.items() if ("entry", key[1]) in defs}

    def escapes(self) -> None:
        flow = self.flow()
        plans: list[tuple[KernelStmt, list[str]]] = []
        for k in self.kernels():
            inside = {sid for sid, kern in flow.kernel_of.items() if kern is k}
            exposed = {n for _, n in self._exposed(k)}
            escaping: set[str] = set()
            for (sid, n), defs in flow.reach.items():
                if sid not in inside and any(not isinstance(d, tuple) and d in inside
                                             and self.location(flow, d) == "tile" for d in defs):
                    escaping.add(n)
            entry_state = flow.before.get(id(k), {})
            for n in exposed:
                if any(not isinstance(d, tuple) and d in inside and self.location(flow, d) == "tile"
                       for d in entry_state.get(n, ())):
                    escaping.add(n)
            if escaping:
                plans.append((k, sorted(escaping, key=lambda n: self.pynames.get(n, n))))
        for k, names in plans:
            block, i = self._find(k)
            before: list[Stmt] = []
            after: list[Stmt] = []
            for n in names:
                t = self.types[n]
                assert isinstance(t, ValueType)
                out = self.fresh(f"{self.pynames.get(n, n)}_out", t)
                shape = ast.List([ast.parse(dim_expr(d), mode="eval").body for d in t.shape], ast.Load())
                before.append(OpStmt(k.loc, out, "create_tensor", {"shape": shape, "dtype": name(t.dtype)},
                                     "an escaping tile's GM tensor"))
                zeros = ast.List([ast.Constant(0) for _ in t.shape], ast.Load())
                k.body.append(OpStmt(k.loc, out, "assemble", {"target": name(out), "source": name(n),
                                                             "offset": zeros}, "the escaping tile's store"))
                alias = ScalarStmt(k.loc, n, name(out))
                self.made_aliases.add(id(alias))
                after.append(alias)
            block[i:i + 1] = [*before, k, *after]

    def _find(self, target: Stmt) -> tuple[list[Stmt], int]:
        def search(stmts: list[Stmt]) -> tuple[list[Stmt], int] | None:
            for i, s in enumerate(stmts):
                if s is target:
                    return stmts, i
                if isinstance(s, ForStmt):
                    found = search(s.prologue)
                    if found:
                        return found
                for b in children(s):
                    found = search(b)
                    if found:
                        return found
            return None
        found = search(self.body)
        assert found is not None
        return found

    # -- FuseCreateAssembleToSlice --
    def root(self, flow: Flow, key: DefKey) -> Any:
        """The definition that allocated a value's buffer (a create or a parameter), through aliases and GM
        assembles; None for a view, a mixture, or anything else."""
        def step(k: DefKey) -> tuple[str, Any]:
            if isinstance(k, tuple):
                return "terminal", k if k[0] == "param" else None
            s = flow.stmts[k]
            if isinstance(s, OpStmt) and s.op == "create_tensor":
                return "terminal", k
            if isinstance(s, ScalarStmt) and isinstance(s.expr, ast.Name):
                return "via", flow.reach[(k, s.expr.id)]
            if isinstance(s, OpStmt) and s.op == "assemble" and self.location(flow, k) == "gm":
                return "via", flow.reach[(k, s.args["target"].id)]
            return "terminal", None
        found = _closure(key, step)
        return found.pop() if len(found) == 1 else None

    def fuse(self) -> None:
        flow = self.flow()
        sites: dict[int, list[OpStmt]] = defaultdict(list)
        viewed: set[int] = set()
        for s in walk(self.body):
            if isinstance(s, OpStmt) and s.op == "assemble" and flow.kernel_of[id(s)] is None:
                src = s.args["source"].id
                roots = {self.root(flow, d) for d in flow.reach[(id(s), src)]}
                if len(roots) == 1 and isinstance(r := roots.pop(), int):
                    sites[r].append(s)
            if isinstance(s, OpStmt) and s.op == "slice" and flow.kernel_of[id(s)] is None:
                for d in flow.reach[(id(s), s.args["t"].id)]:
                    r = self.root(flow, d)
                    if isinstance(r, int):
                        viewed.add(r)
        for create_id, assembles in sites.items():
            create = flow.stmts[create_id]
            if len(assembles) != 1 or create_id in viewed or flow.kernel_of[create_id] is not None:
                continue
            assert isinstance(create, OpStmt)
            if create.args.get("fill") is not None or _flag(create.args.get("untracked")):
                continue  # a filled or untracked buffer is not just a window of the target
            a = assembles[0]
            block, i = self._find(create)
            if not any(s is a for s in block[i + 1:]):
                continue
            names = {n for n in names_read(a) if n != a.args["source"].id}
            if any(flow.before[id(a)].get(n) != flow.before[id(create)].get(n) for n in names):
                continue
            target = a.args["target"].id
            if self.loc_of(flow, a, target) != {"gm"}:
                continue
            assert isinstance(create, OpStmt)
            view = OpStmt(create.loc, create.target, "slice",
                          {"t": name(target), "shape": create.args["shape"],
                           "offset": copy.deepcopy(a.args["offset"]), "valid_shape": None}, create.pl_name)
            block[i] = view
            ablock, j = self._find(a)
            if a.target is not None and a.target != target:
                alias = ScalarStmt(a.loc, a.target, name(target))
                ablock[j] = alias
            else:
                del ablock[j]

    def remove_dead_aliases(self) -> None:
        flow = self.flow()
        used = {d for defs in flow.reach.values() for d in defs}
        for s in list(walk(self.body)):
            if id(s) in self.made_aliases and id(s) not in used:
                block, i = self._find(s)
                del block[i]

    # -- Phase 1: whole-tensor loads at kernel entry --
    def phase1(self) -> None:
        for k in self.kernels():
            exposed = self._exposed(k)
            needed: set[str] = set()
            for s in walk(k.body):
                if not isinstance(s, OpStmt) or s.op in SELF_LOADING:
                    continue
                spec = OPS[s.op]
                for p in spec.params:
                    node = s.args.get(p.name)
                    if p.kind in ("value", "value_or_scalar") and isinstance(node, ast.Name) \
                            and (id(s), node.id) in exposed and isinstance(self.types.get(node.id), ValueType):
                        needed.add(node.id)
            assigned = {s.target for s in walk(k.body) if isinstance(s, OpStmt | ScalarStmt) and s.target}
            loads: list[Stmt] = []
            for n in sorted(needed, key=lambda n: (self.pynames.get(n, n), n)):
                t = self.types[n]
                assert isinstance(t, ValueType)
                shape = ast.List([ast.parse(dim_expr(d), mode="eval").body for d in t.shape], ast.Load())
                zeros = ast.List([ast.Constant(0) for _ in t.shape], ast.Load())
                target = n if n in assigned else self.fresh(f"{self.pynames.get(n, n)}_tile", t)
                loads.append(OpStmt(k.loc, target, "slice", {"t": name(n), "shape": shape, "offset": zeros,
                                                            "valid_shape": None}, "a whole-tensor load"))
                if target != n:
                    _rename(k.body, n, target)
            k.body[0:0] = loads

    def local_tiles(self) -> None:
        """`pl.create_tensor` in a kernel: an uninitialised tile (npusim's `uninit`: no instruction runs, it
        reads as NaN, INT32_MIN for int32)."""
        for k in self.kernels():
            for s in walk(k.body):
                if isinstance(s, OpStmt) and s.op == "create_tensor":
                    if s.args.get("fill") is not None:  # init_value=v: a tile of v
                        s.op, s.args = "full", {"shape": s.args["shape"], "dtype": s.args["dtype"],
                                                "value": s.args["fill"]}
                    else:
                        s.op, s.args = "uninit", {"shape": s.args["shape"], "dtype": s.args["dtype"]}

    def check_orchestration(self) -> None:
        flow = self.flow()
        for s in walk(self.body):
            if not isinstance(s, OpStmt) or flow.kernel_of[id(s)] is not None:
                continue
            if s.op == "assemble":
                raise ProgramError(f"`{s.pl_name}` of one GM tensor into another outside a kernel (a copy) is "
                                   "not supported yet: PyPTO turns it into an in-place view only when the "
                                   "source's buffer is assembled exactly once", s.loc)
            if OPS[s.op].lowering == "compute" and OPS[s.op].pipe != "scalar":  # a reshape is a GM view
                raise ProgramError(f"`{s.pl_name}` outside a kernel: put it in `with pl.incore():` (PyPTO "
                                   "rejects it too: 'Misplaced tensor op')", s.loc)

    def written_params(self) -> set[str]:
        """The parameters some assemble writes (through views, aliases and earlier assembles)."""
        flow = self.flow()

        def step(k: DefKey) -> tuple[str, Any]:
            if isinstance(k, tuple):
                return "terminal", k[1] if k[0] == "param" else None
            s = flow.stmts[k]
            if isinstance(s, ScalarStmt) and isinstance(s.expr, ast.Name):
                return "via", flow.reach[(k, s.expr.id)]
            if isinstance(s, OpStmt) and s.op == "assemble":
                return "via", flow.reach[(k, s.args["target"].id)]
            if isinstance(s, OpStmt) and s.op == "slice" and flow.kernel_of[k] is None:
                return "via", flow.reach[(k, s.args["t"].id)]
            return "terminal", None

        written: set[str] = set()
        for s in walk(self.body):
            if isinstance(s, OpStmt) and s.op == "assemble":
                for d in flow.reach[(id(s), s.args["target"].id)]:
                    written |= _closure(d, step)
            elif isinstance(s, ExternStmt):  # a hand-written kernel writes its pl.Out / pl.InOut arguments
                for n in s.writes:
                    for d in flow.reach[(id(s), n)]:
                        written |= _closure(d, step)
        written.discard(None)  # type: ignore[arg-type]
        return written


def _closure(start: DefKey, step: Callable[[DefKey], tuple[str, Any]]) -> set[Any]:
    """The terminal values reachable from `start` through `step`'s "via" edges (each definition visited
    once, so loops cost nothing extra)."""
    seen: set[Any] = set()
    out: set[Any] = set()
    stack = [start]
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        kind, value = step(key)
        if kind == "terminal":
            out.add(value)
        else:
            stack.extend(value)
    return out


def _flag(node: Any) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _rename(stmts: list[Stmt], old: str, new: str) -> None:
    """Every read of `old` in `stmts` becomes `new` (a kernel's uses of a tensor it loaded at entry)."""
    def fix(node: Any) -> None:
        if isinstance(node, ast.AST):
            for n in ast.walk(node):
                if isinstance(n, ast.Name) and n.id == old:
                    n.id = new
    for s in walk(stmts):
        if isinstance(s, OpStmt):
            for v in s.args.values():
                fix(v)
        elif isinstance(s, ScalarStmt):
            fix(s.expr)
        elif isinstance(s, ForStmt):
            for v in (s.start, s.stop, s.step):
                fix(v)
        elif isinstance(s, IfStmt):
            fix(s.cond)


def outline(body: list[Stmt], params: list[str], types: dict[str, Type], pynames: dict[str, str],
            fresh: Callable[[str, Type], str]) -> set[str]:
    """Rewrite `body` in place; return the parameters the program writes."""
    outliner = Outliner(body, params, types, pynames, fresh)
    outliner.run()
    return outliner.written_params()
