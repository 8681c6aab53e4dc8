"""Op signatures: everything a cost rule may depend on, as typed records (one kind per way an op uses the
hardware). Equal signatures cost the same, so the timing stage prices each distinct signature once."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from npusim.vocabulary import Buffer


class TileSig(NamedTuple):
    """A tile as a cost rule sees it."""

    shape: tuple[int, ...]
    dtype: str
    valid: tuple[int, ...]
    dynamic: bool  # valid shape known only at run time (the device takes its dynamic-shape code paths)


class DmaSig(NamedTuple):
    """A transfer between GM and an on-chip buffer: TLOAD (GM -> buf) or TSTORE (buf -> GM). The device issues
    `calls` DMA calls, one per slab of the window's outer dimensions (all but the last two); each moves `runs`
    contiguous GM runs of `run_bytes` (a slab of whole rows of a row-major tensor is one run)."""

    key: Literal["TLOAD", "TSTORE"]
    tile: TileSig
    buf: Buffer
    runs: int
    run_bytes: int
    calls: int = 1


class MoveSig(NamedTuple):
    """A tile moved between two on-chip buffers (e.g. L1 -> L0A before a matmul, L0C -> UB for a vector op);
    the route, direct or through GM, is the hardware config's. `lanes` > 1: a split kernel's cube <-> vector
    hand-off, `tile` being one AIV lane's part; the AIC side of the route moves one part per lane."""

    key: Literal["MOVE"]
    tile: TileSig
    src: Buffer
    dst: Buffer
    lanes: int = 1


class ComputeSig(NamedTuple):
    """A compute instruction: `key` is its PTO instruction (TEXP, TMATMUL, TROWSUM, ...), `options` its
    keyword arguments that are not operands (cast mode, b_trans), as sorted (name, value) pairs."""

    key: str
    out: TileSig
    ins: tuple[TileSig, ...]
    options: tuple[tuple[str, Any], ...] = ()


OpSig = DmaSig | MoveSig | ComputeSig


def result_tile(sig: OpSig) -> TileSig:
    """The tile an op makes or moves (what a trace or a table shows for it)."""
    return sig.out if sig.__class__ is ComputeSig else sig.tile  # type: ignore[union-attr]
