"""A run's reference values, computed beside the interpreter on the other core.

On Linux the reference runs in a forked process: it is numpy in many small calls (the attention loop, exp),
which on a thread queue for the GIL behind the interpreter's Python and slow both (default layer: the
interpreter 10.2 s alone, 13.7 s beside a reference thread; 10.4 s beside a forked one). The child puts its
arrays in a memfd that the parent maps, so nothing is copied back. Elsewhere (no fork or memfd), or when
the process already runs other threads (forking those can deadlock), it runs on a daemon thread.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from .errors import LimitError

Arrays = dict[str, np.ndarray]
_ALIGN = 64  # byte alignment of each array in the shared buffer


class Beside(Protocol):
    snapshot: bool  # the computation reads a copy-on-write snapshot of its arguments: the caller may change them

    def result(self) -> Arrays:
        """Wait for the values; raises what computing them raised."""

    def close(self) -> None:
        """Stop the computation if it still runs (an interrupted or failed run does not wait for it)."""


def beside(fn: Callable[..., Arrays], *args: Any) -> Beside:
    """fn(*args), a dict of arrays, computed beside the caller."""
    if sys.platform == "linux" and hasattr(os, "memfd_create") and threading.active_count() == 1:
        return _Forked(fn, args)
    return _Thread(fn, args)


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

    def __init__(self, fn: Callable[..., Arrays], args: tuple) -> None:
        self._memfd = os.memfd_create("npusim-reference", os.MFD_CLOEXEC)
        read, write = os.pipe()
        self._pid: int | None = os.fork()
        if self._pid == 0:
            os.close(read)
            _child(fn, args, self._memfd, write)  # does not return
        os.close(write)
        self._pipe = read

    def result(self) -> Arrays:
        with os.fdopen(self._pipe, "rb") as pipe:
            message = pipe.read()
        status = self._reap()
        if not message:  # killed (the kernel's OOM killer, a signal to it alone)
            how = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status) else \
                f"exited with status {os.waitstatus_to_exitcode(status)}"
            raise LimitError(f"the reference check's process {how} before it finished (out of memory?)")
        kind, payload = pickle.loads(message)
        if kind == "error":
            raise payload
        total = sum(_padded(shape, dtype) for _, shape, dtype in payload)
        buffer = mmap.mmap(self._memfd, total, access=mmap.ACCESS_READ) if total else b""
        os.close(self._memfd)
        arrays, offset = {}, 0
        for name, shape, dtype in payload:
            count = int(np.prod(shape))
            arrays[name] = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)
            offset += _padded(shape, dtype)
        return arrays

    def close(self) -> None:
        if self._pid is not None:
            os.kill(self._pid, signal.SIGKILL)
            self._reap()

    def _reap(self) -> int:
        """Wait for the child; its wait status (0 if already reaped)."""
        status = 0
        if self._pid is not None:
            status = os.waitpid(self._pid, 0)[1]
            self._pid = None
        return status


def _padded(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return -(-int(np.prod(shape)) * dtype.itemsize // _ALIGN) * _ALIGN


def _child(fn: Callable[..., Arrays], args: tuple, memfd: int, pipe: int) -> None:
    """In the forked process: compute, copy the arrays into the memfd, describe them (or the error) on the
    pipe, and leave without running the parent's exit handlers or flushing its buffered output."""
    try:
        try:
            arrays = {name: np.ascontiguousarray(value) for name, value in fn(*args).items()}
            layout = [(name, a.shape, a.dtype) for name, a in arrays.items()]
            total = sum(_padded(a.shape, a.dtype) for a in arrays.values())
            if total:
                os.ftruncate(memfd, total)
                with mmap.mmap(memfd, total) as buffer:
                    offset = 0
                    for a in arrays.values():
                        np.frombuffer(buffer, dtype=a.dtype, count=a.size, offset=offset)[:] = a.reshape(-1)
                        offset += _padded(a.shape, a.dtype)
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
