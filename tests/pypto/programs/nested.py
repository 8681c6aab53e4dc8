"""Nested op calls: flattened into temporaries, arguments left to right, inner calls first."""

import pypto.language as pl

N = 16


def build():
    @pl.program
    class Nested:
        @pl.function
        def nested(self, x: pl.Tensor[[N, N], pl.FP32], w: pl.Tensor[[1, N], pl.FP32],
                   y: pl.Out[pl.Tensor[[N, N], pl.FP32]]):
            with pl.incore():
                y = pl.assemble(y, pl.col_expand_mul(pl.add(pl.mul(pl.slice(x, [N, N], [0, 0]), 2.0),
                                                            pl.exp(pl.slice(x, [N, N], [0, 0]))),
                                                     pl.slice(w, [1, N], [0, 0])), [0, 0])
            return y

    return Nested


def build_tensor_specs():
    import torch
    from pypto.runtime import TensorSpec

    return [TensorSpec("x", [N, N], torch.float32, init_value=torch.randn),
            TensorSpec("w", [1, N], torch.float32, init_value=lambda: torch.rand(1, N) + 0.5),
            TensorSpec("y", [N, N], torch.float32, is_output=True)]
