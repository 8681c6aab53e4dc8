"""The four element types a program can name, with their numpy types and sizes."""

from __future__ import annotations

import ml_dtypes
import numpy as np

NUMPY_DTYPES: dict[str, np.dtype] = {
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "fp16": np.dtype(np.float16),
    "fp32": np.dtype(np.float32),
    "int32": np.dtype(np.int32),
}
FLOAT_DTYPES = ("bf16", "fp16", "fp32")
MAX_DIMS = 32  # dimensions of a tensor or tile: numpy 1.x arrays have at most 32 (numpy 2.x: 64)


def itemsize(dtype: str) -> int:
    """Bytes per element of `dtype` in GM and in on-chip buffers."""
    return NUMPY_DTYPES[dtype].itemsize


def np_dtype(dtype: str) -> np.dtype:
    return NUMPY_DTYPES[dtype]


_NAMES = {d: name for name, d in NUMPY_DTYPES.items()}


def dtype_name(dt: np.dtype) -> str:
    """The program name of a numpy dtype (inverse of `np_dtype`)."""
    try:
        return _NAMES[dt]
    except KeyError:
        raise KeyError(f"no npusim dtype for numpy dtype {dt}") from None


def promote(a: str, b: str) -> str:
    """PyPTO's PromoteDataTypes: equal stays; float beats int; otherwise the wider type wins."""
    if a == b:
        return a
    a_float, b_float = a in FLOAT_DTYPES, b in FLOAT_DTYPES
    if a_float != b_float:
        return a if a_float else b
    return a if itemsize(a) >= itemsize(b) else b
