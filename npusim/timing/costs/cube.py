"""Cube (and scalar-pipe) cost rules: a TMATMUL / TMATMUL_ACC is one `mad`, `head + cycles_per_fractal x
ceil(M/16) ceil(K/k0) ceil(N/16)` with k0 = fractal_k_bytes / element size (docs/sources.md, PTC §2/§4;
per operand dtype, int8 and FP8 with k0 = 32); a TRESHAPE is metadata, `reshape_cycles`."""

from __future__ import annotations

import math
from collections.abc import Callable

from npusim.dtypes import itemsize
from npusim.graph import ComputeSig

from ..hardware import HardwareConfig
from .base import CostError, Step


def mad(sig: ComputeSig, hw: HardwareConfig) -> Step:
    """TMATMUL / TMATMUL_ACC: one mad on the cube, over the product's M x K x N whichever operand is stored
    transposed (a transposed operand is laid out by its L1 -> L0 move, `move_steps`)."""
    lhs = sig.ins[-2]
    k, m = lhs.shape if dict(sig.options).get("a_trans") else lhs.shape[::-1]
    n = sig.out.shape[1]
    c = hw.cube
    if lhs.dtype not in c.cycles_per_fractal:
        raise CostError(f"no cube rule for {lhs.dtype} operands")
    k0 = c.fractal_k_bytes // itemsize(lhs.dtype)
    fractals = math.ceil(m / c.fractal_m) * math.ceil(k / k0) * math.ceil(n / c.fractal_n)
    return Step("cube", "aic", c.head_cycles + c.cycles_per_fractal[lhs.dtype] * fractals)


def reshape(sig: ComputeSig, hw: HardwareConfig) -> Step:
    """TRESHAPE: a TASSIGN with no intrinsic."""
    return Step("scalar", "aiv", hw.reshape_cycles)


CUBE_AND_SCALAR_RULES: dict[str, Callable[[ComputeSig, HardwareConfig], Step]] = {
    "TMATMUL": mad,
    "TMATMUL_ACC": mad,
    "TRESHAPE": reshape,
}
