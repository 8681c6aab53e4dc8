"""Work done beside a run on the other core: the reference values beside the interpreter; also the plots, and a
timing-only run's dependencies beside its L2 sources and schedules (runner.py), each handed back as arrays.

On Linux the reference runs in a forked process: it is numpy in many small calls (the attention loop, exp),
which on a thread queue for the GIL behind the interpreter's Python and slow both (default layer: the
interpreter 10.2 s alone, 13.7 s beside a reference thread; 10.4 s beside a forked one). The child puts its
arrays in a memfd that the parent maps, so nothing is copied back. Elsewhere (no fork or memfd), or when
the process already runs other threads (forking those can deadlock), it runs on a daemon thread.

The forked process can also draw arrays for the caller first (`Drawn`: the run's inputs and inouts) into a
shared memfd, announcing its progress through each; the caller starts at once and waits only for the part of
an array it is about to use that is not yet announced. Drawing them is then off the interpreter's core
(default layer: 1.75 GB, 1.5-3.9 s of a run before, most of it the first touch of fresh memory).
"""

from __future__ import annotations

import errno
import mmap
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from .errors import LimitError

Arrays = dict[str, np.ndarray]
Fill = Callable[[str, np.ndarray], Iterable[int]]  # Drawn's fill(name, out): elements final after each step
# Each array of a shared buffer starts a page: a caller writing a `changed` array in place gets private copies of
# its pages only; a page it shared with an array drawn later would keep that array's bytes as they were when
# copied (zeros).
_ALIGN = mmap.PAGESIZE


class Beside(Protocol):
    snapshot: bool  # the computation reads a copy-on-write snapshot of its arguments: the caller may change them

    def result(self) -> Arrays:
        """Wait for the values; raises what computing them raised."""

    def close(self) -> None:
        """Stop the computation if it still runs (an interrupted or failed run does not wait for it)."""


def can_fork() -> bool:
    """Whether `beside` runs its computation in a forked process (and so can draw arrays for the caller)."""
    return sys.platform == "linux" and hasattr(os, "memfd_create") and threading.active_count() == 1


def beside(fn: Callable[..., Arrays], *args: Any, what: str, drawn: Drawn | None = None) -> Beside:
    """fn(*args), a dict of arrays, computed beside the caller; in a forked process (`can_fork`), which first
    draws `drawn` if given. `what` names that process in the error if it is killed ("the reference check's
    process")."""
    if can_fork():
        return _Forked(fn, args, what, drawn)
    if drawn is not None:
        raise ValueError("arrays are drawn beside only by a forked process (see can_fork)")
    return _Thread(fn, args)


