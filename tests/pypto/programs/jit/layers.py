"""Helpers of the model, in a sibling module: an inline helper (spliced where it is called) and an incore
helper (one kernel per call)."""

import pypto.language as pl
from config import CFG as C

TILE = C.tile


@pl.jit.inline
def add_bias(src: pl.Tensor, bias: pl.Tensor, dst: pl.Tensor, c0: pl.Scalar[pl.INDEX]):
    ones = pl.full([C.rows, TILE], dtype=pl.FP32, value=1.0)
    dst[:, c0 : c0 + TILE] = pl.add(src[:, c0 : c0 + TILE], pl.col_expand_mul(ones, bias[:, c0 : c0 + TILE]))
    return dst


@pl.jit.incore
def halve(src: pl.Tensor, dst: pl.Out[pl.Tensor]):
    dst = pl.assemble(dst, pl.mul(src[:, :], 0.5), [0, 0])
    return dst
