"""auto_incore: a chunked parallel loop (one kernel per 4 rows, one more for the 2 left over), two directly
nested chunked loops (interchanged: one kernel per pair of outer chunks), and compute outside any loop
(grouped into one kernel) next to a host-side assemble (left in orchestration)."""

import pypto.language as pl

ROWS = 18
BLOCKS = 4
TILE = 16


def build(rows: int = ROWS):
    @pl.program
    class Chunks:
        @pl.function
        def chunks(self, x: pl.Tensor[[rows, TILE], pl.FP32], m: pl.Tensor[[BLOCKS * TILE, BLOCKS * TILE], pl.FP32],
                   y: pl.Out[pl.Tensor[[rows, TILE], pl.FP32]],
                   z: pl.Out[pl.Tensor[[BLOCKS * TILE, BLOCKS * TILE], pl.FP32]],
                   s: pl.Out[pl.Tensor[[1, TILE], pl.FP32]]):
            with pl.auto_incore():
                for r in pl.parallel(0, rows, 1, chunk=4):
                    t = pl.slice(x, [1, TILE], [r, 0])
                    y = pl.assemble(y, pl.add(t, 1.0), [r, 0])
            with pl.auto_incore():
                for i in pl.parallel(0, BLOCKS, 1, chunk=2):
                    for j in pl.parallel(0, BLOCKS, 1, chunk=2):
                        blk = pl.slice(m, [TILE, TILE], [i * TILE, j * TILE])
                        z = pl.assemble(z, pl.mul(blk, 3.0), [i * TILE, j * TILE])
            with pl.auto_incore():
                first = pl.slice(x, [1, TILE], [0, 0])
                doubled = pl.add(first, first)
                s = pl.assemble(s, doubled, [0, 0])
            return y

    return Chunks


def build_tensor_specs(rows: int = ROWS):
    import torch
    from pypto.runtime import TensorSpec

    return [TensorSpec("x", [rows, TILE], torch.float32, init_value=torch.randn),
            TensorSpec("m", [BLOCKS * TILE, BLOCKS * TILE], torch.float32, init_value=torch.randn),
            TensorSpec("y", [rows, TILE], torch.float32, is_output=True),
            TensorSpec("z", [BLOCKS * TILE, BLOCKS * TILE], torch.float32, is_output=True),
            TensorSpec("s", [1, TILE], torch.float32, is_output=True)]
