"""The interpreter: runs a program in program order, computing values bit-exactly and recording one task
per kernel execution (its op list and GM footprint) for the timing stage.

The instruction tree is compiled once into closures (names resolved, constant expressions folded, op-table
rows looked up), so that running a loop body is a sequence of cheap calls. Shape rules are cached per
operand signature. With `numerics=False` no arithmetic is done; the tasks are the same. How each op uses
the hardware (buffers, DMA, moves) is `lower.py`'s business.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from npusim import numerics
from npusim.dtypes import INT_DTYPES, MAX_DIMS, NUMPY_DTYPES, itemsize, np_dtype
from npusim.errors import Location, ProgramError, shown
from npusim.frontend.expressions import FUNCTIONS, INT_MAX, INT_MIN, Expr, ExprCompiler
from npusim.frontend.program import (
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
)
from npusim.graph import Execution, ExternWork, FinalTensor, InstrInfo, Task, coalesce

from .compute import ComputeOp
from .limits import RunLimits, check_gm_budget
from .lower import Lowering, core_kind, dma_runs, lane_ops
from .replay import ReplayCache
from .values import (
    RUNTIME_ERRORS,
    Arriving,
    GMTensor,
    GMView,
    NeedsNumerics,
    Tile,
    arrived,
    as_view,
    fmt_shape,
    poison,
    tile_sig,
)

Run = Callable[[], None]


class Interpreter:
    """Compiles and runs one program. `first_iterations_only` runs each loop once (a quick check pass)."""

    def __init__(
        self,
        program: Program,
        inputs: dict[str, np.ndarray],
        numerics_on: bool = True,
        limits: RunLimits | None = None,
        first_iterations_only: bool = False,
        progress: Callable[[int], None] | None = None,
        replay: bool = True,
        arriving: dict[str, Arriving] | None = None,
    ) -> None:
        self.program = program
        self.arriving = arriving or {}  # inputs still being drawn beside the run: what waits for each
        self.numerics = numerics_on
        self.limits = limits or RunLimits()
        self.first_only = first_iterations_only
        self.progress = progress
        self.env: dict[str, Any] = {}
        self.kinds: dict[str, str] = {}  # name -> "scalar" | "value", for compile-time resolution
        self.tensors: dict[str, GMTensor] = {}
        self.instrs: list[InstrInfo] = []
        self.tasks: list[Task] = []
        self.scopes: list[str] = []
        self.scope_stack: list[str] = []
        self.loop_vars: list[str] = []
        self.stages: list[int] = [1]  # buffer slots of the innermost pipelined loop being compiled (in a kernel)
        self.task: Task | None = None
        self.iterations = 0
        self.l1_names: set[str] = set()  # names loaded for the cube in the kernel being compiled
        self.lower = Lowering(numerics_on)
        self.dispatches = 0  # dispatches (runtime tasks) submitted so far
        self.manual = False  # inside a manual scope
        self.iid_of: dict[int, int] = {}  # id(instruction) -> its index in the instruction table
        # repeated kernels are replayed from a template (replay.py); with numerics every op still runs for its
        # values, and the template gives the task record
        self.replay = ReplayCache(self, values=numerics_on) if replay and not first_iterations_only else None
        # a split kernel's lane ops per distinct op list (replayed executions share their template's list)
        self.lane_cache: dict[int, tuple[list, list]] = {}
        self.next_tid = len(program.tensors)
        self.gm_shapes: dict[int, tuple[tuple[int, ...], str]] = {}  # every GM tensor by id: shape, dtype
        self.readonly: set[int] = set()  # tensors of role input: no kernel may write them
        self.written: dict[int, str] = {}  # tensor id -> the last kernel that wrote it (for `read` without numerics)
        # the quick pass (first iterations only) estimates the whole run: tasks and ops, each loop's first
        # iteration counted for all of its iterations
        self.estimated_tasks = self.estimated_ops = 0
        self.kernel_extra_ops = 0
        self._allocate(inputs)
        self.compiler = ExprCompiler(program.consts, (), self._compile_read, program.limits)
        self.body = self._compile_block(program.body, in_kernel=False)

    # -- setup --
    def _allocate(self, inputs: dict[str, np.ndarray]) -> None:
        total = check_gm_budget(self.program, self.limits, self.numerics)
        for tid, t in enumerate(self.program.tensors.values()):
            data = None
            if t.name in inputs:
                data = inputs[t.name]
            elif self.numerics:
                data = poison(t.shape, t.dtype) if t.role == "scratch" else np.zeros(t.shape, np_dtype(t.dtype))
            tensor = GMTensor(t.name, t.shape, t.dtype, data, tid, arriving=self.arriving.get(t.name))
            self.gm_shapes[tid] = (t.shape, t.dtype)
            if t.role == "input":
                self.readonly.add(tid)
            self.tensors[t.name] = tensor
            self.env[t.name] = tensor
            self.kinds[t.name] = "value"
        self.gm_bytes = total

    def run(self) -> Execution:
        for f in self.body:
            f()
        return Execution(
            program=self.program.name,
            preset=self.program.preset,
            tensors={n: FinalTensor(n, t.shape, t.dtype, t.data) for n, t in self.tensors.items()},
            tasks=self.tasks,
            instrs=self.instrs,
            scopes=self.scopes,
            numerics=self.numerics,
            loop_iterations=self.iterations,
            op_count=sum(len(t.ops) for t in self.tasks),
            gm_shapes=self.gm_shapes,
            estimated_tasks=self.estimated_tasks,
            estimated_ops=self.estimated_ops,
        )

    # -- errors --
    def _context(self) -> str:
        return ", ".join(f"{v}={self.env[v]}" for v in self.loop_vars if v in self.env)

    def error(self, instr: Instr, message: str) -> ProgramError:
        ctx = self._context()
        return ProgramError(f"{message}" + (f" (at {ctx})" if ctx else ""), instr.loc)

    def undefined(self, instr: Instr, exc: KeyError) -> Exception:
        """A name the program defines, looked up where the run has not assigned it (only in an `if` branch not
        taken or a loop that ran no iterations), as a located error; any other KeyError is a bug."""
        name = exc.args[0] if exc.args else None
        if isinstance(name, str) and name in self.kinds and name not in self.env:
            return self.error(instr, f"{name!r} has no value when this line runs: it is assigned only in an 'if' "
                                     "branch not taken or in a loop that ran no iterations")
        return exc

    def located(self, instr: Instr, what: str, exc: Exception) -> ProgramError:
        """A Python-level failure while running an instruction, as a located program error."""
        if isinstance(exc, ZeroDivisionError):
            return self.error(instr, f"{what}: division by zero")
        return self.error(instr, f"{what}: {exc}")

    # -- compiling --
    def _register(self, instr: Instr, op: str) -> int:
        self.instrs.append(InstrInfo(instr.loc, instr.text, op, self.stages[-1]))
        self.iid_of[id(instr)] = len(self.instrs) - 1
        return len(self.instrs) - 1

    def _compile_block(self, instrs: list[Instr], in_kernel: bool) -> list[Run]:
        return [self._compile(i, in_kernel) for i in instrs]

    def _compile(self, instr: Instr, in_kernel: bool) -> Run:
        if isinstance(instr, OpCall):
            scalar = self.scalar_function(instr)
            return self._compile_op(instr, in_kernel) if scalar is None else self._compile_scalar(scalar)
        if isinstance(instr, ScalarAssign):
            return self._compile_scalar(instr)
        if isinstance(instr, ForLoop):
            return self._compile_for(instr, in_kernel)
        if isinstance(instr, IfBlock):
            return self._compile_if(instr, in_kernel)
        if isinstance(instr, ScopeBlock):
            return self._compile_scope(instr, in_kernel)
        if isinstance(instr, KernelBlock):
            if in_kernel:
                raise ProgramError("an incore block cannot be nested in another", instr.loc)
            return self._compile_kernel(instr)
        if isinstance(instr, ManualBlock):
            if in_kernel:
                raise ProgramError("a manual scope belongs to orchestration, not inside a kernel", instr.loc)
            return self._compile_manual(instr)
        if isinstance(instr, TaskIdsAssign):
            return self._compile_task_ids(instr)
        if isinstance(instr, TaskArray):
            return self._compile_task_array(instr)
        if isinstance(instr, ExternCall):
            return self._compile_extern(instr, in_kernel)
        raise AssertionError(type(instr))

    def scalar_function(self, instr: OpCall) -> ScalarAssign | None:
        """`n = abs(k - 1)`, `r = sqrt(h)`: a tile op that is also an expression function (abs, sqrt), applied
        to scalars, is the scalar function: names resolve by their kind, as `a = b` does. None for an op that
        names a tile or tensor."""
        if instr.spec.name not in FUNCTIONS or instr.target is None or \
                any(isinstance(node, ast.Name) and self.kinds.get(node.id) == "value" for node in instr.args.values()):
            return None
        args = [instr.args[p.name] for p in instr.spec.params]
        call = ast.copy_location(ast.Call(func=ast.Name(instr.spec.name, ast.Load()), args=args, keywords=[]), args[0])
        return ScalarAssign(instr.loc, instr.text, instr.target, call)

    def _define(self, name: str, kind: str, instr: Instr) -> None:
        old = self.kinds.get(name)
        if old is not None and old != kind:
            what = {"scalar": "a scalar", "value": "a tile or tensor", "tid": "a task id",
                    "tids": "a task-id array"}
            raise ProgramError(f"{name!r} is {what[old]} elsewhere; it cannot also be {what[kind]}", instr.loc)
        if name in self.program.consts:
            raise ProgramError(f"{name!r} is a param or let and cannot be assigned", instr.loc)
        self.kinds[name] = kind
        if kind == "scalar":
            self.compiler.runtime_names.add(name)

    def _expr(self, node: ast.AST | Any, instr: Instr) -> Expr:
        if isinstance(node, ast.Name) and self.kinds.get(node.id) == "value":
            raise ProgramError(f"{node.id!r} is a tile or tensor, a scalar is needed here", instr.loc)
        if isinstance(node, ast.AST):
            return self.compiler.compile_node(node, instr.text, instr.loc)
        return self.compiler.compile_text(node, instr.loc)

    def _compile_read(self, name: str, indices: list[Expr], loc: Location) -> Callable[[dict], Any]:
        if self.kinds.get(name) != "value":
            raise ProgramError(f"read: {name!r} is not a tensor", loc)
        fns = [e.fn for e in indices]

        def read(env: dict) -> Any:
            try:
                target = env[name]
            except KeyError:
                raise ProgramError(f"read: {name!r} has no value when this line runs: it is assigned only in an "
                                   "'if' branch not taken or in a loop that ran no iterations", loc) from None
            if isinstance(target, Tile):
                raise ProgramError("read: reading a tile inside a kernel is not supported", loc)
            view = as_view(target)
            idx = tuple(f(env) for f in fns)
            if len(idx) != len(view.shape) or any(not 0 <= i < d for i, d in zip(idx, view.shape, strict=True)):
                raise ProgramError(f"read: index {list(idx)} is outside {name} of shape {fmt_shape(view.shape)}", loc)
            arrived(view.tensor)
            data = view.tensor.data
            writer = None if self.numerics else self.written.get(view.tensor.tid)
            if writer is not None:
                raise NeedsNumerics(f"read: {name} is written by kernel {writer} before this read; its values exist "
                                    "only in a run with numerics (drop --no-numerics)", loc)
            if data is None:
                raise NeedsNumerics(f"read: {name} holds no values in a timing-only run (it is not an input); its "
                                    "values exist only in a run with numerics (drop --no-numerics)", loc)
            value = data[tuple(o + i for o, i in zip(view.offset, idx, strict=True))]
            return int(value) if view.dtype in INT_DTYPES else float(value)

        return read

    def _compile_scalar(self, instr: ScalarAssign) -> Run:
        if isinstance(instr.expr, ast.Name) and self.kinds.get(instr.expr.id) in ("value", "tid", "tids"):
            return self._compile_alias(instr, instr.expr.id)
        expr = self._expr(instr.expr, instr)
        self._define(instr.target, "scalar", instr)
        fn, env, target = expr.fn, self.env, instr.target

        def run() -> None:
            try:
                value = fn(env)
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "expression", exc) from None
            if value.__class__ is int and not INT_MIN <= value <= INT_MAX:
                raise self.error(instr, f"{target} = {shown(value)} does not fit in a 64-bit integer")
            env[target] = value

        return run

    def _compile_alias(self, instr: ScalarAssign, source: str) -> Run:
        """`a = b` where b is a tile, tensor, task id or task-id array: a second name for the same value (no data
        moves; setting an element of an array through either name sets it for both)."""
        self._define(instr.target, self.kinds[source], instr)
        env, target = self.env, instr.target

        def run() -> None:
            try:
                env[target] = env[source]
            except KeyError as exc:
                raise self.undefined(instr, exc) from None

        return run

    def _int_range(self, instr: ForLoop) -> Callable[[], range]:
        exprs = [self._expr(a, instr) for a in instr.range_args]
        env = self.env

        def rng() -> range:
            values = [e.fn(env) for e in exprs]
            if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
                raise self.error(instr, f"range arguments must be integers, got {shown(values)}")
            if any(not INT_MIN <= v <= INT_MAX for v in values):
                raise self.error(instr, f"range arguments must be 64-bit integers, got {shown(values)}")
            if len(values) == 3 and values[2] == 0:
                raise self.error(instr, "range step must not be zero")
            return range(*values)

        return rng

    def _compile_for(self, instr: ForLoop, in_kernel: bool) -> Run:
        rng_fn = self._int_range(instr)
        self._define(instr.var, "scalar", instr)
        if instr.stages > 1 and not in_kernel:
            raise ProgramError("pipeline(...) gives a kernel's tiles buffer slots: use it inside an 'incore:' block",
                               instr.loc)
        self.stages.append(instr.stages if instr.stages > 1 else self.stages[-1])
        try:
            body = self._compile_block(instr.body, in_kernel)
        finally:
            self.stages.pop()
        env, var = self.env, instr.var
        chained = self._chained(instr, body) if in_kernel and self.numerics else None

        def run() -> None:
            try:
                rng = rng_fn()
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "loop", exc) from None
            n = trip_count(rng)  # len() fails beyond 2**63 iterations
            if n > self.limits.max_loop_iterations:
                raise self.error(
                    instr, f"loop of {n} iterations exceeds the limit of {self.limits.max_loop_iterations} "
                    "(raise it with --max-loop-iterations)"
                )
            if self.first_only:
                rng = rng[:1]
            self.iterations += min(n, len(rng))
            if self.iterations > self.limits.max_loop_iterations:
                raise self.error(
                    instr, f"the run exceeds {self.limits.max_loop_iterations} loop iterations in total "
                    "(raise it with --max-loop-iterations)"
                )
            before = self._estimate() if self.first_only else (0, 0)
            self.loop_vars.append(var)
            try:
                if chained is not None:
                    chained.chain = []
                for v in rng:
                    env[var] = v
                    for f in body:
                        f()
                if chained is not None:
                    chained.finish_chain()
            finally:
                self.loop_vars.pop()
                if chained is not None:
                    chained.chain = None
            if self.first_only and n > 1:
                self._extrapolate(before, n)

        return run

    @staticmethod
    def _chained(instr: ForLoop, body: list[Run]) -> ComputeOp | None:
        """The accumulating op of a kernel loop whose values can all wait for the loop's end (with numerics): a
        body of scalar assignments, loads and one op with a chain_compute (matmul_acc) that feeds its result
        back as its first operand, a name no other instruction of the body reads or assigns. Its records are
        made as each iteration runs; its values are computed together when the loop ends (ComputeOp.defer)."""
        ops = [(i, f) for i, f in zip(instr.body, body, strict=True) if isinstance(f, ComputeOp)]
        if len(ops) != 1 or ops[0][1].spec.chain_compute is None or ops[0][1].scalars or ops[0][1].shapes:
            return None
        acc_instr, op = ops[0]
        name = acc_instr.target
        if name is None or op.values[0][1] != name or any(var == name for _, var in op.values[1:]):
            return None
        for other in instr.body:
            if other is acc_instr:
                continue
            if isinstance(other, OpCall) and other.spec.lowering == "slice":
                nodes = [v for v in other.args.values() if isinstance(v, ast.AST)]
            elif isinstance(other, ScalarAssign):
                nodes = [other.expr]
            else:
                return None
            if other.target == name or any(isinstance(n, ast.Name) and n.id == name
                                           for node in nodes for n in ast.walk(node)):
                return None
        return op

    def _estimate(self) -> tuple[int, int]:
        """(tasks, ops) estimated so far, the ops of the kernel being built included."""
        if self.task is not None:
            return self.estimated_tasks, len(self.task.ops) + self.kernel_extra_ops
        return self.estimated_tasks, self.estimated_ops

    def _extrapolate(self, before: tuple[int, int], n: int) -> None:
        """After the one iteration the quick pass runs of an n-iteration loop: count it n times."""
        tasks, ops = self._estimate()
        if self.task is not None:
            self.kernel_extra_ops += (ops - before[1]) * (n - 1)
        else:
            self.estimated_tasks += (tasks - before[0]) * (n - 1)
            self.estimated_ops += (ops - before[1]) * (n - 1)

    def _compile_if(self, instr: IfBlock, in_kernel: bool) -> Run:
        cond = self._expr(instr.cond, instr).fn
        then = self._compile_block(instr.then, in_kernel)
        orelse = self._compile_block(instr.orelse, in_kernel)
        env = self.env

        def run() -> None:
            try:
                taken = cond(env)
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "condition", exc) from None
            for f in then if taken else orelse:
                f()

        return run

    def _compile_scope(self, instr: ScopeBlock, in_kernel: bool) -> Run:
        body = self._compile_block(instr.body, in_kernel)

        def run() -> None:
            path = "/".join([*self.scope_stack, instr.name])
            if path not in self.scopes:
                self.scopes.append(path)
            self.scope_stack.append(instr.name)
            try:
                for f in body:
                    f()
            finally:
                self.scope_stack.pop()

        return run

    def _task_ids(self, names: list[str], instr: Instr,
                  indices: list[ast.expr | None] | None = None) -> Callable[[], frozenset[int]]:
        """The dispatches a list of task-id names stands for, at run time: a task id, a task-id array (all of its
        elements), or (`indices[k]` given) the element of array k at that index."""
        picks = [self._element(n, i, instr) if i is not None else None
                 for n, i in zip(names, indices or [None] * len(names), strict=True)]
        for n, pick in zip(names, picks, strict=True):
            if pick is None and self.kinds.get(n) not in ("tid", "tids"):
                hint = "" if n in self.kinds else " (no task id of that name is bound before this line)"
                raise ProgramError(f"{n!r} is not a task id{hint}", instr.loc)
        whole = [self.kinds[n] == "tids" and pick is None for n, pick in zip(names, picks, strict=True)]
        env = self.env

        def get() -> frozenset[int]:
            out: frozenset[int] = frozenset()
            for n, pick, all_of in zip(names, picks, whole, strict=True):
                try:
                    out = out.union(*env[n]) if all_of else out | (env[n] if pick is None else env[n][pick()])
                except KeyError as exc:
                    raise self.located(instr, "deps", exc) from None
            return out

        return get

    def _element(self, array: str, index: ast.expr, instr: Instr) -> Callable[[], int]:
        """The checked run-time index of an element of task-id array `array`."""
        if self.kinds.get(array) != "tids":
            raise ProgramError(f"{array!r} is not a task-id array (task_array(n))", instr.loc)
        fn, env = self._expr(index, instr).fn, self.env

        def pick() -> int:
            try:
                i = fn(env)
                n = len(env[array])
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "task-id array index", exc) from None
            except KeyError as exc:
                raise self.undefined(instr, exc) from None
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
                raise self.error(instr, f"index {shown(i)} is outside task-id array {array} of {n} elements")
            return i

        return pick

    def _compile_task_ids(self, instr: TaskIdsAssign) -> Run:
        get = self._task_ids(instr.sources, instr, instr.source_indices or None)
        env, target = self.env, instr.target
        if instr.index is None:
            self._define(target, "tid", instr)

            def run() -> None:
                env[target] = get()

            return run
        pick = self._element(target, instr.index, instr)

        def run_element() -> None:
            env[target][pick()] = get()

        return run_element

    def _compile_task_array(self, instr: TaskArray) -> Run:
        size = self._expr(instr.size, instr).fn
        self._define(instr.target, "tids", instr)
        env, target = self.env, instr.target

        def run() -> None:
            try:
                n = size(env)
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "task_array size", exc) from None
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= self.limits.max_tasks:
                raise self.error(instr, f"task_array needs a size from 0 to {self.limits.max_tasks}, got {shown(n)}")
            env[target] = [frozenset()] * n

        return run

    def _compile_extern(self, instr: ExternCall, in_kernel: bool) -> Run:
        """A hand-written kernel's call: its task's footprint is the views it is passed (reads and writes as
        annotated) and their bytes are all npusim knows of its work (ExternWork); its results cannot be computed,
        so a run with numerics stops here."""
        if not in_kernel:
            raise ProgramError(f"extern {instr.name} runs as a kernel: put it in an 'incore:' block", instr.loc)
        if self.numerics:
            raise ProgramError(f"{instr.name} is a hand-written kernel (@pl.jit.extern): npusim cannot compute its "
                               "results; run with --no-numerics for its timing", instr.loc)
        self._register(instr, "extern")
        env = self.env

        def footprint(names: list[str], regions: list, what: str) -> int:
            total = 0
            for n in names:
                try:
                    value = env[n]
                except KeyError as exc:
                    raise self.undefined(instr, exc) from None
                if isinstance(value, Tile):
                    raise self.error(instr, f"extern {instr.name}: {n} is a tile; it {what} GM tensors and views")
                view = as_view(value)
                total += math.prod(view.shape) * itemsize(view.dtype)
                hi = tuple([o + d for o, d in zip(view.offset, view.shape, strict=True)])
                if not view.tensor.untracked and 0 not in view.shape:
                    regions.append(view.tensor.region(view.offset, hi))
            return total

        def run() -> None:
            task = self.task
            assert task is not None
            if task.extern is not None or task.ops:
                raise self.error(instr, f"extern {instr.name}: a kernel that calls a hand-written kernel runs only "
                                 "that call")
            reads = footprint(instr.reads, task.reads, "reads")
            writes = footprint(instr.writes, task.writes, "writes")
            task.extern = ExternWork(instr.name, reads, writes, instr.lanes)
            task.core = instr.core

        return run

    def _compile_manual(self, instr: ManualBlock) -> Run:
        body = self._compile_block(instr.body, False)

        def run() -> None:
            if self.manual:
                raise self.error(instr, "a manual scope inside another manual scope (the runtime forbids it)")
            self.manual = True
            try:
                for f in body:
                    f()
            finally:
                self.manual = False

        return run

    def _compile_kernel(self, instr: KernelBlock) -> Run:
        self.l1_names = _matmul_operand_names(instr.body)
        iid = self._register(instr, "incore")
        blocks_fn = self._expr(instr.blocks, instr).fn if instr.blocks is not None else None
        after = self._task_ids(instr.deps, instr)
        if instr.block_var is not None:
            self._define(instr.block_var, "scalar", instr)
        body = self._compile_block(instr.body, in_kernel=True)
        extern = any(isinstance(i, ExternCall) for i in instr.body)  # its task has no ops to replay
        if instr.tid is not None:
            self._define(instr.tid, "tid", instr)
        self.l1_names = set()
        env = self.env

        def run_block(dispatch: int, block: int, blocks: int, waits: tuple[int, ...]) -> None:
            if len(self.tasks) >= self.limits.max_tasks:
                raise self.error(
                    instr, f"the run creates more than {self.limits.max_tasks} tasks (raise it with --max-tasks)"
                )
            scopes = tuple("/".join(self.scope_stack[: i + 1]) for i in range(len(self.scope_stack)))
            name = instr.name or f"{self.scope_stack[-1] if self.scope_stack else 'kernel'}@{instr.loc.line}"
            if extern:
                name = f"{name} (extern)"  # so that no table mistakes it for a modelled kernel
            task = Task(len(self.tasks), name, scopes, iid, self._context(), dispatch=dispatch, block=block,
                        blocks=blocks, after=waits, manual=self.manual)
            if self.replay is None or extern:
                interpret(task)
            else:
                self.replay.kernel(iid, instr.body, task, interpret, finish)
            if instr.split != "none" and task.core == "mix":
                task.ops = split_ops(task.ops, name)
                task.split = instr.split
            self.tasks.append(task)
            self.estimated_tasks += 1
            self.estimated_ops += len(task.ops) + self.kernel_extra_ops
            self.kernel_extra_ops = 0
            if not self.numerics:
                for tid, _, _ in task.writes:
                    self.written[tid] = task.kernel
            if self.progress:
                self.progress(1)

        def split_ops(ops: list, name: str) -> list:
            """One AIV lane's view of the kernel's ops (lower.lane_ops), once per distinct op list."""
            cached = self.lane_cache.get(id(ops))
            if cached is not None and cached[0] is ops:
                return cached[1]
            try:
                lanes = lane_ops(ops, instr.split)
            except ValueError as exc:
                raise self.error(instr, f"kernel {name}: split={instr.split}: {exc}") from None
            self.lane_cache[id(ops)] = (ops, lanes)
            return lanes

        def interpret(task: Task, summarise: bool = True) -> tuple[list, list]:
            """Run the body into `task`; returns its footprint as recorded, before coalescing. `summarise`
            False leaves the footprint uncoalesced and the core kind unset, for a record about to be replaced
            by its template's (replay.py: with numerics); `finish` does it otherwise."""
            self.task = task
            try:
                for f in body:
                    f()
            finally:
                self.task = None
            raw = (task.reads, task.writes)
            if summarise:
                finish(task)
            return raw

        def finish(task: Task) -> None:
            task.reads = coalesce(task.reads)
            task.writes = coalesce(task.writes)
            if task.extern is None:
                task.core = core_kind(task.ops)
            elif task.ops:
                raise self.error(instr, f"kernel {task.kernel}: a kernel that calls a hand-written kernel "
                                 f"({task.extern.name}) runs only that call")

        def run() -> None:
            waits = tuple(sorted(after()))
            dispatch = self.dispatches
            self.dispatches += 1
            if blocks_fn is None:
                run_block(dispatch, 0, 1, waits)
            else:
                try:
                    blocks = blocks_fn(env)
                except RUNTIME_ERRORS as exc:
                    raise self.located(instr, "blocks", exc) from None
                if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 0:
                    raise self.error(instr, f"an SPMD dispatch needs a block count >= 0, got {blocks!r}")
                n = blocks
                if self.first_only:
                    blocks = min(blocks, 1)
                before = self._estimate() if self.first_only else (0, 0)
                var = instr.block_var
                if var is not None:
                    self.loop_vars.append(var)
                try:
                    for block in range(blocks):
                        if var is not None:
                            env[var] = block
                        run_block(dispatch, block, blocks, waits)
                finally:
                    if var is not None:
                        self.loop_vars.pop()
                if self.first_only and n > 1:
                    self._extrapolate(before, n)  # the quick pass ran block 0 of n
            if instr.tid is not None:
                env[instr.tid] = frozenset({dispatch})

        return run

    # -- ops --
    def _compile_op(self, instr: OpCall, in_kernel: bool) -> Run:
        spec = instr.spec
        if spec.where == "kernel" and not in_kernel:
            raise ProgramError(f"{spec.name} runs inside a kernel: put it in an 'incore:' block", instr.loc)
        if spec.where == "orchestration" and in_kernel:
            raise ProgramError(f"{spec.name} is an orchestration op and cannot appear inside 'incore:'", instr.loc)
        args = self._compile_args(instr)
        iid = self._register(instr, spec.name)
        if spec.lowering == "create_tensor":
            run = self._op_create_tensor(instr, args)
        elif spec.lowering == "slice":
            run = self._op_slice(instr, args, iid, in_kernel)
        elif spec.lowering == "assemble":
            run = self._op_assemble(instr, args, iid)
        elif spec.lowering == "compute" and spec.pipe == "scalar" and not in_kernel:
            run = self._op_gm_reshape(instr, args)  # a metadata-only op on GM: a zero-copy view
        elif spec.lowering == "compute":
            run = ComputeOp(self, instr, args, iid)
        elif spec.lowering == "uninit":
            run = self._op_uninit(instr, args)
        elif spec.lowering == "validshape":
            run = self._op_set_validshape(instr, args)
        else:
            raise AssertionError(f"{spec.name} ({spec.lowering}) is not an instruction")
        if instr.target is not None:
            self._define(instr.target, "value", instr)
        return run

    def _compile_args(self, instr: OpCall) -> dict[str, tuple[str, Any]]:
        """Each argument as (how, what): ("value", getter), ("scalar", Expr), ("shape", [Expr]), ("const", v)."""
        out: dict[str, tuple[str, Any]] = {}
        for param in instr.spec.params:
            node = instr.args[param.name]
            kind = param.kind
            if not isinstance(node, ast.AST):
                out[param.name] = ("const", node)
            elif kind in ("value", "value_or_scalar") and isinstance(node, ast.Name) \
                    and self.kinds.get(node.id) == "value":
                out[param.name] = ("value", node.id)
            elif kind == "value":
                name = node.id if isinstance(node, ast.Name) else ast.unparse(node)
                hint = "" if (isinstance(node, ast.Name) and node.id in self.kinds) or not isinstance(node, ast.Name) \
                    else " (no tile or tensor of that name is defined before this line)"
                raise ProgramError(f"{instr.spec.name}: {param.name} must be a tile or tensor, got {name!r}{hint}",
                                   instr.loc)
            elif kind in ("value_or_scalar", "scalar"):
                out[param.name] = ("scalar", self._expr(node, instr))
            elif kind in ("shape", "shape_opt", "index"):
                if not isinstance(node, ast.List | ast.Tuple):
                    raise ProgramError(f"{instr.spec.name}: {param.name} must be a list like [a, b]", instr.loc)
                out[param.name] = ("shape", [self._expr(e, instr) for e in node.elts])
            elif kind in ("dtype", "dtype_opt"):
                value = node.id if isinstance(node, ast.Name) else getattr(node, "value", None)
                if value not in NUMPY_DTYPES:
                    raise ProgramError(
                        f"{instr.spec.name}: {param.name} must be one of {', '.join(NUMPY_DTYPES)}, got "
                        f"{ast.unparse(node)!r}",
                        instr.loc,
                    )
                out[param.name] = ("const", value)
            elif kind == "choice":
                value = getattr(node, "value", None)
                if not isinstance(node, ast.Constant) or value not in param.choices:
                    raise ProgramError(
                        f"{instr.spec.name}: {param.name} must be one of "
                        f"{', '.join(repr(c) for c in param.choices)}, got {ast.unparse(node)}",
                        instr.loc,
                    )
                out[param.name] = ("const", value)
            elif kind == "flag":
                if not isinstance(node, ast.Constant) or not isinstance(node.value, bool):
                    raise ProgramError(f"{instr.spec.name}: {param.name} must be True or False", instr.loc)
                out[param.name] = ("const", node.value)
            else:
                raise AssertionError(kind)
        return out

    def shape_getter(self, exprs: list[Expr], instr: OpCall, what: str, positive: bool = False
                      ) -> Callable[[], tuple[int, ...]]:
        """A function giving the shape (or offset) a list of expressions denotes, checked to hold integers
        (and positive ones for shapes). Constant lists are checked once, here, before anything runs."""
        def check(shape: tuple[int, ...]) -> tuple[int, ...]:
            if any(d.__class__ is not int for d in shape):
                raise self.error(instr, f"{instr.spec.name}: {what} {shown(list(shape))} must hold integers")
            if positive and any(d < 1 for d in shape):
                raise self.error(instr, f"{instr.spec.name}: {what} {shown(list(shape))} must be positive")
            if positive and not 1 <= len(shape) <= MAX_DIMS:
                raise self.error(instr, f"{instr.spec.name}: {what} {shown(list(shape))} must have 1 to {MAX_DIMS} "
                                        "dimensions")
            return shape

        if all(e.is_const for e in exprs):
            const = check(tuple(e.const for e in exprs))
            return lambda: const
        fns, env = [e.fn for e in exprs], self.env
        return lambda: check(tuple([f(env) for f in fns]))

    def _op_create_tensor(self, instr: OpCall, args: dict) -> Run:
        get_shape = self.shape_getter(args["shape"][1], instr, "shape", positive=True)
        dtype = args["dtype"][1]
        fill = args["fill"][1] if args["fill"][0] == "scalar" else None
        untracked = bool(args["untracked"][1])
        env = self.env
        target = instr.target
        if target is None:
            raise ProgramError("create_tensor must assign its result to a name", instr.loc)

        def run() -> None:
            try:
                shape = get_shape()
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "create_tensor", exc) from None
            self.gm_bytes += math.prod(shape) * itemsize(dtype)
            if self.gm_bytes > self.limits.max_gm_bytes:
                raise self.error(
                    instr, f"create_tensor: GM use would reach {self.gm_bytes} bytes, over the limit of "
                    f"{self.limits.max_gm_bytes} (raise it with --max-gm-bytes)"
                )
            data = None
            if self.numerics:
                if fill is None:
                    data = poison(shape, dtype)
                else:
                    try:
                        data = numerics.full(shape, dtype, fill.fn(env))
                    except RUNTIME_ERRORS as exc:
                        raise self.located(instr, "create_tensor", exc) from None
            self.env[target] = GMTensor(target, shape, dtype, data, self.next_tid, untracked)
            self.gm_shapes[self.next_tid] = (shape, dtype)
            self.next_tid += 1

        return run

    def _op_gm_reshape(self, instr: OpCall, args: dict) -> Run:
        """`reshape` of a GM tensor, or of a window contiguous in memory, outside a kernel: the same memory in a
        new shape (PyPTO's tensor.reshape of a GM tensor is a view). Its footprints fall on the base tensor."""
        src_name = args["t"][1]
        get_shape = self.shape_getter(args["shape"][1], instr, "shape", positive=True)
        env, target = self.env, instr.target
        if target is None:
            raise ProgramError("reshape must assign its result to a name", instr.loc)

        def run() -> None:
            try:
                src = env[src_name]
                shape = get_shape()
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "reshape", exc) from None
            if src.__class__ is Tile:
                raise self.error(instr, "reshape: a tile outside a kernel")
            view = as_view(src)
            n = math.prod(view.shape)
            if math.prod(shape) != n:
                raise self.error(instr, f"reshape: cannot view {fmt_shape(view.shape)} ({n} elements) as "
                                        f"{fmt_shape(shape)} ({math.prod(shape)} elements)")
            base = view.tensor
            if dma_runs(base.shape, view.shape)[0] > 1:
                raise self.error(instr, f"reshape: the window {fmt_shape(view.shape)} at {list(view.offset)} of "
                                        f"{base.name} is not contiguous in memory; reshape it inside a kernel")
            start = _linear_index(base.shape, view.offset)
            data = None
            if base.data is not None:
                data = base.data.reshape(-1)[start:start + n].reshape(shape)
            env[target] = GMTensor(target, shape, base.dtype, data, base.tid, base.untracked, base, start,
                                   base.arriving)

        return run

    def _op_uninit(self, instr: OpCall, args: dict) -> Run:
        get_shape = self.shape_getter(args["shape"][1], instr, "shape", positive=True)
        dtype = args["dtype"][1]
        target = instr.target
        if target is None:
            raise ProgramError("uninit must assign its result to a name", instr.loc)

        def run() -> None:
            try:
                shape = get_shape()
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "uninit", exc) from None
            data = poison(shape, dtype) if self.numerics else None
            self.env[target] = Tile(data, tile_sig(shape, dtype), None, -1, self.task.id)  # type: ignore[union-attr]

        return run

    def _op_set_validshape(self, instr: OpCall, args: dict) -> Run:
        """A new valid extent for a tile, no data moved and no op recorded (pypto e2d0f78ae tile_ops.py
        set_validshape: "Update valid-shape metadata of a tile without data movement")."""
        src_name = args["t"][1]
        rows, cols = args["rows"][1], args["cols"][1]
        dynamic = not (rows.is_const and cols.is_const)
        env, target = self.env, instr.target

        def run() -> None:
            try:
                tile = env[src_name]
                valid = (rows.fn(env), cols.fn(env))
            except KeyError as exc:
                raise self.undefined(instr, exc) from None
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "set_validshape", exc) from None
            if tile.__class__ is not Tile or len(tile.shape) != 2:
                raise self.error(instr, f"set_validshape: {src_name} must be a 2-D tile")
            self.own(tile, instr, src_name)
            if any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= d
                   for v, d in zip(valid, tile.shape, strict=True)):
                raise self.error(instr, f"set_validshape: valid shape {shown(list(valid))} does not fit the tile "
                                 f"{fmt_shape(tile.shape)}")
            sig = tile_sig(tile.shape, tile.dtype, valid, dynamic or tile.sig.dynamic)
            if target is not None:
                env[target] = Tile(tile.data, sig, tile.buf, tile.op, tile.owner)

        return run

    def _window(self, instr: OpCall, src_shape: tuple[int, ...], shape: tuple[int, ...],
                offset: tuple[int, ...], what: str) -> None:
        if len(shape) != len(src_shape) or len(offset) != len(src_shape):
            raise self.error(
                instr, f"{instr.spec.name}: {what} is {len(src_shape)}-D but shape {list(shape)} and offset "
                f"{list(offset)} do not match"
            )
        for size, o, d in zip(shape, offset, src_shape, strict=True):
            if o < 0 or o + size > d:
                raise self.error(
                    instr, f"{instr.spec.name}: window {fmt_shape(shape)} at offset {list(offset)} is outside "
                    f"{what} of shape {fmt_shape(src_shape)}"
                )

    def own(self, tile: Tile, instr: OpCall, name: str) -> Tile:
        """Tiles live only inside the kernel execution that made them."""
        task = self.task
        if task is None or tile.owner != task.id:
            raise self.error(instr, f"{instr.spec.name}: tile {name!r} was made in another kernel; "
                              "pass data between kernels through GM tensors")
        return tile

    def _op_slice(self, instr: OpCall, args: dict, iid: int, in_kernel: bool) -> Run:
        src_name = args["t"][1]
        get_shape = self.shape_getter(args["shape"][1], instr, "shape", positive=True)
        get_offset = self.shape_getter(args["offset"][1], instr, "offset")
        valid_arg = args["valid_shape"]
        valid_exprs = valid_arg[1] if valid_arg[0] == "shape" else None
        get_valid = self.shape_getter(valid_exprs, instr, "valid_shape") if valid_exprs else None
        dynamic = valid_exprs is not None and not all(e.is_const for e in valid_exprs)
        env = self.env
        dst_buf = "L1" if instr.target in self.l1_names else "UB"
        target = instr.target

        def run() -> None:
            try:
                src = env[src_name]
                shape = get_shape()
                offset = get_offset()
                valid = get_valid() if get_valid else None
            except KeyError as exc:
                raise self.undefined(instr, exc) from None
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "slice", exc) from None
            if valid is not None and (
                len(valid) != len(shape) or any(not 0 <= v <= d for v, d in zip(valid, shape, strict=True))
            ):
                raise self.error(instr, f"slice: valid_shape {list(valid)} must lie within shape {list(shape)}")
            if src.__class__ is Tile:
                self.own(src, instr, src_name)
                self._window(instr, src.shape, shape, offset, f"tile {src_name}")
                result = self.lower.extract(self.task, src, shape, offset, valid, dynamic, iid)
            else:
                view = as_view(src)
                # a load moves only the valid part: only that must lie inside the tensor (PyPTO's valid_shape
                # window of a partial last tile)
                self._window(instr, view.shape, valid if valid is not None and in_kernel else shape, offset, src_name)
                abs_offset = tuple([a + b for a, b in zip(view.offset, offset, strict=True)])
                if not in_kernel:
                    if valid is not None:
                        raise self.error(instr, "slice: valid_shape applies to loads inside a kernel only")
                    result = GMView(view.tensor, abs_offset, shape)
                else:
                    result = self.lower.load(self.task, view.tensor, abs_offset, shape, valid, dynamic, dst_buf, iid)
            if target is not None:
                env[target] = result

        return run

    def _op_assemble(self, instr: OpCall, args: dict, iid: int) -> Run:
        target_name = args["target"][1]
        source_name = args["source"][1]
        get_offset = self.shape_getter(args["offset"][1], instr, "offset")
        atomic = args["atomic"][1] == "add"
        env = self.env
        result_name = instr.target

        def run() -> None:
            try:
                target = env[target_name]
                source = env[source_name]
                offset = get_offset()
            except KeyError as exc:
                raise self.undefined(instr, exc) from None
            except RUNTIME_ERRORS as exc:
                raise self.located(instr, "assemble", exc) from None
            if source.__class__ is not Tile:
                raise self.error(instr, f"assemble: source {source_name} must be a tile, got a GM tensor "
                                  "(load it with slice first)")
            self.own(source, instr, source_name)
            if source.dtype != target.dtype:
                raise self.error(instr, f"assemble: source is {source.dtype} but {target_name} is "
                                  f"{target.dtype}; cast first")
            if target.__class__ is Tile:
                if atomic:
                    raise self.error(instr, f"assemble: atomic=\"add\" adds into GM; {target_name} is a tile")
                self.own(target, instr, target_name)
                self._window(instr, target.shape, source.shape, offset, f"tile {target_name}")
                result = self.lower.insert(self.task, target, source, offset, iid)
            else:
                written = source.sig.valid
                view = as_view(target)
                if view.tensor.tid in self.readonly:
                    raise self.error(instr, f"assemble: {target_name} is an input tensor (role: input), which "
                                     "kernels only read; declare it inout to write it")
                self._window(instr, view.shape, written, offset, target_name)
                abs_offset = tuple([a + b for a, b in zip(view.offset, offset, strict=True)])
                self.lower.store(self.task, view.tensor, abs_offset, source, written, iid, atomic)
                result = target
            if result_name is not None:
                env[result_name] = result

        return run


