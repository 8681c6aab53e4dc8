"""The interpreter's values: GM tensors and zero-copy views of them (orchestration), and on-chip tiles
(inside a kernel), each with what the timing stage needs to know about it."""

from __future__ import annotations

import numpy as np

from npusim.dtypes import FLOAT_DTYPES, np_dtype
from npusim.errors import ProgramError
from npusim.graph import TileSig
from npusim.ops import OpError, TileType
from npusim.vocabulary import Buffer


class GMTensor:
    """A tensor in global memory, kept in its own dtype."""

    __slots__ = ("data", "dtype", "name", "shape", "tid", "whole")

    def __init__(self, name: str, shape: tuple[int, ...], dtype: str, data: np.ndarray | None, tid: int) -> None:
        self.name, self.shape, self.dtype, self.data, self.tid = name, shape, dtype, data, tid
        self.whole = GMView(self, (0,) * len(shape), shape)


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
    return value if value.__class__ is GMView else value.whole  # type: ignore[union-attr]


def poison(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Uninitialised memory: NaN for floats, INT32_MIN for int32, so reading it shows in the results."""
    fill = np.nan if dtype in FLOAT_DTYPES else np.iinfo(np.int32).min
    return np.full(shape, fill, dtype=np_dtype(dtype))


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"
