"""pl.set_validshape narrows a tile to its first columns, from a value read at run time; fillpad zeroes the
rest."""

import pypto.language as pl

N = 16


@pl.jit
def f(x: pl.Tensor[[4, N], pl.FP32], n: pl.Tensor[[1], pl.INT32], y: pl.Out[pl.Tensor[[4, N], pl.FP32]]):
    with pl.at(level=pl.Level.CORE_GROUP, name_hint="mask"):
        keep = pl.cast(pl.tensor.read(n, [0]), pl.INDEX)
        t = pl.set_validshape(pl.exp(x[:, :]), 4, keep)
        y = pl.assemble(y, pl.fillpad(t, pad_value=pl.PadValue.zero), [0, 0])
    return y


def build_tensor_specs():
    import torch
    from golden import TensorSpec
    return [TensorSpec("x", [4, N], torch.float32, init_value=torch.rand),
            TensorSpec("n", [1], torch.int32, init_value=5),
            TensorSpec("y", [4, N], torch.float32, is_output=True)]
