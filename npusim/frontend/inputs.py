"""Initial values of input and inout tensors, from their `init` rules and one seed.

Rules: `uniform(lo, hi)`, `normal(mean, std)`, `ones`, `zeros`, `randint(lo, hi)` (hi exclusive), `full(v)`,
optionally followed by `* EXPR` or `/ EXPR`. Random values are drawn as float32 (or int32 for randint),
transformed in float32 and rounded once to the tensor's dtype (round to nearest even).

Every tensor has its own seed sequence, spawned from the run's seed in declaration order
(`SeedSequence(seed).spawn`), and each chunk of CHUNK_ELEMENTS values its own PCG64 stream below it: the
same seed gives the same bits, a tensor's values do not depend on the other tensors, a timing-only run can
draw just the tensors whose values steer control flow, and chunks fill in parallel, in place, in the
tensor's own dtype.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ml_dtypes
import numpy as np

from npusim.dtypes import FP8_DTYPES, INT_DTYPES, np_dtype
from npusim.errors import ProgramError
from npusim.numerics import cast

from .expressions import ExprCompiler, parse_python
from .program import Program, Tensor

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

CHUNK_ELEMENTS = 1 << 22
PIECE_ELEMENTS = 1 << 18  # values drawn and transformed at a time within a chunk: passes over them stay in cache
_DISTRIBUTIONS = {"uniform": 2, "normal": 2, "randint": 2, "full": 1, "ones": 0, "zeros": 0}


@dataclass(frozen=True)
class InitRule:
    kind: str
    args: tuple[float, ...]
    scale: float = 1.0  # multiply by this after drawing (a `/ EXPR` is stored as its reciprocal's divisor)
    divide: bool = False


def parse_init(tensor: Tensor, program: Program) -> InitRule:
    """Parse a tensor's init string, evaluating its arguments as constant expressions."""
    text = (tensor.init or "").strip()
    tree = parse_python(text, tensor.loc, "eval", program.limits, "init rule").body  # type: ignore[attr-defined]
    compiler = ExprCompiler(program.consts, limits=program.limits)
    scale, divide = 1.0, False
    if isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Mult | ast.Div):
        scale = compiler.compile_node(tree.right, text, tensor.loc).const
        divide = isinstance(tree.op, ast.Div)
        if divide and scale == 0:
            raise ProgramError(f"tensor {tensor.name}: init divides by zero", tensor.loc)
        tree = tree.left
    if isinstance(tree, ast.Name) and tree.id in ("ones", "zeros"):
        kind, arg_nodes = tree.id, []
    elif isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id in _DISTRIBUTIONS:
        kind, arg_nodes = tree.func.id, tree.args
    else:
        raise ProgramError(
            f"tensor {tensor.name}: init {text!r} is not one of uniform(lo, hi), normal(mean, std), ones, "
            "zeros, randint(lo, hi), full(v), optionally followed by '* EXPR' or '/ EXPR'",
            tensor.loc,
        )
    if len(arg_nodes) != _DISTRIBUTIONS[kind]:
        raise ProgramError(f"tensor {tensor.name}: {kind} takes {_DISTRIBUTIONS[kind]} arguments", tensor.loc)
    args = tuple(compiler.compile_node(a, text, tensor.loc).const for a in arg_nodes)
    if kind == "randint":
        if tensor.dtype not in INT_DTYPES or not all(isinstance(a, int) for a in args) or args[0] >= args[1]:
            raise ProgramError(f"tensor {tensor.name}: randint(lo, hi) needs an integer dtype and integers lo < hi",
                               tensor.loc)
        info = np.iinfo(np_dtype(tensor.dtype))
        if not (args[0] >= info.min and args[1] <= info.max + 1) or args[1] > 2**62:
            raise ProgramError(f"tensor {tensor.name}: randint bounds outside {tensor.dtype}", tensor.loc)
    if kind == "normal" and args[1] < 0:
        raise ProgramError(f"tensor {tensor.name}: normal std must be >= 0", tensor.loc)
    rule = InitRule(kind, args, float(scale), divide)
    _check_range(tensor, rule, text)
    return rule


NORMAL_SPAN = 10.0  # normal draws are taken to lie within mean +- 10 std (a float32 draw beyond is below 1e-22)