class Drawn:
    """Arrays a forked process draws for the caller into a shared memfd, in the order given, their progress
    announced on a pipe as it is made: `fill(name, out)` fills `out` front to back in steps, each giving how
    many of its first elements are final (an array is announced whole after its last step). Consecutive arrays
    with the same `together` key (the caller first needs them at once, e.g. the K and V caches) are drawn a step
    of each in turn. `arrays` are the caller's views of them, also added to `into` (the forked process reads the
    same views, which see what it writes); `wait(name)` returns once that one is done, `wait(name, n)` once its
    first n elements are. They are read-only but for those named `changed`, which the caller changes in place
    where they have arrived: its mapping is copy-on-write, so only the pages it writes are copied (progress is
    announced in whole pages, so those are final), and the forked process, whose `into` (the dict its
    computation reads) holds its own shared views of them, still sees the values it drew."""

    def __init__(self, layout: list[tuple[str, tuple[int, ...], np.dtype]], fill: Fill,
                 into: dict[str, np.ndarray], changed: frozenset[str] = frozenset(),
                 together: Sequence[Hashable] | None = None) -> None:
        self._layout, self._fill, self._into, self._changed = layout, fill, into, changed
        self._together = list(together) if together is not None else list(range(len(layout)))
        self._total = sum(_padded(shape, dtype) for _, shape, dtype in layout)
        self._memfd = os.memfd_create("npusim-inputs", os.MFD_CLOEXEC)
        os.ftruncate(self._memfd, self._total)
        self.arrays = _views(self._memfd, layout, self._total, mmap.ACCESS_COPY)
        for name, array in self.arrays.items():
            array.flags.writeable = name in changed
        into.update(self.arrays)
        self._read, self._write = os.pipe()
        self._sizes = {name: int(np.prod(shape)) for name, shape, _ in layout}
        self._arrived: dict[str, int] = {}  # elements announced so far, front to back
        self._failed: Callable[[], object] | None = None  # raises why the drawing process stopped

    def draw(self) -> None:
        """In the forked process: fill the arrays in order, those of a `together` group a step of each in turn,
        announcing their progress; then close the pipe. Each array's pages are allocated in one call just before
        it is filled: faulting them in one at a time as they are written cost 25% more system time (default
        layer: 1.98 -> 1.51 s, median of 3 runs each), and allocating all 1.75 GB before the first array kept
        the interpreter waiting 0.6 s for it."""
        os.close(self._read)
        arrays = _views(self._memfd, self._layout, self._total, mmap.ACCESS_WRITE)
        offset = 0
        for group in self._groups():
            steps: dict[int, Iterator[int]] = {}
            for i in group:
                name, shape, dtype = self._layout[i]
                if size := _padded(shape, dtype):  # (a size-0 allocation is an error)
                    self._allocate(offset, size)
                offset += size
                steps[i] = iter(self._fill(name, arrays[name]))
            while steps:
                for i in list(steps):
                    if not self._step(i, steps[i], arrays):
                        del steps[i]
        os.close(self._write)

    def _groups(self) -> Iterator[range]:
        """The runs of consecutive arrays with the same `together` key."""
        first = 0
        for j in range(1, len(self._layout) + 1):
            if j == len(self._layout) or self._together[j] != self._together[first]:
                yield range(first, j)
                first = j

    def _step(self, i: int, step: Iterator[int], arrays: Arrays) -> bool:
        """Take one step of array i's fill and announce it; False once the array is done (announced whole)."""
        name, _, dtype = self._layout[i]
        n = next(step, None)
        if n is None:
            if name in self._changed:
                self._into[name] = arrays[name]  # (the caller's copy-on-write views see its changes, this one not)
            self._announce(i, self._sizes[name])
            return False
        # whole pages (the caller may write them), and never all of it: that is said once, last, so the caller,
        # which stops reading once it has everything, reads every announcement
        if n < self._sizes[name]:
            self._announce(i, n * dtype.itemsize // mmap.PAGESIZE * mmap.PAGESIZE // dtype.itemsize)
        return True

    def _announce(self, i: int, elements: int) -> None:
        """Array i's first `elements` are final (16 bytes: pipe writes this small are atomic, and every read of
        4096 bytes holds whole announcements)."""
        os.write(self._write, i.to_bytes(8, "little") + elements.to_bytes(8, "little"))

    def _allocate(self, offset: int, size: int) -> None:
        """The memfd's pages [offset, offset + size), allocated at once (LimitError when memory is short)."""
        try:
            os.posix_fallocate(self._memfd, offset, size)
        except OSError as exc:  # (a kernel without it for memfds allocates them as they are written, as before)
            if exc.errno in (errno.ENOSPC, errno.ENOMEM):
                raise LimitError(f"the inputs' {self._total / 2**20:.0f} MB do not fit in memory") from None

    def started(self, failed: Callable[[], object]) -> None:
        """In the caller, once forked: `failed` raises why the process stopped before announcing everything."""
        os.close(self._write)
        os.close(self._memfd)
        self._failed = failed

    def wait(self, name: str, elements: int | None = None) -> bool:
        """Return once `name` is drawn, or its first `elements` (reading announcements as they come); whether all
        of it is."""
        size = self._sizes[name]
        need = size if elements is None else min(elements, size)
        while self._arrived.get(name, -1) < need:
            data = os.read(self._read, 4096) if self._read >= 0 else b""
            if not data:
                self._close()
                if self._failed is not None:
                    self._failed()
                raise LimitError(f"the process drawing the inputs stopped before it drew {name}")
            for k in range(0, len(data), 16):
                self._arrived[self._layout[int.from_bytes(data[k:k + 8], "little")][0]] = \
                    int.from_bytes(data[k + 8:k + 16], "little")
        return self._arrived[name] == size

    def wait_all(self) -> None:
        for name, _, _ in self._layout:
            self.wait(name)
        self._close()

    def _close(self) -> None:
        if self._read >= 0:
            os.close(self._read)
            self._read = -1


def _views(memfd: int, layout: list[tuple[str, tuple[int, ...], np.dtype]], total: int, access: int) -> Arrays:
    """The arrays of `layout`, one after the other (aligned), in a mapping of the memfd."""
    buffer = mmap.mmap(memfd, total, access=access) if total else bytearray()  # (no size-0 mappings)
    arrays, offset = {}, 0
    for name, shape, dtype in layout:
        arrays[name] = np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
        offset += _padded(shape, dtype)
    return arrays


class _Thread:
    snapshot = False

    def __init__(self, fn: Callable[..., Arrays], args: tuple) -> None:
        self._value: Arrays = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name="npusim-reference", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Arrays], args: tuple) -> None:
        try:
            self._value = fn(*args)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> Arrays:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def close(self) -> None:
        """A daemon thread: nothing waits for it."""


