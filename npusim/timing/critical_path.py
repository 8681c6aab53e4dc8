"""The critical path of a run: the chain of tasks that ends last."""

from __future__ import annotations

import itertools
from collections import defaultdict

from .chip import TaskRun, Timeline


def critical_path(timeline: Timeline) -> list[int]:
    """The chain of tasks that ends last, walking back through the predecessor (dependency or earlier task
    on the same core) that finished latest before each task started."""
    if not timeline.runs:
        return []
    by_core: dict[tuple[str, int], list[TaskRun]] = defaultdict(list)
    for r in timeline.runs:
        for kind, core in r.cores:
            by_core[(kind, core)].append(r)
    prev_on_core: dict[int, int] = {}
    for lst in by_core.values():
        lst.sort(key=lambda r: r.start)
        for a, b in itertools.pairwise(lst):
            prev_on_core[b.task] = a.task
    runs = timeline.runs
    current = max(runs, key=lambda r: r.end).task
    chain = [current]
    while True:
        candidates = list(timeline.deps[current])
        if current in prev_on_core:
            candidates.append(prev_on_core[current])
        if not candidates:
            break
        current = max(candidates, key=lambda t: runs[t].end)
        chain.append(current)
    chain.reverse()
    return chain