def _value_range(rule: InitRule) -> tuple[float, float]:
    """The smallest and largest value a rule can draw, after its scale."""
    if rule.kind == "uniform":
        lo, hi = rule.args
    elif rule.kind == "normal":
        lo, hi = rule.args[0] - NORMAL_SPAN * rule.args[1], rule.args[0] + NORMAL_SPAN * rule.args[1]
    else:
        lo = hi = {"ones": 1.0, "zeros": 0.0}.get(rule.kind, rule.args[0] if rule.args else 0.0)
    ends = [lo / rule.scale, hi / rule.scale] if rule.divide else [lo * rule.scale, hi * rule.scale]
    return min(ends), max(ends)


def _check_range(tensor: Tensor, rule: InitRule, text: str) -> None:
    """Every value a rule draws must be a finite number of the tensor's dtype: computed in float32 (the
    operands too) and then rounded to the dtype, or rounded to an int32 (randint's bounds are checked above)."""
    if rule.kind == "randint":
        return
    f32 = float(np.finfo(np.float32).max)
    operands = [*rule.args, rule.scale]
    if rule.kind == "uniform":
        operands.append(rule.args[1] - rule.args[0])
    if any(not np.isfinite(a) or abs(a) > f32 for a in operands):
        raise ProgramError(f"tensor {tensor.name}: init {text!r} needs numbers beyond float32", tensor.loc)
    lo, hi = (float(np.float32(v)) if abs(v) <= f32 else v for v in _value_range(rule))  # as float32 has them
    dtype = np_dtype(tensor.dtype)
    if np.issubdtype(dtype, np.integer):
        limits = (float(np.iinfo(dtype).min), float(np.iinfo(dtype).max))
    else:  # ml_dtypes.finfo knows numpy's floats and bf16 / the FP8 formats (np.finfo refuses those)
        top = float(ml_dtypes.finfo(dtype).max)
        limits = (-top, top)
    if lo < limits[0] or hi > limits[1]:
        raise ProgramError(
            f"tensor {tensor.name}: init {text!r} draws values in [{lo:g}, {hi:g}], beyond {tensor.dtype} "
            f"([{limits[0]:g}, {limits[1]:g}])", tensor.loc)


def _filler(rule: InitRule, rng: np.random.Generator, wide: type = np.int32) -> Callable[[int], np.ndarray]:
    """A function drawing the next n values (float32, or for randint integers of type `wide`: int32, int64
    for an int64 tensor), already scaled."""
    lo, hi = (np.float32(a) for a in (*rule.args, 0.0, 0.0)[:2])
    scale = np.float32(rule.scale)

    def scaled(x: np.ndarray) -> np.ndarray:
        if rule.scale == 1.0:
            return x
        return np.divide(x, scale, out=x) if rule.divide else np.multiply(x, scale, out=x)

    if rule.kind == "uniform":
        def draw(n: int) -> np.ndarray:
            x = _uniform_f32(rng, n)
            np.multiply(x, hi - lo, out=x)
            np.add(x, lo, out=x)
            return scaled(x)
    elif rule.kind == "normal":
        def draw(n: int) -> np.ndarray:
            x = rng.standard_normal(n, dtype=np.float32)
            np.multiply(x, hi, out=x)
            np.add(x, lo, out=x)
            return scaled(x)
    elif rule.kind == "randint":
        def draw(n: int) -> np.ndarray:
            return rng.integers(int(rule.args[0]), int(rule.args[1]), size=n, dtype=wide)
    else:
        value = {"ones": 1.0, "zeros": 0.0}.get(rule.kind, rule.args[0] if rule.args else 0.0)

        def draw(n: int) -> np.ndarray:
            return scaled(np.full(n, value, dtype=np.float32))
    return draw


_UNIT_F32 = np.float32(2.0**-24)  # numpy's float32 uniform: the top 24 bits of a 32-bit draw times 2**-24