class _Forked:
    snapshot = True

    def __init__(self, fn: Callable[..., Arrays], args: tuple, what: str, drawn: Drawn | None = None) -> None:
        self._what = what
        self._memfd: int | None = os.memfd_create("npusim-beside", os.MFD_CLOEXEC)
        read, write = os.pipe()
        self._pid: int | None = os.fork()
        if self._pid == 0:
            os.close(read)
            _child(fn, args, self._memfd, write, drawn)  # does not return
        os.close(write)
        self._pipe: int | None = read
        if drawn is not None:
            drawn.started(self.result)

    def result(self) -> Arrays:
        assert self._pipe is not None
        with os.fdopen(self._pipe, "rb") as pipe:
            self._pipe = None
            message = pipe.read()
        status = self._reap()
        if not message:  # killed (the kernel's OOM killer, a signal to it alone)
            how = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status) else \
                f"exited with status {os.waitstatus_to_exitcode(status)}"
            raise LimitError(f"{self._what} {how} before it finished (out of memory?)")
        kind, payload = pickle.loads(message)
        if kind == "error":
            raise payload
        total = sum(_padded(shape, dtype) for _, shape, dtype in payload)
        assert self._memfd is not None
        arrays = _views(self._memfd, payload, total, mmap.ACCESS_READ)
        self._release()
        return arrays

    def close(self) -> None:
        if self._pid is not None:
            os.kill(self._pid, signal.SIGKILL)
            self._reap()
        self._release()

    def _release(self) -> None:
        """Close the memfd (its mapped views stay valid) and the pipe: a run that fails or is interrupted before
        the result, in a sweep's or a notebook's long-lived process, leaks no descriptor."""
        for fd in (self._memfd, self._pipe):
            if fd is not None:
                os.close(fd)
        self._memfd = self._pipe = None

    def _reap(self) -> int:
        """Wait for the child; its wait status (0 if already reaped)."""
        status = 0
        if self._pid is not None:
            status = os.waitpid(self._pid, 0)[1]
            self._pid = None
        return status


def _padded(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return -(-int(np.prod(shape)) * dtype.itemsize // _ALIGN) * _ALIGN


def _child(fn: Callable[..., Arrays], args: tuple, memfd: int, pipe: int, drawn: Drawn | None) -> None:
    """In the forked process: draw `drawn`, compute, copy the arrays into the memfd, describe them (or the
    error) on the pipe, and leave without running the parent's exit handlers or flushing its buffered output."""
    try:
        try:
            if drawn is not None:
                drawn.draw()
            arrays = {name: np.asarray(value) for name, value in fn(*args).items()}
            layout = [(name, a.shape, a.dtype) for name, a in arrays.items()]
            total = sum(_padded(a.shape, a.dtype) for a in arrays.values())
            os.ftruncate(memfd, total)
            for name, view in _views(memfd, layout, total, mmap.ACCESS_WRITE).items():
                view[...] = arrays[name]
            message = pickle.dumps(("value", layout))
        except BaseException as exc:  # the parent raises it
            try:
                message = pickle.dumps(("error", exc))
            except Exception:
                message = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
        with os.fdopen(pipe, "wb") as out:
            out.write(message)
    finally:
        os._exit(0)
