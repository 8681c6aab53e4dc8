"""The run limits applied: the GM budget, and the memory check made before any GM tensor is allocated."""

from __future__ import annotations

import math
import os
from pathlib import Path

from npusim.defaults import RunLimits
from npusim.dtypes import itemsize
from npusim.errors import LimitError, Location
from npusim.frontend.program import Program
from npusim.graph import Execution


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


# What a run holds per task and per op while it is interpreted and simulated, from benchmarks/scale.py's
# timing-only runs (benchmarks/README.md): one kernel of 2 000 000 ops peaks 913 MB above an empty run's 61 MB
# (456 B per op); 203 125 tasks of 650 000 ops peak 592 MB above it, 296 MB of it ops (1.46 KB per task)
BYTES_PER_TASK = 1_500
BYTES_PER_OP = 460


def check_memory(program: Program, estimate: Execution, limits: RunLimits, numerics_on: bool) -> int:
    """Refuse, before the run, a run whose estimated memory (its tasks and ops as the quick pass counts them,
    plus its GM tensors with numerics) is more than the machine has available or than --max-memory-bytes."""
    ops, tasks = estimate.estimated_ops, estimate.estimated_tasks
    gm = sum(math.prod(t.shape) * itemsize(t.dtype) for t in program.tensors.values()) if numerics_on else 0
    need = tasks * BYTES_PER_TASK + ops * BYTES_PER_OP + gm
    free = available_memory()
    limit = min(limits.max_memory_bytes, free) if free is not None else limits.max_memory_bytes
    if need > limit:
        what = "this machine has available" if free is not None and free <= limits.max_memory_bytes \
            else "the limit of --max-memory-bytes"
        raise LimitError(
            f"the run needs about {need / 1e9:.1f} GB ({tasks} tasks, {ops} ops estimated from the first iteration "
            f"of every loop{', GM tensors' if gm else ''}), more than the {limit / 1e9:.1f} GB {what} (try a smaller "
            "preset; raise --max-memory-bytes if the estimate is too high)",
            Location(program.file),
        )
    if tasks > limits.max_tasks:
        raise LimitError(f"the run would create about {tasks} tasks (estimated from the first iteration of every "
                         f"loop), more than the limit of {limits.max_tasks} (raise it with --max-tasks)",
                         Location(program.file))
    return need
