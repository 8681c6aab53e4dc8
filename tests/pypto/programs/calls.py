"""Several @pl.function methods: an InCore function called with self.f(...) is one kernel per call; an
Opaque helper is inlined; the entry is the function no other calls."""

import pypto.language as pl

N = 16


def build():
    @pl.program
    class Calls:
        @pl.function(type=pl.FunctionType.InCore)
        def bump(self, t: pl.Tensor[[N, N], pl.FP32], out: pl.Tensor[[N, N], pl.FP32], k: pl.Scalar[pl.INDEX]):
            tile = pl.slice(t, [N, N], [0, 0])
            out = pl.assemble(out, pl.add(tile, 1.0), [0, 0])
            return out

        @pl.function(type=pl.FunctionType.Opaque)
        def twice(self, t: pl.Tensor[[N, N], pl.FP32], mid: pl.Tensor[[N, N], pl.FP32],
                  out: pl.Tensor[[N, N], pl.FP32]):
            mid = self.bump(t, mid, 0)
            out = self.bump(mid, out, 1)
            return out

        @pl.function(type=pl.FunctionType.Orchestration)
        def entry(self, x: pl.Tensor[[N, N], pl.FP32], y: pl.Out[pl.Tensor[[N, N], pl.FP32]]):
            mid = pl.create_tensor([N, N], dtype=pl.FP32)
            y = self.twice(x, mid, y)
            return y

    return Calls


def build_tensor_specs():
    import torch
    from pypto.runtime import TensorSpec

    return [TensorSpec("x", [N, N], torch.float32, init_value=torch.zeros),
            TensorSpec("y", [N, N], torch.float32, is_output=True)]
