"""HBM bandwidth shared by every running task, as a fluid (max-min fair shares), in SimPy's style: a small
resource class with named fields whose loop is a simpy process."""

from __future__ import annotations

import math
from dataclasses import dataclass

import simpy


@dataclass(slots=True)
class _Job:
    """One running task's claim on HBM."""

    remaining: float  # standalone cycles of work left
    demand: float  # GM bytes per cycle at full speed
    done: simpy.Event
    rate: float = 1.0  # the fraction of its demand it receives (its progress per cycle)


class SharedHBM:
    """HBM bandwidth shared by all running tasks as a fluid: each task has standalone work (cycles) and a
    demand (GM bytes per cycle at full speed); bandwidth is split max-min fairly and a task progresses at
    the fraction of its demand it receives."""

    # A job is done when less than this many standalone cycles are left (the resolution results were computed
    # with), or when the time it still needs is below the clock's resolution at the current time: then it could
    # never finish, since now + remaining / rate == now (a livelock at large times, e.g. very slow DMA paths).
    DONE_BELOW_CYCLES = 1e-6

    def __init__(self, env: simpy.Environment, bytes_per_cycle: float) -> None:
        if not (bytes_per_cycle > 0 and math.isfinite(bytes_per_cycle)):
            raise ValueError(f"HBM bandwidth must be positive and finite, got {bytes_per_cycle} B/cycle")
        self.env = env
        self.capacity = bytes_per_cycle
        self.jobs: dict[int, _Job] = {}
        self.clock = 0.0
        self.wake = env.event()
        env.process(self._loop())

    def run(self, job: int, work: float, demand: float) -> simpy.Event:
        """An event that fires when `work` standalone cycles of a task demanding `demand` B/cycle are done."""
        self._advance()
        done = self.env.event()
        if work <= 0:
            done.succeed()
            return done
        self.jobs[job] = _Job(work, demand, done)
        self._share()
        if not self.wake.triggered:
            self.wake.succeed()
        return done

    def _advance(self) -> None:
        dt = self.env.now - self.clock
        if dt > 0:
            for job in self.jobs.values():
                job.remaining -= dt * job.rate
        self.clock = self.env.now

    def _share(self) -> None:
        left, jobs = self.capacity, sorted(self.jobs.values(), key=lambda j: j.demand)
        for k, job in enumerate(jobs):
            share = left / (len(jobs) - k)
            if job.demand <= share:
                job.rate = 1.0
                left -= job.demand
            else:
                job.rate = share / job.demand
                left -= share

    def _loop(self):
        while True:
            if not self.jobs:
                yield self.wake
                self.wake = self.env.event()
                continue
            horizon = min(job.remaining / job.rate for job in self.jobs.values())
            yield self.wake | self.env.timeout(max(horizon, 0.0))
            if self.wake.triggered:
                self.wake = self.env.event()
            self._advance()
            now = self.env.now
            for key in [k for k, job in self.jobs.items()
                        if job.remaining <= self.DONE_BELOW_CYCLES or now + job.remaining / job.rate <= now]:
                self.jobs.pop(key).done.succeed()
            self._share()
