"""The element types a program can name, with their numpy types and sizes.

The vector unit computes in bf16, fp16, fp32 and int32 (`VECTOR_DTYPES`). int8, uint8, int64 and the two FP8
formats are storage types: GM tensors and tiles hold them, `cast` converts to and from them, and the cube takes int8
and FP8 operands (`matmul`); a vector op on them is an error that says to cast first.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

NUMPY_DTYPES: dict[str, np.dtype] = {
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "fp16": np.dtype(np.float16),
    "fp32": np.dtype(np.float32),
    "int32": np.dtype(np.int32),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int64": np.dtype(np.int64),
    "fp8e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "fp8e5m2": np.dtype(ml_dtypes.float8_e5m2),
}
FLOAT_DTYPES = ("bf16", "fp16", "fp32")  # the vector unit's floating-point types
FP8_DTYPES = ("fp8e4m3fn", "fp8e5m2")
INT_DTYPES = ("int8", "uint8", "int32", "int64")
VECTOR_DTYPES = (*FLOAT_DTYPES, "int32")  # what vector arithmetic is defined on
CUBE_OPERAND_DTYPES = (*FLOAT_DTYPES, "int8", *FP8_DTYPES)
MAX_DIMS = 32  # dimensions of a tensor or tile: numpy 1.x arrays have at most 32 (numpy 2.x: 64)


def itemsize(dtype: str) -> int:
    """Bytes per element of `dtype` in GM and in on-chip buffers."""
    return NUMPY_DTYPES[dtype].itemsize


def np_dtype(dtype: str) -> np.dtype:
    return NUMPY_DTYPES[dtype]


def is_float(dtype: str) -> bool:
    """A floating-point type (the FP8 formats included)."""
    return dtype in FLOAT_DTYPES or dtype in FP8_DTYPES


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
    a_float, b_float = is_float(a), is_float(b)
    if a_float != b_float:
        return a if a_float else b
    return a if itemsize(a) >= itemsize(b) else b
