"""DMA cost rules: a transfer costs `startup + charged_bytes / bytes_per_cycle` per hop of the route the
config gives from its source to its destination, each contiguous GM run charged in whole `dma_block_bytes`
blocks, with a cross-core flag where the data changes core (AIC <-> AIV through GM on A2/A3). A window with
outer dimensions is one such transfer per slab."""

from __future__ import annotations

import math

from npusim.dtypes import itemsize
from npusim.graph import DmaSig, MoveSig
from npusim.vocabulary import PATHS, PathName, Place, touches_gm

from ..hardware import HardwareConfig
from .base import CostError, Step


def _hop(hw: HardwareConfig, path: PathName, nbytes: int, charged: int) -> Step:
    dma = hw.dma[path]
    pipe, side = PATHS[path]
    gm = nbytes if touches_gm(path) else 0
    return Step(pipe, side, dma.startup_cycles + charged / dma.bytes_per_cycle, path=path, nbytes=nbytes, gm_bytes=gm)


def route_steps(hw: HardwareConfig, src: Place, dst: Place, nbytes: int, charged: int | None = None) -> list[Step]:
    """The hops moving `nbytes` from `src` to `dst` (GM included), per the config's routes, with a cross-core
    sync where the data changes core (AIC <-> AIV through GM on A2/A3)."""
    hops = hw.routes.get(f"{src}->{dst}")
    if hops is None:
        raise CostError(f"{hw.name} has no data path from {src} to {dst}")
    steps: list[Step] = []
    for hop in hops:
        side = PATHS[hop].side
        if steps and side != steps[-1].side:
            steps.append(Step("scalar", side, hw.scheduler.cross_core_sync_cycles))
        steps.append(_hop(hw, hop, nbytes, charged if charged is not None else nbytes))
    return steps


def dma_steps(hw: HardwareConfig, sig: DmaSig) -> list[Step]:
    """TLOAD (GM -> buffer) or TSTORE (buffer -> GM): one DMA call per slab of the window's outer dimensions,
    each paying the path's startup (pto-isa tload_common.hpp L71-83; DEV tload c02, c06); each contiguous run
    moves whole blocks."""
    block = hw.dma_block_bytes
    charged = sig.runs * (-(-sig.run_bytes // block) * block)
    src, dst = ("GM", sig.buf) if sig.key == "TLOAD" else (sig.buf, "GM")
    return route_steps(hw, src, dst, sig.runs * sig.run_bytes, charged) * sig.calls


def move_steps(hw: HardwareConfig, sig: MoveSig) -> list[Step]:
    """A whole tile from one on-chip buffer to another."""
    nbytes = math.prod(sig.tile.shape) * itemsize(sig.tile.dtype)
    return route_steps(hw, sig.src, sig.dst, nbytes)
