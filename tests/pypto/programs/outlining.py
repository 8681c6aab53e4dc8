"""Kernel boundaries: a tile read by the next kernel (a GM tensor per execution, loaded whole at that
kernel's entry), a tile assembled once after its kernel (a view of the destination), a created tensor
assembled once (a view), and a GM view a kernel computes on directly (loaded once at entry)."""

import pypto.language as pl

M = 16
N = 32


def build():
    @pl.program
    class Outline:
        @pl.function
        def outline(self, a: pl.Tensor[[M, N], pl.BF16], b: pl.Tensor[[N, N], pl.BF16],
                    bias: pl.Tensor[[1, N], pl.FP32], out: pl.Out[pl.Tensor[[2 * M, N], pl.FP32]]):
            row = pl.create_tensor([M, N], dtype=pl.FP32)
            bias_view = pl.slice(bias, [1, N], [0, 0])
            with pl.incore():
                prod = pl.matmul(a, b)
            with pl.incore():
                shifted = pl.col_expand_add(prod, bias_view)
                row = pl.assemble(row, shifted, [0, 0])
            out = pl.assemble(out, row, [M, 0])
            with pl.incore():
                twice = pl.add(prod, prod)
            out = pl.assemble(out, twice, [0, 0])
            return out

    return Outline


def build_tensor_specs():
    import torch
    from pypto.runtime import TensorSpec

    return [TensorSpec("a", [M, N], torch.bfloat16, init_value=torch.randn),
            TensorSpec("b", [N, N], torch.bfloat16, init_value=torch.randn),
            TensorSpec("bias", [1, N], torch.float32, init_value=torch.randn),
            TensorSpec("out", [2 * M, N], torch.float32, is_output=True)]
