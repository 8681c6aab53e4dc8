"""The interpreter's values: GM tensors and zero-copy views of them (orchestration), and on-chip tiles
(inside a kernel), each with what the timing stage needs to know about it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from npusim.dtypes import is_float, np_dtype
from npusim.errors import ProgramError
from npusim.graph import TileSig
from npusim.ops import OpError, TileType
from npusim.vocabulary import Buffer

# waits for the first n elements of a tensor being drawn beside the run (all with None); whether all are there
Arriving = Callable[[int | None], bool]


class GMTensor:
    """A tensor in global memory, kept in its own dtype. It holds no view of itself: a view refers to its
    tensor, and that cycle would keep the tensor's data alive while the collector is off for the run
    (runner.collector_off): every scratch tensor of a layer would live until its end."""

    __slots__ = ("arriving", "base", "base_offset", "data", "dtype", "name", "origin", "shape", "tid", "untracked")

    def __init__(self, name: str, shape: tuple[int, ...], dtype: str, data: np.ndarray | None, tid: int,
                 untracked: bool = False, base: GMTensor | None = None, base_offset: int = 0,
                 arriving: Arriving | None = None) -> None:
        self.name, self.shape, self.dtype, self.data, self.tid = name, shape, dtype, data, tid
        self.arriving = arriving  # its values are still being drawn beside the run: see `arrived`
        self.untracked = untracked  # its accesses give no dependencies (PyPTO create_tensor(manual_dep=True))
        self.base, self.base_offset = base, base_offset  # a reshaped view: the memory of `base` from that element
        self.origin = (0,) * len(shape)

    def region(self, lo: tuple[int, ...], hi: tuple[int, ...]) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        """A rectangle of this tensor as a footprint of the memory it lives in: itself, or for a reshaped view
        the smallest rectangle of its base holding those elements (conservative: a dependency is never missed)."""
        if self.base is None:
            return self.tid, lo, hi
        first = self.base_offset + _linear(self.shape, lo)
        last = self.base_offset + _linear(self.shape, tuple(h - 1 for h in hi))
        blo, bhi = _box(self.base.shape, first, last + 1)
        return self.base.region(blo, bhi)


def arrived(tensor: GMTensor, hi: tuple[int, ...] | None = None) -> None:
    """Return once the tensor's values are there (at once, unless they are still being drawn beside the run): all
    of them, or with `hi` those of a nonempty window ending there (exclusive), i.e. every element up to its last
    one in memory order (they are drawn front to back)."""
    if tensor.arriving is None:
        return
    if hi is None:
        tensor.arriving(None)
        tensor.arriving = None
        return
    end, t = _linear(tensor.shape, tuple([h - 1 for h in hi])) + 1, tensor
    while t.base is not None:  # a reshaped view: its elements' places in the memory of its base
        end += t.base_offset
        t = t.base
    if tensor.arriving(end):
        tensor.arriving = None


class GMView:
    """A window of a GM tensor (orchestration `slice`): zero-copy."""

    __slots__ = ("offset", "shape", "tensor")

    def __init__(self, tensor: GMTensor, offset: tuple[int, ...], shape: tuple[int, ...]) -> None:
        self.tensor, self.offset, self.shape = tensor, offset, shape

    @property
    def dtype(self) -> str:
        return self.tensor.dtype


class Tile:
    """An on-chip tile inside a kernel: its value (None without numerics), its signature (shape, dtype, valid
    shape), the buffer it lives in, and which op of which task made it."""

    __slots__ = ("buf", "data", "op", "owner", "sig")

    def __init__(self, data: np.ndarray | None, sig: TileSig, buf: Buffer, op: int, owner: int) -> None:
        self.data, self.sig, self.buf, self.op, self.owner = data, sig, buf, op, owner

    @property
    def shape(self) -> tuple[int, ...]:
        return self.sig.shape

    @property
    def dtype(self) -> str:
        return self.sig.dtype

    @property
    def valid(self) -> tuple[int, ...] | None:
        """The valid shape, or None when the whole tile is valid."""
        return None if self.sig.valid == self.sig.shape else self.sig.valid

    def type(self) -> TileType:
        return TileType(self.sig.shape, self.sig.dtype, self.valid)


def _linear(shape: tuple[int, ...], index: tuple[int, ...]) -> int:
    out = 0
    for d, i in zip(shape, index, strict=True):
        out = out * d + i
    return out


def _box(shape: tuple[int, ...], a: int, b: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The smallest rectangle of a row-major tensor holding its elements [a, b)."""
    if len(shape) == 1:
        return (a,), (b,)
    inner = 1
    for d in shape[1:]:
        inner *= d
    r0, r1 = a // inner, (b - 1) // inner
    if r0 == r1:
        lo, hi = _box(shape[1:], a - r0 * inner, b - r0 * inner)
        return (r0, *lo), (r0 + 1, *hi)
    return (r0, *(0 for _ in shape[1:])), (r1 + 1, *shape[1:])


Value = GMTensor | GMView | Tile


class NeedsNumerics(ProgramError):
    """A `read` of values that only a run with numerics has (a tensor a kernel wrote, an output): an error in a
    timing-only run; the quick check pass of a run with numerics stops there and leaves the rest to the run."""

# What running an instruction on bad input can raise (a shape rule, an expression, numpy): turned into one
# located program error, never a traceback.
RUNTIME_ERRORS = (OpError, ZeroDivisionError, ValueError, TypeError, OverflowError, IndexError)


def tile_sig(shape: tuple[int, ...], dtype: str, valid: tuple[int, ...] | None = None, dynamic: bool = False
             ) -> TileSig:
    return TileSig(shape, dtype, valid or shape, dynamic)


def as_view(value: GMTensor | GMView) -> GMView:
    return value if value.__class__ is GMView else GMView(value, value.origin, value.shape)  # type: ignore[arg-type]


def poison(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Uninitialised memory: NaN for floats, the most negative value for an integer type (INT32_MIN for
    int32), so reading it shows in the results."""
    if is_float(dtype):
        return np.full(shape, np.nan, dtype=np_dtype(dtype))
    return np.full(shape, np.iinfo(np_dtype(dtype)).min, dtype=np_dtype(dtype))


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"
