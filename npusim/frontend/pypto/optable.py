"""PyPTO's names for things, mapped onto npusim's: each op of `pypto.language` (at pypto b2104ad64, the
compiler of the seed-era programs) with its parameter names in PyPTO's positional order, the npusim op it
becomes and how its arguments are renamed; the dtypes and enum members; and the PyPTO ops npusim cannot run
yet, each with the reason the located error gives. Source of the signatures: pypto b2104ad64
`python/pypto/language/op/unified_ops.py`, `tensor_ops.py`, `tile_ops.py` (docs/pypto.md lists them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

_ANY = object()  # a dropped argument may take any value


@dataclass(frozen=True)
class PlOp:
    """One PyPTO op: `params` in PyPTO's positional order; `rename` maps a PyPTO parameter to the npusim op's
    (unlisted ones keep their name); `dropped` lists PyPTO parameters npusim has no use for, each with the
    one value it accepts (`_ANY`: any value, e.g. a reduction's scratch tile); `special` names a translator
    rule for ops that are not one npusim op call (scalar `min`, `read`, `create_tensor` in a kernel, ...)."""

    npusim: str
    params: tuple[str, ...]
    rename: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    dropped: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    special: str | None = None
    aliases: tuple[str, ...] = ()  # other accepted keyword names of the first parameter (IR spellings)


def _op(npusim: str, params: tuple[str, ...], rename: dict[str, str] | None = None,
        dropped: dict[str, Any] | None = None, special: str | None = None,
        aliases: tuple[str, ...] = ()) -> PlOp:
    return PlOp(npusim, params, MappingProxyType(rename or {}), MappingProxyType(dropped or {}), special, aliases)


def _unary(name: str) -> PlOp:
    return _op(name, ("input",), {"input": "x"}, aliases=("tensor", "tile"))


def _binary(name: str) -> PlOp:
    return _op(name, ("lhs", "rhs"))


def _expand(name: str) -> PlOp:
    return _op(name, ("lhs", "rhs"), {"lhs": "t", "rhs": "v"})


OPS: dict[str, PlOp] = {
    **{n: _binary(n) for n in ("add", "sub", "mul", "maximum", "minimum")},
    "div": _op("div", ("lhs", "rhs", "high_precision"), dropped={"high_precision": _ANY}),
    **{n: _unary(n) for n in ("neg", "abs", "exp", "sqrt")},
    # pypto HEAD's high_precision selects a device code path; npusim's recip/rsqrt/div are correctly rounded
    **{n: _op(n, ("input", "high_precision"), {"input": "x"}, {"high_precision": _ANY}, aliases=("tensor", "tile"))
       for n in ("recip", "rsqrt")},
    **{n: _op(n, ("input", "tmp_tile"), {"input": "x"}, {"tmp_tile": _ANY}, aliases=("tensor", "tile"))
       for n in ("row_sum", "row_max", "row_min")},
    **{f"{k}_expand_{o}": _expand(f"{k}_expand_{o}") for k in ("row", "col") for o in ("add", "sub", "mul", "div")},
    "col_expand_expdif": _expand("col_expand_expdif"),
    # pypto HEAD's column reductions and row expansion, npusim's ops of the same names
    "col_sum": _op("col_sum", ("input", "tmp_tile"), {"input": "x"}, aliases=("tensor", "tile")),
    **{n: _op(n, ("input",), {"input": "x"}, aliases=("tensor", "tile")) for n in ("col_max", "col_min")},
    "row_expand": _op("row_expand", ("target", "row_vec"), {"target": "t", "row_vec": "v"}),
    "col_expand": _op("col_expand", ("target", "col_vec"), {"target": "t", "col_vec": "v"}),
    **{n: _op("arange", ("start", "shape", "dtype", "descending")) for n in ("arange", "ci")},  # pl.arange = pl.ci
    "set_validshape": _op("set_validshape", ("tile", "valid_rows", "valid_cols"),
                          {"tile": "t", "valid_rows": "rows", "valid_cols": "cols"}),
    "write": _op("write", ("tile", "indices", "value"), {"tile": "t", "indices": "index"}, aliases=("tensor",)),
    "slice": _op("slice", ("input", "shape", "offset", "valid_shape"), {"input": "t"}, aliases=("tensor", "tile")),
    "assemble": _op("assemble", ("target", "source", "offset", "atomic")),
    "full": _op("full", ("shape", "dtype", "value")),
    "cast": _op("cast", ("input", "target_type", "mode"), {"input": "x"}, special="cast",
                aliases=("tensor", "tile")),
    "reshape": _op("reshape", ("input", "shape"), {"input": "t"}, aliases=("tensor", "tile")),
    "fillpad": _op("fillpad", ("value", "pad_value"), {"value": "t"}, aliases=("tensor", "tile")),
    "matmul": _op("matmul", ("lhs", "rhs", "out_dtype", "a_trans", "b_trans", "c_matrix_nz"),
                  dropped={"c_matrix_nz": False}, special="matmul"),
    "matmul_acc": _op("matmul_acc", ("acc", "lhs", "rhs", "a_trans", "b_trans", "init_cond"),
                      dropped={"init_cond": None}),
    "create_tensor": _op("create_tensor", ("shape", "dtype", "layout", "manual_dep", "init_value"),
                         {"manual_dep": "untracked", "init_value": "fill"}, dropped={"layout": "ND"},
                         special="create_tensor"),
    "read": _op("read", ("src", "offset"), special="read", aliases=("tensor", "tile", "indices")),
    "dim": _op("dim", ("tensor", "axis"), special="dim"),
    "min": _op("min", ("lhs", "rhs"), special="scalar_min_max"),
    "max": _op("max", ("lhs", "rhs"), special="scalar_min_max"),
}
# `pl.tensor.X` spellings that differ from `pl.X`
TENSOR_NAMESPACE = {"create": "create_tensor"}

# PyPTO ops npusim has no equivalent for yet: the located error names the op and says why.
UNSUPPORTED: dict[str, str] = {
    **{n: "a gather/scatter op" for n in ("gather", "scatter", "scatter_update", "mgather", "mscatter",
                                          "paged_gather", "gather_row", "gatherb")},
    **{n: "explicit tile-level programming" for n in ("load", "store", "move", "create_tile", "tpush_to_aiv",
                                                      "tpush_to_aic", "tpop_from_aic", "tpop_from_aiv",
                                                      "tfree_to_aic", "tfree_to_aiv", "reserve_buffer",
                                                      "import_peer_buffer", "aic_initialize_pipe",
                                                      "aiv_initialize_pipe", "create_l1", "aiv_shard", "aic_gather")},
    **{n: "a sorting op" for n in ("sort32", "mrgsort")},
    **{n: "an op npusim's op table does not have" for n in (
        "concat", "transpose", "log", "relu", "cmp", "cmps", "sel", "sels", "rem", "rems", "and_", "ands", "or_",
        "ors", "xor", "xors", "shl", "shls", "shr", "shrs", "not_", "addc", "subc", "addsc", "subsc", "lrelu",
        "prelu", "matmul_bias", "gemv", "gemv_acc", "gemv_bias", "expands",
        "maxs", "mins", "sum",
        "row_expand_expdif", "fmod", "fmods", "sin", "cos", "batch_matmul",
        "reinterpret_view", "fillpad_expand")},
    **{n: "task-dependency plumbing" for n in ("no_dep", "submit", "spmd_submit")},
    **{n: "index the task-id array instead: `arr[i]` reads an element, `arr[i] = tid` sets it"
       for n in ("array.get", "array.set")},
    "array.create": "a task-id array is made by an assignment: `arr = pl.array.create(n, pl.TASK_ID)`",
    **{n: "a runtime query" for n in ("get_subblock_idx", "available_cluster_count", "available_aiv_count")},
}

DTYPES = {"FP32": "fp32", "BF16": "bf16", "FP16": "fp16", "INT32": "int32", "INT8": "int8", "INT64": "int64",
          "UINT8": "uint8", "FP8E4M3FN": "fp8e4m3fn", "FP8E5M2": "fp8e5m2"}
UNSUPPORTED_DTYPES = ("FP4", "FP8E8M0", "HF4", "HF8", "INT4", "INT16", "UINT4", "UINT16", "UINT32",
                      "UINT64", "BOOL", "TASK_ID")
TORCH_DTYPES = {"float32": "fp32", "float": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16",
                "int32": "int32", "int8": "int8", "uint8": "uint8", "int64": "int64", "long": "int64",
                "float8_e4m3fn": "fp8e4m3fn", "float8_e5m2": "fp8e5m2"}
PAD_VALUES = {"zero": "zero", "max": "max", "min": "min"}
ATOMIC_TYPES = {"None_": "none", "Add": "add"}  # pl.AtomicType members (pypto e2d0f78ae)
CAST_MODES = ("round", "rint", "floor", "ceil", "trunc")

# Loop iterators and the keywords each accepts (SEED parser `_parse_range_call`; pipeline is pypto HEAD's).
LOOPS = {"range": False, "parallel": True, "unroll": False, "pipeline": False}
LOOP_KEYWORDS = {"chunk", "chunk_policy", "init_values", "stage", "attrs"}
# `for i in pl.spmd(n, ...)`: a kernel of n blocks, `i` its block index (pypto e2d0f78ae dsl_api.py).
SPMD_LOOP_KEYWORDS = ("core_num", "sync_start", "name_hint", "optimizations", "deps", "allow_early_resolve")

# Kernel scopes: `with pl.<name>(...)` and the keywords each takes (pypto e2d0f78ae dsl_api.py pl.at and
# pl.spmd; `allow_early_resolve`, `sync_start` and `dumps` are scheduling and debugging hints npusim accepts and
# does not model; `no_dep_args`, `predicate`, `windowize` are refused by name).
SCOPES = {"incore": ("split", "name_hint"), "auto_incore": ("split", "name_hint"),
          "at": ("level", "role", "optimization", "optimizations", "split", "name_hint", "deps", "no_dep_args",
                 "dumps", "allow_early_resolve", "windowize"),
          "spmd": ("core_num", "sync_start", "name_hint", "optimizations", "deps", "allow_early_resolve",
                   "predicate")}
UNSUPPORTED_SCOPES = {"cluster": "a cluster scope (co-scheduled AIC+AIV groups)",
                      "split_aiv": "explicit AIV-lane regions (pl.split_aiv)"}