def _linear_index(shape: tuple[int, ...], index: tuple[int, ...]) -> int:
    out = 0
    for d, i in zip(shape, index, strict=True):
        out = out * d + i
    return out


def trip_count(r: range) -> int:
    """The number of iterations of a range, however large (len() stops at 2**63 - 1)."""
    if r.step > 0:
        return max(0, (r.stop - r.start + r.step - 1) // r.step)
    return max(0, (r.start - r.stop - r.step - 1) // -r.step)


def _matmul_operand_names(body: list[Instr]) -> set[str]:
    """Names used as matmul operands anywhere in a kernel: their loads go to L1, not UB."""
    names: set[str] = set()
    stack = list(body)
    while stack:
        instr = stack.pop()
        if isinstance(instr, OpCall):
            for param in instr.spec.params:
                node = instr.args.get(param.name)
                if param.buffer in ("L0A", "L0B") and isinstance(node, ast.Name):
                    names.add(node.id)
        for attr in ("body", "then", "orelse"):
            stack.extend(getattr(instr, attr, []))
    return names


def execute(program: Program, inputs: dict[str, np.ndarray], numerics_on: bool = True,
            limits: RunLimits | None = None, first_iterations_only: bool = False,
            progress: Callable[[int], None] | None = None, replay: bool = True,
            copy_inouts: bool = True, arriving: dict[str, Arriving] | None = None) -> Execution:
    """Run `program` on `inputs`. Inout tensors are copied (the originals stay the initial values) unless
    `copy_inouts` is False (nothing reads the initial values afterwards, or the reader has its own snapshot);
    input tensors are shared read-only. `arriving[name]` waits for the values of an input or inout still being
    drawn beside the run: it is called before they are first read or written. `replay=False` interprets every
    kernel execution in full (the replay of timing-only runs gives the same tasks; tests compare the two)."""
    working = {}
    for name, value in inputs.items():
        if numerics_on and program.tensors[name].role == "inout":
            if copy_inouts and arriving and name in arriving:
                arriving[name](None)  # (a copy reads every value)
            working[name] = np.array(value) if copy_inouts else value
        else:
            value.flags.writeable = False
            working[name] = value
    interp = Interpreter(program, working, numerics_on, limits, first_iterations_only, progress, replay, arriving)
    return interp.run()

