"""The defaults the command line shows in `--help`: the bounds of a run and of reading its files, the trace's
size limit, the check's tolerances and the default config. Kept apart and light (no numpy, pydantic or YAML)
so `npusim --help` imports only click and this; the modules that apply them import them from here."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CONFIG = "ascend910b"
REFERENCE_RTOL = REFERENCE_ATOL = 3e-3  # the default tolerances of a check, the seed's (docs/sources.md PF §6)
# A larger trace.json drops its op events, then is not written (said on stderr): a default that keeps the trace
# small enough for Perfetto's web UI in a browser tab; --max-trace-bytes raises it
MAX_TRACE_BYTES = 512 << 20


@dataclass(frozen=True)
class RunLimits:
    """Bounds on what one run may do; each has a command-line flag to raise it."""

    max_tasks: int = 200_000
    max_loop_iterations: int = 50_000_000
    max_gm_bytes: int = 8 * 1024**3
    max_memory_bytes: int = 1 << 62  # a run estimated to need more is refused (and more than the machine has)


@dataclass(frozen=True)
class YamlLimits:
    """Bounds on what a YAML file may cost to read (each can be raised from the command line)."""

    max_bytes: int = 4 * 1024 * 1024
    max_nodes: int = 50_000
    max_depth: int = 64
    max_string_chars: int = 10_000


@dataclass(frozen=True)
class ExprLimits:
    """Bounds on one scalar expression of a program: its characters, AST nodes and nesting."""

    max_chars: int = 1000
    max_nodes: int = 200
    max_depth: int = 32
