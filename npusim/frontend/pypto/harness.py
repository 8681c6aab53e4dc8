"""The program's inputs from its own test harness, read statically: `build_tensor_specs` returns
`TensorSpec(name, shape, dtype, init_value=f, is_output=...)` calls, and each `f` (a torch factory, a
number, a nested `def` returning a simple torch expression, possibly under `if flag:`) becomes an npusim
init rule: `torch.rand` -> `uniform(0, 1)`, `torch.randn` -> `normal(0, 1)`, `torch.ones/zeros/full` ->
`ones/zeros/full(v)`, `torch.randint(lo, hi, ...)` -> `randint(lo, hi)`, shifted by `+/- c` and scaled by
`* c` or `/ c`. The values are npusim's seeded draws, not torch's: the distributions match, the numbers do
not. Anything else needs `--init NAME=RULE`, and the error says so. The golden function is never run; a
golden whose program declares the tensors of one of npusim's references is checked by that reference.

Source of the harness conventions: pypto b2104ad64 `python/pypto/runtime/tensor_spec.py` (TensorSpec,
create_tensor) and the seed programs of pypto-lib 8cfb7c05 (docs/pypto.md)."""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

from npusim.errors import Location, ProgramError

from . import optable
from .exprs import literal, to_npusim
from .module import FunctionValue, Harness, ModuleAlias, ModuleModel
from .source import Definition, Folder, FoldError, Scope, Unfoldable
from .torchvalues import TorchTensor


