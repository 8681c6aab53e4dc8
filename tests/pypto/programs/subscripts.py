"""Subscript sugar: t[a:b, :] is a slice, t[i] (all scalar) a read, t[...] = v an assemble."""

import pypto.language as pl

ROWS = 32
COLS = 64


def build():
    @pl.program
    class Sub:
        @pl.function
        def sub(self, x: pl.Tensor[[ROWS, COLS], pl.FP32], n: pl.Tensor[[1], pl.INT32],
                y: pl.Out[pl.Tensor[[ROWS, COLS], pl.FP32]]):
            count = n[0]
            for r in pl.range(count):
                with pl.incore():
                    row = x[r : r + 1, :]
                    y[r : r + 1, 0:COLS] = pl.neg(row)
            return y

    return Sub


def build_tensor_specs():
    import torch
    from pypto.runtime import TensorSpec

    return [TensorSpec("x", [ROWS, COLS], torch.float32, init_value=torch.randn),
            TensorSpec("n", [1], torch.int32, init_value=lambda: torch.full((1,), 5, dtype=torch.int32)),
            TensorSpec("y", [ROWS, COLS], torch.float32, is_output=True)]
