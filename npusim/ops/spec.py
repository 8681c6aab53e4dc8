"""What one row of the op table says about an op: its arguments, its shape/dtype rule, its numerics, how the
interpreter lowers it, the pipe that runs it and the key of its cost rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from npusim.vocabulary import Buffer, Pipe

REQUIRED = object()

ParamKind = Literal["value", "value_or_scalar", "shape", "shape_opt", "index", "dtype", "dtype_opt", "scalar",
                    "choice", "flag"]  # index: a list of scalars like a shape, zero allowed
Where = Literal["kernel", "orchestration", "both"]
# How the interpreter lowers an op: a table-driven tile op ("compute"), or one of the data-movement ops that
# depend on where their operands live (GM or on-chip), or an orchestration-only op.
Lowering = Literal["compute", "slice", "assemble", "create_tensor", "read", "uninit", "validshape"]


class OpError(Exception):
    """A shape/dtype/argument problem in one op; the interpreter adds file, line and column."""


@dataclass(frozen=True)
class TileType:
    """What a shape rule sees of an operand: shape, dtype and valid shape (None = all valid)."""

    shape: tuple[int, ...]
    dtype: str
    valid: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Param:
    """One argument of an op.

    kind: `value` (tile or GM tensor), `value_or_scalar`, `shape` (list of expressions), `shape_opt`,
    `dtype`, `dtype_opt`, `scalar`, `choice` (a string from `choices`), `flag` (True/False).
    buffer: for a cube op's operands, the buffer the operand must be in (L0A, L0B, L0C).
    """

    name: str
    kind: ParamKind
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    buffer: Buffer | None = None


@dataclass(frozen=True)
class OpSpec:
    """One row of the op table."""

    name: str
    params: tuple[Param, ...]
    doc: str
    where: Where = "kernel"
    lowering: Lowering = "compute"
    infer: Callable[..., tuple[tuple[int, ...], str]] | None = None  # (**args) -> (shape, dtype)
    compute: Callable[..., Any] | None = None  # (**args as numpy/values) -> ndarray
    pipe: Pipe | None = "vector"  # None: data movement, whose pipe follows from the DMA path
    cost: str = ""  # cost-rule key (a PTO instruction) in npusim.timing.costs
    scalar_cost: str = ""  # cost key of the tile-scalar form, for binary ops
    scalar_compute: Callable[..., Any] | None = None  # numerics of the tile-scalar form
    reads_valid_shape: bool = False  # compute receives the first operand's valid shape as `valid`
    # compute applied along a loop whose every iteration feeds its result back as the first value operand:
    # (that operand's first value, a list over the iterations per other value operand, consts) -> the last result
    chain_compute: Callable[..., Any] | None = None

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)
