"""`python -m npusim` and the `npusim` console script: Ctrl-C even while the CLI is still importing ends
with exit status 130 and one line, not a traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        print("interrupted: no report written", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
