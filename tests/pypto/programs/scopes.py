"""Scope comments: `# Scope N:` opens a numbered scope (to the next one), `# Scope name:` a nested named one,
`# End of scope` closes the innermost; kernels without a name_hint are named as PyPTO outlines them."""

import pypto.language as pl

N = 16


def build():
    @pl.program
    class Scoped:
        @pl.function
        def scoped(self, x: pl.Tensor[[N, N], pl.FP32], y: pl.Out[pl.Tensor[[N, N], pl.FP32]]):
            tmp = pl.create_tensor([N, N], dtype=pl.FP32)
            # ── Scope 1: first pass ──
            with pl.incore():
                a = pl.slice(x, [N, N], [0, 0])
                tmp = pl.assemble(tmp, pl.exp(a), [0, 0])
            # Scope detail: a named scope inside scope 1
            with pl.incore(name_hint="second"):
                b = pl.slice(tmp, [N, N], [0, 0])
                tmp = pl.assemble(tmp, pl.neg(b), [0, 0])
            # End of scope detail.
            with pl.incore():
                c = pl.slice(tmp, [N, N], [0, 0])
                tmp = pl.assemble(tmp, pl.add(c, 1.0), [0, 0])
            # Scope 2: last pass
            with pl.incore():
                d = pl.slice(tmp, [N, N], [0, 0])
                y = pl.assemble(y, pl.sqrt(pl.abs(d)), [0, 0])
            return y

    return Scoped


def build_tensor_specs():
    import torch
    from pypto.runtime import TensorSpec

    return [TensorSpec("x", [N, N], torch.float32, init_value=torch.randn),
            TensorSpec("y", [N, N], torch.float32, is_output=True)]
