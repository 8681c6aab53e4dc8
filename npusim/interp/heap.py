"""The C heap of a run with numerics. glibc gives freed memory back to the OS as soon as enough of the top of
its heap is free, and maps each block above a (growing) threshold afresh, so the interpreter's stream of
tile-sized arrays (loads, float64 widenings, stacked matmul operands) faults the same pages in again and
again: on a VM a default Qwen3 layer took ~1.4 million page faults, ~10 s of system time. Keeping freed
memory for reuse takes ~150 000 and the same peak."""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
_KEEP_FREE_BYTES = 1 << 30  # free memory kept at the top of the heap before any is given back
_MMAP_ABOVE_BYTES = 32 << 20  # blocks this large or larger are mapped on their own (glibc's largest setting)


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed memory for reuse (a no-op elsewhere); affects the whole process."""
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library symbol to call
        return
    mallopt(_M_TRIM_THRESHOLD, _KEEP_FREE_BYTES)
    mallopt(_M_MMAP_THRESHOLD, _MMAP_ABOVE_BYTES)
