"""A harness in the style of pypto-lib HEAD's qwen3_14b decode: inputs drawn by a function with a
torch.Generator and a helper (`empty(...).normal_(...) + bias`), a tensor filled element by element from values
read back from another, a table computed with arange/cos/cat, TensorSpecs built by a comprehension over the
fixture's names (shape and dtype read from the tensors), and a module constant the __main__ block rebinds
before the run (the entry reads it when traced)."""

import pypto.language as pl

ROWS = 16
COLS = 64
CHUNK = 8


@pl.jit
def f(x: pl.Tensor, lens: pl.Tensor, pos: pl.Tensor, table: pl.Tensor, y: pl.Out[pl.Tensor]):
    for _i in pl.range(CHUNK):
        with pl.at(level=pl.Level.CORE_GROUP, name_hint="widen"):
            y = pl.assemble(y, pl.cast(x[:, :], target_type=pl.FP32), [0, 0])
    return y


def random_inputs(seed: int = 7, rows: int = ROWS):
    import torch

    g = torch.Generator().manual_seed(seed)

    def rn(shape, std=1.0, bias=0.0):
        return torch.empty(shape).normal_(0.0, std, generator=g) + bias

    lens = torch.randint(1, 64, (rows,), generator=g, dtype=torch.int32)
    pos = torch.empty(rows, dtype=torch.int32)
    for b in range(rows):
        pos[b] = int(lens[b].item()) - 1
    ang = torch.arange(16).float().unsqueeze(1) * torch.arange(8).float().unsqueeze(0)
    return {
        "x": rn([rows, COLS], 0.5, 1.0).to(torch.bfloat16),
        "lens": lens,
        "pos": pos,
        "table": torch.cat([ang.cos(), ang.sin()], dim=1),
    }


NAMES = ("x", "lens", "pos", "table")


def build_specs(inputs):
    import torch
    from golden import TensorSpec

    specs = [TensorSpec(n, list(inputs[n].shape), inputs[n].dtype, init_value=inputs[n]) for n in NAMES]
    specs.append(TensorSpec("y", [ROWS, COLS], torch.float32, is_output=True))
    return specs


if __name__ == "__main__":
    from golden import run_jit

    CHUNK = 2
    inputs = random_inputs()
    run_jit(fn=f, specs=build_specs(inputs), golden_fn=None)
