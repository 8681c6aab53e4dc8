"""A user's own check: `--expect outputs.npz` compares a run's final outputs with saved values (e.g. the
outputs.npz of an earlier run, or values computed elsewhere) with rtol/atol, like a reference check.

The npz layout is the one `--save-tensors` writes (docs/program-format.md, "Saved tensors"): one array per
output or inout tensor, named as in the program, of the tensor's shape; BF16 and FP16 as their uint16 bit
patterns, FP32 as float32, INT32 as int32. Any subset of the outputs may be given.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from npusim.dtypes import np_dtype
from npusim.errors import Location, NpusimError
from npusim.frontend import Program
from npusim.references import Reference

STORED = {"bf16": np.dtype(np.uint16), "fp16": np.dtype(np.uint16), "fp32": np.dtype(np.float32),
          "int32": np.dtype(np.int32), "int8": np.dtype(np.int8), "uint8": np.dtype(np.uint8),
          "int64": np.dtype(np.int64),
          "fp8e4m3fn": np.dtype(np.uint8), "fp8e5m2": np.dtype(np.uint8)}


def _error(path: Path, message: str) -> NpusimError:
    return NpusimError(f"--expect: {message}", Location(str(path)))


def load_expected(path: Path, program: Program) -> dict[str, np.ndarray]:
    """The saved values of the outputs an npz names, as arrays of the tensors' dtypes; every problem (not an
    npz, a name that is not an output, a wrong shape or storage dtype) is one located error."""
    if not path.is_file():  # np.load would wait on a FIFO and read /dev/zero forever
        raise _error(path, "not a regular file" if path.exists() else "no such file")
    outputs = {n: t for n, t in program.tensors.items() if t.role in ("output", "inout")}
    try:
        with np.load(path, allow_pickle=False) as npz:
            stored = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _error(path, f"not an .npz archive of arrays ({exc})") from None
    if not stored:
        raise _error(path, "holds no arrays")
    expected: dict[str, np.ndarray] = {}
    for name, array in stored.items():
        tensor = outputs.get(name)
        if tensor is None:
            raise _error(path, f"{name!r} is not an output or inout tensor of {program.name} "
                               f"(outputs: {', '.join(outputs) or 'none'})")
        if array.shape != tensor.shape:
            raise _error(path, f"{name}: shape {list(array.shape)}, the tensor is {list(tensor.shape)}")
        if array.dtype != STORED[tensor.dtype]:
            raise _error(path, f"{name}: stored as {array.dtype}; a {tensor.dtype} tensor is stored as "
                               f"{STORED[tensor.dtype]} (docs/program-format.md, Saved tensors)")
        expected[name] = array.view(np_dtype(tensor.dtype))
    return expected


def expectation(path: Path, expected: dict[str, np.ndarray], rtol: float, atol: float) -> Reference:
    """The saved values as a reference: the check compares them exactly as it compares a built-in one."""
    return Reference(f"expect {path}", lambda inputs, consts: expected, rtol=rtol, atol=atol)
