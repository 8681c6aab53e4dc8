"""The torch tensors a harness builds, followed as far as their inputs need: shape, dtype and, where npusim can
name it, the distribution of their values (an npusim init rule). A harness that draws its inputs with a
`torch.Generator` and helper functions (`torch.empty(s).normal_(0, std, generator=g) + bias`) is read this way
without running torch: the factories, in-place fills, dtype changes, arithmetic with numbers, broadcasting,
`cat`/`stack`, indexing and the shape queries are followed; a value read back from a tensor (`t[b].item()`) is
an `Opaque` number that arithmetic carries and control flow refuses. Values computed element by element
(`arange`, a loop storing into a tensor, `cos` of a tensor) keep their shape and lose their distribution: such a
tensor needs `--init NAME=RULE` (docs/pypto.md, "Inputs")."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

FLOAT_TYPES = ("float32", "float", "bfloat16", "float16", "half", "float64", "double")
CONVERSIONS = {"float": "float32", "bfloat16": "bfloat16", "half": "float16", "double": "float64", "int": "int32",
               "long": "int64"}
SAME_VALUES = ("contiguous", "clone", "detach", "cpu", "cuda")
ELEMENTWISE = ("cos", "sin", "exp", "log", "sqrt", "rsqrt", "abs", "neg", "sigmoid", "tanh", "round", "floor",
               "ceil", "reciprocal", "square")
MAX_ELEMENTS = 1 << 40


class TorchError(Exception):
    """A torch expression npusim does not follow, and why."""


@dataclass(frozen=True)
class Rule:
    """A distribution npusim can draw: kind (normal, uniform, randint, full, zeros, ones) and its numbers."""

    kind: str
    args: tuple[float, ...] = ()

    def text(self) -> str:
        if self.kind in ("zeros", "ones"):
            return self.kind
        return f"{self.kind}({', '.join(_number(a) for a in self.args)})"

    def shifted(self, c: float) -> Rule | None:
        if self.kind == "normal":
            return Rule("normal", (self.args[0] + c, self.args[1]))
        if self.kind == "uniform":
            return Rule("uniform", (self.args[0] + c, self.args[1] + c))
        if self.kind in ("full", "zeros", "ones"):
            return Rule("full", (self.constant() + c,))
        return None

    def scaled(self, f: float) -> Rule | None:
        if self.kind == "normal":
            return Rule("normal", (self.args[0] * f, self.args[1] * abs(f)))
        if self.kind == "uniform":
            lo, hi = sorted((self.args[0] * f, self.args[1] * f))
            return Rule("uniform", (lo, hi))
        if self.kind in ("full", "zeros", "ones"):
            return Rule("full", (self.constant() * f,))
        return None

    def constant(self) -> float:
        return {"zeros": 0.0, "ones": 1.0}.get(self.kind, self.args[0] if self.args else 0.0)


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


@dataclass
class TorchTensor:
    """A torch tensor of the harness: its shape, torch dtype name, and values' rule (None: not nameable).
    Mutable: a store into an element (`t[i] = v`) makes its values unnameable, as in torch."""

    shape: tuple[int, ...]
    dtype: str
    rule: Rule | None
    why: str = ""  # why `rule` is None

    def lost(self, why: str) -> TorchTensor:
        return TorchTensor(self.shape, self.dtype, None, self.why or why)


@dataclass(frozen=True)
class Opaque:
    """A number read back from a tensor (`t[i].item()`): arithmetic carries it, nothing can test it."""


@dataclass(frozen=True)
class Generator:
    """`torch.Generator()`: seeds change which numbers torch draws, not their distribution."""


@dataclass(frozen=True)
class Method:
    """`tensor.name` (or `generator.name`) about to be called."""

    tensor: TorchTensor | Generator
    name: str


def _shape(args: list[Any], kwargs: dict[str, Any], what: str) -> tuple[int, ...]:
    """`f(2, 3)`, `f([2, 3])`, `f((2, 3))` or `size=...`."""
    dims: Any = kwargs.get("size", args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args)
    if not isinstance(dims, list | tuple) or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise TorchError(f"{what}: the shape must be integers")
    shape = tuple(dims)
    if any(d < 0 for d in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise TorchError(f"{what}: shape {list(shape)} out of range")
    return shape


def _dtype(value: Any, default: str) -> str:
    if value is None:
        return default
    name = getattr(value, "module", "")
    if not name.startswith("torch."):
        raise TorchError("dtype= must be a torch dtype")
    return name.split(".", 1)[1]


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def factory(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """`torch.NAME(*args, **kwargs)` as a harness uses it, or TorchError."""
    dtype = kwargs.get("dtype")
    if name == "Generator":
        return Generator()
    if name in ("zeros", "ones", "empty", "rand", "randn"):
        shape = _shape(args, kwargs, f"torch.{name}")
        rule = {"zeros": Rule("zeros"), "ones": Rule("ones"), "rand": Rule("uniform", (0, 1)),
                "randn": Rule("normal", (0, 1))}.get(name)
        return TorchTensor(shape, _dtype(dtype, "float32"), rule, "" if rule else f"torch.{name} leaves it unset")
    if name == "full":
        if len(args) < 2 or not _num(args[1]):
            raise TorchError("torch.full(shape, number)")
        default = "float32" if isinstance(args[1], float) else "int64"
        return TorchTensor(_shape([args[0]], {}, "torch.full"), _dtype(dtype, default), Rule("full", (args[1],)))
    if name == "randint":
        lo, hi, size = (0, *args) if len(args) == 2 else args if len(args) == 3 else (None, None, None)
        if not (_num(lo) and _num(hi)):
            raise TorchError("torch.randint(low, high, size)")
        return TorchTensor(_shape([size], kwargs, "torch.randint"), _dtype(dtype, "int64"), Rule("randint", (lo, hi)))
    if name == "arange":
        bounds = (0, args[0], 1) if len(args) == 1 else (*args, 1) if len(args) == 2 else tuple(args)
        if len(bounds) != 3 or not all(_num(b) for b in bounds) or bounds[2] == 0:
            raise TorchError("torch.arange(start, end, step) of numbers")
        n = max(0, math.ceil((bounds[1] - bounds[0]) / bounds[2]))
        default = "int64" if all(isinstance(b, int) for b in bounds) else "float32"
        return TorchTensor(_shape([[n]], {}, "torch.arange"), _dtype(dtype, default), None, "torch.arange values")
    if name == "tensor" and args:
        shape, flat = _nested(args[0])
        rule = Rule("full", (flat[0],)) if flat and all(_num(v) and v == flat[0] for v in flat) else None
        default = "float32" if any(isinstance(v, float) for v in flat) else "int64"
        return TorchTensor(shape, _dtype(dtype, default), rule, "" if rule else "torch.tensor of several values")
    if name in ("cat", "concat", "stack") and args and isinstance(args[0], list | tuple):
        return _join(name, list(args[0]), kwargs.get("dim", args[1] if len(args) > 1 else 0))
    if name in ELEMENTWISE and len(args) == 1 and isinstance(args[0], TorchTensor):
        return args[0].lost(f"torch.{name} of a tensor")
    raise TorchError(f"torch.{name}")


def _nested(value: Any) -> tuple[tuple[int, ...], list[Any]]:
    if isinstance(value, list | tuple):
        parts = [_nested(v) for v in value]
        if parts and any(p[0] != parts[0][0] for p in parts):
            raise TorchError("torch.tensor of a ragged list")
        return (len(value), *(parts[0][0] if parts else ())), [x for p in parts for x in p[1]]
    return (), [value]


def _join(name: str, items: list[Any], dim: Any) -> TorchTensor:
    if not items or not all(isinstance(t, TorchTensor) for t in items) or not isinstance(dim, int):
        raise TorchError(f"torch.{name} of tensors along a constant dim")
    first = items[0]
    rank = len(first.shape) + (1 if name == "stack" else 0)
    d = dim % rank if rank else 0
    if name == "stack":
        if any(t.shape != first.shape for t in items):
            raise TorchError("torch.stack of tensors of different shapes")
        shape = (*first.shape[:d], len(items), *first.shape[d:])
    else:
        rest = first.shape[:d] + first.shape[d + 1:]
        if any(len(t.shape) != len(first.shape) or t.shape[:d] + t.shape[d + 1:] != rest for t in items):
            raise TorchError(f"torch.{name} of tensors that do not fit along dim {dim}")
        shape = (*first.shape[:d], sum(t.shape[d] for t in items), *first.shape[d + 1:])
    rule = first.rule if all(t.rule == first.rule for t in items) else None
    return TorchTensor(shape, first.dtype, rule, "" if rule else f"torch.{name} of tensors")


def attribute(t: TorchTensor, name: str) -> Any:
    """`t.shape`, `t.dtype`, `t.ndim`, or a method to call."""
    if name == "shape":
        return t.shape
    if name == "ndim":
        return len(t.shape)
    if name == "dtype":
        from .pyeval import ModuleAlias

        return ModuleAlias(f"torch.{t.dtype}")
    return Method(t, name)


def call_method(m: Method, args: list[Any], kwargs: dict[str, Any]) -> Any:
    t, name = m.tensor, m.name
    if isinstance(t, Generator):
        if name in ("manual_seed", "seed"):
            return t
        raise TorchError(f"generator.{name}()")
    if name == "to" and (args or "dtype" in kwargs):
        target = kwargs.get("dtype", args[0] if args else None)
        if getattr(target, "module", "").startswith("torch."):
            return TorchTensor(t.shape, _dtype(target, t.dtype), t.rule, t.why)
        return t  # a device move
    if name in CONVERSIONS and not args:
        return TorchTensor(t.shape, CONVERSIONS[name], t.rule, t.why)
    if name in SAME_VALUES:
        return t
    if name in ("normal_", "uniform_"):
        defaults = (0.0, 1.0)
        names = ("mean", "std") if name == "normal_" else ("from", "to")
        a = [kwargs.get(k, args[i] if len(args) > i else defaults[i]) for i, k in enumerate(names)]
        if not all(_num(v) for v in a):
            raise TorchError(f"{name} with numbers")
        t.rule, t.why = Rule(name[:-1], (a[0], a[1])), ""
        return t
    if name in ("zero_", "fill_"):
        t.rule, t.why = (Rule("zeros") if name == "zero_" else Rule("full", (args[0],))), ""
        return t
    if name in ELEMENTWISE:
        return t.lost(f".{name}() of a tensor")
    if name == "unsqueeze" and len(args) == 1 and isinstance(args[0], int):
        d = args[0] % (len(t.shape) + 1)
        return TorchTensor((*t.shape[:d], 1, *t.shape[d:]), t.dtype, t.rule, t.why)
    if name in ("reshape", "view"):
        shape = _shape(args, kwargs, f".{name}")
        if -1 in shape or math.prod(shape) != math.prod(t.shape):
            raise TorchError(f".{name} to {list(shape)}")
        return TorchTensor(shape, t.dtype, t.rule, t.why)
    if name in ("size", "numel", "dim"):
        if name == "numel":
            return math.prod(t.shape)
        if name == "dim":
            return len(t.shape)
        return t.shape[args[0]] if args else t.shape
    if name in ("item", "tolist"):
        return Opaque()
    raise TorchError(f".{name}() of a tensor")


def index(t: TorchTensor, idx: Any) -> TorchTensor:
    """`t[i]`, `t[i, j]`, `t[a:b]`: the window's shape (its values follow the same rule)."""
    items = idx if isinstance(idx, tuple) else (idx,)
    shape = list(t.shape)
    out: list[int] = []
    for k, item in enumerate(items):
        if k >= len(shape):
            raise TorchError("too many indices")
        if isinstance(item, slice):
            out.append(len(range(*item.indices(shape[k]))))
        elif not (isinstance(item, int | Opaque) and not isinstance(item, bool)):
            raise TorchError("an index must be a number or a slice")
    return TorchTensor((*out, *shape[len(items):]), t.dtype, t.rule, t.why)


