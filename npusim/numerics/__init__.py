"""Bit-exact numerics of the simulated NPU: formats and rounding, casts, elementwise ops, transcendental
functions, row reductions and matmul, one module each.

Every function is pure, takes numpy arrays in their program dtype (bf16 = ``ml_dtypes.bfloat16``,
fp16 = ``np.float16``, fp32 = ``np.float32``, int32 = ``np.int32``) and returns a new array. Results are
bit-identical on every machine: nothing depends on BLAS summation order, SIMD width or libm accuracy.

Contract (docs/sources.md DESIGN §4):

* ``cast`` rounds by mode on the bit patterns: ``round`` = nearest, ties away from zero (the device default,
  PyPTO CAST_ROUND), ``rint`` = nearest, ties to even, ``floor``, ``ceil``, ``trunc``. NaN stays NaN (quiet
  bit set, sign and the top payload bits that fit kept), ±inf and ±0 keep their sign, subnormals are exact.
  Overflow: ``round``/``rint`` give ±inf at and beyond the rounding threshold, ``trunc`` gives ±max finite,
  ``floor`` gives -inf for negatives and +max for positives, ``ceil`` the mirror. Float -> int32: NaN -> 0
  and out-of-range values and ±inf saturate to INT32_MIN/INT32_MAX (npusim's choice).
* Elementwise ``add sub mul div sqrt`` are IEEE in the operand dtype; bf16/fp16 are computed in fp32 and
  rounded once to nearest-even, which is correctly rounded because fp32 has 24 >= 2p+2 bits (p = 8 for
  bf16, 11 for fp16; Figueroa's double-rounding theorem). ``maximum``/``minimum`` are IEEE 754-2019
  maximum/minimum: NaN propagates and -0 < +0 (numpy's sign of a zero result depends on argument order).
  ``exp`` and ``rsqrt`` are correctly rounded (nearest-even) results of the exact function: computed in
  float64 and rounded once; the rare float64 results within 64 float64-ulps of a rounding midpoint are
  resolved exactly (``decimal`` for exp, rational arithmetic for rsqrt), so libm differences cannot show.
  ``recip(x)`` is ``1 / x`` in the operand dtype.
* NaN policy: every NaN *produced by arithmetic* (elementwise ops, reductions, matmul) is the canonical
  quiet NaN: fp32 0x7fc00000, bf16 0x7fc0, fp16 0x7e00 (x86 would give 0xffc00000 for inf - inf, ARM
  0x7fc00000). ``neg`` is a sign-bit flip and ``cast`` keeps payloads, as described above.
* ``matmul``: every product exact, the sum over K exact, one rounding (nearest-even) to ``out_dtype``.
  An exact zero sum is +0 (the accumulator starts at +0).
* ``row_sum`` uses a fixed pairwise tree in the operand dtype's arithmetic: pad each row with -0.0 to a
  multiple of 64 columns; add 64-column chunks pairwise (2i + 2i+1, an odd last chunk carried) until one
  chunk remains; then add adjacent lanes (2i + 2i+1) six times (see ``row_sum``). ``col_sum`` adds rows in
  the device's order: one after another, or (with a scratch tile) in pairs level by level (see ``col_sum``).
"""

from .cast import cast
from .elementwise import (
    BINARY_OPS,
    EXPAND_OPS,
    PAD_VALUES,
    abs_,
    add,
    arange,
    binary_scalar,
    col_broadcast,
    col_expand,
    div,
    fill_pad,
    full,
    maximum,
    minimum,
    mul,
    neg,
    recip,
    row_broadcast,
    row_expand,
    sqrt,
    sub,
    write,
)
from .formats import CAST_MODES, INT32_MAX, INT32_MIN, digest
from .matmul import matmul, matmul_acc, matmul_acc_chain
from .reductions import ROW_SUM_LANES, col_max, col_min, col_sum, row_max, row_min, row_sum
from .transcendental import exp, rsqrt

__all__ = [
    "BINARY_OPS", "CAST_MODES", "EXPAND_OPS", "INT32_MAX", "INT32_MIN", "PAD_VALUES", "ROW_SUM_LANES", "abs_", "add",
    "arange", "binary_scalar", "cast", "col_broadcast", "col_expand", "col_max", "col_min", "col_sum", "digest", "div",
    "exp", "fill_pad", "full", "matmul", "matmul_acc", "matmul_acc_chain", "maximum", "minimum", "mul", "neg", "recip",
    "row_broadcast", "row_expand", "row_max", "row_min", "row_sum", "rsqrt", "sqrt", "sub", "write",
]
