"""The tile ops: what each one takes, what shape and dtype it makes, how it is computed and costed."""

from .spec import REQUIRED, Lowering, OpError, OpSpec, Param, ParamKind, TileType, Where
from .table import OPS

__all__ = ["OPS", "REQUIRED", "Lowering", "OpError", "OpSpec", "Param", "ParamKind", "TileType", "Where"]
