"""What a cost rule returns: one `Step` per pipe an op occupies, and the error for an op no rule prices."""

from __future__ import annotations

from dataclasses import dataclass

from npusim.errors import NpusimError
from npusim.vocabulary import GmSource, PathName, Pipe, Side


@dataclass(frozen=True)
class Step:
    """One pipe's share of an op. A vector step pays `head` only when it starts a new stream and `tail`
    when the pipe drains after it; `cycles` is everything in between. A DMA step occupies its pipe for `cycles`
    and its data arrive `latency` later (the pipe is free meanwhile)."""

    pipe: Pipe
    side: Side  # which core of the pair runs it
    cycles: float
    head: float = 0.0
    tail: float = 0.0
    path: PathName | None = None  # DMA path, for the traffic tables
    nbytes: int = 0  # bytes moved on `path`
    gm_bytes: int = 0  # bytes crossing HBM (a GM read that hits L2 does not)
    latency: float = 0.0  # after `cycles`, until the data are usable (DMA completion)
    source: GmSource | None = None  # a GM read's source


class CostError(NpusimError):
    """An op the config cannot price: never silently 0."""
