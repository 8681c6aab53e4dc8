"""Two hand-written kernels (`@pl.jit.extern`, whose C++ npusim cannot see into) around a modelled one, as
pypto-lib HEAD's qwen3_14b decode calls its attention: a one-block AIV planner writing a UINT8 metadata buffer,
then an SPMD mixed kernel with dual AIV dispatch reading it (deps= and the footprint both order them), and a
modelled kernel reading the extern's output."""

import pypto.language as pl

ROWS = 64
D = 256
KV_ROWS = 1024
META_BYTES = 4096
BLOCKS = 8


@pl.jit.extern(core_type="aiv", source="plan.cpp")
def plan(lens: pl.Tensor, meta: pl.Out[pl.Tensor], count: pl.Scalar[pl.INT32]) -> pl.Tensor: ...


@pl.jit.extern(core_type="mixed", aic_source="attend.cpp", aiv_source="attend.cpp", dual_aiv_dispatch=True)
def attend(out: pl.Out[pl.Tensor], q: pl.Tensor, kv: pl.Tensor, work: pl.InOut[pl.Tensor],
           meta: pl.Tensor) -> pl.Tensor: ...


@pl.jit
def model(
    lens: pl.Tensor[[16], pl.INT32],
    q: pl.Tensor[[ROWS, D], pl.BF16],
    kv: pl.Tensor[[KV_ROWS, D], pl.BF16],
    attn: pl.Out[pl.Tensor[[ROWS, D], pl.BF16]],
    y: pl.Out[pl.Tensor[[ROWS, D], pl.FP32]],
):
    meta = pl.create_tensor([META_BYTES], dtype=pl.UINT8)
    work = pl.create_tensor([ROWS, D], dtype=pl.FP32)
    count = pl.cast(pl.tensor.dim(lens, 0), pl.INT32)
    with pl.spmd(1, name_hint="plan") as plan_tid:
        meta = plan(lens, meta, count)
    with pl.spmd(BLOCKS, name_hint="attend", deps=[plan_tid]) as attend_tid:  # noqa: F841 (deps= needs `as`)
        attn = attend(attn, q, kv, work, meta)
    with pl.at(level=pl.Level.CORE_GROUP, name_hint="widen"):
        y = pl.assemble(y, pl.cast(attn[:, :], target_type=pl.FP32), [0, 0])
    return y


def build_tensor_specs():
    import torch
    from golden import TensorSpec

    return [
        TensorSpec("lens", [16], torch.int32, init_value=lambda: torch.randint(1, 128, (16,))),
        TensorSpec("q", [ROWS, D], torch.bfloat16, init_value=torch.randn),
        TensorSpec("kv", [KV_ROWS, D], torch.bfloat16, init_value=torch.randn),
        TensorSpec("attn", [ROWS, D], torch.bfloat16, is_output=True),
        TensorSpec("y", [ROWS, D], torch.float32, is_output=True),
    ]
