"""`python -m npusim` and the `npusim` console script: SIGTERM is handled like Ctrl-C (the same clean-up,
exit status 143), and either, even while the CLI is still importing, ends with one line, not a traceback."""

from __future__ import annotations

import sys

from .errors import interruption, terminate_like_ctrl_c


def main() -> None:
    terminate_like_ctrl_c()
    try:
        from .cli import main as cli_main

        cli_main()
    except KeyboardInterrupt as exc:
        message, code = interruption(exc, [])
        print(message, file=sys.stderr)
        sys.exit(code)


if __name__ == "__main__":
    main()
