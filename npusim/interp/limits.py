"""Bounds on what one run may do, and the memory check made before any GM tensor is allocated."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from npusim.dtypes import itemsize
from npusim.errors import LimitError
from npusim.frontend.program import Program


@dataclass(frozen=True)
class RunLimits:
    """Bounds on what one run may do; each has a command-line flag to raise it."""

    max_tasks: int = 200_000
    max_loop_iterations: int = 50_000_000
    max_gm_bytes: int = 8 * 1024**3


def available_memory() -> int | None:
    """Bytes of memory the machine can still give this process (MemAvailable), or None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_gm_budget(program: Program, limits: RunLimits, numerics_on: bool) -> int:
    """Total bytes of the program's GM tensors, checked before anything is allocated: against --max-gm-bytes,
    and (when values will be computed) against the memory the machine has available."""
    sizes = {t.name: math.prod(t.shape) * itemsize(t.dtype) for t in program.tensors.values()}
    total = sum(sizes.values())
    if not sizes:
        return 0
    largest = max(sizes, key=sizes.__getitem__)
    where = program.tensors[largest].loc
    if total > limits.max_gm_bytes:
        raise LimitError(
            f"the program's GM tensors need {total} bytes ({largest}: {sizes[largest]}), more than the limit "
            f"of {limits.max_gm_bytes} (raise it with --max-gm-bytes)",
            where,
        )
    free = available_memory() if numerics_on else None
    if free is not None and total > free:
        raise LimitError(
            f"the program's GM tensors need {total} bytes ({largest}: {sizes[largest]}) but this machine has "
            f"{free} bytes available (try a smaller preset, or --no-numerics for timing only)",
            where,
        )
    return total
