"""User-facing errors: one located message and exit status 2, never a traceback; the interruptions (Ctrl-C,
SIGTERM) that end a run with 130 or 143; and `shown`, the repr of a user's value that is safe to put in
a one-line message whatever the value is (an integer of a million digits, a string of control characters)."""

from __future__ import annotations

import difflib
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Location:
    """Where something is in a user file (1-based line and column)."""

    file: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.col is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.col}"


class NpusimError(Exception):
    """A problem with the user's input (program, config, command line): printed as one line, exit 2."""

    exit_code = 2

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ProgramError(NpusimError):
    """A malformed or failing program."""


class ConfigError(NpusimError):
    """A malformed hardware config."""


class LimitError(NpusimError):
    """A run that would exceed one of npusim's resource limits."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt so the same clean-up runs."""


def terminate_like_ctrl_c() -> None:
    """Make SIGTERM end the process the way Ctrl-C does (staged artefacts removed, locks released)."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


def interruption(exc: KeyboardInterrupt, written: list[str]) -> tuple[str, int]:
    """The one line and exit status of an interrupted command: 130 for Ctrl-C, 143 for SIGTERM (128 + the
    signal number, as a shell reports it); `written` are the reports committed before the interruption."""
    word, code = ("terminated", 128 + signal.SIGTERM) if isinstance(exc, Terminated) else ("interrupted", 130)
    if written:
        return f"{word} after the report was written: {', '.join(written)}", code
    return f"{word}: no report written", code


_MAX_SHOWN = 60


def shown(value: Any, limit: int = _MAX_SHOWN) -> str:
    """repr(value) cut to `limit` characters. An int too long for Python to print (over
    sys.get_int_max_str_digits() digits) is described by its size instead of raising ValueError."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * _int_digit_limit():
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    try:
        text = repr(value)
    except ValueError:  # a container holding such an int
        text = f"<a {type(value).__name__} holding an integer too long to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int_digit_limit() -> int:
    get = getattr(sys, "get_int_max_str_digits", None)
    limit = get() if get is not None else 0
    return limit if limit > 0 else 1 << 40


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close candidate exists, else ''."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""