@dataclass(frozen=True)
class Spec:
    """One TensorSpec as the harness states it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    init: str | None  # an npusim init rule, or None when it must come from --init
    why: str  # why `init` is None
    is_output: bool
    loc: Location


@dataclass(frozen=True)
class ScalarSpecValue:
    """One ScalarSpec (pypto-lib HEAD golden/spec.py): a scalar argument of the entry and its value."""

    name: str
    dtype: str
    value: bool | int | float
    loc: Location


@dataclass
class _Dist:
    """A torch expression being translated: a base distribution, then a shift, then a scale."""

    kind: str  # uniform, normal, ones, zeros, full, randint
    args: list[ast.expr]
    scale: ast.expr | None = None
    divide: bool = False


class _NotSimple(Exception):
    pass


class SpecReader:
    def __init__(self, model: ModuleModel, harness: Harness, consts: dict[str, Any]) -> None:
        self.model = model
        self.harness = harness
        self.consts = consts
        self.source = model.source

    def loc(self, node: ast.AST) -> Location:
        return self.source.loc(node)

    # -- names --
    def _is_torch(self, node: ast.AST, scope: Scope) -> bool:
        if not isinstance(node, ast.Name):
            return False
        try:
            value = scope.lookup(node.id)
        except KeyError:
            return node.id == "torch"
        return isinstance(value, ModuleAlias) and value.module == "torch"

    def _torch_attr(self, node: ast.AST, scope: Scope) -> str | None:
        if isinstance(node, ast.Attribute) and self._is_torch(node.value, scope):
            return node.attr
        return None

    def _mentions_torch(self, node: ast.AST, scope: Scope) -> bool:
        return any(self._torch_attr(n, scope) is not None for n in ast.walk(node))

    def number_expr(self, node: ast.expr, scope: Scope) -> ast.expr:
        """A harness expression as an npusim expression over the program's consts (harness locals
        inlined), or its folded value."""
        try:
            value = Folder(scope.lookup).fold(node)
        except FoldError as exc:
            raise _NotSimple(f"`{ast.unparse(node)[:40]}` cannot be computed without running it "
                             f"({exc.reason})") from None
        if not isinstance(value, bool | int | float):
            raise _NotSimple(f"`{ast.unparse(node)[:40]}` is not a number")

        def names(n: ast.Name) -> ast.expr | None:
            d = scope.definition(n.id)
            if d is None or isinstance(d.value, Unfoldable):
                return None
            if n.id in self.consts and self.consts[n.id] == d.value and type(self.consts[n.id]) is type(d.value):
                return ast.Name(n.id, ast.Load())
            if d.expr is not None and not d.overridden:
                return to_npusim(d.expr, names)
            return literal(d.value) if isinstance(d.value, bool | int | float) else None

        expr = to_npusim(node, names)
        return expr if expr is not None else literal(value)

    # -- the spec list --
    def specs(self) -> list[Spec]:
        """The TensorSpecs (ScalarSpecs are left out: `scalar_specs`)."""
        fn, scope = self.harness.fn, self.harness.scope
        calls = self._spec_calls(fn, scope)
        return [self.spec(call, where) for call, where in calls if not _is_scalar_spec(call)]

    def scalar_specs(self) -> list[ScalarSpecValue]:
        fn, scope = self.harness.fn, self.harness.scope
        out = []
        for call, where in self._spec_calls(fn, scope):
            if not _is_scalar_spec(call):
                continue
            args: dict[str, ast.expr] = dict(zip(("name", "dtype", "value"), call.args, strict=False))
            args.update({kw.arg: kw.value for kw in call.keywords if kw.arg})
            if not {"name", "value"} <= set(args):
                raise ProgramError("ScalarSpec(name, dtype, value)", self.loc(call))
            spec_name = self._fold(args["name"], where, "the name")
            value = self._fold(args["value"], where, "the value")
            if not isinstance(spec_name, str) or not isinstance(value, bool | int | float):
                raise ProgramError("a ScalarSpec needs a string name and a number value npusim can read statically",
                                   self.loc(call))
            dtype_attr = self._torch_attr(args["dtype"], where) if "dtype" in args else None
            out.append(ScalarSpecValue(spec_name, optable.TORCH_DTYPES.get(dtype_attr or "", "int32"), value,
                                       self.loc(call)))
        return out

    def _spec_calls(self, fn: ast.FunctionDef, scope: Scope) -> list[tuple[ast.Call, Scope]]:
        """Each TensorSpec / ScalarSpec call with the scope it is read in: the harness's, or for
        `[TensorSpec(n, ...) for n in NAMES]` one per item, `n` bound to it."""
        out: list[tuple[ast.Call, Scope]] = []
        for e in self._spec_items(fn, scope):
            if isinstance(e, ast.ListComp) and len(e.generators) == 1 and not e.generators[0].ifs \
                    and isinstance(e.generators[0].target, ast.Name):
                items = self._fold(e.generators[0].iter, scope, "the names a spec comprehension runs over")
                for item in items if isinstance(items, list | tuple) else ():
                    inner = Scope(parent=scope)
                    inner.define(Definition(e.generators[0].target.id, None, item, self.loc(e), "local"))
                    out.append((self._spec_call(e.elt), inner))
                continue
            out.append((self._spec_call(e), scope))
        return out

    def _spec_call(self, e: ast.expr) -> ast.Call:
        if not (isinstance(e, ast.Call) and ast.unparse(e.func).split(".")[-1] in ("TensorSpec", "ScalarSpec")):
            raise ProgramError(f"expected TensorSpec(...), got `{ast.unparse(e)[:50]}`", self.loc(e))
        return e

    def _spec_items(self, fn: ast.FunctionDef, scope: Scope) -> list[ast.expr]:
        returned = [s for s in fn.body if isinstance(s, ast.Return) and s.value is not None]
        if not returned:
            raise ProgramError(f"{fn.name} returns no list of TensorSpecs", self.loc(fn))
        value = returned[-1].value
        assert value is not None
        if isinstance(value, ast.Name):  # specs = [...]; specs.append(...); return specs
            items: list[ast.expr] = []
            for s in fn.body:
                if isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == value.id for t in s.targets) \
                        and isinstance(s.value, ast.List | ast.ListComp):
                    items = list(s.value.elts) if isinstance(s.value, ast.List) else [s.value]
                elif isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) \
                        and isinstance(s.value.func, ast.Attribute) and s.value.func.attr == "append" \
                        and isinstance(s.value.func.value, ast.Name) and s.value.func.value.id == value.id:
                    items.extend(s.value.args)
            elts = items
        elif isinstance(value, ast.List | ast.Tuple):
            elts = list(value.elts)
        else:
            raise ProgramError(f"{fn.name} must return a list of TensorSpec(...) calls npusim can read "
                               f"statically, got `{ast.unparse(value)[:50]}`", self.loc(value))
        return elts

    def spec(self, call: ast.Call, scope: Scope) -> Spec:
        names = ("name", "shape", "dtype", "init_value", "is_output")
        args: dict[str, ast.expr] = dict(zip(names, call.args, strict=False))
        for kw in call.keywords:
            if kw.arg not in names:
                raise ProgramError(f"TensorSpec has no argument {kw.arg!r} npusim reads", self.loc(kw.value))
            args[kw.arg] = kw.value
        for required in ("name", "shape", "dtype"):
            if required not in args:
                raise ProgramError(f"TensorSpec needs {required}", self.loc(call))
        spec_name = self._fold(args["name"], scope, "the name")
        if not isinstance(spec_name, str):
            raise ProgramError("a TensorSpec's name must be a string", self.loc(args["name"]))
        shape = self._fold(args["shape"], scope, "the shape")
        if not isinstance(shape, tuple | list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                                          for d in shape):
            raise ProgramError(f"TensorSpec {spec_name!r}: the shape must be a list of integers",
                               self.loc(args["shape"]))
        dtype_attr = self._torch_attr(args["dtype"], scope)
        if dtype_attr is None:  # `dtype` a harness variable (torch.X) or `inputs[name].dtype`
            try:
                folded = Folder(scope.lookup).fold(args["dtype"])
            except FoldError:
                folded = None
            if isinstance(folded, ModuleAlias) and folded.module.startswith("torch."):
                dtype_attr = folded.module.split(".", 1)[1]
        if dtype_attr not in optable.TORCH_DTYPES:
            raise ProgramError(f"TensorSpec {spec_name!r}: dtype `{ast.unparse(args['dtype'])}` is not supported "
                               f"(npusim has {', '.join(sorted(set(optable.TORCH_DTYPES.values())))})",
                               self.loc(args["dtype"]))
        is_output = False
        if "is_output" in args:
            is_output = bool(self._fold(args["is_output"], scope, "is_output"))
        init, why = None, ""
        if is_output:
            init = "zeros"  # PyPTO's create_tensor: an output starts at zero whatever init_value says
        elif "init_value" not in args or (isinstance(args["init_value"], ast.Constant)
                                          and args["init_value"].value is None):
            init = "zeros"
        else:
            try:
                init = self.init_rule(args["init_value"], scope)
            except _NotSimple as exc:
                why = str(exc)
        return Spec(spec_name, tuple(shape), optable.TORCH_DTYPES[dtype_attr], init, why, is_output, self.loc(call))

    def _fold(self, node: ast.expr, scope: Scope, what: str) -> Any:
        try:
            return Folder(scope.lookup).fold(node)
        except FoldError as exc:
            raise ProgramError(f"TensorSpec: {what} cannot be computed without running the harness "
                               f"({exc.reason})", self.loc(node)) from None

    # -- init values --
    def init_rule(self, node: ast.expr, scope: Scope) -> str:
        if isinstance(node, ast.Subscript | ast.Attribute | ast.Name):  # a tensor the harness built (torchvalues)
            try:
                value = Folder(scope.lookup).fold(node)
            except FoldError:
                value = None
            if isinstance(value, TorchTensor):
                if value.rule is None:
                    raise _NotSimple(f"`{ast.unparse(node)[:40]}` holds {value.why or 'values npusim cannot name'}")
                return value.rule.text()
        factory = self._torch_attr(node, scope)
        if factory is not None:  # init_value=torch.randn: called as fn(shape, dtype=dtype)
            base = {"randn": "normal(0, 1)", "rand": "uniform(0, 1)", "zeros": "zeros", "ones": "ones"}
            if factory not in base:
                raise _NotSimple(f"the factory torch.{factory}")
            return base[factory]
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value,
                                                                                                    bool):
            return f"full({ast.unparse(literal(node.value))})"
        if isinstance(node, ast.Lambda):
            return self.rule_text(self.dist(node.body, scope))
        if isinstance(node, ast.Name):
            d = scope.definition(node.id)
            if d is not None and isinstance(d.value, FunctionValue):
                return self.rule_text(self.function_body(d.value.node, scope))
            if d is not None and d.expr is not None:
                return self.rule_text(self.dist(d.expr, scope))
            if d is not None and isinstance(d.value, int | float) and not isinstance(d.value, bool):
                return f"full({ast.unparse(literal(d.value))})"
        raise _NotSimple(f"init_value `{ast.unparse(node)[:50]}`")

    def function_body(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope) -> _Dist:
        """`def init(): [if FLAG: return A] return B`, the branch chosen with this run's params."""
        if fn.args.args or fn.args.kwonlyargs or fn.args.vararg or fn.args.kwarg:
            raise _NotSimple(f"init function {fn.name} takes arguments")
        for s in fn.body:
            if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
                continue
            if isinstance(s, ast.Return) and s.value is not None:
                return self.dist(s.value, scope)
            if isinstance(s, ast.If) and all(isinstance(b, ast.Return) for b in s.body) \
                    and all(isinstance(b, ast.Return) for b in s.orelse):
                try:
                    taken = Folder(scope.lookup).fold(s.test)
                except FoldError as exc:
                    raise _NotSimple(f"`if {ast.unparse(s.test)[:40]}` in {fn.name} ({exc.reason})") from None
                branch = s.body if taken else s.orelse
                if branch:
                    return self.dist(branch[0].value, scope)  # type: ignore[union-attr, arg-type]
                continue
            raise _NotSimple(f"init function {fn.name} does more than return an expression (line {s.lineno})")
        raise _NotSimple(f"init function {fn.name} returns nothing")

    def dist(self, node: ast.expr | None, scope: Scope) -> _Dist:
        if node is None:
            raise _NotSimple("an empty init")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not node.args \
                and node.func.attr in ("float", "bfloat16", "half", "to", "contiguous", "clone"):
            return self.dist(node.func.value, scope)  # a dtype change: the spec's dtype governs
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "to":
            return self.dist(node.func.value, scope)
        if isinstance(node, ast.Call):
            return self.torch_call(node, scope)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Add | ast.Sub):
                if self._mentions_torch(node.left, scope):
                    d, c, sign = self.dist(node.left, scope), node.right, 1
                else:
                    d, c, sign = self.dist(node.right, scope), node.left, -1 if isinstance(node.op, ast.Sub) else 1
                    if sign == -1:
                        raise _NotSimple("`c - torch...` (a negated distribution)")
                if d.scale is not None:
                    raise _NotSimple("a shift after a scale")
                shift = self.number_expr(c, scope)
                op = node.op if sign == 1 else ast.Add()
                return self.shifted(d, shift, op)
            if isinstance(node.op, ast.Mult | ast.Div):
                if self._mentions_torch(node.left, scope):
                    d, c = self.dist(node.left, scope), node.right
                elif isinstance(node.op, ast.Mult):
                    d, c = self.dist(node.right, scope), node.left
                else:
                    raise _NotSimple("`c / torch...`")
                factor = self.number_expr(c, scope)
                divide = isinstance(node.op, ast.Div)
                folded = None if divide or d.scale is not None else self.scaled(d, factor)
                if folded is not None:
                    return folded
                if d.scale is None:
                    d.scale, d.divide = factor, divide
                elif d.divide == divide:
                    d.scale = ast.BinOp(d.scale, ast.Mult(), factor)
                else:
                    raise _NotSimple("a multiplication and a division together")
                return d
        raise _NotSimple(f"`{ast.unparse(node)[:50]}`")

    @staticmethod
    def scaled(d: _Dist, factor: ast.expr) -> _Dist | None:
        """`X * f` for a literal f folded into X's parameters (so that a shift may follow): U(lo, hi) * f is
        U(lo f, hi f), N(m, s) * f is N(m f, s |f|); None where the arguments are not literals."""
        try:
            f = ast.literal_eval(factor)
            args = [ast.literal_eval(a) for a in d.args]
        except ValueError:
            return None
        if isinstance(f, bool) or not isinstance(f, int | float):
            return None
        if d.kind == "uniform":
            lo, hi = sorted((args[0] * f, args[1] * f))
            return _Dist("uniform", [literal(lo), literal(hi)])
        if d.kind == "normal":
            return _Dist("normal", [literal(args[0] * f), literal(args[1] * abs(f))])
        if d.kind in ("full", "ones"):
            return _Dist("full", [literal((args[0] if args else 1) * f)])
        if d.kind == "zeros":
            return d
        return None

    def shifted(self, d: _Dist, c: ast.expr, op: ast.operator) -> _Dist:
        def add(x: ast.expr) -> ast.expr:
            if isinstance(x, ast.Constant | ast.UnaryOp) and isinstance(c, ast.Constant | ast.UnaryOp):
                try:
                    a = ast.literal_eval(x)
                    b = ast.literal_eval(c)
                    return literal(a + b if isinstance(op, ast.Add) else a - b)
                except ValueError:
                    pass
            return ast.BinOp(x, op, c)
        if d.kind == "uniform":
            return _Dist("uniform", [add(d.args[0]), add(d.args[1])])
        if d.kind == "normal":
            return _Dist("normal", [add(d.args[0]), d.args[1]])
        if d.kind in ("ones", "zeros", "full"):
            base = {"ones": literal(1), "zeros": literal(0)}.get(d.kind) or d.args[0]
            return _Dist("full", [add(base)])
        raise _NotSimple(f"shifting a {d.kind} draw")

    def torch_call(self, call: ast.Call, scope: Scope) -> _Dist:
        fn = self._torch_attr(call.func, scope)
        keywords = {kw.arg: kw.value for kw in call.keywords}
        allowed = {"dtype", "device", "size", "requires_grad"}
        if fn is None or any(k not in allowed for k in keywords):
            raise _NotSimple(f"`{ast.unparse(call)[:50]}`")
        if fn in ("rand", "randn", "ones", "zeros"):
            return _Dist({"rand": "uniform", "randn": "normal", "ones": "ones", "zeros": "zeros"}[fn],
                         [literal(0), literal(1)] if fn in ("rand", "randn") else [])
        if fn == "full":
            if len(call.args) < 2:
                raise _NotSimple("torch.full(shape, value)")
            return _Dist("full", [self.number_expr(call.args[1], scope)])
        if fn == "randint":
            if len(call.args) == 3:
                lo, hi = call.args[0], call.args[1]
            elif len(call.args) == 2:
                lo, hi = ast.Constant(0), call.args[0]
            else:
                raise _NotSimple("torch.randint(lo, hi, shape)")
            return _Dist("randint", [self.number_expr(lo, scope), self.number_expr(hi, scope)])
        if fn == "tensor" and call.args and isinstance(call.args[0], ast.List | ast.Tuple):
            values = {ast.unparse(e) for e in call.args[0].elts}
            if len(values) == 1:
                return _Dist("full", [self.number_expr(call.args[0].elts[0], scope)])
        raise _NotSimple(f"`torch.{fn}(...)`")

    @staticmethod
    def rule_text(d: _Dist) -> str:
        head = d.kind if not d.args and d.kind in ("ones", "zeros") else \
            f"{d.kind}({', '.join(ast.unparse(a) for a in d.args)})"
        if d.scale is None:
            return head
        scale = ast.unparse(d.scale)
        if not isinstance(d.scale, ast.Name | ast.Constant | ast.Call):
            scale = f"({scale})"
        return f"{head} {'/' if d.divide else '*'} {scale}"


