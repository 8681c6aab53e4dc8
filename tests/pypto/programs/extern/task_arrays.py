"""Task-id arrays as pypto-lib HEAD's decodes use them: a seeded length-one array passed to a helper as a
pl.Array, elements set in a loop and read by a runtime index, a comprehension over a compile-time range in deps=,
and a whole array in deps= (all of its elements), all in a manual scope (only explicit edges)."""

import pypto.language as pl

K = 4


@pl.jit.inline
def first(x: pl.Tensor, y: pl.Tensor, prev: pl.Array[1, pl.TASK_ID]):
    with pl.at(level=pl.Level.CORE_GROUP, name_hint="first", deps=[prev[0]]) as tid:
        y = pl.assemble(y, pl.exp(x[:, :]), [0, 0])
    return tid


@pl.jit
def f(x: pl.Tensor[[K, K], pl.FP32], y: pl.Out[pl.Tensor[[K, K], pl.FP32]], z: pl.Out[pl.Tensor[[K, K], pl.FP32]]):
    seed = pl.array.create(1, pl.TASK_ID)
    seed[0] = pl.system.task_dummy(deps=[])
    rows = pl.array.create(K, pl.TASK_ID)
    with pl.manual_scope():
        first_tid = first(x, y, seed)
        for i in pl.range(K):
            with pl.at(level=pl.Level.CORE_GROUP, name_hint="row", deps=[first_tid]) as row_tid:
                z[i : i + 1, :] = pl.add(y[i : i + 1, :], 1.0)
            rows[i] = row_tid
        with pl.at(level=pl.Level.CORE_GROUP, name_hint="pair", deps=[rows[j] for j in range(2)]) as pair_tid:
            z[0:2, :] = pl.mul(z[0:2, :], 2.0)
        with pl.at(level=pl.Level.CORE_GROUP, name_hint="all", deps=[rows, pair_tid]):
            z[2:4, :] = pl.mul(z[2:4, :], 3.0)
    return z


def build_tensor_specs():
    import torch
    from golden import TensorSpec
    return [TensorSpec("x", [K, K], torch.float32, init_value=torch.rand),
            TensorSpec("y", [K, K], torch.float32, is_output=True),
            TensorSpec("z", [K, K], torch.float32, is_output=True)]