def binop(op: Any, a: Any, b: Any) -> Any:
    """Arithmetic of tensors, numbers and opaque numbers (broadcasting shapes; a rule kept for `t + c`,
    `t - c`, `t * c`, `t / c` with a number c)."""
    if isinstance(a, Opaque | Generator) or isinstance(b, Opaque | Generator):
        if isinstance(a, TorchTensor) or isinstance(b, TorchTensor):
            t = a if isinstance(a, TorchTensor) else b
            return t.lost("arithmetic with a value read back from a tensor")
        return Opaque()
    if not isinstance(a, TorchTensor) and not isinstance(b, TorchTensor):
        raise TorchError("not a tensor expression")
    if isinstance(a, TorchTensor) and isinstance(b, TorchTensor):
        return TorchTensor(_broadcast(a.shape, b.shape), _promote(a.dtype, b.dtype), None, "arithmetic of tensors")
    t, c, tensor_left = (a, b, True) if isinstance(a, TorchTensor) else (b, a, False)
    if not _num(c):
        raise TorchError("arithmetic of a tensor with a non-number")
    dtype = t.dtype if t.dtype in FLOAT_TYPES or isinstance(c, int) else "float32"
    rule: Rule | None = None
    if t.rule is not None:
        if op is operator.add:
            rule = t.rule.shifted(c)
        elif op is operator.sub:
            negated = t.rule.scaled(-1)
            rule = t.rule.shifted(-c) if tensor_left else negated.shifted(c) if negated is not None else None
        elif op is operator.mul:
            rule = t.rule.scaled(c)
        elif op is operator.truediv and tensor_left and c != 0:
            rule = t.rule.scaled(1 / c)
    return TorchTensor(t.shape, dtype, rule, "" if rule else "arithmetic npusim's rules cannot express")


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    n = max(len(a), len(b))
    a2, b2 = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a2, b2, strict=True):
        if x != y and 1 not in (x, y):
            raise TorchError(f"shapes {list(a)} and {list(b)} do not broadcast")
        out.append(max(x, y) if 0 not in (x, y) else 0)
    return tuple(out)


def _promote(a: str, b: str) -> str:
    if a == b:
        return a
    floats = [d for d in (a, b) if d in FLOAT_TYPES]
    return floats[0] if len(floats) == 1 else "float32"