def _is_scalar_spec(call: ast.Call) -> bool:
    return ast.unparse(call.func).split(".")[-1] == "ScalarSpec"


# --- goldens npusim has a reference for ---------------------------------------------------------------


@dataclass(frozen=True)
class GoldenMatch:
    """A harness golden npusim can stand in for with one of its references: the program must declare exactly
    these tensors (name -> dtype, role); the reference's constants are derived from the tensors' shapes and
    the program's own constants, as the golden derives them."""

    reference: str
    tensors: dict[str, tuple[str, str]]
    consts: Any  # (shapes: name -> shape, consts) -> the reference's constants, or None if it cannot


def _qwen3_consts(shapes: dict[str, tuple[int, ...]], consts: dict[str, Any]) -> dict[str, Any] | None:
    """The seed golden (pypto-lib 8cfb7c05 qwen3_32b_decode.py golden_qwen3_decode) reads batch, hidden,
    head_dim, max_seq from the tensors, num_kv_heads = wk columns / head_dim, the scale 1/sqrt(head_dim),
    and SEQ_TILE and EPS from the module."""
    eps = consts.get("EPS", consts.get("eps"))
    if "SEQ_TILE" not in consts or eps is None:
        return None
    batch, hidden = shapes["hidden_states"]
    max_seq, head_dim = shapes["rope_cos"]
    return {"batch": batch, "hidden": hidden, "head_dim": head_dim, "max_seq": max_seq,
            "num_kv_heads": shapes["wk"][1] // head_dim, "num_heads": hidden // head_dim,
            "attn_scale": 1.0 / math.sqrt(head_dim), "SEQ_TILE": consts["SEQ_TILE"], "eps": eps}


GOLDENS = [
    GoldenMatch("qwen3_decode", {
        **{n: ("bf16", "input") for n in ("hidden_states", "wq", "wk", "wv", "wo", "w_gate", "w_up", "w_down")},
        **{n: ("fp32", "input") for n in ("input_rms_weight", "rope_cos", "rope_sin", "post_rms_weight")},
        "seq_lens": ("int32", "input"), "k_cache": ("bf16", "inout"), "v_cache": ("bf16", "inout"),
        "out": ("bf16", "output"),
    }, _qwen3_consts),
]


def match_golden(tensors: dict[str, tuple[str, str, tuple[int, ...]]], consts: dict[str, Any]
                 ) -> tuple[str, dict[str, Any]] | None:
    """(reference name, its constants) for a program whose tensors (name -> dtype, role, shape) are exactly
    those of a known golden's, else None."""
    for g in GOLDENS:
        if {n: (t[0], t[1]) for n, t in tensors.items()} == g.tensors:
            derived = g.consts({n: t[2] for n, t in tensors.items()}, consts)
            if derived is not None:
                return g.reference, derived
    return None
