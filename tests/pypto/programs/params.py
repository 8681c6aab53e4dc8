"""Params: module constants (one derived), builder keyword defaults, a harness flag, asserts."""

import pypto.language as pl

ROWS = 64
COLS = 32
TILE = ROWS // 4  # derived: follows --set ROWS
SCALE = 0.5


def build(rows: int = ROWS, cols: int = COLS, scale: float = SCALE):
    tiles = rows // TILE
    assert rows % TILE == 0, "rows must be a multiple of TILE"
    if cols > 256:
        raise ValueError("too wide")

    @pl.program
    class Scale:
        @pl.function(type=pl.FunctionType.Opaque)
        def scale_rows(self, x: pl.Tensor[[rows, cols], pl.FP32], y: pl.Out[pl.Tensor[[rows, cols], pl.FP32]]):
            for t in pl.range(tiles):
                with pl.incore():
                    xt = pl.slice(x, [TILE, cols], [t * TILE, 0])
                    yt = pl.mul(xt, scale)
                    y = pl.assemble(y, yt, [t * TILE, 0])
            return y

    return Scale


def build_tensor_specs(rows: int = ROWS, cols: int = COLS, ones: bool = False):
    import torch
    from pypto.runtime import TensorSpec

    def init_x():
        if ones:
            return torch.ones(rows, cols)
        return torch.rand(rows, cols) * 4 - 2

    return [TensorSpec("x", [rows, cols], torch.float32, init_value=init_x),
            TensorSpec("y", [rows, cols], torch.float32, is_output=True)]
