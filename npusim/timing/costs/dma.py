"""DMA cost rules. One transfer (DMA call) on path `p` occupies its engine for `issue + charged_bytes / rate`
(a GM write at least `write_completion`: the engine holds it until the write is acknowledged) and its data
arrive `latency` after that (`l2_hit_latency` for a GM read that hits L2); each contiguous GM run is charged in
whole `dma_block_bytes` blocks. A GM -> L1 (ND -> NZ) transfer whose runs are no longer than an L2
line moves at the path's short-run rate. A route through GM costs each hop, with a cross-core flag where the data
change core (AIC <-> AIV through GM on A2/A3); the read hop re-reads what the write hop just wrote (an L2 hit).
A window with outer dimensions is one transfer per slab, each waiting for the previous one's data (DEV tload
c02, c06, c08: the slabs of one TLOAD do not overlap)."""

from __future__ import annotations

import math

from npusim.dtypes import itemsize
from npusim.graph import DmaSig, MoveSig
from npusim.vocabulary import PATHS, GmSource, PathName, Place, touches_gm

from ..hardware import HardwareConfig
from .base import CostError, Step


def _hop(hw: HardwareConfig, path: PathName, nbytes: int, charged: int, run_bytes: int,
         source: GmSource | None) -> Step:
    dma = hw.dma[path]
    pipe, side = PATHS[path]
    rate, latency = dma.bytes_per_cycle, dma.latency_cycles
    if dma.l2_hit_latency_cycles is not None:  # a GM read
        source = source or "hbm"
        if source == "l2":
            latency = dma.l2_hit_latency_cycles
        if dma.short_run_bytes_per_cycle is not None and run_bytes <= hw.l2.line_bytes:
            rate = dma.short_run_bytes_per_cycle
    else:
        source = None
    hbm = nbytes if touches_gm(path) and source != "l2" else 0
    cycles = max(dma.issue_cycles + charged / rate, dma.write_completion_cycles)
    return Step(pipe, side, cycles, path=path, nbytes=nbytes, gm_bytes=hbm, latency=latency, source=source)


def route_steps(hw: HardwareConfig, src: Place, dst: Place, nbytes: int, charged: int | None = None,
                run_bytes: int | None = None, source: GmSource | None = None, lanes: int = 1) -> list[Step]:
    """The hops moving `nbytes` from `src` to `dst` (GM included), per the config's routes, with a cross-core
    sync where the data change core (AIC <-> AIV through GM on A2/A3). `source`: where a GM read's data are.
    With `lanes` > 1 (a split kernel's hand-off of one AIV lane's part) the AIC-side hops run once per lane."""
    hops = hw.routes.get(f"{src}->{dst}")
    if hops is None:
        raise CostError(f"{hw.name} has no data path from {src} to {dst}")
    steps: list[Step] = []
    for hop in hops:
        side = PATHS[hop].side
        if steps and side != steps[-1].side:
            steps.append(Step("scalar", side, hw.cross_core_sync_cycles))
        hop_source = source if src == "GM" else "l2"  # a hop reading GM inside an on-chip route: just written
        step = _hop(hw, hop, nbytes, charged if charged is not None else nbytes,
                    run_bytes if run_bytes is not None else nbytes, hop_source)
        steps.extend([step] * (lanes if side == "aic" else 1))
    return steps


def dma_steps(hw: HardwareConfig, sig: DmaSig, source: GmSource | None = None) -> list[Step]:
    """TLOAD (GM -> buffer) or TSTORE (buffer -> GM): one DMA call per slab of the window's outer dimensions
    (pto-isa tload_common.hpp L71-83; DEV tload c02, c06); each contiguous run moves whole blocks."""
    block = hw.dma_block_bytes
    charged = sig.runs * (-(-sig.run_bytes // block) * block)
    src, dst = ("GM", sig.buf) if sig.key == "TLOAD" else (sig.buf, "GM")
    return route_steps(hw, src, dst, sig.runs * sig.run_bytes, charged, sig.run_bytes, source) * sig.calls


def move_steps(hw: HardwareConfig, sig: MoveSig) -> list[Step]:
    """A whole tile from one on-chip buffer to another."""
    nbytes = math.prod(sig.tile.shape) * itemsize(sig.tile.dtype)
    return route_steps(hw, sig.src, sig.dst, nbytes, lanes=sig.lanes)
