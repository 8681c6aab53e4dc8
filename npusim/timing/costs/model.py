"""The cost model: prices an op signature for one hardware config, by the rule its kind and key select
(DMA and moves by route, vector instructions by `VECTOR_RULES`, the cube and scalar pipes by
`CUBE_AND_SCALAR_RULES`), caching the result per signature."""

from __future__ import annotations

import math

from npusim.dtypes import itemsize
from npusim.graph import ComputeSig, DmaSig, MoveSig, OpSig
from npusim.vocabulary import GmSource

from ..hardware import HardwareConfig
from .base import Step
from .cube import CUBE_AND_SCALAR_RULES, l0_k_blocks, mad
from .dma import dma_steps, move_steps, route_steps
from .vector import vector_step


class CostModel:
    """Prices op signatures for one hardware config; results are cached per signature (and, for a GM read, the
    source of its data: HBM or L2)."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.hw = hw
        self._cache: dict[tuple[OpSig, GmSource | None], tuple[Step, ...]] = {}
        self._sliced: dict[tuple[OpSig, int], tuple[Step, ...]] = {}

    def steps(self, sig: OpSig, source: GmSource | None = None) -> tuple[Step, ...]:
        key = (sig, source)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = tuple(self._price(sig, source))
        return cached

    def _price(self, sig: OpSig, source: GmSource | None) -> list[Step]:
        if sig.__class__ is DmaSig:
            return dma_steps(self.hw, sig, source)  # type: ignore[arg-type]
        if sig.__class__ is MoveSig:
            return move_steps(self.hw, sig)  # type: ignore[arg-type]
        assert isinstance(sig, ComputeSig)
        other = CUBE_AND_SCALAR_RULES.get(sig.key)
        return [other(sig, self.hw) if other is not None else vector_step(sig, self.hw)]

    def l0_blocks(self, sig: OpSig) -> int:
        """K slabs of a matmul too large for L0 (1 for every other op): cube.l0_k_blocks."""
        if sig.__class__ is ComputeSig and sig.key in ("TMATMUL", "TMATMUL_ACC"):  # type: ignore[union-attr]
            return l0_k_blocks(sig, self.hw)  # type: ignore[arg-type]
        return 1

    def sliced_steps(self, sig: OpSig, blocks: int) -> tuple[Step, ...]:
        """An op of a K-tiled matmul (l0_blocks > 1): its L1 -> L0 move as `blocks` transfers of one slab each,
        the matmul as one mad per slab."""
        key = (sig, blocks)
        cached = self._sliced.get(key)
        if cached is None:
            if sig.__class__ is MoveSig:
                move: MoveSig = sig  # type: ignore[assignment]
                slab = math.prod(move.tile.shape) * itemsize(move.tile.dtype) // blocks
                cached = tuple(route_steps(self.hw, move.src, move.dst, slab, lanes=move.lanes) * blocks)
            else:
                cached = (mad(sig, self.hw, blocks),)  # type: ignore[arg-type]
            self._sliced[key] = cached
        return cached

    def isolated_cycles(self, sig: OpSig, source: GmSource | None = None) -> float:
        """The cost of one op alone on an idle core: every head, tail and DMA latency paid (what a profiler
        measures)."""
        return sum(s.head + s.cycles + s.tail + s.latency for s in self.steps(sig, source))
