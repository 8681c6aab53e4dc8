"""Loops and conditions: pl.range, pl.parallel, pl.pipeline(stage=2), if/else on scalars, pl.min/pl.max,
pl.tensor.read, pl.fillpad with a runtime valid shape, pl.cast, a kernel name_hint."""

import pypto.language as pl

T = 8
W = 16


def build():
    @pl.program
    class Control:
        @pl.function
        def control(self, x: pl.Tensor[[T, W], pl.FP32], lens: pl.Tensor[[T], pl.INT32],
                    y: pl.Out[pl.Tensor[[T, W], pl.BF16]]):
            for r in pl.parallel(T):
                n = pl.tensor.read(lens, [r])
                valid = pl.max(1, pl.min(W, n))
                with pl.incore(name_hint="row"):
                    for k in pl.pipeline(0, 1, 1, stage=2):
                        part = pl.slice(x, [1, W], [r, k], valid_shape=[1, valid])
                        padded = pl.fillpad(part, pad_value=pl.PadValue.zero)
                    if valid > W // 2:  # noqa: SIM108 (an if/else of kernel ops is the point)
                        out = pl.mul(padded, 2.0)
                    else:
                        out = pl.neg(padded)
                    y = pl.assemble(y, pl.cast(out, target_type=pl.BF16, mode="rint"), [r, 0])
            return y

    return Control


def build_tensor_specs():
    import torch
    from pypto.runtime import TensorSpec

    return [TensorSpec("x", [T, W], torch.float32, init_value=torch.randn),
            TensorSpec("lens", [T], torch.int32, init_value=lambda: torch.randint(0, 20, (T,), dtype=torch.int32)),
            TensorSpec("y", [T, W], torch.bfloat16, is_output=True)]
