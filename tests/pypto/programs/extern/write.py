"""pl.write into a tile inside a kernel: the elements of x above 2, times 10, over a row of -1 (a read of an
input and a data-dependent if in the kernel)."""

import pypto.language as pl

N = 8


@pl.jit
def f(x: pl.Tensor[[1, N], pl.INT32], y: pl.Out[pl.Tensor[[1, N], pl.INT32]]):
    with pl.at(level=pl.Level.CORE_GROUP, name_hint="marks"):
        row = pl.full([1, N], dtype=pl.INT32, value=-1)
        for c in pl.range(N):
            v = pl.read(x, [0, c])
            if v > 2:
                pl.write(row, [0, c], v * 10)
        y = pl.assemble(y, row, [0, 0])
    return y


def build_tensor_specs():
    import torch
    from golden import TensorSpec
    return [TensorSpec("x", [1, N], torch.int32, init_value=lambda: torch.randint(0, 6, (1, N))),
            TensorSpec("y", [1, N], torch.int32, is_output=True)]