def _uniform_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    """rng.random(n, dtype=np.float32), the same values from a PCG64's raw 64-bit outputs: numpy draws a
    float32 from each 32-bit half, the low half first (`next_uint32`), so an even count of them is the
    raw outputs' halves in memory order on a little-endian machine (elsewhere, for an odd count, which leaves a
    half buffered in the generator, and after one, numpy draws them). Twice as fast: the raw outputs skip
    numpy's per-value loop."""
    bits = rng.bit_generator
    if bits.__class__ is not np.random.PCG64 or n % 2 or sys.byteorder != "little" or bits.state["has_uint32"]:
        return rng.random(n, dtype=np.float32)
    halves = bits.random_raw(n // 2).view(np.uint32)
    np.right_shift(halves, 8, out=halves)
    x = halves.astype(np.float32)  # (exact: below 2**24)
    return np.multiply(x, _UNIT_F32, out=x)


def chunk_stream(seed_seq: np.random.SeedSequence, index: int) -> np.random.Generator:
    """The generator of one chunk of a tensor: the tensor's seed sequence extended by the chunk index, so
    chunks can be drawn in any order, on any number of threads, with the same bits."""
    child = np.random.SeedSequence(seed_seq.entropy, spawn_key=(*seed_seq.spawn_key, index))
    return np.random.Generator(np.random.PCG64(child))


def _chunk_filler(tensor: Tensor, rule: InitRule, seed_seq: np.random.SeedSequence, out: np.ndarray
                  ) -> tuple[Callable[[int], None], int]:
    """fill(index), which draws chunk `index` of the tensor's initial value into `out` (C-contiguous, of its
    shape and dtype) in place, in its own dtype; and how many chunks there are."""
    flat = out.reshape(-1)

    def fill(index: int) -> None:
        start = index * CHUNK_ELEMENTS
        end = min(start + CHUNK_ELEMENTS, flat.size)
        draw = _filler(rule, chunk_stream(seed_seq, index), np.int64 if tensor.dtype == "int64" else np.int32)
        for lo in range(start, end, PIECE_ELEMENTS):  # the stream goes on across draws: the values of one draw
            values = draw(min(PIECE_ELEMENTS, end - lo))
            if tensor.dtype in INT_DTYPES:
                if values.dtype.kind == "f":
                    values = np.rint(values)
                info = np.iinfo(out.dtype)
                values = np.clip(values, info.min, info.max)
            elif tensor.dtype in FP8_DTYPES:  # the saturating rounding of a cast, not ml_dtypes' overflow to NaN
                values = cast(values.astype(np.float32), tensor.dtype, "rint")
            flat[lo : lo + values.size] = values.astype(out.dtype)

    return fill, -(-flat.size // CHUNK_ELEMENTS)


def generate(tensor: Tensor, rule: InitRule, seed_seq: np.random.SeedSequence,
             pool: ThreadPoolExecutor | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """The tensor's initial value, filled chunk by chunk, in place, in its own dtype (on `pool` if given), into
    `out` if given (a C-contiguous array of its shape and dtype)."""
    out = np.empty(tensor.shape, dtype=np_dtype(tensor.dtype)) if out is None else out
    fill, chunks = _chunk_filler(tensor, rule, seed_seq, out)
    if pool is None or chunks == 1:
        for index in range(chunks):
            fill(index)
    else:
        list(pool.map(fill, range(chunks)))
    return out


def input_names(program: Program) -> list[str]:
    """The input and inout tensors, in declaration order."""
    return [t.name for t in program.tensors.values() if t.role in ("input", "inout")]


def input_streams(program: Program, seed: int) -> dict[str, np.random.SeedSequence]:
    """One seed sequence per input/inout tensor, in declaration order."""
    names = input_names(program)
    children = np.random.SeedSequence(seed).spawn(len(names))
    return dict(zip(names, children, strict=True))


def filler(program: Program, seed: int) -> Callable[[str, np.ndarray], Iterator[int]]:
    """fill(name, out): the initial value of input or inout tensor `name` drawn into `out` on this thread, front
    to back, a chunk per step, each step giving how many elements are filled (the same bits as
    `initial_values`). Every init rule is parsed now, so a bad one is reported here."""
    streams = input_streams(program, seed)
    rules = {name: parse_init(program.tensors[name], program) for name in streams}

    def fill(name: str, out: np.ndarray) -> Iterator[int]:
        draw, chunks = _chunk_filler(program.tensors[name], rules[name], streams[name], out)
        for index in range(chunks):
            draw(index)
            yield min((index + 1) * CHUNK_ELEMENTS, out.size)

    return fill


def initial_values(program: Program, seed: int, only: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Initial values of the input and inout tensors (all, or just those named in `only`). Chunks are drawn
    on one thread per core; the bits do not depend on the thread count."""
    names = input_names(program)
    rules = {name: parse_init(program.tensors[name], program) for name in names}  # (every rule is checked)
    wanted = set(names) if only is None else set(only) & set(names)
    if not wanted:
        return {}  # (a quick pass that reads no input: no streams, no threads, no numpy.random to import)
    from concurrent.futures import ThreadPoolExecutor

    streams = input_streams(program, seed)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return {name: generate(program.tensors[name], rules[name], streams[name], pool)
                for name in streams if name in wanted}
