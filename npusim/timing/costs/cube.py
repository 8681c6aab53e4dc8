"""Cube (and scalar-pipe) cost rules: a TMATMUL / TMATMUL_ACC is one `mad`, `head + cycles_per_fractal x
ceil(M/16) ceil(K/k0) ceil(N/16)` with k0 = fractal_k_bytes / element size (docs/sources.md, PTC §2/§4;
per operand dtype, int8 and FP8 with k0 = 32); a TRESHAPE is metadata, `reshape_cycles`; a TCI (arange) a scalar
loop, `scalar_store_cycles` per element. A matmul whose
operands do not fit L0A / L0B runs as PyPTO's AutoTileMatmulL0 pass rewrites it: a K-loop of `l0_k_blocks`
slabs, each one mad of K / blocks (docs/timing-model.md §3)."""

from __future__ import annotations

import math
from collections.abc import Callable

from npusim.dtypes import itemsize
from npusim.graph import ComputeSig

from ..hardware import HardwareConfig
from .base import CostError, Step


def _mkn(sig: ComputeSig) -> tuple[int, int, int]:
    """The product's M, K, N whichever operand is stored transposed."""
    k, m = sig.ins[-2].shape if dict(sig.options).get("a_trans") else sig.ins[-2].shape[::-1]
    return m, k, sig.out.shape[1]


def l0_k_blocks(sig: ComputeSig, hw: HardwareConfig) -> int:
    """K slabs of a matmul whose A [M, K] or B [K, N] exceeds L0A / L0B, as PyPTO's AutoTileMatmulL0 picks them
    (pypto e2d0f78ae docs/passes/16-auto_tile_matmul_l0.md and auto_tile_matmul_l0_pass.cpp: K-only tiling,
    double-buffered slabs so two fit each buffer, the largest fractal-aligned k dividing K; with M and N whole the
    chooser's traffic is the same for every k, so fewer K blocks win). 1 when the operands fit, or when no k does
    (PyPTO then leaves the matmul as it is and the capacity check reports it)."""
    m, k_total, n = _mkn(sig)
    a, b = sig.ins[-2], sig.ins[-1]
    bytes_a, bytes_b = itemsize(a.dtype), itemsize(b.dtype)
    if m * k_total * bytes_a <= hw.l0a_bytes and k_total * n * bytes_b <= hw.l0b_bytes:
        return 1
    align = hw.cube.fractal_n  # PyPTO's GetL0FractalAlignment: 16 on A2/A3 and A5
    for k in range(k_total - k_total % align, 0, -align):
        if k_total % k == 0 and 2 * m * k * bytes_a <= hw.l0a_bytes and 2 * k * n * bytes_b <= hw.l0b_bytes:
            return k_total // k
    return 1


def mad(sig: ComputeSig, hw: HardwareConfig, blocks: int = 1) -> Step:
    """TMATMUL / TMATMUL_ACC: one mad on the cube per K slab (`blocks` of them, l0_k_blocks), each over
    M x K/blocks x N (a transposed operand is laid out by its L1 -> L0 move, `move_steps`)."""
    lhs = sig.ins[-2]
    m, k, n = _mkn(sig)
    c = hw.cube
    if lhs.dtype not in c.cycles_per_fractal:
        raise CostError(f"no cube rule for {lhs.dtype} operands")
    k0 = c.fractal_k_bytes // itemsize(lhs.dtype)
    fractals = math.ceil(m / c.fractal_m) * math.ceil(k // blocks / k0) * math.ceil(n / c.fractal_n)
    return Step("cube", "aic", blocks * (c.head_cycles + c.cycles_per_fractal[lhs.dtype] * fractals))


def reshape(sig: ComputeSig, hw: HardwareConfig) -> Step:
    """TRESHAPE: a TASSIGN with no intrinsic."""
    return Step("scalar", "aiv", hw.reshape_cycles)


def set_value(sig: ComputeSig, hw: HardwareConfig) -> Step:
    """TSETVAL (pl.write into a tile; pypto e2d0f78ae pto_ops_memory.cpp MakeTileWriteCodegenPTO): one scalar
    store into UB."""
    return Step("scalar", "aiv", hw.scalar_store_cycles)


def contiguous_integers(sig: ComputeSig, hw: HardwareConfig) -> Step:
    """TCI (pl.arange): a scalar loop storing each of the [1, N] result's valid columns (pto-isa npu/a2a3
    TCI.hpp TCI, the form without a scratch tile that pypto's `pto.tci` codegen emits)."""
    return Step("scalar", "aiv", hw.scalar_store_cycles * sig.out.valid[-1])


CUBE_AND_SCALAR_RULES: dict[str, Callable[[ComputeSig, HardwareConfig], Step]] = {
    "TMATMUL": mad,
    "TMATMUL_ACC": mad,
    "TRESHAPE": reshape,
    "TCI": contiguous_integers,
    "TSETVAL": set_value,
}
