"""The names every stage shares, defined once: pipes, on-chip buffers, DMA paths, where GM data come from, core
sides and kinds.

The pipes and the paths follow pto-isa's perf-sim stages (docs/sources.md, PF §1): a TLOAD into UB runs on
the AIV's MTE2, into L1 on the AIC's MTE2; a TSTORE from UB on MTE3, from L0C on FIXPIPE; L1 -> L0A/L0B on
MTE1; TMATMUL on CUBE; TRESHAPE on SCALAR; every other tile instruction on VECTOR.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

Pipe = Literal["mte2", "mte1", "cube", "fixpipe", "vector", "mte3", "scalar"]
PIPES: tuple[Pipe, ...] = get_args(Pipe)

Buffer = Literal["UB", "L1", "L0A", "L0B", "L0C"]
BUFFERS: tuple[Buffer, ...] = get_args(Buffer)
Place = Literal["GM", "UB", "L1", "L0A", "L0B", "L0C"]  # a buffer or global memory

GmSource = Literal["hbm", "l2"]  # where a GM read's data come from: HBM (not in L2) or an L2 hit
MAX_BUFFER_BYTES = 1 << 30  # the largest on-chip buffer a config may declare: a bigger tile fits no core

Side = Literal["aic", "aiv"]  # which core of an AIC + AIV cluster runs something
CoreKind = Literal["aic", "aiv", "mix"]  # what a kernel needs: the cube side, the vector side, or both
SplitMode = Literal["none", "up_down", "left_right"]  # how a mix kernel's vector work is split across 2 AIVs
SPLIT_MODES: tuple[SplitMode, ...] = get_args(SplitMode)
BUFFER_SIDE: dict[Buffer, Side] = {"UB": "aiv", "L1": "aic", "L0A": "aic", "L0B": "aic", "L0C": "aic"}

PathName = Literal[
    "gm_to_ub", "gm_to_l1", "l1_to_l0a", "l1_to_l0b", "l0c_to_gm", "ub_to_gm", "l1_to_gm", "l0c_to_l1",
    "l0c_to_ub", "ub_to_l1", "l1_to_ub",
]


class DmaPath(NamedTuple):
    """One hardware data path: the pipe that runs it and the core side that owns that pipe."""

    pipe: Pipe
    side: Side


PATHS: dict[PathName, DmaPath] = {
    "gm_to_ub": DmaPath("mte2", "aiv"),
    "gm_to_l1": DmaPath("mte2", "aic"),
    "l1_to_l0a": DmaPath("mte1", "aic"),
    "l1_to_l0b": DmaPath("mte1", "aic"),
    "l0c_to_gm": DmaPath("fixpipe", "aic"),
    "ub_to_gm": DmaPath("mte3", "aiv"),
    "l1_to_gm": DmaPath("mte3", "aic"),
    "l0c_to_l1": DmaPath("fixpipe", "aic"),
    "l0c_to_ub": DmaPath("fixpipe", "aic"),
    "ub_to_l1": DmaPath("mte3", "aiv"),
    "l1_to_ub": DmaPath("mte1", "aic"),
}


def touches_gm(path: str) -> bool:
    """Whether a path reads or writes global memory (its bytes cross HBM)."""
    return path.startswith("gm_") or path.endswith("_gm")
