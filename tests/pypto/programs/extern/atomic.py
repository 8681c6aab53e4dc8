"""An SPMD kernel whose two blocks each add exp(x) into y (`atomic=pl.AtomicType.Add`), and a UINT8 scratch
tensor (storage only)."""

import pypto.language as pl

K = 4


@pl.jit
def f(x: pl.Tensor[[K, K], pl.FP32], y: pl.InOut[pl.Tensor[[K, K], pl.FP32]]):
    with pl.spmd(2, name_hint="acc"):
        y = pl.assemble(y, pl.exp(x[:, :]), [0, 0], atomic=pl.AtomicType.Add)
    buf = pl.create_tensor([64], dtype=pl.UINT8)  # noqa: F841 (a scratch buffer, storage only)
    return y


def build_tensor_specs():
    import torch
    from golden import TensorSpec
    return [TensorSpec("x", [K, K], torch.float32, init_value=torch.rand),
            TensorSpec("y", [K, K], torch.float32, init_value=1.0)]
