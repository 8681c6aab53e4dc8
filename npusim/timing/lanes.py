"""A split mix task on both AIV lanes of its cluster (PyPTO `pl.split`): each lane runs the same program on
its half of the vector work (the interpreter recorded one lane's ops: AIV-side tiles halved along the split
axis, the cube <-> vector hand-offs moving one half per lane), so one lane's schedule is the task's, and the
second lane adds the same AIV-side pipe work and traffic. The AIC side runs once and already pushes or
receives one half per lane. Source of the lane model: pypto e2d0f78ae docs/en/dev/passes/20-lower_auto_vector_
split.md (the vector region halved, one subblock per AIV lane) and simpler's MIX task spanning 1 AIC + 2 AIV
(src/a2a3/runtime/tensormap_and_ringbuffer/docs/RUNTIME_LOGIC.md §8.6); docs/timing-model.md §5."""

from __future__ import annotations

from npusim.vocabulary import PATHS

from .kernel import KernelSchedule


def both_lanes(lane: KernelSchedule) -> KernelSchedule:
    """The task's schedule from one lane's: the same length; AIV-side busy cycles, DMA bytes and transfers, HBM
    bytes and L2 hits counted twice (once per lane)."""
    busy = {pipe: cycles + lane.aiv_busy.get(pipe, 0.0) for pipe, cycles in lane.busy.items()}
    aiv_paths = [p for p in lane.dma_bytes if PATHS[p].side == "aiv"]
    dma_bytes = {p: n * (2 if p in aiv_paths else 1) for p, n in lane.dma_bytes.items()}
    transfers = {p: n * (2 if p in aiv_paths else 1) for p, n in lane.dma_transfers.items()}
    aiv_busy = {pipe: 2 * cycles for pipe, cycles in lane.aiv_busy.items()}
    return KernelSchedule(lane.cycles, busy, dma_bytes, transfers, lane.gm_bytes + lane.aiv_gm_bytes, lane.peak_bytes,
                          lane.ops, aiv_busy, lane.l2_hit_bytes + lane.aiv_l2_hit_bytes, 2 * lane.aiv_gm_bytes,
                          2 * lane.aiv_l2_hit_bytes)
