"""`python -m npusim` and the `npusim` console script: SIGTERM is handled like Ctrl-C (the same clean-up,
exit status 143), and either, even while the CLI is still importing, ends with one line, not a traceback.

An interrupted process leaves with os._exit once its clean-up is done: CPython remembers a KeyboardInterrupt
that passed through a string `exec` (dataclass and namedtuple creation do that) even when it was caught, and
would end the process by SIGINT (status -2) instead of exiting 130."""

from __future__ import annotations

import os
import sys

INTERRUPTED = (130, 143)


def _leave(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
        raise


if __name__ == "__main__":
    main()
