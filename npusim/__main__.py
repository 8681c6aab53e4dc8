"""`python -m npusim` and the `npusim` console script: SIGTERM is handled like Ctrl-C (the same clean-up,
exit status 143), and either, even while the CLI is still importing, ends with one line, not a traceback.

An interrupted process leaves with os._exit once its clean-up is done: CPython remembers a KeyboardInterrupt
that passed through a string `exec` (dataclass and namedtuple creation do that) even when it was caught, and
would end the process by SIGINT (status -2) instead of exiting 130."""

from __future__ import annotations

import contextlib
import os
import sys

INTERRUPTED = (130, 143)
# Commands that start no helper processes leave with os._exit once their output is flushed: Python's own exit
# frees every object of the run one by one (0.2 s of a 1.8 s timing-only run of the default layer). A sweep or
# a tune exits normally (a Ray or process pool shuts down at exit), and so does a profiled or traced run.
QUICK_EXIT = frozenset({"run", "validate", "compare", "import", "config"})


def _leave(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # the reader has gone (`npusim ... | head`) or it is closed
            stream.flush()
    os._exit(code)


def _unobserved() -> bool:
    """No profiler or tracer (`python -m cProfile -m npusim ...`, `trace`) waits to write its results at exit."""
    return sys.getprofile() is None and sys.gettrace() is None


def main() -> None:
    try:
        from .errors import terminate_like_ctrl_c

        terminate_like_ctrl_c()
        from .cli import main as cli_main

        cli_main()
    except KeyboardInterrupt as exc:
        from .errors import interruption

        message, code = interruption(exc, [])
        print(message, file=sys.stderr)
        _leave(code)
    except SystemExit as exc:
        if exc.code in INTERRUPTED:
            _leave(exc.code)  # type: ignore[arg-type]
        if sys.argv[1:2] and sys.argv[1] in QUICK_EXIT and isinstance(exc.code, int | None) and _unobserved():
            _leave(exc.code or 0)
        raise


if __name__ == "__main__":
    main()
