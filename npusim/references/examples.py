"""References of the example programs (matmul, rms_norm, softmax): whole-tensor numpy in float64, with
the programs' BF16 rounding points (numpy/ml_dtypes round to nearest even, as torch does)."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

Inputs = dict[str, np.ndarray]


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def to_bf16(x: np.ndarray) -> np.ndarray:
    """Round to BF16 (nearest even) and back to float64."""
    return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)


def matmul(inputs: Inputs, consts: dict[str, Any]) -> dict[str, np.ndarray]:
    c = _f64(inputs["a"]) @ _f64(inputs["b"])
    return {"c32": c, "c": to_bf16(c)}


def rms_norm(inputs: Inputs, consts: dict[str, Any]) -> dict[str, np.ndarray]:
    x = _f64(inputs["x"])
    inv = 1.0 / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + consts["eps"])
    return {"y": to_bf16(x * inv * _f64(inputs["gamma"]))}


def softmax(inputs: Inputs, consts: dict[str, Any]) -> dict[str, np.ndarray]:
    """Block-wise softmax attention with BF16 exp scores and the online-softmax combination."""
    q, k, v = _f64(inputs["q"]), _f64(inputs["k"]), _f64(inputs["v"])
    ctx, tile, scale = consts["ctx_len"], consts["SEQ_TILE"], consts["scale"]
    o = m = l_sum = None
    for s0 in range(0, ctx, tile):
        s1 = min(s0 + tile, ctx)
        scores = (q @ k[s0:s1].T) * scale
        mb = scores.max(axis=1, keepdims=True)
        p = to_bf16(np.exp(scores - mb))
        lb = p.sum(axis=1, keepdims=True)
        ob = p @ v[s0:s1]
        if o is None:
            o, m, l_sum = ob, mb, lb
            continue
        m_new = np.maximum(m, mb)
        alpha, beta = np.exp(m - m_new), np.exp(mb - m_new)
        o, l_sum, m = o * alpha + ob * beta, l_sum * alpha + lb * beta, m_new
    return {"out": to_bf16(o / l_sum)}
