"""Writing a run's artefacts safely: into a directory that holds only npusim reports, each file written to a
temporary name and renamed into place, so an error or Ctrl-C never leaves a half-written report and never
overwrites anything that is not an npusim artefact."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from pydantic import BaseModel

from npusim.errors import NpusimError

ARTEFACTS = frozenset({
    "report.json", "timeline.png", "utilisation.png", "trace.json", "inputs.npz", "outputs.npz",
    "compare.json", "compare.png",
    "kernels.csv", "instructions.csv", "lines.csv", "kernels.png", "trace.json.gz",
    "sweep.csv", "sweep.json", "sweep.png", "tune.json",
})


def prepare_out_dir(out: Path, protected: list[Path]) -> Path:
    """Create `out`, or check that it holds only npusim artefacts and is not inside a protected place."""
    out = out.expanduser()
    resolved = out.resolve()
    for p in protected:
        p = p.resolve()
        if resolved == p or (p.is_dir() and resolved in p.parents) or (p.is_file() and resolved == p.parent):
            raise NpusimError(f"--out {out}: refusing to write reports next to or inside {p}")
    if out.exists() and not out.is_dir():
        raise NpusimError(f"--out {out}: exists and is not a directory")
    if out.exists():
        foreign = sorted(f.name for f in out.iterdir()
                         if not (f.is_file() and (f.name in ARTEFACTS or f.name.startswith(".npusim-"))))
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise NpusimError(
                f"--out {out}: the directory holds files that are not npusim reports ({shown}); "
                "choose an empty or new directory"
            )
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temporary file in the same directory, then rename over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".npusim-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; reports are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """JSON of plain data or of a typed model (its JSON-mode dump), atomically."""
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    text = json.dumps(data, indent=2, allow_nan=False).encode() + b"\n"
    write_atomic(path, lambda fh: fh.write(text))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """BF16 and FP16 stored as uint16 bit patterns, FP32 as float32, INT32 as int32 (docs/sources.md DESIGN §7)."""
    stored = {}
    for name, a in arrays.items():
        stored[name] = a.view(np.uint16) if a.dtype.itemsize == 2 else a
    write_atomic(path, lambda fh: np.savez(fh, **stored))


def remove_stale(out: Path, names: list[str]) -> None:
    """Remove artefacts of an earlier run that this run does not write (so a directory never mixes runs)."""
    for name in names:
        (out / name).unlink(missing_ok=True)
