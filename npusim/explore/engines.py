"""Where a sweep's variants run: a local process pool (the default: one variant per process, as many
processes as cores and memory allow) or a Ray cluster (`--engine ray [--address ADDR]`; a local Ray instance
without an address). Either way the rows come back in variant order, so the results do not depend on the
engine."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Literal, Protocol

from npusim.errors import NpusimError
from npusim.interp import available_memory
from npusim.output.sweep import SweepRow

from .variants import Job

EngineName = Literal["local", "ray"]
# Peak RSS of one timing-only run of the full Qwen3-32B decode layer (1503 tasks, 415 000 ops), measured
# with /usr/bin/time -v on the 2-core development machine: 146 MB; a worker is budgeted a little more.
TIMING_WORKER_BYTES = 200 * 2**20


class Engine(Protocol):
    def map(self, fn: Callable[[Job], SweepRow], jobs: list[Job]) -> Iterator[SweepRow]:
        """`fn` of every job, yielded in job order."""
        ...


class LocalPool:
    """A process pool on this machine: min(cores, jobs, what memory allows) workers, each a fresh process
    (spawned, so no state or thread of this process leaks into it)."""

    def __init__(self, workers: int | None, worker_bytes: int) -> None:
        self.workers = workers
        self.worker_bytes = worker_bytes

    def size(self, jobs: int) -> int:
        if self.workers is not None:
            return max(1, min(self.workers, jobs))
        free = available_memory()
        by_memory = max(1, free // self.worker_bytes) if free else os.cpu_count() or 1
        return max(1, min(os.cpu_count() or 1, jobs, by_memory))

    def map(self, fn: Callable[[Job], SweepRow], jobs: list[Job]) -> Iterator[SweepRow]:
        workers = self.size(len(jobs))
        if workers == 1:
            yield from map(fn, jobs)
            return
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield from pool.map(fn, jobs)


class RayEngine:
    """Variants as Ray tasks on an existing cluster (`address`) or on a local Ray instance."""

    def __init__(self, address: str | None) -> None:
        try:
            import ray
        except ImportError:
            raise NpusimError("--engine ray needs Ray: pip install 'npusim[ray]'") from None
        self.ray = ray
        self.address = address

    def map(self, fn: Callable[[Job], SweepRow], jobs: list[Job]) -> Iterator[SweepRow]:
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise NpusimError(f"--engine ray: cannot reach a Ray cluster at {self.address or 'local'}: "
                                  f"{exc}") from None
        try:
            remote = ray.remote(fn)
            futures = [remote.remote(job) for job in jobs]
            for future in futures:
                yield ray.get(future)
        finally:
            if started_here:
                ray.shutdown()


def make_engine(name: EngineName, address: str | None, workers: int | None, worker_bytes: int) -> Engine:
    if name == "ray":
        return RayEngine(address)
    if address is not None:
        raise NpusimError("--address is for --engine ray")
    return LocalPool(workers, worker_bytes)
