"""A small program in pypto-lib's current @pl.jit form, one construct each: an entry specialised on the
harness's TensorSpecs (a bare pl.Tensor, a pl.dynamic dim, a ScalarSpec), helpers from a sibling module, an SPMD
kernel in both forms, a split mixed kernel, task ids with deps=, a manual scope and a task_dummy barrier."""

import pypto.language as pl
from config import CFG as C
from config import ROWS_DYN
from layers import add_bias, halve

HIDDEN = C.hidden
HALF_ROWS = C.rows // 2
TILE = C.tile
BLOCKS = C.blocks


@pl.jit
def model(
    x: pl.Tensor[[ROWS_DYN, HIDDEN], pl.FP32],
    w: pl.Tensor,
    bias: pl.Tensor,
    y: pl.Out[pl.Tensor],
    z: pl.Out[pl.Tensor[[ROWS_DYN, HIDDEN], pl.FP32]],
    scale: pl.Scalar[pl.FP32],
):
    x.bind_dynamic(0, ROWS_DYN)
    rows = pl.tensor.dim(x, 0)
    scaled = pl.create_tensor([rows, HIDDEN], dtype=pl.FP32)
    biased = pl.create_tensor([rows, HIDDEN], dtype=pl.FP32)
    for blk in pl.spmd(BLOCKS, name_hint="scale"):
        c0 = blk * TILE
        scaled[:, c0 : c0 + TILE] = pl.mul(x[:, c0 : c0 + TILE], scale)
    with pl.spmd(BLOCKS, name_hint="bias") as bias_tid:
        biased = add_bias(scaled, bias, biased, pl.tile.get_block_idx() * TILE)
    with pl.at(level=pl.Level.CORE_GROUP, optimizations=[pl.split(pl.SplitMode.UP_DOWN)], name_hint="proj",
               deps=[bias_tid]) as proj_tid:
        acc = pl.create_tensor([rows, HIDDEN], dtype=pl.FP32)
        for kb in pl.pipeline(BLOCKS, stage=2):
            k0 = kb * TILE
            a = pl.cast(biased[:, k0 : k0 + TILE], target_type=pl.BF16)
            if k0 == 0:
                acc = pl.matmul(a, w[k0 : k0 + TILE, :], out_dtype=pl.FP32)
            else:
                acc = pl.matmul_acc(acc, a, w[k0 : k0 + TILE, :])
        y = pl.assemble(y, pl.add(acc, x[:, :]), [0, 0])
    with pl.manual_scope():  # no edges from footprints in here: every one is explicit
        with pl.at(level=pl.Level.CORE_GROUP, name_hint="copy", deps=[proj_tid]) as copy_tid:
            z = pl.assemble(z, pl.add(y[:, :], 0.0), [0, 0])
        after_copy = pl.system.task_dummy(deps=[copy_tid])
        with pl.at(level=pl.Level.CORE_GROUP, name_hint="square", deps=[after_copy]) as square_tid:
            for half in pl.unroll(2):
                r0 = half * HALF_ROWS
                z[r0 : r0 + HALF_ROWS, :] = pl.mul(z[r0 : r0 + HALF_ROWS, :], z[r0 : r0 + HALF_ROWS, :])
    with pl.spmd(1, name_hint="halve", deps=[square_tid]) as halve_tid:  # noqa: F841 (PyPTO: deps= needs `as`)
        z = halve(z, z)
    return y


def build_tensor_specs(rows, scale=0.5):
    import torch
    from golden import ScalarSpec, TensorSpec

    def init_w():
        return torch.rand(HIDDEN, HIDDEN) - 0.5

    return [
        TensorSpec("x", [rows, HIDDEN], torch.float32, init_value=torch.randn),
        TensorSpec("w", [HIDDEN, HIDDEN], torch.bfloat16, init_value=init_w),
        TensorSpec("bias", [1, HIDDEN], torch.float32, init_value=torch.rand),
        TensorSpec("y", [rows, HIDDEN], torch.float32, is_output=True),
        TensorSpec("z", [rows, HIDDEN], torch.float32, is_output=True),
        ScalarSpec("scale", torch.float32, scale),
    ]


if __name__ == "__main__":
    import argparse

    from golden import run_jit

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=C.rows)
    parser.add_argument("-p", "--platform", default="a2a3")
    args = parser.parse_args()
    for rows in (args.rows, 2 * args.rows):
        result = run_jit(fn=model, specs=build_tensor_specs(rows), golden_fn=None)
        if not result.passed:
            raise SystemExit(1)
